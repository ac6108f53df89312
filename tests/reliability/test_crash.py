"""Crash safety: mixed operations in a child process killed with SIGKILL at random points.

A child process (``crash_child.py``) runs a seeded plan of operations on one source — transactions
to a proposal, workspace saves, publishes, syncs — and logs each one it began and each one that
RETURNED (acknowledged), with fsync. The parent kills it with SIGKILL (its whole process group,
so no git process it started survives it) at random moments: after a random number of
acknowledged operations plus a random delay into the next one, or at a random named checkpoint
(``REVISOR_FAULT=<point>=kill``: after the push, after the proposal, before a workspace ref
moves, after it moved but before its row is written, after the candidate moved in a publish). It
is restarted each time, and each start runs recovery, as a real restart does (the first child
always dies at ``workspace.after_ref``, so every run has a row to reconcile). The operation in
flight when the kill came is not retried.

Then, after one more start: ``git fsck --full`` is clean on the upstream and on the mirror; no
ref points at a missing object; no ``*.lock`` is left in either repository and no temporary
directory in the data directory; every journal entry is final; every acknowledged operation is
present (its branch and proposal, its file in the workspace, its published files in the
candidate); nothing unacknowledged is half-present (every ``revisor/*`` branch on the remote
belongs to a finished, successful transaction with its proposal, and every proposal to one; no
file appears that no operation began); and the database and the refs agree: the candidate's and
every workspace's head in SQL equal their refs. A kill between a ref move and its row's update
leaves the row behind its ref; the start after it reconciles the row (``revisor.services.
reconcile``), so no lag may remain — the repairs made are counted in the report.

Short mode: 24 operations (a few kills). ``REVISOR_LONG=1``: 200 operations.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from revisor.bootstrap import Revisor
from revisor.config import Config
from revisor.db.models import TxState
from revisor.providers.base import ProposalStatus
from tests.integration.test_candidates_support import ALICE, BASE_FILES
from tests.integration.test_transactions_support import (
    FAST,
    REVISOR,
    Upstream,
    World,
    git,
    make_world,
)
from tests.reliability.common import long_mode, write_report
from tests.reliability.crash_child import op_content, op_path

pytestmark = pytest.mark.timeout(1800)

SEED = 20_261_122
USERS = ("u0", "u1", "u2")
CHECKPOINTS = (
    "tx.before_commit", "tx.before_push", "tx.after_push", "tx.after_proposal",
    "workspace.before_ref", "workspace.after_ref", "publish.after_candidate",
)
WEIGHTS = {"tx": 3, "save": 4, "publish": 2, "sync": 1}
#: Squashes and backups run through the jobs runner (engineers A and B): included when present.
JOBS = all(importlib.util.find_spec(m) is not None for m in (
    "revisor.jobs.runner", "revisor.jobs.squash", "revisor.jobs.backup", "revisor.services.backup"))
JOB_CHECKPOINTS = ("job.squash.before_push", "backup.before_push", "backup.after_push")
JOB_WEIGHTS = {"squash": 1, "backup": 1}
CHILD_TIMEOUT = 300.0  # generous: the machine may be loaded; never a timing assertion


@dataclass
class Log:
    """What the children logged: operations begun, and those acknowledged with their results."""

    begun: set[int] = field(default_factory=set)
    acked: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Log:
        log = cls()
        if not path.exists():
            return log
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)  # every line was fsynced whole: a torn line is a failure
            if rec["event"] == "begin":
                log.begun.add(rec["op"])
            else:
                log.acked[rec["op"]] = rec
        return log

    def next_op(self) -> int:
        return max(self.begun) + 1 if self.begun else 0


def plan(n: int, rng: random.Random) -> list[dict[str, Any]]:
    weights = {**WEIGHTS, **(JOB_WEIGHTS if JOBS else {})}
    kinds = [k for k, w in weights.items() for _ in range(w)]
    return [{"op": i, "kind": rng.choice(kinds), "user": rng.choice(USERS)} for i in range(n)]


@dataclass
class Cycle:
    start: int
    fault: str | None
    kill_after_acks: int
    how: str = ""  # "completed", "checkpoint", "timer"


def _child_env(fault: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REVISOR_FAULT"}
    if fault is not None:
        env["REVISOR_FAULT"] = f"{fault}=kill"
    env["PYTHONPATH"] = os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")])
    return env


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_cycle(spec: dict[str, Any], log_path: Path, cycle: Cycle, rng: random.Random,
              err_path: Path) -> None:
    """One child: started on ``spec`` from ``cycle.start``, killed as ``cycle`` says."""
    spec = {**spec, "start": cycle.start}
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.crash_child", json.dumps(spec)],
            env=_child_env(cycle.fault), stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT
        acked_before = len(Log.read(log_path).acked)
        while proc.poll() is None:
            if len(Log.read(log_path).acked) - acked_before >= cycle.kill_after_acks:
                time.sleep(rng.uniform(0.0, 0.25))  # somewhere into the next operation
                if proc.poll() is not None:  # it finished (or died at its checkpoint) first
                    break
                _kill_group(proc)
                proc.wait(timeout=60)
                cycle.how = "timer"
                break
            assert time.monotonic() < deadline, "the child made no progress in time"
            time.sleep(0.01)
        code = proc.wait(timeout=60)
    finally:
        _kill_group(proc)  # whatever git process the child had started dies with it
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    if cycle.how != "timer":
        if code == -signal.SIGKILL:
            cycle.how = "checkpoint"
        else:
            assert code == 0, f"the child failed (exit {code}): {err_path.read_text()[-3000:]}"
            cycle.how = "completed"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    extra: dict[str, Any] = {}
    if JOBS:  # the source backs up to a bare repository on disk
        backup = tmp_path / "backup.git"
        git("init", "-q", "--bare", "-b", "main", str(backup))
        extra["backup"] = {"url": f"file://{backup}"}
    w = make_world("git", tmp_path, BASE_FILES, **extra)
    try:
        yield w
    finally:
        w.close()


def _repo_refs(path: Path) -> dict[str, str]:
    return Upstream(path).refs()


def _assert_sound(path: Path) -> None:
    """fsck clean, every ref's object present, no lock file left."""
    Upstream(path).fsck()
    refs = _repo_refs(path)
    if refs:
        out = git(f"--git-dir={path}", "cat-file", "--batch-check",
                  input="\n".join(refs.values()).encode() + b"\n")
        assert "missing" not in out, out
    locks = sorted(str(p.relative_to(path)) for p in path.rglob("*.lock"))
    assert locks == [], f"lock files left in {path}: {locks}"


