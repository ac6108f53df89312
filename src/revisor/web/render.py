"""Rendering pages: the Jinja2 environment, links that survive any path or ref, plain-word times.

Why this module exists: every page builds links to other pages with a revision and a path in the
query string. File names with spaces, ``#``, ``%``, ``?``, ``&`` or any Unicode, and refs with
slashes, must survive the round trip, so every link is built here, by :func:`href`, which
percent-encodes each value (UTF-8) and never hand-joins strings. Templates are autoescaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from revisor import __version__
from revisor.web.session import Session, SessionCodec

__all__ = ["Renderer", "age", "breadcrumbs", "href", "short"]


def href(route: str, /, **params: object) -> str:
    """``route`` (a route path: its own segments quoted by the caller) with the query
    parameters whose values are not None, each percent-encoded as UTF-8 (``/`` kept readable)."""
    query = "&".join(
        f"{quote(k, safe='')}={quote(str(v), safe='/')}"
        for k, v in params.items()
        if v is not None and v != ""
    )
    return f"{route}?{query}" if query else route


def seg(value: str | int) -> str:
    """One URL path segment (a source name, an id)."""
    return quote(str(value), safe="")


def short(commit: str | None) -> str:
    return (commit or "")[:10]


def age(when: datetime | None, *, now: datetime | None = None) -> str:
    """"3 hours ago": how long ago, in one plain unit."""
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400),
                       ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def iso(when: datetime | None) -> str:
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat(timespec="seconds")


def breadcrumbs(path: str) -> list[tuple[str, str]]:
    """``a/b/c`` → ``[("a", "a"), ("b", "a/b"), ("c", "a/b/c")]``: each name and its path."""
    out: list[tuple[str, str]] = []
    if not path:
        return out
    parts = path.split("/")
    for i, name in enumerate(parts):
        out.append((name, "/".join(parts[: i + 1])))
    return out


def size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"


FLASH = {
    "created": "The candidate was created.",
    "rebased": "The candidate now includes the latest changes of its target.",
    "uptodate": "The candidate already had the latest changes of its target.",
    "rebase-conflicts": "The candidate could not take the latest changes of its target: "
                        "some files were changed on both sides.",
    "submitted": "The candidate was submitted.",
    "abandoned": "The candidate was abandoned.",
    "saved": "Saved.",
    "created-file": "The file was created.",
    "deleted": "The file was deleted.",
    "rolled-back": "The file was rolled back to the candidate's starting version.",
    "published": "Your changes were published to the candidate.",
    "nothing": "There was nothing to publish.",
    "publish-conflicts": "Your changes could not be published: someone else changed the same "
                         "files. Sync, then resolve the conflicts.",
    "synced": "Your workspace now has everyone's published changes.",
    "sync-conflicts": "Some published changes conflict with yours: resolve them below.",
    "resolved": "The conflicts are resolved. You can publish now.",
    "partly-resolved": "Some conflicts are still open.",
    "signed-out": "You are signed out.",
    "ran": "The job ran.",
}


PAGE_HEADERS = {
    # only this site's own script, styles and images; never inside another site's frame
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

TITLES = {
    400: "That request is not right",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    409: "Someone else changed this",
    412: "Someone else changed this file",
    413: "Too large",
    422: "Please check the form",
    428: "This file already exists",
    500: "Something went wrong",
    503: "Please try again in a moment",
}


class Renderer:
    """The Jinja2 environment of the UI, and how a page becomes a response."""

    def __init__(self, codec: SessionCodec, *, multi_user: bool | None = None) -> None:
        self.codec = codec
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("revisor.web", "templates"),
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(href=href, seg=seg, short=short, age=age, iso=iso,
                                breadcrumbs=breadcrumbs, size=size, version=__version__)

    def page(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        session = getattr(request.state, "web_session_set", None) or getattr(
            request.state, "web_session", None
        )
        state = request.app.state.revisor
        ctx: dict[str, Any] = {
            "request": request,
            "csrf": self.codec.csrf_token(session) if isinstance(session, Session) else "",
            "me": session.principal if isinstance(session, Session) else None,
            "multi_user": state.auth.has_users(),
            "sources": sorted(state.rv.config.sources),
            "flash": FLASH.get(request.query_params.get("done") or "", ""),
        }
        ctx.update(context or {})
        html = self.env.get_template(template).render(ctx)
        return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})

    def error(
        self, request: Request, status: int, detail: str, hint: str | None = None,
        *, title: str | None = None, technical: str = "",
    ) -> HTMLResponse:
        """A friendly error page with ``status`` (``technical``: the precise reason, shown
        small, for an administrator)."""
        return self.page(request, "error.html", {
            "status": status, "title": title or TITLES.get(status, "Something went wrong"),
            "detail": detail, "hint": hint or "", "technical": technical}, status=status)
