"""``Repository.log`` and ``Repository.last_commits`` checked against the git CLI.

The reference is always ``git --literal-pathspecs log --format=%H``: for ``log`` with the same
``--skip``, ``-n``, start and path, and for ``last_commits`` ``git log -1`` once per entry. The
hand-made histories pin down the cases that matter (merges, equal dates, clock skew, odd names);
the seeded random histories, built with one ``git fast-import`` each, check every path and every
directory against git.

Every comparison runs once per commit-graph state (:data:`GRAPH_STATES`): no graph, a graph with
and without changed-path Bloom filters, a split chain, and a graph covering only the older half of
the history. Revisor reads the graph when there is one, so each state takes other code paths; the
answer must be git's in all of them.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
import pytest

from revisor.errors import InvalidInput
from revisor.vcs import Repository, history
from tests.gitutil import GitRepo, fast_import, merge_resolving

T0 = 1_750_000_000


# -- the reference and the subject ----------------------------------------------------------------
def git_log(
    repo: GitRepo, start: str, path: str | None = None, *, limit: int | None = None, skip: int = 0
) -> list[str]:
    args = ["--literal-pathspecs", "log", "--format=%H", f"--skip={skip}"]
    if limit is not None:
        args.append(f"-n{limit}")
    args += [start, "--"]
    if path is not None:
        args.append(path)
    return repo.git(*args).split()


def git_last_commits(repo: GitRepo, start: str, directory: str) -> dict[str, str]:
    spec = f"{start}:{directory}" if directory else f"{start}^{{tree}}"
    names = repo.git("ls-tree", "-z", "--name-only", spec).split("\0")
    prefix = f"{directory}/" if directory else ""
    out = {}
    for name in filter(None, names):
        found = git_log(repo, start, prefix + name, limit=1)
        if found:
            out[name] = found[0]
    return out


def our_log(
    repo: GitRepo, start: str, path: str | None = None, *, limit: int | None = None, skip: int = 0
) -> list[str]:
    with Repository.open(repo.path) as r:
        return [c.id for c in r.log(start, path, limit=limit, skip=skip)]


def our_last_commits(repo: GitRepo, start: str, directory: str) -> dict[str, str]:
    with Repository.open(repo.path) as r:
        return {name: c.id for name, c in r.last_commits(start, directory).items()}


# -- commit-graph states -------------------------------------------------------------------------
NO_GRAPH = "no commit-graph"
FULL_GRAPH = "commit-graph with Bloom filters"
PLAIN_GRAPH = "commit-graph without Bloom filters"
SPLIT_GRAPH = "split commit-graph chain with Bloom filters"
PARTIAL_GRAPH = "commit-graph of the older half only, with Bloom filters"
GRAPH_STATES = (NO_GRAPH, FULL_GRAPH, PLAIN_GRAPH, SPLIT_GRAPH, PARTIAL_GRAPH)


def graph_info(repo: GitRepo) -> Path:
    """The test repository's ``objects/info`` (asserted to be inside it: files get removed)."""
    info = Path(repo.git("rev-parse", "--absolute-git-dir").strip()) / "objects" / "info"
    assert info.is_relative_to(repo.path), info
    return info


def remove_graphs(repo: GitRepo) -> None:
    info = graph_info(repo)
    (info / "commit-graph").unlink(missing_ok=True)
    shutil.rmtree(info / "commit-graphs", ignore_errors=True)