def _tree(up: Upstream, rev: str) -> dict[str, str]:
    return {p: oid for p, (_mode, oid) in up.ls_tree(rev).items()}


def _blob_of(up: Upstream, tree: dict[str, str], path: str) -> bytes | None:
    oid = tree.get(path)
    if oid is None:
        return None
    return up.git("cat-file", "blob", oid).encode()


def check_after_crashes(w: World, ops: list[dict[str, Any]], log: Log, cid: int) -> dict[str, Any]:
    """Every promise of the module docstring; returns figures for the report."""
    rv = w.reopen()  # the next start: recovery must clean up by itself
    src = rv.source("proj")
    assert w.tmp_leftovers() == []
    unfinished = [(e.id, e.state) for e in w.journal_rows() if not e.finished]
    assert unfinished == []
    mirror = w.mirror_path
    assert mirror is not None
    _assert_sound(w.upstream.path)
    _assert_sound(mirror)

    # -- transactions --------------------------------------------------------------------
    rows = {e.idempotency_key: e for e in w.journal_rows() if e.idempotency_key}
    proposals = {p.source_branch: p for p in src.provider.list()}
    remote = w.upstream.revisor_branches()
    done_branches = {}
    for op in (o for o in ops if o["kind"] == "tx" and o["op"] in log.begun):
        i = op["op"]
        entry = rows.get(f"op-{i}")
        if i in log.acked:
            ack = log.acked[i]
            assert entry is not None and entry.state is TxState.DONE, (i, entry)
            assert (entry.commit, entry.branch) == (ack["commit"], ack["branch"])
            assert remote.get(ack["branch"]) == ack["commit"]
            p = proposals[ack["branch"]]
            assert (p.number, p.source_commit, p.status) == (
                ack["proposal"], ack["commit"], ProposalStatus.OPEN)
            assert w.upstream.show(ack["commit"], op_path("tx", i, "")) == op_content(i)
        if entry is not None and entry.state is TxState.DONE:
            assert entry.branch is not None
            done_branches[entry.branch] = entry.commit
        elif entry is not None:  # failed or compensated: nothing of it anywhere
            assert entry.state in (TxState.FAILED, TxState.COMPENSATED), (i, entry)
            assert entry.branch not in remote and entry.branch not in proposals
    # nothing half-present: every revisor branch and proposal belongs to a done transaction
    assert remote == done_branches
    assert set(proposals) == set(done_branches)
    assert all(p.source_commit == done_branches[b] for b, p in proposals.items())

    # -- workspaces and the candidate ----------------------------------------------------
    store = src.candidates.ctx.store
    mirror_up = Upstream(mirror)
    killed = [o for o in ops if o["op"] in log.begun - set(log.acked)]

    def agree(what: str, row: str, ref: str) -> None:
        """The row equals the ref: a row a kill left behind was reconciled at the start."""
        assert row == ref, f"{what}: row {row} behind ref {ref} after the restart"

    cand_row = store.get("proj", cid)
    cand_ref = w.mirror_refs()[f"refs/revisor/candidates/{cid}"]
    agree("candidate", cand_row.head_commit, cand_ref)
    cand_tree = _tree(mirror_up, cand_ref)
    heads: dict[str, dict[str, str]] = {}
    for rec in store.list_workspaces(cid):
        ref = w.mirror_refs()[rec.ref]
        agree(f"workspace {rec.user}", rec.head_commit, ref)
        heads[rec.user] = _tree(mirror_up, ref)
    for op in ops:
        i, kind, user = op["op"], op["kind"], op["user"]
        if i not in log.acked:
            continue
        if kind == "save":
            path = op_path(kind, i, user)
            assert _blob_of(mirror_up, heads[user], path) == op_content(i), (i, path)
        if kind == "publish":  # every save of that user acknowledged before it is published
            for earlier in ops[:i]:
                j = earlier["op"]
                if earlier["kind"] == "save" and earlier["user"] == user and j in log.acked:
                    path = op_path("save", j, user)
                    assert _blob_of(mirror_up, cand_tree, path) == op_content(j), (i, path)
    # no file that no operation began
    begun_paths = {op_path(o["kind"], o["op"], o["user"]) for o in ops if o["op"] in log.begun}
    for tree in [cand_tree, *heads.values()]:
        made = {p for p in tree if p.startswith(("ws/", "tx/"))}
        assert made <= begun_paths, sorted(made - begun_paths)
    return {
        "transactions done": len(done_branches),
        "transactions failed or compensated": sum(
            1 for o in ops if o["kind"] == "tx" and (e := rows.get(f"op-{o['op']}")) is not None
            and e.state in (TxState.FAILED, TxState.COMPENSATED)),
        "files in the candidate": sum(1 for p in cand_tree if p.startswith("ws/")),
        "rows reconciled with their ref after a kill": [
            (e.action, e.target) for e in reversed(rv.audit.query(source="proj", limit=1000))
            if e.action in ("candidate.reconcile", "workspace.reconcile")],
        "operations killed in flight": [(o["op"], o["kind"]) for o in killed],
    }


