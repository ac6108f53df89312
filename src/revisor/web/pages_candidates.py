"""Candidate pages: the dashboard, one candidate (its files, its differences from the target,
everyone's workspaces) and its actions — create, bring up to date (rebase), submit, abandon.

Why this module exists: seed 001's portal shows version candidates to registry administrators;
this is that page on Revisor's candidates service. Every action is a POST with the session's CSRF
token, authorized like the API (``services.auth``), attributed to the signed-in person, and
answered with a redirect to the candidate (post/redirect/get), carrying a short outcome code.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from revisor.api.deps import authorize, source_for
from revisor.db.candidates import Candidate, CandidateStatus, WorkspaceRecord
from revisor.errors import ValidationFailed
from revisor.services.auth import Action, Principal
from revisor.web.deps import CsrfChecked, Visitor, Web
from revisor.web.pages_browse import base, shown_diffs
from revisor.web.render import href

__all__ = ["CandidateId", "candidate_url", "in_sync", "router"]

router = APIRouter()

CandidateId = Annotated[int, Path(ge=1, le=2**62)]

def candidate_url(source: str, cid: int) -> str:
    return f"{base(source)}/candidates/{cid}"


def in_sync(rec: WorkspaceRecord, cand: Candidate) -> bool:
    return rec.base_commit == cand.head_commit and not rec.conflicts


@router.get("/s/{source}/candidates")
def dashboard(
    source: str, request: Request, web: Web, me: Visitor,
    status: Annotated[str, Query(pattern="^(open|submitted|abandoned|all)$")] = "open",
) -> Response:
    src = source_for(web.state, me, source, Action.READ)
    cands = src.candidates.list(status=None if status == "all" else status)
    return web.renderer.page(request, "candidates.html", {
        "source": source, "cands": cands, "status": status,
        "statuses": ["open", "submitted", "abandoned", "all"],
        "can_create": web.state.auth.permitted(me, Action.CREATE_CANDIDATE, source)})


@router.get("/s/{source}/candidates/new")
def new_candidate(source: str, request: Request, web: Web, me: Visitor) -> Response:
    src = source_for(web.state, me, source, Action.CREATE_CANDIDATE)
    return web.renderer.page(request, "candidate_new.html", {
        "source": source, "errors": {}, "values": {"target": src.stored.target_branch}})


@router.post("/s/{source}/candidates", dependencies=[CsrfChecked])
def create_candidate(
    source: str, request: Request, web: Web, me: Visitor,
    name: Annotated[str, Form(max_length=200)] = "",
    title: Annotated[str, Form(max_length=1000)] = "",
    description: Annotated[str, Form(max_length=10_000)] = "",
    target: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    src = source_for(web.state, me, source, Action.CREATE_CANDIDATE)
    try:
        cand = src.candidates.create(name, title, me.signature(), description=description,
                                     target=target or None)
    except ValidationFailed as exc:
        return web.renderer.page(request, "candidate_new.html", {
            "source": source, "errors": dict(exc.problems),
            "values": {"name": name, "title": title, "description": description,
                       "target": target}}, status=422)
    return RedirectResponse(href(candidate_url(source, cand.id), done="created"), 303)


@router.get("/s/{source}/candidates/{cid}")
def candidate(
    source: str, cid: CandidateId, request: Request, web: Web, me: Visitor,
    view: Annotated[str, Query(pattern="^(unified|split)$")] = "unified",
) -> Response:
    src = source_for(web.state, me, source, Action.READ)
    cands = src.candidates
    cand = cands.get(cid)
    files = cands.files(cid)
    diffs = cands.diff(cid)
    records = cands.workspaces(cid)
    workspaces = [{"rec": w, "in_sync": in_sync(w, cand)} for w in records]
    mine = next((w for w in records if w.user == me.user), None)
    auth = web.state.auth
    owner = auth.owner_of(cand.author_email)
    can = {
        "manage": auth.permitted(me, Action.MANAGE_CANDIDATE, source, owner=owner),
        "submit": auth.permitted(me, Action.SUBMIT_CANDIDATE, source, owner=owner),
        "write": auth.permitted(me, Action.WRITE_WORKSPACE, source, owner=me.user),
    }
    return web.renderer.page(request, "candidate.html", {
        "source": source, "cand": cand, "files": files, "view": view, "can": can,
        "diffs": shown_diffs(diffs), "workspaces": workspaces, "mine": mine,
        "open": cand.status is CandidateStatus.OPEN,
        "conflicted": sorted({f.path for f in files if f.conflicted} | set(cand.conflicts)),
    })


def _manage(web: Web, me: Principal, source: str, cid: CandidateId, action: Action) -> Candidate:
    src = source_for(web.state, me, source, Action.READ)
    cand = src.candidates.get(cid)
    # whose candidate it is: the user whose commit e-mail is its author's (as the API decides)
    owner = web.state.auth.owner_of(cand.author_email)
    authorize(web.state, me, action, source, owner=owner)
    return cand


@router.post("/s/{source}/candidates/{cid}/rebase", dependencies=[CsrfChecked])
def rebase(source: str, cid: CandidateId, web: Web, me: Visitor) -> Response:
    _manage(web, me, source, cid, Action.MANAGE_CANDIDATE)
    result = web.state.rv.source(source).candidates.rebase(cid, actor=me.signature())
    done = "rebase-conflicts" if result.conflicts else "rebased" if result.moved else "uptodate"
    return RedirectResponse(href(candidate_url(source, cid), done=done), 303)


@router.post("/s/{source}/candidates/{cid}/submit", dependencies=[CsrfChecked])
def submit(source: str, cid: CandidateId, web: Web, me: Visitor) -> Response:
    _manage(web, me, source, cid, Action.SUBMIT_CANDIDATE)
    web.state.rv.source(source).candidates.submit(cid, me.signature())
    return RedirectResponse(href(candidate_url(source, cid), done="submitted"), 303)


@router.post("/s/{source}/candidates/{cid}/abandon", dependencies=[CsrfChecked])
def abandon(source: str, cid: CandidateId, web: Web, me: Visitor) -> Response:
    _manage(web, me, source, cid, Action.MANAGE_CANDIDATE)
    web.state.rv.source(source).candidates.abandon(cid, me.signature())
    return RedirectResponse(href(candidate_url(source, cid), done="abandoned"), 303)
