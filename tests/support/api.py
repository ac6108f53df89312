"""An API world for end-to-end tests: a World (one Revisor over source ``proj`` with a bare
upstream, from ``test_transactions_support``) served by ``create_app`` under uvicorn on loopback,
and an httpx client on it. Real HTTP, a real repository, a real SQLite database."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from revisor.api.app import create_app
from revisor.api.settings import ServeSettings
from tests.integration.test_transactions_support import FileSpec, World, make_world
from tests.support.server import serve_app

__all__ = ["ApiWorld", "api_world"]


@dataclass
class ApiWorld:
    world: World
    url: str
    client: httpx.Client

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(self.api + path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.post(self.api + path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.put(self.api + path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.patch(self.api + path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.delete(self.api + path, **kw)


@contextmanager
def api_world(
    tmp: Path,
    files: Mapping[str, FileSpec] | None = None,
    *,
    kind: str = "git",
    settings: ServeSettings | None = None,
    headers: Mapping[str, str] | None = None,
    **source: Any,
) -> Iterator[ApiWorld]:
    """Serve a new world; ``settings`` default to no scheduler and no UI (tests drive jobs)."""
    world = make_world(kind, tmp, files, **source)
    settings = settings or ServeSettings(scheduler=False, ui=False)
    try:
        with serve_app(create_app(world.rv, settings)) as url, httpx.Client(
            timeout=60, headers=dict(headers or {})
        ) as client:
            yield ApiWorld(world, url, client)
    finally:
        world.close()
