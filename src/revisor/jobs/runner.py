"""Running one job once: leases per target, failures isolated, everything recorded.

Why this module exists: every job is run the same way, whether by the scheduler, ``revisor
worker``, ``revisor jobs run`` or ``POST /jobs/{name}/run``. :func:`run_job`

1. records a ``running`` run (``revisor.jobs.runs``);
2. asks the job for its targets, and which of them are up to date (in bulk, without leases);
3. for every other target takes the leases it needs — a lease held by another owner means the
   target is *skipped* (recorded), never waited for: that is how sync and squash never run on
   the same candidate at once — runs it, and releases the leases. A heartbeat thread renews the
   leases while a target runs, so only a holder that died or stalls loses them;
4. records each target's outcome; one failing target (an exception of any kind) is recorded with
   its redacted error and the run goes on with the others;
5. finishes the run: ``succeeded``, ``partial`` (some targets failed or were skipped),
   ``failed`` (every target that ran failed), or ``skipped`` (every target was held elsewhere).

Progress (targets done of total, and what the current target reports) goes to the caller's
callback at once and to the run's record at most every :data:`PROGRESS_EVERY` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from revisor.db.jobs import JobOutcome
from revisor.errors import InvalidInput, LeaseLost, RevisorError
from revisor.faults import checkpoint
from revisor.jobs.base import Job, JobContext, ProgressFn, Target, get_job
from revisor.jobs.leases import Lease, Leases, new_owner
from revisor.jobs.runs import JobRun, RunStore, TargetResult, Trigger

if TYPE_CHECKING:
    from revisor.bootstrap import Revisor

__all__ = ["PROGRESS_EVERY", "lease_ttl", "outcome_of", "run_job"]

log = logging.getLogger(__name__)

PROGRESS_EVERY = 0.5
"""Seconds between two progress writes to a running run's record."""


def lease_ttl(rv: Revisor, job: Job) -> float:
    """How long the job's leases last unrenewed (the configuration's ``lease_ttl``)."""
    try:
        return rv.config.jobs.schedule(job.name.value).lease_ttl.total_seconds()
    except (AttributeError, KeyError):
        return job.default_ttl


def outcome_of(results: Sequence[TargetResult]) -> JobOutcome:
    """A run's outcome from its targets' outcomes (no targets: succeeded)."""
    kinds = {r.outcome for r in results}
    if not kinds or kinds == {JobOutcome.SUCCEEDED}:
        return JobOutcome.SUCCEEDED
    if kinds == {JobOutcome.SKIPPED}:
        return JobOutcome.SKIPPED
    if JobOutcome.SUCCEEDED not in kinds and JobOutcome.FAILED in kinds:
        return JobOutcome.FAILED
    return JobOutcome.PARTIAL


class _Progress:
    """Forwards progress to the caller, and to the run's record at most every so often."""

    def __init__(self, runs: RunStore, run_id: int, callback: ProgressFn | None) -> None:
        self.runs = runs
        self.run_id = run_id
        self.callback = callback
        self.last = 0.0

    def __call__(self, done: int, total: int, message: str, *, force: bool = False) -> None:
        if self.callback is not None:
            self.callback(done, total, message)
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_EVERY:
            self.last = now
            try:
                self.runs.progress(self.run_id, done, total, message)
            except RevisorError as exc:  # progress is best effort; the result is not
                log.debug("progress of run %s not recorded: %s", self.run_id, exc)


class _Heartbeat:
    """Renews a context's leases every third of their length while a target runs."""

    def __init__(self, ctx: JobContext, ttl: float) -> None:
        self.ctx = ctx
        self.interval = max(ttl / 3.0, 0.05)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="revisor-lease-heartbeat",
                                       daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.ctx.renew()
            except LeaseLost as exc:
                log.warning("lease lost while running: %s", exc)
                return
            except RevisorError as exc:  # the database is busy: try again next beat
                log.info("lease not renewed: %s", exc)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _acquire(leases: Leases, keys: Sequence[str], owner: str, ttl: float) -> list[Lease] | str:
    """Take every key in order; on the first one held elsewhere give back the others and return
    who holds it."""
    taken: list[Lease] = []
    for key in keys:
        lease = leases.acquire(key, owner, ttl)
        if lease is None:
            for t in taken:
                leases.release(t)
            holder = leases.held(key)
            return f"{key} is held by {holder.owner if holder else 'another owner'}"
        taken.append(lease)
    return taken


