"""Writing commits without a working tree: Amp's staging area as an object.

A :class:`ChangeBuilder` stages writes, deletions, moves, copies and mode changes on top of a parent
commit, in memory. Only the directories along changed paths are ever rebuilt, so a commit costs
O(changed paths x depth) whatever the size of the repository. Nothing moves a ref here: the
builder makes objects; the caller moves refs with a compare-and-swap.

A builder belongs to the thread that created it (pygit2 objects must not cross threads).
"""

from __future__ import annotations

from typing import BinaryIO

import pygit2

from revisor.errors import InvalidInput, PathConflict, PathNotFound
from revisor.vcs.names import validate_path
from revisor.vcs.types import EMPTY_TREE, FileMode, ObjectId, Signature

__all__ = ["ChangeBuilder", "to_pygit2_signature"]

_Leaf = tuple[int, pygit2.Oid]  # (mode, id); DIRECTORY mode for a subtree not touched


class _Dir:
    """A directory being edited: the tree it started from plus the entries that differ."""

    __slots__ = ("base", "over")

    def __init__(self, base: pygit2.Tree | None) -> None:
        self.base = base
        self.over: dict[str, _Leaf | _Dir | None] = {}

    def get(self, name: str) -> _Leaf | _Dir | None:
        if name in self.over:
            return self.over[name]
        if self.base is not None and name in self.base:
            obj = self.base[name]
            return (obj.filemode, obj.id)
        return None

    def is_empty(self) -> bool:
        """True when nothing but (recursively) empty directories remains."""
        for name in self.names():
            entry = self.get(name)
            if not isinstance(entry, _Dir) or not entry.is_empty():
                return False
        return True

    def names(self) -> list[str]:
        present = {str(e.name) for e in self.base} if self.base is not None else set()
        for name, entry in self.over.items():
            if entry is None:
                present.discard(name)
            else:
                present.add(name)
        return sorted(present)


def to_pygit2_signature(sig: Signature) -> pygit2.Signature:
    for value, what in ((sig.name, "name"), (sig.email, "email")):
        if any(c in value for c in "<>\n\x00"):
            raise InvalidInput(f"invalid {what} in signature: {value!r}")
    return pygit2.Signature(sig.name, sig.email, sig.timestamp, sig.offset_minutes)


