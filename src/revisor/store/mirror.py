"""One bare mirror of one remote: created, fetched and pushed only here.

A mirror holds the upstream's branches and tags under ``refs/heads/*`` and ``refs/tags/*`` exactly
as last fetched (moved and deleted upstream refs follow, with prune), and Revisor's own refs under
``refs/revisor/*``, which a fetch never touches. Nobody above the store runs ``git clone``.

- One fetch at a time per mirror, across threads and processes: a lock shared by every ``Mirror``
  of one path in a process, around a file lock for other processes. A caller that finds a fetch
  running waits for it and, if it ended after the caller asked, takes its result instead of
  fetching again.
- HEAD names the remote's HEAD branch (or the configured one); it is set by the first fetch that
  succeeds, and remembered so that a repair can restore it.
- What a killed process leaves behind does not wedge fetching: an invalid HEAD is rewritten
  before a fetch, and when a fetch fails, ``*.lock`` files older than ``STALE_LOCK_SECONDS`` are
  removed and the fetch is tried once more (``recovery.doctor`` reports and repairs the same,
  and rebuilds mirrors whose objects are damaged).
- Pushes carry a lease: the remote ref moves only if it still holds the expected value, otherwise
  :class:`~revisor.errors.RemoteRefConflict` with the value found. Several refs go atomically.
- Credentials never touch the mirror's config (see ``transport``); the URL stored in the mirror's
  metadata has no userinfo.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import filelock

from revisor.errors import GitFailure, RefConflict, RemoteRefConflict, RemoteUnavailable
from revisor.store.transport import GitAuth, NetworkPolicy, Progress, retry, run_remote
from revisor.store.urls import redact, strip_userinfo
from revisor.vcs import ObjectId, RefUpdate, Repository
from revisor.vcs.gitcli import run_git
from revisor.vcs.materialize import remove_tree

__all__ = ["FetchResult", "Mirror", "MirrorState", "PushUpdate", "RefChange"]

log = logging.getLogger(__name__)

FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
STATE_FILE = "revisor-state.json"
MIRROR_CONFIG = (
    ("gc.auto", "0"),  # maintenance is the store's, on its own schedule
    ("core.logAllRefUpdates", "false"),
    ("fetch.writeCommitGraph", "false"),
)
PACK_REFS_AFTER = 1000  # new refs in one fetch above which the mirror's refs are packed
# A ``*.lock`` file older than this inside a mirror was left by a killed process: git holds its
# locks for milliseconds, and Revisor's own long operations run under the mirror's lock.
STALE_LOCK_SECONDS = 60.0
_ZERO = "0" * 40
_HEX_DIGITS = frozenset("0123456789abcdef")


class _PathLock:
    """A mirror's lock in this process: a re-entrant thread lock around the cross-process file
    lock. ``filelock`` alone excludes processes but not threads (with ``thread_local=False`` a
    second thread just bumps the first one's counter), and two ``FileLock`` objects on one file
    in one process would block each other even in one thread."""

    def __init__(self, path: str) -> None:
        self.threads = threading.RLock()
        self.file = filelock.FileLock(path, thread_local=False)


_PATH_LOCKS: dict[str, _PathLock] = {}
_PATH_LOCKS_GUARD = threading.Lock()


def _path_lock(path: str) -> _PathLock:
    with _PATH_LOCKS_GUARD:
        lock = _PATH_LOCKS.get(path)
        if lock is None:
            lock = _PATH_LOCKS[path] = _PathLock(path)
        return lock


def _forget_locks_after_fork() -> None:
    # A forked child holds none of its parent's locks: start it with fresh ones.
    global _PATH_LOCKS_GUARD
    _PATH_LOCKS_GUARD = threading.Lock()
    _PATH_LOCKS.clear()


os.register_at_fork(after_in_child=_forget_locks_after_fork)


@dataclass(frozen=True)
class RefChange:
    ref: str
    old: ObjectId | None
    new: ObjectId | None


@dataclass(frozen=True)
class FetchResult:
    """What one fetch did. ``fetched`` is False when a concurrent fetch answered for us."""

    changes: tuple[RefChange, ...]
    fetched: bool
    seconds: float


@dataclass(frozen=True)
class PushUpdate:
    """Move remote ``ref`` to ``new`` (None: delete) if it holds ``expected`` (None: absent)."""

    ref: str
    new: ObjectId | None
    expected: ObjectId | None


@dataclass
class MirrorState:
    """Freshness, kept beside the mirror so every process sees it."""

    last_fetch_started: float | None = None
    last_fetch_ok: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    consecutive_failures: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    def staleness(self, now: float | None = None) -> float | None:
        """Seconds since the last successful fetch (None: never fetched)."""
        if self.last_fetch_ok is None:
            return None
        return (now if now is not None else time.time()) - self.last_fetch_ok


class Mirror:
    """The bare mirror at ``path`` of the remote at ``url``. Constructing it does no I/O."""

    def __init__(
        self,
        path: Path,
        url: str,
        *,
        auth: Callable[[], GitAuth | None] = lambda: None,
        policy: NetworkPolicy | None = None,
        default_branch: str | None = None,
    ) -> None:
        self.path = path
        self.url = url
        self.display_url = redact(strip_userinfo(url))
        self._auth = auth
        self.policy = policy or NetworkPolicy()
        self.default_branch = default_branch
        self._repo: Repository | None = None
        self._lock_path = os.path.abspath(str(path) + ".fetch.lock")

    def __repr__(self) -> str:
        return f"Mirror({str(self.path)!r}, {self.display_url!r})"

    # -- state ----------------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.path / "HEAD").exists() or (self.path / "objects").is_dir()

    @property
    def repo(self) -> Repository:
        if self._repo is None:
            self._repo = Repository.open(self.path)
        return self._repo

    def head_ok(self) -> bool:
        """True when HEAD is a symbolic ref under ``refs/`` or a commit id (git needs one)."""
        try:
            text = (self.path / "HEAD").read_text().strip()
        except (OSError, UnicodeDecodeError):
            return False
        if text.startswith("ref: refs/"):
            return True
        return len(text) == 40 and set(text) <= _HEX_DIGITS

    def stale_locks(self, stale_after: float = STALE_LOCK_SECONDS) -> list[Path]:
        """``*.lock`` files in the mirror older than ``stale_after`` seconds."""
        now = time.time()
        found = []
        for lock in self.path.rglob("*.lock"):
            try:
                if lock.is_file() and now - lock.stat().st_mtime >= stale_after:
                    found.append(lock)
            except OSError:
                continue
        return sorted(found)

    def repair_head(self) -> str:
        """Point a missing, empty or invalid HEAD at :meth:`head_branch`; return that ref."""
        branch = self.head_branch()
        tmp = self.path / f"HEAD.{os.getpid()}.tmp"
        tmp.write_text(f"ref: {branch}\n")
        os.replace(tmp, self.path / "HEAD")
        self._repo = None
        return branch

    def _repair_small_damage(self) -> bool:
        """What a killed process leaves (an invalid HEAD, stale locks), repaired in place before
        it can fail every fetch; True if anything was repaired. ``doctor`` reports the same."""
        repaired = False
        if not self.head_ok():
            log.warning("%s: HEAD was invalid; set to %s", self.display_url, self.repair_head())
            repaired = True
        for lock in self.stale_locks():
            lock.unlink(missing_ok=True)
            log.warning("%s: removed stale lock %s", self.display_url, lock.relative_to(self.path))
            repaired = True
        return repaired

    def read_state(self) -> MirrorState:
        try:
            raw = json.loads((self.path / STATE_FILE).read_text())
        except (OSError, ValueError):
            return MirrorState()
        known = {k: raw[k] for k in MirrorState.__dataclass_fields__ if k in raw}
        return MirrorState(**known)

    def _write_state(self, state: MirrorState) -> None:
        tmp = self.path / f".{STATE_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(asdict(state)))
        os.replace(tmp, self.path / STATE_FILE)

    # -- creating -------------------------------------------------------------------------------
    def create(self) -> None:
        """Create the empty bare repository (no network)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repo = Repository.init(self.path, bare=True, initial_branch=self.default_branch or "main")
        for key, value in MIRROR_CONFIG:
            repo.git("config", key, value)
        (self.path / "revisor-mirror.json").write_text(
            json.dumps({"url": self.display_url, "created": time.time()})
        )
        self._repo = repo

    def remote_head(self) -> str | None:
        """The branch the remote's HEAD names (``refs/heads/main``), or None."""
        proc = run_remote(
            self.path,
            ["ls-remote", "--symref", "--end-of-options", self.url, "HEAD"],
            auth=self._auth(),
            policy=self.policy,
            what=f"ls-remote {self.display_url}",
        )
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            if line.startswith("ref: ") and line.endswith("\tHEAD"):
                return line[5:-5]
        return None

    def head_branch(self) -> str:
        """The ref HEAD should name: the configured branch, else the remote's HEAD as last
        learnt, else ``refs/heads/main``."""
        if self.default_branch:
            return f"refs/heads/{self.default_branch}"
        head = self.read_state().extra.get("head")
        if isinstance(head, str) and head.startswith("refs/heads/"):
            return head
        return "refs/heads/main"

    def _set_head(self, state: MirrorState) -> None:
        """Point HEAD at the configured branch or the remote's HEAD, and remember it in
        ``state``. Learning the remote's HEAD may fail: HEAD is then left alone and the next fetch
        tries again."""
        if self.default_branch:
            branch: str | None = f"refs/heads/{self.default_branch}"
        else:
            try:
                branch = retry(self.remote_head, self.policy)
            except RemoteUnavailable as exc:
                log.warning("%s: the remote's HEAD is unknown for now: %s", self.display_url, exc)
                return
        if branch is None or not branch.startswith("refs/heads/"):
            branch = self.repo.head_ref or "refs/heads/main"
        self.repo.git("symbolic-ref", "HEAD", branch)
        state.extra["head"] = branch

    # -- fetching -------------------------------------------------------------------------------
    def fetch(
        self,
        *,
        wait: float = 600.0,
        progress: Progress | None = None,
        started_after: float | None = None,
    ) -> FetchResult:
        """Bring the mirror up to date with the remote (creating it on first use).

        One fetch runs at a time per mirror, across threads and processes. A caller that finds one
        running waits for it and takes its result instead of fetching again: ``fetched`` False
        if it worked, its :class:`RemoteUnavailable` if it failed — unless ``started_after``
        demands a fetch that began after that time (e.g. after a commit id was found missing).
        Retries with backoff; on final failure the mirror stays readable at its last fetched
        state and the failure is recorded (see :meth:`read_state`).
        """
        asked = time.time()
        with self.locked(wait):
            if self.exists:
                state = self.read_state()
                ok_at, failed_at = state.last_fetch_ok or 0.0, state.last_error_at or 0.0
                joined = max(ok_at, failed_at) >= asked
                if joined and started_after is not None:
                    joined = (state.last_fetch_started or 0.0) >= started_after
                if joined and failed_at > ok_at and state.last_error is not None:
                    # The fetch we waited for failed: say so rather than hammer the remote again.
                    raise RemoteUnavailable(state.last_error)
                if joined:
                    return FetchResult((), fetched=False, seconds=0.0)
            return self._fetch_locked(progress)

    @contextmanager
    def locked(self, wait: float = 600.0) -> Iterator[None]:
        """Hold the mirror's lock (re-entrant) against fetches, repairs and maintenance, in
        other threads and other processes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = _path_lock(self._lock_path)
        deadline = time.monotonic() + wait
        busy = RemoteUnavailable(
            f"{self.display_url} is busy in another thread or process for more than {wait:.0f}s",
            retry_after=wait,
        )
        if not lock.threads.acquire(timeout=wait):
            raise busy
        try:
            try:
                lock.file.acquire(timeout=max(0.0, deadline - time.monotonic()))
            except filelock.Timeout:
                raise busy from None
            try:
                yield
            finally:
                lock.file.release()
        finally:
            lock.threads.release()

    def _clone(self, progress: Progress | None) -> None:
        """Create the mirror by a bare clone beside it, then move it into place.

        A clone writes its refs packed in one file (a fetch into an empty repository writes one
        file per ref: minutes for tens of thousands of refs on a slow disk), and a half-made clone
        is never visible at the mirror's path. The clone's remote configuration is removed: the
        mirror keeps no URL and no credentials of its own.
        """
        tmp = self.path.parent / f".{self.path.name}.clone-{os.getpid()}-{threading.get_ident()}"
        remove_tree(tmp)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        args = [
            "clone", "--bare", "--no-recurse-submodules",
            *([] if progress else ["--quiet"]), "--end-of-options", self.url, str(tmp),
        ]
        try:
            run_remote(tmp, args, auth=self._auth(), policy=self.policy,
                       what=f"clone {self.display_url}", progress=progress)
            run_git(tmp, ["config", "--remove-section", "remote.origin"], check=False)
            for key, value in MIRROR_CONFIG:
                run_git(tmp, ["config", key, value])
            (tmp / "revisor-mirror.json").write_text(
                json.dumps({"url": self.display_url, "created": time.time()})
            )
            if self.path.exists():  # an empty mirror left by a failed first attempt
                remove_tree(self.path)
            os.replace(tmp, self.path)
        finally:
            remove_tree(tmp)
        self._repo = None

    def _never_filled(self) -> bool:
        """An existing mirror that no fetch ever filled (a failed first attempt left it)."""
        return self.read_state().last_fetch_ok is None and not self.repo.refs("refs/")

    def _record_first_failure(self, state: MirrorState) -> None:
        if not self.exists:
            self.create()  # an empty mirror, so that the failure is recorded where reads look
        self._write_state(state)

    def _fetch_locked(self, progress: Progress | None = None) -> FetchResult:
        first = not self.exists or self._never_filled()
        if not first and not self.head_ok():
            self._repair_small_damage()
        if first:
            start = time.perf_counter()
            try:
                retry(lambda: self._clone(progress), self.policy)
            except RemoteUnavailable as exc:
                state = self.read_state() if self.exists else MirrorState()
                state.last_fetch_started = time.time()
                state.last_error, state.last_error_at = str(exc), time.time()
                state.consecutive_failures += 1
                self._record_first_failure(state)
                raise
            state = self.read_state()
            state.last_fetch_started = time.time()
            head = self.repo.head_ref
            if head and not self.default_branch:
                state.extra["head"] = head  # the clone took the remote's HEAD
            else:
                self._set_head(state)
            state.last_fetch_ok = time.time()
            self._write_state(state)
            after = self._upstream_refs()
            changes = tuple(RefChange(ref, None, oid) for ref, oid in sorted(after.items()))
            return FetchResult(changes, fetched=True, seconds=time.perf_counter() - start)
        state = self.read_state()
        state.last_fetch_started = time.time()
        self._write_state(state)
        before = self._upstream_refs()
        start = time.perf_counter()
        args = [
            "fetch", "--prune", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head",
            *([] if progress else ["--quiet"]), "--end-of-options", self.url, *FETCH_REFSPECS,
        ]
        unchanged = False

        def attempt() -> None:
            nonlocal unchanged
            # The ref advertisement alone says whether anything moved: with nothing changed (the
            # common case) no fetch runs, whatever the number of refs.
            if not first and self._advertised() == before:
                unchanged = True
                return
            run_remote(
                self.path, args, auth=self._auth(), policy=self.policy,
                what=f"fetch {self.display_url}", progress=progress,
            )

        try:
            try:
                retry(attempt, self.policy)
            except RemoteUnavailable:
                # The remote may be fine and the mirror at fault (a lock left by a killed
                # process): repair what is cheap to repair, and try once more if anything was.
                if not self._repair_small_damage():
                    raise
                attempt()
        except RemoteUnavailable as exc:
            state.last_error, state.last_error_at = str(exc), time.time()
            state.consecutive_failures += 1
            self._write_state(state)
            raise
        wanted = f"refs/heads/{self.default_branch}" if self.default_branch else None
        if "head" not in state.extra or (wanted and state.extra["head"] != wanted):
            self._set_head(state)
        after = before if unchanged else self._upstream_refs()
        if len(after.keys() - before.keys()) >= PACK_REFS_AFTER:
            # a fetch writes one file per new ref: pack them, or every later read pays for it
            run_git(self.path, ["pack-refs", "--all", "--prune"])
        state.last_fetch_ok = time.time()
        state.last_error = None
        state.consecutive_failures = 0
        self._write_state(state)
        changes = tuple(
            RefChange(ref, before.get(ref), after.get(ref))
            for ref in sorted(before.keys() | after.keys())
            if before.get(ref) != after.get(ref)
        )
        return FetchResult(changes, fetched=True, seconds=time.perf_counter() - start)

    def _upstream_refs(self) -> dict[str, ObjectId]:
        """The mirror's copies of the upstream's branches and tags, in one pass."""
        return {
            name: oid
            for name, oid in self.repo.refs("refs/").items()
            if name.startswith(("refs/heads/", "refs/tags/"))
        }

    def _advertised(self) -> dict[str, ObjectId]:
        """The remote's branches and tags as it advertises them (what a fetch would bring)."""
        proc = run_remote(
            self.path,
            ["ls-remote", "--heads", "--tags", "--refs", "--end-of-options", self.url],
            auth=self._auth(), policy=self.policy, what=f"ls-remote {self.display_url}",
        )
        out: dict[str, ObjectId] = {}
        for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
            oid, _, name = line.partition("\t")
            if name.startswith(("refs/heads/", "refs/tags/")):
                out[name] = ObjectId(oid)
        return out

    # -- pushing --------------------------------------------------------------------------------
    def ls_remote(self, refs: Sequence[str]) -> dict[str, ObjectId]:
        """The remote's current value of each named ref that exists."""
        proc = run_remote(
            self.path,
            ["ls-remote", "--refs", "--end-of-options", self.url, *refs],
            auth=self._auth(),
            policy=self.policy,
            what=f"ls-remote {self.display_url}",
        )
        out: dict[str, ObjectId] = {}
        wanted = set(refs)
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            oid, _, name = line.partition("\t")
            if name in wanted:
                out[name] = ObjectId(oid)
        return out

    def push(self, updates: Sequence[PushUpdate]) -> None:
        """Update remote refs, each only if it still holds its expected value; all or none.

        After a successful push the mirror's own copies of pushed ``refs/heads/*`` and
        ``refs/tags/*`` are moved too (by compare-and-swap), so reads see what was pushed.
        """
        if not updates:
            return
        args = ["push", "--porcelain", "--no-verify", "--no-recurse-submodules"]
        if len(updates) > 1:
            args.append("--atomic")
        for u in updates:
            args.append(f"--force-with-lease={u.ref}:{u.expected or ''}")
        args += ["--end-of-options", self.url]
        args += [f"{u.new}:{u.ref}" if u.new else f":{u.ref}" for u in updates]
        proc = run_remote(
            self.path, args, auth=self._auth(), policy=self.policy,
            what=f"push to {self.display_url}", check=False,
        )
        if proc.returncode != 0:
            self._explain_push_failure(updates, proc.stderr.decode("utf-8", "replace"))
        self._follow_pushed(updates)

    def _explain_push_failure(self, updates: Sequence[PushUpdate], stderr: str) -> None:
        # Decide from the remote's state, not from git's wording.
        actual = self.ls_remote([u.ref for u in updates])
        if all(actual.get(u.ref) == u.new for u in updates):
            # Applied, but the answer was lost on the way back (a dropped connection): success.
            log.info("push to %s applied although git reported a failure", self.display_url)
            return
        for u in updates:
            if actual.get(u.ref) != u.expected:
                raise RemoteRefConflict(u.ref, u.expected, actual.get(u.ref))
        raise RemoteUnavailable(
            f"push to {self.display_url} failed", stderr=redact(stderr.strip())
        )

    def _follow_pushed(self, updates: Sequence[PushUpdate]) -> None:
        local = []
        for u in updates:
            if not u.ref.startswith(("refs/heads/", "refs/tags/")):
                continue
            current = self.repo.ref(u.ref)
            if current != u.new:
                local.append(RefUpdate(u.ref, u.new, current))
        if local:
            try:
                self.repo.update_refs(local, "revisor: follow push")
            except (GitFailure, RefConflict) as exc:  # a concurrent fetch moved it: fine
                log.info("mirror refs not updated after push: %s", exc)