def older_half(repo: GitRepo) -> bytes:
    """The older half of all commits (oldest first), for ``commit-graph write --stdin-commits``;
    git adds their ancestors, so the graph leaves out only newer commits."""
    commits = repo.git("rev-list", "--all", "--date-order", "--reverse").split()
    return "\n".join(commits[: max(1, len(commits) // 2)]).encode() + b"\n"


def write_graph(repo: GitRepo, state: str) -> None:
    """Leave the repository's commit-graph files as ``state`` says."""
    remove_graphs(repo)
    write = ("commit-graph", "write", "--no-progress")
    if state == FULL_GRAPH:
        repo.git(*write, "--reachable", "--changed-paths")
    elif state == PLAIN_GRAPH:
        repo.git(*write, "--reachable")
    elif state == SPLIT_GRAPH:
        repo.git(*write, "--stdin-commits", "--split", "--changed-paths", input=older_half(repo))
        repo.git(*write, "--reachable", "--split=no-merge", "--changed-paths")
        assert (graph_info(repo) / "commit-graphs" / "commit-graph-chain").is_file()
    elif state == PARTIAL_GRAPH:
        repo.git(*write, "--stdin-commits", "--changed-paths", input=older_half(repo))
    else:
        assert state == NO_GRAPH


def graph_states(repo: GitRepo) -> Iterator[str]:
    """Each commit-graph state in turn (the caller checks under it); no graph afterwards."""
    try:
        for state in GRAPH_STATES:
            write_graph(repo, state)
            yield state
    finally:
        remove_graphs(repo)


def check_log(repo: GitRepo, start: str, paths: list[str | None]) -> None:
    expected = {path: git_log(repo, start, path) for path in paths}
    for state in graph_states(repo):
        for path in paths:
            assert our_log(repo, start, path) == expected[path], (state, path)


def check_last_commits(repo: GitRepo, start: str, directories: list[str]) -> None:
    expected = {directory: git_last_commits(repo, start, directory) for directory in directories}
    for state in graph_states(repo):
        for directory in directories:
            got = our_last_commits(repo, start, directory)
            assert got == expected[directory], (state, directory)


def all_paths(repo: GitRepo, start: str) -> list[str | None]:
    """Every path (file or directory) present in any commit reachable from ``start``."""
    out = repo.git("log", "--format=", "--name-only", "-m", "-z", start).split("\0")
    paths = set()
    for name in (n.strip("\n") for n in out):
        parts = name.split("/")
        paths.update("/".join(parts[: i + 1]) for i in range(len(parts)) if name)
    return [None, *sorted(paths), "never/existed"]


# -- hand-made histories --------------------------------------------------------------------------
def test_linear_history(git_repo: GitRepo) -> None:
    git_repo.write("a.txt", "1")
    git_repo.write("dir/b.txt", "1")
    git_repo.commit("one")
    git_repo.write("a.txt", "2")
    git_repo.commit("two")
    git_repo.write("dir/sub/c.txt", "1")
    git_repo.commit("three")
    git_repo.write("dir/b.txt", "2")
    git_repo.write("a.txt", "x", executable=True)
    git_repo.commit("four")
    git_repo.write("a.txt", "x")  # mode change only
    git_repo.commit("five")
    git_repo.commit("empty", allow_empty=True)
    check_log(git_repo, "main", all_paths(git_repo, "main"))
    check_last_commits(git_repo, "main", ["", "dir", "dir/sub"])
    assert len(our_log(git_repo, "main", "a.txt")) == 4


def test_log_limit_and_skip(git_repo: GitRepo) -> None:
    for i in range(8):
        git_repo.write("f" if i % 2 else "g", str(i))
        git_repo.commit(f"c{i}")
    cases = [
        (path, limit, skip)
        for path in (None, "f", "g", "nope")
        for limit in (None, 0, 1, 2, 3, 50)
        for skip in (0, 1, 3, 4, 9)
    ]
    expected = {c: git_log(git_repo, "main", c[0], limit=c[1], skip=c[2]) for c in cases}
    for state in graph_states(git_repo):
        for path, limit, skip in cases:
            got = our_log(git_repo, "main", path, limit=limit, skip=skip)
            assert got == expected[path, limit, skip], (state, path, limit, skip)


def test_negative_limit_or_skip_is_refused(git_repo: GitRepo) -> None:
    git_repo.write("f", "1")
    git_repo.commit("one")
    with pytest.raises(InvalidInput):
        our_log(git_repo, "main", limit=-1)
    with pytest.raises(InvalidInput):
        our_log(git_repo, "main", skip=-1)


def test_path_that_never_existed(git_repo: GitRepo) -> None:
    git_repo.write("f", "1")
    git_repo.commit("one")
    git_repo.write("f", "2")
    git_repo.commit("two")
    assert our_log(git_repo, "main", "g") == [] == git_log(git_repo, "main", "g")
    assert our_log(git_repo, "main", "f/g") == [] == git_log(git_repo, "main", "f/g")


def test_added_removed_readded(git_repo: GitRepo) -> None:
    git_repo.write("keep", "k")
    git_repo.write("f", "1")
    git_repo.commit("add")
    git_repo.remove("f")
    git_repo.commit("remove")
    git_repo.write("keep", "k2")
    git_repo.commit("other")
    git_repo.write("f", "1")
    git_repo.commit("re-add, same content")
    check_log(git_repo, "main", ["f", "keep", None])
    check_last_commits(git_repo, "main", [""])


def test_branches_and_merges(git_repo: GitRepo) -> None:
    for name in ("both", "side-only", "theirs", "ours", "main-only"):
        git_repo.write(f"d/{name}", "base")
    git_repo.write("root.txt", "base")
    git_repo.commit("base")
    git_repo.checkout("-b", "side")
    git_repo.write("d/side-only", "side")
    git_repo.write("d/both", "side")
    git_repo.write("d/theirs", "side")
    git_repo.write("d/ours", "side")
    git_repo.commit("side changes")
    git_repo.write("d/side-only", "side 2")
    git_repo.commit("side again")
    git_repo.checkout("main")
    git_repo.write("d/both", "main")
    git_repo.write("d/theirs", "main")
    git_repo.write("d/ours", "main")
    git_repo.write("d/main-only", "main")
    git_repo.commit("main changes")
    merge_resolving(
        git_repo,
        "side",
        files={"d/both": "resolved", "d/theirs": "side", "d/ours": "main"},
    )
    git_repo.write("root.txt", "after")
    git_repo.commit("after the merge")
    paths = all_paths(git_repo, "main")
    check_log(git_repo, "main", paths)
    check_log(git_repo, "side", paths)
    check_last_commits(git_repo, "main", ["", "d"])


def test_merge_taking_a_side_that_did_not_change(git_repo: GitRepo) -> None:
    """The merge reverts main's change: TREESAME to the side, whose history goes past the fork."""
    git_repo.write("f", "old")
    git_repo.write("g", "old")
    git_repo.commit("base")
    git_repo.write("f", "older")
    git_repo.commit("base 2")
    git_repo.checkout("-b", "side")
    git_repo.write("g", "side")
    git_repo.commit("side")
    git_repo.checkout("main")
    git_repo.write("f", "main")
    git_repo.commit("main")
    merge_resolving(git_repo, "side", files={"f": "older"})
    check_log(git_repo, "main", all_paths(git_repo, "main"))
    check_last_commits(git_repo, "main", [""])


def test_octopus_merge(git_repo: GitRepo) -> None:
    git_repo.write("common", "0")
    git_repo.commit("base")
    for branch in ("b1", "b2", "b3"):
        git_repo.checkout("-b", branch, "main")
        git_repo.write(f"{branch}/file", branch)
        git_repo.write(f"only-{branch}", branch)
        git_repo.commit(branch)
    git_repo.checkout("main")
    git_repo.write("common", "main")
    git_repo.commit("main")
    merge_resolving(git_repo, "b1", "b2", "b3", files={"b2/file": "changed in the merge"})
    paths = all_paths(git_repo, "main")
    check_log(git_repo, "main", paths)
    check_last_commits(git_repo, "main", ["", "b1", "b2", "b3"])
    assert len(git_repo.git("cat-file", "-p", "main").split("\nparent ")) == 5


def test_file_changed_only_on_a_side_branch(git_repo: GitRepo) -> None:
    git_repo.write("main.txt", "0")
    git_repo.write("lib/side.txt", "0")
    git_repo.commit("base")
    git_repo.checkout("-b", "side")
    git_repo.write("lib/side.txt", "1")
    git_repo.commit("side 1")
    git_repo.checkout("main")
    for i in range(3):
        git_repo.write("main.txt", str(i + 1))
        git_repo.commit(f"main {i}")
    git_repo.merge("side")
    git_repo.checkout("side")
    git_repo.write("lib/side.txt", "2")
    git_repo.commit("side 2")
    git_repo.checkout("main")
    git_repo.merge("side")
    check_log(git_repo, "main", all_paths(git_repo, "main"))
    check_last_commits(git_repo, "main", ["", "lib"])


def test_equal_timestamps_across_branches(git_repo: GitRepo) -> None:
    """Every commit in the same second: only git's insertion order decides."""
    git_repo.write("a", "0")
    git_repo.write("b", "0")
    git_repo.commit("base", date=T0)
    for branch in ("x", "y", "z"):
        git_repo.checkout("-b", branch, "main")
        for i in range(3):
            git_repo.write(f"{branch}{i}", branch)
            git_repo.write("a" if i % 2 else "b", f"{branch}{i}")
            git_repo.commit(f"{branch} {i}", date=T0)
    git_repo.checkout("main")
    git_repo.write("a", "main")
    git_repo.commit("main", date=T0)
    merge_resolving(git_repo, "x", date=T0, files={"a": "m1", "b": "x2"})
    merge_resolving(git_repo, "y", "z", date=T0, files={"a": "z1", "b": "m2"})
    paths = all_paths(git_repo, "main")
    check_log(git_repo, "main", paths)
    check_log(git_repo, "x", paths)
    check_last_commits(git_repo, "main", [""])


def test_clock_skew(git_repo: GitRepo) -> None:
    """Children older than their parents: git trusts the dates, and so must we."""
    git_repo.write("f", "0")
    git_repo.commit("base", date=T0 + 1000)
    git_repo.checkout("-b", "side")
    git_repo.write("g", "side")
    git_repo.commit("side, in the past", date=T0 + 10)
    git_repo.write("f", "side")
    git_repo.commit("side, further in the past", date=T0 + 5)
    git_repo.checkout("main")
    git_repo.write("f", "1")
    git_repo.commit("main, in the past", date=T0 + 20)
    git_repo.write("h", "1")
    git_repo.commit("main, future", date=T0 + 5000)
    merge_resolving(git_repo, "side", date=T0 + 1, files={"f": "merged"})
    git_repo.write("g", "2")
    git_repo.commit("after", date=T0 + 2)
    paths = all_paths(git_repo, "main")
    check_log(git_repo, "main", paths)
    check_last_commits(git_repo, "main", [""])


def test_odd_names_are_literal(git_repo: GitRepo) -> None:
    names = ["star", "st*r", "q?", "qx", "100%", "with space", "ünïcödé", "[ab]", "a", "b"]
    for name in names:
        git_repo.write(name, "0")
        git_repo.write(f"dir with space/{name}", "0")
    git_repo.commit("base")
    for i, name in enumerate(names):
        git_repo.write(name, str(i + 1))
        git_repo.commit(f"change {name}")
        if i % 3 == 0:
            git_repo.write(f"dir with space/{name}", str(i + 1))
            git_repo.commit(f"change dir/{name}")
    check_log(git_repo, "main", all_paths(git_repo, "main"))
    check_last_commits(git_repo, "main", ["", "dir with space"])


def test_directory_that_becomes_a_file(git_repo: GitRepo) -> None:
    git_repo.write("x/y", "0")
    git_repo.write("k", "0")
    git_repo.commit("x is a directory")
    git_repo.remove("x")
    git_repo.write("x", "now a file")
    git_repo.commit("x is a file")
    git_repo.write("k", "1")
    git_repo.commit("k")
    check_log(git_repo, "main", ["x", "x/y", "k", None])
    check_last_commits(git_repo, "main", [""])


def test_empty_subtree_and_submodule(git_repo: GitRepo) -> None:
    """Trees git cannot see into: an empty subtree (no path to report) and a gitlink."""
    empty = git_repo.git("hash-object", "-t", "tree", "-w", "--stdin", input=b"").strip()
    blob = git_repo.git("hash-object", "-w", "--stdin", input=b"x").strip()
    blob2 = git_repo.git("hash-object", "-w", "--stdin", input=b"y").strip()
    gitlink = "1" * 40
    parent: list[str] = []
    for i, entries in enumerate(
        [
            [f"100644 blob {blob}\tf"],
            [f"100644 blob {blob}\tf", f"040000 tree {empty}\te"],
            [f"100644 blob {blob2}\tf", f"040000 tree {empty}\te", f"160000 commit {gitlink}\ts"],
            [f"100644 blob {blob2}\tf", f"160000 commit {'2' * 40}\ts"],
            [f"100644 blob {blob}\tf", f"160000 commit {'2' * 40}\ts"],
        ]
    ):
        tree = git_repo.git("mktree", input="\n".join(entries).encode() + b"\n").strip()
        stamp = {"GIT_COMMITTER_DATE": f"{T0 + i} +0000", "GIT_AUTHOR_DATE": f"{T0 + i} +0000"}
        commit = git_repo.git("commit-tree", tree, *parent, "-m", f"c{i}", env=stamp).strip()
        parent = ["-p", commit]
    git_repo.git("update-ref", "refs/heads/main", commit)
    check_log(git_repo, "main", [None, "e", "s", "f", "s/x"])
    check_last_commits(git_repo, "main", [""])
    check_last_commits(git_repo, "main~2", [""])


def test_last_commits_of_a_subdirectory_start_at_any_revision(git_repo: GitRepo) -> None:
    for i in range(5):
        git_repo.write(f"src/m{i}.py", "0")
    git_repo.commit("base")
    for i in range(5):
        git_repo.write(f"src/m{i}.py", "1")
        git_repo.commit(f"m{i}")
    check_last_commits(git_repo, "main", ["", "src"])
    check_last_commits(git_repo, "main~2", ["", "src"])
    check_log(git_repo, "main~2", ["src", "src/m1.py", "src/m4.py", None])


# -- seeded random histories, built with fast-import ----------------------------------------------
UNIVERSE = [
    "a",
    "b",
    "d/e",
    "d/f",
    "d/g/h",
    "d/g/i",
    "sp ace/x",
    "st*r",
    "star",
    "q?",
    "ünï",
    "x",
    "x/y",
]
CONTENTS = ["1", "2", "3"]  # few values, so that changes often revert to an earlier version


@dataclass
class RandomHistory:
    """A random history with branches, merges (octopus too) and close or equal dates."""

    rng: random.Random
    trees: dict[int, dict[str, tuple[str, str]]] = field(default_factory=dict)  # path→(mode, data)
    dates: dict[int, int] = field(default_factory=dict)
    tips: dict[str, int] = field(default_factory=dict)
    stream: list[bytes] = field(default_factory=list)

    def build(self, commits: int) -> bytes:
        self._commit("main", [], self._edit({}))
        for _ in range(commits - 1):
            roll = self.rng.random()
            if roll < 0.15:
                branch = f"b{len(self.tips)}"
                self.tips[branch] = self.rng.choice(list(self.trees))
            else:
                branch = self.rng.choice(list(self.tips))
            others = [b for b in self.tips if b != branch]
            if others and roll > 0.7:
                self._merge(branch, self.rng.sample(others, min(len(others), self._arity())))
            else:
                tip = self.tips[branch]
                self._commit(branch, [tip], self._edit(self.trees[tip]))
        return b"".join(self.stream)

    def _arity(self) -> int:
        return 2 if self.rng.random() < 0.2 else 1

    def _edit(self, tree: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        tree = dict(tree)
        for _ in range(self.rng.randint(1, 3)):
            path = self.rng.choice(UNIVERSE)
            if path in tree and self.rng.random() < 0.3:
                del tree[path]
            else:
                mode = "100755" if self.rng.random() < 0.1 else "100644"
                _place(tree, path, (mode, self.rng.choice(CONTENTS)))
        return tree

    def _merge(self, branch: str, others: list[str]) -> None:
        parents = [self.tips[branch], *(self.tips[o] for o in others)]
        trees = [self.trees[p] for p in parents]
        merged = dict(trees[0])
        for path in sorted(set().union(*trees)):
            versions = [t.get(path) for t in trees]
            if len(set(versions)) > 1:
                pick = self.rng.choice([*versions, ("100644", "merged")])
                if pick is None:
                    merged.pop(path, None)
                else:
                    _place(merged, path, pick)
        if self.rng.random() < 0.2:
            merged = self._edit(merged)
        self._commit(branch, parents, merged)

    def _commit(self, branch: str, parents: list[int], tree: dict[str, tuple[str, str]]) -> None:
        mark = len(self.trees) + 1
        base = max((self.dates[p] for p in parents), default=T0)
        date = base + self.rng.choice([0, 0, 0, 1, 1, 7, -3])
        self.trees[mark], self.dates[mark], self.tips[branch] = tree, date, mark
        message = f"commit {mark}"
        out = [
            f"commit refs/heads/{branch}\nmark :{mark}\n"
            f"committer C <c@example.com> {date} +0000\ndata {len(message)}\n{message}\n"
        ]
        out += [f"from :{parents[0]}\n"] if parents else []
        out += [f"merge :{p}\n" for p in parents[1:]]
        out.append("deleteall\n")
        for path, (mode, data) in sorted(tree.items()):
            out.append(f"M {mode} inline {path}\ndata {len(data)}\n{data}\n")
        self.stream.append("".join(out).encode())


def _place(tree: dict[str, tuple[str, str]], path: str, value: tuple[str, str]) -> None:
    """Set ``path``, dropping whatever it conflicts with (a file where a directory goes)."""
    for other in list(tree):
        if other.startswith(f"{path}/") or path.startswith(f"{other}/"):
            del tree[other]
    tree[path] = value


@pytest.mark.parametrize("seed", range(20))
def test_random_histories(git_repo: GitRepo, seed: int) -> None:
    history = RandomHistory(random.Random(seed))
    fast_import(git_repo, history.build(40))
    git_repo.git("symbolic-ref", "HEAD", "refs/heads/main")
    tips = sorted(history.tips)
    starts = ["main", *random.Random(seed).sample(tips, min(2, len(tips)))]
    for start in dict.fromkeys(starts):
        paths = all_paths(git_repo, start)
        check_log(git_repo, start, paths)
        check_last_commits(git_repo, start, _directories(git_repo, start))
    cases = [
        (path, limit, skip) for limit, skip in ((1, 0), (3, 2), (5, 7)) for path in (None, "d", "a")
    ]
    expected = {c: git_log(git_repo, "main", c[0], limit=c[1], skip=c[2]) for c in cases}
    for state in graph_states(git_repo):
        for path, limit, skip in cases:
            got = our_log(git_repo, "main", path, limit=limit, skip=skip)
            assert got == expected[path, limit, skip], (state, path, limit, skip)


def _directories(repo: GitRepo, start: str) -> list[str]:
    listing = repo.git("ls-tree", "-r", "-d", "-z", "--name-only", start).split("\0")
    return ["", *filter(None, listing)]


def test_record_lookup_matches_full_parse(git_repo: GitRepo) -> None:
    """``_Directory.record`` (one match up to the name) gives what parsing the whole tree gives,
    with names that look like records, regex metacharacters, prefixes of other names, empty
    subtrees, and ids holding NUL and space bytes."""
    blobs = [
        git_repo.git("hash-object", "-w", "--stdin", input=str(i).encode()).strip()
        for i in range(200)
    ]
    # Ids with a NUL or a space byte, so that records hold them in the middle.
    tricky = [b for b in blobs if "00" in b or "20" in b][:6]
    empty = git_repo.git("hash-object", "-t", "tree", "-w", "--stdin", input=b"").strip()
    names = [
        "y",
        "x 100644 y",
        "100644 y",
        "a",
        "a b",
        "a.b",
        "a*",
        "(a)",
        "[ab]",
        "q?",
        "+",
        "\\",
        "ünï",
        "e",
        "s",
    ]
    lines = []
    for i, name in enumerate(names):
        if name == "e":
            lines.append(f"040000 tree {empty}\t{name}")
        elif name == "s":
            lines.append(f"160000 commit {'1' * 40}\t{name}")
        else:
            mode = "100755" if i % 3 == 0 else "100644"
            lines.append(f"{mode} blob {tricky[i % len(tricky)]}\t{name}")
    tree = git_repo.git("mktree", input="\n".join(lines).encode() + b"\n").strip()
    pg = pygit2.Repository(str(git_repo.path))
    graph = history._Graph(pg, None)
    directory = history._Directory(graph, "", 20)
    oid = pygit2.Oid(hex=tree)
    full = dict(directory.records(oid))
    queries = [n.encode() for n in names] + [b"b", b"x", b"100644", b"nothing"]
    for query in queries:
        fresh = history._Directory(graph, "", 20)
        assert fresh.record(oid, query) == full.get(query), query
    assert b"e" not in full and b"s" in full
