"""The last commit of every entry of a directory, answered from a persistent cache (seed 004).

Why this module exists: a repository browser shows, next to each entry of a directory, the commit
that last touched it — by definition what ``git log -1 --format=%H <commit> -- <dir>/<entry>``
prints. Asking git once per entry costs a process and a history walk each; Allura re-walked
history per batch of paths, timed out, and cached the partial result under a permanent key.
Here the answer of (source, commit, directory) is stored once, complete, in SQL
(``revisor.db.lastcommits``) with a small in-process LRU in front, and a new listing is filled
from old ones:

1. an entry the commit changes (its id or mode differs from every parent's) → this commit;
2. an entry equal in a parent → that parent's answer. This is exact: with git's default history
   simplification, ``git log -1 -- <path>`` hides a commit TREESAME to a parent and goes on from
   the first such parent only, so each entry's walk is a chain. The chains are followed (each
   entry its own, merged where they meet; at most ``max_visits`` commits compared) until every
   entry is resolved by rule 1 or reaches a commit whose listing of the directory is stored —
   that listing's answer is the entry's;
3. everything else (no stored listing close enough) → ONE history walk for the directory
   (``Repository.last_commits``, which replays git's walk exactly, with commit-graph Bloom
   filters).

A listing is stored only when complete. Under a time budget, the filling runs in a worker thread;
when the budget runs out the caller gets what is known so far (``partial=True``, unknown entries
``None``) while the filling completes and stores the whole answer for the next call (a browser
polls). Two processes filling the same key both insert; the second insert is ignored.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING

from revisor.db.database import Database
from revisor.db.lastcommits import LastCommitStore
from revisor.errors import PathNotFound, RevisionNotFound
from revisor.vcs import EMPTY_TREE, Changeset, ObjectId, Repository, Signature, validate_dir

if TYPE_CHECKING:
    from revisor.bootstrap import Revisor

__all__ = [
    "CacheStats",
    "LastCommit",
    "LastCommitCache",
    "LastCommitListing",
    "cache_for",
    "close_caches",
]

log = logging.getLogger(__name__)

_FULL_ID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_FORMAT = 1  # version of the stored payload
_TREES = 256  # directory listings (entry ids and modes) kept in memory for comparisons

# What an entry is in one commit: (object id, mode); None for an empty tree (git cannot see one).
_State = tuple[str, int] | None


@dataclass(frozen=True, slots=True)
class LastCommit:
    """The commit that last touched an entry, as a listing shows it."""

    id: ObjectId
    author: Signature
    committer: Signature
    summary: str

    @classmethod
    def of(cls, changeset: Changeset) -> LastCommit:
        return cls(changeset.id, changeset.author, changeset.committer, changeset.summary)


@dataclass(frozen=True)
class LastCommitListing:
    """Directory ``path`` at ``commit``: each entry's name (in git's tree order) → its last commit.

    ``None`` for an entry means: not known yet (``partial``), or git prints nothing for it (an
    empty directory that never held anything). ``partial``: the time budget ran out first; the
    complete answer is being computed and stored. ``from_cache``: answered from a stored listing
    of exactly this commit and directory, without computing anything.
    """

    commit: ObjectId
    path: str
    entries: Mapping[str, LastCommit | None]
    partial: bool = False
    from_cache: bool = False


@dataclass
class CacheStats:
    """What the cache did, counted (for tests, metrics and benchmarks)."""

    memory_hits: int = 0  # answered by the in-process LRU
    db_hits: int = 0  # answered by a stored listing of the same key
    fills: int = 0  # listings computed
    visits: int = 0  # commits compared with their parents while filling
    reused: int = 0  # fills that took entries from an ancestor's stored listing
    walks: int = 0  # history walks run (at most one per fill)
    partial: int = 0  # answers returned partial
    stored: int = 0  # listings inserted into SQL (not counting ones another process stored)
    errors: int = 0  # fills that failed


@dataclass
class _Fill:
    """One listing being computed; callers that want the same key wait on it together."""

    names: tuple[str, ...]
    known: dict[str, LastCommit | None] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    result: LastCommitListing | None = None
    error: BaseException | None = None


class LastCommitCache:
    """Last-commit listings of one source, stored in ``db`` and computed on ``repo``.

    Thread-safe: one object per source is meant to be shared by a server's threads (see
    :func:`cache_for`). ``memory_size`` listings stay in an in-process LRU. A fill compares at most
    ``max_visits`` commits with their parents looking for stored listings (``cold_visits`` when
    none of the directory is stored: then only recent changes are found that way) before it walks
    history for what is left; ``workers`` threads fill listings for callers with a budget.
    """

    def __init__(
        self,
        db: Database,
        source: str,
        repo: Repository,
        *,
        memory_size: int = 1024,
        max_visits: int = 256,
        cold_visits: int = 16,
        workers: int = 2,
    ) -> None:
        self.source = source
        self.repo = repo
        self.store = LastCommitStore(db)
        self.stats = CacheStats()
        self.memory_size = memory_size
        self.max_visits = max_visits
        self.cold_visits = cold_visits
        self._workers = workers
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when a fill ends
        self._memory: OrderedDict[tuple[str, str], LastCommitListing] = OrderedDict()
        self._inflight: dict[tuple[str, str], _Fill] = {}
        self._trees: OrderedDict[tuple[str, str], dict[str, _State] | None] = OrderedDict()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    # -- the API ----------------------------------------------------------------------------------
    def listing(
        self, commit: ObjectId | str, path: str = "", *, budget: float | None = None
    ) -> LastCommitListing:
        """The last commit of every entry of directory ``path`` ("" for the root) at ``commit``.

        ``commit`` should be a full commit id (anything else is resolved first). Each entry's
        commit is what ``git log -1 --format=%H <commit> -- <path>/<entry>`` prints. With
        ``budget`` (seconds) the call returns after about that long even if the answer is not
        complete yet: then ``partial`` is True and unknown entries are None, and the complete
        answer is stored when ready. Without a budget it waits for the complete answer.

        Raises InvalidPath for a malformed path, RevisionNotFound for an unknown commit and
        PathNotFound when ``path`` is not a directory there.
        """
        started = time.monotonic()
        validate_dir(path)
        if not _FULL_ID.match(commit):
            commit = self.repo.resolve(commit)
        commit = ObjectId(commit)
        key = (commit, path)
        found = self._remembered(key)
        if found is not None:
            return found
        # One query for this listing and those of the commit's parents (a fill starts there).
        parents = self.repo.changeset(commit).parents
        with self._lock:
            wanted = [commit, *(p for p in parents if (p, path) not in self._memory)]
        stored = self.store.get_many(self.source, wanted, path)
        if commit in stored:
            listing = _decode(stored.pop(commit), commit, path)
            if listing is not None:
                with self._lock:
                    self.stats.db_hits += 1
                self._remember(key, listing)
                return listing
        return self._fill(key, started, budget, stored)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no listing is being filled; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._inflight, timeout)

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker threads (after the fills under way, with ``wait``)."""
        with self._lock:
            executor, self._executor = self._executor, None
            self._closed = True
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=not wait)

    def forget_memory(self) -> None:
        """Empty the in-process LRU (the stored listings stay)."""
        with self._lock:
            self._memory.clear()

    # -- the in-process LRU ------------------------------------------------------------------------
    def _remembered(self, key: tuple[str, str]) -> LastCommitListing | None:
        with self._lock:
            found = self._memory.get(key)
            if found is not None:
                self._memory.move_to_end(key)
                self.stats.memory_hits += 1
            return found

    def _remember(self, key: tuple[str, str], listing: LastCommitListing) -> None:
        if self.memory_size <= 0:
            return
        cached = listing if listing.from_cache else replace(listing, from_cache=True)
        with self._lock:
            self._memory[key] = cached
            self._memory.move_to_end(key)
            while len(self._memory) > self.memory_size:
                self._memory.popitem(last=False)

    def _dir_states(self, commit: str, path: str) -> dict[str, _State] | None:
        """:func:`_states`, remembered for the last few (commit, directory): the next fill
        compares with the commit this one listed."""
        key = (commit, path)
        with self._lock:
            if key in self._trees:
                self._trees.move_to_end(key)
                return self._trees[key]
        found = _states(self.repo, commit, path)
        with self._lock:
            self._trees[key] = found
            while len(self._trees) > _TREES:
                self._trees.popitem(last=False)
        return found

    # -- filling --------------------------------------------------------------------------------
    def _fill(
        self, key: tuple[str, str], started: float, budget: float | None, near: dict[str, str]
    ) -> LastCommitListing:
        commit, path = key
        # Read the directory now: a bad path or commit is the caller's error, raised here.
        states = self._dir_states(commit, path)
        if states is None:
            raise PathNotFound(path, commit)
        with self._lock:
            fill = self._inflight.get(key)
            if fill is None and key in self._memory:  # a fill ended since the first look
                self.stats.memory_hits += 1
                return self._memory[key]
            mine = fill is None
            if fill is None:
                fill = self._inflight[key] = _Fill(tuple(states))
            run_here = mine and (budget is None or self._closed)
            if mine and not run_here:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self._workers, thread_name_prefix=f"lastcommits-{self.source}"
                    )
                self._executor.submit(self._run, fill, key, states, near)
        if run_here:
            self._run(fill, key, states, near)
        if budget is None:
            fill.done.wait()
        else:
            fill.done.wait(max(0.0, budget - (time.monotonic() - started)))
        if fill.done.is_set():
            if fill.error is not None:
                raise fill.error
            assert fill.result is not None
            return fill.result
        with self._lock:
            known = dict(fill.known)  # every value there is final: only its completeness is not
            partial = any(name not in known for name in fill.names)
            self.stats.partial += int(partial)
        entries = {name: known.get(name) for name in fill.names}
        # the fill may have found the last entries after the wait ended, before it is stored:
        # then the answer is complete, and says so
        return LastCommitListing(ObjectId(commit), path, MappingProxyType(entries),
                                 partial=partial)

    def _run(
        self, fill: _Fill, key: tuple[str, str], states: dict[str, _State], near: dict[str, str]
    ) -> None:
        try:
            try:
                result = self._compute(fill, key, states, near)
            except BaseException as exc:  # handed to every waiting caller
                fill.error = exc
                with self._lock:
                    self.stats.errors += 1
                log.warning("%s: last commits of %r at %s failed: %s", self.source, key[1],
                            key[0], exc)
                return
            # Waiters get the answer from memory at once; SQL gets it next (this thread).
            self._remember(key, result)
            with self._lock:
                self.stats.fills += 1
            fill.result = result
            fill.done.set()
            inserted = self.store.put(self.source, key[0], key[1], _encode(result))
            with self._lock:
                self.stats.stored += int(inserted)
        except Exception as exc:  # storing failed: the answer stands, the next process recomputes
            log.warning("%s: could not store last commits of %r at %s: %s", self.source, key[1],
                        key[0], exc)
        finally:
            fill.done.set()
            with self._idle:
                self._inflight.pop(key, None)
                self._idle.notify_all()

    def _compute(
        self,
        fill: _Fill,
        key: tuple[str, str],
        states: dict[str, _State],
        near: dict[str, str],
    ) -> LastCommitListing:
        """Follow each entry's ``git log -1`` chain from ``commit`` until the entry is resolved
        (a commit changed it) or reaches a commit with a stored listing; walk history once for
        whatever is left. ``near``: stored listings (payloads) already read, by commit."""
        commit, path = key
        stored: set[str] | None = None  # commits with stored listings: read when first needed
        # Empty trees are invisible to git, yet their history is not empty: walk for them.
        walk = {name for name, state in states.items() if state is None}
        pending = {name for name, state in states.items() if state is not None}
        limit = self.max_visits
        frontier: dict[str, set[str]] = {commit: pending} if pending else {}
        seen_states: dict[str, dict[str, _State]] = {commit: states}
        infos: dict[str, LastCommit] = {}
        visits = 0
        reused = False

        def states_at(at: str) -> dict[str, _State]:
            found = seen_states.get(at)
            if found is None:
                try:
                    found = self._dir_states(at, path) or {}
                except RevisionNotFound:  # beyond a shallow clone's boundary: as git, nothing
                    found = {}
                seen_states[at] = found
            return found

        while frontier:
            current = next(iter(frontier))
            names = frontier.pop(current)
            if current != commit:
                with self._lock:
                    remembered = self._memory.get((current, path))
                answers = None
                if remembered is not None:
                    answers = dict(remembered.entries)
                elif current in near:
                    decoded = _decode(near[current], current, path)
                    answers = None if decoded is None else dict(decoded.entries)
                else:
                    if stored is None:
                        stored = self._stored_commits(path)
                        if not stored:  # nothing of this directory stored: walk soon
                            limit = min(limit, max(visits, self.cold_visits))
                    if current in stored:
                        answers = self._stored_answers(current, path)
                if answers is not None:
                    reused = True
                    for name in names & answers.keys():
                        fill.known[name] = answers[name]
                    names = names - answers.keys()
                    if not names:
                        continue
            if visits >= limit:
                walk |= names
                continue
            visits += 1
            changeset = self.repo.changeset(current)
            mine = states_at(current)
            changed = set()
            for name in names:
                for parent in changeset.parents:
                    if states_at(parent).get(name) == mine[name]:
                        # TREESAME to this parent: git hides the commit and goes on there only
                        frontier.setdefault(parent, set()).add(name)
                        break
                else:  # changed against every parent, or added by a root commit
                    changed.add(name)
            if changed:
                info = infos.get(changeset.id)
                if info is None:
                    info = infos[changeset.id] = LastCommit.of(changeset)
                for name in changed:
                    fill.known[name] = info
        with self._lock:
            self.stats.visits += visits
            self.stats.reused += int(reused)
        if walk:
            with self._lock:
                self.stats.walks += 1
            found = self.repo.last_commits(commit, path, names=walk)
            for name in walk:
                last = found.get(name)
                fill.known[name] = None if last is None else LastCommit.of(last)
        entries = {name: fill.known.get(name) for name in states}
        return LastCommitListing(ObjectId(commit), path, MappingProxyType(entries))

    def _stored_commits(self, path: str) -> set[str]:
        """The commits with a complete listing of directory ``path``, in memory or in SQL."""
        with self._lock:
            remembered = {c for c, p in self._memory if p == path}
        return remembered | self.store.commits(self.source, path)

    def _stored_answers(self, commit: str, path: str) -> dict[str, LastCommit | None] | None:
        with self._lock:
            found = self._memory.get((commit, path))
        if found is None:
            payload = self.store.get(self.source, commit, path)
            found = None if payload is None else _decode(payload, commit, path)
        if found is None or found.partial:
            return None
        return dict(found.entries)


