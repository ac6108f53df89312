"""The ``maintain`` job: the store's maintenance (commit-graph, pack-refs, safe gc) for every
mirror that is due.

Why this module exists: mirrors fill with loose objects and loose refs as they are fetched and
written to, and reads slow down (history walks without a commit-graph, ref lookups without
packed refs). ``StoreSource.maintain`` does the work safely (gc never prunes what a ref reaches);
this job decides *when*: a source is due when its last maintenance (remembered as a memo, so
every process and node agrees) is older than the job's interval (``jobs.maintain.every``, a day
by default; with a cron schedule, once per run). Local sources are their owners' to maintain.

It holds ``source:<name>``, like refresh: a fetch and a gc of one mirror never run together.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from revisor.jobs.base import Job, JobContext, JobName, Target, TargetOutcome, register
from revisor.jobs.memo import Memos

if TYPE_CHECKING:
    from collections.abc import Sequence

    from revisor.bootstrap import Revisor

__all__ = ["MaintainJob"]


def _interval(rv: Revisor) -> float:
    sched = rv.config.jobs.schedule("maintain")
    if sched.every is None:
        return 0.0
    return sched.every.total_seconds() * 0.9  # a run a little early is still due


@register
class MaintainJob(Job):
    name = JobName.MAINTAIN
    description = "maintain the mirrors that are due (commit-graph, pack-refs, safe gc)"
    default_ttl = 3600.0

    def targets(
        self, rv: Revisor, *, source: str | None = None, candidate: int | None = None
    ) -> list[Target]:
        names = [source] if source is not None else rv.store.names()
        return [Target(n) for n in names]

    def up_to_date(self, rv: Revisor, targets: Sequence[Target]) -> dict[Target, str]:
        memos = Memos(rv.db).all(self.name.value, "source:")
        interval, now = _interval(rv), time.time()
        out: dict[Target, str] = {}
        for t in targets:
            src = rv.store.source(t.source)
            if not src.is_mirrored:
                out[t] = "a local source: its owner maintains it"
                continue
            last = memos.get(t.key)
            if last is not None and now - float(last) < interval:
                out[t] = f"maintained {int(now - float(last))} s ago"
        return out

    def run_target(self, ctx: JobContext, target: Target) -> TargetOutcome:
        stored = ctx.rv.store.source(target.source)
        ctx.check()
        result = stored.maintain()
        with ctx.fence() as s:
            Memos(ctx.rv.db).put(self.name.value, target.key, repr(time.time()), s)
        if result is None:
            return TargetOutcome(False, "no mirror yet")
        return TargetOutcome(
            changed=True,
            summary=f"{', '.join(result.steps)} in {result.seconds:.1f} s",
            details={"steps": list(result.steps), "loose_before": result.loose_objects_before,
                     "loose_after": result.loose_objects_after, "packs": result.packs_after},
        )
