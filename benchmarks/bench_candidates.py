"""The benchmark for version candidates (issue 6): 1,000 per-user workspaces in one candidate.

Why it exists: seed 001 gives every user their own repository per version candidate and computes
conflicts in a ``_merge`` twin of each; Revisor's promise is that a workspace is a ref and a row —
made in milliseconds, a few KB on disk — and that bringing all of a candidate's workspaces up to
date after it moved is one pass over refs with in-memory merges, not a fetch and a merge in a
thousand clones. This script measures both on the synthetic corpus, next to the seed's way, and
checks what every sync did (against ``git merge-tree``) before it quotes how fast it was:

(a) creating 1,000 workspaces in one candidate: the time per workspace and the disk each costs
    (the repository's growth — loose ref files as written, and packed-refs bytes after
    ``git pack-refs`` — plus the database's growth), against one clone per user: ``git clone
    --shared`` and a full ``git clone --no-local``, side by side, for a few dozen users;
(b) syncing all 1,000 after the candidate moved by five commits, with a mix of workspaces that
    have nothing unpublished (fast-forwards), unpublished changes that merge cleanly, and
    unpublished changes that collide with the candidate: ``Candidates.sync_workspaces`` (one pass)
    and ``Workspace.sync()`` one by one, against the seed's ``_merge`` way for a sample of users
    (per user, in a clone: ``git fetch`` + ``git merge --no-commit`` + ``git reset --hard``,
    walking back as the seed's rule does for conflicting users), extrapolated to 1,000 and
    labelled as such.

    .venv/bin/python benchmarks/bench_candidates.py           # full corpus: ~3 minutes
    .venv/bin/python benchmarks/bench_candidates.py --quick   # quick corpus, 200 workspaces
    .venv/bin/python benchmarks/bench_candidates.py --scratch /dev/shm --output PATH

Results go to the terminal and, as Markdown, to ``benchmarks/results/candidates.md``
(``candidates-quick.md`` with ``--quick``). A target missed writes the profile of one bulk sync to
``results/profile-candidates-sync.txt`` (always with ``--profile``).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

import anchors
from bench_store import SecondsTarget, scratch_remote
from corpus import FULL, QUICK, Corpus, ensure_corpus
from harness import (
    Section,
    Target,
    Timing,
    file_creation_cost,
    fmt_duration,
    load_average,
    machine,
    measure,
    render_markdown,
    render_terminal,
)
from revisor.bootstrap import Revisor
from revisor.config import Config, LocalSource
from revisor.services.candidate_types import SyncResult
from revisor.services.candidates import Candidates
from revisor.services.workspaces import Workspace
from revisor.vcs import ObjectId, Repository, Signature

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SOURCE = "big"
AUTHOR = Signature.now("Bench Author", "author@bench.invalid")
MAX_EDITED_FILE = 64 << 10

# The ways (the names shown in the tables).
REVISOR_CREATE = "Revisor Candidates.workspace (a ref and a row)"
SHARED_CLONE = "git clone --shared (the seed: a clone per user)"
FULL_CLONE = "git clone --no-local (the seed, full clone per user)"
REVISOR_BULK = "Revisor Candidates.sync_workspaces (one pass)"
REVISOR_BULK_TMPFS = "… the same, repository and data on tmpfs"
REVISOR_SINGLE = "Revisor Workspace.sync() one by one"
SEED_MERGE = "seed's _merge clones, EXTRAPOLATED from a sample"

FF, CLEAN, CONFLICT = "fast-forward", "clean merge", "conflict"


@dataclass(frozen=True)
class Plan:
    """How big the candidate is and how many times each way is measured."""

    workspaces: int = 1000
    clean_share: float = 0.25  # workspaces with unpublished changes that merge cleanly
    conflict_share: float = 0.05  # ... that collide with the candidate's 4th new commit
    rounds: tuple[str, ...] = ("bulk", "single", "bulk", "single", "bulk")
    tmpfs_rounds: int = 2
    shared_clones: int = 24
    full_clones: int = 8
    clone_rounds: int = 4
    merge_sample: int = 8  # users of each kind synced the seed's way


FULL_PLAN = Plan()
QUICK_PLAN = Plan(workspaces=200, rounds=("bulk", "single"), tmpfs_rounds=1, shared_clones=6,
                  full_clones=2, clone_rounds=2, merge_sample=2)


@dataclass
class Context:
    corpus: Corpus
    scratch: Path
    tmpfs: Path | None
    plan: Plan
    profile: bool
    seed: int = 6
    profiles: dict[str, str] = field(default_factory=dict)

    def rng(self, salt: str) -> random.Random:
        return random.Random(f"{self.seed}:{salt}")

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BytesTarget(Target):
    """A target on a size in bytes."""

    @property
    def goal(self) -> str:
        if self.bound is None:
            return "—"
        return f"{'≥' if self.at_least else '≤'} {fmt_bytes(self.bound)}"

    @property
    def measured(self) -> str:
        return "—" if self.value is None else fmt_bytes(self.value)


def fmt_bytes(n: float) -> str:
    for unit, scale in (("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


# -- disk ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Usage:
    """What a directory takes: bytes allocated on the disk (``du``), bytes of content, entries."""

    allocated: int
    apparent: int
    entries: int

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.allocated - other.allocated, self.apparent - other.apparent,
                     self.entries - other.entries)


def usage(path: Path) -> Usage:
    """Like ``du``: every file and directory once (hard links once), symlinks not followed."""
    seen: set[tuple[int, int]] = set()
    allocated = apparent = entries = 0
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files, ""]:
            p = os.path.join(root, name) if name else root
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            allocated += st.st_blocks * 512
            apparent += st.st_size
            entries += 1
    return Usage(allocated, apparent, entries)


def db_file(data_dir: Path) -> Path:
    return data_dir / "revisor.db"


def checkpoint(data_dir: Path) -> int:
    """Fold SQLite's write-ahead log into the database file; return the file's size."""
    with contextlib.closing(sqlite3.connect(db_file(data_dir))) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db_file(data_dir).stat().st_size


# -- the world -------------------------------------------------------------------------------------
@dataclass
class World:
    root: Path
    repo_path: Path
    data_dir: Path
    app: Revisor
    candidates: Candidates
    base: ObjectId
    files: list[str]  # editable text files at main, shuffled

    @property
    def repo(self) -> Repository:
        return self.candidates.ctx.repo

    def close(self) -> None:
        self.app.close()


def open_world(ctx: Context, root: Path) -> World:
    """A copy of the corpus used in place as a ``local`` source, and Revisor on it."""
    root.mkdir(parents=True, exist_ok=True)
    repo_path = scratch_remote(ctx.corpus.path, root / "repo.git")
    data_dir = root / "data"
    config = Config(data_dir=data_dir,
                    sources={SOURCE: LocalSource(path=repo_path, branch="main")})
    app = Revisor(config).start()
    c = app.source(SOURCE).candidates
    repo = c.ctx.repo
    base = repo.resolve("refs/heads/main")
    files = sorted(
        p for p, (mode, oid) in repo.files(base).items()
        if mode == 0o100644 and repo.pg[oid].size <= MAX_EDITED_FILE
        and b"\0" not in repo.pg[oid].data[:8000]
    )
    ctx.rng("files").shuffle(files)
    return World(root, repo_path, data_dir, app, c, base, files)


@dataclass
class Round:
    """One candidate with ``n`` workspaces, its users' edits, and its five new commits."""

    cand_id: int
    users: list[str]
    kinds: dict[str, str]
    own_file: dict[str, str]
    chain: list[ObjectId]  # the candidate's new commits, oldest first
    before: dict[str, ObjectId]  # each workspace's head before the sync
    creation: tuple[float, ...]


