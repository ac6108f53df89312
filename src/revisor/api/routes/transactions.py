"""API v1 route: ``POST /sources/{s}/transactions`` — one atomic change, as ``Source.update``.

Why this module exists: the HTTP form of the library's transaction. The body lists typed changes
(write / delete / move); they are validated before anything starts (a bad path → 400, a file over
``settings.max_file_bytes`` → 413), then one transaction commits, pushes and proposes, attributed
to the caller. An ``Idempotency-Key`` header makes a retry return the first result
(409 while it runs or awaits recovery; a key whose transaction failed without effect may be
retried).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Path, Response

from revisor.api.deps import Caller, State, source_for
from revisor.api.schemas import TransactionIn, TransactionOut, problems
from revisor.errors import InvalidInput
from revisor.services.auth import Action

__all__ = ["router"]

router = APIRouter(tags=["transactions"])

_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_HEX = re.compile(r"^[0-9a-fA-F]{40}$")


@router.post(
    "/sources/{source}/transactions",
    response_model=TransactionOut,
    status_code=201,
    responses={
        200: {"model": TransactionOut, "description": "Nothing changed: {empty: true}"},
        **problems(400, 404, 409, 503),
    },
)
def create_transaction(
    state: State,
    caller: Caller,
    body: TransactionIn,
    response: Response,
    source: Annotated[str, Path(max_length=200)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> TransactionOut:
    """Commit the changes on ``base`` (default: the target branch), push a branch and open a
    proposal (``propose``: false with ``branch`` = the base commits directly, if the source
    allows it). 201 with the commit, 200 with ``empty: true`` when nothing changed, 409 when
    ``expected`` is stale or a ref moved."""
    src = source_for(state, caller, source, Action.TRANSACT)
    if idempotency_key is not None and not _KEY.match(idempotency_key):
        raise InvalidInput("the Idempotency-Key must be 1 to 200 visible ASCII characters")
    if body.expected is not None and not _HEX.match(body.expected):
        raise InvalidInput(f"expected must be a full commit id, not {body.expected!r}")
    changes = body.file_changes(state.settings.max_file_bytes)
    result = src.update(
        body.base,
        body.message,
        caller.signature(),
        changes=changes,
        branch=body.branch,
        propose=body.propose,
        expected=body.expected,
        idempotency_key=idempotency_key,
    )
    if result.empty:
        response.status_code = 200
    return TransactionOut.of(result)