def check_jobs_after_crashes(w: World, config: dict[str, Any], cid: int,
                             backup: Path) -> dict[str, Any]:
    """Squash and backup after the crashes: the backup repository is sound and nothing in it
    points at a missing object; job runs of dead processes are reaped (as the scheduler does
    when it starts); one more run of each (as the next scheduled one) completes: the backup
    then holds every ``refs/revisor/*`` ref of the mirror and the confirmations say so, and the
    candidate's one-commit form sits on ``main`` with the candidate's tree."""
    from revisor.jobs.runner import run_job
    from revisor.jobs.runs import RunStore
    from revisor.services.backup import META_REF
    from tests.integration.test_backup_support import confirmed

    rv = Revisor(Config.model_validate(config), policy=FAST, identity=REVISOR, env={}).start()
    w.others.append(rv)
    _assert_sound(backup)
    runs = RunStore(rv.db)
    reaped = runs.reap()
    assert [r.id for r in runs.list() if not r.finished] == []
    squash = run_job(rv, "squash", source="proj", candidate=cid)
    saved = run_job(rv, "backup", source="proj")
    assert (str(squash.outcome), str(saved.outcome)) == ("succeeded", "succeeded"), (
        squash, saved)
    mirror = Upstream(w.mirror_path or w.upstream.path)
    mine = mirror.refs("refs/revisor/")
    held = Upstream(backup).refs("refs/revisor/")
    assert {r: v for r, v in held.items() if r != META_REF} == {
        r: v for r, v in mine.items() if r != META_REF}
    got = confirmed(w)
    assert {r: v for r, v in got.refs.items() if v is not None} == held
    cand = mine[f"refs/revisor/candidates/{cid}"]
    main = mirror.refs()["refs/heads/main"]
    if mirror.ls_tree(cand) != mirror.ls_tree(main):  # else: nothing to squash
        squashed = mine[f"refs/revisor/proposals/{cid}"]
        assert mirror.parents(squashed) == [main]
        assert mirror.ls_tree(squashed) == mirror.ls_tree(cand)
    _assert_sound(backup)
    return {"job runs reaped": len(reaped), "refs backed up": len(held)}


