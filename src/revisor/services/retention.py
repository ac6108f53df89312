"""The cleanup policy: what to delete, when, and the rule that nothing unbacked is deleted.

Why this module exists: candidates and workspaces accumulate refs, rows and lock files; the
retention policy (``retention:`` in the configuration, :class:`~revisor.config.RetentionConfig`)
says what goes and when, counted from the candidate's last change (``updated_at``, which for a
finished candidate is when it was submitted or abandoned):

- the workspaces of a candidate submitted ``submitted_workspaces`` ago (default 7 days);
- a whole candidate (its ref, its squashed form ``refs/revisor/proposals/<id>``, its workspaces,
  its rows) submitted ``submitted_candidates`` ago
  (default: never) or abandoned ``abandoned_candidates`` ago (default 30 days);
- never an open candidate, and never anything outside ``refs/revisor/candidates/``,
  ``refs/revisor/workspaces/`` and ``refs/revisor/proposals/`` (so never a target branch),
  whatever is configured.

When the source has a backup remote, an item is deleted only if the backup was *confirmed* to
hold its latest state: every ref at its current value and every record (row) at its current
version (``db.backups``). Otherwise it is held back ("held back: not backed up") until a backup
confirms it. Then, in this order — so that a crash at any point loses nothing and leaks nothing
for long:

1. on the backup remote: the refs are deleted and a metadata commit without the records is
   pushed, atomically, each with a lease on its confirmed value; verified by listing the remote;
   the confirmations are updated;
2. locally: the refs are deleted by compare-and-swap on the values checked (a ref that moved
   meanwhile makes the item "held back: moved"; the next backup saves it again);
3. the rows are deleted, with an audit entry, in one fenced database transaction;
4. the item's lock files go.

The caller holds the backup lease of the source (``jobs.cleanup``), so no backup runs between
the check and the deletion; ``fence`` is called before each step.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete

from revisor.config import Config, RetentionConfig
from revisor.core.refnames import (
    CANDIDATES_PREFIX,
    WORKSPACES_PREFIX,
    candidate_ref,
    workspace_prefix,
)
from revisor.db.audit import AuditLog
from revisor.db.backups import (
    BackupStore,
    Confirmed,
    Fence,
    export_records,
    no_fence,
    record_path,
)
from revisor.db.candidates import Candidate, CandidateStatus, CandidateStore, WorkspaceRecord
from revisor.db.database import Database
from revisor.db.models import CandidateRow, WorkspaceRow, utcnow
from revisor.errors import InvalidState, RefConflict, RemoteRefConflict, RemoteUnavailable
from revisor.services.backup import (
    META_REF,
    BackupRemote,
    BackupUpdate,
    backup_remote,
    list_backup,
    push_updates,
)
from revisor.store.store import StoreSource
from revisor.store.transport import NetworkPolicy, retry
from revisor.vcs import ObjectId, RefUpdate, Repository, Signature, create_commit

__all__ = [
    "ACTOR",
    "PROPOSALS_PREFIX",
    "CleanupItem",
    "CleanupResult",
    "ItemKind",
    "Verdict",
    "cleanup_source",
    "due_items",
]

log = logging.getLogger(__name__)

ACTOR = "revisor:cleanup"
PROPOSALS_PREFIX = "refs/revisor/proposals/"
"""Where the squash job keeps each candidate's one-commit form (``refs/revisor/proposals/<id>``)."""
_META_AUTHOR = Signature("Revisor Backup", "revisor@localhost",
                         datetime.fromisoformat("2000-01-01T00:00:00+00:00"))


class ItemKind(enum.StrEnum):
    WORKSPACES = "workspaces"  # a submitted candidate's workspaces; the candidate stays
    CANDIDATE = "candidate"  # the candidate, its workspaces and their rows


class Verdict(enum.StrEnum):
    DELETED = "deleted"
    NOT_BACKED_UP = "held back: not backed up"
    MOVED = "held back: moved"
    BACKUP_DOWN = "held back: backup unavailable"


@dataclass(frozen=True)
class CleanupItem:
    """One thing the policy found due, and what became of it."""

    kind: ItemKind
    candidate_id: int
    status: CandidateStatus
    refs: tuple[str, ...]
    records: tuple[str, ...]
    verdict: Verdict | None = None
    detail: str = ""


