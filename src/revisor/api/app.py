"""Build the FastAPI application: state, problem handlers, body limit, routers, the web UI.

Why this module exists: one function, ``create_app``, wires the service for ``revisor serve`` and
for tests (which run it under uvicorn on loopback). It does no I/O beyond what ``Revisor.start``
already did; the scheduler is started and stopped with the application's lifespan.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from revisor import __version__
from revisor.api.deps import ApiState
from revisor.api.problems import install_problem_handlers, problem
from revisor.api.routes.ops import Metrics, MetricsMiddleware
from revisor.api.settings import ServeSettings
from revisor.bootstrap import Revisor
from revisor.core.lastcommits import close_caches
from revisor.services.auth import AuthService
from revisor.services.auth_policy import AuthPolicy

__all__ = ["API_PREFIX", "ROUTE_MODULES", "create_app"]

API_PREFIX = "/api/v1"
JOB_GRACE_S = 30.0  # how long shutdown waits for a job started over the API
# each module has a ``router``; mounted under API_PREFIX in this order
ROUTE_MODULES = (
    "ops",
    "browse",
    "transactions",
    "proposals",
    "candidates",
    "workspaces",
    "jobs",
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, by Content-Length or as they stream."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send, int(declared))
            return
        seen = 0
        exceeded = refused = False

        async def limited() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            # A framework may turn the error raised while reading into its own answer (400):
            # once the limit is exceeded, whatever the application sends becomes the 413.
            nonlocal refused
            if not exceeded:
                await send(message)
                return
            if not refused and message["type"] == "http.response.start":
                refused = True
                await self._refuse(scope, receive, send, None)

        try:
            await self.app(scope, limited, guarded)
        except _BodyTooLarge:
            if not refused:
                refused = True
                await self._refuse(scope, receive, send, None)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: int | None) -> None:
        detail = (
            f"the request body is too large: {size} bytes, the limit is {self.limit} bytes"
            if size is not None  # announced by Content-Length; else it streamed past the limit
            else f"the request body is larger than the limit of {self.limit} bytes"
        )
        response = problem(
            413,
            detail,
            type_="too-large",
            limit=self.limit,
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def create_app(
    rv: Revisor,
    settings: ServeSettings | None = None,
    *,
    auth: AuthService | None = None,
) -> FastAPI:
    """The application for an opened (started) Revisor."""
    settings = settings or ServeSettings()
    auth = auth or AuthService(rv.db, AuthPolicy.from_config(rv.config.auth))
    state = ApiState(rv=rv, settings=settings, auth=auth)
    metrics = Metrics()
    state.extras["metrics"] = metrics

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        scheduler = state.extras.get("scheduler")
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            # jobs started by POST /jobs/{name}/run finish their current target (their leases
            # and run records stay consistent); a job still running after the grace period is
            # picked up again by the next start, as after a crash
            for thread in list(state.extras.get("job_threads", ())):
                await asyncio.to_thread(thread.join, JOB_GRACE_S)
            close_caches(rv)

    app = FastAPI(
        title="Revisor",
        version=__version__,
        description="Read and change files in git repositories without managing clones.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.revisor = state
    install_problem_handlers(app)
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"revisor.api.routes.{name}")
        app.include_router(module.router, prefix=API_PREFIX)
    if settings.ui:
        from revisor.web.app import mount  # the pages import the API's dependencies

        mount(app, state)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
