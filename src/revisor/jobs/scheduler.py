"""The scheduler: runs each enabled job when it is due — once, however many processes run one.

Why this module exists: ``revisor serve`` runs the schedule in-process by default, ``revisor
worker`` runs it without the HTTP server, and several of either may run against one database.
Two mechanisms keep every due time to one run:

- *leadership*: a scheduler acts only while it holds the ``scheduler`` lease (renewed at every
  tick and by a heartbeat while a job runs). The others tick idly and take over when the leader
  stops renewing (it died or hangs): after the lease's TTL.
- *claims*: each job's next due time is a ``job_schedule`` row. A scheduler runs a job only after
  moving ``next_due`` forward with ``UPDATE … WHERE job = ? AND next_due = <the value it read>``;
  of two racing schedulers (a leader whose lease just expired and its successor) only one
  matches. A due time is computed from the moment of the claim, so a scheduler that was down
  for a week runs each job once, not once per missed interval.

:meth:`Scheduler.tick` is one step (testable with any ``now``); :meth:`Scheduler.start` runs
ticks in a daemon thread until :meth:`Scheduler.stop`, which also asks a running job to stop
after its current target.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from revisor.config import JobSchedule
from revisor.db.jobs import JobScheduleRow
from revisor.errors import LeaseLost, RevisorError
from revisor.jobs.base import all_jobs
from revisor.jobs.leases import SCHEDULER_KEY, Lease, Leases, _execute, new_owner
from revisor.jobs.runner import run_job
from revisor.jobs.runs import JobRun, RunStore
from revisor.jobs.schedule import next_due, spec_of

if TYPE_CHECKING:
    from revisor.bootstrap import Revisor

__all__ = ["LEADER_TTL", "Scheduler"]

log = logging.getLogger(__name__)

LEADER_TTL = 30.0
"""Seconds the scheduler lease lasts unrenewed: how long a dead leader's successor waits."""


class Scheduler:
    """Runs the jobs of ``rv``'s configuration on their schedules. Constructing does no I/O."""

    def __init__(
        self,
        rv: Revisor,
        *,
        owner: str | None = None,
        poll: float = 1.0,
        leader_ttl: float = LEADER_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rv = rv
        self.owner = owner or new_owner("scheduler")
        self.poll = poll
        self.leader_ttl = leader_ttl
        self.clock = clock
        self.leases = Leases(rv.db, clock=clock)
        self.runs = RunStore(rv.db)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._beat: threading.Thread | None = None
        self._lock = threading.Lock()
        self._leader: Lease | None = None

    def __repr__(self) -> str:
        return f"Scheduler({self.owner!r})"

    # -- one step ----------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        with self._lock:
            return self._leader is not None

    def _lead(self) -> bool:
        """Take or keep the scheduler lease."""
        lease = self.leases.acquire(SCHEDULER_KEY, self.owner, self.leader_ttl)
        with self._lock:
            self._leader = lease
        return lease is not None

    def tick(self, now: datetime | None = None) -> list[JobRun]:
        """If this scheduler leads: run every enabled job that is due at ``now`` (claimed first)
        and return the runs."""
        if self._stop.is_set() or not self._lead():
            return []
        now = now or datetime.fromtimestamp(self.clock(), UTC)
        try:
            self.runs.reap()
        except RevisorError as exc:
            log.info("stale runs not reaped: %s", exc)
        done: list[JobRun] = []
        config = self.rv.config.jobs
        for job in all_jobs():
            if self._stop.is_set():
                break
            sched = config.schedule(job.name.value)
            if not sched.enabled:
                continue
            try:
                if not self._claim(job.name.value, spec_of(sched), sched, now):
                    continue
                done.append(run_job(self.rv, job.name.value, owner=self.owner,
                                    trigger="schedule", cancel=self._stop))
            except RevisorError as exc:  # the database is busy or down: next tick
                log.warning("scheduled %s not run: %s", job.name.value, exc)
        return done

    def _claim(self, job: str, spec: str, sched: JobSchedule, now: datetime) -> bool:
        """Move the job's due time forward if it is due; True when this call did."""
        for _ in range(5):
            with self.rv.db.session() as s:
                row = s.get(JobScheduleRow, job)
                if row is None:
                    try:
                        with s.begin_nested():
                            s.add(JobScheduleRow(job=job, next_due=now, spec=spec,
                                                 claimed_by=None, claimed_at=None))
                    except IntegrityError:
                        continue
                    due, stored_spec = now, spec
                else:
                    due, stored_spec = row.next_due, row.spec
                if stored_spec == spec and due > now:
                    return False
                matched = _execute(
                    s,
                    update(JobScheduleRow)
                    .where(JobScheduleRow.job == job, JobScheduleRow.next_due == due,
                           JobScheduleRow.spec == stored_spec)
                    .values(next_due=next_due(sched, now), spec=spec, claimed_by=self.owner,
                            claimed_at=now)
                    .execution_options(synchronize_session=False),
                )
                if stored_spec != spec and due > now:
                    # the schedule changed: only recompute the due time
                    return False
                return matched == 1
        return False

    # -- the thread --------------------------------------------------------------------------------
    def start(self) -> Scheduler:
        """Run ticks every ``poll`` seconds in a daemon thread (and a lease heartbeat)."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="revisor-scheduler",
                                        daemon=True)
        self._beat = threading.Thread(target=self._heartbeat, name="revisor-scheduler-lease",
                                      daemon=True)
        self._thread.start()
        self._beat.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # never let the scheduler thread die
                log.exception("scheduler tick failed")
            self._stop.wait(self.poll)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.leader_ttl / 3.0):
            with self._lock:
                lease = self._leader
            if lease is None:
                continue
            try:
                renewed = self.leases.renew(lease)
            except LeaseLost:
                renewed = None
            except RevisorError as exc:
                log.info("scheduler lease not renewed: %s", exc)
                continue
            with self._lock:
                if self._leader is lease:
                    self._leader = renewed

    def stop(self, timeout: float | None = 60.0) -> None:
        """Stop promptly: no new job starts, a running one stops after its current target;
        the threads are joined and the scheduler lease given back."""
        self._stop.set()
        for thread in (self._thread, self._beat):
            if thread is not None:
                thread.join(timeout)
        self._thread = self._beat = None
        with self._lock:
            lease, self._leader = self._leader, None
        if lease is not None:
            try:
                self.leases.release(lease)
            except RevisorError as exc:
                log.info("scheduler lease not released (it expires): %s", exc)

    def __enter__(self) -> Scheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
