"""The ``squash`` job: keep every open candidate's one-commit form, and its proposal, current.

Why this module exists: seed 001's squash job. A candidate accumulates many commits; what is
reviewed is ONE commit on top of the target (the candidate's merged tree, its title and
description as the message, ``Co-authored-by`` trailers — ``squash_message``, exactly what
submit lands). For every open candidate whose head or target moved since its last squash this job

1. merges the candidate into the target's head (git's merge-ort). A conflict is recorded on the
   candidate (``has_conflicts``) and nothing else moves;
2. writes the squashed commit and moves ``refs/revisor/proposals/<id>`` to it by
   compare-and-swap (expecting the value read under the lease, checked right before). The same
   tree, parent and message as the current one → the commit is kept: running twice changes
   nothing, and the message (and so Gerrit's Change-Id, derived from the proposal branch) is
   stable;
3. if the candidate has an open proposal (it was submitted and the proposal is still open —
   e.g. the target moved before it could land, or the host reviews first), force-pushes the
   proposal branch ``revisor/candidate-<id>`` WITH A LEASE (the value this mirror last saw) —
   the only force-push Revisor ever makes, and only to its own proposal branch — and updates
   the proposal through the source's provider (Gerrit: a new patch set of the same change).
   A candidate without a proposal gets only its local ``refs/revisor/proposals/<id>``: nothing
   is published for a candidate nobody submitted.

It holds ``candidate:<source>:<id>`` (the key sync takes) and remembers (target head, candidate
head) so the next run skips what has not moved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from revisor.core.refnames import CANDIDATES_PREFIX
from revisor.db.candidates import CandidateStatus, CandidateStore
from revisor.errors import NotFound
from revisor.faults import checkpoint
from revisor.jobs.base import Job, JobContext, JobName, Target, TargetOutcome, register
from revisor.jobs.memo import Memos, fingerprint
from revisor.jobs.sync import _open_candidates
from revisor.providers.base import ProposalRequest, ProposalStatus
from revisor.services.candidate_git import co_authors, squash_message
from revisor.services.candidate_submit import NO_BRANCH_PROVIDERS, branch_of
from revisor.store.mirror import PushUpdate
from revisor.vcs import ObjectId, Repository, Signature, create_commit

if TYPE_CHECKING:
    from collections.abc import Sequence

    from revisor.bootstrap import Revisor
    from revisor.services.candidates import Candidates

__all__ = ["PROPOSALS_PREFIX", "SquashJob", "proposal_ref"]

PROPOSALS_PREFIX = "refs/revisor/proposals/"


def proposal_ref(candidate_id: int) -> str:
    """``refs/revisor/proposals/<id>``: the candidate's squashed one-commit form."""
    return f"{PROPOSALS_PREFIX}{candidate_id}"


def _memo(target: str | None, head: str | None, squashed: str | None) -> str:
    return fingerprint([target or "-", head or "-", squashed or "-"])


