"""Ending a candidate: submitting it onto its target through the source's provider, or
abandoning it.

Why this module exists: submitting is where a candidate leaves Revisor, and it must land as ONE
commit on the target (seed 001's squash flow) without ever forcing anything:

1. the target's head is resolved fresh and merged with the candidate (git's merge-ort); a
   conflict is :class:`~revisor.providers.base.MergeConflict`, recorded on the candidate;
2. one commit is written on the target's head with that merged tree, authored by the
   candidate's author, its message the candidate's title, a blank line, its description and a
   ``Co-authored-by: Name <email>`` trailer for every other author of the candidate's commits;
3. it is proposed through the source's provider from the branch ``revisor/candidate-<id>``
   (pushed with a lease first, except for Gerrit, whose provider uploads the commit itself and
   derives the change's Change-Id from that branch name — so a candidate keeps one change, one
   Change-Id, across every submission attempt). Submitting again updates the same proposal;
4. if the target moved since step 1 the submission stops with
   :class:`~revisor.errors.StaleBase` (submit again); otherwise the provider merges it as a
   fast-forward (``rebase`` method: the squashed commit already sits on the target's head; if
   the target moves in the last instant, the provider replays that single commit or refuses) and
   its push carries a lease, so a target moved meanwhile is a conflict, never overwritten;
5. the candidate becomes ``submitted`` with the commit that landed.

A submission interrupted after the provider merged is completed by the next call (the proposal
is found merged). Submitting a submitted candidate returns it unchanged; an abandoned one is
:class:`~revisor.errors.InvalidState`.
"""

from __future__ import annotations

import logging

from revisor.db.audit import actor_of
from revisor.db.candidates import Candidate, CandidateStatus
from revisor.errors import InvalidState, NotFound, RefConflict, RemoteRefConflict, StaleBase
from revisor.providers.base import (
    MergeConflict,
    MergeMethod,
    Proposal,
    ProposalRequest,
    ProposalStatus,
)
from revisor.services.candidate_git import co_authors, squash_message
from revisor.services.candidate_support import CandidateContext
from revisor.store.mirror import PushUpdate
from revisor.vcs import ObjectId, Signature, create_commit

__all__ = ["abandon", "branch_of", "submit"]

log = logging.getLogger(__name__)

NO_BRANCH_PROVIDERS = frozenset({"gerrit"})
"""Providers that take the commit itself (``refs/for/…``), not a pushed branch."""


def branch_of(candidate_id: int) -> str:
    """The branch a candidate is proposed from: ``revisor/candidate-<id>``."""
    return f"revisor/candidate-{candidate_id}"


def _record_submitted(
    ctx: CandidateContext, cand: Candidate, proposal: Proposal, actor: Signature
) -> Candidate:
    with ctx.db.session() as s:
        ctx.store.update(
            cand.source, cand.id, status=CandidateStatus.SUBMITTED,
            submitted_commit=proposal.merged_commit, proposal_provider=proposal.provider,
            proposal_number=proposal.number, proposal_url=proposal.url,
            change_id=proposal.external_id or cand.change_id, session=s,
        )
        ctx.audit.record(
            actor_of(actor), "candidate.submit", cand.source, cand.ref,
            before=cand.head_commit, after=proposal.merged_commit,
            details={"candidate": cand.id, "target": cand.target_branch,
                     "provider": proposal.provider, "proposal": proposal.number},
            session=s,
        )
    return ctx.candidate(cand.id)


def _push_branch(ctx: CandidateContext, branch: str, commit: ObjectId) -> None:
    """Point ``branch`` on the remote at ``commit``, with a lease on what this mirror last saw;
    when that is out of date, once more with what the remote holds (the branch is Revisor's)."""
    ref = f"refs/heads/{branch}"
    expected = ctx.repo.ref(ref)
    if expected == commit:
        return
    try:
        ctx.source.push([PushUpdate(ref, commit, expected)])
    except (RefConflict, RemoteRefConflict) as exc:
        if exc.actual == commit:
            return
        actual = ObjectId(exc.actual) if exc.actual is not None else None
        ctx.source.push([PushUpdate(ref, commit, actual)])


def _delete_branch(ctx: CandidateContext, branch: str, commit: ObjectId) -> None:
    ref = f"refs/heads/{branch}"
    try:
        if ctx.repo.ref(ref) == commit:
            ctx.source.push([PushUpdate(ref, None, commit)])
    except Exception as exc:  # best effort: a leftover branch is the cleanup job's
        log.warning("could not delete %s after submitting: %s", branch, exc)


