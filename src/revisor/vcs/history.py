"""History walks that agree with git: ``git log`` order, and the last commit per directory entry.

(Being implemented; see the functions' docstrings for the contract.)
"""

from __future__ import annotations

import pygit2

from revisor.vcs.types import ObjectId

__all__ = ["last_commits", "log"]


def log(
    pg: pygit2.Repository,
    start: ObjectId,
    path: str | None,
    *,
    limit: int | None = None,
    skip: int = 0,
) -> list[ObjectId]:
    """The ids ``git log --skip=<skip> -n <limit> <start> -- <path>`` prints, in its order."""
    raise NotImplementedError


def last_commits(
    pg: pygit2.Repository, start: ObjectId, directory: str, names: list[str]
) -> dict[str, ObjectId]:
    """For each name in ``directory``, what ``git log -1 --format=%H start -- directory/name``
    prints."""
    raise NotImplementedError
