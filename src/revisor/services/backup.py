"""Back up one source to its backup remote: ``refs/revisor/*`` and a metadata commit, verified.

Why this module exists: a store is a cache of durable git remotes (DESIGN principle 8), except
for what Revisor makes itself — candidates, workspaces and their rows. This service copies them
to the source's configured backup remote (``backup: {url, credentials}``, any git URL):

1. The candidate and workspace rows are written as one JSON file each into a *metadata commit*
   (``refs/revisor/meta/db``; ``db.backups.record_path``): a parentless snapshot built on the
   previous one's tree by one ``git fast-import`` (only changed records cost a blob; unchanged
   records give the same commit). The local ref moves by CAS.
2. If any ``refs/revisor/*`` ref differs from what the backup was last *confirmed* to hold, one
   ``git push --atomic`` sends them all: a wildcard refspec without force (new refs and
   fast-forwards go through; a ref found on the remote at an unexpected, unrelated value is
   refused) plus ``--force-with-lease`` naming the confirmed value of each ref that moved (so
   only those may be rewritten). The metadata ref goes in the same push, so the remote never
   describes refs it lacks. Refs gone locally are not deleted on the backup: only cleanup
   decides that. (Leases too many for one command line go first, in pushes of their own.)
3. The backup remote is then listed (``git ls-remote``) and compared with what was meant: only
   what was seen there is recorded as confirmed (``db.backups``), per ref and per record.

A lease lost by a push (the remote is not what was confirmed: a run killed after its push,
before it recorded anything) is answered by listing the remote and planning once more against
what it really holds, so a re-run never duplicates and never loses. Planning again never
replaces a metadata commit holding records the database lacks (a lost or replaced database: a
backup run before ``revisor restore`` would otherwise wipe the records restore needs); that is
refused with :class:`~revisor.errors.Conflict`, and cleanup holds back meanwhile. A remote
that is down is retried by the transport's policy, then reported
(:class:`~revisor.errors.RemoteUnavailable`) with nothing confirmed. Credentials go through
the transport's credential helper, never argv.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from revisor import faults
from revisor.config import BackupConfig, Config
from revisor.db.backups import BackupStore, Fence, export_records, no_fence
from revisor.db.database import Database
from revisor.db.models import utcnow
from revisor.errors import (
    Conflict,
    InvalidInput,
    RemoteRefConflict,
    RemoteUnavailable,
    RevisionNotFound,
)
from revisor.store.store import StoreSource
from revisor.store.transport import GitAuth, NetworkPolicy, retry, run_remote
from revisor.store.urls import Transport, redact, strip_userinfo
from revisor.vcs import ObjectId, RefUpdate, Repository

__all__ = [
    "META_REF",
    "REVISOR_PREFIX",
    "STAGING_PREFIX",
    "BackupProgress",
    "BackupRemote",
    "BackupResult",
    "BackupUpdate",
    "backup_remote",
    "backup_source",
    "build_meta_commit",
    "list_backup",
    "push_updates",
]

log = logging.getLogger(__name__)

REVISOR_PREFIX = "refs/revisor/"
META_REF = "refs/revisor/meta/db"
_META_PREFIX = "refs/revisor/meta/"
STAGING_PREFIX = "refs/revisor-backup/"
"""Where the metadata commit is named while it is built (outside ``refs/revisor/``)."""
ARGV_BUDGET = 1_000_000
"""Bytes of ref arguments per push (Linux allows 2 MiB of arguments and environment)."""

BackupProgress = Callable[[str, int, int], None]
"""(phase, done, total): "metadata", "push" (refs) and "push: <git's phase>" (git's own meter,
e.g. "push: Writing objects") and "verify"."""


@dataclass(frozen=True)
class BackupRemote:
    """A source's backup remote as git is given it: the URL without secrets, the credentials
    for the credential helper, and the URL shown in logs, errors and the database."""

    url: str
    auth: GitAuth | None
    display: str


def backup_remote(
    config: Config, source: str, env: Mapping[str, str]
) -> BackupRemote:
    """The backup remote configured for ``source`` (InvalidInput if none is)."""
    cfg = config.source(source).backup
    if cfg is None:
        raise InvalidInput(
            f"source {source!r} has no backup remote",
            hint=f"configure sources.{source}.backup: {{url: ...}}",
        )
    return _remote(cfg, source, env)


def _remote(cfg: BackupConfig, source: str, env: Mapping[str, str]) -> BackupRemote:
    remote = cfg.remote
    auth: GitAuth | None = None
    url = cfg.url
    if cfg.credentials is not None:
        creds = cfg.credentials.resolve(env, field=f"sources.{source}.backup.credentials")
        password = creds.password.get_secret_value() if creds.password is not None else None
        auth = GitAuth(creds.username, password, creds.ssh_key_file)
    elif remote.password is not None:
        auth = GitAuth(unquote(remote.user) if remote.user else None, remote.password)
    if remote.transport in (Transport.HTTP, Transport.HTTPS):
        url = strip_userinfo(url)  # the secret travels through the helper instead
    return BackupRemote(url, auth, redact(strip_userinfo(cfg.url)))


@dataclass(frozen=True)
class BackupResult:
    """What one backup run did and what the backup remote was then verified to hold."""

    source: str
    url: str  # redacted
    meta_commit: ObjectId
    refs: int  # refs the backup holds, verified (the metadata ref included)
    pushed: int  # refs created or moved on the backup by this run
    records: int  # candidate and workspace records in the metadata commit
    records_changed: int  # records new, changed or gone since the last confirmed backup
    replanned: bool  # a lease was lost and the push was planned again from the remote's state
    confirmed_at: datetime
    seconds: float

    @property
    def changed(self) -> bool:
        return self.pushed > 0


@dataclass(frozen=True)
class BackupUpdate:
    """One ref to set (``new``) or delete (None) on the backup, if it holds ``expected``."""

    ref: str
    new: ObjectId | None
    expected: ObjectId | None


def list_backup(
    repo: Repository, remote: BackupRemote, policy: NetworkPolicy
) -> dict[str, ObjectId]:
    """What the backup remote holds under ``refs/revisor/``, as ``git ls-remote`` lists it."""
    proc = run_remote(
        repo.git_dir,
        ["ls-remote", "--refs", "--end-of-options", remote.url, REVISOR_PREFIX + "*"],
        auth=remote.auth, policy=policy, what=f"ls-remote {remote.display}",
    )
    out: dict[str, ObjectId] = {}
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        oid, _, name = line.partition("\t")
        if name.startswith(REVISOR_PREFIX):
            out[name] = ObjectId(oid)
    return out


def _batches(updates: Sequence[BackupUpdate]) -> list[list[BackupUpdate]]:
    """The pushes of one backup. The last one is the wildcard push: every new ref, the metadata
    ref, and the leases that fit; leases beyond :data:`ARGV_BUDGET` go first, in pushes of
    explicit refspecs that each fit it (rare: only when that many confirmed refs moved)."""
    leased = [u for u in updates if u.expected is not None and u.ref != META_REF]
    rest = [u for u in updates if u.expected is None or u.ref == META_REF]
    chunks: list[list[BackupUpdate]] = [[]]
    size = 0
    for u in sorted(leased, key=lambda u: u.ref):
        cost = len(u.ref) + 40 + 32  # --force-with-lease=<ref>:<sha>, and its refspec
        if chunks[-1] and size + cost > ARGV_BUDGET:
            chunks.append([])
            size = 0
        chunks[-1].append(u)
        size += cost
    chunks[-1].extend(sorted(rest, key=lambda u: (u.ref == META_REF, u.ref)))
    return [c for c in chunks if c]


def push_updates(
    repo: Repository,
    remote: BackupRemote,
    policy: NetworkPolicy,
    updates: Sequence[BackupUpdate],
    *,
    everything: bool = False,
    progress: BackupProgress | None = None,
) -> int:
    """One atomic push; how many refs it changed on the remote (a ref the remote already holds
    at its new value is "up to date").

    ``everything``: push every ``refs/revisor/*`` ref as it is now with one wildcard refspec,
    without force, plus a lease (which lets it be forced) for each of ``updates`` the backup
    holds at a confirmed value; new refs and fast-forwards go through, a ref moved otherwise
    than planned is refused. git matches each *explicit* refspec against every local ref, so
    ten thousand ``sha:ref`` arguments take minutes; the wildcard costs what a plain ``git push``
    costs. Otherwise: exactly ``updates``, explicit, each with a lease (``ref:`` = must not
    exist); ``new`` None deletes. A failure is explained from the remote's state: applied after
    all → fine; a lease lost → RemoteRefConflict; else RemoteUnavailable.
    """
    args = ["push", "--porcelain", "--no-verify", "--no-recurse-submodules", "--atomic"]
    if everything:
        args += [f"--force-with-lease={u.ref}:{u.expected}" for u in updates
                 if u.expected is not None]
        args += ["--end-of-options", remote.url, f"{REVISOR_PREFIX}*:{REVISOR_PREFIX}*"]
        args += [f":{u.ref}" for u in updates if u.new is None]
    else:
        args += [f"--force-with-lease={u.ref}:{u.expected or ''}" for u in updates]
        args += ["--end-of-options", remote.url]
        args += [f"{u.new}:{u.ref}" if u.new else f":{u.ref}" for u in updates]
    proc = run_remote(
        repo.git_dir, args, auth=remote.auth, policy=policy, what=f"push to {remote.display}",
        check=False, progress=progress,
    )
    if proc.returncode == 0:
        return _changed(proc.stdout)
    actual = list_backup(repo, remote, policy)
    here = repo.refs(REVISOR_PREFIX) if everything else {}
    if all(actual.get(u.ref) in (u.new, here.get(u.ref)) for u in updates):
        log.info("push to %s applied although git reported a failure", remote.display)
        return len(updates)
    for u in updates:
        if actual.get(u.ref) not in (u.expected, u.new):
            raise RemoteRefConflict(u.ref, u.expected, actual.get(u.ref))
    planned = {u.ref for u in updates}
    for ref, sha in here.items():  # moved here since it was planned, and not a fast-forward
        if ref not in planned and actual.get(ref) not in (None, sha):
            raise RemoteRefConflict(ref, actual.get(ref), sha)
    stderr = redact(proc.stderr.decode("utf-8", "replace").strip(),
                    (remote.auth.password,) if remote.auth and remote.auth.password else ())
    raise RemoteUnavailable(f"push to {remote.display} failed", stderr=stderr)


def _changed(porcelain: bytes) -> int:
    """Refs a ``git push --porcelain`` changed: flag ``*`` new, `` `` fast-forward, ``+``
    forced, ``-`` deleted (``=`` is up to date, ``!`` rejected)."""
    return sum(
        1 for line in porcelain.decode("utf-8", "replace").splitlines()
        if "\t" in line and line[0] in " +-*"
    )


def _plan(desired: Mapping[str, ObjectId], base: Mapping[str, ObjectId]) -> list[BackupUpdate]:
    return [BackupUpdate(ref, sha, base.get(ref))
            for ref, sha in desired.items() if base.get(ref) != sha]


def build_meta_commit(
    repo: Repository, records: Mapping[str, bytes], previous: ObjectId | None
) -> tuple[ObjectId, int]:
    """The metadata commit holding exactly ``records`` (path → JSON), built on ``previous``'s
    tree when it is there, so only changed records are written; (commit, records changed).
    Parentless, with a fixed author and date: the same records give the same commit.

    One ``git fast-import`` writes the objects as a single pack (a loose object per record
    would cost a file creation each: seconds for ten thousand); it names the commit through a
    staging ref, which is removed at once, so only the caller's compare-and-swap moves a ref.
    """
    old: dict[str, tuple[int, ObjectId]] = {}
    base_tree: str | None = None
    if previous is not None:
        try:
            old = repo.files(previous)
            base_tree = repo.changeset(previous).tree
        except RevisionNotFound:  # gone after a restore or a rebuilt mirror: start afresh
            old, base_tree = {}, None
    lines = bytearray(b"feature get-mark\n")
    lines += f"commit {STAGING_PREFIX}meta\nmark :1\n".encode()
    lines += b"committer Revisor Backup <revisor@localhost> 946684800 +0000\n"
    message = b"revisor: candidate and workspace records\n"
    lines += b"data %d\n%s" % (len(message), message)
    if base_tree is not None:
        lines += f'M 040000 {base_tree} ""\n'.encode()
    changed = 0
    for path, data in records.items():
        entry = old.get(path)
        if entry is None or entry[1] != Repository.hash_bytes(data):
            lines += f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n"
            changed += 1
    for path in sorted(old.keys() - records.keys()):
        lines += f"D {path}\n".encode()
    gone = old.keys() - records.keys()
    if previous is not None and changed == 0 and not gone:
        return previous, 0  # nothing to write: the same records, the same commit
    lines += b"\nget-mark :1\n"
    proc = repo.git("fast-import", "--quiet", "--force", input=bytes(lines))
    commit = ObjectId(proc.stdout.decode().split()[0])
    repo.update_refs([RefUpdate(f"{STAGING_PREFIX}meta", None, commit)])
    return commit, changed


def backup_source(
    stored: StoreSource,
    db: Database,
    config: Config,
    *,
    env: Mapping[str, str],
    policy: NetworkPolicy | None = None,
    fence: Fence = no_fence,
    progress: BackupProgress | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> BackupResult:
    """Back up ``stored`` to its backup remote, verify, and record what was confirmed.

    ``fence`` is called before every write that matters (the local metadata ref, each push) and
    inside the database transaction that records the confirmations: a caller whose lease was
    lost (:class:`~revisor.errors.LeaseLost`) writes nothing more. Raises RemoteUnavailable
    when the remote stays down (the failure is recorded, nothing is confirmed), and
    RemoteRefConflict when the remote holds something else than was pushed after the push.
    """
    start = time.perf_counter()
    source = stored.name
    policy = policy or stored.store.policy
    remote = backup_remote(config, source, env)
    store = BackupStore(db)
    store.reset_if_moved(source, remote.display, fence=fence)
    confirmed = store.confirmed(source)
    repo = stored.repository
    report = progress or (lambda phase, done, total: None)

    # 1. the metadata commit
    records = export_records(db, source)
    report("metadata", 0, len(records))
    local_meta = repo.ref(META_REF)
    meta, _ = build_meta_commit(repo, records, local_meta)
    versions = {p: Repository.hash_bytes(d) for p, d in records.items()}
    records_changed = sum(1 for p, v in versions.items() if confirmed.records.get(p) != v)
    records_changed += sum(1 for p in confirmed.records if p not in versions)
    if meta != local_meta:
        fence(None)
        repo.set_ref(META_REF, meta, expected=local_meta)
    report("metadata", len(records), len(records))

    # 2. the push, incremental from what was confirmed
    desired = {r: s for r, s in repo.refs(REVISOR_PREFIX).items()
               if not r.startswith(_META_PREFIX)}
    desired[META_REF] = meta
    replanned = False
    try:
        updates = _plan(desired, confirmed.refs)
        try:
            pushed = _push_all(repo, remote, policy, updates, fence, report)
        except RemoteRefConflict as exc:
            log.info("%s: backup lease lost (%s): planning again from the remote", source, exc)
            replanned = True
            held = retry(lambda: list_backup(repo, remote, policy), policy)
            _keep_unknown_records(repo, remote, policy, held.get(META_REF), records)
            updates = _plan(desired, held)
            pushed = _push_all(repo, remote, policy, updates, fence, report)
        faults.checkpoint("backup.after_push")

        # 3. verify: only what the remote is seen holding is confirmed
        report("verify", 0, len(desired))
        seen = retry(lambda: list_backup(repo, remote, policy), policy)
    except (RemoteUnavailable, Conflict) as exc:  # Conflict: the push was refused
        store.failed(source, remote.display, str(exc), at=clock())
        raise
    report("verify", len(desired), len(desired))
    # Only what differs from the confirmations is written (a ref confirmed at the same value
    # keeps its first confirmation time; the status row has the time of this verification).
    refs_seen: dict[str, ObjectId | None] = {
        r: sha for r, sha in seen.items() if confirmed.refs.get(r) != sha
    }
    refs_seen.update({r: None for r in confirmed.refs if r not in seen})
    record_versions: dict[str, ObjectId | None] = {}
    if seen.get(META_REF) == meta:
        record_versions = {p: v for p, v in versions.items() if confirmed.records.get(p) != v}
        record_versions.update({p: None for p in confirmed.records if p not in versions})
    elif seen.get(META_REF) != confirmed.refs.get(META_REF):  # some other metadata is there
        record_versions = {p: None for p in confirmed.records}
    at = clock()
    store.confirm(source, remote.display, refs=refs_seen, records=record_versions,
                  meta_commit=meta if seen.get(META_REF) == meta else None, at=at, fence=fence)
    differ = [ref for ref, sha in desired.items() if seen.get(ref) != sha]
    if differ:
        now = repo.refs(REVISOR_PREFIX)  # a ref moved since it was planned went as it is now
        for ref in differ:
            if seen.get(ref) != now.get(ref):
                raise RemoteRefConflict(ref, desired[ref], seen.get(ref))
    return BackupResult(
        source=source, url=remote.display, meta_commit=meta, refs=len(seen), pushed=pushed,
        records=len(records), records_changed=records_changed, replanned=replanned,
        confirmed_at=at, seconds=time.perf_counter() - start,
    )


def _keep_unknown_records(
    repo: Repository,
    remote: BackupRemote,
    policy: NetworkPolicy,
    remote_meta: ObjectId | None,
    records: Mapping[str, bytes],
) -> None:
    """Refuse to replace a metadata commit the backup holds but this database never confirmed
    (the backup lease was lost, or nothing was confirmed yet) if it holds records the database
    lacks. That is a lost or replaced database (or a backup URL that points at another
    installation's backup): pushing the database's records would wipe the only copy of the
    missing ones, which ``revisor restore`` needs. A run killed after its push left a metadata
    commit built from this database's rows, which holds nothing the database lacks: it passes.
    """
    if remote_meta is None:
        return
    try:
        held = repo.files(remote_meta)
    except RevisionNotFound:  # not here: fetch that one commit, read it, drop the name
        name = f"{STAGING_PREFIX}remote-meta"
        run_remote(repo.git_dir, ["fetch", "--no-tags", "--no-write-fetch-head",
                                  "--end-of-options", remote.url, f"+{META_REF}:{name}"],
                   auth=remote.auth, policy=policy, what=f"fetch {remote.display}")
        try:
            held = repo.files(remote_meta)
        finally:
            fetched = repo.ref(name)
            if fetched is not None:
                repo.update_refs([RefUpdate(name, None, fetched)])
    missing = sorted(held.keys() - records.keys())
    if missing:
        raise Conflict(
            f"the backup {remote.display} holds {len(missing)} candidate and workspace records "
            f"this database lacks (e.g. {missing[0]}); backing up would delete them there",
            hint="restore them first (revisor restore SOURCE --from-backup), or give the "
                 "source another backup remote",
        )


def _push_all(
    repo: Repository,
    remote: BackupRemote,
    policy: NetworkPolicy,
    updates: Sequence[BackupUpdate],
    fence: Fence,
    report: BackupProgress,
) -> int:
    if not updates:
        return 0
    done = changed = 0
    total = len(updates)
    report("push", 0, total)
    batches = _batches(updates)
    for i, batch in enumerate(batches):
        fence(None)
        faults.checkpoint("backup.before_push")
        last = i == len(batches) - 1

        def attempt(batch: list[BackupUpdate] = batch, last: bool = last) -> int:
            return push_updates(repo, remote, policy, batch, everything=last,
                                progress=lambda phase, d, t: report(f"push: {phase}", d, t))

        changed += retry(attempt, policy)
        done += len(batch)
        report("push", done, total)
    return changed
