"""API v1 routes for operators: ``/healthz``, ``/readyz``, ``/metrics``; and the metrics middleware.

Why this module exists: a load balancer asks whether the process is alive (``healthz``) and
whether it can serve (``readyz``: the database answers and is migrated, sources are configured);
Prometheus scrapes ``metrics``. Each application has its own registry (several apps in one test
process never share counters): requests by route template, method and status, and their latency.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from sqlalchemy import text

from revisor import __version__
from revisor.api.deps import State
from revisor.api.schemas import HealthOut, ReadyOut

__all__ = ["Metrics", "MetricsMiddleware", "router"]

router = APIRouter(tags=["operations"])

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Metrics:
    """The application's Prometheus registry and instruments."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "revisor_http_requests",
            "HTTP requests by route template, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "revisor_http_request_seconds",
            "Time to the start of the response, by route template and method.",
            ("route", "method"),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request under its route template (``/api/v1/sources/{source}/tree``),
    never its concrete path, so that labels stay few."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        elapsed: float | None = None

        async def recording(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                elapsed = time.perf_counter() - started
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(
                elapsed if elapsed is not None else time.perf_counter() - started
            )


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is alive (no dependency is checked)."""
    return HealthOut(status="ok", version=__version__)


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
def readyz(state: State) -> Response:
    """Ready to serve: the database answers and is migrated, and sources are configured."""
    reasons: list[str] = []
    database = migrated = False
    db = state.rv.db
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = True
        migrated = db.current_revision() is not None
        if not migrated:
            reasons.append("the database is not migrated")
    except Exception as exc:  # any database failure means "not ready"
        reasons.append(f"the database is unreachable: {type(exc).__name__}")
    sources = len(state.rv.config.sources)
    if sources == 0:
        reasons.append("no source is configured")
    ready = database and migrated and sources > 0
    body = ReadyOut(status="ready" if ready else "not-ready", database=database,
                    migrated=migrated, sources=sources, reasons=reasons)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503,
                        headers={} if ready else {"Retry-After": "5"})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}},
                     "description": "Prometheus text exposition"}},
)
def metrics(state: State) -> Response:
    """Prometheus metrics of this server process."""
    registry: Metrics | None = state.extras.get("metrics")
    data = registry.render() if registry is not None else b""
    return Response(data, media_type=CONTENT_TYPE_LATEST)