# -- reading the directory ------------------------------------------------------------------------
def _states(repo: Repository, commit: str, path: str) -> dict[str, _State] | None:
    """Each entry of directory ``path`` at ``commit``: name → (id, mode), in tree order; None
    when ``path`` is not a directory there."""
    try:
        entries = repo.tree(commit, path)
    except PathNotFound:
        return None
    return {e.name: None if e.id == EMPTY_TREE else (e.id, e.mode) for e in entries}


# -- the stored form ------------------------------------------------------------------------------
def _encode(listing: LastCommitListing) -> str:
    """Compact JSON: the distinct commits once, then each entry's index into them (or null)."""
    commits: dict[str, int] = {}
    rows: list[list[object]] = []
    entries: list[list[object]] = []
    for name, info in listing.entries.items():
        index = None
        if info is not None:
            index = commits.get(info.id)
            if index is None:
                index = commits[info.id] = len(rows)
                a, c = info.author, info.committer
                rows.append([info.id, a.name, a.email, a.timestamp, a.offset_minutes,
                             c.name, c.email, c.timestamp, c.offset_minutes, info.summary])
        entries.append([name, index])
    return json.dumps({"v": _FORMAT, "c": rows, "e": entries}, separators=(",", ":"))


def _decode(payload: str, commit: str, path: str) -> LastCommitListing | None:
    """The stored listing, or None when it is in a format this version does not read."""
    try:
        data = json.loads(payload)
        if data.get("v") != _FORMAT:
            return None
        infos = [
            LastCommit(ObjectId(r[0]), _signature(r[1], r[2], r[3], r[4]),
                       _signature(r[5], r[6], r[7], r[8]), r[9])
            for r in data["c"]
        ]
        entries = {name: None if i is None else infos[i] for name, i in data["e"]}
    except (ValueError, KeyError, IndexError, TypeError):
        log.warning("unreadable stored last-commit listing of %r at %s", path, commit)
        return None
    return LastCommitListing(ObjectId(commit), path, MappingProxyType(entries), from_cache=True)


