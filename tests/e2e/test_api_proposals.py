"""End to end over real HTTP: proposals — list (paginated, by status), show with mergeability,
merge (the target moves, checked with git), close, and the 404 / 409 answers (a closed
proposal, a merge conflict with its paths)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import ApiWorld, api_world

P = "/sources/proj/proposals"
T = "/sources/proj/transactions"


@pytest.fixture
def aw(tmp_path: Path) -> Iterator[ApiWorld]:
    with api_world(tmp_path, {"README.md": "hello\n", "conf.yaml": "a: 1\n"}) as w:
        yield w


def _propose(aw: ApiWorld, path: str, content: str) -> dict[str, object]:
    r = aw.post(T, json={"message": f"set {path}", "changes": [
        {"op": "write", "path": path, "content": content}]})
    assert r.status_code == 201, r.text
    out: dict[str, object] = r.json()
    return out


def test_list_show_merge_and_close(aw: ApiWorld) -> None:
    up = aw.world.upstream
    first = _propose(aw, "one.txt", "1\n")
    second = _propose(aw, "two.txt", "2\n")
    third = _propose(aw, "three.txt", "3\n")
    numbers = [t["proposal"]["number"] for t in (first, second, third)]  # type: ignore[index]
    page = aw.get(P, params={"limit": 2}).json()
    assert [p["number"] for p in page["items"]] == sorted(numbers, reverse=True)[:2]
    rest = aw.get(P, params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [p["number"] for p in rest["items"]] == [min(numbers)] and rest["next_cursor"] is None

    n1 = numbers[0]
    shown = aw.get(f"{P}/{n1}").json()
    assert shown["status"] == "open" and shown["mergeability"]["clean"] is True
    assert shown["source_commit"] == first["commit"]

    main = up.ref("refs/heads/main")
    r = aw.post(f"{P}/{n1}/merge", json={"method": "squash"})
    assert r.status_code == 200, r.text
    merged = r.json()
    assert merged["status"] == "merged"
    assert up.ref("refs/heads/main") == merged["merged_commit"]
    assert up.parents(merged["merged_commit"]) == [main]
    assert up.show("main", "one.txt") == b"1\n"
    assert aw.get(f"{P}/{n1}").json()["mergeability"] is None

    r = aw.post(f"{P}/{numbers[1]}/close")
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert aw.post(f"{P}/{numbers[1]}/merge").status_code == 409
    assert [p["number"] for p in aw.get(P, params={"status": "open"}).json()["items"]] == \
        [numbers[2]]
    r = aw.post(f"{P}/{numbers[2]}/merge")  # default method: merge
    assert r.status_code == 200 and up.show("main", "three.txt") == b"3\n"
    assert "proposal.merge" in aw.world.audit_actions()


def test_a_conflicting_merge_is_409_with_paths(aw: ApiWorld) -> None:
    a = _propose(aw, "conf.yaml", "a: 2\n")
    b = _propose(aw, "conf.yaml", "a: 3\n")
    assert aw.post(f"{P}/{a['proposal']['number']}/merge").status_code == 200  # type: ignore[index]
    nb = b["proposal"]["number"]  # type: ignore[index]
    shown = aw.get(f"{P}/{nb}").json()
    assert shown["mergeability"] == {"clean": False, "conflicts": ["conf.yaml"],
                                     "target_commit": aw.world.upstream.ref("refs/heads/main")}
    r = aw.post(f"{P}/{nb}/merge")
    assert r.status_code == 409, r.text
    assert r.json()["conflicts"] == ["conf.yaml"]
    assert aw.world.upstream.show("main", "conf.yaml") == b"a: 2\n"


def test_unknown_and_invalid_numbers(aw: ApiWorld) -> None:
    assert aw.get(f"{P}/99").status_code == 404
    assert aw.post(f"{P}/99/merge").status_code == 404
    assert aw.post(f"{P}/99/close").status_code == 404
    assert aw.get(f"{P}/0").status_code == 422
    assert aw.get(f"{P}/abc").status_code == 422
    assert aw.post(f"{P}/1/merge", json={"method": "octopus"}).status_code == 422
    assert aw.get(P, params={"status": "weird"}).status_code == 422
    assert aw.get("/sources/nope/proposals").status_code == 404
