"""The child process of the crash test (``test_crash.py``): runs planned operations until killed.

Run as ``python -m tests.reliability.crash_child SPEC_JSON``. It starts a Revisor on the spec's
data directory (``start()`` runs recovery, as every real start does), prints ``ready``, and runs
the planned operations from ``spec["start"]`` on. Around each one it appends a line to the
append-only log ``spec["log"]`` and fsyncs it: ``{"op": i, "event": "begin"}`` before, and
``{"op": i, "event": "ack", ...result}`` after the call RETURNED — so the parent knows exactly
which operations were acknowledged, and which one was in flight when SIGKILL came.

Kept free of pytest and of test modules with tests, so that the child imports quickly.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from revisor.bootstrap import Revisor
from revisor.config import Config
from revisor.core.changes import Write
from revisor.core.transaction import Transaction
from revisor.vcs import Signature
from tests.integration.test_transactions_support import FAST, REVISOR

ALICE = Signature.now("Alice Liddell", "alice@example.com")

__all__ = ["op_path", "run"]


def op_path(kind: str, i: int, user: str) -> str:
    """The one file operation ``i`` writes (every operation writes its own path, so nothing
    conflicts and every acknowledged write must be found again exactly)."""
    if kind == "tx":
        return f"tx/{i:04d}.txt"
    return f"ws/{user}/{i:04d}.txt"


def op_content(i: int) -> bytes:
    return f"operation {i}\n".encode()


def _log(path: Path, record: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _run_op(rv: Revisor, cid: int, op: dict[str, Any]) -> dict[str, Any]:
    src = rv.source("proj")
    i, kind, user = op["op"], op["kind"], op["user"]
    if kind == "tx":
        path, data = op_path(kind, i, user), op_content(i)

        def in_a_directory(tx: Transaction) -> None:  # half of them through a work directory
            target = tx.workdir() / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

        result = src.update(
            "main", f"operation {i}", ALICE, in_a_directory if i % 2 else None,
            changes=None if i % 2 else [Write(path, data)], idempotency_key=f"op-{i}",
        )
        return {"commit": result.commit, "branch": result.branch,
                "proposal": result.proposal.number if result.proposal else None}
    ws = src.candidates.workspace(cid, user)
    if kind == "save":
        etag = ws.write(op_path(kind, i, user), op_content(i), if_match=None)
        return {"etag": etag, "head": ws.head()}
    if kind == "publish":
        published = ws.publish()
        return {"published": published.published, "commit": published.commit,
                "conflicts": [c.path for c in published.conflicts]}
    if kind == "sync":
        synced = ws.sync()
        return {"head": synced.head, "moved": synced.moved,
                "conflicts": [c.path for c in synced.conflicts]}
    if kind in ("squash", "backup"):  # through the jobs runner, as the scheduler runs them
        from revisor.jobs.runner import run_job

        run = run_job(rv, kind, source="proj", candidate=cid if kind == "squash" else None)
        return {"run": run.id, "outcome": str(run.outcome)}
    raise ValueError(f"unknown operation kind {kind!r}")


def run(spec: dict[str, Any]) -> None:
    log = Path(spec["log"])
    rv = Revisor(Config.model_validate(spec["config"]), policy=FAST, identity=REVISOR, env={})
    rv.start()
    print("ready", flush=True)
    for op in spec["ops"][spec["start"]:]:
        _log(log, {"op": op["op"], "event": "begin", "pid": os.getpid()})
        outcome = _run_op(rv, spec["candidate"], op)
        _log(log, {"op": op["op"], "event": "ack", **outcome})
    rv.close()


if __name__ == "__main__":
    run(json.loads(sys.argv[1]))
