"""The benchmark for the last-commit cache (issue 8, part 4): listings timed beside ``git log -1``.

Why it exists: the issue's target is that a WARM last-commit listing is at least 50 times faster
than the way the systems before Revisor answer it: ``git ls-tree`` and one ``git log -1`` process
per entry (Allura, GitLab; ``anchors.last_commits_by_log``). This script times, for the root and
for a deep directory of the corpus's ``main``, side by side in one run:

- the anchor: ``git ls-tree`` + ``git log -1 --format=%H main -- <entry>`` per entry;
- the cache, cold: an empty database, a new Repository and a new cache (a new process' state):
  a few commits compared, then one history walk, then the listing stored;
- the cache, warm: the same cache again (the in-process LRU);
- the cache, warm from SQL: a new cache object over a database holding the listing (a restarted
  server, or another worker process);
- the cache, incremental: the listing of a commit whose parent's listing is stored (the branch
  moved by one commit since the last visit), by the same cache or by a new one reading SQL:
  no history walk.

The root is measured again on a copy with a commit-graph and changed-path Bloom filters, as the
store's maintenance keeps every mirror (``--no-graph`` skips it). Every way's answer is checked
identical to git's.

    .venv/bin/python benchmarks/bench_lastcommits.py            # full corpus: 2-4 minutes here
    .venv/bin/python benchmarks/bench_lastcommits.py --quick    # quick corpus: under a minute
    .venv/bin/python benchmarks/bench_lastcommits.py --repo PATH [--rev BRANCH]

Results go to the terminal and, as Markdown, to ``benchmarks/results/lastcommits.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2
from rich.console import Console

import anchors
from corpus import FULL, QUICK, ensure_corpus
from harness import (
    Section,
    Target,
    Timing,
    fmt_duration,
    load_average,
    machine,
    measure_interleaved,
    render_markdown,
    render_terminal,
)
from revisor.core.lastcommits import LastCommitCache, LastCommitListing
from revisor.db import Database
from revisor.vcs import Repository, commitgraph

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SOURCE = "bench"

ANCHOR = "git ls-tree + git log -1 per entry"
COLD = "cache, cold"
WARM = "cache, warm (in-process LRU)"
SQL = "cache, warm from SQL (new cache object)"
INCREMENTAL = "cache, incremental (parent listed by this process)"
INCREMENTAL_SQL = "cache, incremental (parent's listing in SQL)"

GRAPH = ", commit-graph + Bloom filters"

Op = Callable[[int], object]


@dataclass(frozen=True)
class Plan:
    anchor: int = 3
    cold: int = 5
    warm: int = 300
    sql: int = 100
    incremental: int = 15


FULL_PLAN = Plan()
QUICK_PLAN = Plan(anchor=2, cold=3, warm=100, sql=40, incremental=5)


@dataclass
class Way:
    name: str
    op: Op
    reps: int
    note: str = ""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ids(listing: LastCommitListing) -> dict[str, str]:
    assert not listing.partial
    return {name: c.id for name, c in listing.entries.items() if c is not None}


def deep_directory(repo: Repository, rev: str) -> str:
    """The deepest directory of ``rev`` holding at least 5 entries (the first such, in path
    order, among the deepest)."""
    found: list[tuple[int, str]] = []
    stack = [""]
    while stack:
        path = stack.pop()
        entries = repo.tree(rev, path)
        if len(entries) >= 5:
            found.append((-(path.count("/") + 1 if path else 0), path))
        stack += [e.path for e in entries if e.kind.value == "dir"]
    return min(found)[1]


def with_commit_graph(src: Path, dest: Path) -> Path:
    """A mirror copy (packs hard-linked) with a commit-graph and changed-path Bloom filters."""
    anchors.Git().run("clone", "-q", "--mirror", str(src), str(dest))
    git = anchors.Git(git_dir=dest)
    git.run("config", "gc.auto", "0")
    git.run("commit-graph", "write", "--reachable", "--changed-paths")
    return dest


class Databases:
    """Fresh, migrated SQLite databases made before timing (migrating is not what is timed)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.made: list[Database] = []

    def new(self) -> Database:
        db = Database(f"sqlite:///{self.scratch / f'db-{len(self.made)}' / 'revisor.db'}")
        db.migrate()
        self.made.append(db)
        return db

    def close(self) -> None:
        for db in self.made:
            db.dispose()


