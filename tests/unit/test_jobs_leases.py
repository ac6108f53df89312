"""Leases with fencing tokens, the run record and the schedule claims, on SQLite and on a real
PostgreSQL: acquire / renew / expire / takeover with a higher token, a stale token refused at the
write, races between threads that one side must lose, and the schema against the models.

Time is a clock the test moves (``Leases(db, clock=...)``), so expiry needs no sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from revisor.config import Config, JobSchedule
from revisor.db import Database
from revisor.db.jobs import JobMemoRow, JobOutcome
from revisor.db.models import Base
from revisor.errors import ConfigError, JobRunNotFound, LeaseLost
from revisor.jobs.base import Target
from revisor.jobs.leases import Leases
from revisor.jobs.memo import Memos
from revisor.jobs.runner import outcome_of
from revisor.jobs.runs import RunStore, TargetResult
from revisor.jobs.schedule import next_due, spec_of
from tests.unit.test_db import _pg_database, postgres  # noqa: F401 - the session's server

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'data' / 'revisor.db'}"
    else:
        url = _pg_database(request.getfixturevalue("postgres"))
    database = Database(url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


def test_the_jobs_tables_match_the_models(db: Database) -> None:
    tables = set(inspect(db.engine).get_table_names())
    assert {"job_leases", "job_runs", "job_schedule", "job_memos"} <= tables
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_acquire_renew_expire_and_takeover_with_a_higher_token(db: Database) -> None:
    clock = Clock()
    leases = Leases(db, clock=clock)
    a = leases.acquire("candidate:proj:1", "A", ttl=10)
    assert a is not None and a.token == 1 and a.owner == "A"
    assert leases.acquire("candidate:proj:1", "B", ttl=10) is None  # held, unexpired
    held = leases.held("candidate:proj:1")
    assert held is not None and held.owner == "A" and held.token == 1

    clock.now += 8
    a = leases.renew(a)  # by its own length again: until T0 + 18
    clock.now += 8
    assert leases.acquire("candidate:proj:1", "B", ttl=10) is None  # renewal kept it
    leases.check(a)

    clock.now += 3  # past T0 + 18: expired
    assert leases.held("candidate:proj:1") is None
    b = leases.acquire("candidate:proj:1", "B", ttl=10)
    assert b is not None and b.token == 2 and b.owner == "B"

    with pytest.raises(LeaseLost) as lost:
        leases.check(a)
    assert lost.value.current == 2
    with pytest.raises(LeaseLost):
        leases.renew(a)
    leases.release(a)  # a stale release changes nothing
    assert leases.held("candidate:proj:1") == b

    leases.release(b)
    assert leases.held("candidate:proj:1") is None
    c = leases.acquire("candidate:proj:1", "C", ttl=10)
    assert c is not None and c.token == 3  # tokens only grow, across releases too
    assert leases.token("candidate:proj:1") == 3


def test_an_expired_holder_cannot_commit_even_untaken(db: Database) -> None:
    clock = Clock()
    leases = Leases(db, clock=clock)
    a = leases.acquire("source:proj", "A", ttl=5)
    assert a is not None
    clock.now += 6
    with pytest.raises(LeaseLost):
        leases.check(a)
    with pytest.raises(LeaseLost):
        leases.renew(a)


def test_a_write_fenced_by_a_stale_token_is_refused(db: Database) -> None:
    clock = Clock()
    leases = Leases(db, clock=clock)
    memos = Memos(db)
    a = leases.acquire("candidate:proj:7", "A", ttl=5)
    assert a is not None
    with db.session() as s:
        leases.check(a, s)
        memos.put("sync", "candidate:proj:7", "written by A", s)

    clock.now += 6
    b = leases.acquire("candidate:proj:7", "B", ttl=5)
    assert b is not None and b.token == a.token + 1

    def late_write() -> None:
        with db.session() as s:
            memos.put("sync", "candidate:proj:7", "late write by A", s)
            leases.check(a, s)  # checked in the same transaction: the write rolls back with it

    with pytest.raises(LeaseLost):
        late_write()
    assert memos.get("sync", "candidate:proj:7") == "written by A"

    with db.session() as s:
        leases.check(b, s)
        memos.put("sync", "candidate:proj:7", "written by B", s)
    assert memos.all("sync") == {"candidate:proj:7": "written by B"}
    with db.session(write=False) as s:
        assert s.get(JobMemoRow, ("sync", "candidate:proj:7")) is not None


def test_threads_racing_for_a_lease_one_wins(db: Database) -> None:
    leases = Leases(db)
    barrier = threading.Barrier(8)
    won: list[int] = []
    lock = threading.Lock()

    def grab(i: int) -> None:
        barrier.wait()
        lease = leases.acquire("candidate:proj:9", f"owner-{i}", ttl=60)
        if lease is not None:
            with lock:
                won.append(lease.token)

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won == [1]


def test_takeover_race_after_expiry_one_wins(db: Database) -> None:
    clock = Clock()
    leases = Leases(db, clock=clock)
    assert leases.acquire("source:proj", "old", ttl=1) is not None
    clock.now += 2
    barrier = threading.Barrier(6)
    won: list[int] = []
    lock = threading.Lock()

    def grab(i: int) -> None:
        barrier.wait()
        lease = leases.acquire("source:proj", f"new-{i}", ttl=60)
        if lease is not None:
            with lock:
                won.append(lease.token)

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won == [2]


def test_runs_are_recorded_listed_and_paged(db: Database) -> None:
    runs = RunStore(db)
    first = runs.start("sync", owner="me", source="proj")
    assert first.outcome is JobOutcome.RUNNING and not first.finished
    runs.progress(first.id, 3, 10, "proj#3")
    assert runs.get(first.id).progress.done == 3
    results = [
        TargetResult.of(Target("proj", 1), JobOutcome.SUCCEEDED, changed=True, summary="synced",
                        details={"synced": ["alice"]}),
        TargetResult.of(Target("proj", 2), JobOutcome.FAILED, summary="failed",
                        error="push to https://bot:s3cret@git.example.com/x.git failed"),
    ]
    done = runs.finish(first.id, outcome_of(results), results)
    assert done.outcome is JobOutcome.PARTIAL and done.changed == 1
    assert done.results[0].details == {"synced": ["alice"]}
    assert done.results[1].error is not None and "s3cret" not in done.results[1].error
    assert done.counts() == {"succeeded": 1, "failed": 1}
    second = runs.start("refresh", owner="me")
    runs.finish(second.id, JobOutcome.SUCCEEDED, [])
    assert [r.id for r in runs.list()] == [second.id, first.id]
    assert [r.id for r in runs.list(job="sync")] == [first.id]
    assert [r.id for r in runs.list(before=second.id)] == [first.id]
    assert [r.id for r in runs.list(source="proj")] == [first.id]
    assert runs.get(first.id).to_json()["counts"] == {"succeeded": 1, "failed": 1}
    with pytest.raises(JobRunNotFound):
        runs.get(10_000)


def test_a_dead_process_run_is_reaped(db: Database) -> None:
    import socket

    runs = RunStore(db)
    dead = runs.start("sync", owner=f"{socket.gethostname()}:999999999:abcd")
    alive = runs.start("sync", owner="other-host:1:abcd")
    assert runs.reap() == [dead.id]
    assert runs.get(dead.id).outcome is JobOutcome.FAILED
    assert runs.get(alive.id).outcome is JobOutcome.RUNNING


def test_outcome_of_targets() -> None:
    ok = TargetResult.of(Target("p"), JobOutcome.SUCCEEDED)
    bad = TargetResult.of(Target("p"), JobOutcome.FAILED)
    held = TargetResult.of(Target("p"), JobOutcome.SKIPPED)
    assert outcome_of([]) is JobOutcome.SUCCEEDED
    assert outcome_of([ok, ok]) is JobOutcome.SUCCEEDED
    assert outcome_of([ok, bad]) is JobOutcome.PARTIAL
    assert outcome_of([ok, held]) is JobOutcome.PARTIAL
    assert outcome_of([bad, held]) is JobOutcome.FAILED
    assert outcome_of([held]) is JobOutcome.SKIPPED


def test_schedules_from_the_configuration() -> None:
    cfg = Config.model_validate({"jobs": {"sync": {"cron": "*/5 * * * *"},
                                          "squash": {"every": "90s", "enabled": False}}})
    assert cfg.jobs.schedule("refresh").every == timedelta(minutes=1)
    assert cfg.jobs.schedule("cleanup").every == timedelta(days=1)
    squash = cfg.jobs.schedule("squash")
    assert squash.every == timedelta(seconds=90) and not squash.enabled
    at = datetime(2026, 1, 1, 12, 3, 30, tzinfo=UTC)
    assert next_due(cfg.jobs.schedule("sync"), at) == datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    assert next_due(squash, at) == at + timedelta(seconds=90)
    assert spec_of(cfg.jobs.schedule("sync")) == "cron */5 * * * *"
    assert spec_of(squash) == "every 90s"
    with pytest.raises(ValueError, match="either every or cron"):
        JobSchedule(every=timedelta(seconds=1), cron="* * * * *")


def test_a_bad_cron_names_the_field(tmp_path: Path) -> None:
    from revisor.config import load_config

    path = tmp_path / "revisor.yaml"
    path.write_text("jobs:\n  sync:\n    cron: 'every tuesday'\n")
    with pytest.raises(ConfigError, match=r"jobs\.sync\.cron"):
        load_config(path, env={})


def test_schedule_claims_race_and_only_one_wins(db: Database) -> None:
    from types import SimpleNamespace

    from revisor.jobs.scheduler import Scheduler

    config = Config()
    sched = config.jobs.schedule("sync")
    rv: Any = SimpleNamespace(db=db, config=config)
    schedulers = [Scheduler(rv, owner=f"s{i}") for i in range(6)]
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    barrier = threading.Barrier(len(schedulers))
    won: list[str] = []
    lock = threading.Lock()

    def claim(s: Scheduler) -> None:
        barrier.wait()
        if s._claim("sync", spec_of(sched), sched, now):
            with lock:
                won.append(s.owner)

    threads = [threading.Thread(target=claim, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    a = schedulers[0]
    assert not a._claim("sync", spec_of(sched), sched, now + timedelta(seconds=59))
    assert a._claim("sync", spec_of(sched), sched, now + timedelta(seconds=60))
    assert not schedulers[1]._claim("sync", spec_of(sched), sched, now + timedelta(seconds=60))
    # a changed schedule is noticed: the due time is recomputed from it
    cron = JobSchedule(cron="0 * * * *")
    assert not a._claim("sync", spec_of(cron), cron, now + timedelta(seconds=61))
    assert a._claim("sync", spec_of(cron), cron, datetime(2026, 1, 1, 13, 0, tzinfo=UTC))