def test_sigkill_at_random_points_then_restart(world: World, tmp_path: Path,
                                               report_dir: Path) -> None:
    n = 200 if long_mode() else 24
    rng = random.Random(SEED)
    ops = plan(n, rng)
    cand = world.source.candidates.create("crash", "Crash test", ALICE)
    for user in USERS:
        world.source.candidates.workspace(cand.id, user)
    log_path = tmp_path / "ops.log"
    config: dict[str, Any] = {"data_dir": str(world.data_dir),
                              "sources": {"proj": world.source_config}}
    if JOBS:  # a killed run's leases must not hold the next run off for long
        config["jobs"] = {"squash": {"lease_ttl": "1s"}, "backup": {"lease_ttl": "1s"}}
    spec = {"config": config, "candidate": cand.id,
            "ops": ops, "log": str(log_path)}
    cycles: list[Cycle] = []
    leftovers_seen = Counter[str]()
    while True:
        log = Log.read(log_path)
        start = log.next_op()
        if start >= n:
            break
        assert len(cycles) < 3 * n, "too many restarts without finishing the plan"
        points = [*CHECKPOINTS, *(JOB_CHECKPOINTS if JOBS else ())]
        fault = rng.choice([*points, None, None, None])
        # a checkpoint kill fires when the plan reaches its point; the timer is a fallback then
        cycle = Cycle(start, fault, rng.randint(1, 3) if fault is None else rng.randint(3, 8))
        if not cycles:  # the first child always dies between a save's ref move and its row
            cycle = Cycle(start, "workspace.after_ref", n)
        run_cycle(spec, log_path, cycle, rng, tmp_path / f"child-{len(cycles)}.err")
        cycles.append(cycle)
        if world.tmp_leftovers():
            leftovers_seen["temporary directories"] += 1
        if any(not e.finished for e in world.journal_rows()):
            leftovers_seen["unfinished journal entries"] += 1
    log = Log.read(log_path)
    kills = [c for c in cycles if c.how != "completed"]
    assert len(kills) >= 1
    figures = check_after_crashes(world, ops, log, cand.id)
    if cycles[0].how == "checkpoint":  # that row lagged; the next start reconciled it
        assert figures["rows reconciled with their ref after a kill"], figures
    if JOBS:
        figures.update(check_jobs_after_crashes(world, config, cand.id, tmp_path / "backup.git"))
    figures.update({
        "operations": n, "acknowledged": len(log.acked),
        "killed in flight": sorted(log.begun - set(log.acked)),
        "kills": len(kills), "kills at a checkpoint": sum(c.how == "checkpoint" for c in cycles),
        "restarts": len(cycles), "kinds": dict(Counter(o["kind"] for o in ops)),
        "leftovers found after a kill (cleaned by the next start)": dict(leftovers_seen),
    })
    write_report(report_dir, "crash", figures)
    assert len(log.acked) + len(log.begun - set(log.acked)) == n


_HOLD_AND_DIE = textwrap.dedent(
    """
    import os, signal, sys
    import pygit2
    pg = pygit2.Repository(sys.argv[1])
    tx = pg.transaction()
    tx.__enter__()
    tx.lock_ref(sys.argv[2])  # what update_refs does first; then the kill comes
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_ref_lock_left_by_a_killed_writer_is_removed_by_the_next_writer(
    world: World,
) -> None:
    """SIGKILL between locking a ref and committing leaves ``<ref>.lock``. While it is fresh it
    is respected (a live writer may hold it); once older than ``STALE_LOCK_SECONDS`` the next
    writer after a restart removes it and the write lands — without ``revisor doctor``."""
    from revisor.errors import GitFailure
    from revisor.vcs.refs import STALE_LOCK_SECONDS

    cands = world.source.candidates
    cand = cands.create("locked", "Locked", ALICE)
    ws = cands.workspace(cand.id, "u0")
    mirror = world.mirror_path
    assert mirror is not None
    proc = subprocess.run([sys.executable, "-c", _HOLD_AND_DIE, str(mirror), ws.ref],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    lock = mirror / f"{ws.ref}.lock"
    assert lock.exists()
    with pytest.raises(GitFailure, match="locked by another writer"):
        ws.write("fresh.txt", b"refused while the lock is fresh\n", if_match=None)
    old = time.time() - STALE_LOCK_SECONDS - 5  # as if that much time had passed
    os.utime(lock, (old, old))
    rv = world.reopen()
    ws2 = rv.source("proj").candidates.workspace(cand.id, "u0")
    ws2.write("after.txt", b"written after the restart\n", if_match=None)
    assert not lock.exists()
    head = world.mirror_refs()[ws.ref]
    assert Upstream(mirror).show(head, "after.txt") == b"written after the restart\n"
    assert rv.source("proj").candidates.ctx.store.get_workspace(cand.id, "u0").head_commit == head
    _assert_sound(mirror)
