"""``revisor jobs run|list|show`` and ``revisor worker`` as real processes on a configured git
source: exit codes, ``--json``, two ``worker --once`` processes at once running each due job once,
and a worker stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from revisor.jobs.leases import Leases, candidate_key
from revisor.jobs.runs import RunStore
from tests.integration.test_jobs_support import (
    NO_BACKUP,
    jobs_config,
    jobs_world,
    make_candidates,
)


def _env(config: Path) -> dict[str, str]:
    return {**os.environ, "REVISOR_CONFIG": str(config)}


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "revisor", *args], capture_output=True,
                          text=True, check=False, env=_env(config), timeout=180)


def js(config: Path, *args: str, code: int = 0) -> Any:
    out = run(config, *args, "--json")
    assert out.returncode == code, (args, out.stdout, out.stderr)
    return json.loads(out.stdout)


def test_jobs_run_list_show_and_exit_codes(tmp_path: Path) -> None:
    w, rv = jobs_world(tmp_path, NO_BACKUP)
    try:
        ids = make_candidates(rv.source("proj").candidates, 2)
        config = tmp_path / "revisor.yaml"
        config.write_text(yaml.safe_dump(jobs_config(w, NO_BACKUP)))

        first = js(config, "jobs", "run", "sync")
        assert first["outcome"] == "succeeded" and first["changed"] == 2
        assert {r["target"] for r in first["results"]} == {f"proj#{i}" for i in ids}
        again = js(config, "jobs", "run", "sync", "--source", "proj")
        assert again["changed"] == 0 and again["counts"] == {"succeeded": 2}

        listed = js(config, "jobs", "list", "--job", "sync")
        assert [r["id"] for r in listed] == [again["id"], first["id"]]
        shown = js(config, "jobs", "show", str(first["id"]))
        assert shown["results"] == first["results"]

        held = Leases(rv.db).acquire(candidate_key("proj", ids[0]), "someone else", ttl=600)
        assert held is not None
        skipped = js(config, "jobs", "run", "squash", code=4)
        assert skipped["outcome"] == "partial" and skipped["counts"] == {
            "skipped": 1, "succeeded": 1}

        missing = run(config, "jobs", "show", "9999")
        assert missing.returncode == 3 and "no job run 9999" in missing.stderr
        unknown = run(config, "jobs", "run", "nonesuch")
        assert unknown.returncode == 2
        assert len(RunStore(rv.db).list()) == 3  # refused runs are not recorded
    finally:
        w.close()


def test_two_workers_once_at_the_same_time_run_each_job_once(tmp_path: Path) -> None:
    w, rv = jobs_world(tmp_path, NO_BACKUP)
    try:
        make_candidates(rv.source("proj").candidates, 1)
        config = tmp_path / "revisor.yaml"
        config.write_text(yaml.safe_dump(jobs_config(w, NO_BACKUP)))
        procs = [subprocess.Popen([sys.executable, "-m", "revisor", "worker", "--once", "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=_env(config)) for _ in range(2)]
        outputs = [p.communicate(timeout=180) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        ran = [r["job"] for out, _ in outputs for r in json.loads(out)]
        assert sorted(ran) == ["maintain", "refresh", "squash", "sync"]
        assert sorted(r.job for r in RunStore(rv.db).list()) == sorted(ran)
    finally:
        w.close()


def test_worker_runs_until_sigterm(tmp_path: Path) -> None:
    w, rv = jobs_world(tmp_path, NO_BACKUP)
    try:
        config = tmp_path / "revisor.yaml"
        config.write_text(yaml.safe_dump(jobs_config(w, NO_BACKUP)))
        proc = subprocess.Popen([sys.executable, "-m", "revisor", "worker", "--poll", "0.1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_env(config))
        try:
            deadline = time.monotonic() + 120
            while len(RunStore(rv.db).list()) < 4:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the worker ran nothing"
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0 and "stopped" in err
        runs = RunStore(rv.db).list()
        assert all(r.finished and r.trigger == "schedule" for r in runs)
    finally:
        w.close()