class ChangeBuilder:
    """Stage changes on top of ``parent`` (None for a first commit) and write them as one commit."""

    def __init__(self, pg: pygit2.Repository, parent: ObjectId | None) -> None:
        self._pg = pg
        self.parent = parent
        base_tree = pg[parent].peel(pygit2.Tree) if parent is not None else None
        self._parent_tree = ObjectId(str(base_tree.id)) if base_tree is not None else EMPTY_TREE
        self._root = _Dir(base_tree)

    # -- navigation -------------------------------------------------------------------------
    def _subdir(self, parent: _Dir, name: str, path: str, create: bool) -> _Dir | None:
        entry = parent.get(name)
        if isinstance(entry, _Dir):
            return entry
        if entry is None:
            if not create:
                return None
            sub = _Dir(None)
        elif entry[0] == FileMode.DIRECTORY:
            sub = _Dir(self._pg[entry[1]].peel(pygit2.Tree))
        else:
            if not create:
                return None
            raise PathConflict(path, f"'{name}' is a file, not a directory")
        parent.over[name] = sub
        return sub

    def _parent_of(self, path: str, create: bool) -> tuple[_Dir | None, str]:
        parts = validate_path(path).split("/")
        d: _Dir | None = self._root
        for i, name in enumerate(parts[:-1]):
            assert d is not None
            d = self._subdir(d, name, "/".join(parts[: i + 1]), create)
            if d is None:
                return None, parts[-1]
        return d, parts[-1]

    def _get(self, path: str) -> _Leaf | _Dir | None:
        d, name = self._parent_of(path, create=False)
        return None if d is None else d.get(name)

    # -- reading the staged state -------------------------------------------------------------
    def exists(self, path: str) -> bool:
        """True if ``path`` names a file, symlink, submodule or directory in the staged tree."""
        return self._get(path) is not None

    def mode(self, path: str) -> int | None:
        entry = self._get(path)
        if entry is None:
            return None
        return FileMode.DIRECTORY if isinstance(entry, _Dir) else entry[0]

    def read(self, path: str) -> bytes:
        """The staged content of a file (or a symlink's target)."""
        entry = self._get(path)
        if entry is None or isinstance(entry, _Dir) or entry[0] in (
            FileMode.DIRECTORY,
            FileMode.SUBMODULE,
        ):
            raise PathNotFound(path)
        return bytes(self._pg[entry[1]].read_raw())

    # -- staging --------------------------------------------------------------------------------
    def _put(self, path: str, leaf: _Leaf) -> None:
        d, name = self._parent_of(path, create=True)
        assert d is not None
        current = d.get(name)
        if isinstance(current, _Dir) and current.is_empty():
            current = None  # a directory whose contents were all deleted
        if isinstance(current, _Dir) or (current is not None and current[0] == FileMode.DIRECTORY):
            raise PathConflict(path, "is a directory")
        d.over[name] = leaf

    def write(self, path: str, data: bytes | BinaryIO, *, executable: bool | None = None) -> None:
        """Write a file. ``executable`` None keeps the mode of the file being replaced."""
        validate_path(path)
        if isinstance(data, bytes | bytearray | memoryview):
            oid = self._pg.create_blob(bytes(data))
        elif hasattr(data, "read"):
            oid = self._pg.create_blob_fromiobase(data)  # type: ignore[arg-type]
        else:
            raise InvalidInput(f"content for {path!r} must be bytes or a binary stream")
        if executable is None:
            current = self.mode(path)
            mode = FileMode.EXECUTABLE if current == FileMode.EXECUTABLE else FileMode.FILE
        else:
            mode = FileMode.EXECUTABLE if executable else FileMode.FILE
        self._put(path, (mode, oid))

    def symlink(self, path: str, target: str) -> None:
        """Write a symbolic link whose target is ``target`` (stored, never followed)."""
        validate_path(path)
        if not target or "\x00" in target:
            raise InvalidInput(f"invalid symlink target for {path!r}")
        self._put(path, (FileMode.SYMLINK, self._pg.create_blob(target.encode("utf-8"))))

    def delete(self, path: str) -> None:
        """Delete a file, or a whole directory."""
        d, name = self._parent_of(path, create=False)
        if d is None or d.get(name) is None:
            raise PathNotFound(path)
        d.over[name] = None

    def chmod(self, path: str, *, executable: bool) -> None:
        entry = self._get(path)
        if entry is None:
            raise PathNotFound(path)
        if isinstance(entry, _Dir) or entry[0] not in (FileMode.FILE, FileMode.EXECUTABLE):
            raise PathConflict(path, "only regular files can be made executable or not")
        self._put(path, (FileMode.EXECUTABLE if executable else FileMode.FILE, entry[1]))

    def copy(self, src: str, dst: str) -> None:
        """Copy a file or a directory to a path that does not exist yet."""
        entry = self._get(src)
        if entry is None:
            raise PathNotFound(src)
        if self.exists(dst):
            raise PathConflict(dst, "already exists")
        validate_path(dst)
        if dst.startswith(src + "/"):
            raise PathConflict(dst, f"is inside {src!r}")
        leaf = (FileMode.DIRECTORY, self._write_dir(entry)) if isinstance(entry, _Dir) else entry
        d, name = self._parent_of(dst, create=True)
        assert d is not None
        d.over[name] = leaf

    def move(self, src: str, dst: str) -> None:
        """Move (rename) a file or a directory to a path that does not exist yet."""
        self.copy(src, dst)
        self.delete(src)

    # -- writing ----------------------------------------------------------------------------
    def _write_dir(self, d: _Dir) -> pygit2.Oid:
        tb = self._pg.TreeBuilder(d.base) if d.base is not None else self._pg.TreeBuilder()
        for name, entry in d.over.items():
            if entry is None or (isinstance(entry, _Dir) and not entry.names()):
                if tb.get(name) is not None:
                    tb.remove(name)
                continue
            if isinstance(entry, _Dir):
                sub = self._write_dir(entry)
                if sub == pygit2.Oid(hex=EMPTY_TREE):
                    if tb.get(name) is not None:
                        tb.remove(name)
                    continue
                tb.insert(name, sub, FileMode.DIRECTORY)
            else:
                tb.insert(name, entry[1], entry[0])
        oid: pygit2.Oid = tb.write()
        return oid

    def tree(self) -> ObjectId:
        """Write the staged tree (and its changed subtrees) and return its id."""
        return ObjectId(str(self._write_dir(self._root)))

    @property
    def changed(self) -> bool:
        return self.tree() != self._parent_tree

    def commit(
        self,
        message: str,
        author: Signature,
        committer: Signature | None = None,
        *,
        extra_parents: tuple[ObjectId, ...] = (),
    ) -> ObjectId | None:
        """Write one commit on the parent, or return None when nothing changed.

        Deleting the last file is a change (the commit gets the empty tree); writing the same
        content again is not. No ref is moved.
        """
        tree = self.tree()
        if tree == self._parent_tree and not extra_parents:
            return None
        if not message.endswith("\n"):
            message += "\n"
        parents = [pygit2.Oid(hex=p) for p in (self.parent, *extra_parents) if p is not None]
        oid = self._pg.create_commit(
            None,
            to_pygit2_signature(author),
            to_pygit2_signature(committer or author),
            message,
            pygit2.Oid(hex=tree),
            parents,
        )
        return ObjectId(str(oid))
