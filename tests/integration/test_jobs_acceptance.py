"""Gaps found by the acceptance review of issue #7 in the jobs themselves: the first clone that
the ``refresh`` job makes reports git's progress to the caller and into the run's record (a
long clone is not a silent minute); jobs that work on whole sources refuse ``--candidate``
instead of ignoring it; a live run shows how far it is in ``revisor jobs list`` and ``show``;
the refresh job opens a proposal queued while the SCM was down, once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from revisor.core.changes import Write
from revisor.db.jobs import JobOutcome
from revisor.db.models import TxState
from revisor.errors import InvalidInput, RemoteUnavailable
from revisor.jobs.runner import run_job
from revisor.jobs.runs import RunStore
from revisor.providers.base import Proposal
from tests.integration.test_jobs_support import ALICE, jobs_config, jobs_world, open_revisor

pytestmark = pytest.mark.timeout(120)


def test_the_first_clone_in_refresh_reports_its_progress(tmp_path: Path) -> None:
    w, _ = jobs_world(tmp_path / "w")
    try:
        rv = open_revisor({"data_dir": str(tmp_path / "fresh"),
                           "sources": {"proj": w.source_config}})
        w.others.append(rv)
        stored = rv.store.source("proj")
        assert stored.mirror is not None and not stored.mirror.exists
        seen: list[tuple[int, int, str]] = []
        run = run_job(rv, "refresh", progress=lambda d, t, m: seen.append((d, t, m)))
        assert run.outcome is JobOutcome.SUCCEEDED and stored.mirror.exists
        clone = [(d, t, m) for d, t, m in seen if m.startswith("proj: clone: ")]
        assert clone, seen
        # git's own meters, counted up to their totals
        assert any(t > 0 and d == t for d, t, _ in clone)
        # the run's record keeps the progress it was last given
        assert run.progress is not None and run.progress.total == 1
    finally:
        w.close()


def test_jobs_over_whole_sources_refuse_a_candidate_instead_of_ignoring_it(
    tmp_path: Path,
) -> None:
    w, rv = jobs_world(tmp_path)
    try:
        before = len(RunStore(rv.db).list())
        for name in ("refresh", "backup", "maintain"):
            with pytest.raises(InvalidInput) as err:
                run_job(rv, name, source="proj", candidate=1)
            assert "whole sources" in str(err.value)
        assert len(RunStore(rv.db).list()) == before  # nothing recorded
    finally:
        w.close()


def test_a_live_run_shows_its_progress_in_jobs_list_and_show(tmp_path: Path) -> None:
    w, rv = jobs_world(tmp_path)
    try:
        runs = RunStore(rv.db)
        live = runs.start("sync", owner="elsewhere:1:abc", source=None, candidate=None,
                          trigger="schedule")
        runs.progress(live.id, 78, 148, "proj#81: 10 workspaces (2/2)")
        config = tmp_path / "revisor.yaml"
        config.write_text(yaml.safe_dump(jobs_config(w)))
        env = {**os.environ, "REVISOR_CONFIG": str(config)}

        def cli(*args: str) -> str:
            out = subprocess.run([sys.executable, "-m", "revisor", *args], capture_output=True,
                                 text=True, check=True, env=env, timeout=120)
            return out.stdout

        listed = cli("jobs", "list")
        assert "running" in listed and "78/148 targets" in listed
        shown = cli("jobs", "show", str(live.id))
        assert "progress 78/148 proj#81: 10 workspaces (2/2)" in shown
    finally:
        w.close()


def _unreachable(*_: Any, **__: Any) -> Proposal:
    raise RemoteUnavailable("the SCM is down", retry_after=5)


def test_the_refresh_job_opens_a_queued_proposal_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    w, rv = jobs_world(tmp_path)
    try:
        monkeypatch.setattr(w.source.provider, "open", _unreachable)
        result = w.source.update("main", "Queued", ALICE, changes=[Write("q.txt", b"q\n")])
        assert result.proposal_queued
        monkeypatch.undo()

        run = run_job(rv, "refresh")  # the source is not due: the queued proposal makes it run
        assert run.outcome is JobOutcome.SUCCEEDED and run.changed == 1
        assert "1 transactions recovered" in run.results[0].summary
        entry = rv.journal.get(result.id)
        assert entry.state is TxState.DONE and entry.proposal_number is not None
        again = run_job(rv, "refresh")
        assert again.changed == 0
        opened = [p for p in rv.source("proj").provider.list() if p.source_branch == result.branch]
        assert len(opened) == 1
    finally:
        w.close()
