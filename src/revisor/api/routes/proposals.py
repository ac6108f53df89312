"""API v1 routes: the proposals Revisor opened on a source — list, show, merge, close.

Why this module exists: the HTTP form of ``revisor proposals``. It goes through the source's
provider (builtin, GitHub, GitLab, Gitea, Gerrit) exactly as the CLI does; merge and close are
attributed to the caller. A merge that git cannot make answers 409 with the conflicting paths.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from revisor.api.deps import (
    Caller,
    Cursor,
    Limit,
    State,
    decode_cursor,
    encode_cursor,
    page_limit,
    source_for,
)
from revisor.api.schemas import (
    MergeabilityOut,
    MergeIn,
    Page,
    ProposalDetailOut,
    ProposalOut,
    problems,
)
from revisor.providers.base import MergeMethod, ProposalStatus
from revisor.services.auth import Action

__all__ = ["router"]

router = APIRouter(tags=["proposals"])

SourceName = Annotated[str, Path(max_length=200)]
Number = Annotated[int, Path(ge=1, le=2**31 - 1, description="The proposal's number.")]


@router.get("/sources/{source}/proposals", response_model=Page[ProposalOut],
            responses=problems(400, 404, 503))
def list_proposals(
    state: State,
    caller: Caller,
    source: SourceName,
    status: Annotated[ProposalStatus | None, Query()] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[ProposalOut]:
    """Proposals Revisor opened on this source, newest first."""
    src = source_for(state, caller, source)
    size = page_limit(state, limit)
    start = 0
    if cursor:
        value = decode_cursor(cursor, "proposals").get("i", 0)
        start = value if isinstance(value, int) and value >= 0 else 0
    found = src.provider.list(status)
    chosen = found[start : start + size]
    more = start + size < len(found)
    return Page[ProposalOut](
        items=[ProposalOut.of(p) for p in chosen],
        next_cursor=encode_cursor("proposals", i=start + size) if more else None,
    )


@router.get("/sources/{source}/proposals/{number}", response_model=ProposalDetailOut,
            responses=problems(404, 503))
def get_proposal(state: State, caller: Caller, source: SourceName,
                 number: Number) -> ProposalDetailOut:
    """One proposal and, while it is open, whether it merges cleanly now."""
    src = source_for(state, caller, source)
    provider = src.provider
    p = provider.get(number)
    merge = provider.mergeability(number) if p.status is ProposalStatus.OPEN else None
    return ProposalDetailOut(
        **ProposalOut.of(p).model_dump(),
        mergeability=MergeabilityOut.of(merge) if merge is not None else None,
    )


@router.post("/sources/{source}/proposals/{number}/merge", response_model=ProposalOut,
             responses=problems(404, 409, 503))
def merge_proposal(
    state: State,
    caller: Caller,
    source: SourceName,
    number: Number,
    body: Annotated[MergeIn | None, Body()] = None,
) -> ProposalOut:
    """Merge it into its target (the target moves with a lease). 409: not open, or conflicts
    (``conflicts`` lists the paths)."""
    src = source_for(state, caller, source, Action.MANAGE_PROPOSAL)
    method = MergeMethod((body or MergeIn()).method)
    return ProposalOut.of(src.provider.merge(number, method, caller.signature()))


@router.post("/sources/{source}/proposals/{number}/close", response_model=ProposalOut,
             responses=problems(404, 409, 503))
def close_proposal(state: State, caller: Caller, source: SourceName,
                   number: Number) -> ProposalOut:
    """Close it without merging."""
    src = source_for(state, caller, source, Action.MANAGE_PROPOSAL)
    return ProposalOut.of(src.provider.close(number, caller.signature()))
