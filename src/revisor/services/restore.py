"""Rebuild a lost store and database for one source from its backup remote alone.

Why this module exists: the backup (``revisor.services.backup``) is only worth what a restore
makes of it. ``revisor restore SOURCE --from-backup`` works into an empty data directory:

1. the source's repository is opened — a mirror is fetched afresh from the source's URL, as the
   store does on first use (a ``local`` source is used in place);
2. the backup's ``refs/revisor/*`` (the metadata ref included) are fetched into a private
   staging namespace of that repository, so nothing visible changes before the checks pass;
3. the metadata commit's records are compared with the database: none for this source → they
   are inserted with their ids; exactly the same → nothing to do (a restore is idempotent);
   different → refused with :class:`~revisor.errors.Conflict` unless ``force``, which replaces
   the source's candidate and workspace rows by the backup's;
4. the staged refs are moved into ``refs/revisor/*`` in one compare-and-swap, the rows inserted
   in one transaction, the staging refs removed, and the confirmations recorded (the backup
   holds exactly what was restored, so cleanup can work right away).

Only the refs the records account for come back: a candidate's ref and its squashed form
(``refs/revisor/proposals/<id>``) with its candidate record, a workspace's ref with its workspace
record, the metadata ref, and anything outside those namespaces. The backup never deletes a ref
it holds unless cleanup decides to (a lost mirror must not empty the backup), so a ref deleted
here by anything else stays there; without its record it is an orphan, and is left behind.

The caller holds the source's backup lease (``backup:<source>``, taken by ``revisor restore``)
so that no backup or cleanup of the source runs meanwhile; ``fence`` checks it before the refs
move and inside the transaction that writes the rows and the confirmations.

A restore killed half-way is run again: the refs CAS onto what is there, the rows are compared
again. Refs first, rows second: a row never names a ref that is not there.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import delete, select

from revisor.config import Config
from revisor.core.refnames import CANDIDATES_PREFIX, WORKSPACES_PREFIX
from revisor.db.backups import (
    BackupStore,
    Fence,
    export_records,
    import_records,
    no_fence,
    record_path,
)
from revisor.db.database import Database
from revisor.db.models import CandidateRow, WorkspaceRow
from revisor.errors import Conflict, NotFound
from revisor.services.backup import META_REF, REVISOR_PREFIX, BackupRemote, backup_remote
from revisor.store.store import Store
from revisor.store.transport import NetworkPolicy, retry, run_remote
from revisor.vcs import ObjectId, RefUpdate, Repository

__all__ = ["RestoreProgress", "RestoreResult", "restore_source"]

RestoreProgress = Callable[[str, int, int], None]
"""(phase, done, total): "mirror" and "fetch" (git's own meters), "records", "refs"."""

_STAGING = "refs/revisor-restore/"
_PROPOSALS_PREFIX = "refs/revisor/proposals/"


@dataclass(frozen=True)
class RestoreResult:
    """What a restore found on the backup and what it changed here."""

    source: str
    url: str  # the backup's, redacted
    meta_commit: ObjectId
    refs: int  # refs/revisor/* restored (the metadata ref included)
    orphans: int  # refs the backup holds without a record (deleted here before): not restored
    refs_changed: int  # of which moved or created here
    candidates: int
    workspaces: int
    rows_written: bool  # False: the database already held exactly these records
    replaced: bool  # True: different records were replaced (``force``)
    seconds: float


def restore_source(
    config: Config,
    source: str,
    *,
    store: Store,
    db: Database,
    env: Mapping[str, str],
    force: bool = False,
    progress: RestoreProgress | None = None,
    fence: Fence = no_fence,
) -> RestoreResult:
    """Restore ``source``'s refs and candidate/workspace rows from its backup remote."""
    start = time.perf_counter()
    report = progress or (lambda phase, done, total: None)
    remote = backup_remote(config, source, env)
    stored = store.source(source)
    policy = store.policy
    if stored.mirror is not None and not stored.mirror.exists:
        stored.refresh(progress=lambda phase, done, total: report("mirror", done, total))
    repo = stored.repository

    staging = f"{_STAGING}{os.getpid()}-{uuid.uuid4().hex[:8]}/"
    try:
        fetched = _fetch(repo, remote, policy, staging, report)
        meta = fetched.get(META_REF)
        if meta is None:
            raise NotFound(
                f"the backup {remote.display} holds no {META_REF}",
                hint="run a backup first (revisor jobs run backup --source ...)",
            )
        records = {p: repo.file(meta, p).data for p in repo.files(meta)}
        staged = {r: sha for r, sha in fetched.items() if _accounted_for(r, records)}
        report("records", 0, len(records))
        current = export_records(db, source)
        same = current == records
        if current and not same and not force:
            raise Conflict(
                f"the database already holds other candidate and workspace records for "
                f"source {source!r} than the backup",
                hint="restore with --force to replace them by the backup's",
            )

        # refs first, in one compare-and-swap
        here = repo.refs(REVISOR_PREFIX)
        updates = [RefUpdate(ref, sha, here.get(ref)) for ref, sha in staged.items()
                   if here.get(ref) != sha]
        report("refs", 0, len(staged))
        if updates:
            fence(None)
            repo.update_refs(updates, "revisor: restore from backup")
        report("refs", len(staged), len(staged))

        candidates = sum(1 for p in records if p.startswith("candidates/"))
        workspaces = len(records) - candidates
        if not same:
            with db.session() as s:
                fence(s)
                if current:
                    ids = select(CandidateRow.id).where(CandidateRow.source == source)
                    s.execute(delete(WorkspaceRow).where(WorkspaceRow.candidate_id.in_(ids)))
                    s.execute(delete(CandidateRow).where(CandidateRow.source == source))
                import_records(s, source, records)
        report("records", len(records), len(records))

        BackupStore(db).confirm(
            source, remote.display,
            refs=dict(fetched),  # what the backup holds, orphans too
            records={p: Repository.hash_bytes(d) for p, d in records.items()},
            meta_commit=meta, fence=fence,
        )
        return RestoreResult(
            source=source, url=remote.display, meta_commit=meta, refs=len(staged),
            orphans=len(fetched) - len(staged), refs_changed=len(updates),
            candidates=candidates, workspaces=workspaces,
            rows_written=not same, replaced=bool(current) and not same,
            seconds=time.perf_counter() - start,
        )
    finally:
        leftovers = repo.refs(staging)
        if leftovers:
            repo.update_refs([RefUpdate(r, None, sha) for r, sha in leftovers.items()])


def _accounted_for(ref: str, records: Mapping[str, bytes]) -> bool:
    """Whether the restored records account for ``ref`` (see the module docstring)."""
    for prefix in (CANDIDATES_PREFIX, _PROPOSALS_PREFIX):
        if ref.startswith(prefix):
            number = ref[len(prefix):]
            return number.isdigit() and record_path(int(number)) in records
    if ref.startswith(WORKSPACES_PREFIX):
        number, _, component = ref[len(WORKSPACES_PREFIX):].partition("/")
        return number.isdigit() and record_path(int(number), component) in records
    return True


def _fetch(
    repo: Repository,
    remote: BackupRemote,
    policy: NetworkPolicy,
    staging: str,
    report: RestoreProgress,
) -> dict[str, ObjectId]:
    """Fetch the backup's refs/revisor/* under ``staging``; their names as on the backup."""
    args = ["fetch", "--no-tags", "--no-write-fetch-head", "--end-of-options", remote.url,
            f"+{REVISOR_PREFIX}*:{staging}*"]

    def attempt() -> None:
        run_remote(repo.git_dir, args, auth=remote.auth, policy=policy,
                   what=f"fetch {remote.display}",
                   progress=lambda phase, done, total: report("fetch", done, total))

    retry(attempt, policy)
    return {REVISOR_PREFIX + r.removeprefix(staging): sha
            for r, sha in repo.refs(staging).items()}