def section_for(
    git_dir: Path, rev: str, directory: str, plan: Plan, dbs: Databases, *, graph: bool = False
) -> Section:
    label = f"`{directory}`" if directory else "the root directory"
    if graph:
        label += GRAPH
    section = Section(
        f"last-{directory or 'root'}{'-graph' if graph else ''}",
        f"Last commit of each entry of {label}",
        f"all entries of {label} at `{rev}`, with author, date and summary for the cache's ways",
        reference=COLD,
    )
    git = anchors.Git(git_dir=git_dir)
    log(f"{label}: the anchor once, for the answer to check against")
    t0 = time.perf_counter()
    expected = anchors.last_commits_by_log(git, rev, directory)
    first_anchor = time.perf_counter() - t0
    reps_inc = plan.incremental
    with Repository.open(git_dir) as probe:
        commit = probe.resolve(rev)
        # The branch's last commits, oldest first: each incremental call lists the next one.
        chain = [probe.resolve(f"{rev}~{k}") for k in range(reps_inc + 1, -1, -1)]

    # cold: a fresh database for each call (the check included), made and connected beforehand
    cold_dbs = [dbs.new() for _ in range(plan.cold + 1)]

    def cold(i: int) -> dict[str, str]:
        commitgraph.clear_cache()
        with Repository.open(git_dir) as repo:
            cache = LastCommitCache(cold_dbs[i], SOURCE, repo)
            return ids(cache.listing(commit, directory))

    warm_db = dbs.new()
    warm_repo = Repository.open(git_dir)
    warm_cache = LastCommitCache(warm_db, SOURCE, warm_repo)

    def warm(_: int) -> dict[str, str]:
        return ids(warm_cache.listing(commit, directory))

    def sql(_: int) -> dict[str, str]:
        return ids(LastCommitCache(warm_db, SOURCE, warm_repo).listing(commit, directory))

    # incremental: the branch moved by one commit since the last listing, which is stored.
    # Same process (the parent's listing also in memory), or another one (in SQL only).
    same_db, other_db = dbs.new(), dbs.new()
    same_cache = LastCommitCache(same_db, SOURCE, warm_repo)
    same_cache.listing(chain[0], directory)
    LastCommitCache(other_db, SOURCE, warm_repo).listing(chain[0], directory)
    got_same: list[dict[str, str]] = []
    got_other: list[dict[str, str]] = []
    fills: list[LastCommitCache] = [same_cache]

    def incremental_same(i: int) -> dict[str, str]:
        got = ids(same_cache.listing(chain[i + 1], directory))
        got_same.append(got)
        return got

    def incremental_other(i: int) -> dict[str, str]:
        cache = LastCommitCache(other_db, SOURCE, warm_repo)
        fills.append(cache)
        got = ids(cache.listing(chain[i + 1], directory))
        got_other.append(got)
        return got

    def anchor(_: int) -> dict[str, str]:
        return anchors.last_commits_by_log(git, rev, directory)

    ways = [
        Way(COLD, cold, plan.cold, "empty database, new Repository and cache each time"),
        Way(WARM, warm, plan.warm, "the same cache object again"),
        Way(SQL, sql, plan.sql, "a new cache object over a database holding the listing"),
        Way(INCREMENTAL, incremental_same, reps_inc,
            "the same cache, after listing the parent commit (the branch moved by one commit)"),
        Way(INCREMENTAL_SQL, incremental_other, reps_inc,
            "a new cache; the parent commit's listing is in SQL only"),
        Way(ANCHOR, anchor, plan.anchor, "one git process per entry (Allura, GitLab)"),
    ]
    log(f"{label}: checking every way's answer against git's")
    for way in ways[:3]:
        got = way.op(0)
        assert got == expected, (way.name, _diff(got, expected))
    for way in ways[3:5]:
        way.op(0)  # lists chain[1]: checked after timing, like the others
    for way in ways:
        log(f"{label}: {way.name} x {way.reps}")
    # Warm-up: index 0 was the check above for the cache's ways; the anchor ran once already.
    rounds = max(1, min(3, *(w.reps for w in ways)))
    samples = measure_interleaved(
        [_shifted(w.op) for w in ways], [w.reps for w in ways], warmup=0, rounds=rounds
    )
    # The incremental ways ended on ``rev`` itself: git's answer. The others: the one walk.
    assert got_same[-1] == expected and got_other[-1] == expected
    for k, (same, other) in enumerate(zip(got_same, got_other, strict=True)):
        oracle = {n: c.id for n, c in warm_repo.last_commits(chain[k + 1], directory).items()}
        assert same == oracle and other == oracle, (k, _diff(same, oracle))
    walks = sum(c.stats.walks for c in fills)
    visits = max(c.stats.visits for c in fills[1:])
    section.timings += [Timing(w.name, t, w.note) for w, t in zip(ways, samples, strict=True)]
    warm_cache.close()
    warm_repo.close()
    distinct = len(set(expected.values()))
    section.notes += [
        f"{len(expected)} entries, last touched by {distinct} distinct commits; every way's answer "
        "checked identical to `git log -1 --format=%H <rev> -- <entry>` for every entry.",
        f"Incremental fills: {walks} history walk(s) in all (the first listing of the chain "
        f"included), at most {visits} commit(s) compared with their parents each; the "
        f"{reps_inc + 1} listings of each incremental way checked against "
        "`Repository.last_commits`, the last (the branch itself) against git.",
        ("A copy with a commit-graph and changed-path Bloom filters (`git commit-graph write "
         "--reachable --changed-paths`, as the store's maintenance writes on every mirror): git "
         "and Revisor's history walk both use them." if graph else
         "No commit-graph in the repository (as in a plain clone)."),
        f"The first, untimed, anchor run took {first_anchor:.2f} s.",
    ]
    return section


