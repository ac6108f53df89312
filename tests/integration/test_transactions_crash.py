"""kill -9 in the middle of a transaction, then a restart.

A child process runs one transaction against a remote served over smart HTTP with
``REVISOR_FAULT=<checkpoint>=kill``, so it dies by SIGKILL exactly there. A new
``Revisor(...).start()`` on the same data directory (which runs recovery) must then leave no
half-made branch: killed after the push, the branch is deleted (no proposal was opened); killed
after the proposal, the transaction is complete and marked done; killed before the push, nothing
is on the remote. The dead process's work directory is removed, and every journal entry is final.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from revisor.db.models import TxState
from revisor.providers.base import ProposalStatus
from tests.integration.test_transactions_support import ALICE, World, served_world
from tests.support.githttp import GitHttpServer

pytestmark = pytest.mark.timeout(120)

CHILD = textwrap.dedent(
    """
    import json, os, sys
    from revisor.bootstrap import Revisor
    from revisor.config import Config
    from revisor.core.changes import Write
    from tests.integration.test_transactions_support import ALICE, FAST, REVISOR

    spec = json.loads(sys.argv[1])
    rv = Revisor(Config.model_validate(spec["config"]), policy=FAST, identity=REVISOR, env={})
    rv.start()

    def tool(tx):
        wd = tx.workdir()
        (wd / "from-tool.txt").write_text("tool\\n")
        os.symlink(spec["outside"], wd / "escape")  # a link out of the work directory

    result = rv.source("proj").update(
        "main", "crashing", ALICE, tool, changes=[Write("crash.txt", b"crash")],
        idempotency_key="crash-key",
    )
    print(result.to_json())
    """
)


@pytest.fixture
def world(http_git: GitHttpServer, http_git_root: Path, tmp_path: Path) -> Iterator[World]:
    w = served_world(http_git, http_git_root, tmp_path, {"README.md": "hello\n"})
    w.source.view()
    try:
        yield w
    finally:
        w.close()


def _run_child(world: World, point: str | None, outside: Path) -> subprocess.CompletedProcess[str]:
    spec = {"config": {"data_dir": str(world.data_dir), "sources": {"proj": world.source_config}},
            "outside": str(outside)}
    env = {k: v for k, v in os.environ.items() if k != "REVISOR_FAULT"}
    if point is not None:
        env["REVISOR_FAULT"] = f"{point}=kill"
    env["PYTHONPATH"] = os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)], env=env, capture_output=True,
        text=True, timeout=90, check=False,
    )


@pytest.mark.parametrize(
    ("point", "state_when_killed"),
    [
        ("tx.before_commit", TxState.STARTED),
        ("tx.before_push", TxState.COMMITTED),
        ("tx.after_push", TxState.PUSHED),
        ("tx.after_proposal", TxState.PROPOSED),
    ],
)
def test_kill_9_mid_transaction_then_restart(
    world: World, tmp_path: Path, point: str, state_when_killed: TxState
) -> None:
    main = world.remote_refs()["refs/heads/main"]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("precious\n")
    outside.chmod(0o750)

    proc = _run_child(world, point, outside)
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    # what the dead process left
    (row,) = world.journal_rows()
    assert row.state is state_when_killed and not row.finished
    leftovers = world.tmp_leftovers()
    if point == "tx.before_commit":
        assert len(leftovers) == 1 and leftovers[0].name.startswith("revisor-tx-")
        assert (leftovers[0] / "from-tool.txt").exists()
    else:
        assert leftovers == []
    branches = world.upstream.revisor_branches()
    if point in ("tx.after_push", "tx.after_proposal"):
        assert branches == {row.branch: row.commit}  # half-made until recovery decides
    else:
        assert branches == {}

    # the restart
    world.reopen()
    (entry,) = world.journal_rows()
    assert entry.finished
    assert world.tmp_leftovers() == []
    assert stat.S_IMODE(outside.stat().st_mode) == 0o750  # the link was never followed
    assert (outside / "precious.txt").read_text() == "precious\n"
    assert world.remote_refs()["refs/heads/main"] == main
    proposals = world.source.provider.list()
    actions = world.audit_actions(entry.id)
    assert actions[-1] == "transaction.recover"

    if point == "tx.after_proposal":
        # complete: branch and proposal stay, and the journal says done, with the result
        assert entry.state is TxState.DONE and entry.result_json is not None
        assert world.upstream.revisor_branches() == {row.branch: row.commit}
        (p,) = proposals
        assert (p.status, p.source_branch, p.source_commit) == (
            ProposalStatus.OPEN, row.branch, row.commit)
        result = json.loads(entry.result_json)
        assert result["proposal"]["number"] == p.number and result["commit"] == row.commit
        # the idempotency key now answers with that result
        again = world.source.update("main", "crashing", ALICE, idempotency_key="crash-key")
        assert again.replayed and again.commit == row.commit
    else:
        assert world.upstream.revisor_branches() == {}
        assert proposals == []
        expected = TxState.COMPENSATED if point == "tx.after_push" else TxState.FAILED
        assert entry.state is expected
    world.assert_clean()


def test_a_restart_leaves_a_live_process_alone(world: World, tmp_path: Path) -> None:
    """A transaction still running in another process is neither recovered nor has its work
    directory removed by a process starting meanwhile."""
    spec = {"config": {"data_dir": str(world.data_dir), "sources": {"proj": world.source_config}},
            "outside": str(tmp_path / "nowhere")}
    env = {**os.environ, "REVISOR_FAULT": "tx.before_commit=sleep:30",
           "PYTHONPATH": str(Path.cwd())}
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(spec)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        start = time.monotonic()
        while not world.tmp_leftovers():
            assert time.monotonic() - start < 60, "the child never made its work dir"
            assert child.poll() is None
            time.sleep(0.05)
        world.reopen()
        assert len(world.tmp_leftovers()) == 1
        (row,) = world.journal_rows()
        assert row.state is TxState.STARTED
    finally:
        child.kill()
        child.wait(timeout=30)
    world.reopen()  # now it is dead
    (row,) = world.journal_rows()
    assert row.state is TxState.FAILED
    world.assert_clean()