def _append(ws: Workspace, path: str, line: str) -> None:
    data, etag = ws.read(path)
    ws.write(path, data + line.encode() + b"\n", if_match=etag)


def build_round(
    ctx: Context, world: World, label: str, after_create: Callable[[int], None] | None = None
) -> Round:
    """Create the candidate and its workspaces (each creation timed; then ``after_create(id)``),
    let the users edit, then move the candidate by five commits (the 4th collides with the
    conflicting users' edits)."""
    plan, c = ctx.plan, world.candidates
    n = plan.workspaces
    cand = c.create(label, f"Benchmark {label}", AUTHOR)
    users = [f"user-{i:04d}" for i in range(n)]
    creation = measure(lambda i: c.workspace(cand.id, users[i]), reps=n - 3, warmup=3)
    if after_create is not None:
        after_create(cand.id)
    kinds: dict[str, str] = {}
    n_clean, n_conflict = round(n * plan.clean_share), round(n * plan.conflict_share)
    order = users[:-1]  # the last user publishes the candidate's commits
    ctx.rng(f"kinds:{label}").shuffle(order)
    for u in order[:n_clean]:
        kinds[u] = CLEAN
    for u in order[n_clean:n_clean + n_conflict]:
        kinds[u] = CONFLICT
    for u in users:
        kinds.setdefault(u, FF)
    publisher_files = world.files[:9]
    pool = iter(world.files[9:])
    own_file = {u: next(pool) for u in users if kinds[u] != FF}
    for i, u in enumerate(users):
        if kinds[u] == FF:
            continue
        ws = c.workspace(cand.id, u, create=False)
        _append(ws, own_file[u], f"edit by {u}")
        if kinds[u] == CLEAN and i % 10 == 0:  # some users saved twice
            ws.write(f"notes/{u}.md", f"notes of {u}\n".encode(), if_match=None)
    publisher = c.workspace(cand.id, users[-1], create=False)
    chain: list[ObjectId] = []
    groups = [publisher_files[0:3], publisher_files[3:5], publisher_files[5:7],
              [own_file[u] for u in users if kinds[u] == CONFLICT], publisher_files[7:9]]
    for k, paths in enumerate(groups, start=1):
        for path in paths:
            _append(publisher, path, f"candidate commit {k}")
        result = publisher.publish(f"Candidate commit {k}")
        assert result.published and result.commit is not None, result
        chain.append(result.commit)
    heads = world.repo.refs(f"refs/revisor/workspaces/{cand.id}/")
    before = {u: heads[f"refs/revisor/workspaces/{cand.id}/{u}"] for u in users}
    return Round(cand.id, users, kinds, own_file, chain, before, creation)


