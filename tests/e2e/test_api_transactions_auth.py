"""End to end over real HTTP: who may use the browse, transaction and proposal routes once users
exist — 401 without a valid token (with ``WWW-Authenticate``), 403 for a role that may not, and
writes authored by the caller (commit author and audit actor)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from revisor.api.app import create_app
from revisor.api.settings import ServeSettings
from revisor.services.auth import AuthService
from tests.integration.test_transactions_support import World, make_world
from tests.support.server import serve_app

S = "/sources/proj"
WRITE = {"message": "by token", "changes": [{"op": "write", "path": "t.txt", "content": "t"}]}


@dataclass
class Served:
    world: World
    api: str
    tokens: dict[str, str]

    def call(self, method: str, path: str, who: str | None, **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.request(method, self.api + path, headers=headers, timeout=60,
                             **kw)  # type: ignore[arg-type]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    world = make_world("git", tmp_path, {"README.md": "hello\n"})
    auth = AuthService(world.rv.db)
    tokens = {}
    for name, role in (("rita", "reader"), ("ed", "editor"), ("ada", "admin")):
        made = auth.issue_token(name, role, display_name=name.title(),
                                email=f"{name}@example.com")
        tokens[name] = made.secret
    try:
        with serve_app(create_app(world.rv, ServeSettings(scheduler=False, ui=False),
                                  auth=auth)) as url:
            yield Served(world, url + "/api/v1", tokens)
    finally:
        world.close()


def test_tokens_are_required_once_users_exist(served: Served) -> None:
    r = served.call("GET", f"{S}/tree", None)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"] == "application/problem+json"
    bad = httpx.get(served.api + f"{S}/tree", headers={"Authorization": "Bearer rvs_nope"})
    assert bad.status_code == 401
    assert "rvs_nope" not in bad.text
    assert served.call("GET", "/healthz", None).status_code == 200


def test_roles_on_reads_transactions_and_proposals(served: Served) -> None:
    up = served.world.upstream
    for who in ("rita", "ed", "ada"):
        assert served.call("GET", f"{S}/tree", who).status_code == 200
        assert served.call("GET", f"{S}/blob", who, params={"path": "README.md"}).content == \
            b"hello\n"
    assert served.call("POST", f"{S}/transactions", "rita", json=WRITE).status_code == 403
    assert served.call("POST", f"{S}/refresh", "rita").status_code == 403
    r = served.call("POST", f"{S}/transactions", "ed", json=WRITE)
    assert r.status_code == 201, r.text
    commit, number = r.json()["commit"], r.json()["proposal"]["number"]
    assert up.git("log", "-1", "--format=%an <%ae>", commit).strip() == "Ed <ed@example.com>"
    assert served.call("POST", f"{S}/refresh", "ed").status_code == 200
    assert served.call("POST", f"{S}/proposals/{number}/merge", "ed").status_code == 403
    assert served.call("POST", f"{S}/proposals/{number}/merge", "rita").status_code == 403
    r = served.call("POST", f"{S}/proposals/{number}/merge", "ada")
    assert r.status_code == 200 and r.json()["status"] == "merged"
    actors = {e.action: e.actor for e in served.world.rv.audit.query(source="proj", limit=100)}
    assert actors["proposal.merge"] == "Ada <ada@example.com>"
