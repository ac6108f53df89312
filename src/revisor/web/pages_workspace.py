"""My workspace: browse and edit files of a candidate, create, delete, roll back, publish, sync —
and the conflicts view, where each conflicting file shows the starting version, the candidate's
and mine side by side, and is resolved by choosing one or editing.

Why this module exists: seed 001's editors change a version candidate through their own
workspace. Saving sends the version the editor started from (its ETag) as a hidden field: when
someone else saved the file meanwhile, the answer is the "changed by someone else" page (412)
showing their version, with the editor's text kept in the form — never a lost update.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from revisor.api.deps import authorize, source_for
from revisor.errors import (
    InvalidInput,
    PreconditionFailed,
    PreconditionRequired,
    WorkspaceNotFound,
)
from revisor.services.auth import Action, Principal
from revisor.services.workspaces import Workspace
from revisor.vcs import EntryKind, validate_dir, validate_path
from revisor.web import content
from revisor.web.deps import CsrfChecked, Visitor, Web
from revisor.web.pages_candidates import CandidateId, candidate_url, in_sync
from revisor.web.render import href

__all__ = ["router"]

router = APIRouter()

WS = "/s/{source}/candidates/{cid}/ws"
PathQ = Annotated[str, Query(max_length=4096)]
PathF = Annotated[str, Form(max_length=4096)]
Text = Annotated[str, Form(max_length=16 * 1024 * 1024)]
Etag = Annotated[str, Form(max_length=200)]


def ws_url(source: str, cid: CandidateId, page: str = "") -> str:
    return candidate_url(source, cid) + "/ws" + (f"/{page}" if page else "")


def _workspace(web: Web, me: Principal, source: str, cid: CandidateId, *, write: bool) -> Workspace:
    src = source_for(web.state, me, source, Action.READ)
    if write:
        authorize(web.state, me, Action.WRITE_WORKSPACE, source, owner=me.user)
    return src.candidates.workspace(cid, me.user, identity=me.signature() if write else None,
                                    create=write)


def _text_of(data: bytes) -> tuple[str, str]:
    """The file as text for a textarea, and its line ending (``crlf`` or ``lf``)."""
    text = data.decode("utf-8")
    return text, "crlf" if "\r\n" in text else "lf"


def _from_form(text: str, eol: str) -> bytes:
    """Browsers send a textarea's lines ending in CRLF: give the file back its own endings."""
    if eol != "crlf":
        text = text.replace("\r\n", "\n")
    return text.encode("utf-8")


@router.get(WS)
def workspace(
    source: str, cid: CandidateId, request: Request, web: Web, me: Visitor, path: PathQ = ""
) -> Response:
    src = source_for(web.state, me, source, Action.READ)
    cand = src.candidates.get(cid)
    path = path.strip("/")
    validate_dir(path)
    can_write = web.state.auth.permitted(me, Action.WRITE_WORKSPACE, source, owner=me.user)
    try:
        ws = src.candidates.workspace(cid, me.user, create=False)
    except WorkspaceNotFound:
        return web.renderer.page(request, "workspace.html", {
            "source": source, "cand": cand, "ws": None, "path": path, "can_write": can_write})
    rec = ws.record()
    entries = sorted(ws.tree(path), key=lambda e: (e.kind is not EntryKind.DIR, e.name))
    return web.renderer.page(request, "workspace.html", {
        "source": source, "cand": cand, "ws": rec, "path": path, "entries": entries,
        "unpublished": ws.unpublished(), "in_sync": in_sync(rec, cand), "can_write": can_write,
        "conflicts": [c.path for c in rec.conflicts]})


@router.post(WS + "/start", dependencies=[CsrfChecked])
def start(source: str, cid: CandidateId, web: Web, me: Visitor) -> Response:
    _workspace(web, me, source, cid, write=True)
    return RedirectResponse(ws_url(source, cid), 303)


@router.get(WS + "/edit")
def edit(
    source: str, cid: CandidateId, request: Request, web: Web, me: Visitor, path: PathQ = ""
) -> Response:
    validate_path(path)
    src = source_for(web.state, me, source, Action.READ)
    cand = src.candidates.get(cid)
    try:
        ws = _workspace(web, me, source, cid, write=False)
    except WorkspaceNotFound:
        return RedirectResponse(ws_url(source, cid), 303)  # the page offers to start editing
    data, etag = ws.read(path)
    ctx: dict[str, object] = {"source": source, "cand": cand, "path": path, "etag": etag,
                              "editable": False}
    if len(data) <= content.MAX_SHOWN and not content.is_binary(data):
        text, eol = _text_of(data)
        ctx.update(editable=True, text=text, eol=eol)
    return web.renderer.page(request, "edit.html", ctx)


@router.post(WS + "/save", dependencies=[CsrfChecked])
def save(
    source: str, cid: CandidateId, request: Request, web: Web, me: Visitor, path: PathF,
    text: Text = "", etag: Etag = "", eol: Annotated[str, Form(max_length=8)] = "lf",
) -> Response:
    validate_path(path)
    ws = _workspace(web, me, source, cid, write=True)
    try:
        ws.write(path, _from_form(text, eol), if_match=etag or None)
    except PreconditionFailed as exc:
        theirs: str | None = None
        if exc.current is not None:
            data, _ = ws.read(path)
            theirs = data.decode("utf-8", "replace")
        return web.renderer.page(request, "edit.html", {
            "source": source, "cand": ws.candidate(), "path": path, "editable": True,
            "text": text.replace("\r\n", "\n"), "eol": eol, "etag": exc.current or "",
            "stale": True, "theirs": theirs}, status=412)
    return RedirectResponse(href(ws_url(source, cid, "edit"), path=path, done="saved"), 303)


