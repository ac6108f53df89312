"""Read-only snapshots: a view of one commit that never moves (cup's ``View``).

A snapshot is pinned to the commit its revision resolved to when it was opened. Whatever happens
afterwards — the branch moves, the mirror is fetched, other transactions land — it keeps answering
from that commit. It reads objects straight from the repository; nothing is checked out unless a
caller asks for a real directory with :meth:`Snapshot.materialize`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from revisor.errors import GitFailure, PathNotFound
from revisor.store.schemes import Layout, Scheme, host_and_project, project_path
from revisor.store.store import StoreSource
from revisor.vcs import EntryKind, ObjectId, Repository, TreeEntry, validate_dir, validate_path

__all__ = ["Snapshot", "Stat"]


@dataclass(frozen=True)
class Stat:
    """What a path is at the snapshot's commit."""

    path: str
    kind: EntryKind
    mode: int
    size: int | None
    id: ObjectId


class _BlobReader(io.RawIOBase):
    """A read-only binary stream over a blob's chunks; closing it stops the reading early."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._buffer = memoryview(b"")
            close = getattr(self._chunks, "close", None)
            if close is not None:
                # A reader closed half-way stops the process streaming the blob, which then
                # reports the broken pipe: not an error of the caller's.
                with contextlib.suppress(GitFailure):
                    close()
        super().close()


class Snapshot:
    """A read-only view of ``commit`` in ``repo``."""

    def __init__(
        self, repo: Repository, commit: ObjectId, *, source: StoreSource | None = None
    ) -> None:
        self._repo = repo
        self.commit_id = commit
        self.source = source

    def __repr__(self) -> str:
        where = self.source.name if self.source else str(self._repo.path)
        return f"Snapshot({where!r}, {self.commit_id[:12]})"

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    # -- files --------------------------------------------------------------------------------
    def read(self, path: str) -> bytes:
        """The content of the file at ``path`` (a symlink's target for a symlink)."""
        return self._repo.file(self.commit_id, path).data

    def open(self, path: str) -> io.BufferedReader:
        """A binary stream of the file, for big files (constant memory)."""
        f = self._repo.file(self.commit_id, path)
        return io.BufferedReader(_BlobReader(f.stream()), buffer_size=1 << 16)

    def exists(self, path: str) -> bool:
        """True if ``path`` is a file, symlink, submodule or directory here."""
        validate_dir(path)
        return self._repo.exists(self.commit_id, path)

    def stat(self, path: str) -> Stat:
        """Kind, mode, size and object id of ``path`` (the root is ``""``)."""
        validate_dir(path)
        if path == "":
            tree = self._repo.changeset(self.commit_id).tree
            return Stat("", EntryKind.DIR, 0o040000, None, tree)
        parent, _, name = path.rpartition("/")
        for e in self._repo.tree(self.commit_id, parent):
            if e.name == name:
                return Stat(path, e.kind, e.mode, e.size, e.id)
        raise PathNotFound(path, self.commit_id)

    # -- directories --------------------------------------------------------------------------
    def entries(self, path: str = "") -> list[TreeEntry]:
        """The typed entries of directory ``path``."""
        return self._repo.tree(self.commit_id, path)

    def listdir(self, path: str = "") -> list[str]:
        """The names in directory ``path``, sorted."""
        return sorted(e.name for e in self.entries(path))

    def walk(self, path: str = "") -> Iterator[tuple[str, list[str], list[str]]]:
        """Like :func:`os.walk`, top-down: ``(dirpath, dirnames, filenames)`` per directory.

        Symlinks and submodules are listed with the files and never followed.
        """
        validate_dir(path)
        pending = [path]
        while pending:
            current = pending.pop(0)
            dirs: list[str] = []
            files: list[str] = []
            for e in self.entries(current):
                (dirs if e.kind is EntryKind.DIR else files).append(e.name)
            yield current, sorted(dirs), sorted(files)
            pending[0:0] = [f"{current}/{d}" if current else d for d in sorted(dirs)]

    # -- a real directory ---------------------------------------------------------------------
    def materialize(
        self, directory: str | Path, *, scheme: Scheme | str | None = None, path: str = ""
    ) -> Path:
        """Write the snapshot (or its subdirectory ``path``) as read-only files and return where.

        Without ``scheme`` the files go straight into ``directory`` (empty or absent). With
        ``golang`` or ``flat`` they go under ``directory`` at the scheme's path for this source,
        with collisions between sources refused (see :class:`~revisor.store.schemes.Layout`).
        """
        if path:
            validate_path(path)
        dest = Path(directory)
        if scheme is not None:
            if self.source is None:
                raise ValueError("a scheme needs a configured source")
            chosen = Scheme(scheme)
            host, project = host_and_project(self.source.config.remote)
            dest = Layout(dest).place(self.source.name, project_path(chosen, host, project))
        self._repo.materialize(self.commit_id, dest, path=path, read_only=True)
        return dest
