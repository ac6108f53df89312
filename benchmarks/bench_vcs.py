"""The benchmark for ``revisor.vcs`` (issue 2): each job timed side by side with its anchors.

Why it exists: the design promises that working on objects instead of clones and worktrees makes
reads as cheap as raw libgit2, commits independent of the repository's size, merges and
last-commit lookups much cheaper than spawning git. This script measures those claims in one run, on
one machine, against the ways the systems before Revisor do the same jobs (``anchors.py``), and
checks that every way returns the same answer before quoting how fast it is.

    .venv/bin/python benchmarks/bench_vcs.py            # full corpus, < ~10 minutes
    .venv/bin/python benchmarks/bench_vcs.py --quick    # scaled-down corpus, < ~1 minute
    .venv/bin/python benchmarks/bench_vcs.py --repo PATH [--rev main]

Results go to the terminal and, as Markdown, to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import itertools
import pstats
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pygit2
from rich.console import Console

import anchors
from corpus import FULL, QUICK, SMALL, Corpus, ensure_corpus
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
from revisor.vcs import Repository, Signature, commitgraph

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SIGNATURE = Signature("Bench Author", "author@bench.invalid", datetime(2026, 1, 1, tzinfo=UTC))
FILES_PER_COMMIT = 10
MAX_EDITED_FILE = 256 << 10

Op = Callable[[int], object]

# The ways the targets compare (the names shown in the tables).
BUILDER_WAY = "revisor.vcs ChangeBuilder + set_ref"
WORKTREE_WAY = "temporary worktree + add + commit (cup)"
MERGE_WAY = "revisor.vcs merge"
MERGE_TREE_WAY = "git merge-tree --write-tree, a process per pair"
LAST_WAY = "revisor.vcs, cold"
SMALL_BUILDER_WAY = "revisor.vcs ChangeBuilder, small repository"
SMALL_WORKTREE_WAY = "temporary worktree (cup), small repository"
LOG_WAY = "git ls-tree + git log -1 per entry"
GRAPH_SUFFIX = ", commit-graph + Bloom filters"
LAST_GRAPH_WAY = LAST_WAY + GRAPH_SUFFIX
LOG_GRAPH_WAY = LOG_WAY + GRAPH_SUFFIX


@dataclass(frozen=True)
class Plan:
    """How many operations each way is timed for (warm-up runs come on top)."""

    blob_paths: int = 300
    blob_rounds: int = 10
    show_reads: int = 300
    commits: int = 200
    anchor_commits: int = 12
    small_anchor_commits: int = 8
    merge_rounds: int = 5
    merge_cli_rounds: int = 1
    max_pairs: int = 90
    last_reps: int = 5
    last_cli_reps: int = 3


FULL_PLAN = Plan()
QUICK_PLAN = Plan(
    blob_paths=100,
    blob_rounds=5,
    show_reads=40,
    commits=40,
    anchor_commits=3,
    small_anchor_commits=3,
    merge_rounds=2,
    merge_cli_rounds=1,
    max_pairs=30,
    last_reps=2,
    last_cli_reps=1,
)


@dataclass
class Context:
    """What every section works on: a read-only repository, a revision, a scratch directory."""

    git_dir: Path
    rev: str
    label: str
    small: Corpus
    scratch: Path
    plan: Plan
    seed: int = 7
    profile: bool = False
    profiles: dict[str, str] = field(default_factory=dict)

    def rng(self, salt: str) -> random.Random:
        return random.Random(f"{self.seed}:{salt}")

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- helpers ---------------------------------------------------------------------------------------
def scratch_copy(src: Path, dest: Path) -> Path:
    """A writable copy (``clone --mirror``, packs hard-linked) so the cached corpus stays as built.

    Automatic gc is off so that no background repack starts in the middle of a measurement.
    """
    anchors.Git().run("clone", "-q", "--mirror", str(src), str(dest))
    anchors.Git(git_dir=dest).run("config", "gc.auto", "0")
    return dest


def commit_graph(git_dir: Path) -> str:
    """Whether git can use a commit-graph here, and changed-path Bloom filters (which make
    ``git log -- <path>`` skip most tree comparisons; libgit2 does not read them)."""
    info = git_dir / "objects" / "info"
    files = [info / "commit-graph", *sorted((info / "commit-graphs").glob("*.graph"))]
    found = [f for f in files if f.is_file()]
    if not found:
        return "No commit-graph file (as in a plain clone)"
    # The chunk table follows the 8-byte header: 12 bytes per chunk, "BIDX" names the Bloom index.
    bloom = any(b"BIDX" in f.read_bytes()[: 8 + 12 * 16] for f in found)
    return "A commit-graph " + ("with" if bloom else "without") + " changed-path Bloom filters"


def list_files(pg: pygit2.Repository, commit: str) -> list[str]:
    """Every regular file of ``commit``, in tree order."""
    out: list[str] = []

    def walk(tree: pygit2.Tree, prefix: str) -> None:
        for e in tree:
            if e.filemode == pygit2.enums.FileMode.TREE:
                walk(pg[e.id].peel(pygit2.Tree), f"{prefix}{e.name}/")
            elif e.filemode in (pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.BLOB_EXECUTABLE):
                out.append(f"{prefix}{e.name}")

    walk(pg[commit].peel(pygit2.Tree), "")
    return out


def blob_at(pg: pygit2.Repository, rev: str, path: str) -> bytes:
    """The content of ``path`` at ``rev``, read with pygit2 (for checks, not timed)."""
    blob = pg.revparse_single(rev).peel(pygit2.Tree)[path].peel(pygit2.Blob)
    data: bytes = blob.data
    return data


@dataclass(frozen=True)
class Way:
    """One way of doing a section's job: its name in the table, the operation, how many to time."""

    name: str
    op: Op
    reps: int
    note: str = ""


