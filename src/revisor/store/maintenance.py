"""Keeping mirrors fast: packed refs, repacked objects, a commit-graph with Bloom filters.

LESSONS.md measured `git log -1 -- <path>` over 50k commits at 392 ms plain, 264 ms with a
commit-graph and 29 ms with changed-path Bloom filters; and thousands of loose refs make every
fetch slow. Maintenance packs refs, repacks objects and writes the commit-graph with
``--changed-paths``.

Garbage collection never removes anything Revisor still needs: objects reachable from any ref —
``refs/revisor/*`` included — are kept by git itself, and unreachable objects are pruned only when
older than ``prune_after`` (two weeks by default), so the objects of a transaction in flight
(written, its ref not yet moved) are never pruned under it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from revisor.store.mirror import Mirror
from revisor.vcs.gitcli import run_git

__all__ = ["MaintenanceResult", "maintain"]


@dataclass(frozen=True)
class MaintenanceResult:
    steps: tuple[str, ...]
    seconds: float
    loose_objects_before: int
    loose_objects_after: int
    packs_after: int


def _count(mirror: Mirror) -> tuple[int, int]:
    out = run_git(mirror.path, ["count-objects", "-v"]).stdout.decode()
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return int(fields.get("count", 0)), int(fields.get("packs", 0))


def maintain(mirror: Mirror, *, prune_after: str = "2.weeks.ago") -> MaintenanceResult:
    """Pack refs, repack and gc (keeping every ref's objects), then write the commit-graph."""
    start = time.perf_counter()
    steps = []
    with mirror.locked():
        loose_before, _ = _count(mirror)
        run_git(mirror.path, ["pack-refs", "--all", "--prune"])
        steps.append("pack-refs")
        run_git(mirror.path, ["-c", "gc.writeCommitGraph=false", "gc", "--quiet",
                              f"--prune={prune_after}"])
        steps.append(f"gc --prune={prune_after}")
        run_git(mirror.path, ["commit-graph", "write", "--reachable", "--changed-paths",
                              "--no-progress"])
        steps.append("commit-graph --changed-paths")
        loose_after, packs = _count(mirror)
    return MaintenanceResult(tuple(steps), time.perf_counter() - start, loose_before,
                             loose_after, packs)
