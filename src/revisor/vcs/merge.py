"""Three-way merges computed by git's own merge-ort, in memory.

(Being implemented.)
"""

from __future__ import annotations

from pathlib import Path

import pygit2

from revisor.vcs.types import MergeResult, ObjectId

__all__ = ["MergeEngine"]


class MergeEngine:
    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir

    def merge(
        self, pg: pygit2.Repository, ours: ObjectId, theirs: ObjectId, *, base: ObjectId | None
    ) -> MergeResult:
        raise NotImplementedError

    def close(self) -> None:
        return None
