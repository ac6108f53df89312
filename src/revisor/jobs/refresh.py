"""The ``refresh`` job: fetch the sources that are due, and open the proposals that were queued.

Why this module exists: reads that ask for freshness fetch on their own, but a source nobody
reads would go stale, and a proposal queued while its provider was down (the transaction kept the
pushed branch, the journal says ``queued``) would otherwise wait for the next start. This job
fetches every mirrored source whose refresh interval has passed (``StoreSource.is_due``; a
source that is not due is recorded as up to date — ``revisor fetch`` fetches at once), then runs
the source's recovery, which opens queued proposals (looking the branch's proposal up first, so
none is opened twice) and finishes or undoes transactions of dead processes.

git's progress (the first clone of a big repository takes minutes) goes to the run's progress,
so ``revisor jobs run refresh`` draws a bar and ``revisor jobs show RUN`` shows how far it is.

It holds ``source:<name>`` while it works, so it never runs beside maintenance of the same
mirror (maintain holds the same key). The fetch itself is safe beside anything else: the mirror
serialises fetches and never touches ``refs/revisor/*``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from revisor.jobs.base import Job, JobContext, JobName, Target, TargetOutcome, register

if TYPE_CHECKING:
    from collections.abc import Sequence

    from revisor.bootstrap import Revisor

__all__ = ["RefreshJob"]


@register
class RefreshJob(Job):
    name = JobName.REFRESH
    description = "fetch the sources that are due and open queued proposals"
    default_ttl = 600.0

    def targets(
        self, rv: Revisor, *, source: str | None = None, candidate: int | None = None
    ) -> list[Target]:
        names = [source] if source is not None else rv.store.names()
        return [Target(n) for n in names]

    def up_to_date(self, rv: Revisor, targets: Sequence[Target]) -> dict[Target, str]:
        out: dict[Target, str] = {}
        for t in targets:
            src = rv.store.source(t.source)
            if src.is_mirrored and src.is_due():
                continue
            if not rv.journal.unfinished(t.source):  # no queued proposal to open either
                out[t] = "not due" if src.is_mirrored else "a local source: always current"
        return out

    def run_target(self, ctx: JobContext, target: Target) -> TargetOutcome:
        stored = ctx.rv.store.source(target.source)
        moved: list[str] = []
        fetched = False
        if stored.is_mirrored and stored.is_due():
            first = not (stored.mirror is not None and stored.mirror.exists)

            def fetching(phase: str, done: int, total: int) -> None:
                ctx.progress(done, total, f"{'clone' if first else 'fetch'}: {phase}")

            result = stored.refresh(progress=fetching)
            if result is not None:
                fetched = result.fetched
                moved = [c.ref for c in result.changes]
        ctx.check()
        recovered = ctx.rv.source(target.source).recover()
        parts = []
        if fetched:
            parts.append(f"fetched, {len(moved)} refs moved")
        if recovered:
            parts.append(f"{len(recovered)} transactions recovered")
        return TargetOutcome(
            changed=bool(moved or recovered),
            summary="; ".join(parts) or "nothing new",
            details={"refs": moved[:100], "moved": len(moved), "recovered": recovered},
        )
