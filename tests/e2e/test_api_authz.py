"""End to end over real HTTP: the authorization matrix of the candidate, workspace, job and
audit routes — each role (reader, editor, admin, and roles given per source) by each action,
including an editor writing another user's workspace and an editor submitting (both 403) — and
authentication: no token, a malformed, unknown, expired or revoked token, a disabled user (401).
Writes are attributed to the caller: the commit author (read with git) and the audit actor."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from revisor.api.app import create_app
from revisor.api.settings import ServeSettings
from revisor.services.auth import AuthService
from tests.integration.test_candidates_support import BASE_FILES, lines
from tests.integration.test_transactions_support import Upstream, World, make_world
from tests.support.server import serve_app

C = "/sources/proj/candidates"


@dataclass
class AuthWorld:
    world: World
    auth: AuthService  # the served application's
    api: str
    client: httpx.Client
    tokens: dict[str, str]
    now: list[datetime]

    def call(self, who: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return self.client.request(method, self.api + path, headers=headers, **kw)

    def mirror(self) -> Upstream:
        return Upstream(self.world.mirror_path or self.world.upstream.path)


@pytest.fixture
def az(tmp_path: Path) -> Iterator[AuthWorld]:
    world = make_world("git", tmp_path, BASE_FILES)
    now = [datetime.now(UTC)]
    auth = AuthService(world.rv.db, clock=lambda: now[0])
    # users before the first request: the server never runs single-user
    tokens = {}
    for name, role in (("reader", "reader"), ("alice", "editor"), ("bob", "editor"),
                       ("admin", "admin")):
        tokens[name] = auth.issue_token(name, role).secret
    # carol: a reader, except on proj where she is an editor; erin: an admin, a reader on proj
    tokens["carol"] = auth.issue_token("carol", "editor", source="proj").secret
    tokens["erin"] = auth.issue_token("erin", "admin").secret
    auth.set_role("erin", "reader", source="proj")
    try:
        settings = ServeSettings(scheduler=False, ui=False)
        with serve_app(create_app(world.rv, settings, auth=auth)) as url, httpx.Client(
            timeout=60
        ) as client:
            yield AuthWorld(world, auth, url + "/api/v1", client, tokens, now)
    finally:
        world.close()


def _candidate(az: AuthWorld, who: str, name: str) -> int:
    r = az.call(who, "POST", C, json={"name": name, "title": name})
    assert r.status_code == 201, r.text
    cid: int = r.json()["id"]
    return cid


def test_the_matrix(az: AuthWorld) -> None:
    mine = _candidate(az, "alice", "alices")  # alice's candidate
    other = _candidate(az, "admin", "admins")  # not an editor's
    # a conflict for resolve to find, in alice's and bob's workspaces
    for user in ("alice", "bob"):
        r = az.call(user, "PUT", f"{C}/{mine}/workspaces/{user}/files/a.txt",
                    content=lines("a", l3=user), headers={"If-Match": "*"})
        assert r.status_code == 200, r.text
    assert az.call("alice", "POST", f"{C}/{mine}/workspaces/alice/publish").status_code == 200

    failures = []

    def expect(who: str, status: int, method: str, path: str, **kw: Any) -> None:
        r = az.call(who, method, path, **kw)
        if r.status_code != status:
            failures.append(f"{who} {method} {path}: {r.status_code} (wanted {status}) {r.text}")
        elif status == 403:
            body = r.json()
            if r.headers["content-type"] != "application/problem+json" or body["status"] != 403:
                failures.append(f"{who} {method} {path}: not a 403 problem: {r.text}")

    everyone = ("reader", "alice", "bob", "admin", "carol", "erin")
    # READ: everyone
    for who in everyone:
        expect(who, 200, "GET", C)
        expect(who, 200, "GET", f"{C}/{mine}")
        expect(who, 200, "GET", f"{C}/{mine}/files")
        expect(who, 200, "GET", f"{C}/{mine}/diff")
        expect(who, 200, "GET", f"{C}/{mine}/conflicts")
        expect(who, 200, "GET", f"{C}/{mine}/workspaces")
        expect(who, 200, "GET", f"{C}/{mine}/workspaces/alice")
        expect(who, 200, "GET", f"{C}/{mine}/workspaces/alice/files/a.txt")
        expect(who, 200, "GET", f"{C}/{mine}/workspaces/bob/conflicts")
        expect(who, 200, "GET", "/jobs/runs")
        expect(who, 200, "GET", "/jobs")

    # CREATE_CANDIDATE: editors and admins (and carol, an editor on proj); not erin on proj
    for who, status in (("reader", 403), ("alice", 201), ("admin", 201), ("carol", 201),
                        ("erin", 403)):
        expect(who, status, "POST", C, json={"name": f"by-{who}", "title": "t"})

    # MANAGE_CANDIDATE: the author (an editor), or an admin
    for who, status in (("reader", 403), ("bob", 403), ("carol", 403), ("erin", 403),
                        ("alice", 200), ("admin", 200)):
        expect(who, status, "PATCH", f"{C}/{mine}", json={"title": f"title by {who}"})
    expect("alice", 403, "PATCH", f"{C}/{other}", json={"title": "not hers"})
    expect("alice", 403, "POST", f"{C}/{other}/rebase")
    expect("alice", 403, "POST", f"{C}/{other}/abandon")
    expect("bob", 403, "POST", f"{C}/{mine}/rebase")
    expect("alice", 200, "POST", f"{C}/{mine}/rebase")
    expect("admin", 200, "POST", f"{C}/{mine}/rebase")

    # WRITE_WORKSPACE: editors their own only; admins any; readers none
    ws = f"{C}/{mine}/workspaces"
    expect("reader", 403, "PUT", f"{ws}/reader/files/r.txt", content=b"r")
    expect("alice", 201, "PUT", f"{ws}/alice/files/new.txt", content=b"a")
    expect("alice", 403, "PUT", f"{ws}/bob/files/new.txt", content=b"a")
    expect("bob", 403, "DELETE", f"{ws}/alice/files/new.txt", headers={"If-Match": "*"})
    expect("bob", 403, "POST", f"{ws}/alice/files/new.txt:rollback")
    expect("bob", 403, "POST", f"{ws}/alice/publish")
    expect("bob", 403, "POST", f"{ws}/alice/sync")
    expect("alice", 403, "POST", f"{ws}/bob/resolve", json={"a.txt": {"take": "ours"}})
    expect("carol", 201, "PUT", f"{ws}/carol/files/carol.txt", content=b"c")
    expect("carol", 403, "PUT", f"{ws}/alice/files/carol.txt", content=b"c")
    expect("erin", 403, "PUT", f"{ws}/erin/files/e.txt", content=b"e")  # a reader on proj
    expect("admin", 201, "PUT", f"{ws}/alice/files/by-admin.txt", content=b"x")
    expect("bob", 200, "POST", f"{ws}/bob/sync")
    expect("bob", 200, "POST", f"{ws}/bob/resolve", json={"a.txt": {"take": "theirs"}})
    expect("alice", 200, "POST", f"{ws}/alice/publish")
    expect("alice", 200, "POST", f"{ws}/alice/files/new.txt:rollback")
    # no write happened where it was refused
    assert az.call("admin", "GET", f"{ws}/reader").status_code == 404
    assert az.call("admin", "GET", f"{ws}/erin").status_code == 404
    assert az.call("admin", "GET", f"{ws}/bob/files/new.txt").status_code == 404

    # SUBMIT_CANDIDATE: admins only (the default policy), not the author
    expect("alice", 403, "POST", f"{C}/{mine}/submit")
    expect("carol", 403, "POST", f"{C}/{mine}/submit")
    expect("admin", 200, "POST", f"{C}/{mine}/submit")

    # RUN_JOB and READ_AUDIT: admins (erin is one, except on proj)
    for who, status in (("reader", 403), ("alice", 403), ("carol", 403), ("admin", 200),
                        ("erin", 200)):
        expect(who, status, "POST", "/jobs/refresh/run", params={"wait": "true"})
        expect(who, status, "GET", "/audit")
    expect("erin", 403, "POST", "/jobs/sync/run", params={"wait": "true"},
           json={"source": "proj"})
    expect("erin", 403, "GET", "/audit", params={"source": "proj"})
    expect("admin", 200, "GET", "/audit", params={"source": "proj"})
    # abandoning: the author may, another editor may not
    expect("bob", 403, "POST", f"{C}/{other}/abandon")
    expect("admin", 200, "POST", f"{C}/{other}/abandon")

    assert failures == []


def test_writes_are_attributed_to_the_caller(az: AuthWorld) -> None:
    cid = _candidate(az, "alice", "credits")
    cand = az.call("alice", "GET", f"{C}/{cid}").json()
    assert cand["author"] == {"name": "alice", "email": "alice@revisor"}
    ws = f"{C}/{cid}/workspaces/alice"
    r = az.call("alice", "PUT", f"{ws}/files/a.txt", content=b"by alice\n",
                headers={"If-Match": "*"})
    head = r.json()["head"]
    mirror = az.mirror()
    assert mirror.git("log", "-1", "--format=%an <%ae>", head).strip() == \
        "alice <alice@revisor>"
    # an admin writing alice's workspace is the author of that commit
    r = az.call("admin", "PUT", f"{ws}/files/b.txt", content=b"by admin\n",
                headers={"If-Match": "*"})
    assert r.status_code == 200, r.text
    assert mirror.git("log", "-1", "--format=%an <%ae>", r.json()["head"]).strip() == \
        "admin <admin@revisor>"
    r = az.call("alice", "POST", f"{ws}/publish")
    assert r.status_code == 200
    assert mirror.git("log", "-1", "--format=%an", r.json()["commit"]).strip() == "alice"
    actors = {(e.action, e.actor) for e in az.world.rv.audit.query(source="proj", limit=1000)}
    assert ("candidate.create", "alice <alice@revisor>") in actors
    assert ("workspace.write", "admin <admin@revisor>") in actors
    assert ("candidate.publish", "alice <alice@revisor>") in actors
    found = az.call("admin", "GET", "/audit", params={"user": "alice", "candidate": cid}).json()
    assert found["items"] and {e["actor"] for e in found["items"]} == {"alice <alice@revisor>"}


def test_an_admin_acting_on_a_workspace_leaves_the_owner_identity(az: AuthWorld) -> None:
    """The admin authors their own saves in alice's workspace, but the workspace keeps alice's
    identity: a later sync made on her behalf is authored by alice, not by the admin."""
    cid = _candidate(az, "alice", "owners")
    ws, mirror = f"{C}/{cid}/workspaces", az.mirror()
    r = az.call("alice", "PUT", f"{ws}/alice/files/mine.txt", content=b"alice\n")
    assert r.status_code == 201, r.text
    r = az.call("admin", "PUT", f"{ws}/alice/files/hers.txt", content=b"admin\n")
    assert r.status_code == 201, r.text
    assert mirror.git("log", "-1", "--format=%an <%ae>", r.json()["head"]).strip() == \
        "admin <admin@revisor>"
    assert az.call("alice", "GET", f"{ws}/alice").json()["author"] == \
        {"name": "alice", "email": "alice@revisor"}
    # a workspace an admin makes for bob (an existing user) carries bob's identity
    assert az.call("admin", "PUT", f"{ws}/bob/files/his.txt", content=b"c\n").status_code == 201
    assert az.call("bob", "GET", f"{ws}/bob").json()["author"] == \
        {"name": "bob", "email": "bob@revisor"}
    created = {e.target: e.actor for e in az.world.rv.audit.query(source="proj", limit=1000)
               if e.action == "workspace.create"}
    assert created[f"refs/revisor/workspaces/{cid}/bob"] == "admin <admin@revisor>"
    assert az.call("bob", "POST", f"{ws}/bob/publish").status_code == 200
    # the background sync merges bob's publication into alice's unpublished work, as alice
    results = az.world.source.candidates.sync_workspaces(cid)
    moved = {res.user: res for res in results if res.moved}
    assert "alice" in moved
    head = az.call("alice", "GET", f"{ws}/alice").json()["head_commit"]
    assert mirror.git("log", "-1", "--format=%an <%ae>", head).strip() == \
        "alice <alice@revisor>"
    assert mirror.git("rev-list", "--parents", "-1", head).count(" ") == 2  # a merge
    # the admin publishing alice's workspace authors that publication
    r = az.call("admin", "POST", f"{ws}/alice/publish")
    assert r.status_code == 200 and r.json()["published"], r.text
    assert mirror.git("log", "-1", "--format=%an", r.json()["commit"]).strip() == "admin"
    assert az.call("alice", "GET", f"{ws}/alice").json()["author"]["name"] == "alice"


def test_tokens_missing_malformed_unknown_expired_revoked(az: AuthWorld) -> None:
    def status(headers: dict[str, str]) -> int:
        return az.client.get(az.api + C, headers=headers).status_code

    r = az.client.get(az.api + C)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"] == "application/problem+json"
    assert status({"Authorization": "Bearer"}) == 401
    assert status({"Authorization": "Basic YWxpY2U6cHc="}) == 401
    assert status({"Authorization": "Bearer not-a-token"}) == 401
    assert status({"Authorization": "Bearer rvs_" + "x" * 43}) == 401  # well formed, unknown
    assert status({"Authorization": f"Bearer {az.tokens['alice']}"}) == 200
    # writes too, and nothing is made
    r = az.client.put(az.api + f"{C}/1/workspaces/alice/files/x", content=b"x")
    assert r.status_code == 401

    # an expiring token works until it expires
    short = az.auth.create_token("bob", expires_in=timedelta(hours=1))
    bearer = {"Authorization": f"Bearer {short.secret}"}
    assert status(bearer) == 200
    az.now[0] += timedelta(hours=2)
    r = az.client.get(az.api + C, headers=bearer)
    assert r.status_code == 401 and short.secret not in r.text
    assert status({"Authorization": f"Bearer {az.tokens['bob']}"}) == 200  # the other still

    # a revoked token stops at once
    doomed = az.auth.create_token("alice")
    bearer = {"Authorization": f"Bearer {doomed.secret}"}
    assert status(bearer) == 200
    az.auth.revoke_token(doomed.token.id)
    r = az.client.get(az.api + C, headers=bearer)
    assert r.status_code == 401 and doomed.secret not in r.text
    # a disabled user's tokens stop too
    az.auth.update_user("carol", disabled=True)
    assert status({"Authorization": f"Bearer {az.tokens['carol']}"}) == 401
