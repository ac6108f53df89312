"""Attach the web UI to the application: pages at ``/``, static files, sessions, error pages.

Why this module exists: ``revisor.api.app.create_app`` calls :func:`mount` when the UI is on.
It adds the page routers, serves ``static/`` (one stylesheet, one small script — nothing is
fetched from the network at run time), installs the session middleware, and makes errors on pages
render as friendly HTML pages with the right status (the API keeps its problem+json: the
handlers installed by ``revisor.api.problems`` still answer every ``/api/`` request).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from revisor import errors as e
from revisor.api.deps import ApiState
from revisor.api.problems import status_for
from revisor.web import pages_browse, pages_candidates, pages_ops, pages_workspace
from revisor.web.deps import WebUI
from revisor.web.render import Renderer
from revisor.web.session import SessionCheck, SessionCodec, WebSessionMiddleware, load_secret

__all__ = ["mount"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
API_PREFIX = "/api/v1"

Handler = Callable[[Request, Exception], Awaitable[Response]]



def _is_page(request: Request) -> bool:
    path = request.url.path
    return not (path == API_PREFIX or path.startswith(API_PREFIX + "/"))


def mount(app: FastAPI, state: ApiState) -> None:
    """Serve the web UI from ``app``, on the services of ``state``."""
    codec = SessionCodec(load_secret(state.rv.config.data_dir))
    check = SessionCheck(state.auth)
    web = WebUI(state=state, renderer=Renderer(codec), codec=codec, check=check)
    app.state.web = web
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (pages_ops, pages_browse, pages_candidates, pages_workspace):
        app.include_router(module.router, include_in_schema=False)
    app.add_middleware(WebSessionMiddleware, codec=codec, check=check, api_prefix=API_PREFIX)
    _install_error_pages(app, web)


def error_page(
    web: WebUI, request: Request, status: int, detail: str, hint: str | None = None
) -> Response:
    return web.renderer.error(request, status, detail, hint)


def _install_error_pages(app: FastAPI, web: WebUI) -> None:
    """Wrap the API's handlers: pages get HTML, the API keeps its problem documents."""
    original = dict(app.exception_handlers)

    def wrap(cls: type[Exception], page: Handler) -> None:
        api = original.get(cls)

        async def handler(request: Request, exc: Exception) -> Response:
            if _is_page(request) or api is None:
                return await page(request, exc)
            return await api(request, exc)  # type: ignore[no-any-return]

        app.add_exception_handler(cls, handler)

    async def on_revisor(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, e.RevisorError)
        if isinstance(exc, e.Unauthenticated):
            target = "/"  # after a refused POST, start again from the start page
            if request.method in ("GET", "HEAD"):
                target = request.url.path + (f"?{request.url.query}" if request.url.query
                                             else "")
            return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)
        status = status_for(exc)
        if status >= 500:
            log.error("page failed: %s: %s", type(exc).__name__, exc)
            return error_page(web, request, status, "Revisor could not do this just now.",
                              "Try again; if it keeps failing, tell an administrator.")
        if isinstance(exc, e.NotAllowed):
            return web.renderer.error(request, 403, "Your role does not allow this.", exc.hint,
                                      technical=str(exc))
        return error_page(web, request, status, str(exc), exc.hint)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = "There is no page at this address." if exc.status_code == 404 else str(
            exc.detail)
        return error_page(web, request, exc.status_code, detail)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = ", ".join(
            str(err.get("loc", ("?",))[-1]) for err in exc.errors() if isinstance(err, dict)
        )
        return error_page(web, request, 400, f"Some of the address or form is missing or wrong: "
                                             f"{fields or 'unknown field'}.")

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("page failed", exc_info=exc)
        return error_page(web, request, 500, "Revisor could not show this page.",
                          "Try again; if it keeps failing, tell an administrator.")

    wrap(e.RevisorError, on_revisor)
    wrap(StarletteHTTPException, on_http)
    wrap(RequestValidationError, on_validation)
    wrap(Exception, on_unexpected)
