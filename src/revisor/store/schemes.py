"""Where repositories go on disk: Zuul's workspace schemes, and a layout that refuses overlaps.

Zuul learnt (seed 003) that naming a checkout ``<host>/<project>`` lets two projects nest —
``example.com/component`` and ``example.com/component/subcomponent`` — and that cloning the second
inside the first corrupts both. Its answer, reproduced here exactly, is three schemes: ``golang``
(``<host>/<project>``, legible, may nest), ``flat`` (the last path component, for people and tools
that want short names) and ``unique`` (``<host>/<first component>/<quote_plus(project)>``, never
nests; the store's mirrors use it). Whatever the scheme, a :class:`Layout` remembers on disk what it
placed where, so no process ever puts a repository inside another one, or inside someone else's
files: it raises :class:`~revisor.errors.LayoutCollision` naming both.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import quote_plus

from revisor.errors import InvalidPath, LayoutCollision, StoreCorrupt
from revisor.store.urls import RemoteUrl, Transport

__all__ = [
    "LOCAL_HOST",
    "Layout",
    "Scheme",
    "host_and_project",
    "project_path",
    "unique_project_name",
]

LOCAL_HOST = "localhost"
MAX_COMPONENT_BYTES = 255  # NAME_MAX on the usual filesystems

REGISTRY_FILE = ".revisor-layout.json"
LOCK_FILE = ".revisor-layout.lock"
_RESERVED_PREFIX = ".revisor-layout"
_REGISTRY_VERSION = 1


class Scheme(enum.StrEnum):
    """Zuul's workspace schemes (``zuul.model.SCHEME_*``)."""

    GOLANG = "golang"
    FLAT = "flat"
    UNIQUE = "unique"


def unique_project_name(project: str) -> tuple[str, str]:
    """Zuul's ``unique_project_name``: (first path component, ``quote_plus(project)``)."""
    return project.split("/")[0], quote_plus(project)


def _check_component(whole: str, part: str) -> None:
    if part == "":
        raise InvalidPath(whole, "has an empty component")
    if part in (".", ".."):
        raise InvalidPath(whole, f"'{part}' components are not allowed")
    if "\x00" in part:
        raise InvalidPath(whole, "contains a NUL character")
    if "/" in part:
        raise InvalidPath(whole, "a host must not contain '/'")
    if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
        raise InvalidPath(whole, f"a component is longer than {MAX_COMPONENT_BYTES} bytes")


def project_path(scheme: Scheme | str, host: str, project: str) -> PurePosixPath:
    """The relative directory of ``project`` on ``host`` under ``scheme``, exactly as Zuul's
    ``workspace_project_path``:

    - ``golang``: ``<host>/<project>``
    - ``flat``: ``<last component of project>``
    - ``unique``: ``<host>/<first component of project>/<quote_plus(project)>``

    Every component of ``host``, ``project`` and the result is checked (no empty, ``.`` or
    ``..`` part, no NUL, at most 255 bytes), so the result never escapes the directory it is
    joined to. For a local source the host is ``localhost`` (see :func:`host_and_project`).
    """
    scheme = Scheme(scheme)
    _check_component(host, host)
    if project == "":
        raise InvalidPath(project, "the project name is empty")
    for part in project.split("/"):
        _check_component(project, part)
    if scheme is Scheme.GOLANG:
        parts = [host, *project.split("/")]
    elif scheme is Scheme.FLAT:
        parts = [project.split("/")[-1]]
    else:
        prefix, name = unique_project_name(project)
        parts = [host, prefix, name]
    whole = "/".join(parts)
    for part in parts:
        _check_component(whole, part)
    return PurePosixPath(*parts)


def host_and_project(remote: RemoteUrl) -> tuple[str, str]:
    """The (host, project) a remote is laid out under.

    ``https://h/org/component.git`` → ``("h", "org/component")``; ``git@h:org/x.git`` →
    ``("h", "org/x")``; a local path or ``file://`` URL → ``("localhost", path without the
    leading '/' and '.git')``. A port other than the transport's default is kept in the host
    (``h:8443``) so that two servers on one machine never share a directory; an IPv6 address is
    written in brackets.
    """
    if remote.transport in (Transport.LOCAL, Transport.FILE):
        return LOCAL_HOST, remote.project
    host = f"[{remote.host}]" if ":" in remote.host else remote.host
    if not remote.default_port:
        host = f"{host}:{remote.port}"
    return host, remote.project


def _relative(rel: PurePosixPath | str) -> PurePosixPath:
    text = str(rel)
    if text.startswith("/"):
        raise InvalidPath(text, "a layout path is relative to the layout's root")
    for part in text.split("/"):
        _check_component(text, part)
    path = PurePosixPath(text)
    if path.parts[0].startswith(_RESERVED_PREFIX):
        raise InvalidPath(text, f"names starting with {_RESERVED_PREFIX!r} are the layout's own")
    return path


