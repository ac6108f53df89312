"""Helpers shared by the backup, restore and cleanup tests; no tests here.

A backup world is a candidates world (``test_candidates_support``: one Revisor over a ``git``
source whose upstream is a bare repository on disk behind ``file://``) whose source has a backup
remote: a bare repository served over smart HTTP on loopback by ``http_git``, or one on disk.
Candidates and workspaces are made through the services; what the backup holds is read back
with the git CLI (``git for-each-ref`` on the bare backup, ``git ls-remote`` over HTTP), the
confirmations and rows from the database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from revisor.db.backups import BackupStore, Confirmed, export_records
from revisor.db.candidates import Candidate, CandidateStatus, CandidateStore
from revisor.db.models import CandidateRow, utcnow
from revisor.services.backup import BackupResult, backup_source
from revisor.services.retention import CleanupResult, cleanup_source
from tests.integration.test_candidates_support import (
    ALICE,
    BASE_FILES,
    BOB,
    World,
    git,
)
from tests.integration.test_transactions_support import make_world

__all__ = [
    "ALICE",
    "BOB",
    "Populated",
    "age",
    "backup_refs",
    "bworld",
    "confirmed",
    "init_backup",
    "populate",
    "records",
    "revisor_refs",
    "run_backup",
    "run_child_backup",
    "run_cleanup",
    "set_status",
    "start_child_job",
]


def init_backup(path: Path) -> Path:
    """An empty bare repository standing for the backup remote."""
    git("init", "-q", "--bare", "-b", "main", str(path))
    return path


def bworld(tmp: Path, backup_url: str, **source: Any) -> World:
    """A ``git`` world whose source backs up to ``backup_url``."""
    return make_world("git", tmp, BASE_FILES, backup={"url": backup_url}, **source)


@dataclass(frozen=True)
class Populated:
    open: Candidate  # open; alice and bob have workspaces with edits
    submitted: Candidate  # submitted; alice has a workspace
    abandoned: Candidate  # abandoned; bob has a workspace


def populate(w: World) -> Populated:
    """Three candidates, each with workspaces that hold edits, in the three statuses."""
    cands = w.source.candidates
    one = cands.create("open-one", "Still open", ALICE)
    two = cands.create("done-two", "Submitted", ALICE)
    three = cands.create("gone-three", "Abandoned", BOB)
    for cand, user, path in ((one, "alice", "a.txt"), (one, "bob", "b.txt"),
                             (two, "alice", "c.txt"), (three, "bob", "README.md")):
        ws = cands.workspace(cand.id, user)
        _, etag = ws.read(path)
        ws.write(path, f"{user} was here in {cand.name}\n".encode(), if_match=etag)
    cands.workspace(one.id, "alice").publish()
    cands.abandon(three.id, BOB)
    set_status(w, two.id, CandidateStatus.SUBMITTED)
    return Populated(cands.get(one.id), cands.get(two.id), cands.get(three.id))


def set_status(w: World, candidate_id: int, status: CandidateStatus) -> None:
    """Put a candidate in ``status`` as a submit leaves it (the row; refs stay)."""
    CandidateStore(w.rv.db).update("proj", candidate_id, status=status)


def age(w: World, candidate_id: int, days: float) -> datetime:
    """Make the candidate's last change ``days`` old; return that time."""
    when = utcnow() - timedelta(days=days)
    with w.rv.db.session() as s:
        s.execute(update(CandidateRow).where(CandidateRow.id == candidate_id)
                  .values(updated_at=when))
    return when


def run_backup(w: World, **kwargs: Any) -> BackupResult:
    return backup_source(w.source.stored, w.rv.db, w.rv.config, env={}, **kwargs)


def run_cleanup(w: World, now: datetime | None = None) -> CleanupResult:
    return cleanup_source(w.source.stored, w.rv.db, w.rv.config, env={}, now=now)


def confirmed(w: World) -> Confirmed:
    return BackupStore(w.rv.db).confirmed("proj")


def records(w: World) -> dict[str, bytes]:
    return export_records(w.rv.db, "proj")


def backup_refs(path: Path) -> dict[str, str]:
    """Every ref of the bare backup repository, read by git."""
    out = git(f"--git-dir={path}", "for-each-ref", "--format=%(objectname) %(refname)")
    return {name: oid for oid, name in (line.split(" ", 1) for line in out.splitlines())}


def revisor_refs(w: World) -> dict[str, str]:
    """The mirror's refs/revisor/*, read by git."""
    return w.mirror_refs("refs/revisor/")


_CHILD = textwrap.dedent(
    """
    import json, sys
    from revisor.bootstrap import Revisor
    from revisor.config import Config
    from revisor.services.backup import backup_source
    from tests.integration.test_transactions_support import FAST, REVISOR

    spec = json.loads(sys.argv[1])
    rv = Revisor(Config.model_validate(spec["config"]), policy=FAST, identity=REVISOR, env={})
    rv.start(recover=False)
    result = backup_source(rv.store.source("proj"), rv.db, rv.config, env={})
    print(result.pushed)
    """
)


def run_child_backup(w: World, fault: str | None) -> subprocess.CompletedProcess[str]:
    """A backup in a child process, killed (SIGKILL) at ``fault`` (a checkpoint) if given."""
    spec = {"config": {"data_dir": str(w.data_dir), "sources": {"proj": w.source_config}}}
    env = {k: v for k, v in os.environ.items() if k != "REVISOR_FAULT"}
    if fault is not None:
        env["REVISOR_FAULT"] = f"{fault}=kill"
    env["PYTHONPATH"] = os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)], env=env,
                          capture_output=True, text=True, timeout=90, check=False)


_JOB_CHILD = textwrap.dedent(
    """
    import json, sys
    from revisor.bootstrap import Revisor
    from revisor.config import Config
    from revisor.jobs.runner import run_job
    from tests.integration.test_transactions_support import FAST, REVISOR

    spec = json.loads(sys.argv[1])
    rv = Revisor(Config.model_validate(spec["config"]), policy=FAST, identity=REVISOR, env={})
    rv.start(recover=False)
    run = run_job(rv, spec["job"])
    print(run.outcome.value)
    """
)


def start_child_job(w: World, job: str, fault: str) -> subprocess.Popen[str]:
    """``revisor jobs run <job>`` in a child process with ``REVISOR_FAULT=<fault>`` (e.g. a
    checkpoint that sleeps while the job holds its lease)."""
    spec = {"config": {"data_dir": str(w.data_dir), "sources": {"proj": w.source_config}},
            "job": job}
    env = {k: v for k, v in os.environ.items() if k != "REVISOR_FAULT"}
    env["REVISOR_FAULT"] = fault
    env["PYTHONPATH"] = os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, "-c", _JOB_CHILD, json.dumps(spec)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
