"""History walks that agree with git: ``git log`` order, and the last commit per directory entry.

Why this module exists: a repository browser shows, next to every entry of a directory, the commit
that last touched it. Asking git once per entry (``git log -1 -- dir/entry``) costs a process and a
history walk each (472 ms for a 60-entry root on apache/allura, LESSONS.md), and Allura's answer,
re-walking from the head once per batch of paths, timed out and cached partial results. Here the
whole directory is answered by one walk, in process, through pygit2 — and the answer is *git's*,
not an approximation: the same commit ``git log -1`` would print, merges and equal dates included.

Both functions replay git's own revision walk (``revision.c`` in git 2.39, default options):

* Commits leave a priority queue newest committer date first; equal dates leave in insertion order
  (git's queue keeps an insertion counter). The start commit goes in first; when a commit leaves,
  its parents that were never queued go in, in parent order. Committer dates are trusted as they
  are, so clock skew (a child older than its parent) reorders the output exactly as in git.
* With a path, git's default history simplification applies. A commit is TREESAME to a parent when
  the path's entry (blob or tree id and mode, or its absence) is the same in both; a root commit is
  compared to the empty tree. A non-merge commit is shown unless TREESAME to its parent. A merge
  is hidden as soon as it is TREESAME to one parent, and then only that first TREESAME parent is
  walked; a merge TREESAME to no parent is shown and all its parents are walked.

:func:`last_commits` runs the per-entry walks of ``git log -1`` side by side. Each is a chain
(until it shows a commit, the walk hides every commit it passes, and a hidden commit hands on to one
parent), and entries whose chains have been the same so far walk together (a *group*). At a merge,
the entries of a group may follow different parents: the group then splits, so every entry sees
exactly the walk git would make for it alone. Comparing a directory's tree ids first settles all
of its entries at once for most commits.

When the repository has a commit-graph (:mod:`revisor.vcs.commitgraph`), commits are read from it
instead of the object database, and its changed-path Bloom filters rule out, without reading any
tree, most commits for most paths, as they do for git. A filter only ever proves "not changed"
against the first parent, which is exactly a TREESAME parent git would take, so the answers stay
git's: the tests compare them with git with and without a commit-graph.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pygit2

from revisor.errors import InvalidInput, RevisionNotFound
from revisor.vcs import commitgraph
from revisor.vcs.commitgraph import BloomFilter, BloomSettings, CommitGraph, GraphError, PathKey
from revisor.vcs.types import EMPTY_TREE, ObjectId

__all__ = ["last_commits", "log"]

Oid = pygit2.Oid
# What a path names in one commit: (object id, file mode), or None when absent.
_Entry = tuple[Oid, int] | None
_EMPTY_TREE = Oid(hex=EMPTY_TREE)
_UNKNOWN: Any = object()  # "not known yet", where None (absent) is a value
_T = TypeVar("_T")


# -- commits ------------------------------------------------------------------------------------
class _Graph:
    """The facts a walk needs about each commit: committer date, parents, root tree.

    Commits are numbered with ints: a commit in the repository's commit-graph is its position
    there, and its facts are decoded from the graph (no commit object is read); any other commit
    (newer than the graph, or no graph) gets the next number past the graph's and is read once
    through pygit2. Parents missing from the object database (a shallow or damaged repository)
    are left out, as git does for a shallow boundary: a commit without readable parents is
    treated as a root.
    """

    def __init__(self, pg: pygit2.Repository, cg: CommitGraph | None) -> None:
        self.pg = pg
        self.cg = cg
        self.base = cg.num_commits if cg is not None else 0
        self._date: dict[int, int] = {}
        self._tree: dict[int, Oid] = {}
        self._parents: dict[int, tuple[int, ...]] = {}
        self._extra: list[tuple[Oid, list[Oid]]] = []  # outside the graph: id, parent ids
        self._ids: dict[Oid, int | None] = {}  # outside the graph; None: not a commit here

    def find(self, oid: Oid) -> int | None:
        """The number of commit ``oid``, or None when the repository has no such commit."""
        if self.cg is not None:
            pos = self.cg.position(oid.raw)
            if pos is not None:
                return pos
        if oid in self._ids:
            return self._ids[oid]
        obj = self.pg.get(oid)
        found = None
        if isinstance(obj, pygit2.Commit):
            found = self.base + len(self._extra)
            self._extra.append((oid, obj.parent_ids))
            self._date[found] = obj.commit_time
            self._tree[found] = obj.tree_id
        self._ids[oid] = found
        return found

    def _decode(self, commit: int) -> None:
        assert self.cg is not None and commit < self.base
        tree, parents, date = self.cg.commit(commit)
        self._date[commit] = date
        self._tree[commit] = Oid(raw=tree)
        self._parents[commit] = parents

    def oid(self, commit: int) -> Oid:
        if commit >= self.base:
            return self._extra[commit - self.base][0]
        assert self.cg is not None
        return Oid(raw=self.cg.oid(commit))

    def date(self, commit: int) -> int:
        found = self._date.get(commit)
        if found is None:
            self._decode(commit)
            found = self._date[commit]
        return found

    def tree(self, commit: int) -> Oid:
        found = self._tree.get(commit)
        if found is None:
            self._decode(commit)
            found = self._tree[commit]
        return found

    def parents(self, commit: int) -> tuple[int, ...]:
        found = self._parents.get(commit)
        if found is None:
            if commit < self.base:
                self._decode(commit)
                return self._parents[commit]
            ids = self._extra[commit - self.base][1]
            found = tuple(p for p in map(self.find, ids) if p is not None)
            self._parents[commit] = found
        return found

    def bloom(self, commit: int) -> BloomFilter | None:
        """The commit's changed-path filter against its first parent, if the graph has one."""
        if commit >= self.base:
            return None
        assert self.cg is not None
        return self.cg.bloom_filter(commit)

    def path_key(self, path: str) -> PathKey | None:
        """Bloom keys for ``path`` when the walk can use Bloom filters at all."""
        if self.cg is None or not path:
            return None
        return PathKey(path)

    def lookup(self, tree: Oid, path: str) -> pygit2.Object | None:
        """The object at ``path`` under ``tree``, or None."""
        root = self.pg[tree]
        assert isinstance(root, pygit2.Tree)
        try:
            return root[path]
        except KeyError:
            return None


