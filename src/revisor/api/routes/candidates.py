"""API v1 routes: version candidates (``/sources/{s}/candidates``).

Why this module exists: the HTTP face of ``services.candidates`` — list, create, read, edit,
compare with the target, rebase, submit and abandon — behaving as ``revisor candidates`` does.
Each route parses, checks permission, calls the service and renders a model of
``api.schemas_candidates``; errors leave as problem+json by class (``api.problems``).

Permissions: reads need ``READ``; creating ``CREATE_CANDIDATE``; editing, rebasing and abandoning
``MANAGE_CANDIDATE`` with the candidate's author as ``owner`` (the user whose commit email is the
author's, ``AuthService.owner_of``); submitting ``SUBMIT_CANDIDATE``. Writes are attributed
to the caller (``caller.signature()``). A rebase that conflicts moved nothing and answers 409 with
the conflicting paths; a submission that conflicts with the target answers 409 the same way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
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
    page_after,
    page_limit,
    source_for,
)
from revisor.api.problems import problem
from revisor.api.schemas import FileDiffOut, Page, problems
from revisor.api.schemas_candidates import (
    CandidateConflictsOut,
    CandidateFileOut,
    CandidateIn,
    CandidateOut,
    CandidatePatchIn,
    RebaseOut,
)
from revisor.db.candidates import Candidate, CandidateStatus
from revisor.errors import InvalidInput
from revisor.services.auth import Action, Principal
from revisor.services.candidates import Candidates

__all__ = ["CandidateId", "candidates_of", "owner_of", "router"]

router = APIRouter(tags=["candidates"])

BASE = "/sources/{source}/candidates"
#: Candidate ids are positive and fit every database's integer column.
CandidateId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The candidate's id.")]


def candidates_of(
    state: ApiState, caller: Principal, source: str, action: Action = Action.READ
) -> Candidates:
    """The candidates of ``source``, after checking the caller may do ``action`` there."""
    return source_for(state, caller, source, action).candidates


def owner_of(state: ApiState, cand: Candidate) -> str | None:
    """The user a candidate belongs to, for ``owner=``: the user whose commit email is its
    author's (None: no user, e.g. created in single-user mode or from the command line)."""
    return state.auth.owner_of(cand.author_email)


def _manage(state: ApiState, caller: Principal, source: str, candidate_id: int) -> Candidates:
    c = candidates_of(state, caller, source)
    cand = c.get(candidate_id)
    authorize(state, caller, Action.MANAGE_CANDIDATE, source, owner=owner_of(state, cand))
    return c


def _after(cursor: str | None, kind: str, key: str) -> object | None:
    return decode_cursor(cursor, kind).get(key) if cursor is not None else None


