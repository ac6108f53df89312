"""The store: every configured source, and the one place that knows where its repository lives.

``Store(config)`` hands out a :class:`StoreSource` per source name. A ``git`` source is read through
its bare mirror under ``<data_dir>/mirrors``, laid out by the ``unique`` scheme (two sources on the
same remote share one mirror); a ``local`` source is an existing repository used in place. Above
this layer nobody clones, fetches or computes a path: they ask a ``StoreSource`` for its
:class:`~revisor.vcs.Repository`, resolve revisions with the freshness they need, and push with a
lease.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from revisor.config import Config, GitSource, LocalSource
from revisor.errors import InvalidInput, RemoteUnavailable, RevisionNotFound, RevisorError
from revisor.store.maintenance import MaintenanceResult, maintain
from revisor.store.mirror import FetchResult, Mirror, PushUpdate
from revisor.store.recovery import DoctorReport, doctor
from revisor.store.schemes import Layout, Scheme, host_and_project, project_path
from revisor.store.transport import GitAuth, NetworkPolicy, Progress
from revisor.store.urls import Transport, strip_userinfo
from revisor.vcs import ObjectId, Repository
from revisor.vcs.materialize import remove_tree

__all__ = ["Freshness", "Prepared", "Store", "StoreSource"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Freshness:
    """How current a source's view of its remote is."""

    last_fetch_ok: float | None  # epoch seconds; None: never fetched (or a local source)
    staleness: float | None  # seconds since then
    last_error: str | None  # the last fetch failure, redacted; None when the last fetch worked
    refresh_interval: float | None


@dataclass(frozen=True)
class Prepared:
    """A read-only checkout materialized for a person or a tool."""

    path: Path
    commit: ObjectId
    files: int