def _start(graph: _Graph, start: ObjectId) -> int:
    try:
        oid = Oid(hex=start)
    except ValueError as exc:
        raise RevisionNotFound(start) from exc
    # The start is always checked in the object database, even when the graph holds it.
    if not isinstance(graph.pg.get(oid), pygit2.Commit):
        raise RevisionNotFound(start)
    found = graph.find(oid)
    assert found is not None
    return found


def _with_graph(pg: pygit2.Repository, run: Callable[[_Graph], _T]) -> _T:
    """``run`` on the repository's commit-graph if it has a usable one, else (or if the graph turns
    out to contradict itself or the object database) on pygit2 alone."""
    cg = commitgraph.for_repository(pg)
    if cg is not None:
        try:
            return run(_Graph(pg, cg))
        except GraphError:
            cg.broken = True  # until the file changes
        except KeyError:
            pass  # an object the graph names is missing: answer as if there were no graph
    return run(_Graph(pg, None))


# -- the queue ------------------------------------------------------------------------------------
@dataclass
class _Queue:
    """git's commit queue: newest committer date first, ties in insertion order; each commit is
    queued at most once (git's SEEN flag)."""

    graph: _Graph
    counter: Iterator[int]
    heap: list[tuple[int, int, int]] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)

    def push(self, commit: int) -> None:
        if commit not in self.seen:
            self.seen.add(commit)
            heapq.heappush(self.heap, (-self.graph.date(commit), next(self.counter), commit))

    def pop(self) -> int:
        return heapq.heappop(self.heap)[2]

    def __bool__(self) -> bool:
        return bool(self.heap)


# -- git log --------------------------------------------------------------------------------------
class _RunMasks(dict[tuple[BloomSettings, int], tuple[int, ...]]):
    """For a set of paths, by filter settings and size: every mask that would let one of them be
    in the filter (one per path and hashing variant; 0, always "maybe", for unknown versions)."""

    def __init__(self, keys: list[PathKey]) -> None:
        super().__init__()
        self._keys = keys

    def __missing__(self, key: tuple[BloomSettings, int]) -> tuple[int, ...]:
        settings, size = key
        found = [m for path in self._keys for m in path.masks(settings, size) or (0,)]
        masks = self[key] = tuple(dict.fromkeys(found))
        return masks


