"""``revisor.jobs``: the housekeeping jobs (refresh, sync, squash, backup, cleanup, maintain),
the leases that keep them apart, and the runner and scheduler that run and record them.

See ``docs/JOBS.md`` for the coordination rules and their reasoning.
"""

from revisor.jobs.base import (
    Job,
    JobContext,
    JobName,
    JobOutcome,
    Target,
    TargetOutcome,
    all_jobs,
    get_job,
    register,
)
from revisor.jobs.leases import Lease, Leases, candidate_key, new_owner, source_key

__all__ = [
    "Job",
    "JobContext",
    "JobName",
    "JobOutcome",
    "Lease",
    "Leases",
    "Target",
    "TargetOutcome",
    "all_jobs",
    "candidate_key",
    "get_job",
    "new_owner",
    "register",
    "source_key",
]
