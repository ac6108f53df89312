"""``revisor.vcs.commitgraph`` checked against git's own commit-graph files and answers.

The graph files are always written by the git CLI (``git commit-graph write``), never by hand,
except to damage them. Checked here: every commit's parents, date and tree as pygit2 reads them,
in single files, split chains and graphs covering part of the history; the changed-path Bloom
filters rebuilt byte for byte from ``git diff-tree`` (which proves the murmur3 hashing is git's,
non-ASCII paths included), and never a false "not changed"; filters of commits with more than 512
changes; damaged or inconsistent files, which must be ignored (the walks still answer as git
does); reloading when the files change. ``tests/compat/test_history.py`` runs all its comparisons
with git under each commit-graph state too.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
import pytest

from revisor.vcs import Repository, commitgraph, history
from revisor.vcs.commitgraph import BloomSettings, CommitGraph, PathKey, build_filter, murmur3
from tests.compat.test_history import (
    FULL_GRAPH,
    GRAPH_STATES,
    NO_GRAPH,
    PARTIAL_GRAPH,
    PLAIN_GRAPH,
    SPLIT_GRAPH,
    RandomHistory,
    all_paths,
    check_last_commits,
    check_log,
    git_last_commits,
    git_log,
    graph_info,
    older_half,
    our_last_commits,
    our_log,
    write_graph,
)
from tests.gitutil import GitRepo, fast_import

T0 = 1_750_000_000
MAX_CHANGES = 512  # git's limit of changed paths per filter (commitGraph docs; bloom.c)

# Paths whose bytes >= 0x80 fall in murmur3's 4-byte blocks and in its 1-3 byte tail.
NON_ASCII = [
    "é",
    "ü/ö.txt",
    "日本語/ファイル.md",
    "dir/çà",
    "abc\u00e9",
    "abcd\u00e9f",
    "\u00e9\u00e9\u00e9\u00e9\u00e9",
    "zz/\u00ff\u00fe\u00fd",
]


# -- a history builder (fast-import, arbitrary paths and parents) -------------------------------
@dataclass
class History:
    """Commits given as full trees, streamed to one ``git fast-import``."""

    stream: list[bytes] = field(default_factory=list)
    trees: dict[int, dict[str, tuple[str, str]]] = field(default_factory=dict)
    clock: int = T0

    def commit(
        self,
        tree: dict[str, tuple[str, str]],
        parents: tuple[int, ...] = (),
        branch: str = "main",
    ) -> int:
        mark = len(self.trees) + 1
        self.clock += 60
        self.trees[mark] = tree
        out = [
            f"commit refs/heads/{branch}\nmark :{mark}\n"
            f"committer C <c@example.com> {self.clock} +0000\ndata 4\nc{mark:03d}\n".encode()
        ]
        if parents:
            out.append(f"from :{parents[0]}\n".encode())
        out += [f"merge :{p}\n".encode() for p in parents[1:]]
        out.append(b"deleteall\n")
        for path, (mode, data) in sorted(tree.items()):
            raw = path.encode("utf-8", "surrogateescape")
            out.append(
                b"M %s inline %s\ndata %d\n%s\n" % (mode.encode(), raw, len(data), data.encode())
            )
        self.stream.append(b"".join(out))
        return mark

    def change(self, parent: int, edits: dict[str, tuple[str, str] | None], **kw: str) -> int:
        tree = dict(self.trees[parent])
        for path, value in edits.items():
            if value is None:
                tree.pop(path, None)
            else:
                tree[path] = value
        return self.commit(tree, (parent,), **kw)

    def load(self, repo: GitRepo) -> dict[int, str]:
        ids = fast_import(repo, b"".join(self.stream))
        repo.git("symbolic-ref", "HEAD", "refs/heads/main")
        return ids


def f(data: str) -> tuple[str, str]:
    return ("100644", data)


def rich_history(repo: GitRepo) -> dict[int, str]:
    """Non-ASCII paths, deep paths, mode and type changes, deletions, an empty commit, octopus
    merges, and commits with 511 to 600 changed paths around git's limit of 512."""
    h = History()
    base = {"README": f("0"), "src/a/b/c.py": f("0"), "x": f("0"), **{p: f("0") for p in NON_ASCII}}
    tip = h.commit(base)
    for i, path in enumerate(NON_ASCII):
        tip = h.change(tip, {path: f(str(i + 1))})
    tip = h.change(tip, {"src/a/b/c.py": ("100755", "0")})  # mode only
    tip = h.change(tip, {"x": None, "x/y": f("now a directory")})  # type change
    tip = h.change(tip, {"README": ("120000", "target")})  # a symlink now
    tip = h.commit(h.trees[tip], (tip,))  # no change at all
    tip = h.change(tip, {"src/a/b/c.py": None, "é": None})  # deletions
    sides = []
    for name in ("s1", "s2", "s3"):
        sides.append(h.change(tip, {f"{name}/only": f(name), "ü/ö.txt": f(name)}, branch=name))
    tip = h.change(tip, {"README": f("main")})
    octopus = dict(h.trees[tip])
    for side in sides:
        octopus.update(h.trees[side])
    tip = h.commit(octopus, (tip, *sides))
    # Around the limit: pairs (changed files) and paths (with leading directories).
    tip = h.change(tip, {f"k/f{i}": f("1") for i in range(MAX_CHANGES - 1)})  # 511 + 1 dir
    tip = h.change(tip, {f"k/f{i}": f("2") for i in range(MAX_CHANGES)})  # 512 + 1 dir
    tip = h.change(tip, {f"top{i}": f("1") for i in range(MAX_CHANGES + 1)})  # 513 files
    tip = h.change(tip, {f"d{i}/f": f("1") for i in range(300)})  # 300 files, 600 paths
    for i, path in enumerate(NON_ASCII):
        tip = h.change(tip, {path: f(f"again {i}"), "README": f(str(i))})
    return h.load(repo)


