"""The benchmark for transactions (issue 4): a change of 10 files, end to end to a proposal.

Why it exists: Revisor's promise to cup's users is that a change made through a transaction (stage
in memory, one commit, push a new branch with a lease, open a proposal) costs a small fraction of
cup's way (a temporary worktree of the whole repository, ``git add``, ``git commit``, ``git push``),
and that independent transactions on one source run side by side in several processes without
stepping on each other. This script measures both on the synthetic corpus against a local bare
remote, next to cup's and Gitea's ways, and checks what every transaction left behind (the
branch on the remote holds exactly its change; proposal numbers are unique and dense) before
quoting how fast it was.

    .venv/bin/python benchmarks/bench_transactions.py           # full corpus: ~3 minutes
    .venv/bin/python benchmarks/bench_transactions.py --quick   # scaled-down corpus: ~20 s
    .venv/bin/python benchmarks/bench_transactions.py --scratch /dev/shm --output PATH

Results go to the terminal and, as Markdown, to ``benchmarks/results/transactions.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import math
import multiprocessing
import os
import pstats
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pygit2
from rich.console import Console
from rich.table import Table

import anchors
from bench_store import scratch_remote
from corpus import FULL, QUICK, Corpus, ensure_corpus
from harness import (
    Section,
    Target,
    Timing,
    file_creation_cost,
    fmt_duration,
    load_average,
    machine,
    measure_interleaved,
    render_markdown,
    render_terminal,
)
from revisor.bootstrap import Revisor
from revisor.config import Config, GitSource
from revisor.core.changes import Write
from revisor.providers.builtin import BuiltinProvider
from revisor.services.sources import Source
from revisor.vcs import Signature

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SOURCE = "big"
AUTHOR = Signature("Bench Author", "author@bench.invalid", datetime(2026, 1, 1, tzinfo=UTC))
CHANGE_SETS = 20
FILES_PER_COMMIT = 10
MAX_EDITED_FILE = 256 << 10

Op = Callable[[int], object]
Changes = dict[str, bytes]

# The ways the targets compare (the names shown in the tables).
REVISOR_WAY = "Revisor Source.update(..., propose=True)"
CUP_WAY = "worktree add + add + commit + push + remove (cup)"
GITEA_WAY = "clone --shared + checkout + add + commit + push (Gitea)"
CUP_SHM_WAY = "cup's way, worktree on tmpfs"
GITEA_SHM_WAY = "Gitea's way, clone on tmpfs"
IN_SCRATCH = "checkout in the scratch directory"


@dataclass(frozen=True)
class Plan:
    """How many operations each way is timed for (warm-up runs come on top)."""

    transactions: int = 100
    cup: int = 8
    gitea: int = 6
    tmpfs: int = 8
    throughput: int = 40  # transactions per throughput run
    throughput_rounds: int = 3  # runs of each configuration, alternating
    profiled: int = 20


FULL_PLAN = Plan()
QUICK_PLAN = Plan(
    transactions=15, cup=2, gitea=2, tmpfs=2, throughput=10, throughput_rounds=1, profiled=5
)


@dataclass
class Context:
    corpus: Corpus
    scratch: Path
    tmpfs: Path | None  # where the anchors' checkouts go for their best case, if anywhere
    plan: Plan
    profile: bool
    seed: int = 5
    profiles: dict[str, str] = field(default_factory=dict)

    def rng(self, salt: str) -> random.Random:
        return random.Random(f"{self.seed}:{salt}")

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the world: a remote, Revisor on it, and cup's clone -------------------------------------------
def revisor_config(data_dir: Path, remote: Path) -> Config:
    """One git source on the bare remote. ``refresh: 1h``: no fetch inside the measured
    transactions (with the default 30 s, one transaction per interval also pays a refresh)."""
    return Config(
        data_dir=data_dir,
        sources={SOURCE: GitSource(url=str(remote), refresh=timedelta(hours=1))},
    )


def open_source(config: Config) -> tuple[Revisor, Source]:
    app = Revisor(config).start()
    return app, app.source(SOURCE)


def provider_of(src: Source) -> BuiltinProvider:
    provider = src.provider
    assert isinstance(provider, BuiltinProvider), provider
    return provider


def writes(changes: Mapping[str, bytes]) -> list[Write]:
    return [Write(path, data) for path, data in changes.items()]


@dataclass(frozen=True)
class Made:
    """What one transaction (any way) left: its branch, commit, proposal, and the change set."""

    branch: str
    commit: str
    changes: Changes
    proposal: int | None = None


def cup_commit(
    clone: Path, branch: str, changes: Mapping[str, bytes], root: Path, message: str
) -> str:
    """cup's way: a temporary worktree of a long-lived clone on a new branch from ``origin/main``;
    write, ``add``, ``commit``, ``push`` the branch, remove the worktree."""
    repo = anchors.Git(cwd=clone)
    wt = root / branch.replace("/", "-")
    repo.run("worktree", "add", "-q", "-b", branch, str(wt), "origin/main")
    work = anchors.Git(cwd=wt)
    for path, data in changes.items():
        (wt / path).write_bytes(data)
    work.run("add", "--", *changes)
    work.run("commit", "-q", "-m", message)
    head = work.out("rev-parse", "HEAD")
    work.run("push", "-q", "origin", f"{branch}:refs/heads/{branch}")
    repo.run("worktree", "remove", "--force", str(wt))
    return head


def change_sets(pg: pygit2.Repository, commit: str, rng: random.Random, k: int) -> list[Changes]:
    """``k`` sets of FILES_PER_COMMIT existing text files of ``commit``, each with a line
    appended (as ``bench_vcs.py`` makes them)."""
    files: list[tuple[str, pygit2.Oid]] = []

    def walk(tree: pygit2.Tree, prefix: str) -> None:
        for e in tree:
            if e.filemode == pygit2.enums.FileMode.TREE:
                walk(pg[e.id].peel(pygit2.Tree), f"{prefix}{e.name}/")
            elif e.filemode in (pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.BLOB_EXECUTABLE):
                files.append((f"{prefix}{e.name}", e.id))

    walk(pg[commit].peel(pygit2.Tree), "")
    out: list[Changes] = []
    for j in range(k):
        chosen: Changes = {}
        while len(chosen) < FILES_PER_COMMIT:
            path, oid = rng.choice(files)
            data: bytes = pg[oid].peel(pygit2.Blob).data
            if len(data) <= MAX_EDITED_FILE and b"\0" not in data[:8000]:
                chosen[path] = data + f"\n# benchmark change {j}\n".encode()
        out.append(chosen)
    return out


# -- checks ----------------------------------------------------------------------------------------
def check_made(remote: Path, base: str, made: Sequence[Made]) -> None:
    """Each branch exists on the remote at its commit, whose only parent is ``base`` and whose
    diff against it is exactly its change set (paths and bytes)."""
    pg = pygit2.Repository(str(remote))
    base_tree = pg[base].peel(pygit2.Tree)
    branches = {m.branch for m in made}
    assert len(branches) == len(made), "two transactions share a branch"
    for m in made:
        ref = pg.references.get(f"refs/heads/{m.branch}")
        assert ref is not None, f"{m.branch} is not on the remote"
        assert str(ref.target) == m.commit, f"{m.branch} is at {ref.target}, not {m.commit}"
        commit = pg[m.commit].peel(pygit2.Commit)
        assert [str(p) for p in commit.parent_ids] == [base], f"{m.branch}: wrong parents"
        diff = base_tree.diff_to_tree(commit.tree)
        got = {d.new_file.path: pg[d.new_file.id].peel(pygit2.Blob).data for d in diff.deltas}
        assert got == m.changes, f"{m.branch}: the commit does not hold exactly its change"


def check_same_trees(remote: Path, by_way: Mapping[str, Mapping[int, Made]]) -> int:
    """For the same change set, every way's commit has the same tree; returns how many commits."""
    pg = pygit2.Repository(str(remote))
    trees: dict[int, set[str]] = {}
    for made in by_way.values():
        for i, m in made.items():
            trees.setdefault(i % CHANGE_SETS, set()).add(
                str(pg[m.commit].peel(pygit2.Commit).tree_id)
            )
    for j, ids in trees.items():
        assert len(ids) == 1, f"change set {j}: the ways made different trees {ids}"
    return sum(len(m) for m in by_way.values())