@dataclass(frozen=True)
class CleanupResult:
    source: str
    items: tuple[CleanupItem, ...]

    def _count(self, *verdicts: Verdict) -> int:
        return sum(1 for i in self.items if i.verdict in verdicts)

    @property
    def deleted(self) -> int:
        return self._count(Verdict.DELETED)

    @property
    def held_back(self) -> int:
        return self._count(Verdict.NOT_BACKED_UP, Verdict.MOVED, Verdict.BACKUP_DOWN)


def _age_over(cand: Candidate, limit: timedelta | None, now: datetime) -> bool:
    return limit is not None and now - cand.updated_at >= limit


def due_items(
    candidates: Sequence[Candidate],
    workspaces: Mapping[int, Sequence[WorkspaceRecord]],
    refs: Mapping[str, ObjectId],
    policy: RetentionConfig,
    now: datetime,
) -> list[CleanupItem]:
    """What ``policy`` says is due at ``now`` (pure: nothing is read or deleted). ``refs`` are
    the repository's ``refs/revisor/`` refs; ``workspaces`` the rows per candidate id."""
    out = []
    for cand in candidates:
        if cand.status is CandidateStatus.OPEN:
            continue  # never, whatever the policy says
        whole = (
            cand.status is CandidateStatus.ABANDONED
            and _age_over(cand, policy.abandoned_candidates, now)
        ) or (
            cand.status is CandidateStatus.SUBMITTED
            and _age_over(cand, policy.submitted_candidates, now)
        )
        prefix = workspace_prefix(cand.id)
        ws_refs = tuple(sorted(r for r in refs if r.startswith(prefix)))
        ws_records = tuple(record_path(cand.id, w.ref_name) for w in workspaces.get(cand.id, ()))
        if whole:
            own = tuple(r for r in (candidate_ref(cand.id), f"{PROPOSALS_PREFIX}{cand.id}")
                        if r in refs)
            out.append(CleanupItem(ItemKind.CANDIDATE, cand.id, cand.status, own + ws_refs,
                                   (record_path(cand.id), *ws_records)))
        elif (
            cand.status is CandidateStatus.SUBMITTED
            and _age_over(cand, policy.submitted_workspaces, now)
            and (ws_refs or ws_records)
        ):
            out.append(CleanupItem(ItemKind.WORKSPACES, cand.id, cand.status, ws_refs,
                                   ws_records))
    return out


def _guard(ref: str, target: str) -> None:
    if (not ref.startswith((CANDIDATES_PREFIX, WORKSPACES_PREFIX, PROPOSALS_PREFIX))
            or ref == f"refs/heads/{target}"):
        raise InvalidState(f"ref {ref!r}", "protected", "delete")


def cleanup_source(
    stored: StoreSource,
    db: Database,
    config: Config,
    *,
    env: Mapping[str, str],
    now: datetime | None = None,
    policy: NetworkPolicy | None = None,
    fence: Fence = no_fence,
    candidate: int | None = None,
) -> CleanupResult:
    """Apply the retention policy to one source (see the module docstring); with
    ``candidate``, to that candidate only."""
    now = now or utcnow()
    source = stored.name
    policy = policy or stored.store.policy
    repo = stored.repository
    store = CandidateStore(db)
    candidates = store.list(source)
    finished = [c for c in candidates if c.status is not CandidateStatus.OPEN
                and (candidate is None or c.id == candidate)]
    workspaces = {c.id: store.list_workspaces(c.id) for c in finished}
    refs = repo.refs("refs/revisor/")
    items = due_items(finished, workspaces, refs, config.retention, now)
    if not items:
        return CleanupResult(source, ())
    remote = backup_remote(config, source, env) if config.source(source).backup else None
    backups = BackupStore(db)
    versions = {p: Repository.hash_bytes(d) for p, d in export_records(db, source).items()}
    done = []
    for item in items:
        for ref in item.refs:
            _guard(ref, stored.target_branch)
        confirmed = backups.confirmed(source) if remote is not None else Confirmed()
        done.append(_one(stored, repo, db, item, refs, versions, remote, confirmed, policy,
                         fence))
    return CleanupResult(source, tuple(done))