def drop_round(world: World, r: Round) -> None:
    """Abandon the candidate and remove its workspace refs (untimed), so the next round starts
    with as many refs in the repository as this one did."""
    world.candidates.abandon(r.cand_id, AUTHOR)
    shutil.rmtree(world.repo_path / "refs" / "revisor" / "workspaces" / str(r.cand_id),
                  ignore_errors=True)


# -- checking what a sync did ----------------------------------------------------------------------
def merge_tree(git: anchors.Git, ours: str, theirs: str) -> tuple[bool, str]:
    proc = git.run("merge-tree", "--write-tree", "--name-only", ours, theirs, ok=(0, 1))
    return proc.returncode == 0, proc.stdout.decode().split("\n", 1)[0]


def check_sync(
    world: World, r: Round, results: Sequence[SyncResult], rng: random.Random
) -> tuple[Counter[str], int]:
    """Every workspace where seed 001's rule puts it, checked against the refs and, for a sample
    of each kind, against ``git merge-tree``; returns the kinds seen and how many trees were
    compared with git's."""
    head = r.chain[-1]
    before_conflict = r.chain[2]  # the newest candidate commit the conflicting users can take
    by_user = {x.user: x for x in results}
    assert sorted(by_user) == sorted(r.users)
    refs = world.repo.refs(f"refs/revisor/workspaces/{r.cand_id}/")
    git = anchors.Git(git_dir=world.repo_path)
    counts: Counter[str] = Counter()
    sampled = 0
    for u in r.users:
        x = by_user[u]
        assert refs[f"refs/revisor/workspaces/{r.cand_id}/{u}"] == x.head, u
        kind = r.kinds[u]
        if u == r.users[-1]:  # the publisher: in sync already
            assert x.up_to_date and not x.moved and x.head == head, x
            counts["in sync already (the publisher)"] += 1
            continue
        if kind == FF:
            assert x.up_to_date and x.moved and x.head == head, x
        elif kind == CLEAN:
            assert x.up_to_date and x.moved and not x.conflicts, x
            assert world.repo.changeset(x.head).parents == (r.before[u], head), x
        else:
            assert not x.up_to_date and x.synced_to == before_conflict, x
            assert [c.path for c in x.conflicts] == [r.own_file[u]], x
            assert x.pending == tuple(r.chain[3:]), x
            assert world.repo.changeset(x.head).parents == (r.before[u], before_conflict), x
        counts[kind] += 1
        if kind != FF and (counts[kind] <= 10 or rng.random() < 0.05):
            sampled += 1
            target = head if kind == CLEAN else before_conflict
            clean, tree = merge_tree(git, r.before[u], target)
            assert clean and tree == world.repo.changeset(x.head).tree, (u, tree)
            if kind == CONFLICT:
                clean, _ = merge_tree(git, r.before[u], head)
                assert not clean, u
    return counts, sampled