def _contains(outer: PurePosixPath, inner: PurePosixPath) -> bool:
    """True if ``inner`` is ``outer`` or lies below it (component-wise, not by string prefix)."""
    return inner.parts[: len(outer.parts)] == outer.parts


def _looks_like_repository(path: Path) -> bool:
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())


class Layout:
    """The repositories placed under ``root``, remembered in ``root/.revisor-layout.json``.

    Every change happens under an exclusive ``flock`` on ``root/.revisor-layout.lock`` (flock
    excludes open file descriptions, so threads of one process exclude each other too) and the
    registry is replaced atomically, so several processes sharing a data directory agree on who
    owns which path. Constructing a Layout does no I/O.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"Layout({str(self.root)!r})"

    @property
    def registry_path(self) -> Path:
        return self.root / REGISTRY_FILE

    # -- public ---------------------------------------------------------------------------------
    def place(self, key: str, rel: PurePosixPath | str) -> Path:
        """Reserve ``root/rel`` for ``key`` and return it (nothing is created there).

        Placing the same key at the same path again returns the same path. Refused with
        :class:`LayoutCollision`: ``rel`` equals, contains or lies inside a path placed for
        another key (in either order); ``key`` is already placed elsewhere; files that the layout
        does not know are at ``rel``, or an ancestor of ``rel`` is a file, a symbolic link or a
        repository.
        """
        key = self._check_key(key)
        path = _relative(rel)
        with self._locked(exclusive=True):
            placed = self._read()
            current = placed.get(key)
            if current == path:
                return self.root.joinpath(*path.parts)
            if current is not None:
                raise LayoutCollision(
                    str(path), str(current), f"{key!r} is already placed at {current}"
                )
            for other_key, other in sorted(placed.items()):
                if other == path:
                    reason = f"it is already {other_key!r}'s place"
                elif _contains(path, other):
                    reason = f"it would contain {other_key!r} at {other}"
                elif _contains(other, path):
                    reason = f"it would be inside {other_key!r} at {other}"
                else:
                    continue
                raise LayoutCollision(f"{path} (for {key!r})", str(other), reason)
            self._check_foreign(path)
            placed[key] = path
            self._write(placed)
        return self.root.joinpath(*path.parts)

    def release(self, key: str) -> PurePosixPath | None:
        """Forget ``key``'s place and return it (None if it had none). Files are not touched."""
        with self._locked(exclusive=True):
            placed = self._read()
            path = placed.pop(key, None)
            if path is not None:
                self._write(placed)
        return path

    def placed(self) -> dict[str, PurePosixPath]:
        """Every key and its relative path, as the registry holds them now."""
        if not self.registry_path.exists():
            return {}
        with self._locked(exclusive=False):
            return self._read()

    def path_of(self, key: str) -> Path | None:
        """``root/rel`` for a placed key, else None."""
        rel = self.placed().get(key)
        return None if rel is None else self.root.joinpath(*rel.parts)

    # -- internals ------------------------------------------------------------------------------
    @staticmethod
    def _check_key(key: str) -> str:
        if not isinstance(key, str) or key == "" or "\x00" in key:
            raise InvalidPath(repr(key), "a layout key is a non-empty string without NUL")
        return key

    def _check_foreign(self, path: PurePosixPath) -> None:
        """Refuse files the registry does not know at, above or below ``root/path``."""
        current = self.root
        for i, part in enumerate(path.parts):
            current = current / part
            prefix = PurePosixPath(*path.parts[: i + 1])
            last = i == len(path.parts) - 1
            if current.is_symlink():
                raise LayoutCollision(str(path), str(prefix), f"{prefix} is a symbolic link")
            if not current.exists():
                return
            if last:
                raise LayoutCollision(
                    str(path), str(prefix), "files the layout does not know are already there"
                )
            if not current.is_dir():
                raise LayoutCollision(str(path), str(prefix), f"{prefix} is a file")
            if _looks_like_repository(current):
                raise LayoutCollision(
                    str(path), str(prefix), f"it would be inside a repository at {prefix}"
                )

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _read(self) -> dict[str, PurePosixPath]:
        where = str(self.registry_path)
        try:
            text = self.registry_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreCorrupt(where, f"cannot be read: {exc}") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StoreCorrupt(where, f"is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != _REGISTRY_VERSION:
            raise StoreCorrupt(where, f"is not a version {_REGISTRY_VERSION} layout registry")
        entries = data.get("placed")
        if not isinstance(entries, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in entries.items()
        ):
            raise StoreCorrupt(where, "'placed' must map keys to relative paths")
        try:
            return {k: _relative(v) for k, v in entries.items()}
        except InvalidPath as exc:
            raise StoreCorrupt(where, f"holds an invalid path: {exc}") from exc

    def _write(self, placed: Mapping[str, PurePosixPath]) -> None:
        data = {
            "version": _REGISTRY_VERSION,
            "placed": {k: str(v) for k, v in sorted(placed.items())},
        }
        payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
        # Writers hold the exclusive lock, so one temporary name per process and thread suffices.
        tmp = self.root / f"{REGISTRY_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.registry_path)
        dir_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
