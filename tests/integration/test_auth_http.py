"""Authentication through the API's own dependency (``api.deps.principal``) over real HTTP on
loopback: single-user mode answers every caller as the local admin; once a user exists, a
missing, malformed, unknown, expired or revoked token is a 401 problem with
``WWW-Authenticate``, a refused action a 403 naming user and action, and no response carries the
token. The probe route is added by the test, so this checks the auth contract independently of
the API's own routes (their end-to-end matrix lives with them)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from revisor.api.app import create_app
from revisor.api.deps import Caller, State, authorize
from revisor.api.settings import ServeSettings
from revisor.bootstrap import Revisor
from revisor.config import Config
from revisor.services.auth import Action, AuthService
from tests.support.server import serve_app


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Served:
    url: str
    auth: AuthService
    clock: Clock
    client: httpx.Client

    def probe(self, token: str | None = None, *, header: str | None = None,
              **params: str) -> httpx.Response:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if header is not None:
            headers["Authorization"] = header
        return self.client.get(self.url + "/api/v1/test-auth-probe", params=params,
                               headers=headers)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    rv = Revisor(Config.model_validate({"data_dir": str(tmp_path / "data")})).start()
    clock = Clock()
    auth = AuthService(rv.db, clock=clock)
    app = create_app(rv, ServeSettings(scheduler=False, ui=False), auth=auth)

    def probe(state: State, caller: Caller, action: str = "read", source: str | None = None,
              owner: str | None = None) -> dict[str, Any]:
        authorize(state, caller, Action(action), source, owner=owner)
        return {"user": caller.user, "role": caller.role.value, "single": caller.single_user}

    app.add_api_route("/api/v1/test-auth-probe", probe, methods=["GET"])
    try:
        with serve_app(app) as url, httpx.Client(timeout=30) as client:
            yield Served(url, auth, clock, client)
    finally:
        rv.close()


def test_single_user_mode_then_tokens(served: Served) -> None:
    for token in (None, "whatever"):
        r = served.probe(token, action="run_job")
        assert r.status_code == 200 and r.json() == {"user": "local", "role": "admin",
                                                     "single": True}
    editor = served.auth.issue_token("alice", "editor", expires_in=timedelta(days=1)).secret
    admin = served.auth.issue_token("root", "admin").secret
    assert served.probe(editor).json() == {"user": "alice", "role": "editor", "single": False}
    assert served.probe(admin, action="run_job").json()["user"] == "root"
    # the editor writes their own workspace, not bob's
    assert served.probe(editor, action="write_workspace", source="p", owner="alice").is_success
    refused = served.probe(editor, action="write_workspace", source="p", owner="bob")
    assert refused.status_code == 403
    assert "'alice'" in refused.json()["detail"] and "write_workspace" in refused.json()["detail"]
    # 401s
    revoked = served.auth.issue_token("alice").secret
    served.auth.revoke_token(served.auth.list_tokens("alice")[-1].id)
    cases = {"missing": served.probe(), "unknown": served.probe("rvs_" + "x" * 43),
             "malformed": served.probe(header="Basic YWxpY2U6cHc="),
             "revoked": served.probe(revoked)}
    served.clock.now += timedelta(days=2)
    cases["expired"] = served.probe(editor)
    for why, r in cases.items():
        assert r.status_code == 401, why
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.headers["www-authenticate"].startswith("Bearer")
        for token in (editor, admin, revoked):
            assert token not in r.text, why
    assert served.probe(admin).status_code == 200