def run_ways(
    ctx: Context, section: Section, ways: Sequence[Way], warmup: int, rounds: int = 5
) -> None:
    """Time ``ways`` interleaved (see ``measure_interleaved``) and add them to ``section``."""
    for w in ways:
        ctx.log(f"{section.key}: {w.name} x {w.reps}")
    rounds = max(1, min(rounds, *(w.reps for w in ways)))
    samples = measure_interleaved([w.op for w in ways], [w.reps for w in ways], warmup, rounds)
    section.timings += [Timing(w.name, t, w.note) for w, t in zip(ways, samples, strict=True)]


def profile_op(ctx: Context, key: str, op: Op, reps: int) -> None:
    """With ``--profile``: where the time of ``reps`` calls of Revisor's way goes."""
    if not ctx.profile:
        return
    prof = cProfile.Profile()
    prof.enable()
    for i in range(reps):
        op(i)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
    ctx.profiles[key] = buf.getvalue()


# -- 1. reading a blob by path ---------------------------------------------------------------------
def bench_blobs(ctx: Context) -> Section:
    plan = ctx.plan
    repo = Repository.open(ctx.git_dir)
    pg = pygit2.Repository(str(ctx.git_dir))
    cid, name = repo.resolve(ctx.rev), ctx.rev
    files = list_files(pg, cid)
    paths = ctx.rng("blobs").sample(files, min(plan.blob_paths, len(files)))
    n = len(paths)
    git = anchors.Git(git_dir=ctx.git_dir)
    cat = anchors.CatFileBatch(ctx.git_dir)

    ctx.log(f"blob reads: checking {n} paths give the same bytes every way")
    for i, p in enumerate(paths):
        expected = blob_at(pg, cid, p)
        assert repo.file(cid, p).data == expected, p
        assert repo.file(name, p).data == expected, p
        assert blob_at(pg, name, p) == expected, p
        assert cat.read(cid, p) == expected, p
        if i < plan.show_reads:
            assert anchors.git_show(git, cid, p) == expected, p

    reps = n * plan.blob_rounds
    in_process = [
        Way("revisor.vcs, commit id", lambda i: repo.file(cid, paths[i % n]).data, reps),
        Way("revisor.vcs, branch name", lambda i: repo.file(name, paths[i % n]).data, reps),
        # Written inline, not through blob_at, so the floor carries no extra Python call.
        Way(
            "pygit2, commit id",
            lambda i: pg.revparse_single(cid).tree[paths[i % n]].data,  # type: ignore[union-attr]
            reps,
        ),
        Way(
            "pygit2, branch name",
            lambda i: pg.revparse_single(name).tree[paths[i % n]].data,  # type: ignore[union-attr]
            reps,
        ),
        Way("git cat-file --batch, one process", lambda i: cat.read(cid, paths[i % n]), reps),
    ]
    show = Way(
        "git show, a process per read",
        lambda i: anchors.git_show(git, cid, paths[i % n]),
        min(plan.show_reads, n),
    )
    section = Section(
        "blob",
        "Read one file by path",
        "`file(rev, path).data` of a random file",
        reference="revisor.vcs, commit id",
    )
    run_ways(ctx, section, in_process, warmup=min(n, 50), rounds=plan.blob_rounds)
    run_ways(ctx, section, [show], warmup=5)
    cat.close()
    profile_op(ctx, "blob", in_process[0].op, reps)
    section.notes.append(
        f"{n} distinct files sampled at `{ctx.rev}` ({cid[:12]}), each read {plan.blob_rounds}x "
        "in-process; bytes checked identical across all ways before timing."
    )
    repo.close()
    return section