# -- (a) creating workspaces, and the seed's clones ------------------------------------------------
@dataclass
class Disk:
    repo_loose: Usage
    packed_refs: int  # bytes of packed-refs lines for the round's workspace refs
    database: int
    locks: Usage
    n: int

    @property
    def per_workspace_loose(self) -> float:
        return (self.repo_loose.allocated + self.database + self.locks.allocated) / self.n

    @property
    def per_workspace_packed(self) -> float:
        return (self.packed_refs + self.database + self.locks.allocated) / self.n


def packed_bytes(repo_path: Path, prefix: str) -> int:
    """Bytes that the refs under ``prefix`` take in ``packed-refs`` after ``git pack-refs``."""
    anchors.Git(git_dir=repo_path).run("pack-refs", "--all")
    text = (repo_path / "packed-refs").read_bytes()
    return sum(len(line) + 1 for line in text.split(b"\n") if prefix.encode() in line)


def clone_per_user(
    ctx: Context, world: World, keep: int
) -> tuple[list[Timing], dict[str, list[Usage]], list[Path]]:
    """The seed's clone per user, both kinds in alternating rounds; the first ``keep`` shared
    clones are kept for the ``_merge`` way of (b)."""
    plan = ctx.plan
    root = ctx.scratch / "clones"
    root.mkdir()
    git = anchors.Git()
    ways = [(SHARED_CLONE, ["--shared"], plan.shared_clones),
            (FULL_CLONE, ["--no-local"], plan.full_clones)]
    samples: dict[str, list[float]] = {w: [] for w, _, _ in ways}
    disk: dict[str, list[Usage]] = {w: [] for w, _, _ in ways}
    kept: list[Path] = []
    counter = 0
    for _, flags, _ in ways:  # one untimed warm-up of each
        dest = root / f"warm-{counter}"
        counter += 1
        git.run("clone", "-q", *flags, str(world.repo_path), str(dest))
        shutil.rmtree(dest)
    for r in range(plan.clone_rounds):
        for way, flags, total in ways:
            upto = total * (r + 1) // plan.clone_rounds
            while len(samples[way]) < upto:
                dest = root / f"user-{counter:03d}"
                counter += 1
                t0 = time.perf_counter()
                git.run("clone", "-q", *flags, str(world.repo_path), str(dest))
                samples[way].append(time.perf_counter() - t0)
                disk[way].append(usage(dest))
                if way == SHARED_CLONE and len(kept) < keep:
                    kept.append(dest)
                else:
                    shutil.rmtree(dest)
        ctx.log(f"(a) clones: round {r + 1}/{plan.clone_rounds} done")
    timings = [Timing(way, tuple(samples[way]), note=_disk_note(disk[way]))
               for way, _, _ in ways]
    return timings, disk, kept


def _disk_note(found: Sequence[Usage]) -> str:
    med = statistics.median(u.allocated for u in found)
    files = statistics.median(u.entries for u in found)
    return f"disk per user {fmt_bytes(med)} ({files:,.0f} files and directories)"


# -- (b) the seed's _merge way ---------------------------------------------------------------------
def seed_merge_sample(
    ctx: Context, world: World, r: Round, clones: Sequence[Path]
) -> tuple[dict[str, list[float]], str]:
    """Per sampled user, in a clone checked out at the user's workspace (untimed): fetch the
    candidate, ``merge --no-commit`` it, ``reset --hard``; for a conflicting user, again with the
    next older candidate commit until one merges cleanly (the seed's rule). Times per user."""
    per_kind: dict[str, list[str]] = {FF: [], CLEAN: [], CONFLICT: []}
    for u in r.users[:-1]:
        per_kind[r.kinds[u]].append(u)
    rng = ctx.rng("merge-sample")
    sample = {k: rng.sample(v, min(ctx.plan.merge_sample, len(v))) for k, v in per_kind.items()}
    jobs = [(k, sample[k][j]) for j in range(ctx.plan.merge_sample)  # the kinds alternate
            for k in (FF, CLEAN, CONFLICT) if j < len(sample[k])]
    assert len(clones) >= len(jobs), (len(clones), len(jobs))
    cand_ref = f"refs/revisor/candidates/{r.cand_id}"
    times: dict[str, list[float]] = {FF: [], CLEAN: [], CONFLICT: []}
    merges: Counter[str] = Counter()
    for (kind, user), clone in zip(jobs, clones, strict=False):
        git = anchors.Git(cwd=clone)
        ws_ref = f"refs/revisor/workspaces/{r.cand_id}/{user}"
        git.run("fetch", "-q", "origin", f"+{ws_ref}:refs/heads/mine")  # untimed: the user's
        git.run("checkout", "-q", "-f", "mine")  # repository as the seed keeps it
        t0 = time.perf_counter()
        git.run("fetch", "-q", "origin", f"+{cand_ref}:refs/remotes/origin/candidate")
        chain = [*reversed(r.chain)]
        for k, commit in enumerate(chain):
            target = "refs/remotes/origin/candidate" if k == 0 else commit
            proc = git.run("merge", "-q", "--no-commit", "--no-ff", target, ok=(0, 1))
            git.run("reset", "-q", "--hard")
            merges[kind] += 1
            if proc.returncode == 0:
                break
        times[kind].append(time.perf_counter() - t0)
        expected_merges = 1 if kind != CONFLICT else 3
        assert merges[kind] == expected_merges * len(times[kind]), (kind, user, merges)
    note = "; ".join(f"{kind}: {len(v)} users, {merges[kind] // max(1, len(v))} merge(s) each"
                     for kind, v in times.items())
    return times, note