def _shifted(op: Op) -> Op:
    """``op`` called with indexes from 1: index 0 (the answer check) is each way's warm-up."""
    return lambda i: op(i + 1)


def _diff(got: dict[str, str], expected: dict[str, str]) -> str:
    wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    return f"{len(wrong)} wrong (got, git): {dict(list(wrong.items())[:5])}"


TARGETS: tuple[tuple[str, str, str, float | None], ...] = (
    ("warm (LRU) vs per-entry git log -1", ANCHOR, WARM, 50),
    ("warm from SQL vs per-entry git log -1", ANCHOR, SQL, 50),
    ("incremental (same process) vs per-entry git log -1", ANCHOR, INCREMENTAL, None),
    ("incremental (from SQL) vs per-entry git log -1", ANCHOR, INCREMENTAL_SQL, None),
    ("cold vs per-entry git log -1", ANCHOR, COLD, None),
)


def targets(sections: Sequence[Section]) -> list[Target]:
    out = []
    for section in sections:
        where = section.title.removeprefix("Last commit of each entry of ")
        for what, num, den, bound in TARGETS:
            value = None
            with contextlib.suppress(KeyError):
                value = section.get(num).median / section.get(den).median
            out.append(Target(f"{what}, {where}", value, bound, True))
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="quick corpus, fewer repetitions")
    p.add_argument("--repo", type=Path, help="benchmark this repository instead of the corpus")
    p.add_argument("--rev", help="the branch to work on (default: main, or the repo's HEAD)")
    p.add_argument("--dir", help="the deep directory to list (default: the deepest with 5+ "
                   "entries)")
    p.add_argument("--no-graph", action="store_true",
                   help="skip the root on a copy with a commit-graph and Bloom filters")
    p.add_argument("--output", type=Path, help="where to write the Markdown results")
    p.add_argument("--scratch", type=Path, help="where the databases go (default: temp dir)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_at_start = load_average()
    if args.repo is None:
        corpus = ensure_corpus(QUICK if args.quick else FULL)
        git_dir, rev, label, desc = corpus.path, args.rev or "main", corpus.spec.name, \
            corpus.describe()
    else:
        pg = pygit2.Repository(str(args.repo))
        rev = args.rev or (pg.head.shorthand if not pg.head_is_unborn else "main")
        git_dir, label = Path(pg.path), args.repo.name
        commits = sum(1 for _ in pg.walk(pg.revparse_single(rev).id))
        desc = f"{commits:,} commits reachable from `{rev}`"
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    with Repository.open(git_dir) as repo:
        deep = args.dir or deep_directory(repo, rev)
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="revisor-bench-lc-", dir=args.scratch) as tmp:
        dbs = Databases(Path(tmp))
        try:
            for directory in ("", deep):
                sections.append(section_for(git_dir, rev, directory, plan, dbs))
            if not args.no_graph:
                log("a copy with a commit-graph and Bloom filters")
                copy = with_commit_graph(git_dir, Path(tmp) / "graph.git")
                sections.append(section_for(copy, rev, "", plan, dbs, graph=True))
        finally:
            dbs.close()
            shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started
    conditions = {**machine(load_at_start), "run time": f"{elapsed:.0f} s"}
    goals = targets(sections)
    console = Console() if Console().is_terminal else Console(width=140)
    render_terminal(console, sections, goals)
    console.print(f"[dim]total {fmt_duration(elapsed)}[/]")
    output = args.output or RESULTS_DIR / (
        f"lastcommits{'' if args.repo is None else f'-{label}'}{'-quick' if args.quick else ''}.md"
    )
    command = "benchmarks/bench_lastcommits.py" + (" --quick" if args.quick else "")
    intro = [
        f"Written by `{command}`. Medians and 90th percentiles of individually timed operations; "
        "the ways are timed in alternating rounds, each after one untimed call that checked its "
        "answer against git's. Ratios are medians divided by the cold cache's median. The "
        "issue's target: a warm listing at least 50x faster than `git log -1` per entry.",
    ]
    RESULTS_DIR.mkdir(exist_ok=True)
    output.write_text(render_markdown(
        "Last-commit cache benchmark", intro, conditions, [(label, desc)], sections, goals
    ))
    print(f"results written to {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