class _PathHistory:
    """git's default simplification of the history of one path (file or directory).

    With Bloom filters, most commits are proven TREESAME to their first parent without reading a
    tree; the path's entry, once read, is handed down such steps (``_known``), so that where a
    filter cannot decide only the parents' trees are read.
    """

    def __init__(self, graph: _Graph, path: str) -> None:
        self.graph = graph
        self.path = path
        self.key = graph.path_key(path)
        self._entries: dict[Oid, _Entry] = {}  # by root tree id
        self._known: dict[int, _Entry] = {}  # by commit, handed down from a child
        self._masks: _RunMasks | None = None

    def entry(self, commit: int) -> _Entry:
        root = self.graph.tree(commit)
        if root in self._entries:
            return self._entries[root]
        obj = self.graph.lookup(root, self.path)
        # An empty tree holds no path that a diff could report: git sees nothing there.
        found: _Entry = None
        if obj is not None and obj.id != _EMPTY_TREE:
            found = (obj.id, int(obj.filemode))
        self._entries[root] = found
        return found

    def skip(self, commit: int, seen: set[int]) -> int:
        """From ``commit``, the first commit down its first parents that the Bloom filters do not
        prove hidden, without entering ``seen`` commits: git would hide every commit before it
        and queue nothing else. Only for a commit that leaves git's queue empty."""
        cg = self.graph.cg
        if self.key is None or cg is None or commit >= self.graph.base:
            return commit
        if self._masks is None:
            self._masks = _RunMasks([self.key])
        end = cg.follow_unchanged(commit, self._masks, seen)
        if end != commit:
            known = self._known.pop(commit, _UNKNOWN)
            if known is _UNKNOWN:
                known = self._entries.get(self.graph.tree(commit), _UNKNOWN)
            if known is not _UNKNOWN:
                self._known[end] = known
        return end

    def step(self, commit: int) -> tuple[bool, tuple[int, ...]]:
        """Whether git shows ``commit``, and the parents it walks on to."""
        parents = self.graph.parents(commit)
        if not parents:
            return self.entry(commit) is not None, ()
        known = self._known.pop(commit, _UNKNOWN)
        if self.key is not None:
            # The filter compares with the first parent, which is also the first one git tries.
            bloom = self.graph.bloom(commit)
            if bloom is not None and not self.key.maybe_in(bloom):
                if known is _UNKNOWN:
                    known = self._entries.get(self.graph.tree(commit), _UNKNOWN)
                if known is not _UNKNOWN:
                    self._known[parents[0]] = known
                return False, (parents[0],)
        mine = self.entry(commit) if known is _UNKNOWN else known
        for parent in parents:
            if self.entry(parent) == mine:
                return False, (parent,)
        return True, parents


def _walk(graph: _Graph, start: int, path: str | None) -> Iterator[int]:
    """The commits git log shows, in its order, lazily."""
    history = _PathHistory(graph, path) if path is not None else None
    queue = _Queue(graph, itertools.count())
    queue.push(start)
    while queue:
        commit = queue.pop()
        if history is None:
            shown, follow = True, graph.parents(commit)
        else:
            if not queue:  # alone in the queue: hidden first-parent runs can be skipped
                commit = history.skip(commit, queue.seen)
                queue.seen.add(commit)
            shown, follow = history.step(commit)
        for parent in follow:
            queue.push(parent)
        if shown:
            yield commit


def log(
    pg: pygit2.Repository,
    start: ObjectId,
    path: str | None,
    *,
    limit: int | None = None,
    skip: int = 0,
) -> list[ObjectId]:
    """The ids ``git log --skip=<skip> -n <limit> <start> -- <path>`` prints, in its order.

    ``path`` None walks the whole history; otherwise it is a file or directory path taken
    literally (as with ``--literal-pathspecs``). ``limit`` None means no limit.
    """
    if limit is not None and limit < 0:
        raise InvalidInput(f"limit must not be negative (got {limit})")
    if skip < 0:
        raise InvalidInput(f"skip must not be negative (got {skip})")
    stop = None if limit is None else skip + limit

    def run(graph: _Graph) -> list[ObjectId]:
        walk = _walk(graph, _start(graph, start), path)
        return [ObjectId(str(graph.oid(c))) for c in itertools.islice(walk, skip, stop)]

    return _with_graph(pg, run)