# -- profiling one bulk sync -----------------------------------------------------------------------
STEPS = (
    ("reading rows", "revisor/db/candidates.py", "list_workspaces"),
    ("reading refs", "revisor/vcs/repository.py", "refs"),
    ("locks", "revisor/services/candidate_support.py", "try_workspaces"),
    ("planning (merges and merge commits included)", "revisor/services/workspace_sync.py",
     "plan_sync"),
    ("… git merges", "revisor/vcs/repository.py", "merge"),
    ("… writing merge commits", "revisor/vcs/commits.py", "create_commit"),
    ("ref transaction (one update_refs)", "revisor/vcs/repository.py", "update_refs"),
    ("rows (executemany)", "revisor/db/candidates.py", "update_workspaces"),
    ("audit (executemany)", "revisor/db/candidates.py", "record_audit"),
)


def profile_sync(ctx: Context, world: World, r: Round) -> tuple[float, str, str]:
    """Run one bulk sync under cProfile; return its time, a one-line breakdown, the profile."""
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    world.candidates.sync_workspaces(r.cand_id)
    prof.disable()
    elapsed = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    parts = []
    for label, suffix, func in STEPS:
        cum = sum(v[3] for (f, _, name), v in raw.items() if f.endswith(suffix) and name == func)
        parts.append(f"{label} {fmt_duration(cum)}")
    buf = io.StringIO()
    full = pstats.Stats(prof, stream=buf)
    full.sort_stats("cumulative").print_stats(40)
    full.sort_stats("tottime").print_stats(25)
    text = (f"one bulk sync of {len(r.users)} workspaces under cProfile: "
            f"{fmt_duration(elapsed)}\n" + buf.getvalue())
    return elapsed, "; ".join(parts), text


# -- the benchmark ---------------------------------------------------------------------------------
@dataclass
class Results:
    sections: dict[str, Section]
    targets: list[Target]
    disk: Disk


@dataclass
class Rounds:
    """What a series of rounds measured."""

    bulk: list[float] = field(default_factory=list)  # one pass, each round's total
    single: list[tuple[str, float]] = field(default_factory=list)  # (kind, one sync() call)
    single_totals: list[float] = field(default_factory=list)
    creation: list[float] = field(default_factory=list)
    checks: list[tuple[Counter[str], int]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)


def run_rounds(
    ctx: Context, world: World, kinds: Sequence[str], label: str,
    after_create: Callable[[int], None] | None = None,
    before_sync: Callable[[Round], None] | None = None,
) -> Rounds:
    """Build and sync one round per entry of ``kinds`` ("bulk" or "single"). The hooks run in
    the first round: ``after_create`` once its workspaces exist, ``before_sync`` before it is
    synced."""
    out = Rounds()
    bulk, single, single_totals, checks = out.bulk, out.single, out.single_totals, out.checks
    for n, how in enumerate(kinds):
        r = build_round(ctx, world, f"{label}-{n}", after_create if n == 0 else None)
        out.creation += r.creation
        out.kinds = Counter(r.kinds[u] for u in r.users[:-1])
        if n == 0 and before_sync is not None:
            before_sync(r)
        c = world.candidates
        if how == "bulk":
            t0 = time.perf_counter()
            results = c.sync_workspaces(r.cand_id)
            bulk.append(time.perf_counter() - t0)
            ctx.log(f"{label} round {n + 1}: bulk sync of {len(r.users)} workspaces in "
                    f"{fmt_duration(bulk[-1])}")
        else:
            results = []
            total = 0.0
            for u in r.users:
                t0 = time.perf_counter()
                results.append(c.workspace(r.cand_id, u, create=False).sync())
                spent = time.perf_counter() - t0
                total += spent
                if u != r.users[-1]:
                    single.append((r.kinds[u], spent))
            single_totals.append(total)
            ctx.log(f"{label} round {n + 1}: one-by-one sync of {len(r.users)} workspaces in "
                    f"{fmt_duration(total)}")
        checks.append(check_sync(world, r, results, ctx.rng(f"check:{label}:{n}")))
        drop_round(world, r)
    return out