# -- 2. committing 10 changed files ----------------------------------------------------------------
def change_sets(
    pg: pygit2.Repository, commit: str, rng: random.Random, k: int
) -> list[dict[str, bytes]]:
    """``k`` sets of FILES_PER_COMMIT existing text files, each with a line appended."""
    files = list_files(pg, commit)
    out: list[dict[str, bytes]] = []
    for j in range(k):
        chosen: dict[str, bytes] = {}
        while len(chosen) < FILES_PER_COMMIT:
            path = rng.choice(files)
            data = blob_at(pg, commit, path)
            if len(data) <= MAX_EDITED_FILE and b"\0" not in data[:8000]:
                chosen[path] = data + f"\n# benchmark change {j}\n".encode()
        out.append(chosen)
    return out


@dataclass
class CommitRun:
    """One repository prepared for the commit benchmark, and the commits each way made."""

    git_dir: Path
    rev: str
    sets: list[dict[str, bytes]]
    made: dict[str, dict[int, str]] = field(default_factory=dict)

    def builder_op(self, repo: Repository, way: str) -> Op:
        made = self.made.setdefault(way, {})

        def op(i: int) -> None:
            b = repo.builder(self.rev)
            for path, data in self.sets[i % len(self.sets)].items():
                b.write(path, data)
            cid = b.commit(anchors.COMMIT_MESSAGE, SIGNATURE)
            assert cid is not None
            repo.set_ref(f"refs/heads/bench/builder-{way}-{i}", cid, expected=None)
            made[i] = cid

        return op

    def worktree_op(self, scratch: Path, way: str) -> Op:
        made, git = self.made.setdefault(way, {}), anchors.Git(git_dir=self.git_dir)

        def op(i: int) -> None:
            changes = self.sets[i % len(self.sets)]
            made[i] = anchors.worktree_commit(
                git, self.rev, f"bench/wt-{way}-{i}", changes, scratch
            )

        return op

    def clone_op(self, scratch: Path, way: str) -> Op:
        made = self.made.setdefault(way, {})

        def op(i: int) -> None:
            changes = self.sets[i % len(self.sets)]
            made[i] = anchors.clone_commit(
                self.git_dir, self.rev, f"bench/clone-{i}", changes, scratch
            )

        return op

    def check_same_trees(self) -> int:
        """Every way's commit for the same change set has the same tree; returns how many."""
        pg = pygit2.Repository(str(self.git_dir))
        k = len(self.sets)
        trees: dict[int, set[str]] = {}
        for made in self.made.values():
            for i, cid in made.items():
                commit = pg[cid].peel(pygit2.Commit)
                assert str(commit.parent_ids[0]) == str(pg.revparse_single(self.rev).id)
                trees.setdefault(i % k, set()).add(str(commit.tree_id))
        for j, ids in trees.items():
            assert len(ids) == 1, f"change set {j}: the ways made different trees {ids}"
        return sum(len(m) for m in self.made.values())


