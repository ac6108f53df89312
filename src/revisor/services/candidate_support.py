"""What candidates and workspaces share: their dependencies, their locks, their state checks.

Why this module exists: :class:`~revisor.services.candidates.Candidates` and
:class:`~revisor.services.workspaces.Workspace` work on the same source, database, audit log and
provider, and coordinate through the same locks; one :class:`CandidateContext` carries them.

Locks. Every ref move is a compare-and-swap, so no lock is needed for correctness of a ref. Locks
order the *metadata* that goes with refs:

- the **candidate lock** is held by whatever moves the candidate ref or changes its status
  (a publish's final step, rebase/update, submit, abandon), so a candidate is never submitted
  while a publish lands on it, and a publish never lands on a submitted one;
- the **workspace lock** is held by a workspace's sync, publish and resolve, which change its
  base and conflicts along with its ref. Saves take no lock: they move the workspace ref by CAS
  and retry on a lost race.

Order: a workspace lock first, then the candidate lock (publish), never the other way round. A
bulk sync takes the locks of all of a candidate's workspaces at once, but never waits for one
(:meth:`Locks.try_workspaces`): a busy workspace is left out, and synced on its own afterwards.
The locks are files under ``<data_dir>/locks`` (``flock``: released by the OS when a holder
dies); they order processes on one node, which is where a source's refs live.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import resource
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import filelock

from revisor.core.refnames import encode_component
from revisor.db.audit import AuditLog
from revisor.db.candidates import Candidate, CandidateStatus, CandidateStore
from revisor.db.database import Database
from revisor.errors import InvalidState, RefConflict, Unavailable
from revisor.providers.base import Provider
from revisor.store.store import StoreSource
from revisor.vcs import ObjectId, Repository, Signature

__all__ = ["LOCK_TIMEOUT", "CandidateContext", "Locks"]

log = logging.getLogger(__name__)

_SPARE_DESCRIPTORS = 1024
"""Descriptors left for everything else when a bulk sync raises the limit of open files."""

LOCK_TIMEOUT = 120.0
"""Seconds to wait for a candidate or workspace lock before answering "busy"."""


class Locks:
    """File locks for candidates and workspaces under ``root``. Constructing does no I/O."""

    def __init__(self, root: Path, *, timeout: float = LOCK_TIMEOUT) -> None:
        self.root = Path(root)
        self.timeout = timeout

    @contextlib.contextmanager
    def _hold(self, path: Path, what: str) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(path), timeout=self.timeout)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise Unavailable(
                f"{what} is busy: another operation has held it for {self.timeout:.0f} s",
                retry_after=1.0,
            ) from exc
        try:
            yield
        finally:
            lock.release()

    def candidate(self, candidate_id: int) -> contextlib.AbstractContextManager[None]:
        return self._hold(
            self.root / "candidates" / f"{candidate_id}.lock", f"candidate {candidate_id}"
        )

    def _workspace_path(self, candidate_id: int, user: str) -> Path:
        return self.root / "workspaces" / str(candidate_id) / f"{encode_component(user)}.lock"

    def workspace(
        self, candidate_id: int, user: str
    ) -> contextlib.AbstractContextManager[None]:
        return self._hold(
            self._workspace_path(candidate_id, user),
            f"the workspace of {user!r} in candidate {candidate_id}",
        )

    def prepare_workspace(self, candidate_id: int, user: str) -> None:
        """Create the workspace's lock file ahead of its first use, so that a bulk sync of a
        thousand new workspaces opens existing files instead of creating a thousand (a file
        creation is the dearest thing a sync does on most disks). Never holds the lock."""
        path = self._workspace_path(candidate_id, user)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644))

    @contextlib.contextmanager
    def try_workspaces(self, candidate_id: int, users: Collection[str]) -> Iterator[set[str]]:
        """Take, without waiting, the locks of these users' workspaces in the candidate; yield
        the users whose lock was free (the others are busy). For a bulk sync: a thousand locks
        cost one ``open`` and one ``flock`` each — the same ``flock`` on the same files as
        :meth:`workspace` takes through ``filelock``, so the two exclude each other — and
        waiting for none of them, the holder can never deadlock with anyone."""
        directory = self.root / "workspaces" / str(candidate_id)
        directory.mkdir(parents=True, exist_ok=True)
        _room_for_descriptors(len(users))
        held: dict[str, int] = {}
        try:
            for user in users:
                if user in held:
                    continue
                try:
                    fd = os.open(self._workspace_path(candidate_id, user),
                                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                except OSError as exc:
                    if exc.errno not in (errno.EMFILE, errno.ENFILE):
                        raise
                    log.warning("out of file descriptors after %d workspace locks: the other "
                                "workspaces are synced one by one", len(held))
                    break
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                except BaseException:
                    os.close(fd)
                    raise
                held[user] = fd
            yield set(held)
        finally:
            for fd in held.values():
                os.close(fd)  # closing the only descriptor releases its flock


def _room_for_descriptors(count: int) -> None:
    """Raise this process's soft limit of open files, within its hard limit, so that ``count``
    more descriptors fit (a bulk sync holds one lock file open per workspace; the usual soft
    limit is 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + _SPARE_DESCRIPTORS
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    new = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if new > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


@dataclass(frozen=True)
class CandidateContext:
    """Everything the candidate and workspace services of one source work with."""

    source: StoreSource
    store: CandidateStore
    db: Database
    audit: AuditLog
    identity: Signature  # Revisor's own: the committer of every commit it writes
    locks: Locks
    provider: Callable[[], Provider]

    @classmethod
    def build(
        cls,
        source: StoreSource,
        db: Database,
        audit: AuditLog,
        identity: Signature,
        provider: Callable[[], Provider],
        data_dir: Path,
    ) -> CandidateContext:
        return cls(source, CandidateStore(db), db, audit, identity,
                   Locks(Path(data_dir) / "locks"), provider)

    @property
    def repo(self) -> Repository:
        return self.source.repository

    def committer(self) -> Signature:
        return Signature.now(self.identity.name, self.identity.email)

    def head_of(self, candidate: Candidate) -> ObjectId:
        """The candidate ref's value. A missing ref of an open candidate (removed by hand) is put
        back where the row says it was; a closed candidate's may have been cleaned up: the row's
        value is the answer."""
        head = self.repo.ref(candidate.ref)
        if head is None and candidate.status is not CandidateStatus.OPEN:
            return candidate.head_commit
        if head is None:
            with contextlib.suppress(RefConflict):  # put back meanwhile by another caller
                self.repo.set_ref(candidate.ref, candidate.head_commit, expected=None)
            head = self.repo.ref(candidate.ref) or candidate.head_commit
        return head

    def candidate(self, candidate_id: int) -> Candidate:
        """The candidate, with ``head_commit`` read from its ref."""
        c = self.store.get(self.source.name, candidate_id)
        head = self.head_of(c)
        return c if head == c.head_commit else replace(c, head_commit=head)

    @staticmethod
    def require_open(candidate: Candidate, action: str) -> None:
        if candidate.status is not CandidateStatus.OPEN:
            raise InvalidState(
                f"candidate {candidate.name!r}", candidate.status.value, action,
                hint="only open candidates take changes; create a new candidate",
            )


def default_email(user: str) -> str:
    """The email of a user who gave none: their encoded name at a domain that never resolves."""
    return f"{encode_component(user)}@users.revisor.invalid"

