"""Three-way merges computed by git's own merge-ort, in memory.

Why this module exists: Revisor's merges must be git's merges (DESIGN principle 4). libgit2's merge
(what pygit2's ``merge_commits`` runs) is not git's: it differs from merge-ort on renames, directory
renames, recursive virtual bases, mode and type conflicts, and the content of conflicted files —
GitHub moved its merges off libgit2 onto ``git merge-tree --write-tree`` for exactly this reason.
So the merge is git's, run by git, and never touches a working tree, the index or a ref.

Spawning ``git merge-tree`` per merge costs a process start and a repository setup each time, so a
:class:`MergeEngine` keeps ONE long-lived ``git merge-tree --stdin`` process per repository and
talks to it line by line. A request line is ``<ours> <theirs>``; git 2.39 answers (``--stdin``
forces ``-z``; every field below ends with a NUL)::

    <status>            1 clean, 0 conflicted
    <tree>              the merged tree (with conflict markers when conflicted)
    <path>...           conflicted paths, sorted, unique (--name-only); none when clean
    <empty>             start of the informational messages (always present: --messages)
    (<n> <path>*n <type> <text>)...   one entry per message; <text> ends with a newline
    <empty>             end of the record

Two quirks of git 2.39 shape the protocol. It does not flush stdout after a record: the only flush
happens while the messages are printed, just before the record's final terminator. So every
request is followed by a *sentinel* line, ``<ours> <ours>``, whose own messages flush carries the
request's terminator out; the sentinel's record (``1``, a tree, an empty field, no messages) is read
up to its messages, and its terminator arrives at the head of the next response. (Newer gits flush
each record; the protocol reads the same bytes either way.) And an error — an unknown object, a
corrupt repository — makes the process die; the engine then restarts it once and retries.

Conflict markers are labelled with the full commit ids of the two sides, exactly as
``git merge-tree --write-tree <ours-id> <theirs-id>`` labels them, so even conflicted trees agree
byte for byte with git's. Histories without a common ancestor are merged against an empty base
(``--allow-unrelated-histories``), since Revisor merges commits it was asked to merge, not branches
a user might have confused.

An explicit ``base`` (a cherry-pick or rebase step) is not something git 2.39's merge-tree accepts
(``--merge-base`` came in 2.40), so the engine writes three synthetic commits with pygit2: B, a
parentless commit with the base's tree; O and T, the trees of ours and theirs, each with parent B.
The merge base of O and T is exactly B. Their author, committer, date and message are fixed (see
:func:`synthetic_commits`), so the same objects can be rebuilt with ``git commit-tree``; they are
unreachable, harmless, and pruned by ``git gc`` like any dangling object.

The process reads objects lazily, so objects written after it started (loose or in new packs) are
seen: git re-scans the packs when a lookup misses. It reads the repository's configuration once,
when it starts; :meth:`MergeEngine.close` (or ``Repository.close``) makes the next merge start a
fresh one.
"""

from __future__ import annotations

import atexit
import os
import re
import selectors
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import pygit2

from revisor.errors import GitFailure, InvalidRevision, RevisionNotFound
from revisor.vcs.gitcli import GIT, git_env
from revisor.vcs.types import MergeResult, ObjectId

__all__ = ["MergeEngine", "MergeMessage", "MergeReport", "synthetic_commits"]

DEFAULT_TIMEOUT = 300.0
"""Seconds one merge may take before the process is killed and the merge fails."""

