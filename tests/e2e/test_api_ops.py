"""End to end over real HTTP: ``/healthz``, ``/readyz``, ``/metrics`` and the published OpenAPI
(every route declares its answers and its error statuses as problem documents)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.support.api import ApiWorld, api_world


@pytest.fixture
def aw(tmp_path: Path) -> Iterator[ApiWorld]:
    with api_world(tmp_path, {"README.md": "hello\n"}) as w:
        yield w


def test_health_and_readiness(aw: ApiWorld) -> None:
    r = aw.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = aw.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "database": True, "migrated": True, "sources": 1,
                        "reasons": []}
    # a database that lost its schema is not ready
    with aw.world.rv.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    r = aw.get("/readyz")
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json()["migrated"] is False and r.json()["reasons"]


def test_metrics_count_requests_by_route_template(aw: ApiWorld) -> None:
    for _ in range(3):
        assert aw.get("/sources/proj/blob", params={"path": "README.md"}).status_code == 200
    assert aw.get("/sources/proj/blob", params={"path": "../x"}).status_code == 400
    assert aw.get("/no/such/route").status_code == 404
    r = aw.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()

    def value(prefix: str) -> float:
        found = [ln for ln in lines if ln.startswith(prefix)]
        assert len(found) == 1, (prefix, found)
        return float(found[0].rsplit(" ", 1)[1])

    blob = '/sources/{source}/blob'
    assert value(f'revisor_http_requests_total{{method="GET",route="{blob}",status="200"}}') \
        == 3
    assert value(f'revisor_http_requests_total{{method="GET",route="{blob}",status="400"}}') \
        == 1
    assert value('revisor_http_requests_total{method="GET",route="unmatched",status="404"}') \
        == 1
    assert value(f'revisor_http_request_seconds_count{{method="GET",route="{blob}"}}') == 4
    assert not any("README.md" in ln or "../x" in ln for ln in lines)


def test_openapi_declares_every_route_and_its_problems(aw: ApiWorld) -> None:
    spec = httpx.get(aw.api + "/openapi.json").json()
    paths = spec["paths"]
    for route in ("/api/v1/sources", "/api/v1/sources/{source}/tree",
                  "/api/v1/sources/{source}/blob", "/api/v1/sources/{source}/transactions",
                  "/api/v1/sources/{source}/proposals/{number}/merge", "/api/v1/readyz"):
        assert route in paths, route
    problem = spec["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    tx = paths["/api/v1/sources/{source}/transactions"]["post"]["responses"]
    assert {"200", "201", "400", "404", "409", "413", "422", "503"} <= set(tx)
    assert "application/problem+json" in tx["409"]["content"]
    blob = paths["/api/v1/sources/{source}/blob"]["get"]["responses"]
    assert {"200", "206", "304", "416"} <= set(blob)
