"""API v1 routes: jobs (``/jobs``, ``/jobs/runs``, ``POST /jobs/{name}/run``) and the audit log
(``GET /audit``).

Why this module exists: operators and CI start housekeeping jobs and look at what they did, and
admins read who did what; both are thin views of ``revisor.jobs`` (``run_job``, ``RunStore``) and
``db.audit.AuditLog``, the same ones ``revisor jobs`` uses.

``POST /jobs/{name}/run`` starts the run in a background thread and answers 202 with the run's
record (``running``) and a ``Location`` to poll; ``?wait=true`` runs it in the request and
answers 200 with the finished record. Unknown job: 404. Starting a job needs ``RUN_JOB`` (on the
source it is narrowed to, else globally); reading runs needs ``READ``; the audit log needs
``READ_AUDIT`` (on the source asked for, else globally).

``GET /audit`` filters: ``source``, ``action`` (a trailing ``.`` matches a family), ``user`` (an
actor ``Name <email>`` given whole, or a user name matching the actor's name, email or email's
local part), ``candidate`` (entries about it or its workspaces). Newest first; the cursor is the
last id seen. Filters the database cannot apply are applied while scanning, so a page may hold
fewer than ``limit`` entries while ``next_cursor`` is not null.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from revisor.api.deps import (
    ApiState,
    Caller,
    Cursor,
    Limit,
    State,
    authorize,
    decode_cursor,
    encode_cursor,
    page_limit,
)
from revisor.api.problems import problem
from revisor.api.schemas import Page, problems
from revisor.api.schemas_candidates import AuditEntryOut, JobOut, JobRunIn, JobRunOut
from revisor.core.refnames import candidate_ref, workspace_prefix
from revisor.db.audit import AuditEntry
from revisor.db.jobs import JobOutcome
from revisor.errors import InvalidInput, ValidationFailed
from revisor.jobs.base import all_jobs
from revisor.jobs.leases import new_owner
from revisor.jobs.runner import run_job
from revisor.jobs.runs import JobRun, RunStore
from revisor.services.auth import Action

__all__ = ["AUDIT_SCAN", "router"]

router = APIRouter()

AUDIT_SCAN = 5000
"""Audit entries one request scans at most while filtering by user or candidate."""
_BATCH = 1000
_STARTED_WAIT = 30.0  # seconds to wait for a background run's record to appear

_MAX_RUN = 2**31 - 1  # job run ids are 32-bit on every database
_MAX_AUDIT = 2**63 - 1
RunId = Annotated[int, Path(ge=1, le=_MAX_RUN, description="The run's id.")]


# -- jobs -------------------------------------------------------------------------------------
@router.get("/jobs", response_model=list[JobOut], responses=problems(503), tags=["jobs"],
            summary="The jobs this server can run")
def list_jobs(state: State, caller: Caller) -> list[JobOut]:
    authorize(state, caller, Action.READ)
    return [JobOut.of(j) for j in all_jobs()]


@router.get(
    "/jobs/runs",
    response_model=Page[JobRunOut],
    responses=problems(400, 503),
    tags=["jobs"],
    summary="Job runs, newest first",
)
def list_runs(
    state: State,
    caller: Caller,
    job: Annotated[str | None, Query(max_length=64)] = None,
    source: Annotated[str | None, Query(max_length=256)] = None,
    outcome: Annotated[JobOutcome | None, Query()] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[JobRunOut]:
    authorize(state, caller, Action.READ, source)
    size = page_limit(state, limit)
    before = decode_cursor(cursor, "runs").get("before") if cursor is not None else None
    if before is not None and (not isinstance(before, int) or not 1 <= before <= _MAX_RUN):
        raise InvalidInput("the cursor is not valid", hint="pass next_cursor as it was")
    runs = RunStore(state.rv.db).list(job=job, source=source, limit=size + 1, before=before,
                                      outcome=outcome)
    page = runs[:size]
    return Page[JobRunOut](
        items=[JobRunOut.of(r) for r in page],
        next_cursor=encode_cursor("runs", before=page[-1].id) if len(runs) > size else None,
    )


@router.get(
    "/jobs/runs/{run_id}",
    response_model=JobRunOut,
    responses=problems(404, 503),
    tags=["jobs"],
    name="jobs.runs.get",
    summary="One job run, with each target's outcome",
)
def get_run(run_id: RunId, state: State, caller: Caller) -> JobRunOut:
    run = RunStore(state.rv.db).get(run_id)
    authorize(state, caller, Action.READ, run.source)
    return JobRunOut.of(run)


def _background(state: ApiState, name: str, body: JobRunIn, owner: str) -> JobRun:
    """Start the run in a thread; return its record once it exists."""
    started = threading.Event()

    def work() -> None:
        try:
            run_job(state.rv, name, source=body.source, candidate=body.candidate, owner=owner,
                    progress=lambda *_: started.set())
        finally:
            started.set()

    thread = threading.Thread(target=work, name=f"revisor-api-job-{name}", daemon=True)
    threads: list[threading.Thread] = state.extras.setdefault("job_threads", [])
    threads[:] = [t for t in threads if t.is_alive()] + [thread]
    thread.start()
    started.wait(_STARTED_WAIT)
    store = RunStore(state.rv.db)
    for run in store.list(job=name, limit=50):
        if run.owner == owner:
            return run
    raise InvalidInput(f"the job {name!r} did not start", hint="see the server's log")


@router.post(
    "/jobs/{name}/run",
    status_code=202,
    response_model=JobRunOut,
    responses={200: {"model": JobRunOut, "description": "Finished (with ?wait=true)."},
               **problems(400, 404, 503)},
    tags=["jobs"],
    summary="Run a job now (in the background; ?wait=true: in this request)",
)
def start_run(
    name: Annotated[str, Path(max_length=64)],
    state: State,
    caller: Caller,
    request: Request,
    response: Response,
    body: Annotated[JobRunIn | None, Body()] = None,
    wait: Annotated[bool, Query(description="Answer when the run has finished.")] = False,
) -> JobRunOut | JSONResponse:
    body = body or JobRunIn()
    known = {j.name.value for j in all_jobs()}
    if name not in known:
        return problem(404, f"no job {name!r}", type_="job-not-found",
                       hint=f"the jobs are: {', '.join(sorted(known))}")
    if body.candidate is not None and body.source is None:
        raise ValidationFailed([("candidate", "a candidate is named within a source: give "
                                              "the source too")])
    if body.source is not None:
        state.source(body.source)  # 404 before anything is recorded
    authorize(state, caller, Action.RUN_JOB, body.source)
    owner = new_owner(f"api:{name}")
    if wait:
        run = run_job(state.rv, name, source=body.source, candidate=body.candidate, owner=owner)
        response.status_code = 200
    else:
        run = _background(state, name, body, owner)
    response.headers["Location"] = str(request.url_for("jobs.runs.get", run_id=str(run.id)))
    return JobRunOut.of(run)


# -- the audit log ----------------------------------------------------------------------------
def _user_matches(actor: str, user: str) -> bool:
    if "<" in user:
        return actor == user
    name, _, rest = actor.partition(" <")
    email = rest.rstrip(">")
    return user in (name, email, email.partition("@")[0])


def _about(entry: AuditEntry, candidate: int) -> bool:
    if entry.details.get("candidate") == candidate:
        return True
    target = entry.target or ""
    return target == candidate_ref(candidate) or target.startswith(workspace_prefix(candidate))


def _scan(
    state: ApiState, size: int, before: int | None, source: str | None, action: str | None,
    user: str | None, candidate: int | None,
) -> tuple[list[AuditEntry], int | None]:
    """Up to ``size`` matching entries and the cursor after them (None: nothing more)."""
    log = state.rv.audit
    if user is None and candidate is None:
        found = log.query(source=source, action=action, limit=size + 1, before_id=before)
        return found[:size], (found[size - 1].id if len(found) > size else None)
    out: list[AuditEntry] = []
    scanned = 0
    while scanned < AUDIT_SCAN:
        batch = log.query(source=source, action=action, limit=_BATCH, before_id=before)
        for entry in batch:
            scanned += 1
            before = entry.id
            if (user is None or _user_matches(entry.actor, user)) and (
                candidate is None or _about(entry, candidate)
            ):
                out.append(entry)
                if len(out) == size:
                    return out, entry.id
        if len(batch) < _BATCH:
            return out, None
    return out, before


@router.get(
    "/audit",
    response_model=Page[AuditEntryOut],
    responses=problems(400, 503),
    tags=["audit"],
    summary="The audit log, newest first (admins)",
)
def audit(
    state: State,
    caller: Caller,
    source: Annotated[str | None, Query(max_length=256)] = None,
    user: Annotated[str | None, Query(max_length=512, description=(
        "An actor 'Name <email>', or a user name (the actor's name, email or its local "
        "part)."))] = None,
    candidate: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    action: Annotated[str | None, Query(max_length=128, description=(
        "An action (proposal.merge), or a family ending in '.' (workspace.)."))] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[AuditEntryOut]:
    authorize(state, caller, Action.READ_AUDIT, source)
    size = page_limit(state, limit)
    before = decode_cursor(cursor, "audit").get("before") if cursor is not None else None
    if before is not None and (not isinstance(before, int) or not 1 <= before <= _MAX_AUDIT):
        raise InvalidInput("the cursor is not valid", hint="pass next_cursor as it was")
    found, after = _scan(state, size, before, source, action, user, candidate)
    return Page[AuditEntryOut](
        items=[AuditEntryOut.of(e) for e in found],
        next_cursor=encode_cursor("audit", before=after) if after is not None else None,
    )

