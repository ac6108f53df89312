"""Candidate and workspace rows that lag their refs, put right: the refs are the truth.

Why this module exists: a save, a publish, a sync, a resolution or a rebase moves a ref by
compare-and-swap and THEN writes the row that mirrors it (``head_commit`` and what follows from
the move: a workspace's base and conflicts, a candidate's base) — two stores that cannot commit
together (DESIGN principle 7). A process killed between the two steps, or a database write that
failed after the ref moved, leaves the row behind its ref. Services read refs, so their answers
stay right, but raw rows, listings built from rows and the records a backup exports would lag
forever. :func:`reconcile` finds every such row of a source — one ref listing and one query —
and brings it to its ref, deriving the other fields the way the step that moved the ref would
have written them, and audits each repair (``candidate.reconcile``, ``workspace.reconcile``). It
runs on every recovery (:meth:`Source.recover <revisor.services.sources.Source.recover>`: each
start, and each refresh job).

What the ref's history says about the move, for a workspace: the first-parent commits from the
ref back to the row's head are saves (only ``head_commit`` changes), unless one of them is a
candidate commit (the workspace followed a publish, or a sync fast-forwarded it) or a merge whose
second parent is one (a sync's or a resolution's merge): then the workspace is in sync with that
candidate commit (``base_commit``; no unpublished base of its own; when it is the candidate's
head, nothing conflicts any more — otherwise the conflicts stay for the next sync to recompute).
For a candidate: ``head_commit``; and when the ref took commits of the target branch (a rebase or
a target merge), ``base_commit`` and ``target_checked`` become the newest target commit in its
history, without conflicts; and when its commits were replaced (a replaying rebase), the
``rewrites`` old → new are found again by author and message, as the replay kept them.

Safe against live writers: a candidate or workspace whose lock is held is skipped (its holder
writes the row), and each row is updated only if it still holds the value read (a save, which
takes no lock, may write the row meanwhile): a later run finds what is left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import select

from revisor.core.refnames import CANDIDATES_PREFIX, candidate_ref, workspace_prefix
from revisor.db.models import CandidateRow, WorkspaceRow, utcnow
from revisor.errors import RevisorError
from revisor.services.candidate_git import compose_rewrites, first_parent_chain
from revisor.services.candidate_support import CandidateContext, Locks
from revisor.vcs import ObjectId, Repository, Signature, commits_to_replay

__all__ = ["Reconciled", "reconcile", "reconcile_candidate", "reconcile_workspace"]

log = logging.getLogger(__name__)

ACTOR = "revisor"


@dataclass(frozen=True)
class Reconciled:
    """One row brought to its ref. ``user`` None: the candidate's own row. ``synced_to``: the
    candidate commit a workspace is now recorded in sync with (None: its base did not change);
    for a candidate, the target commit it is now based on (None: unchanged)."""

    candidate_id: int
    user: str | None
    before: ObjectId
    after: ObjectId
    synced_to: ObjectId | None = None


def reconcile(ctx: CandidateContext) -> list[Reconciled]:
    """Bring every candidate and workspace row of the source to its ref (see the module
    docstring); return what was repaired. Rows whose ref is absent (a closed candidate's refs
    cleaned up) are left: there the row is the answer."""
    mirror = ctx.source.mirror
    if mirror is not None and not mirror.exists:
        return []  # not fetched yet: no ref to lag behind (and no clone just for this)
    name = ctx.source.name
    with ctx.db.session(write=False) as s:
        cands = s.execute(
            select(CandidateRow.id, CandidateRow.head_commit).where(CandidateRow.source == name)
        ).all()
        wss = s.execute(
            select(WorkspaceRow.candidate_id, WorkspaceRow.user_name, WorkspaceRow.ref_name,
                   WorkspaceRow.head_commit)
            .join(CandidateRow, CandidateRow.id == WorkspaceRow.candidate_id)
            .where(CandidateRow.source == name)
        ).all()
    if not cands:
        return []
    refs = ctx.repo.refs("refs/revisor/")
    done: list[Reconciled] = []
    for cid, head in cands:  # candidates first: a workspace's repair reads its candidate
        ref = refs.get(f"{CANDIDATES_PREFIX}{cid}")
        if ref is not None and ref != head:
            _collect(done, partial(reconcile_candidate, ctx, cid))
    for cid, user, ref_name, head in wss:
        ref = refs.get(workspace_prefix(cid) + ref_name)
        if ref is not None and ref != head:
            _collect(done, partial(reconcile_workspace, ctx, cid, user))
    return done


def _collect(done: list[Reconciled], fn: Callable[[], Reconciled | None]) -> None:
    try:
        found = fn()
    except RevisorError as exc:  # busy, gone meanwhile, history not here: a later run looks
        log.warning("reconciliation postponed: %s", exc)
        return
    if found is not None:
        done.append(found)


def _nowait(ctx: CandidateContext) -> Locks:
    return Locks(ctx.locks.root, timeout=0)


def reconcile_candidate(ctx: CandidateContext, candidate_id: int) -> Reconciled | None:
    """Bring one candidate's row to its ref; None if it agrees already (or the ref is absent).
    Unavailable if its lock is held (whoever holds it writes the row)."""
    repo = ctx.repo
    with _nowait(ctx).candidate(candidate_id):
        ref = repo.ref(candidate_ref(candidate_id))
        cand = ctx.store.get(ctx.source.name, candidate_id)
        if ref is None or ref == cand.head_commit:
            return None
        fields: dict[str, Any] = {"head_commit": ref}
        target = repo.ref(f"refs/heads/{cand.target_branch}")
        based = repo.merge_base(ref, target) if target is not None else None
        took_target = (
            based is not None and based != cand.base_commit
            and repo.is_ancestor(cand.base_commit, based)
        )
        if took_target:
            assert based is not None
            fields.update(base_commit=based, target_checked=based, has_conflicts=False,
                          conflicts=(), last_synced_at=utcnow())
            if not repo.is_ancestor(cand.head_commit, ref):  # replayed: its commits replaced
                keep = {w.base_commit for w in ctx.store.list_workspaces(candidate_id)}
                fields["rewrites"] = compose_rewrites(
                    cand.rewrites, _replayed(repo, cand.head_commit, based, ref),
                    keep | {cand.head_commit},
                )
        with ctx.db.session() as s:
            row = s.execute(
                select(CandidateRow.head_commit).where(CandidateRow.id == candidate_id)
                .with_for_update()
            ).scalar_one()
            if row != cand.head_commit:
                return None  # written meanwhile: a later run looks again
            ctx.store.update(ctx.source.name, candidate_id, session=s, **fields)
            ctx.audit.record(
                ACTOR, "candidate.reconcile", ctx.source.name, cand.ref,
                before=cand.head_commit, after=ref,
                details={"candidate": candidate_id, "base": based if took_target else None},
                session=s,
            )
    log.warning("candidate %d: row caught up with its ref (%s -> %s)", candidate_id,
                cand.head_commit[:12], ref[:12])
    return Reconciled(candidate_id, None, cand.head_commit, ref, based if took_target else None)


def reconcile_workspace(ctx: CandidateContext, candidate_id: int, user: str) -> Reconciled | None:
    """Bring one workspace's row to its ref; None if it agrees already (or the ref is absent).
    Unavailable if its lock is held (a publish, sync or resolution under way writes the row)."""
    repo = ctx.repo
    with _nowait(ctx).workspace(candidate_id, user):
        rec = ctx.store.get_workspace(candidate_id, user)
        ref = repo.ref(rec.ref)
        if ref is None or ref == rec.head_commit:
            return None
        cand = ctx.store.get(ctx.source.name, candidate_id)
        cand_head = repo.ref(cand.ref) or cand.head_commit
        synced_to = _synced_to(ctx, ref, rec.head_commit, cand_head)
        if synced_to is not None and (
            synced_to == rec.base_commit or repo.is_ancestor(synced_to, rec.base_commit)
        ):
            synced_to = None  # nothing newer than what the row says
        fields: dict[str, object] = {"head_commit": ref}
        if synced_to is not None:
            fields.update(base_commit=synced_to, changes_base=None, last_synced_at=utcnow())
            if synced_to == cand_head:
                fields.update(conflicts=(), resolutions={})
        with ctx.db.session() as s:
            row = s.execute(
                select(WorkspaceRow.head_commit).where(WorkspaceRow.id == rec.id)
                .with_for_update()
            ).scalar_one()
            if row != rec.head_commit:
                return None  # a save wrote it meanwhile
            ctx.store.update_workspace(candidate_id, user, session=s, **fields)
            ctx.audit.record(
                ACTOR, "workspace.reconcile", ctx.source.name, rec.ref,
                before=rec.head_commit, after=ref,
                details={"candidate": candidate_id, "user": user, "synced_to": synced_to},
                session=s,
            )
    log.warning("workspace %d/%s: row caught up with its ref (%s -> %s)", candidate_id, user,
                rec.head_commit[:12], ref[:12])
    return Reconciled(candidate_id, user, rec.head_commit, ref, synced_to)


def _replayed(
    repo: Repository, old_head: ObjectId, onto: ObjectId, new_head: ObjectId
) -> dict[ObjectId, ObjectId]:
    """The rewrites a replaying rebase of ``old_head`` onto ``onto`` that made ``new_head``
    recorded (see ``candidate_git.replay``), found again: each replayed commit keeps its author
    and message, so an old commit maps to the new one with the same, a commit that became empty
    or a merge to the one before it, and the commit where the old line met the target's history
    to ``onto``."""
    made: dict[tuple[Signature, str], ObjectId] = {}
    for oid in commits_to_replay(repo, onto, new_head):
        c = repo.changeset(oid)
        made.setdefault((c.author, c.message), oid)
    chain, _ = first_parent_chain(repo, old_head, onto)
    rewrites: dict[ObjectId, ObjectId] = {}
    if chain:
        last = repo.changeset(chain[-1]).parents
        if last:
            rewrites[last[0]] = onto
    previous = onto
    for oid in reversed(chain):
        c = repo.changeset(oid)
        if len(c.parents) < 2:
            previous = made.get((c.author, c.message), previous)
        rewrites[oid] = previous
    return rewrites


def _synced_to(
    ctx: CandidateContext, ref: ObjectId, row_head: ObjectId, cand_head: ObjectId
) -> ObjectId | None:
    """The newest candidate commit the workspace took between the row's head and its ref: one
    its first-parent line reaches (a publish followed, a fast-forward sync), or the second
    parent of a merge on it (a sync's or a resolution's merge); None: only saves."""
    repo = ctx.repo
    chain, _ = first_parent_chain(repo, ref, row_head)
    for commit in chain:  # newest first
        if repo.is_ancestor(commit, cand_head):
            return commit
        parents = repo.changeset(commit).parents
        if len(parents) > 1 and repo.is_ancestor(parents[1], cand_head):
            return parents[1]
    return None