@register
class SquashJob(Job):
    name = JobName.SQUASH
    description = "rebuild each moved candidate's one-commit form and update its proposal"
    default_ttl = 300.0
    by_candidate = True

    def targets(
        self, rv: Revisor, *, source: str | None = None, candidate: int | None = None
    ) -> list[Target]:
        names = [source] if source is not None else rv.store.names()
        if candidate is not None:
            assert source is not None
            CandidateStore(rv.db).get(source, candidate)  # CandidateNotFound
            return [Target(source, candidate)]
        return [Target(src, cid) for src, cid in _open_candidates(rv, names)]

    def up_to_date(self, rv: Revisor, targets: Sequence[Target]) -> dict[Target, str]:
        sources = sorted({t.source for t in targets})
        branches = _open_candidates(rv, sources)
        memos = Memos(rv.db).all(self.name.value, "candidate:")
        out: dict[Target, str] = {}
        for name in sources:
            stored = rv.store.source(name)
            if stored.mirror is not None and not stored.mirror.exists:
                continue
            repo = stored.repository
            refs = repo.refs("refs/revisor/")
            heads: dict[str, str | None] = {}
            for t in targets:
                if t.source != name or t.candidate is None or t.key not in memos:
                    continue
                branch = branches.get((name, t.candidate))
                if branch is None:
                    continue
                if branch not in heads:
                    heads[branch] = repo.ref(f"refs/heads/{branch}")
                now = _memo(heads[branch], refs.get(f"{CANDIDATES_PREFIX}{t.candidate}"),
                            refs.get(proposal_ref(t.candidate)))
                if now == memos[t.key]:
                    out[t] = "nothing moved since the last squash"
        return out

    def run_target(self, ctx: JobContext, target: Target) -> TargetOutcome:
        assert target.candidate is not None
        cid = target.candidate
        cands = ctx.rv.source(target.source).candidates
        cctx = cands.ctx
        repo = cctx.repo
        cand = cands.get(cid)
        if cand.status is not CandidateStatus.OPEN:
            return TargetOutcome(False, f"the candidate is {cand.status.value}")
        target_ref = f"refs/heads/{cand.target_branch}"
        base = repo.ref(target_ref)
        if base is None:
            return TargetOutcome(False, f"no branch {cand.target_branch!r} on the source")
        head = cand.head_commit
        ref = proposal_ref(cid)
        existing = repo.ref(ref)
        merged = repo.merge(base, head)
        if not merged.clean:
            with ctx.fence() as s:
                cctx.store.update(cand.source, cid, has_conflicts=True,
                                  conflicts=merged.conflicts, target_checked=base, session=s)
                Memos(ctx.rv.db).put(self.name.value, target.key,
                                     _memo(base, head, existing), s)
            return TargetOutcome(False, "conflicts with the target: "
                                 + ", ".join(merged.conflicts[:5]),
                                 {"conflicts": list(merged.conflicts)})
        if merged.tree == repo.changeset(base).tree:
            with ctx.fence() as s:
                Memos(ctx.rv.db).put(self.name.value, target.key, _memo(base, head, existing), s)
            return TargetOutcome(False, "nothing to squash: the target has all of it")
        others = co_authors(repo, base, head, exclude={cand.author_email, cctx.identity.email})
        message = squash_message(cand.title, cand.description, others)
        squashed = self._squashed(ctx, repo, cid, existing, merged.tree, base, message,
                                  Signature.now(cand.author_name, cand.author_email))
        rebuilt = squashed != existing
        pushed, updated = self._propose(ctx, cands, cid, squashed, message)
        with ctx.fence() as s:
            Memos(ctx.rv.db).put(self.name.value, target.key, _memo(base, head, squashed), s)
        parts = [f"squashed to {squashed[:12]}" if rebuilt else "one-commit form current"]
        if pushed:
            parts.append(f"pushed {branch_of(cid)} with a lease")
        if updated is not None:
            parts.append(f"proposal #{updated} updated")
        return TargetOutcome(
            changed=rebuilt or pushed or updated is not None,
            summary="; ".join(parts),
            details={"commit": squashed, "ref": ref, "pushed": pushed,
                     "proposal": updated},
        )

    @staticmethod
    def _squashed(
        ctx: JobContext, repo: Repository, cid: int, existing: ObjectId | None, tree: ObjectId,
        base: ObjectId, message: str, author: Signature,
    ) -> ObjectId:
        """The squashed commit: the current one if it says the same, else a new one moved to
        by compare-and-swap under the fence."""
        if existing is not None:
            current = repo.changeset(existing)
            if current.tree == tree and current.parents == (base,) and current.message == message:
                return existing
        committer = Signature.now(ctx.rv.identity.name, ctx.rv.identity.email)
        squashed = create_commit(repo, tree, [base], message, author, committer)
        ctx.check()  # right before the CAS, which expects what was read under the lease
        repo.set_ref(proposal_ref(cid), squashed, expected=existing)
        return squashed

    @staticmethod
    def _propose(
        ctx: JobContext, cands: Candidates, cid: int, squashed: ObjectId, message: str
    ) -> tuple[bool, int | None]:
        """Update the candidate's open proposal, if it has one: (pushed?, proposal number)."""
        cand = cands.get(cid)
        if cand.proposal is None:
            return False, None
        provider = cands.ctx.provider()
        if provider.name != cand.proposal.provider:
            return False, None
        try:
            proposal = provider.get(cand.proposal.number)
        except NotFound:
            return False, None
        if proposal.status is not ProposalStatus.OPEN:
            return False, None
        if provider.proposes(proposal, squashed):
            return False, None
        branch = branch_of(cid)
        pushed = False
        if provider.name not in NO_BRANCH_PROVIDERS:
            ref = f"refs/heads/{branch}"
            expected = cands.ctx.repo.ref(ref)  # the lease: what this mirror last saw there
            if expected != squashed:
                checkpoint("job.squash.before_push")
                ctx.check()
                cands.ctx.source.push([PushUpdate(ref, squashed, expected)])
                pushed = True
        author = Signature.now(cand.author_name, cand.author_email)
        ctx.check()
        updated = provider.open(ProposalRequest(
            title=cand.title, description=message.partition("\n\n")[2].strip(), author=author,
            source_branch=branch, source_commit=squashed, target_branch=cand.target_branch,
        ))
        return pushed, updated.number