def check_proposals(src: Source, made: Sequence[Made]) -> int:
    """Every Revisor transaction has its own proposal, naming its branch and commit, and the
    source's proposal numbers are exactly 1..N (unique and dense); returns N."""
    proposals = {p.number: p for p in provider_of(src).store.list(SOURCE)}
    numbers = sorted(proposals)
    assert numbers == list(range(1, len(numbers) + 1)), "proposal numbers have gaps"
    assert len(numbers) == len(made), f"{len(numbers)} proposals for {len(made)} transactions"
    mine = [m.proposal for m in made]
    assert len(set(mine)) == len(mine), "two transactions got the same proposal"
    for m in made:
        assert m.proposal is not None
        p = proposals[m.proposal]
        assert (p.source_branch, p.source_commit, p.target_branch) == (m.branch, m.commit, "main")
    return len(numbers)


# -- 1. one transaction, end to end ----------------------------------------------------------------
@dataclass
class World:
    remote: Path
    base: str
    sets: list[Changes]
    src: Source
    app: Revisor
    revisor_made: list[Made] = field(default_factory=list)


def bench_transaction(ctx: Context) -> tuple[Section, World]:
    plan = ctx.plan
    remote = ctx.scratch / "remote.git"
    scratch_remote(ctx.corpus.path, remote)
    pg = pygit2.Repository(str(remote))
    base = str(pg.revparse_single("main").id)
    sets = change_sets(pg, base, ctx.rng("changes"), CHANGE_SETS)

    ctx.log("transaction: opening Revisor on the remote (first refresh creates the mirror)")
    app, src = open_source(revisor_config(ctx.scratch / "revisor", remote))
    assert src.stored.refresh() is not None
    world = World(remote, base, sets, src, app)
    ctx.log("transaction: cup's long-lived clone of the remote (untimed)")
    cup_clone = ctx.scratch / "cup"
    anchors.Git().run("clone", "-q", str(remote), str(cup_clone))
    anchors.Git(cwd=cup_clone).run("config", "gc.auto", "0")
    made: dict[str, dict[int, Made]] = {}

    def revisor_op(i: int) -> None:
        changes = sets[i % CHANGE_SETS]
        result = src.update("main", f"bench revisor {i}\n", AUTHOR, changes=writes(changes))
        assert result.commit is not None and result.branch is not None
        assert result.proposal is not None and not result.empty
        m = Made(result.branch, result.commit, changes, result.proposal.number)
        made.setdefault(REVISOR_WAY, {})[i] = m
        world.revisor_made.append(m)

    def cup_op(way: str, root: Path, prefix: str) -> Op:
        def op(i: int) -> None:
            changes, branch = sets[i % CHANGE_SETS], f"{prefix}/{i}"
            commit = cup_commit(cup_clone, branch, changes, root, f"bench {way} {i}\n")
            made.setdefault(way, {})[i] = Made(branch, commit, changes)

        return op

    def gitea_op(way: str, root: Path, prefix: str) -> Op:
        def op(i: int) -> None:
            changes, branch = sets[i % CHANGE_SETS], f"{prefix}/{i}"
            commit = anchors.clone_commit(remote, "main", branch, changes, root)
            made.setdefault(way, {})[i] = Made(branch, commit, changes)

        return op

    disk = ctx.scratch / "checkouts"
    disk.mkdir()
    ways: list[tuple[str, Op, int, str]] = [
        (REVISOR_WAY, revisor_op, plan.transactions, "commit, push a new branch, open a proposal"),
        (CUP_WAY, cup_op(CUP_WAY, disk, "cup"), plan.cup, IN_SCRATCH),
        (GITEA_WAY, gitea_op(GITEA_WAY, disk, "gitea"), plan.gitea, IN_SCRATCH),
    ]
    if ctx.tmpfs is not None:
        shm = ctx.tmpfs
        note = f"checkout in {shm.parent}; clone and remote on the scratch disk"
        ways += [
            (CUP_SHM_WAY, cup_op(CUP_SHM_WAY, shm, "cup-tmpfs"), plan.tmpfs, note),
            (GITEA_SHM_WAY, gitea_op(GITEA_SHM_WAY, shm, "gitea-tmpfs"), plan.tmpfs, note),
        ]
    for _ in range(3):  # imports, connections, caches: not what is measured
        revisor_op(-1)
    made.pop(REVISOR_WAY)
    for name, _, reps, _ in ways:
        ctx.log(f"transaction: {name} x {reps}")
    samples = measure_interleaved(
        [w[1] for w in ways], [w[2] for w in ways], warmup=1, rounds=min(w[2] for w in ways)
    )
    section = Section(
        "transaction",
        f"A transaction of {FILES_PER_COMMIT} changed files, end to end",
        f"change {FILES_PER_COMMIT} files of `main`, commit, push a new branch to the remote "
        "(Revisor: and open a proposal)",
        reference=REVISOR_WAY,
    )
    section.timings += [
        Timing(n, s, note) for (n, _, _, note), s in zip(ways, samples, strict=True)
    ]

    ctx.log("transaction: checking every branch on the remote")
    everything = [m for by_index in made.values() for m in by_index.values()]
    check_made(remote, base, everything)
    same = check_same_trees(remote, made)
    proposals = check_proposals(src, world.revisor_made)
    breakdown = profile_transactions(ctx, lambda i: revisor_op(10_000 + i), plan.profiled)
    check_made(remote, base, world.revisor_made)
    section.notes += [
        f"{CHANGE_SETS} different sets of {FILES_PER_COMMIT} random existing files of "
        f"{ctx.corpus.stats['files_at_main']:,}, each with a line appended; every way starts "
        "from the same commit of `main` and pushes its own new branch to the same bare remote "
        "(a local path: git runs `receive-pack` as a server would).",
        f"Checked: all {len(everything)} branches exist on the remote at their commit, whose "
        f"parent is `main` and whose diff is exactly its {FILES_PER_COMMIT} files (paths and "
        f"bytes); the {same} commits have the same tree for the same change set; the "
        f"{proposals} Revisor transactions (warm-ups included) opened proposals 1..{proposals}, "
        "each naming its branch and commit.",
        "cup's way works in a long-lived full clone of the remote (made once, untimed): `git "
        "worktree add -b <branch> <dir> origin/main`, write, `git add`, `git commit`, `git push "
        "origin <branch>`, `git worktree remove --force`. Gitea's way: `git clone --shared "
        "--no-checkout` of the remote, `git checkout -f -b`, write, `add`, `commit`, `push`, "
        "`rm -r` (`anchors.clone_commit`). Both check out every file of `main`.",
        f"Where a Revisor transaction's time goes (cProfile of {plan.profiled} more, cumulative "
        f"per transaction; profiling inflates Python-heavy parts): {breakdown}",
    ]
    return section, world