_ARGS = (
    "merge-tree",
    "--stdin",
    "-z",
    "--write-tree",
    "--name-only",
    "--messages",
    "--allow-unrelated-histories",
)
_OID = re.compile(rb"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_STDERR_TAIL = 4096

# The fixed identity and messages of the synthetic commits written for an explicit merge base.
SYNTHETIC_NAME = "Revisor"
SYNTHETIC_EMAIL = "revisor@invalid"
SYNTHETIC_MESSAGES = (
    "revisor: merge base\n",
    "revisor: ours\n",
    "revisor: theirs\n",
)


@dataclass(frozen=True, slots=True)
class MergeMessage:
    """One informational or conflict message of git's merge (``git merge-tree --messages``)."""

    paths: tuple[str, ...]
    kind: str  # git's short type: "Auto-merging", "CONFLICT (contents)", "CONFLICT (modify/delete)"
    text: str  # the human-readable line, e.g. "CONFLICT (content): Merge conflict in f"


@dataclass(frozen=True, slots=True)
class MergeReport:
    """A merge's result together with git's messages about it."""

    result: MergeResult
    messages: tuple[MergeMessage, ...]


class _Broken(Exception):
    """The process died, timed out, or wrote something that is not a record."""

    def __init__(self, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


def _path(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _path_key(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


class _FieldReader:
    """NUL-terminated fields from a pipe, each read before a deadline."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buf = bytearray()
        self._pos = 0  # start of the first unread byte in _buf
        self._selector = selectors.DefaultSelector()
        self._selector.register(fd, selectors.EVENT_READ)
        self.deadline = 0.0

    def field(self) -> bytes:
        while (end := self._buf.find(b"\0", self._pos)) < 0:
            self._fill()
        value = bytes(self._buf[self._pos : end])
        self._pos = end + 1
        return value

    def _fill(self) -> None:
        del self._buf[: self._pos]  # compact once per read, not once per field
        self._pos = 0
        remaining = self.deadline - time.monotonic()
        if remaining <= 0 or not self._selector.select(remaining):
            raise _Broken("git merge-tree did not answer in time", timed_out=True)
        chunk = os.read(self._fd, 1 << 16)
        if not chunk:
            raise _Broken("git merge-tree exited")
        self._buf += chunk

    def close(self) -> None:
        self._selector.close()


def _read_record(reader: _FieldReader) -> MergeReport:
    status = reader.field()
    tree = reader.field()
    if status not in (b"0", b"1") or not _OID.fullmatch(tree):
        raise _Broken(f"malformed record: status {status!r}, tree {tree!r}")
    names: set[str] = set()
    while name := reader.field():
        names.add(_path(name))
    messages = []
    while count := reader.field():
        if not count.isdigit():
            raise _Broken(f"malformed message count {count!r}")
        paths = tuple(_path(reader.field()) for _ in range(int(count)))
        kind, text = reader.field(), reader.field()
        messages.append(MergeMessage(paths, _path(kind), _path(text).rstrip("\n")))
    clean = status == b"1"
    if clean and names:
        raise _Broken("clean merge reported conflicted paths")
    conflicts = tuple(sorted(names, key=_path_key))
    result = MergeResult(clean, ObjectId(tree.decode("ascii")), conflicts)
    return MergeReport(result, tuple(messages))


def _read_sentinel(reader: _FieldReader) -> None:
    """Read a self-merge's record up to its (empty) messages; its terminator comes later."""
    status, tree, separator = reader.field(), reader.field(), reader.field()
    if status != b"1" or not _OID.fullmatch(tree) or separator != b"":
        raise _Broken(f"malformed sentinel record: {status!r} {tree!r} {separator!r}")


class _Process:
    """One running ``git merge-tree --stdin`` and the state of its output stream."""

    def __init__(self, git_dir: Path) -> None:
        self.owner = os.getpid()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        try:
            self._popen = subprocess.Popen(
                [GIT, f"--git-dir={git_dir}", *_ARGS],
                bufsize=0,  # unbuffered: nothing is ever left to flush, even in a forked child
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=os.sep,  # outside any work tree: names are never made relative to a cwd
                env=git_env(),
            )
        except OSError as exc:
            self._stderr.close()
            hint = "is git (>= 2.38) installed?"
            raise GitFailure(f"could not run git: {exc}", hint=hint) from exc
        assert self._popen.stdin is not None
        assert self._popen.stdout is not None
        self._stdin = self._popen.stdin
        self._reader = _FieldReader(self._popen.stdout.fileno())
        self._pending_terminator = False  # the last sentinel's terminator is still to come

    def request(self, ours: ObjectId, theirs: ObjectId, timeout: float) -> MergeReport:
        line = f"{ours} {theirs}\n{ours} {ours}\n".encode("ascii")
        try:
            while line:
                line = line[self._stdin.write(line) or 0 :]
        except OSError as exc:  # BrokenPipeError: the process is gone
            raise _Broken(f"cannot write to git merge-tree: {exc}") from exc
        self._reader.deadline = time.monotonic() + timeout
        if self._pending_terminator and self._reader.field() != b"":
            raise _Broken("record does not follow the previous terminator")
        self._pending_terminator = False
        report = _read_record(self._reader)
        _read_sentinel(self._reader)
        self._pending_terminator = True
        return report

    def stderr_tail(self) -> str:
        try:
            size = os.fstat(self._stderr.fileno()).st_size
            data = os.pread(self._stderr.fileno(), _STDERR_TAIL, max(0, size - _STDERR_TAIL))
        except (OSError, ValueError):
            return ""
        return data.decode("utf-8", "replace").strip()

    def stop(self, *, grace: float = 1.0) -> None:
        """End the process: EOF on its stdin, a kill if it lingers past ``grace``; reap it."""
        self._close_pipes()
        try:
            self._popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()
        self._release()

    def kill(self) -> None:
        self._close_pipes()
        self._popen.kill()  # a no-op if it has already exited
        self._popen.wait()
        self._release()

    def abandon(self) -> None:
        """In a forked child: drop our copies of the pipes without touching the parent's git."""
        self._close_pipes()
        self._release()

    def _close_pipes(self) -> None:
        for stream in (self._stdin, self._popen.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def _release(self) -> None:
        self._reader.close()
        self._stderr.close()


def _require_commit(pg: pygit2.Repository, oid: ObjectId) -> None:
    if not _OID.fullmatch(oid.encode("ascii", "replace")):
        raise InvalidRevision(oid, "a merge takes full, lower-case commit ids")
    if not isinstance(pg.get(oid), pygit2.Commit):
        raise RevisionNotFound(oid)


def synthetic_commits(
    pg: pygit2.Repository, base: ObjectId, ours: ObjectId, theirs: ObjectId
) -> tuple[ObjectId, ObjectId]:
    """Write commits O and T whose only merge base is a parentless commit with ``base``'s tree.

    O has ``ours``' tree and T ``theirs``'; all three are signed ``Revisor <revisor@invalid>`` at
    time 0 (+0000) with the fixed :data:`SYNTHETIC_MESSAGES`, so ``git commit-tree`` with the same
    identity, date and message writes the very same objects.
    """
    sig = pygit2.Signature(SYNTHETIC_NAME, SYNTHETIC_EMAIL, 0, 0)
    trees = [pg[oid].peel(pygit2.Commit).tree_id for oid in (base, ours, theirs)]
    b_msg, o_msg, t_msg = SYNTHETIC_MESSAGES
    b = pg.create_commit(None, sig, sig, b_msg, trees[0], [])
    o = pg.create_commit(None, sig, sig, o_msg, trees[1], [b])
    t = pg.create_commit(None, sig, sig, t_msg, trees[2], [b])
    return ObjectId(str(o)), ObjectId(str(t))


class MergeEngine:
    """git's merge-ort for one repository, through one long-lived ``git merge-tree`` process.

    Thread-safe: requests are serialized by a lock. The process starts on the first merge, is
    restarted once if it dies or misbehaves, is stopped by :meth:`close` (also at interpreter exit
    and when the engine is garbage-collected), and is never shared with a forked child.
    """

    def __init__(self, git_dir: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.git_dir = Path(git_dir).absolute()
        self.timeout = timeout
        self._lock = threading.Lock()
        self._proc: _Process | None = None
        _ENGINES.add(self)

    def merge(
        self,
        pg: pygit2.Repository,
        ours: ObjectId,
        theirs: ObjectId,
        *,
        base: ObjectId | None = None,
    ) -> MergeResult:
        """Merge commit ``theirs`` into commit ``ours``, as ``git merge-tree --write-tree`` does.

        ``pg`` is the calling thread's pygit2 handle on the same repository. With ``base`` the
        merge uses that commit as the only common ancestor (a cherry-pick or rebase step).
        """
        return self.merge_report(pg, ours, theirs, base=base).result

    def merge_report(
        self,
        pg: pygit2.Repository,
        ours: ObjectId,
        theirs: ObjectId,
        *,
        base: ObjectId | None = None,
    ) -> MergeReport:
        """Like :meth:`merge`, with git's informational and conflict messages."""
        for oid in (ours, theirs) if base is None else (base, ours, theirs):
            _require_commit(pg, oid)
        if base is not None:
            ours, theirs = synthetic_commits(pg, base, ours, theirs)
        return self._request(ours, theirs)

    def close(self) -> None:
        """Stop the process, if any. The engine stays usable: the next merge starts a new one."""
        with self._lock:
            self._drop()

    def __del__(self) -> None:
        try:
            proc = self._proc
            if proc is not None and proc.owner == os.getpid():
                proc.stop(grace=0.5)
            self._proc = None
        except Exception:  # noqa: S110 - nothing sensible to do during garbage collection
            pass

    # -- internals ----------------------------------------------------------------------------
    def _request(self, ours: ObjectId, theirs: ObjectId) -> MergeReport:
        with self._lock:
            for attempt in (1, 2):
                proc = self._process()
                try:
                    return proc.request(ours, theirs, self.timeout)
                except _Broken as exc:
                    stderr = proc.stderr_tail()
                    self._drop(kill=True)
                    if attempt == 2 or exc.timed_out:
                        raise GitFailure(
                            f"git merge-tree failed merging {theirs} into {ours}: {exc}",
                            stderr=stderr,
                        ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _process(self) -> _Process:
        proc = self._proc
        if proc is not None and proc.owner != os.getpid():  # forked: the pipe is the parent's
            proc.abandon()
            proc = self._proc = None
        if proc is None:
            proc = self._proc = _Process(self.git_dir)
        return proc

    def _drop(self, *, kill: bool = False) -> None:
        """Forget the process: killed, or stopped politely, or (a forked child's) abandoned."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.owner != os.getpid():
            proc.abandon()
        elif kill:
            proc.kill()
        else:
            proc.stop()

    def _shutdown(self) -> None:
        """At interpreter exit: stop the process, without waiting long for a stuck request."""
        locked = self._lock.acquire(timeout=1.0)
        try:
            self._drop(kill=not locked)
        finally:
            if locked:
                self._lock.release()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at fork time
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.abandon()


_ENGINES: weakref.WeakSet[MergeEngine] = weakref.WeakSet()


def _close_all() -> None:
    for engine in list(_ENGINES):
        engine._shutdown()


def _forget_all_in_child() -> None:
    for engine in list(_ENGINES):
        engine._after_fork_in_child()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_forget_all_in_child)