# -- helpers ------------------------------------------------------------------------------------
def objects(repo: GitRepo) -> Path:
    return graph_info(repo).parent


def load(repo: GitRepo) -> CommitGraph:
    graph = commitgraph.load(objects(repo))
    assert graph is not None
    return graph


def changed_paths(repo: GitRepo, commit: str) -> tuple[int, set[str]]:
    """What git's Bloom filter of ``commit`` holds: the number of changed files against the first
    parent (or the empty tree), and their paths with every leading directory."""
    parents = repo.git("rev-list", "--parents", "-n1", commit).split()[1:]
    args = ["diff-tree", "--no-commit-id", "-r", "-z", "--no-renames", "--name-only"]
    args += [parents[0], commit] if parents else ["--root", commit]
    files = [p for p in repo.git(*args).split("\0") if p]
    paths = set()
    for path in files:
        parts = path.split("/")
        paths.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return len(files), paths


def commits(repo: GitRepo) -> list[str]:
    return repo.git("rev-list", "--all").split()


def filter_bytes(graph: CommitGraph, commit: str) -> bytes | None:
    pos = graph.position(bytes.fromhex(commit))
    assert pos is not None
    bloom = graph.bloom_filter(pos)
    return None if bloom is None else bloom.bits.to_bytes(bloom.size // 8, "little")


# -- murmur3 ------------------------------------------------------------------------------------
def test_murmur3_reference_values() -> None:
    """The values git's own tests (t0095-bloom.sh) expect, seed 0."""
    assert murmur3(0, b"") == 0
    assert murmur3(0, b"Hello world!") == 0x627B0C2C
    assert murmur3(0, b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723
    assert murmur3(0, b"\x99\xaa\xbb\xcc\xdd\xee\xff") == 0xA183CCFD  # version 2 (unsigned)


def test_murmur3_variants_agree_on_ascii_only() -> None:
    for data in (b"a", b"ab", b"abc", b"abcd", b"src/a/b/c.py"):
        values = {
            murmur3(7, data, signed_blocks=sb, signed_tail=st)
            for sb in (False, True)
            for st in (False, True)
        }
        assert len(values) == 1
    high = "日本語".encode()
    assert murmur3(7, high) != murmur3(7, high, signed_blocks=True, signed_tail=True)


def test_path_keys_refuse_non_paths() -> None:
    for bad in ("", "/a", "a/", b""):
        with pytest.raises(ValueError):
            PathKey(bad)


# -- the graph against the object database --------------------------------------------------------
@pytest.mark.parametrize("state", [FULL_GRAPH, PLAIN_GRAPH, SPLIT_GRAPH, PARTIAL_GRAPH])
def test_commits_read_from_the_graph_match_pygit2(git_repo: GitRepo, state: str) -> None:
    history_ = RandomHistory(random.Random(5))
    fast_import(git_repo, history_.build(80))
    git_repo.git("symbolic-ref", "HEAD", "refs/heads/main")
    write_graph(git_repo, state)
    graph = load(git_repo)
    pg = pygit2.Repository(str(git_repo.path))
    everything = commits(git_repo)
    if state == PARTIAL_GRAPH:
        expected = set(git_repo.git("rev-list", "--stdin", input=older_half(git_repo)).split())
    else:
        expected = set(everything)
    assert graph.num_commits == len(expected)
    assert len(graph.layers) == (2 if state == SPLIT_GRAPH else 1)
    assert all(layer.settings is not None for layer in graph.layers) == (state != PLAIN_GRAPH)
    octopus = 0
    for commit in everything:
        pos = graph.position(bytes.fromhex(commit))
        if commit not in expected:
            assert pos is None
            assert graph.maybe_changed(bytes.fromhex(commit), "a")  # unknown: maybe
            continue
        assert pos is not None
        assert graph.oid(pos).hex() == commit
        tree, parents, date = graph.commit(pos)
        obj = pg[commit]
        assert isinstance(obj, pygit2.Commit)
        assert tree == obj.tree_id.raw
        assert [graph.oid(p).hex() for p in parents] == [str(p) for p in obj.parent_ids]
        assert date == obj.commit_time
        octopus += len(parents) > 2
    assert octopus > 0  # their parents past the second come from the EDGE chunk
    assert graph.position(b"\0" * 20) is None
    assert graph.position(b"\xff" * 20) is None


# -- Bloom filters --------------------------------------------------------------------------------
@pytest.mark.parametrize("split", [False, True])
def test_bloom_filters_are_the_filters_git_writes(git_repo: GitRepo, split: bool) -> None:
    """Each commit's filter, rebuilt from ``git diff-tree`` with our hashing, is byte for byte the
    one git wrote: all ones past 512 changes, one zero byte for no change."""
    rich_history(git_repo)
    write_graph(git_repo, SPLIT_GRAPH if split else FULL_GRAPH)
    graph = load(git_repo)
    settings = {layer.settings for layer in graph.layers}
    assert settings == {BloomSettings(1, 7, 10)}  # git 2.39's defaults
    setting = BloomSettings(1, 7, 10)
    variants_seen = set()
    seen = {"large": 0, "empty": 0, "non-ascii": 0}
    for commit in commits(git_repo):
        pairs, paths = changed_paths(git_repo, commit)
        got = filter_bytes(graph, commit)
        assert got is not None
        if pairs > MAX_CHANGES or len(paths) > MAX_CHANGES:
            assert got == b"\xff", commit
            seen["large"] += 1
            continue
        if not paths:
            assert got == b"\x00"
            seen["empty"] += 1
            continue
        matching = {
            v
            for v in ((True, True), (False, False), (False, True))
            if build_filter(paths, setting, variant=v) == got
        }
        assert matching, (commit, sorted(paths))
        if any(not p.isascii() for p in paths):
            seen["non-ascii"] += 1
            variants_seen.add(frozenset(matching))
    assert seen["large"] == 3 and seen["empty"] == 1 and seen["non-ascii"] >= 2 * len(NON_ASCII)
    # One and the same variant hashed every non-ASCII commit (git 2.39 on x86: signed char), and
    # some commits tell the variants apart: the hashing is exact, not merely conservative.
    common = set.intersection(*(set(v) for v in variants_seen))
    assert len(common) == 1
    assert any(len(v) == 1 for v in variants_seen)


def test_bloom_filters_never_deny_a_change(git_repo: GitRepo) -> None:
    """``maybe_changed`` is True for every path git's diff lists, leading directories included;
    and the filters do rule most other paths out."""
    rich_history(git_repo)
    for seed in range(3):
        fast_import(
            git_repo, RandomHistory(random.Random(seed)).build(40).replace(b"main", b"r%d" % seed)
        )
    write_graph(git_repo, FULL_GRAPH)
    graph = load(git_repo)
    universe = {p for c in commits(git_repo) for p in changed_paths(git_repo, c)[1]}
    universe |= {"nowhere", "ü", "日本語/nope", "k", "k/f1/deeper"}
    keys = {p: PathKey(p) for p in universe}
    denied = 0
    for commit in commits(git_repo):
        _, paths = changed_paths(git_repo, commit)
        raw = bytes.fromhex(commit)
        for path in paths:
            assert graph.maybe_changed(raw, path), (commit, path)
            assert graph.maybe_changed(raw, keys[path]), (commit, path)
        denied += sum(not graph.maybe_changed(raw, keys[p]) for p in universe - paths)
    assert denied > 0.9 * len(commits(git_repo)) * 10


def test_commits_outside_the_graph_or_without_filters_are_maybe(git_repo: GitRepo) -> None:
    rich_history(git_repo)
    write_graph(git_repo, PLAIN_GRAPH)
    graph = load(git_repo)
    for commit in commits(git_repo)[:5]:
        assert graph.maybe_changed(bytes.fromhex(commit), "nowhere/at/all")
    assert graph.maybe_changed(b"\x01" * 20, "README")


# -- walks with a graph ----------------------------------------------------------------------------
def test_walks_around_the_limit_and_non_ascii_paths(git_repo: GitRepo) -> None:
    rich_history(git_repo)
    paths = [
        p for p in all_paths(git_repo, "main") if p is None or not p.startswith(("k/", "top", "d"))
    ]
    paths += ["k", "k/f0", "k/f511", "top0", "top512", "d7", "d7/f", "dir", "dir/çà"]
    check_log(git_repo, "main", paths)
    check_last_commits(git_repo, "main", ["", "ü", "k", "日本語", "dir", "zz", "s2"])
    check_last_commits(git_repo, "main~3", ["", "k"])


def test_the_graph_spares_tree_reads(git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Bloom filters, the walk reads far fewer trees (and still gives git's answer)."""
    h = History()
    # Twelve entries never touched again, five hot ones; commits change one to four files, so
    # filters come in several sizes (with git's double hashing, a key can collapse to a few bits
    # in a filter of some sizes: those are false positives git has too).
    cold = {f"e{i}/sub/file": f("0") for i in range(12)}
    hot = {f"h{i}/s{k}/file": f("0") for i in range(5) for k in range(4)}
    tip = h.commit({**cold, **hot})
    for i in range(200):
        tip = h.change(tip, {f"h{(i + k) % 5}/s{k}/file": f(str(i)) for k in range(1 + i % 4)})
    h.load(git_repo)
    reads: list[object] = []
    records = history._Directory.records

    def counting(self: history._Directory, tree: pygit2.Oid | None) -> frozenset[bytes]:
        if tree is not None and tree not in self._records:
            reads.append(tree)
        return records(self, tree)

    monkeypatch.setattr(history._Directory, "records", counting)
    expected = git_last_commits(git_repo, "main", "")
    counts = {}
    for state in (NO_GRAPH, FULL_GRAPH, PLAIN_GRAPH):
        write_graph(git_repo, state)
        reads.clear()
        assert our_last_commits(git_repo, "main", "") == expected
        counts[state] = len(reads)
    assert counts[FULL_GRAPH] < counts[NO_GRAPH] / 2, counts
    assert counts[PLAIN_GRAPH] == counts[NO_GRAPH]


# -- damaged, inconsistent and changing files ------------------------------------------------------
def _rewrite(path: Path, data: bytes) -> None:
    """Replace a file git wrote read-only, as git does: a new file renamed over it."""
    new = path.with_suffix(".new")
    new.write_bytes(data)
    new.replace(path)


def _with_checksum(body: bytes) -> bytes:
    return body + hashlib.sha1(body).digest()  # noqa: S324 (git's checksum)


def _chunks(data: bytes) -> dict[bytes, int]:
    count = data[6]
    return {
        data[8 + 12 * i : 12 + 12 * i]: struct.unpack(">Q", data[12 + 12 * i : 20 + 12 * i])[0]
        for i in range(count)
    }


def _damaged(data: bytes) -> dict[str, bytes]:
    """Ways a commit-graph file can be wrong that the loader must catch."""
    body = data[:-20]
    cdat = _chunks(data)[b"CDAT"]
    middle = len(data) // 2
    return {
        "empty": b"",
        "header only": data[:8],
        "truncated by half": data[:middle],
        "truncated by one byte": data[:-1],
        "one byte flipped": data[:middle] + bytes([data[middle] ^ 0x40]) + data[middle + 1 :],
        "bad signature": _with_checksum(b"XGPH" + body[4:]),
        "version 2": _with_checksum(body[:4] + b"\x02" + body[5:]),
        "SHA-256": _with_checksum(body[:5] + b"\x02" + body[6:]),
        "chunk past the end": _with_checksum(
            body[:20] + struct.pack(">Q", len(data) * 2) + body[28:]
        ),
        "no OIDF": _with_checksum(body.replace(b"OIDF", b"XXXX", 1)),
        "garbage": b"CGPH" + bytes(range(256)) * 8,
        # Consistent checksum, inconsistent content: found only during a walk.
        "parent out of range": _with_checksum(
            body[: cdat + 20] + struct.pack(">I", 0x6FFFFFFF) + body[cdat + 24 :]
        ),
    }


def test_damaged_graph_files_are_ignored(git_repo: GitRepo) -> None:
    history_ = RandomHistory(random.Random(11))
    fast_import(git_repo, history_.build(40))
    git_repo.git("symbolic-ref", "HEAD", "refs/heads/main")
    paths = all_paths(git_repo, "main")
    expected_log = {p: git_log(git_repo, "main", p) for p in paths}
    expected_last = git_last_commits(git_repo, "main", "")
    write_graph(git_repo, FULL_GRAPH)
    file = graph_info(git_repo) / "commit-graph"
    good = file.read_bytes()
    for name, data in _damaged(good).items():
        _rewrite(file, data)
        if name == "parent out of range":
            # Position 0 has no parents in that file... unless it does: only walks can tell.
            graph = commitgraph.load(objects(git_repo))
            assert graph is not None
        else:
            assert commitgraph.load(objects(git_repo)) is None, name
        assert our_last_commits(git_repo, "main", "") == expected_last, name
        for path in paths:
            assert our_log(git_repo, "main", path) == expected_log[path], (name, path)
    _rewrite(file, good)
    assert commitgraph.load(objects(git_repo)) is not None


def test_an_inconsistent_graph_is_dropped_during_the_walk(git_repo: GitRepo) -> None:
    """A parent position past the end, behind a valid checksum: the walk notices, starts again
    without the graph, answers as git does, and the graph is not used again until it changes."""
    history_ = RandomHistory(random.Random(3))
    fast_import(git_repo, history_.build(30))
    git_repo.git("symbolic-ref", "HEAD", "refs/heads/main")
    expected = git_last_commits(git_repo, "main", "")
    expected_log = git_log(git_repo, "main")
    write_graph(git_repo, FULL_GRAPH)
    file = graph_info(git_repo) / "commit-graph"
    data = file.read_bytes()
    body = bytearray(data[:-20])
    cdat, width = _chunks(data)[b"CDAT"], 36
    for pos in range(load(git_repo).num_commits):  # every parent points past the end
        struct.pack_into(">I", body, cdat + pos * width + 20, 0x6FFFFFF0)
    _rewrite(file, _with_checksum(bytes(body)))
    commitgraph.clear_cache()
    pg = pygit2.Repository(str(git_repo.path))
    graph = commitgraph.for_repository(pg)
    assert graph is not None
    assert our_last_commits(git_repo, "main", "") == expected
    assert graph.broken
    assert commitgraph.for_repository(pg) is None  # until the file changes
    assert our_log(git_repo, "main") == expected_log
    write_graph(git_repo, FULL_GRAPH)
    assert commitgraph.for_repository(pg) is not None


def test_split_chain_with_a_bad_layer_keeps_the_layers_below(git_repo: GitRepo) -> None:
    history_ = RandomHistory(random.Random(8))
    fast_import(git_repo, history_.build(40))
    git_repo.git("symbolic-ref", "HEAD", "refs/heads/main")
    expected = git_last_commits(git_repo, "main", "")
    write_graph(git_repo, SPLIT_GRAPH)
    folder = graph_info(git_repo) / "commit-graphs"
    chain = (folder / "commit-graph-chain").read_text().split()
    assert len(chain) == 2
    top = folder / f"graph-{chain[1]}.graph"
    top_data = top.read_bytes()
    whole = load(git_repo)
    for damage in ("missing", "truncated", "bad name"):
        if damage == "missing":
            top.unlink()
        elif damage == "truncated":
            _rewrite(top, top_data[: len(top_data) // 2])
        else:
            (folder / "commit-graph-chain").write_text(f"{chain[0]}\n{'0' * 40}\n")
        graph = load(git_repo)
        assert len(graph.layers) == 1
        assert graph.num_commits == whole.layers[0].count
        assert our_last_commits(git_repo, "main", "") == expected, damage
        _rewrite(top, top_data)
        (folder / "commit-graph-chain").write_text("\n".join(chain) + "\n")
    (folder / "commit-graph-chain").write_text(f"{chain[1]}\n")  # a top layer without its base
    assert commitgraph.load(objects(git_repo)) is None
    (folder / "commit-graph-chain").write_text("not a hash\n")
    assert commitgraph.load(objects(git_repo)) is None
    assert our_last_commits(git_repo, "main", "") == expected


def test_the_cache_follows_the_files(git_repo: GitRepo) -> None:
    pg = pygit2.Repository(str(git_repo.path))
    git_repo.write("a", "1")
    git_repo.commit("one")
    assert commitgraph.for_repository(pg) is None
    write_graph(git_repo, FULL_GRAPH)
    first = commitgraph.for_repository(pg)
    assert first is not None and first.num_commits == 1
    assert commitgraph.for_repository(pg) is first  # unchanged files: the same object
    git_repo.write("a", "2")
    git_repo.commit("two")
    write_graph(git_repo, FULL_GRAPH)
    second = commitgraph.for_repository(pg)
    assert second is not None and second.num_commits == 2
    write_graph(git_repo, SPLIT_GRAPH)
    third = commitgraph.for_repository(pg)
    assert third is not None and len(third.layers) == 2
    write_graph(git_repo, NO_GRAPH)
    assert commitgraph.for_repository(pg) is None


def test_linked_worktrees_use_the_common_graph(git_repo: GitRepo, tmp_path: Path) -> None:
    for i in range(3):
        git_repo.write("a", str(i))
        git_repo.commit(f"c{i}")
    git_repo.git("worktree", "add", "-q", "-b", "side", str(tmp_path / "wt"))
    write_graph(git_repo, FULL_GRAPH)
    pg = pygit2.Repository(str(tmp_path / "wt"))
    graph = commitgraph.for_repository(pg)
    assert graph is not None and graph.num_commits == 3
    linked = GitRepo(tmp_path / "wt")
    assert our_last_commits(linked, "side", "") == git_last_commits(linked, "side", "")


def test_shallow_repositories_do_not_use_the_graph(git_repo: GitRepo, tmp_path: Path) -> None:
    for i in range(4):
        git_repo.write("a", str(i))
        git_repo.commit(f"c{i}")
    clone = tmp_path / "shallow"
    git_repo.git("clone", "-q", "--depth", "2", f"file://{git_repo.path}", str(clone))
    shallow = GitRepo(clone)
    # git itself writes nothing in a shallow repository: put a full graph there, as if the
    # repository had been deepened and then made shallow again.
    write_graph(git_repo, FULL_GRAPH)
    shutil.copy(graph_info(git_repo) / "commit-graph", graph_info(shallow) / "commit-graph")
    pg = pygit2.Repository(str(clone))
    assert pg.is_shallow
    assert commitgraph.for_repository(pg) is None
    assert our_log(shallow, "main") == git_log(shallow, "main")
    assert our_last_commits(shallow, "main", "") == git_last_commits(shallow, "main", "")


@pytest.mark.parametrize("state", GRAPH_STATES)
def test_repository_api_with_each_state(git_repo: GitRepo, state: str) -> None:
    rich_history(git_repo)
    write_graph(git_repo, state)
    with Repository.open(git_repo.path) as repo:
        got = {name: c.id for name, c in repo.last_commits("main").items()}
        assert [c.id for c in repo.log("main", "ü/ö.txt")] == git_log(git_repo, "main", "ü/ö.txt")
    assert got == git_last_commits(git_repo, "main", "")
