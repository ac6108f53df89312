"""Reading refs in one pass, and moving them only by compare-and-swap.

Every ref write in Revisor goes through :func:`update_refs`: each update names the value it
expects, the refs are locked with git's own ``<ref>.lock`` files (so git processes honour them too),
the current values are checked under the locks, and only then is anything written. A lost race
raises :class:`~revisor.errors.RefConflict` carrying the value actually found.

A process killed between taking a lock and committing leaves its ``<ref>.lock`` behind, which
would refuse every later write of that ref. A writer that has waited in vain for a lock older than
:data:`STALE_LOCK_SECONDS` (holders keep theirs for microseconds, git for milliseconds) removes it
and tries once more; breakers take a mutex (``flock`` on a file beside the refs) and look at the
lock's age again under it, so two of them never remove each other's fresh lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pygit2

from revisor.errors import GitFailure, RefConflict
from revisor.vcs.names import check_ref_name
from revisor.vcs.types import ObjectId, RefUpdate

__all__ = ["list_refs", "read_ref", "update_refs"]

# How long to wait for a ref lock held by another writer before giving up. Lock holders keep their
# locks for microseconds; a lock older than this is stale (a killed process) and is the store's to
# repair.
LOCK_WAIT_SECONDS = 2.0
#: A ``<ref>.lock`` this old was left by a killed process and is removed by the next writer.
STALE_LOCK_SECONDS = 30.0
_BREAKER = "revisor-stale-ref-locks"  # the mutex file of the breakers, in the git directory

log = logging.getLogger(__name__)


def read_ref(pg: pygit2.Repository, name: str) -> ObjectId | None:
    """The object a ref points to (following symbolic refs), or None when it does not exist."""
    try:
        ref = pg.references.get(name)
    except (pygit2.InvalidSpecError, ValueError):
        return None
    if ref is None:
        return None
    try:
        target = ref.resolve().target
    except (KeyError, pygit2.GitError):  # a symbolic ref to a missing branch
        return None
    return ObjectId(str(target))


def list_refs(pg: pygit2.Repository, prefix: str = "refs/") -> dict[str, ObjectId]:
    """Every ref under ``prefix`` with the object it points to, read in one pass.

    Symbolic refs are reported with the object their target points to; dangling ones are left out.
    """
    out: dict[str, ObjectId] = {}
    for ref in pg.references.iterator():
        name = ref.name
        if not name.startswith(prefix):
            continue
        target = ref.target
        if isinstance(target, str):  # symbolic
            resolved = read_ref(pg, name)
            if resolved is not None:
                out[name] = resolved
        else:
            out[name] = ObjectId(str(target))
    return out


@contextlib.contextmanager
def _breaker(git_dir: Path) -> Iterator[None]:
    fd = os.open(git_dir / _BREAKER, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _break_stale_lock(git_dir: Path, name: str) -> bool:
    """Remove ``<name>.lock`` if it is older than :data:`STALE_LOCK_SECONDS` (or already gone);
    True when the caller should try to lock again."""
    lock = git_dir / f"{name}.lock"
    with _breaker(git_dir):
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return True
        if age < STALE_LOCK_SECONDS:
            return False
        lock.unlink(missing_ok=True)
    log.warning("removed %s, left %.0f s ago by a writer that died holding it", lock, age)
    return True


def _lock(tx: pygit2.transaction.ReferenceTransaction, name: str, git_dir: Path) -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.0005
    broken = False
    while True:
        try:
            tx.lock_ref(name)
            return
        except pygit2.GitError as exc:
            if time.monotonic() >= deadline:
                if not broken and _break_stale_lock(git_dir, name):
                    broken = True
                    continue
                raise GitFailure(
                    f"ref {name} is locked by another writer",
                    stderr=str(exc),
                    hint="if no other process is writing, a stale .lock file is left: run "
                    "'revisor doctor'",
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def update_refs(
    pg: pygit2.Repository, updates: Sequence[RefUpdate] | Iterable[RefUpdate], message: str = ""
) -> None:
    """Apply ref updates all together, each only if its ref holds the expected value.

    Locks are taken in sorted order (so two writers never deadlock), every expected value is checked
    under the locks, and nothing is written unless every check passes.
    """
    todo = sorted(updates, key=lambda u: u.name)
    names = [u.name for u in todo]
    if len(set(names)) != len(names):
        raise ValueError("each ref may appear only once in one update")
    for u in todo:
        check_ref_name(u.name)
        if not u.name.startswith("refs/"):
            raise ValueError(f"only refs under refs/ are written: {u.name!r}")
    if not todo:
        return
    for u in todo:
        if u.new is not None and pygit2.Oid(hex=u.new) not in pg.odb:
            raise GitFailure(f"cannot point {u.name} at {u.new}: no such object")
    try:
        _apply(pg, todo, message)
    except pygit2.GitError as exc:
        raise GitFailure("ref update failed", stderr=str(exc)) from exc


def _apply(pg: pygit2.Repository, todo: list[RefUpdate], message: str) -> None:
    with pg.transaction() as tx:
        for u in todo:
            _lock(tx, u.name, Path(pg.path))
        for u in todo:
            actual = read_ref(pg, u.name)
            if actual != u.expected:
                raise RefConflict(u.name, u.expected, actual)
        for u in todo:
            if u.new is None:
                if u.expected is not None:
                    tx.remove(u.name)
            else:
                tx.set_target(u.name, pygit2.Oid(hex=u.new), None, message or "revisor")