# (label, file suffix, function name) of the steps of one transaction, for the breakdown.
STEPS: tuple[tuple[str, str, str], ...] = (
    ("the whole update", "services/sources.py", "update"),
    ("begin (journal row, resolve base, builder)", "core/transaction.py", "__init__"),
    ("stage the 10 writes (blobs written)", "core/transaction.py", "apply"),
    ("write the trees and the commit", "vcs/builder.py", "commit"),
    ("push the branch (git push, with a lease)", "core/transaction.py", "_push"),
    ("  of which the git push process", "store/transport.py", "_run_bounded"),
    ("  of which the mirror follows the push", "store/mirror.py", "_follow_pushed"),
    ("open the proposal (SQL, audit)", "core/transaction.py", "_open_proposal"),
    ("journal updates", "db/journal.py", "advance"),
    ("journal finish", "db/journal.py", "finish"),
    ("audit record", "db/audit.py", "record"),
)


def profile_transactions(ctx: Context, op: Op, reps: int) -> str:
    """Profile ``reps`` transactions; return a one-line breakdown (and keep the full profile)."""
    prof = cProfile.Profile()
    prof.enable()
    for i in range(reps):
        op(i)
    prof.disable()
    stats = pstats.Stats(prof)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    parts = []
    for label, suffix, func in STEPS:
        cum = sum(v[3] for (f, _, name), v in raw.items() if f.endswith(suffix) and name == func)
        parts.append(f"{label} {fmt_duration(cum / reps)}")
    if ctx.profile:
        buf = io.StringIO()
        full = pstats.Stats(prof, stream=buf)
        full.sort_stats("cumulative").print_stats(40)
        full.sort_stats("tottime").print_stats(20)
        ctx.profiles["transaction"] = f"{reps} transactions profiled\n" + buf.getvalue()
    return "; ".join(parts) + "."


