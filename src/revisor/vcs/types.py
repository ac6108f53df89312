"""Typed values returned by the repository abstraction.

Everything ``revisor.vcs`` hands upward is one of these frozen dataclasses or enums, so that no
layer above ever touches a pygit2 object (which must not cross threads) or a loose dict.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NewType

__all__ = [
    "EMPTY_TREE",
    "Change",
    "ChangeKind",
    "Changeset",
    "EntryKind",
    "FileDiff",
    "FileMode",
    "MergeResult",
    "ObjectId",
    "RefUpdate",
    "Signature",
    "TreeEntry",
    "VersionedFile",
]

ObjectId = NewType("ObjectId", str)
"""A full, lower-case hexadecimal object id."""

EMPTY_TREE = ObjectId("4b825dc642cb6eb9a060e54bf8d69288fbee4904")


class FileMode(enum.IntEnum):
    """The modes git stores in trees."""

    FILE = 0o100644
    EXECUTABLE = 0o100755
    SYMLINK = 0o120000
    DIRECTORY = 0o040000
    SUBMODULE = 0o160000


class EntryKind(enum.StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    SUBMODULE = "submodule"

    @classmethod
    def of_mode(cls, mode: int) -> EntryKind:
        if mode == FileMode.DIRECTORY:
            return cls.DIR
        if mode == FileMode.SYMLINK:
            return cls.SYMLINK
        if mode == FileMode.SUBMODULE:
            return cls.SUBMODULE
        return cls.FILE


@dataclass(frozen=True, slots=True)
class Signature:
    """Who did something, and when, with the time zone they did it in."""

    name: str
    email: str
    time: datetime

    @classmethod
    def now(cls, name: str, email: str) -> Signature:
        return cls(name, email, datetime.now(UTC).astimezone())

    @property
    def timestamp(self) -> int:
        return int(self.time.timestamp())

    @property
    def offset_minutes(self) -> int:
        off = self.time.utcoffset() or timedelta(0)
        return int(off.total_seconds() // 60)


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One entry of a directory listing."""

    name: str
    path: str
    kind: EntryKind
    mode: int
    id: ObjectId
    size: int | None  # bytes for files and symlinks; None for directories and submodules


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"
    RENAMED = "renamed"
    COPIED = "copied"
    TYPE_CHANGED = "type-changed"


@dataclass(frozen=True, slots=True)
class Change:
    """What happened to one path between two trees."""

    kind: ChangeKind
    path: str
    old_path: str | None = None  # set for renames and copies (and equal to path otherwise)
    old_mode: int | None = None
    new_mode: int | None = None
    old_id: ObjectId | None = None
    new_id: ObjectId | None = None


@dataclass(frozen=True, slots=True)
class FileDiff:
    """A per-file diff: the change, whether it is binary, and its unified text patch."""

    change: Change
    binary: bool
    patch: str  # unified diff text; for binary files only the header and "Binary files ... differ"
    additions: int
    deletions: int


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The outcome of a three-way merge computed without a working tree.

    ``tree`` is the merged tree id; when ``clean`` is false it is git's tree with conflict markers
    written into the conflicted files (exactly what ``git merge-tree --write-tree`` produces).
    """

    clean: bool
    tree: ObjectId
    conflicts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RefUpdate:
    """One compare-and-swap on a ref: ``expected`` None means "must not exist yet";
    ``new`` None means delete."""

    name: str
    new: ObjectId | None
    expected: ObjectId | None


@dataclass(frozen=True)
class Changeset:
    """A commit, read-only (Amp's ``Changeset``)."""

    id: ObjectId
    tree: ObjectId
    parents: tuple[ObjectId, ...]
    author: Signature
    committer: Signature
    message: str
    _changes: Callable[[], tuple[Change, ...]] = field(repr=False, compare=False)

    @property
    def summary(self) -> str:
        return self.message.split("\n", 1)[0]

    def changes(self) -> tuple[Change, ...]:
        """Changes against the first parent (for a root commit: everything added)."""
        return self._changes()


@dataclass(frozen=True)
class VersionedFile:
    """A file as stored at one revision (Amp's ``VersionedFile``).

    Symlinks and submodules are reported as such and never followed: a symlink's ``data`` is its
    target; a submodule has no data (``id`` is the commit it points at).
    """

    path: str
    mode: int
    kind: EntryKind
    id: ObjectId
    size: int
    _read: Callable[[], bytes] = field(repr=False, compare=False)
    _stream: Callable[[int], Iterator[bytes]] = field(repr=False, compare=False)

    @property
    def data(self) -> bytes:
        """The whole content, in memory. Use :meth:`stream` for big files."""
        return self._read()

    def stream(self, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        """The content in chunks, without holding a big file in memory."""
        return self._stream(chunk_size)

    @property
    def executable(self) -> bool:
        return self.mode == FileMode.EXECUTABLE
