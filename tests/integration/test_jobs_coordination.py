"""Coordination on real repositories: a sync killed half-way (SIGKILL in a child process at a
checkpoint) and re-run — no duplicate, nothing lost, its lease taken over after expiry with a
higher token; two schedulers started at once running each due job once; leadership passing to
another scheduler when the leader stops renewing; the scheduler thread stopping promptly."""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from revisor.db.jobs import JobOutcome
from revisor.jobs.leases import SCHEDULER_KEY, Leases, candidate_key
from revisor.jobs.runner import run_job
from revisor.jobs.runs import JobRun, RunStore
from revisor.jobs.scheduler import Scheduler
from tests.integration.test_jobs_support import (
    NO_BACKUP,
    jobs_config,
    jobs_world,
    lease_rows,
    make_candidates,
    open_revisor,
    sync_child,
)
from tests.integration.test_transactions_support import Upstream

SCHEDULED = ["maintain", "refresh", "squash", "sync"]


def _wait_for(predicate: object, what: str, timeout: float = 60.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_sync_killed_half_way_is_picked_up_after_its_lease_expires(tmp_path: Path) -> None:
    jobs = {**NO_BACKUP, "sync": {"lease_ttl": "1s"}}
    w, rv = jobs_world(tmp_path, jobs)
    try:
        c = rv.source("proj").candidates
        first, second = make_candidates(c, 2)
        mirror = Upstream(w.mirror_path)  # type: ignore[arg-type]
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        child = ctx.Process(target=sync_child,
                            args=(jobs_config(w, jobs), "job.sync.before_memo=kill", out))
        child.start()
        child.join(120)
        assert child.exitcode == -signal.SIGKILL

        [dead] = RunStore(rv.db).list(job="sync")
        assert dead.outcome is JobOutcome.RUNNING  # it never finished
        owner, token = lease_rows(rv)[candidate_key("proj", first)]
        assert owner == dead.owner and token == 1
        # it got as far as syncing the first candidate's workspaces, not writing the memo
        after_kill = mirror.refs("refs/revisor/")
        cand_head = after_kill[f"refs/revisor/candidates/{first}"]
        assert {v for k, v in after_kill.items()
                if k.startswith(f"refs/revisor/workspaces/{first}/")} == {cand_head}

        leases = Leases(rv.db)
        _wait_for(lambda: leases.held(candidate_key("proj", first)) is None,
                  "the dead sync's lease to expire")
        rerun = run_job(rv, "sync")
        assert rerun.outcome is JobOutcome.SUCCEEDED
        results = {r.target: r for r in rerun.results}
        # the first candidate's work was done: redoing it finds everything in place
        assert not results[f"proj#{first}"].changed
        assert results[f"proj#{second}"].changed
        assert lease_rows(rv)[candidate_key("proj", first)][1] == 2  # taken over: higher token
        refs = mirror.refs("refs/revisor/")
        for k, v in after_kill.items():
            if k.startswith((f"refs/revisor/workspaces/{first}/", "refs/revisor/candidates/")):
                assert refs[k] == v, k  # no second commit, nothing lost
        second_head = refs[f"refs/revisor/candidates/{second}"]
        assert {v for k, v in refs.items()
                if k.startswith(f"refs/revisor/workspaces/{second}/")} == {second_head}

        assert RunStore(rv.db).reap() == [dead.id]
        assert RunStore(rv.db).get(dead.id).outcome is JobOutcome.FAILED
        assert run_job(rv, "sync").changed == 0
    finally:
        w.close()


def test_two_schedulers_started_at_once_run_each_due_job_once(tmp_path: Path) -> None:
    w, rv = jobs_world(tmp_path, NO_BACKUP)
    try:
        make_candidates(rv.source("proj").candidates, 2)
        other = open_revisor(jobs_config(w, NO_BACKUP))
        w.others.append(other)
        schedulers = [Scheduler(rv), Scheduler(other)]
        now = datetime.now(UTC)
        barrier = threading.Barrier(2)
        runs: list[JobRun] = []
        lock = threading.Lock()

        def tick(s: Scheduler) -> None:
            barrier.wait()
            done = s.tick(now)
            with lock:
                runs.extend(done)

        threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.job for r in runs) == SCHEDULED
        assert all(r.trigger == "schedule" and r.outcome is JobOutcome.SUCCEEDED for r in runs)
        assert sum(s.is_leader for s in schedulers) == 1

        assert [s.tick(now + timedelta(seconds=30)) for s in schedulers] == [[], []]
        later = [r.job for s in schedulers for r in s.tick(now + timedelta(seconds=61))]
        assert sorted(later) == ["refresh", "sync"]  # every minute; squash 5m, maintain daily
        assert len(RunStore(rv.db).list()) == len(SCHEDULED) + 2
    finally:
        w.close()


def test_leadership_passes_when_the_leader_stops_renewing(tmp_path: Path) -> None:
    w, rv = jobs_world(tmp_path, {**NO_BACKUP, "maintain": {"enabled": False}})
    try:
        leader = Scheduler(rv, leader_ttl=30)
        assert [r.job for r in leader.tick()] == ["refresh", "sync", "squash"]
        follower = Scheduler(rv, leader_ttl=30)
        assert follower.tick() == [] and not follower.is_leader
        # 31 s later by the follower's clock, the leader has not renewed: it takes over
        later = Scheduler(rv, owner=follower.owner, leader_ttl=30,
                          clock=lambda: time.time() + 31)
        later.tick()
        assert later.is_leader
        held = Leases(rv.db, clock=lambda: time.time() + 31).held(SCHEDULER_KEY)
        assert held is not None and held.owner == follower.owner
    finally:
        w.close()


def test_the_scheduler_thread_runs_the_schedule_and_stops_promptly(tmp_path: Path) -> None:
    w, rv = jobs_world(tmp_path, NO_BACKUP)
    try:
        make_candidates(rv.source("proj").candidates, 1)
        scheduler = Scheduler(rv, poll=0.05).start()
        try:
            _wait_for(lambda: len(RunStore(rv.db).list()) >= len(SCHEDULED), "the first runs")
        finally:
            scheduler.stop()
        assert not scheduler.is_leader
        assert Leases(rv.db).held(SCHEDULER_KEY) is None  # given back
        assert sorted(r.job for r in RunStore(rv.db).list()) == SCHEDULED
        assert all(r.finished for r in RunStore(rv.db).list())
        assert not any(t.name.startswith("revisor-scheduler") for t in threading.enumerate())
    finally:
        w.close()
