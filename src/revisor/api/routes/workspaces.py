"""API v1 routes: users' workspaces in a candidate
(``/sources/{s}/candidates/{id}/workspaces[/{user}…]``).

Why this module exists: the HTTP face of ``services.workspaces`` — read and save files with
ETags, roll back, publish, sync, see and resolve conflicts — behaving as ``revisor ws`` does.

Decisions (documented in the OpenAPI too):

- Reads never create a workspace: reading one that does not exist yet is 404. Every write
  (``PUT``/``DELETE`` of a file, ``:rollback``, publish, sync, resolve) makes it on first use at
  the candidate's head, and is authored by the caller (``caller.signature()``, remembered as the
  workspace's identity). Writes need ``WRITE_WORKSPACE`` with the URL's user as ``owner``: an
  editor writes only their own workspace; reads need ``READ``.
- ``GET …/files/{path}`` answers a file's raw bytes (``application/octet-stream``) with
  ``ETag: "<blob id>"`` and ``X-Revisor-Mode`` (octal), and 304 for a matching
  ``If-None-Match``; a directory's path (``…/files``, ``…/files/``, ``…/files/docs``) answers a
  JSON listing (:class:`WorkspaceDirOut`), one page at a time.
- ``PUT`` takes the raw bytes as the body (any content type): ``If-Match: "<etag>"`` replaces the
  version read, ``If-Match: *`` whatever version exists, ``If-None-Match: *`` creates a file that
  must not exist; a mismatch is 412 with ``current_etag``; replacing an existing file with no
  precondition is 428; a new file needs none. ``X-Revisor-Executable: true|false`` sets the mode
  (absent: keep it). ``?message=`` sets the commit message. Answers 201 (created) or 200 with the
  new ETag; a file over ``--max-file`` is 413, as in a transaction. ``DELETE`` needs ``If-Match``
  like a replacement.
- ``POST …/files/{path}:rollback`` puts back the candidate's base version of the file (or
  deletes it when the base lacks it); any other ``POST`` on a file is 404.
- ``publish`` is all or nothing: a conflict answers 409 whose ``conflicts`` name each path and the
  users it collides with, and nothing moved.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from revisor.api.deps import (
    ApiState,
    Caller,
    Cursor,
    Limit,
    State,
    authorize,
    decode_cursor,
    encode_cursor,
    none_match,
    page_after,
    page_limit,
    quoted_etag,
)
from revisor.api.problems import problem
from revisor.api.routes.candidates import CandidateId, candidates_of
from revisor.api.schemas import Page, TreeEntryOut, problems
from revisor.api.schemas_candidates import (
    ConflictVersionsOut,
    DeletedOut,
    PublishIn,
    PublishOut,
    ResolveChoiceIn,
    ResolveOut,
    RolledBackOut,
    SyncOut,
    WorkspaceConflictProblem,
    WorkspaceDirOut,
    WorkspaceOut,
    WrittenOut,
)
from revisor.errors import (
    InvalidInput,
    PathNotFound,
    PreconditionFailed,
    PreconditionRequired,
    TooLarge,
    UserNotFound,
    ValidationFailed,
)
from revisor.services.auth import Action, Principal
from revisor.services.candidate_types import ANY
from revisor.services.workspaces import Workspace
from revisor.vcs import EntryKind, Signature

__all__ = ["ROLLBACK_SUFFIX", "router"]

router = APIRouter(tags=["workspaces"])

BASE = "/sources/{source}/candidates/{candidate_id}/workspaces"
WS = BASE + "/{user}"
ROLLBACK_SUFFIX = ":rollback"
STREAM_ABOVE = 1 << 20  # bytes: larger files are streamed, not sent from memory

Message = Annotated[
    str | None, Query(max_length=4096, description="The commit message (default: generated).")
]
IfMatch = Annotated[
    str | None,
    Header(max_length=4096, description='"<etag>" (the version changed) or * (any version).'),
]
IfNoneMatch = Annotated[
    str | None, Header(max_length=4096, description="* : the file must not exist yet.")
]
Executable = Annotated[
    str | None,
    Header(alias="X-Revisor-Executable", max_length=8,
           description="true or false: the file's mode (absent: keep it)."),
]

_BINARY = {"schema": {"type": "string", "format": "binary"}}


async def _raw_body(request: Request) -> bytes:
    """The request body as it came, whatever its content type (the body limit applies)."""
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


# -- helpers ----------------------------------------------------------------------------------
def _reading(
    state: ApiState, caller: Principal, source: str, candidate_id: int, user: str
) -> Workspace:
    """An existing workspace, for reading (WorkspaceNotFound if it was never used)."""
    return candidates_of(state, caller, source).workspace(candidate_id, user, create=False)


def _writing(
    state: ApiState, caller: Principal, source: str, candidate_id: int, user: str
) -> Workspace:
    """The workspace for a write by the caller (made on first use), authored by the caller.

    The owner's own writes set the identity the workspace remembers; someone else's (an admin)
    are authored by them but leave the owner's identity in place (from the user's record, when
    the user exists), so later syncs made on the owner's behalf stay the owner's."""
    src = state.source(source)
    authorize(state, caller, Action.WRITE_WORKSPACE, source, owner=user)
    if caller.user == user:
        return src.candidates.workspace(candidate_id, user, identity=caller.signature())
    try:
        owner: Signature | None = state.auth.principal_for(state.auth.get_user(user)).signature()
    except UserNotFound:
        owner = None
    return src.candidates.workspace(candidate_id, user, identity=owner,
                                    actor=caller.signature())


def _if_match(value: str, ws: Workspace, path: str) -> str:
    """The one ETag (or ``*``) to hand to the service: of a list, the one that is current."""
    text = value.strip()
    if text == ANY:
        return ANY
    tags = [t.strip() for t in text.split(",") if t.strip()]
    if not tags:
        raise InvalidInput("If-Match is empty", hint='send "<etag>" or *')
    if len(tags) > 1:
        current = ws.etag(path)
        for tag in tags:
            if current is not None and tag.strip('"').lower() == current:
                return tag
    return tags[0]


def _executable(value: str | None) -> bool | None:
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise InvalidInput("X-Revisor-Executable must be true or false")


def _file_path(path: str) -> str:
    if not path or path.endswith("/"):
        raise InvalidInput(f"invalid path {path!r}: a file's path is needed here")
    return path


# -- workspaces -------------------------------------------------------------------------------
@router.get(
    BASE,
    response_model=Page[WorkspaceOut],
    responses=problems(400, 404, 503),
    summary="The candidate's workspaces, oldest first",
)
def list_workspaces(
    source: str,
    candidate_id: CandidateId,
    state: State,
    caller: Caller,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[WorkspaceOut]:
    size = page_limit(state, limit)
    offset = decode_cursor(cursor, "workspaces").get("offset") if cursor is not None else 0
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput("the cursor is not valid", hint="pass next_cursor as it was")
    c = candidates_of(state, caller, source)
    records = c.workspaces(candidate_id)
    cand = c.get(candidate_id)
    page = records[offset:offset + size]
    more = len(records) > offset + size
    return Page[WorkspaceOut](
        items=[WorkspaceOut.of(r, cand) for r in page],
        next_cursor=encode_cursor("workspaces", offset=offset + size) if more else None,
    )


@router.get(
    WS,
    response_model=WorkspaceOut,
    responses=problems(400, 404, 503),
    summary="A user's workspace: its head, whether it is in sync, what it has not published",
)
def get_workspace(
    source: str, candidate_id: CandidateId, user: str, state: State, caller: Caller
) -> WorkspaceOut:
    ws = _reading(state, caller, source, candidate_id, user)
    return WorkspaceOut.of(ws.record(), ws.candidate(), ws.unpublished())


# -- files ------------------------------------------------------------------------------------
def _listing(
    state: ApiState, ws: Workspace, head: str, path: str, limit: int | None, cursor: str | None
) -> WorkspaceDirOut:
    page, next_cursor = page_after(ws.ctx.repo.tree(head, path), lambda e: e.name,
                                   size=page_limit(state, limit), cursor=cursor, kind="ws-dir")
    return WorkspaceDirOut(
        path=path, head=head, items=[TreeEntryOut.of(e) for e in page], next_cursor=next_cursor
    )


def _read(
    state: ApiState,
    caller: Principal,
    source: str,
    candidate_id: int,
    user: str,
    path: str,
    if_none_match: str | None,
    limit: int | None,
    cursor: str | None,
) -> Response:
    ws = _reading(state, caller, source, candidate_id, user)
    head = ws.head()
    repo = ws.ctx.repo
    directory = path.rstrip("/")
    if path == "" or path.endswith("/"):
        return JSONResponse(
            _listing(state, ws, head, directory, limit, cursor).model_dump(mode="json")
        )
    try:
        f = repo.file(head, path)
    except PathNotFound:
        if not repo.exists(head, path):
            raise
        return JSONResponse(_listing(state, ws, head, path, limit, cursor).model_dump(mode="json"))
    headers = {"ETag": quoted_etag(f.id), "X-Revisor-Mode": f"{f.mode:06o}",
               "X-Revisor-Kind": f.kind.value}
    if none_match(if_none_match, f.id):
        return Response(status_code=304, headers=headers)
    if f.kind is EntryKind.SUBMODULE or f.size <= STREAM_ABOVE:
        return Response(f.data, media_type="application/octet-stream", headers=headers)
    return StreamingResponse(f.stream(), media_type="application/octet-stream",
                             headers={**headers, "Content-Length": str(f.size)})


_READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": WorkspaceDirOut,
        "description": "A file's raw bytes (with its ETag), or a directory's listing (JSON).",
        "content": {"application/octet-stream": _BINARY},
    },
    304: {"description": "Not modified: If-None-Match names the current version."},
    **problems(400, 404, 503),
}


@router.get(
    WS + "/files",
    response_model=None,
    response_class=Response,
    responses=_READ_RESPONSES,
    summary="The workspace's top directory (a JSON listing)",
)
def list_root(
    source: str,
    candidate_id: CandidateId,
    user: str,
    state: State,
    caller: Caller,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Response:
    return _read(state, caller, source, candidate_id, user, "", None, limit, cursor)


@router.get(
    WS + "/files/{path:path}",
    response_model=None,
    response_class=Response,
    responses=_READ_RESPONSES,
    summary="A file's raw bytes with its ETag, or a directory's listing",
)
def read_file(
    source: str,
    candidate_id: CandidateId,
    user: str,
    path: str,
    state: State,
    caller: Caller,
    if_none_match: IfNoneMatch = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Response:
    return _read(state, caller, source, candidate_id, user, path, if_none_match, limit, cursor)


@router.put(
    WS + "/files/{path:path}",
    status_code=200,
    response_model=WrittenOut,
    responses={
        201: {"model": WrittenOut, "description": "Created: a new file."},
        **problems(400, 404, 409, 412, 413, 428, 503),
    },
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/octet-stream": _BINARY, "*/*": _BINARY}}},
    summary="Save a file (If-Match / If-None-Match); answers its new ETag",
)
def write_file(
    source: str,
    candidate_id: CandidateId,
    user: str,
    path: str,
    state: State,
    caller: Caller,
    body: RawBody,
    response: Response,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
    executable: Executable = None,
    message: Message = None,
) -> WrittenOut:
    path = _file_path(path)
    if len(body) > state.settings.max_file_bytes:  # as for a file of a transaction
        raise TooLarge(f"file {path!r}", len(body), state.settings.max_file_bytes)
    if if_match is not None and if_none_match is not None:
        raise InvalidInput("send If-Match or If-None-Match, not both")
    mode = _executable(executable)
    ws = _writing(state, caller, source, candidate_id, user)
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise InvalidInput("If-None-Match: only * (the file must not exist) is supported")
        current = ws.etag(path)
        if current is not None:
            raise PreconditionFailed(path, None, current)
        try:
            etag = ws.write(path, body, if_match=None, executable=mode, message=message)
        except PreconditionRequired as exc:  # created by someone else meanwhile
            raise PreconditionFailed(path, None, exc.current) from exc
    else:
        wanted = _if_match(if_match, ws, path) if if_match is not None else None
        etag = ws.write(path, body, if_match=wanted, executable=mode, message=message)
    created = if_match is None
    response.status_code = 201 if created else 200
    response.headers["ETag"] = quoted_etag(etag)
    return WrittenOut(path=path, etag=etag, created=created, head=ws.head())


@router.delete(
    WS + "/files/{path:path}",
    response_model=DeletedOut,
    responses=problems(400, 404, 409, 412, 428, 503),
    summary="Delete a file (If-Match: the version deleted, or *)",
)
def delete_file(
    source: str,
    candidate_id: CandidateId,
    user: str,
    path: str,
    state: State,
    caller: Caller,
    if_match: IfMatch = None,
    message: Message = None,
) -> DeletedOut:
    path = _file_path(path)
    ws = _writing(state, caller, source, candidate_id, user)
    wanted = _if_match(if_match, ws, path) if if_match is not None else None
    ws.delete(path, if_match=wanted, message=message)
    return DeletedOut(path=path, head=ws.head())


@router.post(
    WS + "/files/{path:path}",
    response_model=RolledBackOut,
    responses=problems(400, 404, 409, 503),
    summary="POST …/files/{path}:rollback — put back the candidate's base version of a file",
)
def rollback_file(
    source: str,
    candidate_id: CandidateId,
    user: str,
    path: str,
    state: State,
    caller: Caller,
) -> RolledBackOut | JSONResponse:
    if not path.endswith(ROLLBACK_SUFFIX) or path == ROLLBACK_SUFFIX:
        return problem(404, "POST on a file: only '<path>:rollback' is an action here",
                       type_="not-found")
    path = _file_path(path.removesuffix(ROLLBACK_SUFFIX))
    ws = _writing(state, caller, source, candidate_id, user)
    etag = ws.rollback(path)
    return RolledBackOut(path=path, etag=etag, deleted=etag is None, head=ws.head())


# -- publishing, syncing, resolving -----------------------------------------------------------
@router.post(
    WS + "/publish",
    response_model=PublishOut,
    responses={
        **problems(400, 404, 503),
        409: {"model": WorkspaceConflictProblem,
              "description": "Conflicts with the candidate (each path with the users it "
                             "collides with); nothing moved.",
              "content": {"application/problem+json": {}}},
    },
    summary="Merge the workspace's unpublished changes into the candidate",
)
def publish(
    source: str,
    candidate_id: CandidateId,
    user: str,
    state: State,
    caller: Caller,
    body: Annotated[PublishIn | None, Body()] = None,
) -> PublishOut | JSONResponse:
    ws = _writing(state, caller, source, candidate_id, user)
    result = ws.publish(body.message if body is not None else None)
    if result.conflicts:
        listed = ", ".join(c.path for c in result.conflicts[:10])
        return problem(
            409,
            f"not published: {len(result.conflicts)} path(s) conflict with the candidate "
            f"({listed}); nothing moved",
            type_="publish-conflict",
            hint="sync, resolve the conflicts, and publish again",
            conflicts=[c.to_json() for c in result.conflicts],
        )
    return PublishOut.of(result)


@router.post(
    WS + "/sync",
    response_model=SyncOut,
    responses=problems(400, 404, 409, 503),
    summary="Bring the workspace up to date with its candidate, as far as it merges cleanly",
)
def sync(
    source: str, candidate_id: CandidateId, user: str, state: State, caller: Caller
) -> SyncOut:
    return SyncOut.of(_writing(state, caller, source, candidate_id, user).sync())


@router.get(
    WS + "/conflicts",
    response_model=Page[ConflictVersionsOut],
    responses=problems(400, 404, 503),
    summary="Each conflicting path with its base, theirs (the candidate's) and ours versions",
)
def conflicts(
    source: str,
    candidate_id: CandidateId,
    user: str,
    state: State,
    caller: Caller,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[ConflictVersionsOut]:
    found = sorted(_reading(state, caller, source, candidate_id, user).conflicts(),
                   key=lambda c: c.path)
    page, next_cursor = page_after(found, lambda c: c.path, size=page_limit(state, limit),
                                   cursor=cursor, kind="ws-conflicts")
    return Page[ConflictVersionsOut](
        items=[ConflictVersionsOut.of(c) for c in page], next_cursor=next_cursor
    )


@router.post(
    WS + "/resolve",
    response_model=ResolveOut,
    responses=problems(400, 404, 409, 503),
    summary="Resolve conflicting paths: {path: {content | content_base64 | take}}",
)
def resolve(
    source: str,
    candidate_id: CandidateId,
    user: str,
    state: State,
    caller: Caller,
    body: Annotated[dict[str, ResolveChoiceIn], Body(max_length=100_000)],
) -> ResolveOut:
    ws = _writing(state, caller, source, candidate_id, user)
    wanted: dict[str, bytes | Literal["base", "theirs", "ours"]] = {
        path: choice.choice(path) for path, choice in body.items()
    }
    if any(v == "base" for v in wanted.values()):
        versions = {c.path: c for c in ws.conflicts()}
        refused = []
        for path, value in wanted.items():
            if value != "base":
                continue
            found = versions.get(path)
            if found is None:
                refused.append((path, "is not a conflicting path"))
            elif found.base is None:
                refused.append((path, "has no base version: take theirs or ours, or give the "
                                      "content"))
            else:
                wanted[path] = found.base.data
        if refused:
            raise ValidationFailed(refused, hint="list the workspace's conflicts")
    return ResolveOut.of(ws.resolve(wanted))
