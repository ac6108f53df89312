"""The ``sync`` job: every open candidate onto its moved target, every workspace up to date with
its candidate — recomputing only what moved since the last run.

Why this module exists: seed 001's sync job, made incremental. Per open candidate it

1. brings the candidate onto its target when the target moved (``Candidates.rebase``: by the
   candidate's strategy; a conflict moves nothing and is recorded on the candidate — and is not
   tried again until the target or the candidate moves);
2. syncs every workspace with the candidate (``Candidates.sync_workspaces``, the bulk pass of
   ``revisor.services.workspace_sync``: fully when clean, else up to the newest candidate commit
   it still merges with, conflicts recorded);
3. remembers what that result was computed from — a fingerprint of the target's head, the
   candidate's head and every workspace head, read *after* the work — under its fence.

The next run lists the open candidates (one query), the memos (one query) and the refs under
``refs/revisor/`` (one pass per source), and skips every candidate whose fingerprint is
unchanged: nothing is opened, merged or leased for it. Each candidate is done under
``candidate:<source>:<id>``, the key squash takes too, so the two never work on one candidate at
once. Every ref move inside is a compare-and-swap against what was read, so even work repeated
after a crash (the memo was not written) is safe: it finds everything already in place.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from sqlalchemy import select

from revisor.core.refnames import (
    CANDIDATES_PREFIX,
    WORKSPACES_PREFIX,
    candidate_ref,
    workspace_ref,
)
from revisor.db.candidates import CandidateStatus, CandidateStore
from revisor.db.models import CandidateRow
from revisor.faults import checkpoint
from revisor.jobs.base import Job, JobContext, JobName, Target, TargetOutcome, register
from revisor.jobs.memo import Memos, fingerprint

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from revisor.bootstrap import Revisor

__all__ = ["SyncJob", "sync_fingerprint"]


def sync_fingerprint(
    branch: str, target: str | None, candidate: str | None, workspaces: Mapping[str, str]
) -> str:
    """What a candidate's sync result depends on: its target's head, its head, its workspaces."""
    parts = [branch, target or "-", candidate or "-"]
    for ref in sorted(workspaces):
        parts += [ref, workspaces[ref]]
    return fingerprint(parts)


def _open_candidates(rv: Revisor, sources: Sequence[str]) -> dict[tuple[str, int], str]:
    """(source, id) → target branch of every open candidate of these sources: one query."""
    q = select(CandidateRow.source, CandidateRow.id, CandidateRow.target_branch).where(
        CandidateRow.source.in_(list(sources)), CandidateRow.status == CandidateStatus.OPEN
    ).order_by(CandidateRow.source, CandidateRow.id)
    with rv.db.session(write=False) as s:
        return {(src, cid): branch for src, cid, branch in s.execute(q).all()}


@register
class SyncJob(Job):
    name = JobName.SYNC
    description = "bring open candidates onto their moved targets and workspaces up to date"
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
        by_source: dict[str, list[Target]] = defaultdict(list)
        for t in targets:
            by_source[t.source].append(t)
        branches = _open_candidates(rv, list(by_source))
        memos = Memos(rv.db).all(self.name.value, "candidate:")
        out: dict[Target, str] = {}
        for name, group in by_source.items():
            stored = rv.store.source(name)
            if stored.mirror is not None and not stored.mirror.exists:
                continue  # never fetched: the work itself fetches
            repo = stored.repository
            refs = repo.refs("refs/revisor/")
            workspaces: dict[int, dict[str, str]] = defaultdict(dict)
            for ref, oid in refs.items():
                if ref.startswith(WORKSPACES_PREFIX):
                    number = ref[len(WORKSPACES_PREFIX):].partition("/")[0]
                    if number.isdigit():
                        workspaces[int(number)][ref] = oid
            heads: dict[str, str | None] = {}
            for t in group:
                assert t.candidate is not None
                branch = branches.get((name, t.candidate))
                remembered = memos.get(t.key)
                if branch is None or remembered is None:
                    continue
                if branch not in heads:
                    heads[branch] = repo.ref(f"refs/heads/{branch}")
                now = sync_fingerprint(branch, heads[branch],
                                       refs.get(f"{CANDIDATES_PREFIX}{t.candidate}"),
                                       workspaces.get(t.candidate, {}))
                if now == remembered:
                    out[t] = "nothing moved since the last sync"
        return out

    def run_target(self, ctx: JobContext, target: Target) -> TargetOutcome:
        assert target.candidate is not None
        cid = target.candidate
        cands = ctx.rv.source(target.source).candidates
        repo = cands.ctx.repo
        cand = cands.get(cid)
        if cand.status is not CandidateStatus.OPEN:
            return TargetOutcome(False, f"the candidate is {cand.status.value}")
        target_head = repo.ref(f"refs/heads/{cand.target_branch}")
        rebased = attempted = False
        conflicts: tuple[str, ...] = cand.conflicts if cand.has_conflicts else ()
        tried = cand.has_conflicts and cand.target_checked == target_head
        if target_head is not None and target_head != cand.base_commit and not tried:
            ctx.check()
            attempted = True
            result = cands.rebase(cid)
            rebased, conflicts = result.moved, result.conflicts
            ctx.progress(1, 2, "rebased" if rebased else "onto the target")
        ctx.check()
        synced = cands.sync_workspaces(cid)
        moved = sorted(r.user for r in synced if r.moved)
        held = {r.user: [c.path for c in r.conflicts] for r in synced if r.conflicts}
        ctx.progress(2, 2, f"{len(synced)} workspaces")
        checkpoint("job.sync.before_memo")
        state = sync_fingerprint(
            cand.target_branch, repo.ref(f"refs/heads/{cand.target_branch}"),
            repo.ref(candidate_ref(cid)), {workspace_ref(cid, r.user): r.head for r in synced},
        )
        with ctx.fence() as s:
            Memos(ctx.rv.db).put(self.name.value, target.key, state, s)
        parts = []
        if rebased:
            parts.append("onto the moved target")
        if conflicts:
            parts.append(f"conflicts with the target: {', '.join(conflicts[:5])}")
        parts.append(f"{len(moved)} of {len(synced)} workspaces synced")
        if held:
            parts.append(f"{len(held)} with conflicts")
        return TargetOutcome(
            changed=rebased or bool(moved) or (attempted and bool(conflicts)),
            summary="; ".join(parts),
            details={"rebased": rebased, "target_conflicts": list(conflicts),
                     "synced": moved, "workspace_conflicts": {u: ", ".join(p)
                                                              for u, p in held.items()}},
        )