def bench_commits(ctx: Context) -> Section:
    plan = ctx.plan
    big_dir = scratch_copy(ctx.git_dir, ctx.scratch / "commit-big.git")
    small_dir = scratch_copy(ctx.small.path, ctx.scratch / "commit-small.git")
    small_rev = "main"
    section = Section(
        "commit",
        f"Commit {FILES_PER_COMMIT} changed files on a new branch",
        f"write {FILES_PER_COMMIT} files on top of `{ctx.rev}`, commit, create the branch",
        reference=BUILDER_WAY,
    )
    runs = []
    for git_dir, rev, label in ((big_dir, ctx.rev, ctx.label), (small_dir, small_rev, "small")):
        pg = pygit2.Repository(str(git_dir))
        sets = change_sets(pg, str(pg.revparse_single(rev).id), ctx.rng(f"commit-{label}"), 20)
        runs.append(CommitRun(git_dir, rev, sets))
    big, small = runs
    wt_dir, clone_dir = ctx.scratch / "worktrees", ctx.scratch / "clones"
    wt_dir.mkdir()
    clone_dir.mkdir()

    big_repo, small_repo = Repository.open(big.git_dir), Repository.open(small.git_dir)
    small_note = f"{ctx.small.stats['files_at_main']} files, {ctx.small.stats['commits']} commits"
    builders = [
        Way(section.reference, big.builder_op(big_repo, "big"), plan.commits),
        Way(SMALL_BUILDER_WAY, small.builder_op(small_repo, "small"), plan.commits, small_note),
    ]
    processes = [
        Way(WORKTREE_WAY, big.worktree_op(wt_dir, "big"), plan.anchor_commits),
        Way(
            "clone --shared + checkout + add + commit + push (Gitea)",
            big.clone_op(clone_dir, "big"),
            plan.anchor_commits,
        ),
        Way(
            SMALL_WORKTREE_WAY,
            small.worktree_op(wt_dir, "small"),
            plan.small_anchor_commits,
            small_note,
        ),
    ]
    run_ways(ctx, section, builders, warmup=10)
    run_ways(ctx, section, processes, warmup=2)
    checked = big.check_same_trees() + small.check_same_trees()
    profile_op(ctx, "commit", big.builder_op(big_repo, "profile"), plan.commits)
    section.notes += [
        f"{len(big.sets)} different sets of {FILES_PER_COMMIT} random existing files, each with a "
        "line appended; every way starts from the same commit and creates its own branch.",
        f"Checked: the {checked} commits made by all ways have the same tree for the same change "
        "set.",
        "The worktree and clone ways include their clean-up (worktree remove, rm -r of the clone); "
        "the clone way pushes the commit back, otherwise it would not be in the repository.",
        _growth_note(section, ctx.small, big, small),
    ]
    big_repo.close()
    small_repo.close()
    return section


def trees_rewritten(changes: dict[str, bytes]) -> int:
    """How many trees a commit of ``changes`` writes: the root and every directory on the way."""
    dirs = {""}
    for path in changes:
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return len(dirs)


