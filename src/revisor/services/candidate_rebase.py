"""Candidate ↔ target: finding conflicts with the moved target, and following it.

Why this module exists: while users work in a candidate, its target branch moves. The first level
of conflict (DESIGN, glossary) is between a candidate and its target, and seed 001's platform
refreshed every candidate onto its target on a schedule. Here, on demand (and by the jobs):

- :func:`check` merges the candidate into the target's current head in memory and records
  whether that conflicts, and where; nothing moves.
- :func:`rebase` brings the candidate onto the target's current head by its strategy —
  ``rebase``: the candidate's commits (everything ``git rebase`` would take) replayed onto the
  target, each with ``merge(current, commit, base=its parent)``; ``merge``: a merge commit of the
  target into the candidate; either way a fast-forward when the candidate has nothing of its own.
  Clean: the candidate ref moves by compare-and-swap and its base becomes the target's head.
  Conflicting: nothing moves, the candidate keeps its base, ``has_conflicts`` is set and the
  conflicting paths are listed.

A rebase replaces the candidate's commits; the old → new mapping is kept (``rewrites``) for the
workspaces whose base was one of the old commits, so their next sync knows where they stand.
"""

from __future__ import annotations

from revisor.db.audit import actor_of
from revisor.db.candidates import Candidate, CandidateStrategy
from revisor.db.models import utcnow
from revisor.services.candidate_git import compose_rewrites, replay
from revisor.services.candidate_support import CandidateContext
from revisor.services.candidate_types import RebaseResult
from revisor.vcs import ObjectId, Signature, create_commit

__all__ = ["check", "rebase"]


def _target_head(ctx: CandidateContext, cand: Candidate) -> ObjectId:
    return ctx.source.resolve(f"refs/heads/{cand.target_branch}", fresh=True)


def check(ctx: CandidateContext, candidate_id: int) -> Candidate:
    """Record whether the candidate merges cleanly into its target's current head."""
    with ctx.locks.candidate(candidate_id):
        cand = ctx.candidate(candidate_id)
        ctx.require_open(cand, "check")
        target = _target_head(ctx, cand)
        merged = ctx.repo.merge(target, cand.head_commit)
        with ctx.db.session() as s:
            ctx.store.update(
                cand.source, cand.id, has_conflicts=not merged.clean,
                conflicts=merged.conflicts, target_checked=target, session=s,
            )
            ctx.audit.record(
                actor_of(ctx.identity), "candidate.check", cand.source, cand.ref,
                details={"candidate": cand.id, "target": target,
                         "conflicts": list(merged.conflicts)},
                session=s,
            )
    return ctx.candidate(cand.id)


def rebase(ctx: CandidateContext, candidate_id: int, actor: Signature) -> RebaseResult:
    """See the module docstring."""
    repo = ctx.repo
    with ctx.locks.candidate(candidate_id):
        cand = ctx.candidate(candidate_id)
        ctx.require_open(cand, "rebase")
        target, head = _target_head(ctx, cand), cand.head_commit
        now = utcnow()
        if repo.is_ancestor(target, head):  # the target has nothing the candidate lacks
            ctx.store.update(
                cand.source, cand.id, base_commit=target, has_conflicts=False, conflicts=(),
                target_checked=target, last_synced_at=now,
            )
            return RebaseResult(ctx.candidate(cand.id), False)
        committer = ctx.committer()
        rewrites: dict[ObjectId, ObjectId] = {}
        if repo.is_ancestor(head, target):  # nothing of its own yet: fast-forward
            new = target
        elif cand.strategy is CandidateStrategy.REBASE:
            replayed = replay(repo, target, head, committer)
            if not replayed.clean:
                return _conflicting(ctx, cand, target, actor, replayed.conflicts)
            new, rewrites = replayed.head, replayed.rewrites
        else:
            merged = repo.merge(head, target)
            if not merged.clean:
                return _conflicting(ctx, cand, target, actor, merged.conflicts)
            message = f"Merge {cand.target_branch} into candidate {cand.name}\n"
            new = create_commit(repo, merged.tree, [head, target], message,
                                Signature.now(actor.name, actor.email), committer)
        repo.set_ref(cand.ref, new, expected=head)
        # the bases workspaces remember — and the old head, which a workspace made while this
        # rebase ran may have started from
        keep = {w.base_commit for w in ctx.store.list_workspaces(cand.id)} | {head}
        with ctx.db.session() as s:
            ctx.store.update(
                cand.source, cand.id, head_commit=new, base_commit=target, has_conflicts=False,
                conflicts=(), target_checked=target, last_synced_at=now,
                rewrites=compose_rewrites(cand.rewrites, rewrites, keep), session=s,
            )
            ctx.audit.record(
                actor_of(actor), "candidate.rebase", cand.source, cand.ref, before=head,
                after=new,
                details={"candidate": cand.id, "strategy": cand.strategy.value,
                         "target": target, "moved": True},
                session=s,
            )
        return RebaseResult(ctx.candidate(cand.id), True)


def _conflicting(
    ctx: CandidateContext, cand: Candidate, target: ObjectId, actor: Signature,
    step_conflicts: tuple[str, ...],
) -> RebaseResult:
    """Nothing moves; record the conflict. The paths listed are those of merging the candidate
    into the target, or — when that merge alone is clean but a replayed commit is not — that
    commit's."""
    overall = ctx.repo.merge(target, cand.head_commit)
    paths = overall.conflicts if not overall.clean else step_conflicts
    with ctx.db.session() as s:
        ctx.store.update(cand.source, cand.id, has_conflicts=True, conflicts=paths,
                         target_checked=target, session=s)
        ctx.audit.record(
            actor_of(actor), "candidate.rebase", cand.source, cand.ref,
            before=cand.head_commit,
            details={"candidate": cand.id, "strategy": cand.strategy.value, "target": target,
                     "moved": False, "conflicts": list(paths)},
            session=s,
        )
    return RebaseResult(ctx.candidate(cand.id), False, tuple(paths))
