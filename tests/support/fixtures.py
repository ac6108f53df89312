"""Pytest fixtures for tests that need real remotes served over smart HTTP.

Registered as a plugin from ``tests/conftest.py`` so any test can ask for ``http_git`` (a started
:class:`~tests.support.githttp.GitHttpServer`) and ``make_remote`` (bare repositories with a first
commit, served by it) without importing anything. Servers are always stopped after the test, hung
requests included, so a failing test cannot leave threads or git processes behind.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.githttp import GitHttpServer, HangingTCPServer

__all__ = ["MakeRemote", "hanging_tcp", "http_git", "http_git_root", "make_remote"]

#: ``make_remote(files=None, *, name=None, branch="main", message="initial commit")``
#: -> ``(bare repository path, http url)``.
MakeRemote = Callable[..., tuple[Path, str]]

_FIXED_DATE = "1700000000 +0000"


@pytest.fixture
def http_git_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory whose bare repositories ``http_git`` serves."""
    return tmp_path_factory.mktemp("http-git-root")


@pytest.fixture
def http_git(http_git_root: Path) -> Iterator[GitHttpServer]:
    """A started, anonymous, push-enabled smart-HTTP git server over ``http_git_root``."""
    server = GitHttpServer(http_git_root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hanging_tcp() -> Iterator[HangingTCPServer]:
    """A TCP listener that accepts connections and never answers (read timeouts)."""
    server = HangingTCPServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _git(*args: str, cwd: Path | None = None) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": _FIXED_DATE,
        "GIT_COMMITTER_DATE": _FIXED_DATE,
        "GIT_TERMINAL_PROMPT": "0",
    }
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, env=env, check=False, timeout=60
    )
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")


@pytest.fixture
def make_remote(
    http_git: GitHttpServer, http_git_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> MakeRemote:
    """Factory: a bare repository under the served root with one commit holding ``files``.

    ``make_remote({"README.md": "hi"}, name="team/app.git")`` returns the bare repository's path
    and its URL on ``http_git``. Names default to ``repo1.git``, ``repo2.git``, ...; ``files``
    defaults to a single ``README.md``; an empty mapping makes a repository without commits.
    """
    counter = itertools.count(1)

    def make(
        files: Mapping[str, str | bytes] | None = None,
        *,
        name: str | None = None,
        branch: str = "main",
        message: str = "initial commit",
    ) -> tuple[Path, str]:
        name = name or f"repo{next(counter)}.git"
        bare = http_git_root / name
        if bare.exists():
            raise ValueError(f"remote {name!r} already exists")
        bare.parent.mkdir(parents=True, exist_ok=True)
        _git("init", "-q", "--bare", "-b", branch, str(bare))
        contents = {"README.md": "hello\n"} if files is None else dict(files)
        if contents:
            work = tmp_path_factory.mktemp("remote-seed")
            _git("init", "-q", "-b", branch, str(work))
            for rel, content in contents.items():
                target = work / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content.encode() if isinstance(content, str) else content)
            _git("add", "-A", cwd=work)
            _git("commit", "-q", "-m", message, cwd=work)
            _git("push", "-q", str(bare), f"HEAD:refs/heads/{branch}", cwd=work)
        return bare, http_git.url_for(name)

    return make
