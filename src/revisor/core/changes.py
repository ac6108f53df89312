"""The changes a caller can ask a transaction to make, as typed values.

The HTTP API, the CLI and library callers all describe edits with these four operations; a
transaction applies them, in order, to its in-memory staging area.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from revisor.vcs import ChangeBuilder, validate_path

__all__ = ["Chmod", "Delete", "FileChange", "Move", "Write", "apply_changes"]


@dataclass(frozen=True)
class Write:
    """Create or replace a file. ``executable`` None keeps the mode of the file replaced."""

    path: str
    content: bytes | BinaryIO
    executable: bool | None = None

    def __post_init__(self) -> None:
        validate_path(self.path)


@dataclass(frozen=True)
class Delete:
    """Delete a file or a whole directory."""

    path: str

    def __post_init__(self) -> None:
        validate_path(self.path)


@dataclass(frozen=True)
class Move:
    """Rename a file or directory to a path that does not exist yet."""

    src: str
    dst: str

    def __post_init__(self) -> None:
        validate_path(self.src)
        validate_path(self.dst)


@dataclass(frozen=True)
class Chmod:
    path: str
    executable: bool

    def __post_init__(self) -> None:
        validate_path(self.path)


FileChange = Write | Delete | Move | Chmod


def apply_changes(builder: ChangeBuilder, changes: Sequence[FileChange]) -> None:
    """Stage ``changes`` in order; the first invalid one raises and nothing is committed."""
    for change in changes:
        match change:
            case Write(path, content, executable):
                builder.write(path, content, executable=executable)
            case Delete(path):
                builder.delete(path)
            case Move(src, dst):
                builder.move(src, dst)
            case Chmod(path, executable):
                builder.chmod(path, executable=executable)
