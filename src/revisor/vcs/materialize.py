"""Writing a commit's tree into a real directory, for the tools that need one (cup's "mount").

Revisor never needs a working tree itself; this is only for callers that ask. The directory gets
regular files (executable bit kept), symlinks as symlinks (their targets are written, never
followed), and nothing for submodules but an empty directory. With ``read_only`` the files and
directories are made unwritable so a tool cannot change the snapshot by mistake.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

import pygit2

from revisor.vcs.types import FileMode

__all__ = ["make_writable", "materialize_tree", "remove_tree"]

_CHUNK = 1 << 20


def materialize_tree(
    pg: pygit2.Repository, tree: pygit2.Tree, dest: Path, *, read_only: bool = False
) -> int:
    """Write ``tree`` under ``dest`` (which must be empty or absent); return the file count."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty")
    count = _write(pg, tree, dest)
    if read_only:
        _freeze(dest)
    return count


def _write(pg: pygit2.Repository, tree: pygit2.Tree, where: Path) -> int:
    count = 0
    for entry in tree:
        name = str(entry.name)
        mode = int(entry.filemode)
        target = where / name
        if mode == FileMode.DIRECTORY:
            target.mkdir()
            sub = pg[entry.id]
            assert isinstance(sub, pygit2.Tree)
            count += _write(pg, sub, target)
        elif mode == FileMode.SUBMODULE:
            target.mkdir()
        elif mode == FileMode.SYMLINK:
            os.symlink(pg[entry.id].read_raw(), target)
            count += 1
        else:
            data = pg[entry.id].read_raw()
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                         0o755 if mode == FileMode.EXECUTABLE else 0o644)
            with os.fdopen(fd, "wb") as fh:
                view = memoryview(data)
                for i in range(0, len(view), _CHUNK):
                    fh.write(view[i : i + _CHUNK])
            count += 1
    return count


def _freeze(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                st = os.stat(p)
                os.chmod(p, stat.S_IMODE(st.st_mode) & ~0o222)
        os.chmod(dirpath, 0o555)  # noqa: S103 - read-only on purpose


def make_writable(root: Path) -> None:
    """Undo the read-only protection so a prepared directory can be replaced or removed.

    Symbolic links are never followed: a link to a directory outside is left as it is.
    """
    if root.is_symlink() or not root.exists():
        return
    os.chmod(root, 0o755)  # noqa: S103 - restoring the usual mode
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, 0o755)  # noqa: S103
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, stat.S_IMODE(os.lstat(p).st_mode) | 0o200)


def remove_tree(root: Path) -> None:
    """Delete ``root`` with everything in it, read-only parts included, following no symlink."""
    if root.is_symlink() or not root.is_dir():
        return
    with contextlib.suppress(OSError):
        make_writable(root)
    shutil.rmtree(root, ignore_errors=True)
