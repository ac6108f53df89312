"""The ``cleanup`` job through the runner: it shares the backup's lease (so it is skipped while a
backup holds it, and recorded so), holds back what the backup has not confirmed, and deletes
what is due once the backup job has run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from revisor.db.candidates import CandidateStore
from revisor.db.jobs import JobOutcome
from revisor.errors import CandidateNotFound
from revisor.jobs.backup import backup_key
from revisor.jobs.leases import Leases
from revisor.jobs.runner import run_job
from tests.integration.test_backup_support import (
    age,
    backup_refs,
    bworld,
    init_backup,
    populate,
    revisor_refs,
    start_child_job,
)

pytestmark = pytest.mark.timeout(120)


def test_cleanup_job_skips_while_a_backup_holds_the_lease_then_deletes_what_is_backed_up(
    tmp_path: Path,
) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        made = populate(w)
        age(w, made.abandoned.id, 40)
        age(w, made.submitted.id, 10)

        leases = Leases(w.rv.db)
        running = leases.acquire(backup_key("proj"), "a-running-backup", 300)
        assert running is not None
        skipped = run_job(w.rv, "cleanup", source="proj")
        assert skipped.outcome is JobOutcome.SKIPPED
        assert "a-running-backup" in skipped.results[0].summary
        leases.release(running)

        held = run_job(w.rv, "cleanup")  # never backed up: held back, nothing deleted
        assert held.outcome is JobOutcome.SUCCEEDED and held.changed == 0
        details = held.results[0].details
        assert details["held_back"] == 2 and details["deleted"] == 0
        items = details["items"]
        assert isinstance(items, dict)
        assert all("not backed up" in v for v in items.values())
        assert made.abandoned.ref in revisor_refs(w)

        assert run_job(w.rv, "backup").outcome is JobOutcome.SUCCEEDED
        done = run_job(w.rv, "cleanup")
        assert done.outcome is JobOutcome.SUCCEEDED and done.changed == 1
        assert done.results[0].details["deleted"] == 2
        assert made.abandoned.ref not in revisor_refs(w)
        assert backup_refs(bare) == revisor_refs(w)
        with pytest.raises(CandidateNotFound):
            CandidateStore(w.rv.db).get("proj", made.abandoned.id)
        assert CandidateStore(w.rv.db).list_workspaces(made.submitted.id) == []
        assert len(CandidateStore(w.rv.db).list_workspaces(made.open.id)) == 2
    finally:
        w.close()


def test_cleanup_job_with_nothing_due(tmp_path: Path) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        populate(w)  # everything changed just now
        before = revisor_refs(w)
        run = run_job(w.rv, "cleanup")
        assert run.outcome is JobOutcome.SUCCEEDED and run.changed == 0
        assert run.results[0].summary == "nothing due"
        assert revisor_refs(w) == before
    finally:
        w.close()


def test_cleanup_racing_a_backup_in_another_process_waits_its_turn(tmp_path: Path) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        made = populate(w)
        age(w, made.abandoned.id, 40)
        # a backup job in another process, paused after its push, before it confirms
        child = start_child_job(w, "backup", "backup.after_push=sleep:4")
        try:
            leases = Leases(w.rv.db)
            deadline = time.monotonic() + 60
            while leases.held(backup_key("proj")) is None or not backup_refs(bare):
                assert child.poll() is None, child.communicate()
                assert time.monotonic() < deadline, "the backup never got going"
                time.sleep(0.05)
            raced = run_job(w.rv, "cleanup")
            assert raced.outcome is JobOutcome.SKIPPED  # pushed but unconfirmed: not now
            assert made.abandoned.ref in revisor_refs(w)
        finally:
            out, err = child.communicate(timeout=90)
        assert child.returncode == 0 and out.strip() == "succeeded", err
        done = run_job(w.rv, "cleanup")
        assert done.results[0].details["deleted"] == 1
        assert made.abandoned.ref not in revisor_refs(w)
        assert made.abandoned.ref not in backup_refs(bare)
    finally:
        w.close()