def bench(ctx: Context) -> Results:
    plan = ctx.plan
    n = plan.workspaces
    ctx.log("opening the world: a copy of the corpus, Revisor on it")
    world = open_world(ctx, ctx.scratch / "main")
    locks_dir = world.data_dir / "locks"
    repo_before, db_before = usage(world.repo_path), checkpoint(world.data_dir)
    locks_before = usage(locks_dir) if locks_dir.exists() else Usage(0, 0, 0)
    found: dict[str, Any] = {}

    def after_create(cand_id: int) -> None:
        """(a) what the first round's workspaces take, measured as soon as they exist."""
        found["disk"] = Disk(usage(world.repo_path) - repo_before, 0,
                             checkpoint(world.data_dir) - db_before,
                             usage(locks_dir) - locks_before, n)

    def before_sync(r: Round) -> None:
        """(a) the seed's clones; (b) the seed's _merge way, in some of them."""
        ctx.log("(a) the seed's clone per user: --shared and --no-local, alternating")
        keep = 3 * plan.merge_sample
        found["clones"], _, kept = clone_per_user(ctx, world, keep)
        ctx.log(f"(b) the seed's _merge way for {keep} sampled users (each in its own clone)")
        found["merge"], found["merge_note"] = seed_merge_sample(ctx, world, r, kept)
        for path in kept:
            shutil.rmtree(path)

    ctx.log(f"rounds on the scratch disk: {', '.join(plan.rounds)} ({n:,} workspaces each)")
    main = run_rounds(ctx, world, plan.rounds, "round", after_create, before_sync)
    bulk, single, single_totals, checks = main.bulk, main.single, main.single_totals, main.checks
    disk: Disk = found["disk"]
    # packed-refs bytes of one round's workspace refs: made again, then packed (untimed)
    r = build_round(ctx, world, "packed")
    disk.packed_refs = packed_bytes(world.repo_path, f"refs/revisor/workspaces/{r.cand_id}/")
    world.candidates.abandon(r.cand_id, AUTHOR)
    ctx.log("profiling one more bulk sync")
    r = build_round(ctx, world, "profiled")
    _, breakdown, profile_text = profile_sync(ctx, world, r)
    world.close()

    tmpfs_bulk: list[float] = []
    if ctx.tmpfs is not None and plan.tmpfs_rounds:
        ctx.log(f"the same bulk sync with the repository and the data on {ctx.tmpfs}")
        shm_world = open_world(ctx, ctx.tmpfs / "main")
        try:
            shm = run_rounds(ctx, shm_world, ("bulk",) * plan.tmpfs_rounds, "tmpfs")
            tmpfs_bulk = shm.bulk
            checks += shm.checks
        finally:
            shm_world.close()

    sections: dict[str, Section] = {}
    # -- sections -------------------------------------------------------------------------------
    creation = tuple(main.creation)
    create = Section(
        "create", "Create one user's workspace in a candidate",
        f"a new user's place to edit a candidate: a Revisor workspace ({n:,} made in each "
        "round's candidate, each timed) or a clone per user as the seed designs it",
        REVISOR_CREATE,
    )
    create.timings = [
        Timing(REVISOR_CREATE, creation,
               note=f"disk per workspace {fmt_bytes(disk.per_workspace_loose)} as written "
                    f"(loose refs), {fmt_bytes(disk.per_workspace_packed)} after pack-refs"),
        *found["clones"],
    ]
    create.notes += [
        f"Disk per workspace, from {n:,} workspaces: the repository grew by "
        f"{fmt_bytes(disk.repo_loose.allocated)} allocated "
        f"({fmt_bytes(disk.repo_loose.apparent)} of content, {disk.repo_loose.entries:,} new "
        "files and directories: one loose ref file of 41 bytes each, which the file system "
        f"rounds up to a block); after `git pack-refs --all` the same refs take "
        f"{fmt_bytes(disk.packed_refs)} of `packed-refs` "
        f"({disk.packed_refs / n:.0f} B each). The database grew by "
        f"{fmt_bytes(disk.database)} ({disk.database / n:.0f} B each: the workspace's row and "
        "its audit entry, measured after a WAL checkpoint); the workspace lock files, made "
        f"with the workspace and empty, took {fmt_bytes(disk.locks.allocated)} "
        f"({disk.locks.entries:,} entries).",
        "A clone per user is measured as the seed designs it: a repository with a working tree "
        f"({ctx.corpus.stats['files_at_main']:,} files checked out). `--shared` borrows the "
        "objects through `objects/info/alternates` (and breaks if they are ever pruned); "
        "`--no-local` copies them as a clone from a server would.",
    ]
    sections["create"] = create

    per_kind_single: dict[str, list[float]] = {FF: [], CLEAN: [], CONFLICT: []}
    for kind, spent in single:
        per_kind_single[kind].append(spent)
    counts = main.kinds
    merge_times: dict[str, list[float]] = found["merge"]
    extrapolated = sum(counts[k] * statistics.median(v) for k, v in merge_times.items() if v)
    sync = Section(
        "sync", f"Sync all {n:,} workspaces after the candidate moved",
        f"bring every workspace of a candidate up to date after it moved by 5 commits: "
        f"{counts[FF]} with nothing unpublished (+1 the publisher's, in sync already), "
        f"{counts[CLEAN]} with unpublished changes that merge cleanly, {counts[CONFLICT]} with "
        "changes that collide with the 4th commit (they stop at the 3rd)",
        REVISOR_BULK,
    )
    sync.timings = [Timing(REVISOR_BULK, tuple(bulk), note="each round a new candidate")]
    if tmpfs_bulk:
        sync.timings.append(Timing(REVISOR_BULK_TMPFS, tuple(tmpfs_bulk)))
    sync.timings.append(Timing(REVISOR_SINGLE, tuple(single_totals),
                               note="each call timed; the sum"))
    sync.timings.append(Timing(
        SEED_MERGE, (extrapolated,),
        note=f"NOT MEASURED: {sum(len(v) for v in merge_times.values())} sampled users' "
             "medians per kind times the number of users of that kind; leaves out bringing each "
             "user's own repository up to date afterwards (a lower bound)",
    ))
    kinds_seen = {tuple(sorted(k.items())) for k, _ in checks}
    assert len(kinds_seen) == 1, kinds_seen
    sync.notes += [
        f"Checked after each of the {len(checks)} rounds synced (one pass or one by one, on "
        "the disk and on tmpfs), before quoting: every workspace's ref is the head its sync "
        "reported; "
        + ", ".join(f"{v} {k}" for k, v in sorted(checks[0][0].items()))
        + "; fast-forwards are at the candidate's head; the merges' parents are (the "
        "workspace's head, the candidate commit taken); conflicting workspaces stopped at the "
        "3rd commit, list their own file, and leave the 4th and 5th pending; and for "
        f"{sum(s for _, s in checks)} of the merges (a sample of each round) the tree is "
        "exactly `git merge-tree --write-tree` of the same two commits.",
        f"Where one bulk sync's time goes (cProfile, one more round, cumulative): {breakdown}.",
    ]
    sections["sync"] = sync

    one = Section(
        "sync-one", "Sync one workspace, by kind",
        "bring one workspace up to date after the candidate moved",
        f"{REVISOR_SINGLE}: {CLEAN}",
    )
    for kind in (FF, CLEAN, CONFLICT):
        if per_kind_single[kind]:
            one.timings.append(Timing(f"{REVISOR_SINGLE}: {kind}", tuple(per_kind_single[kind])))
    one.timings.append(Timing(f"{REVISOR_BULK}, per workspace",
                              tuple(t / n for t in bulk), note="a round's total / n"))
    for kind in (FF, CLEAN, CONFLICT):
        if merge_times[kind]:
            one.timings.append(Timing(f"seed's _merge clone: {kind}", tuple(merge_times[kind])))
    one.notes.append(
        "The seed's way, per sampled user (each in its own `git clone --shared`, checked out at "
        "the user's workspace, untimed): `git fetch` the candidate, `git merge --no-commit "
        "--no-ff`, `git reset --hard`; for a conflicting user again with each older candidate "
        f"commit until one merges cleanly. {found['merge_note']}."
    )
    sections["sync-one"] = one

    bulk_median = statistics.median(bulk)
    single_median = statistics.median(single_totals) if single_totals else None
    targets: list[Target] = [
        SecondsTarget("create: median per workspace", statistics.median(creation), 0.005,
                      at_least=False),
        BytesTarget("create: disk per workspace, loose refs as written",
                    disk.per_workspace_loose, 10_000, at_least=False),
        BytesTarget("create: disk per workspace, after pack-refs", disk.per_workspace_packed,
                    10_000, at_least=False),
        Target("create: git clone --shared / Revisor",
               _ratio(create, SHARED_CLONE, REVISOR_CREATE), None, at_least=True),
        Target("create: git clone --no-local / Revisor",
               _ratio(create, FULL_CLONE, REVISOR_CREATE), None, at_least=True),
        SecondsTarget(f"sync all {n:,}: Revisor's one pass", bulk_median, 2.0, at_least=False),
        SecondsTarget(f"sync all {n:,}: Revisor's one pass on tmpfs",
                      statistics.median(tmpfs_bulk) if tmpfs_bulk else None, None,
                      at_least=False),
        Target("sync all: one by one / one pass",
               single_median / bulk_median if single_median else None, None, at_least=True),
        Target("sync all: seed's _merge way (extrapolated) / one pass",
               extrapolated / bulk_median, None, at_least=True),
    ]
    missed = any(t.verdict == "MISSED" for t in targets)
    if missed or ctx.profile:
        ctx.profiles["candidates-sync"] = profile_text
    return Results(sections, targets, disk)


