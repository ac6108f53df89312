"""A temporary directory a transaction's caller may edit freely, read back into objects.

cup hands its controllers a mounted worktree; some tools (template engines, formatters, code
generators) really do need files. A transaction can give them one: its base tree written into a
private temporary directory. When the transaction commits, the directory is compared with the base
tree and every addition, modification, deletion, rename (as deletion + addition; git detects
renames when it diffs) and mode change is staged. Files are hashed by streaming, so unchanged big
files are never loaded.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from revisor.errors import InvalidPath
from revisor.vcs import ChangeBuilder, FileMode, ObjectId, Repository, validate_path
from revisor.vcs.materialize import remove_tree

__all__ = ["Workdir"]


class Workdir:
    """The base tree of ``commit`` written under a new private directory in ``parent``."""

    def __init__(self, repo: Repository, commit: ObjectId, parent: Path, *, tag: str) -> None:
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f"revisor-tx-{tag}-{os.getpid()}-", dir=parent))
        self._repo = repo
        self._commit = commit
        try:
            repo.materialize(commit, self.path)
        except BaseException:
            self.remove()
            raise

    def _scan(self) -> dict[str, tuple[int, Path]]:
        found: dict[str, tuple[int, Path]] = {}
        for dirpath, dirnames, filenames in os.walk(self.path):
            rel_dir = os.path.relpath(dirpath, self.path)
            # symlinked directories are entries, not places to descend into
            for name in list(dirnames):
                if os.path.islink(os.path.join(dirpath, name)):
                    dirnames.remove(name)
                    filenames.append(name)
            for name in filenames:
                full = Path(dirpath) / name
                rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
                try:
                    validate_path(rel)
                except InvalidPath:
                    raise InvalidPath(rel, "the work directory holds a path that cannot be "
                                      "committed") from None
                st = full.lstat()
                if stat.S_ISLNK(st.st_mode):
                    mode = FileMode.SYMLINK
                elif stat.S_ISREG(st.st_mode):
                    mode = FileMode.EXECUTABLE if st.st_mode & 0o100 else FileMode.FILE
                else:
                    raise InvalidPath(rel, "only files and symbolic links can be committed")
                found[rel] = (mode, full)
        return found

    def read_back(self, builder: ChangeBuilder) -> None:
        """Stage every difference between the directory and the base tree into ``builder``."""
        base = {
            p: v for p, v in self._repo.files(self._commit).items() if v[0] != FileMode.SUBMODULE
        }
        now = self._scan()
        for rel in sorted(base.keys() - now.keys()):
            if builder.exists(rel):
                builder.delete(rel)
        for rel, (mode, full) in sorted(now.items()):
            old = base.get(rel)
            if mode == FileMode.SYMLINK:
                target = os.readlink(full)
                same = old is not None and old[0] == mode and old[1] == Repository.hash_bytes(
                    target.encode("utf-8", "surrogateescape")
                )
                if not same:
                    builder.symlink(rel, target)  # replaces a file or a link that was there
                continue
            executable = mode == FileMode.EXECUTABLE
            if old is not None and old[0] in (FileMode.FILE, FileMode.EXECUTABLE) and (
                old[1] == Repository.hash_file(full)
            ):
                if old[0] != mode:
                    builder.chmod(rel, executable=executable)
                continue
            with open(full, "rb") as fh:
                builder.write(rel, fh, executable=executable)

    def remove(self) -> None:
        """Delete the directory, also when a tool left parts of it read-only."""
        remove_tree(self.path)