class StoreSource:
    """One configured source. Constructing it does no I/O."""

    def __init__(self, store: Store, name: str, config: GitSource | LocalSource) -> None:
        self.store = store
        self.name = name
        self.config = config
        self.mirror: Mirror | None = None
        self._local: Repository | None = None
        if isinstance(config, GitSource):
            host, project = host_and_project(config.remote)
            rel = project_path(Scheme.UNIQUE, host, project)
            url = config.url
            if config.remote.transport in (Transport.HTTP, Transport.HTTPS):
                url = strip_userinfo(url)  # credentials travel through the helper instead
            self.mirror = Mirror(
                store.mirrors_root.joinpath(*rel.parts),
                url,
                auth=self._auth,
                policy=store.policy,
                default_branch=config.branch,
            )

    def __repr__(self) -> str:
        return f"StoreSource({self.name!r}, {self.config.type})"

    # -- credentials ----------------------------------------------------------------------------
    def _auth(self) -> GitAuth | None:
        creds = self.store.config.credentials(self.name, self.store.env)
        if creds is None:
            return None
        password = creds.password.get_secret_value() if creds.password is not None else None
        return GitAuth(creds.username, password, creds.ssh_key_file)

    # -- the repository -------------------------------------------------------------------------
    @property
    def is_mirrored(self) -> bool:
        return self.mirror is not None

    @property
    def repository(self) -> Repository:
        """The repository to read from; a mirror that does not exist yet is fetched first."""
        if self.mirror is None:
            if self._local is None:
                assert isinstance(self.config, LocalSource)
                self._local = Repository.open(self.config.path)
            return self._local
        if not self.mirror.exists:
            self.refresh()
        return self.mirror.repo

    @property
    def display_location(self) -> str:
        if self.mirror is not None:
            return self.mirror.display_url
        assert isinstance(self.config, LocalSource)
        return str(self.config.path)

    @property
    def target_branch(self) -> str:
        """The branch proposals target: the configured one, else what HEAD names."""
        if self.config.branch:
            return self.config.branch
        head = self.repository.head_ref
        if head and head.startswith("refs/heads/"):
            return head.removeprefix("refs/heads/")
        return "main"

    # -- freshness ------------------------------------------------------------------------------
    def freshness(self, now: float | None = None) -> Freshness:
        if self.mirror is None:
            return Freshness(None, None, None, None)
        state = self.mirror.read_state()
        assert isinstance(self.config, GitSource)
        return Freshness(
            state.last_fetch_ok,
            state.staleness(now),
            state.last_error,
            self.config.refresh.total_seconds(),
        )

    def is_due(self, now: float | None = None) -> bool:
        """True when the last fetch attempt is older than the source's refresh interval.

        A failed fetch counts as an attempt: while the remote is down, reads that ask for
        freshness are served from the last fetched state without trying again before the next
        interval (see :meth:`freshness` for how stale that is).
        """
        if self.mirror is None:
            return False
        assert isinstance(self.config, GitSource)
        state = self.mirror.read_state()
        attempts = [t for t in (state.last_fetch_ok, state.last_error_at) if t is not None]
        if not attempts:
            return True
        now = now if now is not None else time.time()
        return now - max(attempts) >= self.config.refresh.total_seconds()

    def refresh(self, *, progress: Progress | None = None) -> FetchResult | None:
        """Fetch the source now (None for a local source, which is always current)."""
        if self.mirror is None:
            return None
        return self.mirror.fetch(progress=progress)

    def resolve(self, rev: str, *, fresh: bool = False) -> ObjectId:
        """Resolve ``rev`` to a commit id.

        ``fresh``: fetch first if the source is due (at most once per refresh interval); when the
        remote is down the answer comes from the last fetched state (see :meth:`freshness`). A
        revision unknown here triggers one fetch before :class:`RevisionNotFound` (one per call:
        the freshness fetch counts); when that fetch fails, its :class:`RemoteUnavailable` is
        raised instead, since the revision may exist upstream.
        """
        attempted = False
        failure: RemoteUnavailable | None = None
        if fresh and self.mirror is not None and self.is_due():
            attempted = True
            failure = self._refresh_tolerant()
        asked = time.time()
        try:
            return self.repository.resolve(rev)
        except RevisionNotFound:
            if self.mirror is None:
                raise
            if attempted:
                # This call has had its one fetch; if it failed, that is the honest answer.
                if failure is not None:
                    raise failure from None
                raise
        self.mirror.fetch(started_after=asked)
        return self.repository.resolve(rev)

    def _refresh_tolerant(self) -> RemoteUnavailable | None:
        """Refresh; when that fails but an earlier fetch worked, log and return the failure."""
        assert self.mirror is not None
        try:
            self.refresh()
            return None
        except RemoteUnavailable as exc:
            if not self.mirror.exists or self.mirror.read_state().last_fetch_ok is None:
                raise
            log.warning("%s: serving the last fetched state: %s", self.name, exc)
            return exc

    # -- writing to the remote ------------------------------------------------------------------
    def push(self, updates: Sequence[PushUpdate]) -> None:
        """Push with leases (see :meth:`Mirror.push`). A local source is updated in place by CAS."""
        if self.mirror is not None:
            self.mirror.push(updates)
            return
        from revisor.vcs import RefUpdate

        self.repository.update_refs(
            [RefUpdate(u.ref, u.new, u.expected) for u in updates], "revisor: push"
        )

    # -- upkeep ---------------------------------------------------------------------------------
    def doctor(self, *, repair: bool = True, full: bool = True) -> DoctorReport:
        if self.mirror is None:
            report = DoctorReport(Path(str(self.display_location)))
            return report
        return doctor(self.mirror, repair=repair, full=full)

    def maintain(self) -> MaintenanceResult | None:
        """Maintain the mirror (see ``store.maintenance``); None for a local source, which is
        the owner's to maintain, or a mirror not fetched yet."""
        if self.mirror is None or not self.mirror.exists:
            return None
        return maintain(self.mirror)

    # -- preparing a directory ------------------------------------------------------------------
    def prepare(self, rev: str, root: Path, scheme: Scheme | str = Scheme.GOLANG) -> Prepared:
        """Materialize ``rev`` read-only under ``root`` at the scheme's path for this source.

        Two sources whose paths would nest (``a`` and ``a/b``, in either order) raise
        :class:`~revisor.errors.LayoutCollision`; preparing the same source again replaces it.
        """
        scheme = Scheme(scheme)
        if scheme is Scheme.UNIQUE:
            raise InvalidInput("the unique scheme is internal; prepare with golang or flat")
        commit = self.resolve(rev, fresh=True)
        host, project = host_and_project(self.config.remote)
        layout = Layout(root)
        dest = layout.place(self.name, project_path(scheme, host, project))
        if dest.exists():
            remove_tree(dest)
        files = self.repository.materialize(commit, dest, read_only=True)
        return Prepared(dest, commit, files)


class Store:
    """All sources of one configuration. Constructing it does no I/O."""

    def __init__(
        self,
        config: Config,
        *,
        env: Mapping[str, str] | None = None,
        policy: NetworkPolicy | None = None,
    ) -> None:
        self.config = config
        self.env: Mapping[str, str] = env if env is not None else os.environ
        self.policy = policy or NetworkPolicy()
        self._sources: dict[str, StoreSource] = {}

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    @property
    def mirrors_root(self) -> Path:
        return self.config.data_dir / "mirrors"

    def names(self) -> list[str]:
        return list(self.config.sources)

    def source(self, name: str) -> StoreSource:
        if name not in self._sources:
            self._sources[name] = StoreSource(self, name, self.config.source(name))
        return self._sources[name]

    def sources(self) -> list[StoreSource]:
        return [self.source(n) for n in self.names()]

    def refresh_due(
        self, *, now: float | None = None, on_error: Callable[[str, Exception], None] | None = None
    ) -> dict[str, FetchResult | None]:
        """Fetch every source that is due; one failing source never stops the others."""
        results: dict[str, FetchResult | None] = {}
        for src in self.sources():
            if not src.is_due(now if now is not None else time.time()):
                continue
            try:
                results[src.name] = src.refresh()
            except RevisorError as exc:  # unreachable, a missing secret, a broken mirror
                log.warning("%s: refresh failed: %s", src.name, exc)
                if on_error is not None:
                    on_error(src.name, exc)
        return results