# -- 2. throughput of independent transactions -----------------------------------------------------
@dataclass(frozen=True)
class Job:
    index: int
    message: str
    changes: Changes


def worker(config: Config, warm: Job, jobs: list[Job], go: Any, out: Any) -> None:
    """One worker process: its own Revisor on the shared data_dir and database; one warm-up
    transaction, then its jobs once ``go`` is set. Times are ``time.monotonic()`` (one clock for
    every process on the machine)."""
    try:
        app, src = open_source(config)
        r = src.update("main", warm.message, AUTHOR, changes=writes(warm.changes))
        number = r.proposal.number if r.proposal else 0
        out.put(("warm", warm.index, 0.0, 0.0, r.branch, r.commit, number))
        out.put(("ready", os.getpid(), 0.0, 0.0, "", "", 0))
        go.wait()
        own, git = cpu_seconds()
        for job in jobs:
            t0 = time.monotonic()
            r = src.update("main", job.message, AUTHOR, changes=writes(job.changes))
            t1 = time.monotonic()
            number = r.proposal.number if r.proposal else 0
            out.put(("done", job.index, t0, t1, r.branch, r.commit, number))
        own_end, git_end = cpu_seconds()
        out.put(("cpu", os.getpid(), own_end - own, git_end - git, "", "", 0))
        app.close()
    except BaseException as exc:
        out.put(("error", os.getpid(), 0.0, 0.0, repr(exc), "", 0))
        raise


