"""End to end over real HTTP: ``GET /audit`` — every write through the API is in the log,
attributed to its caller, and the filters (source, user, candidate, action) and the cursor
return exactly the entries the log holds (read back from the database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.test_candidates_support import BASE_FILES
from tests.support.api import ApiWorld, api_world

C = "/sources/proj/candidates"


def _all(aw: ApiWorld, **params: Any) -> list[dict[str, Any]]:
    """Every page of ``GET /audit`` with ``params``."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = aw.get("/audit", params=query)
        assert r.status_code == 200, r.text
        out += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


def _work(aw: ApiWorld) -> tuple[int, int]:
    one = aw.post(C, json={"name": "one", "title": "one"}).json()["id"]
    two = aw.post(C, json={"name": "two", "title": "two"}).json()["id"]
    for cid, user in ((one, "alice"), (one, "bob"), (two, "alice")):
        ws = f"{C}/{cid}/workspaces/{user}"
        assert aw.put(f"{ws}/files/{user}.txt", content=user.encode()).status_code == 201
        assert aw.post(f"{ws}/publish").status_code == 200
    assert aw.patch(f"{C}/{two}", json={"title": "second"}).status_code == 200
    return one, two


def test_audit_lists_and_filters(tmp_path: Path) -> None:
    with api_world(tmp_path, BASE_FILES) as aw:
        one, two = _work(aw)
        log = aw.world.rv.audit.query(limit=1000)
        everything = _all(aw)
        assert [e["id"] for e in everything] == [e.id for e in log]  # newest first, all
        assert {e["action"] for e in everything} >= {
            "candidate.create", "workspace.create", "workspace.write", "candidate.publish",
            "workspace.publish", "candidate.edit"}
        assert {e["actor"] for e in everything} == {"local <local@revisor>"}
        first = everything[-1]
        assert first["at"].endswith(("Z", "+00:00")) and first["source"] == "proj"

        # pages of 3 give the same entries, once each
        assert [e["id"] for e in _all(aw, limit=3)] == [e.id for e in log]
        # by source
        assert [e["id"] for e in _all(aw, source="proj")] == [
            e.id for e in log if e.source == "proj"]
        assert _all(aw, source="other") == []
        # by action, and by family
        edits = _all(aw, action="candidate.edit")
        assert [e["details"]["candidate"] for e in edits] == [two]
        assert {e["action"] for e in _all(aw, action="workspace.")} <= {
            "workspace.create", "workspace.write", "workspace.publish"}
        # by candidate: entries about it and its workspaces only
        about_one = _all(aw, candidate=one)
        assert about_one and all(e["details"].get("candidate") == one for e in about_one)
        assert {e["id"] for e in about_one} == {
            e.id for e in log if e.details.get("candidate") == one}
        assert len(_all(aw, candidate=one, limit=2)) == len(about_one)
        # by user: the caller's name, email or whole actor
        assert len(_all(aw, user="local")) == len(everything)
        assert len(_all(aw, user="local@revisor")) == len(everything)
        assert len(_all(aw, user="local <local@revisor>")) == len(everything)
        assert _all(aw, user="alice") == []  # workspaces of alice, written by the caller
        # refused parameters
        assert aw.get("/audit", params={"cursor": "!!"}).status_code == 400
        assert aw.get("/audit", params={"limit": 5000}).status_code == 422
        assert aw.get("/audit", params={"candidate": "x"}).status_code == 422
