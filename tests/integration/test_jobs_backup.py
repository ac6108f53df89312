"""The ``backup`` job through the runner: one target per source with a backup remote, recorded
runs, a down remote reported as a failed target (with the other sources going on), a lost
lease that writes nothing, and a backup killed half-way through the job then run again."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from revisor.bootstrap import Revisor
from revisor.config import Config
from revisor.db.jobs import JobOutcome
from revisor.errors import LeaseLost
from revisor.jobs.backup import BackupJob, backup_key, job_fence
from revisor.jobs.base import JobContext, Target
from revisor.jobs.leases import Leases
from revisor.jobs.runner import run_job
from tests.integration.test_backup_support import (
    backup_refs,
    bworld,
    confirmed,
    init_backup,
    populate,
    revisor_refs,
    run_child_backup,
)
from tests.integration.test_transactions_support import FAST, REVISOR, Upstream
from tests.support.githttp import GitHttpServer

pytestmark = pytest.mark.timeout(120)


def test_backup_job_backs_up_each_source_and_records_the_run(
    http_git: GitHttpServer, http_git_root: Path, tmp_path: Path,
) -> None:
    bare = init_backup(http_git_root / "backup.git")
    w = bworld(tmp_path, http_git.url_for("backup.git"))
    try:
        populate(w)
        seen: list[tuple[int, int, str]] = []
        run = run_job(w.rv, "backup", progress=lambda d, t, m: seen.append((d, t, m)))
        assert run.outcome is JobOutcome.SUCCEEDED and run.changed == 1
        (result,) = run.results
        assert result.source == "proj" and result.changed
        assert result.details["pushed"] == len(backup_refs(bare))
        assert backup_refs(bare) == revisor_refs(w)
        assert any("push" in m for _, _, m in seen)
        again = run_job(w.rv, "backup", source="proj")
        assert again.outcome is JobOutcome.SUCCEEDED and again.changed == 0
        assert again.results[0].details["pushed"] == 0
    finally:
        w.close()


def test_a_down_backup_remote_fails_its_target_and_not_the_others(
    http_git: GitHttpServer, http_git_root: Path, tmp_path: Path,
) -> None:
    good = init_backup(tmp_path / "good-backup.git")
    init_backup(http_git_root / "down.git")
    w = bworld(tmp_path / "w", http_git.url_for("down.git"))
    w.close()
    other = Upstream.init(tmp_path / "other.git", {"README.md": "other\n"})
    config = Config.model_validate({"data_dir": str(w.data_dir), "sources": {
        "proj": w.source_config,
        "other": {"type": "git", "url": f"file://{other.path}", "branch": "main",
                  "backup": {"url": f"file://{good}"}},
        "plain": {"type": "git", "url": f"file://{other.path}", "branch": "main"},
    }})
    rv = Revisor(config, policy=FAST, identity=REVISOR, env={}).start()
    try:
        rv.source("other").candidates.create("cand-1", "One", REVISOR)
        http_git.stop()
        run = run_job(rv, "backup")
        by_source = {r.source: r for r in run.results}
        assert set(by_source) == {"proj", "other"}  # "plain" has no backup remote
        assert by_source["proj"].outcome is JobOutcome.FAILED
        assert "RemoteUnavailable" in (by_source["proj"].error or "")
        assert by_source["other"].outcome is JobOutcome.SUCCEEDED
        assert run.outcome is JobOutcome.PARTIAL
        assert "refs/revisor/candidates/1" in backup_refs(good)
        from revisor.db.backups import BackupStore

        assert dict(BackupStore(rv.db).confirmed("proj").refs) == {}
    finally:
        http_git.start()
        rv.close()


def test_a_backup_whose_lease_was_taken_over_confirms_nothing(tmp_path: Path) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        populate(w)
        clock = [1_000_000.0]
        leases = Leases(w.rv.db, clock=lambda: clock[0])
        lease = leases.acquire(backup_key("proj"), "stalled-owner", 10)
        assert lease is not None
        clock[0] += 60  # it stalled past its expiry; another owner takes over
        assert leases.acquire(backup_key("proj"), "new-owner", 10) is not None
        ctx = JobContext(w.rv, leases, [lease], owner="stalled-owner")
        with pytest.raises(LeaseLost):
            BackupJob().run_target(ctx, Target("proj"))
        assert backup_refs(bare) == {} and dict(confirmed(w).refs) == {}
        with pytest.raises(LeaseLost):
            job_fence(ctx)(None)
    finally:
        w.close()


def test_a_backup_killed_half_way_then_run_again_by_the_job(tmp_path: Path) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        populate(w)
        assert run_child_backup(w, "backup.after_push").returncode == -signal.SIGKILL
        run = run_job(w.rv, "backup")
        assert run.outcome is JobOutcome.SUCCEEDED
        assert run.results[0].details["pushed"] == 0  # already there: not pushed twice
        assert backup_refs(bare) == revisor_refs(w) == dict(confirmed(w).refs)
    finally:
        w.close()
