"""Shared fixtures: a blank git configuration and helpers that build real repositories with git.

Every test runs with an empty HOME and no global or system git configuration, so nothing from the
developer's settings leaks in, and with fixed identities so results are reproducible.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gitutil import GitRepo

pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture(autouse=True)
def _blank_git_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    home = tmp_path_factory.mktemp("home")
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith("GIT_"):
            del os.environ[key]
    os.environ.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Test Author",
            "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "Test Committer",
            "GIT_COMMITTER_EMAIL": "committer@example.com",
            "LC_ALL": "C",
            "TZ": "UTC",
        }
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    """An empty non-bare repository on branch ``main``, driven with the git CLI."""
    path = tmp_path / "work"
    subprocess.run(
        ["git", "init", "-q", "-b", "main", str(path)], check=True, capture_output=True
    )
    return GitRepo(path)
