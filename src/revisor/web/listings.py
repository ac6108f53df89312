"""What the tree page and the jobs page read, in the UI's own small typed values: the last commit
of each entry (from the last-commit cache) and recent job runs.

Why this module exists: the tree page shows the last change of each entry and fills in
progressively when ``revisor.core.lastcommits`` answers ``partial`` under its time budget (the
rest is computed in the background and stored; the page asks again). The jobs page shows runs
recorded by ``revisor.jobs.runs``. Pages render these values without knowing either store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from revisor.bootstrap import Revisor
from revisor.core.lastcommits import cache_for
from revisor.jobs.base import all_jobs
from revisor.jobs.runs import JobRun, RunStore
from revisor.services.sources import Source
from revisor.vcs import ObjectId

__all__ = ["EntryCommit", "Listing", "RunView", "job_names", "job_runs", "last_commits"]


@dataclass(frozen=True)
class EntryCommit:
    """The last commit that touched one entry, as the tree page shows it."""

    id: str
    summary: str
    author: str
    when: datetime | None


@dataclass(frozen=True)
class Listing:
    entries: Mapping[str, EntryCommit]
    partial: bool


def last_commits(
    rv: Revisor, source: Source, commit: ObjectId, path: str, budget: float | None
) -> Listing:
    """The last commit of each entry of ``path`` at ``commit``, from the persistent cache within
    ``budget`` seconds (``partial``: some are still being found)."""
    listing = cache_for(rv, source.name).listing(commit, path, budget=budget)
    entries = {
        name: EntryCommit(c.id, c.summary, c.author.name, c.author.time)
        for name, c in listing.entries.items()
        if c is not None
    }
    return Listing(entries, listing.partial)


@dataclass(frozen=True)
class RunView:
    """One job run as the jobs page shows it."""

    id: int
    job: str
    target: str
    outcome: str
    started: datetime
    finished: datetime | None
    done: int
    total: int
    message: str
    results: tuple[str, ...]
    error: str


def _view(run: JobRun) -> RunView:
    target = " ".join(
        part for part in (
            f"repository {run.source}" if run.source else "",
            f"candidate {run.candidate}" if run.candidate is not None else "",
        ) if part
    )
    results = tuple(
        f"{r.target}: {r.outcome.value}" + (f" — {r.error or r.summary}" if (r.error or r.summary)
                                            else "")
        for r in run.results[:50]
    )
    return RunView(run.id, run.job, target, run.outcome.value, run.started_at, run.finished_at,
                   run.progress.done, run.progress.total, run.progress.message, results,
                   run.error or "")


def job_runs(
    rv: Revisor, *, job: str | None, source: str | None, limit: int, before: int | None = None
) -> list[RunView]:
    """Recent runs, newest first."""
    runs = RunStore(rv.db).list(job=job, source=source, limit=limit, before=before)
    return [_view(r) for r in runs]


def job_names() -> list[str]:
    return sorted(j.name.value for j in all_jobs())