def _one(
    stored: StoreSource,
    repo: Repository,
    db: Database,
    item: CleanupItem,
    refs: Mapping[str, ObjectId],
    versions: Mapping[str, ObjectId],
    remote: BackupRemote | None,
    confirmed: Confirmed,
    policy: NetworkPolicy,
    fence: Fence,
) -> CleanupItem:
    source = stored.name
    if remote is not None:
        unbacked = [r for r in item.refs if confirmed.refs.get(r) != refs[r]]
        unbacked += [p for p in item.records
                     if p in versions and confirmed.records.get(p) != versions[p]]
        if unbacked:
            return replace(item, verdict=Verdict.NOT_BACKED_UP,
                           detail=f"{len(unbacked)} not confirmed, e.g. {unbacked[0]}")
        try:
            _delete_on_backup(repo, source, db, item, remote, confirmed, policy, fence)
        except (RemoteUnavailable, RemoteRefConflict) as exc:
            return replace(item, verdict=Verdict.BACKUP_DOWN, detail=str(exc))
    fence(None)
    try:
        repo.update_refs([RefUpdate(r, None, refs[r]) for r in item.refs],
                         f"revisor: cleanup of candidate {item.candidate_id}")
    except RefConflict as exc:
        return replace(item, verdict=Verdict.MOVED, detail=str(exc))
    with db.session() as s:
        fence(s)
        ws = delete(WorkspaceRow).where(WorkspaceRow.candidate_id == item.candidate_id)
        s.execute(ws)
        if item.kind is ItemKind.CANDIDATE:
            s.execute(delete(CandidateRow).where(CandidateRow.id == item.candidate_id,
                                                 CandidateRow.source == source))
        AuditLog(db).record(
            ACTOR, f"cleanup.{item.kind.value}", source, candidate_ref(item.candidate_id),
            details={"candidate": item.candidate_id, "status": item.status.value,
                     "refs": list(item.refs)},
            session=s,
        )
    _remove_locks(stored.store.data_dir / "locks", item)
    return replace(item, verdict=Verdict.DELETED)


def _delete_on_backup(
    repo: Repository,
    source: str,
    db: Database,
    item: CleanupItem,
    remote: BackupRemote,
    confirmed: Confirmed,
    policy: NetworkPolicy,
    fence: Fence,
) -> None:
    """Delete the item's refs and records on the backup (one atomic push), then verify."""
    updates = [BackupUpdate(r, None, confirmed.refs[r]) for r in item.refs]
    meta = confirmed.status.meta_commit if confirmed.status is not None else None
    new_meta: ObjectId | None = None
    gone = [p for p in item.records if p in confirmed.records]
    if gone and meta is not None and confirmed.refs.get(META_REF) == meta:
        builder = repo.builder(meta)
        for path in gone:
            if builder.exists(path):
                builder.delete(path)
        new_meta = create_commit(repo, builder.tree(), (),
                                 "revisor: candidate and workspace records\n",
                                 _META_AUTHOR, _META_AUTHOR)
        if new_meta != meta:
            updates.append(BackupUpdate(META_REF, new_meta, meta))
    if not updates:
        return
    fence(None)
    retry(lambda: push_updates(repo, remote, policy, updates), policy)
    seen = retry(lambda: list_backup(repo, remote, policy), policy)
    for u in updates:
        if seen.get(u.ref) != u.new:
            raise RemoteRefConflict(u.ref, u.new, seen.get(u.ref))
    ref_changes: dict[str, ObjectId | None] = {r: None for r in item.refs}
    if new_meta is not None:
        ref_changes[META_REF] = new_meta
        if repo.ref(META_REF) == meta:  # the local copy follows (the next backup builds on it)
            with contextlib.suppress(RefConflict):
                repo.set_ref(META_REF, new_meta, expected=meta)
    BackupStore(db).forget(source, refs=ref_changes,
                           records=dict.fromkeys(item.records),
                           meta_commit=new_meta, fence=fence)


def _remove_locks(root: Path, item: CleanupItem) -> None:
    """The item's lock files, each only if nobody holds it (cached data, nothing else)."""
    paths = sorted((root / "workspaces" / str(item.candidate_id)).glob("*.lock"))
    if item.kind is ItemKind.CANDIDATE:
        paths.append(root / "candidates" / f"{item.candidate_id}.lock")
    for path in paths:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink(missing_ok=True)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        finally:
            os.close(fd)
    with contextlib.suppress(OSError):
        (root / "workspaces" / str(item.candidate_id)).rmdir()