@router.post(WS + "/create", dependencies=[CsrfChecked])
def create(
    source: str, cid: CandidateId, request: Request, web: Web, me: Visitor, path: PathF,
    text: Text = "",
) -> Response:
    path = path.strip()
    validate_path(path)
    ws = _workspace(web, me, source, cid, write=True)
    try:
        ws.write(path, _from_form(text, "lf"), if_match=None)
    except PreconditionRequired:
        return web.renderer.error(
            request, 409, f"A file named {path!r} already exists.",
            "Open it from the list of files to change it, or choose another name.",
            title="This file already exists")
    return RedirectResponse(href(ws_url(source, cid, "edit"), path=path, done="created-file"),
                            303)


@router.post(WS + "/delete", dependencies=[CsrfChecked])
def delete(
    source: str, cid: CandidateId, web: Web, me: Visitor, path: PathF, etag: Etag = ""
) -> Response:
    validate_path(path)
    ws = _workspace(web, me, source, cid, write=True)
    ws.delete(path, if_match=etag or None)
    parent = path.rpartition("/")[0]
    return RedirectResponse(href(ws_url(source, cid), path=parent, done="deleted"), 303)


@router.post(WS + "/rollback", dependencies=[CsrfChecked])
def rollback(source: str, cid: CandidateId, web: Web, me: Visitor, path: PathF) -> Response:
    validate_path(path)
    ws = _workspace(web, me, source, cid, write=True)
    kept = ws.rollback(path)
    if kept is None:
        parent = path.rpartition("/")[0]
        return RedirectResponse(href(ws_url(source, cid), path=parent, done="rolled-back"), 303)
    return RedirectResponse(href(ws_url(source, cid, "edit"), path=path, done="rolled-back"), 303)


@router.post(WS + "/publish", dependencies=[CsrfChecked])
def publish(
    source: str, cid: CandidateId, web: Web, me: Visitor,
    message: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    ws = _workspace(web, me, source, cid, write=True)
    result = ws.publish(message.strip() or None)
    done = "publish-conflicts" if result.conflicts else "published" if result.published else (
        "nothing")
    return RedirectResponse(href(ws_url(source, cid), done=done), 303)


@router.post(WS + "/sync", dependencies=[CsrfChecked])
def sync(source: str, cid: CandidateId, web: Web, me: Visitor) -> Response:
    ws = _workspace(web, me, source, cid, write=True)
    result = ws.sync()
    if result.conflicts:
        return RedirectResponse(href(ws_url(source, cid, "conflicts"), done="sync-conflicts"),
                                303)
    return RedirectResponse(href(ws_url(source, cid), done="synced"), 303)


def _side(version: object) -> dict[str, object]:
    data = getattr(version, "data", None)
    if data is None:
        return {"absent": True, "text": "", "binary": False}
    assert isinstance(data, bytes)
    if content.is_binary(data):
        return {"absent": False, "text": "", "binary": True}
    return {"absent": False, "text": data.decode("utf-8"), "binary": False}


@router.get(WS + "/conflicts")
def conflicts(source: str, cid: CandidateId, request: Request, web: Web, me: Visitor) -> Response:
    src = source_for(web.state, me, source, Action.READ)
    cand = src.candidates.get(cid)
    try:
        ws = _workspace(web, me, source, cid, write=False)
    except WorkspaceNotFound:
        return RedirectResponse(ws_url(source, cid), 303)
    items = [
        {"c": c, "base": _side(c.base), "theirs": _side(c.theirs), "ours": _side(c.ours)}
        for c in ws.conflicts()
    ]
    return web.renderer.page(request, "conflicts.html", {
        "source": source, "cand": cand, "items": items})


@router.post(WS + "/resolve", dependencies=[CsrfChecked])
async def resolve(
    source: str, cid: CandidateId, request: Request, web: Web, me: Visitor
) -> Response:
    """Fields per conflicting file ``i``: ``path_i``, ``choice_i`` (ours, theirs, edit) and
    ``text_i`` (the edited content, for ``edit``). Files left without a choice stay open."""
    form = await request.form()
    choices: dict[str, bytes | str] = {}
    for key, value in form.multi_items():
        if not key.startswith("path_") or not isinstance(value, str):
            continue
        i = key.removeprefix("path_")
        choice = form.get(f"choice_{i}")
        if choice in ("ours", "theirs"):
            choices[value] = str(choice)
        elif choice == "edit":
            text = form.get(f"text_{i}")
            if not isinstance(text, str):
                raise InvalidInput(f"no edited text for {value!r}")
            choices[value] = _from_form(text, "lf")

    def work() -> str:
        ws = _workspace(web, me, source, cid, write=True)
        result = ws.resolve(choices)
        return "resolved" if result.done else "partly-resolved"

    done = await run_in_threadpool(work)
    page = "" if done == "resolved" else "conflicts"
    return RedirectResponse(href(ws_url(source, cid, page), done=done), 303)