@router.get(
    BASE,
    response_model=Page[CandidateOut],
    responses=problems(400, 404, 503),
    summary="List candidates, newest first",
)
def list_candidates(
    source: str,
    state: State,
    caller: Caller,
    status: Annotated[
        str | None, Query(max_length=32, description="open, submitted or abandoned.")
    ] = None,
    author: Annotated[
        str | None, Query(max_length=512, description="The author's name or email.")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[CandidateOut]:
    size = page_limit(state, limit)
    before = _after(cursor, "candidates", "before")
    if before is not None and not isinstance(before, int):
        raise InvalidInput("the cursor is not valid", hint="pass next_cursor as it was")
    found = candidates_of(state, caller, source).list(status=status, author=author)
    found.sort(key=lambda c: c.id, reverse=True)
    if before is not None:
        found = [c for c in found if c.id < before]
    page = found[:size]
    more = len(found) > size
    return Page[CandidateOut](
        items=[CandidateOut.of(c) for c in page],
        next_cursor=encode_cursor("candidates", before=page[-1].id) if more else None,
    )


@router.post(
    BASE,
    status_code=201,
    response_model=CandidateOut,
    responses=problems(400, 404, 409, 503),
    summary="Create a candidate at the target branch's current commit",
)
def create_candidate(
    source: str, body: CandidateIn, state: State, caller: Caller, request: Request,
    response: Response,
) -> CandidateOut:
    c = candidates_of(state, caller, source, Action.CREATE_CANDIDATE)
    cand = c.create(
        body.name, body.title, caller.signature(), description=body.description,
        target=body.target, strategy=body.strategy,
    )
    response.headers["Location"] = str(
        request.url_for("candidates.get", source=source, candidate_id=str(cand.id))
    )
    return CandidateOut.of(cand)


@router.get(
    BASE + "/{candidate_id}",
    response_model=CandidateOut,
    responses=problems(404, 503),
    name="candidates.get",
    summary="A candidate",
)
def get_candidate(
    source: str, candidate_id: CandidateId, state: State, caller: Caller
) -> CandidateOut:
    return CandidateOut.of(candidates_of(state, caller, source).get(candidate_id))


@router.patch(
    BASE + "/{candidate_id}",
    response_model=CandidateOut,
    responses=problems(400, 404, 409, 503),
    summary="Change an open candidate's title or description",
)
def patch_candidate(
    source: str, candidate_id: CandidateId, body: CandidatePatchIn, state: State, caller: Caller
) -> CandidateOut:
    c = _manage(state, caller, source, candidate_id)
    return CandidateOut.of(
        c.edit(candidate_id, caller.signature(), title=body.title, description=body.description)
    )


@router.get(
    BASE + "/{candidate_id}/files",
    response_model=Page[CandidateFileOut],
    responses=problems(400, 404, 503),
    summary="The files the candidate changes, against the target's current version",
)
def candidate_files(
    source: str,
    candidate_id: CandidateId,
    state: State,
    caller: Caller,
    include_unchanged: Annotated[
        bool, Query(description="Every other file of the candidate too, as UNCHANGED.")
    ] = False,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[CandidateFileOut]:
    found = candidates_of(state, caller, source).files(
        candidate_id, include_unchanged=include_unchanged
    )
    page, next_cursor = page_after(found, lambda f: f.path, size=page_limit(state, limit),
                                   cursor=cursor, kind="candidate-files")
    return Page[CandidateFileOut](
        items=[CandidateFileOut.of(f) for f in page], next_cursor=next_cursor
    )


@router.get(
    BASE + "/{candidate_id}/diff",
    response_model=Page[FileDiffOut],
    responses=problems(400, 404, 503),
    summary="What the candidate changes against the target (from where it forked), with patches",
)
def candidate_diff(
    source: str,
    candidate_id: CandidateId,
    state: State,
    caller: Caller,
    path: Annotated[
        list[str] | None, Query(max_length=1000, description="Only these paths.")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[FileDiffOut]:
    diffs = candidates_of(state, caller, source).diff(candidate_id, path or None)
    diffs.sort(key=lambda d: d.change.path)
    page, next_cursor = page_after(diffs, lambda d: d.change.path, size=page_limit(state, limit),
                                   cursor=cursor, kind="candidate-diff")
    return Page[FileDiffOut](items=[FileDiffOut.of(d) for d in page], next_cursor=next_cursor)


@router.get(
    BASE + "/{candidate_id}/conflicts",
    response_model=CandidateConflictsOut,
    responses=problems(404, 503),
    summary="Whether the candidate merges into its target's current head (checked now; a "
    "submitted or abandoned candidate answers what was last found)",
)
def candidate_conflicts(
    source: str, candidate_id: CandidateId, state: State, caller: Caller
) -> CandidateConflictsOut:
    c = candidates_of(state, caller, source)
    cand = c.get(candidate_id)
    if cand.status is CandidateStatus.OPEN:
        cand = c.check(candidate_id)
    return CandidateConflictsOut.of(cand)


@router.post(
    BASE + "/{candidate_id}/rebase",
    response_model=RebaseOut,
    responses=problems(404, 409, 503),
    summary="Bring the candidate onto its target's current head (409: conflicts, nothing moved)",
)
def rebase_candidate(
    source: str, candidate_id: CandidateId, state: State, caller: Caller
) -> RebaseOut | JSONResponse:
    c = _manage(state, caller, source, candidate_id)
    result = c.rebase(candidate_id, actor=caller.signature())
    if result.conflicts:
        return problem(
            409,
            f"candidate {candidate_id} conflicts with its target: "
            f"{len(result.conflicts)} path(s); nothing moved",
            type_="merge-conflict",
            hint="resolve the conflicts in a workspace, publish, and rebase again",
            conflicts=list(result.conflicts),
        )
    return RebaseOut.of(result)


@router.post(
    BASE + "/{candidate_id}/submit",
    response_model=CandidateOut,
    responses=problems(404, 409, 503),
    summary="Squash the candidate onto its target through the source's provider",
)
def submit_candidate(
    source: str, candidate_id: CandidateId, state: State, caller: Caller
) -> CandidateOut:
    c = candidates_of(state, caller, source, Action.SUBMIT_CANDIDATE)
    return CandidateOut.of(c.submit(candidate_id, caller.signature()))


@router.post(
    BASE + "/{candidate_id}/abandon",
    response_model=CandidateOut,
    responses=problems(404, 409, 503),
    summary="Give the candidate up (its open proposal is closed)",
)
def abandon_candidate(
    source: str, candidate_id: CandidateId, state: State, caller: Caller
) -> CandidateOut:
    c = _manage(state, caller, source, candidate_id)
    return CandidateOut.of(c.abandon(candidate_id, caller.signature()))
