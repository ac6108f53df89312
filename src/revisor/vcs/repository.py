"""The repository abstraction: Amp's minimal API (seed 002), modernised, for git.

:class:`Repository` is the one object the layers above use to read and write a git repository,
bare or not, without ever needing a working tree. It hands out typed values (``revisor.vcs.types``),
never pygit2 objects, and it is safe to share between threads: each thread gets its own libgit2
handle (libgit2 objects must not cross threads), and a forked child reopens its own.

The work itself lives in small modules: ``names`` (validation), ``refs`` (one-pass listing and
compare-and-swap), ``builder`` (commits without a worktree), ``history`` (git-log order and last
commits), ``merge`` (git's merge-ort), ``diff``. This module wires them together.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import pygit2

from revisor.errors import (
    GitFailure,
    InvalidRevision,
    PathNotFound,
    RepositoryNotFound,
    RevisionNotFound,
)
from revisor.vcs import diff as _diff
from revisor.vcs import history as _history
from revisor.vcs import refs as _refs
from revisor.vcs.builder import ChangeBuilder
from revisor.vcs.gitcli import git_env, run_git
from revisor.vcs.materialize import materialize_tree
from revisor.vcs.merge import MergeEngine
from revisor.vcs.names import check_ref_name, parse_revision, validate_dir, validate_path
from revisor.vcs.types import (
    Change,
    Changeset,
    EntryKind,
    FileDiff,
    FileMode,
    MergeResult,
    ObjectId,
    RefUpdate,
    Signature,
    TreeEntry,
    VersionedFile,
)

__all__ = ["Repository"]

_HEX = re.compile(r"^[0-9a-fA-F]{4,40}$")
_FULL_HEX = re.compile(r"^[0-9a-f]{40}$")
# Blobs above this size are streamed by a git process instead of being inflated in memory.
STREAM_THRESHOLD = 8 << 20


def signature_of(sig: pygit2.Signature) -> Signature:
    from datetime import datetime, timedelta, timezone

    tz = timezone(timedelta(minutes=sig.offset))
    return Signature(sig.name, sig.email, datetime.fromtimestamp(sig.time, tz))


class Repository:
    """A git repository opened by path. Construct with :meth:`open` or :meth:`init`."""

    def __init__(self, path: Path, git_dir: Path, *, bare: bool) -> None:
        self.path = path
        self.git_dir = git_dir
        self.bare = bare
        self._local = threading.local()
        self._merge_engine: MergeEngine | None = None
        self._merge_lock = threading.Lock()

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Repository:
        """Open an existing repository: a bare one, or a directory containing ``.git``."""
        p = Path(path).absolute()
        try:
            pg = pygit2.Repository(str(p), pygit2.enums.RepositoryOpenFlag.NO_SEARCH)
        except (pygit2.GitError, KeyError) as exc:
            raise RepositoryNotFound(str(path)) from exc
        repo = cls(p, Path(pg.path).absolute(), bare=pg.is_bare)
        repo._set_local(pg)
        return repo

    @classmethod
    def init(
        cls, path: str | os.PathLike[str], *, bare: bool = True, initial_branch: str = "main"
    ) -> Repository:
        """Create a repository (bare by default) whose HEAD names ``initial_branch``."""
        check_ref_name(f"refs/heads/{initial_branch}")
        p = Path(path).absolute()
        try:
            pg = pygit2.init_repository(
                str(p), bare=bare, initial_head=f"refs/heads/{initial_branch}"
            )
        except pygit2.GitError as exc:
            raise GitFailure(f"cannot create a repository at {p}", stderr=str(exc)) from exc
        repo = cls(p, Path(pg.path).absolute(), bare=bare)
        repo._set_local(pg)
        return repo

    def _set_local(self, pg: pygit2.Repository) -> None:
        self._local.pg = pg
        self._local.pid = os.getpid()

    @property
    def pg(self) -> pygit2.Repository:
        """This thread's own pygit2 handle. Only ``revisor.vcs`` may use it."""
        pg: pygit2.Repository | None = getattr(self._local, "pg", None)
        if pg is None or self._local.pid != os.getpid():
            pg = pygit2.Repository(str(self.git_dir), pygit2.enums.RepositoryOpenFlag.NO_SEARCH)
            self._set_local(pg)
        return pg

    def close(self) -> None:
        """Stop helper processes. The repository stays usable; they restart when needed."""
        with self._merge_lock:
            if self._merge_engine is not None:
                self._merge_engine.close()
                self._merge_engine = None
        pg = getattr(self._local, "pg", None)
        if pg is not None:
            pg.free()
            self._local.pg = None

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Repository({str(self.path)!r}, bare={self.bare})"

    def git(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run a git command on this repository (internal arguments only; see ``gitcli``)."""
        return run_git(self.git_dir, args, input=input)

    # -- revisions ----------------------------------------------------------------------------
    def _dwim(self, base: str) -> pygit2.Object | pygit2.Commit | None:
        pg = self.pg
        if base == "HEAD":
            try:
                return self._lookup_commit(pg.head.target)
            except (pygit2.GitError, KeyError):
                return None
        if len(base) == 40 and _HEX.match(base):
            obj = pg.get(base)
            if obj is not None:
                return obj
        # git's DWIM order (gitrevisions(7)): refs/ paths are tried before short ids.
        candidates = [f"refs/{base}", f"refs/tags/{base}", f"refs/heads/{base}",
                      f"refs/remotes/{base}", f"refs/remotes/{base}/HEAD"]
        if base.startswith("refs/") or re.fullmatch(r"[A-Z_]+HEAD", base):
            candidates.insert(0, base)
        for name in candidates:
            target = _refs.read_ref(pg, name)
            if target is not None:
                return pg[target]
        if _HEX.match(base) and len(base) < 40:
            try:
                found: pygit2.Object | None = pg.get(base.lower())
            except ValueError as exc:  # ambiguous prefix
                raise InvalidRevision(base, "ambiguous abbreviated object id") from exc
            return found
        return None

    def resolve(self, rev: str) -> ObjectId:
        """The full commit id that ``rev`` names (tags peeled), like ``git rev-parse rev^{commit}``.

        Raises InvalidRevision for anything outside the accepted grammar (without running git) and
        RevisionNotFound when the revision is valid but names nothing here.
        """
        return ObjectId(str(self._commit(rev).id))

    def _commit(self, rev: str) -> pygit2.Commit:
        """The commit object ``rev`` names (see :meth:`resolve`)."""
        pg = self.pg
        if len(rev) == 40 and _FULL_HEX.match(rev):  # the common case, kept cheap
            obj = pg.get(rev)
            if isinstance(obj, pygit2.Commit):
                return obj
        parsed = parse_revision(rev)
        found = self._dwim(parsed.base)
        if found is None:
            raise RevisionNotFound(rev)
        try:
            commit = found.peel(pygit2.Commit)
        except (pygit2.InvalidSpecError, ValueError, pygit2.GitError) as exc:
            raise InvalidRevision(rev, "does not name a commit") from exc
        for kind, n in parsed.steps:
            if kind == "~":
                for _ in range(n):
                    if not commit.parent_ids:
                        raise RevisionNotFound(rev)
                    commit = self._lookup_commit(commit.parent_ids[0])
            elif n > 0:
                if n > len(commit.parent_ids):
                    raise RevisionNotFound(rev)
                commit = self._lookup_commit(commit.parent_ids[n - 1])
        return commit

    def _lookup_commit(self, oid: pygit2.Oid | str) -> pygit2.Commit:
        commit = self.pg[oid]
        assert isinstance(commit, pygit2.Commit)
        return commit

    # -- commits ------------------------------------------------------------------------------
    def changeset(self, rev: str) -> Changeset:
        """The commit ``rev`` names: id, parents, author, committer, message, and its changes."""
        return self._changeset(self._commit(rev))

    def _changeset(self, c: pygit2.Commit) -> Changeset:
        cid = ObjectId(str(c.id))
        parent = ObjectId(str(c.parent_ids[0])) if c.parent_ids else None

        def changes() -> tuple[Change, ...]:
            return _diff.changes(self.pg, parent, cid)

        return Changeset(
            id=cid,
            tree=ObjectId(str(c.tree_id)),
            parents=tuple(ObjectId(str(p)) for p in c.parent_ids),
            author=signature_of(c.author),
            committer=signature_of(c.committer),
            message=c.message,
            _changes=changes,
        )

    # -- trees and files ----------------------------------------------------------------------
    def _entry(self, commit: pygit2.Commit, path: str) -> pygit2.Object | None:
        try:
            obj: pygit2.Object = commit.tree[path]
        except KeyError:
            return None
        return obj

    def _size(self, oid: pygit2.Oid) -> int:
        size: int = self.pg.odb.read_header(oid)[1]
        return size

    def file(self, rev: str, path: str) -> VersionedFile:
        """The file at ``path`` in ``rev``. Directories are not files (PathNotFound)."""
        validate_path(path)
        commit = self._commit(rev)
        obj = self._entry(commit, path)
        if obj is None or int(obj.filemode) == FileMode.DIRECTORY:
            raise PathNotFound(path, rev)
        oid, mode = obj.id, int(obj.filemode)
        kind = EntryKind.of_mode(mode)
        size = 0 if kind is EntryKind.SUBMODULE else self._size(oid)

        owner = threading.get_ident()

        def read() -> bytes:
            if kind is EntryKind.SUBMODULE:
                return b""
            # libgit2 objects must not cross threads: another thread looks the blob up itself
            source = obj if threading.get_ident() == owner else self.pg[oid]
            data: bytes = source.read_raw()
            return data

        def stream(chunk: int) -> Iterator[bytes]:
            if kind is EntryKind.SUBMODULE:
                return iter(())
            if size <= STREAM_THRESHOLD:
                data = read()
                return (data[i : i + chunk] for i in range(0, len(data), chunk))
            return self._stream_blob(str(oid), chunk)

        return VersionedFile(path, mode, kind, ObjectId(str(oid)), size, read, stream)

    def _stream_blob(self, oid: str, chunk: int) -> Iterator[bytes]:
        proc = subprocess.Popen(
            ["git", f"--git-dir={self.git_dir}", "cat-file", "blob", oid],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=git_env(),
        )
        assert proc.stdout is not None
        try:
            while block := proc.stdout.read(chunk):
                yield block
        finally:
            proc.stdout.close()
            if proc.wait() != 0:
                raise GitFailure(f"could not stream blob {oid}")

    def exists(self, rev: str, path: str) -> bool:
        validate_dir(path)
        if path == "":
            return True
        return self._entry(self._commit(rev), path) is not None

    def tree(self, rev: str, path: str = "") -> list[TreeEntry]:
        """The entries of directory ``path`` in ``rev``, in git's tree order."""
        validate_dir(path)
        commit = self._commit(rev)
        if path == "":
            tree = commit.tree
        else:
            obj = self._entry(commit, path)
            if obj is None or int(obj.filemode) != FileMode.DIRECTORY:
                raise PathNotFound(path, rev)
            tree = obj.peel(pygit2.Tree)
        prefix = f"{path}/" if path else ""
        out = []
        for e in tree:
            name = str(e.name)
            kind = EntryKind.of_mode(int(e.filemode))
            size = self._size(e.id) if kind in (EntryKind.FILE, EntryKind.SYMLINK) else None
            out.append(
                TreeEntry(name, prefix + name, kind, int(e.filemode), ObjectId(str(e.id)), size)
            )
        return out

    def materialize(
        self, rev: str, dest: str | os.PathLike[str], *, path: str = "", read_only: bool = False
    ) -> int:
        """Write the tree of ``rev`` (or its subdirectory ``path``) into the empty directory
        ``dest``; return the number of files written. See ``vcs.materialize``."""
        validate_dir(path)
        commit = self._commit(rev)
        tree = commit.tree
        if path:
            obj = self._entry(commit, path)
            if obj is None or int(obj.filemode) != FileMode.DIRECTORY:
                raise PathNotFound(path, rev)
            tree = obj.peel(pygit2.Tree)
        return materialize_tree(self.pg, tree, Path(dest), read_only=read_only)

    def files(self, rev: str, path: str = "") -> dict[str, tuple[int, ObjectId]]:
        """Every non-directory entry under ``path`` in ``rev``, recursively: path → (mode, id)."""
        validate_dir(path)
        commit = self._commit(rev)
        tree = commit.tree
        if path:
            obj = self._entry(commit, path)
            if obj is None or int(obj.filemode) != FileMode.DIRECTORY:
                raise PathNotFound(path, rev)
            tree = obj.peel(pygit2.Tree)
        out: dict[str, tuple[int, ObjectId]] = {}
        stack: list[tuple[str, pygit2.Tree]] = [(f"{path}/" if path else "", tree)]
        while stack:
            prefix, current = stack.pop()
            for e in current:
                mode = int(e.filemode)
                if mode == FileMode.DIRECTORY:
                    sub = self.pg[e.id]
                    assert isinstance(sub, pygit2.Tree)
                    stack.append((f"{prefix}{e.name}/", sub))
                else:
                    out[f"{prefix}{e.name}"] = (mode, ObjectId(str(e.id)))
        return out

    @staticmethod
    def hash_file(path: str | os.PathLike[str]) -> ObjectId:
        """The blob id a file's content would have, computed by streaming, writing nothing."""
        return ObjectId(str(pygit2.hashfile(os.fspath(path))))

    @staticmethod
    def hash_bytes(data: bytes) -> ObjectId:
        """The blob id of ``data``, writing nothing."""
        return ObjectId(str(pygit2.hash(data)))

    # -- history ------------------------------------------------------------------------------
    def log(
        self, rev: str, path: str | None = None, *, limit: int | None = None, skip: int = 0
    ) -> list[Changeset]:
        """Commits as ``git log [--skip] [-n] rev [-- path]`` lists them, in the same order."""
        if path is not None:
            validate_dir(path)
        start = self.resolve(rev)
        ids = _history.log(self.pg, start, path or None, limit=limit, skip=skip)
        return [self._changeset(self._lookup_commit(i)) for i in ids]

    def last_commits(
        self, rev: str, path: str = "", *, names: Collection[str] | None = None
    ) -> dict[str, Changeset]:
        """For each entry of directory ``path``, the commit that last touched it.

        By definition the commit ``git log -1 --format=%H rev -- <path/entry>`` prints; found in
        one walk for the whole directory. ``names`` restricts the answer (and the walk) to those
        entries; names the directory does not have are left out.
        """
        entries = self.tree(rev, path)
        start = self.resolve(rev)
        wanted = [e.name for e in entries if names is None or e.name in names]
        if not wanted:
            return {}
        found = _history.last_commits(self.pg, start, path, wanted)
        cache: dict[ObjectId, Changeset] = {}
        out: dict[str, Changeset] = {}
        for name, cid in found.items():
            if cid not in cache:
                cache[cid] = self._changeset(self._lookup_commit(cid))
            out[name] = cache[cid]
        return out

    def merge_base(self, a: str, b: str) -> ObjectId | None:
        base = self.pg.merge_base(self.resolve(a), self.resolve(b))
        return ObjectId(str(base)) if base is not None else None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        a, d = self.resolve(ancestor), self.resolve(descendant)
        return a == d or bool(self.pg.descendant_of(d, a))

    # -- diff and merge -----------------------------------------------------------------------
    def diff(self, a: str | None, b: str, paths: Sequence[str] | None = None) -> list[FileDiff]:
        """Per-file changes from ``a`` to ``b`` (``a`` None: from the empty tree), with patches."""
        for p in paths or ():
            validate_dir(p)
        old = self.resolve(a) if a is not None else None
        return _diff.diff(self.pg, old, self.resolve(b), list(paths) if paths else None)

    def merge(self, ours: str, theirs: str, *, base: str | None = None) -> MergeResult:
        """Three-way merge in memory, with git's own merge-ort (no working tree, no ref moved).

        With ``base`` None the merge base is computed as ``git merge`` does; otherwise ``base`` is
        used as the common ancestor (a cherry-pick or rebase step).
        """
        o, t = self.resolve(ours), self.resolve(theirs)
        b = self.resolve(base) if base is not None else None
        with self._merge_lock:
            if self._merge_engine is None:
                self._merge_engine = MergeEngine(self.git_dir)
            engine = self._merge_engine
        return engine.merge(self.pg, o, t, base=b)

    # -- writing ------------------------------------------------------------------------------
    def builder(self, parent: str | None) -> ChangeBuilder:
        """A :class:`ChangeBuilder` on top of ``parent`` (None: a first, parentless commit)."""
        return ChangeBuilder(self.pg, self.resolve(parent) if parent is not None else None)

    # -- refs ---------------------------------------------------------------------------------
    def refs(self, prefix: str = "refs/") -> dict[str, ObjectId]:
        """Every ref under ``prefix`` and the object it points to, read in one pass."""
        return _refs.list_refs(self.pg, prefix)

    def ref(self, name: str) -> ObjectId | None:
        """The value of the ref with this exact full name, or None."""
        check_ref_name(name)
        return _refs.read_ref(self.pg, name)

    def set_ref(self, name: str, new: str, *, expected: str | None) -> None:
        """Point ``name`` at ``new`` only if it holds ``expected`` (None: must not exist)."""
        self.update_refs([RefUpdate(name, ObjectId(new), _opt(expected))])

    def delete_ref(self, name: str, *, expected: str) -> None:
        """Delete ``name`` only if it holds ``expected``."""
        self.update_refs([RefUpdate(name, None, ObjectId(expected))])

    def update_refs(self, updates: Sequence[RefUpdate], message: str = "") -> None:
        """Apply several compare-and-swaps atomically: all of them or none."""
        _refs.update_refs(self.pg, updates, message)

    @property
    def head_ref(self) -> str | None:
        """The branch HEAD names (``refs/heads/main``), even when it has no commit yet."""
        try:
            target = self.pg.references["HEAD"].target
        except (KeyError, pygit2.GitError):
            return None
        return target if isinstance(target, str) else None


def _opt(value: str | None) -> ObjectId | None:
    return ObjectId(value) if value is not None else None
