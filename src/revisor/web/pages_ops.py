"""Signing in and out, the jobs page and the audit log.

Why this module exists: in multi-user mode a person signs in with the API token an administrator
gave them (``revisor tokens create``); the session keeps who they are, never the token (see
``revisor.web.session``). Single-user mode has no sign-in. The jobs page lists recent runs with
their outcome and progress; the audit log is filtered by person, source and candidate.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from revisor.api.deps import authorize, source_for
from revisor.core.refnames import candidate_ref, workspace_prefix
from revisor.db.audit import AuditEntry
from revisor.errors import Unauthenticated
from revisor.jobs import runner
from revisor.services.auth import Action
from revisor.web.deps import CsrfChecked, Visitor, Web
from revisor.web.listings import job_names, job_runs
from revisor.web.render import href

__all__ = ["router", "safe_next"]

router = APIRouter()

AUDIT_PAGE = 100
JOBS_PAGE = 50
Name = Annotated[str, Query(max_length=200)]


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never ``//host`` or a URL)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x21 or ord(c) == 0x7F for c in target)  # browsers drop tabs, newlines
    ):
        return "/"
    return target


@router.get("/signin")
def signin_form(
    request: Request, web: Web, next: Annotated[str, Query(max_length=4096)] = "/"
) -> Response:
    if not web.state.auth.has_users():
        return RedirectResponse("/", 303)
    return web.renderer.page(request, "signin.html", {"next": safe_next(next), "error": ""})


@router.post("/signin", dependencies=[CsrfChecked])
def signin(
    request: Request, web: Web,
    token: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=4096)] = "/",
) -> Response:
    if not web.state.auth.has_users():
        return RedirectResponse("/", 303)
    try:
        principal = web.state.auth.authenticate(token.strip() or None)
    except Unauthenticated:
        return web.renderer.page(request, "signin.html", {
            "next": safe_next(next),
            "error": "That token was not accepted. Check it, or ask an administrator for a "
                     "new one."}, status=401)
    request.state.web_session_set = web.codec.new(principal)
    return RedirectResponse(safe_next(next), 303)


@router.post("/signout", dependencies=[CsrfChecked])
def signout(request: Request, web: Web) -> Response:
    request.state.web_session_set = web.codec.new()
    if not web.state.auth.has_users():
        return RedirectResponse("/", 303)
    return RedirectResponse(href("/signin", done="signed-out"), 303)


@router.get("/jobs")
def jobs(
    request: Request, web: Web, me: Visitor, job: Name = "", source: Name = "",
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    if source:
        source_for(web.state, me, source, Action.READ)
    else:
        authorize(web.state, me, Action.READ)
    runs = job_runs(web.state.rv, job=job or None, source=source or None, limit=JOBS_PAGE,
                    before=before)
    can_run = web.state.auth.permitted(me, Action.RUN_JOB)
    return web.renderer.page(request, "jobs.html", {
        "runs": runs, "job": job, "source_filter": source, "names": job_names(),
        "can_run": can_run, "more": runs[-1].id if len(runs) == JOBS_PAGE else None})


@router.post("/jobs/run", dependencies=[CsrfChecked])
def run_job(
    web: Web, me: Visitor, name: Annotated[str, Form(max_length=100)],
    source: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Run a job now, to its end (its progress is recorded as it goes)."""
    authorize(web.state, me, Action.RUN_JOB, source or None)
    runner.run_job(web.state.rv, name, source=source or None)
    return RedirectResponse(href("/jobs", done="ran"), 303)


def _about_candidate(entry: AuditEntry, cid: int) -> bool:
    if entry.details.get("candidate") == cid:
        return True
    target = entry.target or ""
    return target == candidate_ref(cid) or target.startswith(workspace_prefix(cid))


@router.get("/audit")
def audit(
    request: Request, web: Web, me: Visitor, user: Name = "", source: Name = "",
    candidate: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    if source:
        source_for(web.state, me, source, Action.READ)
    authorize(web.state, me, Action.READ_AUDIT, source or None)
    wanted = user.strip().lower()
    shown: list[AuditEntry] = []
    cursor = before
    scanned = 0
    while len(shown) < AUDIT_PAGE and scanned < 10_000:
        batch = web.state.rv.audit.query(source=source or None, limit=1000, before_id=cursor)
        if not batch:
            break
        scanned += len(batch)
        for entry in batch:
            if wanted and wanted not in entry.actor.lower():
                continue
            if candidate is not None and not _about_candidate(entry, candidate):
                continue
            shown.append(entry)
            if len(shown) == AUDIT_PAGE:
                break
        cursor = batch[-1].id
    more = shown[-1].id if len(shown) == AUDIT_PAGE else None
    return web.renderer.page(request, "audit.html", {
        "entries": shown, "user": user, "source_filter": source, "candidate": candidate,
        "more": more})
