"""When a job is next due: an interval (``every: 5m``) or a cron expression (``cron: */5 * * * *``).

Why this module exists: the scheduler stores each job's next due time in the database and moves
it forward when it claims a run; this is the one place that computes it, from the ``jobs:``
section of the configuration (``revisor.config.JobSchedule``). Cron expressions are evaluated by
``croniter`` in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from revisor.config import JobSchedule

__all__ = ["next_due", "spec_of"]


def spec_of(schedule: JobSchedule) -> str:
    """The schedule as text (``every 60s`` / ``cron */5 * * * *``), stored beside the due time
    so that a changed configuration is noticed."""
    if schedule.cron is not None:
        return f"cron {schedule.cron}"
    assert schedule.every is not None
    return f"every {schedule.every.total_seconds():g}s"


def next_due(schedule: JobSchedule, after: datetime) -> datetime:
    """The first due time strictly after ``after``."""
    after = after.astimezone(UTC)
    if schedule.cron is not None:
        from croniter import croniter  # type: ignore[import-untyped]

        nxt: datetime = croniter(schedule.cron, after).get_next(datetime)
        return nxt.astimezone(UTC)
    assert schedule.every is not None
    return after + schedule.every