# -- last commit per entry ------------------------------------------------------------------------
_NOTHING: frozenset[bytes] = frozenset()
_CACHED_TREES = 2048  # directory trees kept per walk (a walk rarely needs an old one again)
_FEW_NAMES = 4  # up to this many names, find their records instead of parsing whole trees


class _Directory:
    """One directory across commits: its tree id, and which entry names differ between two
    commits, read from the raw tree records (``<mode> <name>\\0<id>``) and cached by tree id.
    An entry differs when its record does (mode as written, or id) or exists on one side only;
    entries that are empty trees count as absent (git cannot see them). For a few names, their
    records are found without parsing the whole tree."""

    def __init__(self, graph: _Graph, directory: str, id_size: int) -> None:
        self.graph = graph
        self.directory = directory
        self._id_size = id_size
        # A record is "<mode> <name>" (no NUL), a NUL, then the binary id (which may hold NULs).
        # findall gives (name, record) pairs: the name is read in a lookahead.
        self._record = re.compile(
            rb"(?=[^ \x00]* ?([^\x00]*)\x00)([^\x00]+\x00.{%d})" % id_size, re.DOTALL
        )
        self._empty_suffix = b"\x00" + _EMPTY_TREE.raw
        self._trees: dict[Oid, Oid | None] = {}  # root tree id -> directory tree id
        self._raw: dict[Oid, bytes] = {}
        self._records: dict[Oid, dict[bytes, bytes]] = {}  # whole trees, by name
        self._looked_up: dict[Oid, dict[bytes, bytes | None]] = {}  # some names of a tree
        self._patterns: dict[bytes, re.Pattern[bytes]] = {}
        self._none: dict[bytes, bytes] = {}

    def tree(self, commit: int) -> Oid | None:
        root = self.graph.tree(commit)
        if not self.directory:
            return root
        if root not in self._trees:
            obj = self.graph.lookup(root, self.directory)
            self._trees[root] = obj.id if isinstance(obj, pygit2.Tree) else None
        return self._trees[root]

    def known_tree(self, commit: int) -> tuple[bool, Oid | None]:
        """(True, the directory's tree id) if it costs no tree read, else (False, None)."""
        root = self.graph.tree(commit)
        if not self.directory:
            return True, root
        if root in self._trees:
            return True, self._trees[root]
        return False, None

    def is_read(self, tree: Oid | None) -> bool:
        return tree is None or tree in self._raw

    def _read(self, tree: Oid) -> bytes:
        raw = self._raw.get(tree)
        if raw is None:
            raw = self.graph.pg.odb.read(tree)[1]
            if len(self._raw) >= _CACHED_TREES:  # oldest first: dicts keep insertion order
                old = next(iter(self._raw))
                del self._raw[old]
                self._records.pop(old, None)
                self._looked_up.pop(old, None)
            self._raw[tree] = raw
        return raw

    def records(self, tree: Oid | None) -> dict[bytes, bytes]:
        """The tree's records by entry name (empty for no tree); the first of a repeated name."""
        if tree is None:
            return self._none
        found = self._records.get(tree)
        if found is None:
            raw = self._read(tree)
            found = dict(reversed(self._record.findall(raw)))
            if _EMPTY_TREE.raw in raw:  # rare: drop empty subtrees, which git cannot see
                suffix = self._empty_suffix
                found = {n: r for n, r in found.items() if not r.endswith(suffix)}
            self._records[tree] = found
        return found

    def record(self, tree: Oid | None, name: bytes) -> bytes | None:
        """The record of ``name`` in ``tree`` (None if absent), the same as ``records(tree)``
        would give, found by one match over the records up to it."""
        if tree is None:
            return None
        full = self._records.get(tree)
        if full is not None:
            return full.get(name)
        some = self._looked_up.get(tree)
        if some is None:
            some = self._looked_up[tree] = {}
        elif name in some:
            return some[name]
        pattern = self._patterns.get(name)
        if pattern is None:
            # Whole records, as few as possible, then the one named ``name``: matched from the
            # start, so every candidate begins at a record boundary.
            pattern = self._patterns[name] = re.compile(
                rb"(?:[^\x00]+\x00.{%d})*?([^ \x00]* %s\x00.{%d})"
                % (self._id_size, re.escape(name), self._id_size),
                re.DOTALL,
            )
        match = pattern.match(self._read(tree))
        found = match.group(1) if match else None
        if found is not None and found.endswith(self._empty_suffix):
            found = None
        some[name] = found
        return found

    def names(self, tree: Oid | None) -> frozenset[bytes]:
        """The names present in ``tree``."""
        return frozenset(self.records(tree))

    def same(self, a: Oid | None, b: Oid | None, names: frozenset[bytes]) -> frozenset[bytes]:
        """Those of ``names`` whose entries are the same in the two trees."""
        if a == b:
            return names
        if len(names) <= _FEW_NAMES:
            record = self.record
            return frozenset(n for n in names if record(a, n) == record(b, n))
        ra, rb = self.records(a), self.records(b)
        return frozenset(n for n in names if ra.get(n) == rb.get(n))


