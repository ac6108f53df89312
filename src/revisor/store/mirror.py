"""One bare mirror of one remote: created, fetched and pushed only here.

A mirror holds the upstream's branches and tags under ``refs/heads/*`` and ``refs/tags/*`` exactly
as last fetched (moved and deleted upstream refs follow, with prune), and Revisor's own refs under
``refs/revisor/*``, which a fetch never touches. Nobody above the store runs ``git clone``.

- One fetch at a time per mirror, across threads and processes (a file lock). A caller that finds a
  fetch running waits for it and, if it started after the caller asked, takes its result instead of
  fetching again.
- Pushes carry a lease: the remote ref moves only if it still holds the expected value, otherwise
  :class:`~revisor.errors.RemoteRefConflict` with the value found. Several refs go atomically.
- Credentials never touch the mirror's config (see ``transport``); the URL stored in the mirror's
  metadata has no userinfo.
"""

from __future__ import annotations

import json
import logging
import os
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

__all__ = ["FetchResult", "Mirror", "MirrorState", "PushUpdate", "RefChange"]

log = logging.getLogger(__name__)

FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
STATE_FILE = "revisor-state.json"
_ZERO = "0" * 40


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
        self._lock = filelock.FileLock(str(path) + ".fetch.lock", thread_local=False)

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
        repo.git("config", "gc.auto", "0")
        repo.git("config", "core.logAllRefUpdates", "false")
        repo.git("config", "fetch.writeCommitGraph", "false")
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

    def _set_head(self) -> None:
        branch = f"refs/heads/{self.default_branch}" if self.default_branch else self.remote_head()
        if branch:
            self.repo.git("symbolic-ref", "HEAD", branch)

    # -- fetching -------------------------------------------------------------------------------
    def fetch(
        self,
        *,
        wait: float = 600.0,
        progress: Progress | None = None,
        started_after: float | None = None,
    ) -> FetchResult:
        """Bring the mirror up to date with the remote (creating it on first use).

        One fetch runs at a time per mirror, across processes. A caller that finds one running
        waits for it and takes its result (``fetched`` False) instead of fetching again — unless
        ``started_after`` demands a fetch that began after that time (e.g. after a commit id was
        found missing). Retries with backoff; on final failure the mirror stays readable at its
        last fetched state and the failure is recorded (see :meth:`read_state`).
        """
        asked = time.time()
        with self.locked(wait):
            if self.exists:
                state = self.read_state()
                joined = state.last_fetch_ok is not None and state.last_fetch_ok >= asked
                if joined and started_after is not None:
                    joined = (state.last_fetch_started or 0.0) >= started_after
                if joined:
                    return FetchResult((), fetched=False, seconds=0.0)
            return self._fetch_locked(progress)

    @contextmanager
    def locked(self, wait: float = 600.0) -> Iterator[None]:
        """Hold the mirror's lock (reentrant) against fetches, repairs and maintenance."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=wait)
        except filelock.Timeout:
            raise RemoteUnavailable(
                f"{self.display_url} is busy in another process for more than {wait:.0f}s",
                retry_after=wait,
            ) from None
        try:
            yield
        finally:
            self._lock.release()

    def _fetch_locked(self, progress: Progress | None = None) -> FetchResult:
        first = not self.exists
        if first:
            self.create()
        state = self.read_state()
        state.last_fetch_started = time.time()
        self._write_state(state)
        before = self.repo.refs("refs/heads/") | self.repo.refs("refs/tags/")
        start = time.perf_counter()
        args = [
            "fetch", "--prune", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head",
            *([] if progress else ["--quiet"]), "--end-of-options", self.url, *FETCH_REFSPECS,
        ]
        try:
            retry(
                lambda: run_remote(
                    self.path, args, auth=self._auth(), policy=self.policy,
                    what=f"fetch {self.display_url}", progress=progress,
                ),
                self.policy,
            )
        except RemoteUnavailable as exc:
            state.last_error, state.last_error_at = str(exc), time.time()
            state.consecutive_failures += 1
            self._write_state(state)
            raise
        if first:
            self._set_head()
        after = self.repo.refs("refs/heads/") | self.repo.refs("refs/tags/")
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