def cpu_seconds() -> tuple[float, float]:
    """CPU time (user + system) of this process, and of its children that have exited (the git
    processes a transaction runs, and theirs)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


@dataclass(frozen=True)
class ThroughputRun:
    workers: int
    transactions: int
    wall: float
    latencies: tuple[float, ...]
    cpu: float  # seconds of CPU the workers and their git processes used for the timed jobs
    git_cpu: float  # of which the git processes

    @property
    def per_second(self) -> float:
        return self.transactions / self.wall


def run_throughput(
    ctx: Context, world: World, workers: int, label: str, warm_changes: Changes
) -> ThroughputRun:
    n = ctx.plan.throughput
    jobs = []
    for i in range(n):
        changes = {
            p: d + f"# throughput {label} {i}\n".encode()
            for p, d in world.sets[i % CHANGE_SETS].items()
        }
        jobs.append(Job(i, f"bench throughput {label} {i}\n", changes))
    mp = multiprocessing.get_context("spawn")
    go, out = mp.Event(), mp.Queue()
    config = world.app.config
    procs = []
    warm = [
        Job(w, f"warm-up {label} {w}\n", warm_changes_for(warm_changes, label, w))
        for w in range(workers)
    ]
    for w in range(workers):
        args = (config, warm[w], jobs[w::workers], go, out)
        procs.append(mp.Process(target=worker, args=args, daemon=True))
    for p in procs:
        p.start()
    by_index = {j.index: j for j in jobs}
    times: dict[int, tuple[float, float]] = {}
    ready = 0
    expected_messages = 3 * workers + n
    cpu = git_cpu = 0.0
    for _ in range(expected_messages):
        kind, index, t0, t1, branch, commit, number = out.get(timeout=300)
        if kind == "error":
            raise RuntimeError(f"worker {index} failed: {branch}")
        if kind == "cpu":
            cpu += t0 + t1
            git_cpu += t1
            continue
        if kind == "ready":
            ready += 1
            if ready == workers:
                go.set()
            continue
        changes = warm[index].changes if kind == "warm" else by_index[index].changes
        m = Made(branch, commit, changes, number)
        world.revisor_made.append(m)
        if kind == "done":
            times[index] = (t0, t1)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0, f"worker exited with {p.exitcode}"
    assert sorted(times) == list(range(n))
    wall = max(t1 for _, t1 in times.values()) - min(t0 for t0, _ in times.values())
    latencies = tuple(t1 - t0 for t0, t1 in times.values())
    return ThroughputRun(workers, n, wall, latencies, cpu, git_cpu)


def warm_changes_for(changes: Changes, label: str, w: int) -> Changes:
    return {p: d + f"# warm-up {label} {w}\n".encode() for p, d in changes.items()}


def bench_throughput(ctx: Context, world: World) -> tuple[Section, list[ThroughputRun]]:
    plan = ctx.plan
    runs: list[ThroughputRun] = []
    warm = world.sets[-1]
    for r in range(plan.throughput_rounds):
        for workers in (1, 2):
            ctx.log(f"throughput: {plan.throughput} transactions, {workers} worker(s), round {r}")
            runs.append(run_throughput(ctx, world, workers, f"r{r}w{workers}", warm))
    ctx.log("throughput: checking every transaction's branch and proposal")
    made = world.revisor_made
    check_made(world.remote, world.base, made)
    proposals = check_proposals(world.src, made)
    section = Section(
        "throughput",
        "Independent transactions on one source, 1 worker process vs 2",
        f"one transaction of {FILES_PER_COMMIT} files (latency, as seen by its worker)",
        reference="1 worker process",
    )
    for workers in (1, 2):
        mine = [r for r in runs if r.workers == workers]
        latencies = tuple(x for r in mine for x in r.latencies)
        rate = statistics.median(r.per_second for r in mine)
        section.timings.append(
            Timing(
                f"{workers} worker process{'es' if workers > 1 else ''}",
                latencies,
                f"{rate:.1f} transactions/s (median of {len(mine)} runs)",
            )
        )
    section.notes += [
        f"Each run: {plan.throughput} transactions (each its own new branch and proposal, "
        f"{FILES_PER_COMMIT} files changed on `main`) shared out among the workers; the workers "
        "are spawned processes, each opening its own Revisor on the same data_dir and SQLite "
        "database and doing one untimed warm-up transaction, then all start together. "
        "Throughput is the run's transactions divided by the time from the first start to the "
        f"last end; the configurations alternate, {plan.throughput_rounds} run(s) each.",
        f"Checked afterwards: every one of the {len(made)} transactions of this run (the "
        "previous section's and the warm-ups included) has its branch on the remote at its "
        f"commit holding exactly its change, and the source's {proposals} proposals are "
        f"numbered 1..{proposals}, one per transaction.",
        f"This machine has {len(os.sched_getaffinity(0))} usable cores, shared with whatever "
        "else runs (see the load average). *CPU per transaction* counts the worker and the git "
        "processes it ran (push, pack-objects, and receive-pack, unpack-objects and rev-list on "
        "the remote side); *cores busy* is that CPU time over the wall time: well below the "
        "number of workers means they wait, on the disk (loose objects, the remote's ref "
        "update) or on each other.",
    ]
    return section, runs


# -- report ----------------------------------------------------------------------------------------
def nearest_rank(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def throughput_rows(runs: Sequence[ThroughputRun]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    base: float | None = None
    for workers in (1, 2):
        mine = [r for r in runs if r.workers == workers]
        if not mine:
            continue
        rate = statistics.median(r.per_second for r in mine)
        base = base or rate
        lat = [x for r in mine for x in r.latencies]
        rows.append(
            (
                str(workers),
                f"{len(mine)} x {mine[0].transactions}",
                fmt_duration(statistics.median(r.wall for r in mine)),
                f"{rate:.1f}",
                fmt_duration(nearest_rank(lat, 0.5)),
                fmt_duration(nearest_rank(lat, 0.99)),
                fmt_duration(sum(r.cpu for r in mine) / sum(r.transactions for r in mine)),
                f"{sum(r.git_cpu for r in mine) / sum(r.cpu for r in mine):.0%}",
                f"{sum(r.cpu for r in mine) / sum(r.wall for r in mine):.2f}",
                f"{rate / base:.2f}x",
            )
        )
    return rows


THROUGHPUT_HEADERS = (
    "workers", "runs x transactions", "wall time (median)", "transactions/s (median)",
    "latency p50", "latency p99", "CPU per transaction", "of which git", "cores busy",
    "throughput ÷ 1 worker",
)  # fmt: skip


def throughput_markdown(runs: Sequence[ThroughputRun]) -> str:
    lines = ["", "### Throughput", ""]
    lines.append("| " + " | ".join(THROUGHPUT_HEADERS) + " |")
    lines.append("|" + "|".join("---" for _ in THROUGHPUT_HEADERS) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in throughput_rows(runs)]
    return "\n".join(lines) + "\n"


def throughput_table(runs: Sequence[ThroughputRun]) -> Table:
    table = Table(title="Throughput", title_justify="left")
    for h in THROUGHPUT_HEADERS:
        table.add_column(h)
    for row in throughput_rows(runs):
        table.add_row(*row)
    return table


def targets(sections: Mapping[str, Section], runs: Sequence[ThroughputRun]) -> list[Target]:
    def ratio(key: str, num: str, den: str) -> float | None:
        with contextlib.suppress(KeyError):
            return sections[key].get(num).median / sections[key].get(den).median
        return None

    rates = {
        w: statistics.median(r.per_second for r in runs if r.workers == w)
        for w in (1, 2)
        if any(r.workers == w for r in runs)
    }
    speedup = rates[2] / rates[1] if len(rates) == 2 else None
    return [
        Target("transaction: cup's way / Revisor", ratio("transaction", CUP_WAY, REVISOR_WAY),
               10, at_least=True),
        Target("transaction: Gitea's way / Revisor", ratio("transaction", GITEA_WAY, REVISOR_WAY),
               10, at_least=True),
        Target("transaction: cup's way on tmpfs / Revisor",
               ratio("transaction", CUP_SHM_WAY, REVISOR_WAY), None, at_least=True),
        Target("transaction: Gitea's way on tmpfs / Revisor",
               ratio("transaction", GITEA_SHM_WAY, REVISOR_WAY), None, at_least=True),
        Target("throughput: 2 workers / 1 worker", speedup, None, at_least=True),
    ]  # fmt: skip


def tmpfs_for_anchors(scratch: Path, stack: contextlib.ExitStack) -> Path | None:
    """A directory on /dev/shm for the anchors' best case, unless the scratch is there already."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        return None
    if os.stat(shm).st_dev == os.stat(scratch).st_dev:
        return None
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="revisor-bench-", dir=shm)))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="scaled-down corpus, few repetitions")
    p.add_argument("--output", type=Path, help="where to write the Markdown results")
    p.add_argument(
        "--scratch",
        type=Path,
        help="where the remote, Revisor's data_dir and the checkouts go (default: the temp dir)",
    )
    p.add_argument(
        "--no-tmpfs", action="store_true", help="do not also time the anchors on /dev/shm"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also write the full profile of Revisor's transactions (results/profile-*.txt)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Revisor's git processes inherit this environment: give them the blank configuration the
    # anchors run with (corpus.git_env), so that no setting of this machine favours either side.
    os.environ.update({"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    started = time.perf_counter()
    load_at_start = load_average()
    corpus = ensure_corpus(QUICK if args.quick else FULL)
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    sections: dict[str, Section] = {}
    conditions: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        scratch = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="revisor-bench-tx-",
                                                            dir=args.scratch))
        )  # fmt: skip
        shm = None if args.no_tmpfs else tmpfs_for_anchors(scratch, stack)
        cost = file_creation_cost(scratch)
        conditions["scratch directory"] = (
            f"{scratch.parent} (creating a 4 KB file there: {fmt_duration(cost)} median)"
        )
        if shm is not None:
            conditions["tmpfs for the anchors' best case"] = (
                f"{shm.parent} (creating a 4 KB file there: "
                f"{fmt_duration(file_creation_cost(shm))} median)"
            )
        ctx = Context(corpus, scratch, shm, plan, args.profile)
        sections["transaction"], world = bench_transaction(ctx)
        sections["throughput"], runs = bench_throughput(ctx, world)
        world.app.close()
    elapsed = time.perf_counter() - started
    conditions = {**machine(load_at_start), **conditions, "run time": f"{elapsed:.0f} s"}
    goals = targets(sections, runs)
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    render_terminal(console, list(sections.values()), goals)
    console.print(throughput_table(runs))
    console.print(f"[dim]total {elapsed:.0f} s[/]")
    output = args.output or RESULTS_DIR / f"transactions{'-quick' if args.quick else ''}.md"
    command = "benchmarks/bench_transactions.py" + (" --quick" if args.quick else "")
    intro = [
        f"Written by `{command}`; `benchmarks/README.md` says what each figure means. Medians and "
        "90th percentiles of individually timed operations; ways of doing the same job are timed "
        "in alternating rounds. Ratios are medians divided by the section's reference way's "
        "median.",
    ]
    text = render_markdown(
        "Transactions benchmark", intro, conditions, [(corpus.spec.name, corpus.describe())],
        list(sections.values()), goals,
    )  # fmt: skip
    RESULTS_DIR.mkdir(exist_ok=True)
    output.write_text(text + throughput_markdown(runs))
    print(f"results written to {output}", file=sys.stderr)
    for key, profile_text in ctx.profiles.items():
        path = RESULTS_DIR / f"profile-{key}{'-quick' if args.quick else ''}.txt"
        path.write_text(profile_text)
        print(f"profile written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