def _signature(name: str, email: str, timestamp: int, offset: int) -> Signature:
    tz = timezone(timedelta(minutes=offset))
    return Signature(name, email, datetime.fromtimestamp(timestamp, tz))


# -- one cache per source, for a server ---------------------------------------------------------
_CACHES: weakref.WeakKeyDictionary[Revisor, dict[str, LastCommitCache]] = (
    weakref.WeakKeyDictionary()
)
_CACHES_LOCK = threading.Lock()


def cache_for(rv: Revisor, source: str) -> LastCommitCache:
    """The one :class:`LastCommitCache` of ``source`` in this opened Revisor (made on first use,
    shared by every thread). Raises SourceNotFound for an unknown source."""
    repo = rv.source(source).stored.repository
    with _CACHES_LOCK:
        caches = _CACHES.setdefault(rv, {})
        found = caches.get(source)
        if found is None or found.repo is not repo:
            if found is not None:
                found.close(wait=False)
            found = caches[source] = LastCommitCache(rv.db, source, repo)
        return found


def close_caches(rv: Revisor) -> None:
    """Stop the worker threads of every cache :func:`cache_for` made for ``rv`` (a server's
    shutdown); fills under way finish, queued ones are dropped (nothing partial is stored)."""
    with _CACHES_LOCK:
        caches = _CACHES.pop(rv, {})
    for cache in caches.values():
        cache.close(wait=False)