def _growth_note(section: Section, small_corpus: Corpus, big: CommitRun, small: CommitRun) -> str:
    """How each way's time grows from the small repository to the big one, and why."""

    def mean_trees(run: CommitRun) -> float:
        return sum(trees_rewritten(c) for c in run.sets) / len(run.sets)

    def growth(way: str, small_way: str) -> str:
        try:
            return f"{section.get(way).median / section.get(small_way).median:.1f}x"
        except KeyError:
            return "—"

    builder = growth(BUILDER_WAY, SMALL_BUILDER_WAY)
    worktree = growth(WORKTREE_WAY, SMALL_WORKTREE_WAY)
    return (
        f"From the small repository to this one, the ChangeBuilder's time grew {builder} and the "
        f"worktree way's {worktree}. A ChangeBuilder commit rewrites only the trees along the "
        f"changed paths: {mean_trees(big):.0f} trees per commit here on average, "
        f"{mean_trees(small):.0f} in the small repository ({small_corpus.stats['files_at_main']} "
        "files, shallower); the rest of the repository, and its history, cost nothing."
    )


# -- 3. merging / checking for conflicts -----------------------------------------------------------
def merge_pairs(pg: pygit2.Repository, rev: str, limit: int) -> list[tuple[str, str, str]]:
    """(kind, ours, theirs): rev against each branch, branches pairwise, and the parents of merge
    commits found along rev's first-parent history (real merges, replayed).

    Both sides are full commit ids: git labels conflict markers with the names it is given, and
    ``revisor.vcs`` labels them with commit ids, so only ids give comparable conflicted trees."""

    def cid(name: str) -> str:
        return str(pg.revparse_single(name).peel(pygit2.Commit).id)

    head = pg.revparse_single(rev).peel(pygit2.Commit)
    branches = sorted(b for b in pg.branches.local if b != rev)
    pairs = [("branch", cid(rev), cid(b)) for b in branches][: limit // 2]
    pairs += [("branch↔branch", cid(a), cid(b)) for a, b in itertools.pairwise(branches)][
        : limit // 8
    ]
    walker = pg.walk(head.id, pygit2.enums.SortMode.NONE)
    walker.simplify_first_parent()
    merges = [c for c in walker if len(c.parent_ids) == 2]
    want = max(0, limit - len(pairs))
    step = max(1, len(merges) // want) if want else len(merges) + 1
    pairs += [("history", str(c.parent_ids[0]), str(c.parent_ids[1])) for c in merges[::step]][
        :want
    ]
    return pairs


def bench_merges(ctx: Context) -> Section:
    plan = ctx.plan
    git_dir = scratch_copy(ctx.git_dir, ctx.scratch / "merge.git")
    pg = pygit2.Repository(str(git_dir))
    pairs = merge_pairs(pg, ctx.rev, plan.max_pairs)
    section = Section(
        "merge",
        "Merge two commits in memory (conflict check)",
        "the merged tree, clean or not, and the conflicted paths, for one pair",
        reference=MERGE_WAY,
    )
    if not pairs:
        section.skipped = "no branches or merge commits to pair"
        return section
    repo = Repository.open(git_dir)
    git = anchors.Git(git_dir=git_dir)
    n = len(pairs)
    ctx.log(f"merges: checking {n} pairs against git merge-tree --write-tree")
    try:
        conflicted = _check_merges(repo, git, pairs)
    except NotImplementedError:
        section.skipped = "`Repository.merge` is not implemented yet (NotImplementedError)"
        return section
    ways = [
        Way(section.reference, lambda i: repo.merge(*pairs[i % n][1:]), n * plan.merge_rounds),
        Way(
            MERGE_TREE_WAY,
            lambda i: anchors.merge_tree(git, *pairs[i % n][1:]),
            n * plan.merge_cli_rounds,
        ),
    ]
    run_ways(ctx, section, ways, warmup=min(n, 10))
    profile_op(ctx, "merge", ways[0].op, n * plan.merge_rounds)
    kinds = {k: sum(1 for p in pairs if p[0] == k) for k in ("branch", "branch↔branch", "history")}
    section.notes += [
        f"{n} pairs ({conflicted} with conflicts): {kinds['branch']} `{ctx.rev}` ↔ branch, "
        f"{kinds['branch↔branch']} branch ↔ branch, {kinds['history']} parents of merge commits "
        "on the first-parent history.",
        "Checked before timing: clean/conflicted verdict, merged tree id and conflicted paths "
        "identical to `git merge-tree --write-tree` for every pair.",
    ]
    repo.close()
    return section


def _check_merges(repo: Repository, git: anchors.Git, pairs: Sequence[tuple[str, str, str]]) -> int:
    conflicted = 0
    for _kind, ours, theirs in pairs:
        got = repo.merge(ours, theirs)
        want = anchors.merge_tree(git, ours, theirs)
        assert got.clean == want.clean, (ours, theirs, got, want)
        assert str(got.tree) == want.tree, (ours, theirs, got, want)
        assert tuple(sorted(got.conflicts)) == want.conflicts, (ours, theirs, got, want)
        conflicted += not want.clean
    return conflicted


# -- 4. last commit per entry of the root directory ------------------------------------------------
def _revisor_last_ways(git_dir: Path, rev: str, reps: int, suffix: str = "") -> list[Way]:
    """Revisor's cold and warm ways on ``git_dir``. Cold is a new Repository and an empty
    commit-graph cache (the graph is mapped and its checksum verified again), warm is the same
    Repository again (libgit2's caches and the loaded graph kept)."""

    def cold(_: int) -> dict[str, str]:
        commitgraph.clear_cache()
        with Repository.open(git_dir) as repo:
            return {k: str(c.id) for k, c in repo.last_commits(rev, "").items()}

    warm_repo = Repository.open(git_dir)

    def warm(_: int) -> dict[str, str]:
        return {k: str(c.id) for k, c in warm_repo.last_commits(rev, "").items()}

    return [
        Way(f"{LAST_WAY}{suffix}", cold, reps, "a new Repository each time"),
        Way(f"revisor.vcs, warm{suffix}", warm, reps, "the same Repository again"),
    ]


def bench_last_commits(ctx: Context) -> Section:
    plan = ctx.plan
    git = anchors.Git(git_dir=ctx.git_dir)
    section = Section(
        "last",
        "Last commit of each entry of the root directory",
        f"all entries of the root of `{ctx.rev}`",
        reference=LAST_WAY,
    )
    ctx.log("last commits: git ls-tree + git log -1 per entry (the answer to check against)")
    t0 = time.perf_counter()
    expected = anchors.last_commits_by_log(git, ctx.rev)
    first_cli = time.perf_counter() - t0

    revisor = _revisor_last_ways(ctx.git_dir, ctx.rev, plan.last_reps)
    try:
        got = revisor[0].op(0)
    except NotImplementedError:
        section.skipped = "`Repository.last_commits` is not implemented yet (NotImplementedError)"
        return section
    assert got == expected, _diff_answers(got, expected)
    assert revisor[1].op(0) == expected
    ways = [
        *revisor,
        Way(LOG_WAY, lambda _: anchors.last_commits_by_log(git, ctx.rev), plan.last_cli_reps),
    ]
    graph_copy = commit_graph(ctx.git_dir).startswith("No")  # else: it has its own
    if graph_copy:
        ways += _with_bloom_filters(ctx, expected)
    run_ways(ctx, section, ways, warmup=0)  # each way has just run once, to check its answer
    profile_op(ctx, "last", revisor[0].op, 1)
    if graph_copy:
        profile_op(ctx, "last-graph", ways[3].op, 1)
    distinct = len(set(expected.values()))
    section.notes += [
        f"{len(expected)} entries, last touched by {distinct} distinct commits; answers checked "
        "identical to `git log -1 --format=%H <rev> -- <entry>` for every entry, every way.",
        f"{commit_graph(ctx.git_dir)}. The first, untimed, git run took {first_cli:.2f} s.",
    ]
    if graph_copy:
        section.notes.append(
            f"Rows marked {GRAPH_SUFFIX.strip(' ,')} run on a copy where "
            "`git commit-graph write --reachable --changed-paths` has run, as Revisor's store "
            "maintenance does on every mirror: git and Revisor then both read commits from the "
            "graph and skip most tree comparisons with its Bloom filters."
        )
    return section


def _with_bloom_filters(ctx: Context, expected: dict[str, str]) -> list[Way]:
    """Revisor's ways and the git way again, on a copy with a commit-graph and changed-path Bloom
    filters: what they become once the store's maintenance writes them (``git gc`` writes a
    commit-graph by default, without Bloom filters)."""
    git_dir = scratch_copy(ctx.git_dir, ctx.scratch / "commit-graph.git")
    git = anchors.Git(git_dir=git_dir)
    git.run("commit-graph", "write", "--reachable", "--changed-paths")
    assert anchors.last_commits_by_log(git, ctx.rev) == expected
    revisor = _revisor_last_ways(git_dir, ctx.rev, ctx.plan.last_reps, GRAPH_SUFFIX)
    for way in revisor:
        assert way.op(0) == expected, way.name
    return [
        *revisor,
        Way(
            LOG_GRAPH_WAY,
            lambda _: anchors.last_commits_by_log(git, ctx.rev),
            ctx.plan.last_cli_reps,
        ),
    ]


def _diff_answers(got: dict[str, str], expected: dict[str, str]) -> str:
    wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    extra = sorted(set(got) - set(expected))
    return f"{len(wrong)} wrong (got, git): {dict(list(wrong.items())[:5])}; extra: {extra[:5]}"


# -- targets and main ------------------------------------------------------------------------------
# (what, section, numerator way, denominator way, bound, the ratio must be at least the bound)
TARGETS: tuple[tuple[str, str, str, str, float | None, bool], ...] = (
    ("read: revisor.vcs / pygit2, commit id", "blob", "revisor.vcs, commit id",
     "pygit2, commit id", 2, False),
    ("read: revisor.vcs / pygit2, branch name", "blob", "revisor.vcs, branch name",
     "pygit2, branch name", 2, False),
    ("commit: worktree way / ChangeBuilder", "commit", WORKTREE_WAY, BUILDER_WAY, 20, True),
    ("commit: ChangeBuilder, big repository / small", "commit", BUILDER_WAY, SMALL_BUILDER_WAY,
     1.5, False),
    ("merge: a merge-tree process / revisor.vcs", "merge", MERGE_TREE_WAY, MERGE_WAY, None, True),
    ("last commits: ls-tree + log -1 per entry / revisor.vcs (cold)", "last", LOG_WAY, LAST_WAY,
     5, True),
    ("last commits: log -1 per entry (no graph) / revisor.vcs (cold, graph)", "last", LOG_WAY,
     LAST_GRAPH_WAY, 5, True),
    ("last commits, both with a commit-graph: log -1 per entry / revisor.vcs (cold)", "last",
     LOG_GRAPH_WAY, LAST_GRAPH_WAY, None, True),
)  # fmt: skip


def targets(sections: dict[str, Section]) -> list[Target]:
    out = []
    for what, key, num, den, bound, at_least in TARGETS:
        value = None
        if key in sections:
            with contextlib.suppress(KeyError):  # a way that was not measured
                value = sections[key].get(num).median / sections[key].get(den).median
        out.append(Target(what, value, bound, at_least))
    return out


BENCHES: dict[str, Callable[[Context], Section]] = {
    "blob": bench_blobs,
    "commit": bench_commits,
    "merge": bench_merges,
    "last": bench_last_commits,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="scaled-down corpus, few repetitions")
    p.add_argument("--repo", type=Path, help="benchmark this repository instead of the corpus")
    p.add_argument("--rev", help="the branch to work on (default: main, or the repo's HEAD)")
    p.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run only these sections")
    p.add_argument("--output", type=Path, help="where to write the Markdown results")
    p.add_argument(
        "--scratch",
        type=Path,
        help="where writable copies, worktrees and clones go (default: the system's temp dir)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also profile Revisor's way in each section (results/profile-*.txt)",
    )
    return p.parse_args(argv)


def _target_repo(args: argparse.Namespace) -> tuple[Path, str, str, str]:
    """(git dir, rev, label, description) of the repository to benchmark."""
    if args.repo is None:
        corpus = ensure_corpus(QUICK if args.quick else FULL)
        return corpus.path, args.rev or "main", corpus.spec.name, corpus.describe()
    pg = pygit2.Repository(str(args.repo))
    rev = args.rev or (pg.head.shorthand if not pg.head_is_unborn else "main")
    files = len(list_files(pg, str(pg.revparse_single(rev).id)))
    commits = sum(1 for _ in pg.walk(pg.revparse_single(rev).id))
    desc = f"{files:,} files at `{rev}`, {commits:,} commits reachable from it"
    return Path(pg.path), rev, args.repo.name, desc


@dataclass
class Run:
    """One invocation: its options, the repositories, what was measured and in which conditions."""

    args: argparse.Namespace
    label: str
    corpora: list[tuple[str, str]]
    conditions: dict[str, str] = field(default_factory=dict)
    sections: dict[str, Section] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)

    @property
    def output(self) -> Path:
        if self.args.output:
            return Path(self.args.output)
        name = "vcs" if self.args.repo is None else f"vcs-{self.label}"
        return RESULTS_DIR / f"{name}{'-quick' if self.args.quick else ''}.md"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_at_start = load_average()
    git_dir, rev, label, desc = _target_repo(args)
    small = ensure_corpus(SMALL)
    run = Run(args, label, [(label, desc), ("small", small.describe())])
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    with tempfile.TemporaryDirectory(prefix="revisor-bench-", dir=args.scratch) as tmp:
        scratch = Path(tmp)
        cost = file_creation_cost(scratch)
        run.conditions["scratch directory"] = f"{scratch.parent} (creating a 4 KB file there: "
        run.conditions["scratch directory"] += f"{fmt_duration(cost)} median)"
        ctx = Context(git_dir, rev, label, small, scratch, plan, profile=args.profile)
        for key in args.only or BENCHES:
            run.sections[key] = BENCHES[key](ctx)
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(exist_ok=True)
        run.profiles = ctx.profiles
    elapsed = time.perf_counter() - started
    run.conditions = {**machine(load_at_start), **run.conditions, "run time": f"{elapsed:.0f} s"}
    goals = targets(run.sections)
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    render_terminal(console, list(run.sections.values()), goals)
    console.print(f"[dim]total {elapsed:.0f} s[/]")
    _write_results(run, goals)
    return 0


def _write_results(run: Run, goals: list[Target]) -> None:
    RESULTS_DIR.mkdir(exist_ok=True)
    command = "benchmarks/bench_vcs.py" + (" --quick" if run.args.quick else "")
    intro = [
        f"Written by `{command}`; `benchmarks/README.md` says what each figure means. Medians and "
        "90th percentiles of individually timed operations, after warm-up runs; ways of doing the "
        "same job are timed in alternating rounds. Ratios are medians divided by the section's "
        "reference way's median.",
    ]
    text = render_markdown(
        "revisor.vcs benchmark",
        intro,
        run.conditions,
        run.corpora,
        list(run.sections.values()),
        goals,
    )
    run.output.write_text(text)
    print(f"results written to {run.output}", file=sys.stderr)
    for key, profile in run.profiles.items():
        path = RESULTS_DIR / f"profile-{key}.txt"
        path.write_text(profile)
        print(f"profile written to {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
