"""What a route needs beyond its parameters: the opened Revisor, the caller, and permission.

Why this module exists: routes stay thin. ``ApiState`` is built once per application and kept on
``app.state``; ``principal`` authenticates the request (Bearer token, or the web UI's session);
``authorize`` asks ``services.auth`` whether the caller may act on a source.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request

from revisor.api.settings import ServeSettings
from revisor.bootstrap import Revisor
from revisor.errors import InvalidInput, SourceNotFound, ValidationFailed
from revisor.services.auth import Action, AuthService, Principal
from revisor.services.sources import Source

__all__ = [
    "ApiState",
    "Caller",
    "Cursor",
    "Limit",
    "State",
    "authorize",
    "decode_cursor",
    "encode_cursor",
    "get_state",
    "page_limit",
    "principal",
    "source_for",
]


@dataclass
class ApiState:
    """Everything the routes share: built once by ``create_app``."""

    rv: Revisor
    settings: ServeSettings
    auth: AuthService
    extras: dict[str, Any] = field(default_factory=dict)  # the scheduler, metrics, caches

    def source(self, name: str) -> Source:
        if name not in self.rv.config.sources:
            raise SourceNotFound(name)
        return self.rv.source(name)


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.revisor
    return state


State = Annotated[ApiState, Depends(get_state)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return ""  # present but malformed: refused as an unknown token
    return value.strip()


def principal(request: Request, state: State) -> Principal:
    """The authenticated caller (the web UI's session cookie counts, when it set one)."""
    session_principal = getattr(request.state, "principal", None)
    if isinstance(session_principal, Principal):
        return session_principal
    return state.auth.authenticate(_bearer(request))


Caller = Annotated[Principal, Depends(principal)]


def authorize(
    state: ApiState,
    caller: Principal,
    action: Action,
    source: str | None = None,
    *,
    owner: str | None = None,
) -> None:
    state.auth.authorize(caller, action, source, owner=owner)


def source_for(
    state: ApiState, caller: Principal, name: str, action: Action = Action.READ
) -> Source:
    """The named source, after checking the caller may do ``action`` on it."""
    src = state.source(name)
    authorize(state, caller, action, name)
    return src


# -- pagination -------------------------------------------------------------------------------
_MAX_PAGE = ServeSettings().max_page_size

Limit = Annotated[
    int | None,
    Query(ge=1, le=_MAX_PAGE, description="Items per page (default: the server's page size)."),
]
Cursor = Annotated[
    str | None,
    Query(max_length=4096, description="The ``next_cursor`` of the previous page (opaque)."),
]


T = TypeVar("T")


def page_limit(state: ApiState, limit: int | None) -> int:
    """The page size to use: ``limit`` within the server's bound (422 beyond it)."""
    if limit is None:
        return state.settings.page_size
    if limit > state.settings.max_page_size:
        raise ValidationFailed(
            [("limit", f"at most {state.settings.max_page_size}")],
        )
    return limit


def encode_cursor(kind: str, **values: Any) -> str:
    """An opaque cursor: URL-safe base64 of a small JSON object tagged with ``kind``."""
    raw = json.dumps({"k": kind, **values}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def quoted_etag(etag: str) -> str:
    """A blob id as the strong ETag header value."""
    return f'"{etag}"'


def none_match(header: str | None, etag: str) -> bool:
    """Whether ``If-None-Match: header`` matches the blob id ``etag`` (weak comparison, ``*``)."""
    if not header:
        return False
    tags = {t.strip().removeprefix("W/").strip('"').lower() for t in header.split(",")}
    return "*" in tags or etag.lower() in tags


def page_after(
    items: Sequence[T], key: Callable[[T], str], *, size: int, cursor: str | None, kind: str
) -> tuple[list[T], str | None]:
    """Keyset pagination of ``items`` sorted by ``key``: the page after the cursor's key, and the
    cursor of the next page (None on the last one)."""
    after = decode_cursor(cursor, kind).get("after") if cursor is not None else None
    rest = [i for i in items if key(i) > after] if isinstance(after, str) else list(items)
    page = rest[:size]
    more = len(rest) > size
    return page, (encode_cursor(kind, after=key(page[-1])) if more else None)


def decode_cursor(cursor: str, kind: str) -> dict[str, Any]:
    """The values of a cursor made by :func:`encode_cursor` for ``kind``; anything else → 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidInput("the cursor is not valid", hint="pass next_cursor as it was") from None
    if not isinstance(value, dict) or value.get("k") != kind:
        raise InvalidInput("the cursor is not valid here", hint="pass next_cursor as it was")
    return value