def _run_one(
    rv: Revisor, job: Job, target: Target, leases: Leases, owner: str, ttl: float,
    report: ProgressFn,
) -> TargetResult:
    try:
        got = _acquire(leases, job.lease_keys(target), owner, ttl)
    except RevisorError as exc:  # the database is busy: this target waits for the next run
        return TargetResult.of(target, JobOutcome.FAILED, summary="no lease",
                               error=f"{type(exc).__name__}: {exc}")
    if isinstance(got, str):
        return TargetResult.of(target, JobOutcome.SKIPPED, summary=got)
    ctx = JobContext(rv, leases, got, owner=owner, progress=report)
    try:
        with _Heartbeat(ctx, ttl):
            checkpoint(f"job.{job.name.value}.target")
            outcome = job.run_target(ctx, target)
    except LeaseLost as exc:
        return TargetResult.of(target, JobOutcome.FAILED, summary="lease lost; nothing written",
                               error=str(exc))
    except Exception as exc:  # one target's failure never stops the others
        if not isinstance(exc, RevisorError):
            log.exception("%s on %s failed", job.name.value, target)
        return TargetResult.of(target, JobOutcome.FAILED, summary="failed",
                               error=f"{type(exc).__name__}: {exc}")
    finally:
        for lease in ctx.held:
            try:
                leases.release(lease)
            except RevisorError as exc:  # it expires on its own
                log.warning("could not release %s: %s", lease.key, exc)
    return TargetResult.of(target, JobOutcome.SUCCEEDED, changed=outcome.changed,
                           summary=outcome.summary, details=outcome.details)


def run_job(
    rv: Revisor,
    name: str,
    *,
    source: str | None = None,
    candidate: int | None = None,
    owner: str | None = None,
    progress: ProgressFn | None = None,
    trigger: Trigger = "manual",
    cancel: threading.Event | None = None,
) -> JobRun:
    """Run the job ``name`` once over its targets (narrowed by ``source`` / ``candidate``) and
    return the recorded run. Unknown job or filters that make no sense: InvalidInput (nothing
    is recorded). ``cancel`` set: the targets not started yet are recorded as skipped."""
    job = get_job(name)
    if candidate is not None and source is None:
        raise InvalidInput("a candidate is named within a source: give the source too")
    if candidate is not None and not job.by_candidate:
        raise InvalidInput(f"{job.name.value} works on whole sources, not on one candidate",
                           hint="leave out the candidate (--candidate)")
    if source is not None:
        rv.config.source(source)  # SourceNotFound before anything is recorded
    owner = owner or new_owner(job.name.value)
    ttl = lease_ttl(rv, job)
    leases = Leases(rv.db)
    runs = RunStore(rv.db)
    run = runs.start(job.name.value, owner=owner, source=source, candidate=candidate,
                     trigger=trigger)
    report = _Progress(runs, run.id, progress)
    results: list[TargetResult] = []
    try:
        targets = job.targets(rv, source=source, candidate=candidate)
        fresh = job.up_to_date(rv, targets) if targets else {}
        total = len(targets)
        report(0, total, f"{total} targets, {len(fresh)} up to date", force=True)
        for target in targets:
            if target in fresh:
                results.append(TargetResult.of(target, JobOutcome.SUCCEEDED,
                                               summary=fresh[target]))
                continue
            if cancel is not None and cancel.is_set():
                results.append(TargetResult.of(target, JobOutcome.SKIPPED,
                                               summary="stopped before it started"))
                continue
            done = len(results)

            def sub(d: int, t: int, message: str, _target: Target = target,
                    _done: int = done) -> None:
                if total == 1:
                    report(d, t, f"{_target}: {message}")
                else:
                    report(_done, total, f"{_target}: {message} ({d}/{t})")

            results.append(_run_one(rv, job, target, leases, owner, ttl, sub))
            report(len(results), total, str(target))
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        runs.finish(run.id, JobOutcome.FAILED, results, error=message)
        if isinstance(exc, RevisorError):
            return runs.get(run.id)
        raise
    return runs.finish(run.id, outcome_of(results), results)
