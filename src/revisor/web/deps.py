"""What every page needs: the UI's shared objects, who the visitor is, and the CSRF check.

Why this module exists: pages stay a few lines each. ``Web`` carries the API's state (the opened
Revisor, the settings, the auth service) with the renderer and the session codec; ``Visitor`` is
the signed-in person (or the local administrator in single-user mode) — a page asking for it when
nobody signed in raises :class:`~revisor.errors.Unauthenticated`, which the UI turns into the
sign-in page; ``CsrfChecked`` guards every POST.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from revisor.api.deps import ApiState
from revisor.errors import NotAllowed, Unauthenticated
from revisor.services.auth import Principal
from revisor.web.render import Renderer
from revisor.web.session import Session, SessionCheck, SessionCodec

__all__ = ["CsrfChecked", "Visitor", "Web", "WebUI", "get_web", "session_of", "visitor"]


@dataclass
class WebUI:
    """Built once by ``mount``; kept on ``app.state.web``."""

    state: ApiState
    renderer: Renderer
    codec: SessionCodec
    check: SessionCheck


def get_web(request: Request) -> WebUI:
    web: WebUI = request.app.state.web
    return web


Web = Annotated[WebUI, Depends(get_web)]


def session_of(request: Request) -> Session | None:
    chosen = getattr(request.state, "web_session_set", None) or getattr(
        request.state, "web_session", None)
    return chosen if isinstance(chosen, Session) else None


def visitor(request: Request, web: Web) -> Principal:
    """The person behind the request: the local administrator when Revisor is single-user, else
    whoever signed in (Unauthenticated: nobody did)."""
    auth = web.state.auth
    if not auth.has_users():
        return auth.local_principal()
    session = session_of(request)
    if session is None or session.principal is None:
        raise Unauthenticated("please sign in")
    return session.principal


Visitor = Annotated[Principal, Depends(visitor)]


async def csrf_checked(request: Request, web: Web) -> None:
    """Refuse a POST without this session's CSRF token, or sent from another site."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise NotAllowed("this form was sent from another site",
                             hint="open the page again and send the form from there")
    form = await request.form()
    token = form.get("csrf")
    if not web.codec.check_csrf(session_of(request), token if isinstance(token, str) else None):
        raise NotAllowed("this form has expired or was not sent from Revisor",
                         hint="open the page again and send the form once more")


CsrfChecked = Depends(csrf_checked)