def submit(ctx: CandidateContext, candidate_id: int, actor: Signature) -> Candidate:
    """See the module docstring."""
    repo = ctx.repo
    with ctx.locks.candidate(candidate_id):
        cand = ctx.candidate(candidate_id)
        if cand.status is CandidateStatus.SUBMITTED:
            return cand
        ctx.require_open(cand, "submit")
        provider = ctx.provider()
        if cand.proposal is not None and cand.proposal.provider == provider.name:
            try:
                earlier = provider.get(cand.proposal.number)
            except NotFound:
                earlier = None
            if earlier is not None and earlier.status is ProposalStatus.MERGED:
                return _record_submitted(ctx, cand, earlier, actor)  # merged, not yet recorded
        target_ref = f"refs/heads/{cand.target_branch}"
        target = ctx.source.resolve(target_ref, fresh=True)
        head = cand.head_commit
        merged = repo.merge(target, head)
        if not merged.clean:
            ctx.store.update(cand.source, cand.id, has_conflicts=True,
                             conflicts=merged.conflicts, target_checked=target)
            raise MergeConflict(f"candidate {cand.name!r} conflicts with {cand.target_branch}",
                                merged.conflicts)
        if merged.tree == repo.changeset(target).tree:
            raise InvalidState(
                f"candidate {cand.name!r}", "empty", "submit",
                hint=f"its changes are all in {cand.target_branch} already; abandon it",
            )
        author = Signature.now(cand.author_name, cand.author_email)
        others = co_authors(repo, target, head, exclude={cand.author_email, ctx.identity.email})
        message = squash_message(cand.title, cand.description, others)
        squashed = create_commit(repo, merged.tree, [target], message, author, ctx.committer())
        branch = branch_of(cand.id)
        if provider.name not in NO_BRANCH_PROVIDERS:
            _push_branch(ctx, branch, squashed)
        # The proposal says what the commit says (its body carries the trailers), so providers
        # that compose the landed message from the proposal keep the co-authors too.
        body = message.partition("\n\n")[2].strip()
        proposal = provider.open(ProposalRequest(
            title=cand.title, description=body, author=author,
            source_branch=branch, source_commit=squashed, target_branch=cand.target_branch,
        ))
        with ctx.db.session() as s:
            ctx.store.update(
                cand.source, cand.id, proposal_provider=proposal.provider,
                proposal_number=proposal.number, proposal_url=proposal.url,
                change_id=proposal.external_id or cand.change_id, has_conflicts=False,
                conflicts=(), target_checked=target, session=s,
            )
            ctx.audit.record(
                actor_of(actor), "candidate.propose", cand.source, cand.ref, before=head,
                after=squashed,
                details={"candidate": cand.id, "provider": proposal.provider,
                         "proposal": proposal.number, "branch": branch},
                session=s,
            )
        now = repo.ref(target_ref)
        if now != target:
            raise StaleBase(target_ref, target, now)
        landed = provider.merge(proposal.number, MergeMethod.REBASE, actor)
        done = _record_submitted(ctx, cand, landed, actor)
        if provider.name not in NO_BRANCH_PROVIDERS:
            _delete_branch(ctx, branch, squashed)
        return done


def abandon(ctx: CandidateContext, candidate_id: int, actor: Signature) -> Candidate:
    """Mark the candidate abandoned and close its open proposal (best effort)."""
    with ctx.locks.candidate(candidate_id):
        cand = ctx.candidate(candidate_id)
        if cand.status is CandidateStatus.ABANDONED:
            return cand
        with ctx.db.session() as s:
            ctx.store.update(cand.source, cand.id, require={CandidateStatus.OPEN},
                             action="abandon", status=CandidateStatus.ABANDONED, session=s)
            ctx.audit.record(
                actor_of(actor), "candidate.abandon", cand.source, cand.ref,
                before=CandidateStatus.OPEN.value, after=CandidateStatus.ABANDONED.value,
                details={"candidate": cand.id, "head": cand.head_commit}, session=s,
            )
        if cand.proposal is not None:
            try:
                provider = ctx.provider()
                if provider.name == cand.proposal.provider:
                    p = provider.get(cand.proposal.number)
                    if p.status is ProposalStatus.OPEN:
                        provider.close(p.number, actor)
            except Exception as exc:
                log.warning("candidate %s: could not close proposal #%s: %s", cand.id,
                            cand.proposal.number, exc)
        return ctx.candidate(cand.id)
