"""What a job is: the interface every job implements, the context it runs in, and the registry.

Why this module exists: the housekeeping jobs (refresh, sync, squash, backup, cleanup, maintain)
differ in what they do but not in how they are run. Each lists its *targets* (a source, or one
candidate of a source), names the lease keys a target needs, and runs one target at a time,
returning a typed :class:`TargetOutcome`. Everything else — taking and releasing the leases,
recording the run, isolating one target's failure from the others, progress, the schedule —
is the runner's (``revisor.jobs.runner``) and the scheduler's, written once.

A job module registers its job on import with :func:`register`; the runner imports the built-in
job modules (:data:`JOB_MODULES`) before it looks a job up.

Writing a result under a lease: call :meth:`JobContext.check` right before a ref
compare-and-swap or a push with a lease (whose expected value was read under the lease), and
write database results inside ``with ctx.fence() as session:`` — the lease check is then part
of the same SQL transaction as the write, so a job whose lease expired or was taken over can
never commit.
"""

from __future__ import annotations

import abc
import enum
import importlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypeVar

from sqlalchemy.orm import Session

from revisor.db.jobs import JobOutcome
from revisor.errors import InvalidInput
from revisor.jobs.leases import Lease, Leases, candidate_key, source_key

if TYPE_CHECKING:
    from revisor.bootstrap import Revisor

__all__ = [
    "JOB_MODULES",
    "Detail",
    "Job",
    "JobContext",
    "JobName",
    "JobOutcome",
    "ProgressFn",
    "Target",
    "TargetOutcome",
    "all_jobs",
    "get_job",
    "load_jobs",
    "register",
]

log = logging.getLogger(__name__)

Detail = str | int | float | bool | None | Sequence[str] | Mapping[str, str]
"""What a target outcome's details may hold: JSON-friendly scalars, lists and maps of strings."""

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, message)``."""


class JobName(enum.StrEnum):
    REFRESH = "refresh"
    SYNC = "sync"
    SQUASH = "squash"
    BACKUP = "backup"
    CLEANUP = "cleanup"
    MAINTAIN = "maintain"


JOB_MODULES: dict[JobName, str] = {
    JobName.REFRESH: "revisor.jobs.refresh",
    JobName.SYNC: "revisor.jobs.sync",
    JobName.SQUASH: "revisor.jobs.squash",
    JobName.BACKUP: "revisor.jobs.backup",
    JobName.CLEANUP: "revisor.jobs.cleanup",
    JobName.MAINTAIN: "revisor.jobs.maintain",
}
"""Where each built-in job is defined (imported by :func:`load_jobs`)."""

_OPTIONAL_MODULES = frozenset({"revisor.jobs.backup", "revisor.jobs.cleanup"})


@dataclass(frozen=True, order=True)
class Target:
    """What one step of a job works on: a whole source, or one candidate of it."""

    source: str
    candidate: int | None = None

    @property
    def key(self) -> str:
        """The lease key of this target (``source:<s>`` or ``candidate:<s>:<id>``)."""
        if self.candidate is None:
            return source_key(self.source)
        return candidate_key(self.source, self.candidate)

    @property
    def label(self) -> str:
        return self.source if self.candidate is None else f"{self.source}#{self.candidate}"

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class TargetOutcome:
    """What running a job on one target did. ``changed``: something was written (a ref moved,
    a row changed, a push happened); ``summary`` one line for people; ``details`` for tools."""

    changed: bool
    summary: str
    details: Mapping[str, Detail] = field(default_factory=dict)


class JobContext:
    """What a job sees while it runs one target: the opened Revisor, the leases it holds, the
    fence to write under, and a progress callback. Made by the runner."""

    def __init__(
        self,
        rv: Revisor,
        leases: Leases,
        held: Sequence[Lease],
        *,
        owner: str,
        progress: ProgressFn | None = None,
    ) -> None:
        self.rv = rv
        self.leases = leases
        self.held = tuple(held)
        self.owner = owner
        self._progress = progress
        self._renewed = time.monotonic()

    def check(self, session: Session | None = None) -> None:
        """Raise :class:`~revisor.errors.LeaseLost` unless every lease is still held; with a
        ``session``, as part of that session's transaction."""
        for lease in self.held:
            self.leases.check(lease, session)

    @contextmanager
    def fence(self) -> Iterator[Session]:
        """A write session whose first statement checks (and locks) every lease: what is
        written in it commits only if the leases are still this job's."""
        with self.leases.db.session() as s:
            self.check(s)
            yield s

    def renew(self) -> None:
        """Extend every lease (LeaseLost if one was lost); long steps call this now and then."""
        self.held = tuple(self.leases.renew(lease) for lease in self.held)
        self._renewed = time.monotonic()

    def progress(self, done: int, total: int, message: str = "") -> None:
        """Report progress within this target (throttled by the runner)."""
        if self._progress is not None:
            self._progress(done, total, message)


class Job(abc.ABC):
    """A housekeeping job. Subclasses set :attr:`name` and implement :meth:`targets` and
    :meth:`run_target`; a job must be safe to run twice and to be killed half-way."""

    name: ClassVar[JobName]
    description: ClassVar[str] = ""
    default_ttl: ClassVar[float] = 300.0
    """Seconds a lease lasts unless the configuration says otherwise (renewable)."""
    by_candidate: ClassVar[bool] = False
    """Whether a run can be narrowed to one candidate (``--candidate``); the others work on
    whole sources and refuse the filter rather than ignore it."""

    @abc.abstractmethod
    def targets(
        self, rv: Revisor, *, source: str | None = None, candidate: int | None = None
    ) -> list[Target]:
        """What a run covers, narrowed by the filters (a source; a candidate of it)."""

    def lease_keys(self, target: Target) -> tuple[str, ...]:
        """The leases a target needs, taken in this order (default: the target's own key)."""
        return (target.key,)

    def up_to_date(self, rv: Revisor, targets: Sequence[Target]) -> dict[Target, str]:
        """Targets known, cheaply and in bulk, to need nothing (no lease is taken for them),
        each with the reason; recorded as unchanged. Default: none."""
        return {}

    @abc.abstractmethod
    def run_target(self, ctx: JobContext, target: Target) -> TargetOutcome:
        """Do the job's work on one target, writing results under the fence."""


_REGISTRY: dict[JobName, Job] = {}

J = TypeVar("J", bound=type[Job])


def register(cls: J) -> J:
    """Class decorator: make the job runnable by name (one instance per job)."""
    _REGISTRY[JobName(cls.name)] = cls()
    return cls


def load_jobs() -> None:
    """Import every built-in job module; backup and cleanup may not exist in this build."""
    for module in JOB_MODULES.values():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if module in _OPTIONAL_MODULES and exc.name == module:
                continue
            raise


def get_job(name: JobName | str) -> Job:
    """The registered job called ``name`` (InvalidInput if there is none)."""
    load_jobs()
    try:
        return _REGISTRY[JobName(name)]
    except (ValueError, KeyError):
        known = ", ".join(sorted(n.value for n in _REGISTRY))
        raise InvalidInput(f"no job {name!r}", hint=f"the jobs are: {known}") from None


def all_jobs() -> list[Job]:
    """Every registered job, in :class:`JobName` order."""
    load_jobs()
    return [_REGISTRY[n] for n in JobName if n in _REGISTRY]
