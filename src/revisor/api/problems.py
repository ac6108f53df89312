"""Errors as RFC 9457 problem documents (``application/problem+json``), decided by class.

Why this module exists: the HTTP twin of ``cli.errors``. One table maps Revisor's error tree to
statuses; each problem carries ``type``, ``title``, ``status``, ``detail`` and, where the error has
them, machine-readable fields (``conflicts``, ``current_etag``, ``retry_after``…). Nothing a client
can cause becomes a 500, and no message carries a credential (errors are redacted where raised).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from revisor import errors as e
from revisor.providers.base import MergeConflict

__all__ = [
    "PROBLEM_TYPE_BASE", "install_problem_handlers", "problem", "retry_after_s", "status_for",
]

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://revisor.dev/problems/"
MEDIA_TYPE = "application/problem+json"

# most specific first: the first class that matches decides
_STATUS: tuple[tuple[type[e.RevisorError], int], ...] = (
    (e.Unauthenticated, 401),
    (e.NotAllowed, 403),
    (e.PreconditionRequired, 428),
    (e.TooLarge, 413),
    (e.ValidationFailed, 422),
    (e.InvalidInput, 400),
    (e.NotFound, 404),
    (e.PreconditionFailed, 412),
    (e.Conflict, 409),
    (e.Unavailable, 503),
    (e.GitFailure, 500),
    (e.StoreCorrupt, 500),
)

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
    428: "Precondition Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def status_for(exc: e.RevisorError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def _kebab(name: str) -> str:
    out = [f"-{c.lower()}" if c.isupper() else c for c in name]
    return "".join(out).lstrip("-")


def _default_type(status: int) -> str:
    return _kebab(_TITLES.get(status, "Error").replace(" ", ""))


def retry_after_s(exc: e.Unavailable) -> int:
    """Whole seconds to wait before retrying (at least 1; 5 when the error does not say)."""
    return max(1, round(exc.retry_after or 5))


def _extras(exc: e.RevisorError) -> dict[str, Any]:
    """The machine-readable fields an error carries."""
    out: dict[str, Any] = {}
    if exc.hint:
        out["hint"] = exc.hint
    if isinstance(exc, e.PreconditionFailed):
        out["path"] = exc.path
        out["current_etag"] = f'"{exc.current}"' if exc.current is not None else None
    if isinstance(exc, MergeConflict):
        out["conflicts"] = list(exc.conflicts)
    conflicts = getattr(exc, "conflicts", None)
    if "conflicts" not in out and isinstance(conflicts, list | tuple):
        out["conflicts"] = [c.to_json() if hasattr(c, "to_json") else str(c) for c in conflicts]
    if isinstance(exc, e.RefConflict | e.StaleBase | e.RemoteRefConflict):
        out["ref"] = exc.ref
        out["expected"] = exc.expected
        out["actual"] = exc.actual
    if isinstance(exc, e.Unavailable):
        out["retry_after"] = retry_after_s(exc)  # the same seconds as the Retry-After header
    if isinstance(exc, e.ValidationFailed):
        out["errors"] = [{"field": f, "reason": r} for f, r in exc.problems]
    if isinstance(exc, e.TooLarge):
        out["limit"] = exc.limit
    return {k: v for k, v in out.items() if v is not None or k == "current_etag"}


def problem(
    status: int,
    detail: str,
    *,
    type_: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE
        + (type_ or _kebab(_TITLES.get(status, "error").replace(" ", ""))),
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **fields,
    }
    return JSONResponse(
        body, status_code=status, media_type=MEDIA_TYPE, headers=dict(headers or {})
    )


def problem_for(exc: e.RevisorError) -> JSONResponse:
    status = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, e.Unavailable):
        headers["Retry-After"] = str(retry_after_s(exc))
    if isinstance(exc, e.Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="revisor"'
    if status >= 500:
        log.error("request failed: %s: %s", type(exc).__name__, exc)
    return problem(
        status, str(exc), type_=_kebab(type(exc).__name__), headers=headers, **_extras(exc)
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Every error a route can raise leaves as problem+json."""

    async def on_revisor(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, e.RevisorError)
        return problem_for(exc)

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem(exc.status_code, str(exc.detail), headers=exc.headers)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        return problem(422, "the request is not valid", type_="validation-failed", errors=errors)

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return problem(500, "an unexpected error occurred; it has been logged")

    app.add_exception_handler(e.RevisorError, on_revisor)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)