def _ratio(section: Section, num: str, den: str) -> float | None:
    with contextlib.suppress(KeyError):
        return section.get(num).median / section.get(den).median
    return None


def tmpfs_dir(scratch: Path, stack: contextlib.ExitStack) -> Path | None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        return None
    if os.stat(shm).st_dev == os.stat(scratch).st_dev:
        return None
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="revisor-bench-",
                                                                dir=shm)))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="quick corpus, 200 workspaces")
    p.add_argument("--output", type=Path, help="where to write the Markdown results")
    p.add_argument("--scratch", type=Path,
                   help="where the repository, Revisor's data and the clones go (default: the "
                        "temp dir)")
    p.add_argument("--no-tmpfs", action="store_true",
                   help="do not also time the bulk sync with everything on /dev/shm")
    p.add_argument("--profile", action="store_true",
                   help="always write the profile of one bulk sync (results/profile-*.txt)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update({"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    started = time.perf_counter()
    load_at_start = load_average()
    corpus = ensure_corpus(QUICK if args.quick else FULL)
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    conditions: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="revisor-bench-cand-", dir=args.scratch)))
        shm = None if args.no_tmpfs else tmpfs_dir(scratch, stack)
        conditions["scratch directory"] = (
            f"{scratch.parent} (creating a 4 KB file there: "
            f"{fmt_duration(file_creation_cost(scratch))} median at the start)"
        )
        if shm is not None:
            conditions["tmpfs"] = (f"{shm.parent} (creating a 4 KB file there: "
                                   f"{fmt_duration(file_creation_cost(shm))} median)")
        ctx = Context(corpus, scratch, shm, plan, args.profile)
        results = bench(ctx)
        conditions["scratch directory"] += (
            f", {fmt_duration(file_creation_cost(scratch))} at the end"
        )
    elapsed = time.perf_counter() - started
    conditions = {**machine(load_at_start), **conditions, "run time": f"{elapsed:.0f} s"}
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    sections = list(results.sections.values())
    render_terminal(console, sections, results.targets)
    console.print(f"[dim]total {elapsed:.0f} s[/]")
    output = args.output or RESULTS_DIR / f"candidates{'-quick' if args.quick else ''}.md"
    command = "benchmarks/bench_candidates.py" + (" --quick" if args.quick else "")
    intro = [
        f"Written by `{command}`; its docstring and the notes under each table say what each "
        "figure means (`benchmarks/README.md` has the method). Medians and 90th percentiles of "
        "individually timed operations. Ratios are medians divided by the section's reference "
        "way's median. The seed's `_merge` way for all users is EXTRAPOLATED from a sample, "
        "never measured for all of them.",
    ]
    text = render_markdown("Version candidates benchmark", intro, conditions,
                           [(corpus.spec.name, corpus.describe())], sections, results.targets)
    RESULTS_DIR.mkdir(exist_ok=True)
    output.write_text(text)
    print(f"results written to {output}", file=sys.stderr)
    for key, profile_text in ctx.profiles.items():
        path = RESULTS_DIR / f"profile-{key}{'-quick' if args.quick else ''}.txt"
        path.write_text(profile_text)
        print(f"profile written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