@dataclass
class _Group:
    """Entries whose ``git log -1`` walks have been identical so far, the next commit of their
    walk, and what is already known of that commit's entries (see :class:`_LastCommits`)."""

    names: frozenset[bytes]
    commit: int
    hint: tuple[Oid | None, frozenset[bytes]] | None = None


class _Masks(dict[bytes, int]):
    """For one Bloom filter size: each name's mask (every bit its keys set), computed on first
    use. 0, which any filter "may contain", stands for names with several hashing variants."""

    def __init__(self, keys: dict[bytes, PathKey], settings: BloomSettings, size: int) -> None:
        super().__init__()
        self._keys, self._settings, self._size = keys, settings, size

    def __missing__(self, name: bytes) -> int:
        masks = self._keys[name].masks(self._settings, self._size)
        mask = self[name] = masks[0] if masks is not None and len(masks) == 1 else 0
        return mask


class _LastCommits:
    """Groups of entries walked until each entry has its commit (or its walk ran out).

    The walk of ``git log -1 -- <path>`` is a chain: until it shows a commit it hides every commit
    it passes, and a hidden commit hands on to exactly one parent (its only parent, or the first
    TREESAME one of a merge). So no queue is needed and dates do not matter: a group follows one
    chain, and splits where its entries follow different parents of a merge.

    With a commit-graph, two things spare most tree reads. A commit's Bloom filter proves most
    names unchanged against its first parent, which git then follows: no tree is read. And what is
    known of a commit's entries travels down the chain (the group's *hint*: a tree already read
    whose records agree with the commit for some names), so when a filter cannot rule a name out
    (a real change, or a false positive) only the parent's tree is read, not the commit's too.
    """

    def __init__(self, graph: _Graph, directory: _Directory, names: frozenset[bytes]) -> None:
        self.graph = graph
        self.directory = directory
        self.found: dict[bytes, int] = {}
        self.pending: list[_Group] = []
        # Bloom keys of the directory and of each entry's path, when the graph has filters.
        where = directory.directory
        prefix = f"{where}/".encode("utf-8", "surrogateescape") if where else b""
        self.dir_key = graph.path_key(where)
        self.keys: dict[bytes, PathKey] = {}
        self._variants: frozenset[bytes] = frozenset()
        if graph.cg is not None:
            self.keys = {name: PathKey(prefix + name) for name in names}
            self._variants = frozenset(n for n, k in self.keys.items() if k.variants > 1)
        self._masks: dict[tuple[BloomSettings, int], _Masks] = {}
        self._runs: dict[frozenset[bytes], _RunMasks] = {}

    def run(self, group: _Group) -> None:
        self.pending.append(group)
        while self.pending:
            self._walk(self.pending.pop())

    def _walk(self, group: _Group) -> None:
        names, commit, hint = group.names, group.commit, group.hint
        while names:
            if self.keys and commit < self.graph.base:
                # Run down the first parents while the filters prove every name unchanged.
                free, mine = self.directory.known_tree(commit)
                if free and self.directory.is_read(mine):
                    hint = (mine, names)
                assert self.graph.cg is not None
                commit = self.graph.cg.follow_unchanged(commit, self._run_masks(names))
            parents = self.graph.parents(commit)
            if not parents:
                self._root(commit, names)
                return
            maybe = self._maybe(commit, names)
            if not maybe:
                # The same as in the first parent for every name: git goes on there.
                free, mine = self.directory.known_tree(commit)
                if free and self.directory.is_read(mine):
                    hint = (mine, names)
                commit = parents[0]
                continue
            follow, source, vouched = self._compare(commit, parents, names, maybe, hint)
            if not follow:
                return
            *others, (index, names) = follow.items()
            for other, other_names in others:
                split_hint = (source, vouched & other_names)
                self.pending.append(_Group(other_names, parents[other], split_hint))
            commit, hint = parents[index], (source, vouched & names)

    def _run_masks(self, names: frozenset[bytes]) -> _RunMasks:
        found = self._runs.get(names)
        if found is None:
            found = self._runs[names] = _RunMasks([self.keys[n] for n in names])
        return found

    def _root(self, commit: int, names: frozenset[bytes]) -> None:
        """A root commit shows the names it holds (compared with the empty tree)."""
        for name in names & self.directory.names(self.directory.tree(commit)):
            self.found[name] = commit

    def _maybe(self, commit: int, names: frozenset[bytes]) -> frozenset[bytes]:
        """The names that may differ between the commit and its first parent: all of them unless
        the commit's Bloom filter rules some out."""
        if not self.keys:
            return names
        bloom = self.graph.bloom(commit)
        if bloom is None:
            return names
        if self.dir_key is not None and not self.dir_key.maybe_in(bloom):
            return _NOTHING
        table = self._masks.get((bloom.settings, bloom.size))
        if table is None:
            table = self._masks[bloom.settings, bloom.size] = _Masks(
                self.keys, bloom.settings, bloom.size
            )
        bits = bloom.bits
        for name in names:  # usually none may be in the filter: find the first one that may
            mask = table[name]
            if bits & mask == mask:
                break
        else:
            return _NOTHING
        maybe = frozenset(n for n in names if bits & (m := table[n]) == m)
        if self._variants:  # non-ASCII names under version 1: every variant
            maybe = frozenset(n for n in maybe if self.keys[n].maybe_in(bloom))
        return maybe

    def _compare(
        self,
        commit: int,
        parents: tuple[int, ...],
        names: frozenset[bytes],
        maybe: frozenset[bytes],
        hint: tuple[Oid | None, frozenset[bytes]] | None,
    ) -> tuple[dict[int, frozenset[bytes]], Oid | None, frozenset[bytes]]:
        """Resolve the names ``commit`` shows; group the rest by the parent they follow (names
        outside ``maybe`` follow the first parent). Also returns the tree the commit's entries
        were read from and the names it vouches for."""
        # The commit's entries: from its own tree if already read or if nothing else will do,
        # else from the hint's tree.
        free, mine = self.directory.known_tree(commit)
        if free and self.directory.is_read(mine):
            source, vouched = mine, names
        elif hint is not None and maybe <= hint[1]:
            source, vouched = hint
        else:
            source, vouched = self.directory.tree(commit), names
        follow: dict[int, frozenset[bytes]] = {}
        if len(maybe) < len(names):
            follow[0] = names - maybe
        remaining = maybe
        for index, parent in enumerate(parents):
            same = self.directory.same(source, self.directory.tree(parent), remaining)
            if same:
                follow[index] = follow[index] | same if index in follow else same
                remaining = remaining - same
                if not remaining:
                    break
        for name in remaining:
            self.found[name] = commit
        return follow, source, vouched


def last_commits(
    pg: pygit2.Repository, start: ObjectId, directory: str, names: list[str]
) -> dict[str, ObjectId]:
    """For each name in ``directory`` ("" for the root), what
    ``git --literal-pathspecs log -1 --format=%H start -- directory/name`` prints.

    One walk for the whole directory. A name git would print nothing for (one never present) is
    left out of the result.
    """
    by_bytes = {name.encode("utf-8", "surrogateescape"): name for name in names}

    def run(graph: _Graph) -> dict[str, ObjectId]:
        commit = _start(graph, start)
        id_size = len(graph.tree(commit).raw)
        wanted = frozenset(by_bytes)
        walker = _LastCommits(graph, _Directory(graph, directory, id_size), wanted)
        walker.run(_Group(wanted, commit))
        found = walker.found
        ids = {c: ObjectId(str(graph.oid(c))) for c in set(found.values())}
        return {name: ids[found[raw]] for raw, name in by_bytes.items() if raw in found}

    return _with_graph(pg, run)
