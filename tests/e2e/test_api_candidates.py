"""End to end over real HTTP: ``/sources/{s}/candidates`` — create, list, read, edit, compare,
rebase, abandon, submit. One served Revisor per test over a bare upstream on disk; what git
defines (the target branch after a submission, the diff) is read back with the git CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from revisor.api.settings import ServeSettings
from tests.integration.test_candidates_support import BASE_FILES, lines
from tests.integration.test_transactions_support import Upstream
from tests.support.api import ApiWorld, api_world

C = "/sources/proj/candidates"


@pytest.fixture
def aw(tmp_path: Path) -> Iterator[ApiWorld]:
    with api_world(tmp_path, BASE_FILES) as w:
        yield w


def _create(aw: ApiWorld, name: str, **extra: object) -> dict[str, object]:
    r = aw.post(C, json={"name": name, "title": f"Title of {name}", **extra})
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


def _edit_and_publish(aw: ApiWorld, cid: object, user: str, path: str, data: bytes) -> None:
    ws = f"{C}/{cid}/workspaces/{user}"
    exists = aw.get(f"{C}/{cid}/files", params={"include_unchanged": "true"}).json()["items"]
    headers = {"If-Match": "*"} if path in {f["path"] for f in exists} else {}
    r = aw.put(f"{ws}/files/{path}", content=data, headers=headers)
    assert r.status_code in (200, 201), r.text
    r = aw.post(f"{ws}/publish")
    assert r.status_code == 200 and r.json()["published"], r.text


def test_create_read_list_and_edit(aw: ApiWorld) -> None:
    main = aw.world.upstream.ref("refs/heads/main")
    r = aw.post(C, json={"name": "rel-1", "title": " First release ", "description": "notes"})
    assert r.status_code == 201, r.text
    cand = r.json()
    assert cand["name"] == "rel-1" and cand["title"] == "First release"
    assert cand["status"] == "open" and cand["target"] == "main"
    assert cand["base_commit"] == cand["head_commit"] == main
    assert cand["author"] == {"name": "local", "email": "local@revisor"}
    assert r.headers["location"].endswith(f"/api/v1{C}/{cand['id']}")
    assert aw.client.get(r.headers["location"]).json() == cand
    # the ref exists in the source's repository, at the target's commit
    assert aw.world.mirror_refs("refs/revisor/candidates/")[
        f"refs/revisor/candidates/{cand['id']}"] == main

    # a name taken is 409, refused fields are 422 and each named
    r = aw.post(C, json={"name": "rel-1", "title": "again"})
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    r = aw.post(C, json={"name": "-X", "title": " ", "target": "no such"})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"name", "title", "target"}
    r = aw.post(C, json={"name": "rel-2", "title": "t", "target": "nope"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "target"
    for target in ("--upload-pack=/tmp/x", "refs/../heads", "main\x00"):
        r = aw.post(C, json={"name": "rel-2", "title": "t", "target": target})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "target", target
    r = aw.post(C, json={"name": "rel-2", "title": "t", "strategy": "squash"})
    assert r.status_code == 422
    assert aw.post("/sources/nope/candidates", json={"name": "abc", "title": "t"}).status_code \
        == 404

    # edit: title and description; an empty title is refused
    r = aw.patch(f"{C}/{cand['id']}", json={"title": "Renamed", "description": "more"})
    assert r.status_code == 200, r.text
    assert (r.json()["title"], r.json()["description"]) == ("Renamed", "more")
    assert aw.get(f"{C}/{cand['id']}").json()["title"] == "Renamed"
    assert aw.patch(f"{C}/{cand['id']}", json={"title": ""}).status_code == 422
    assert aw.patch(f"{C}/{cand['id']}", json={"colour": "red"}).status_code == 422
    assert "candidate.edit" in aw.world.audit_actions()

    # unknown ids are 404; ids that are not ids are 422
    assert aw.get(f"{C}/999").status_code == 404
    assert aw.get(f"{C}/abc").status_code == 422
    assert aw.get(f"{C}/0").status_code == 422
    assert aw.get(f"{C}/99999999999999999999").status_code == 422


def test_list_filters_and_paginates(aw: ApiWorld) -> None:
    ids = [_create(aw, f"cand-{i}")["id"] for i in range(5)]
    r = aw.get(C, params={"limit": 2})
    assert r.status_code == 200
    seen, page = [], r.json()
    while True:
        seen += [c["id"] for c in page["items"]]
        if page["next_cursor"] is None:
            break
        page = aw.get(C, params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert seen == sorted(ids, reverse=True)  # newest first, each once
    assert aw.post(f"{C}/{ids[0]}/abandon").status_code == 200
    assert [c["id"] for c in aw.get(C, params={"status": "abandoned"}).json()["items"]] == [
        ids[0]]
    assert len(aw.get(C, params={"status": "open"}).json()["items"]) == 4
    assert aw.get(C, params={"author": "nobody"}).json()["items"] == []
    assert len(aw.get(C, params={"author": "local@revisor"}).json()["items"]) == 5
    assert aw.get(C, params={"status": "weird"}).status_code == 422
    assert aw.get(C, params={"cursor": "not-a-cursor!"}).status_code == 400
    other = aw.get(f"{C}/{ids[0]}/files", params={"limit": 1})
    assert other.status_code == 200
    assert aw.get(C, params={"limit": 1001}).status_code == 422
    assert aw.get(C, params={"limit": 0}).status_code == 422


def test_files_diff_and_conflicts_with_the_target(aw: ApiWorld) -> None:
    cand = _create(aw, "feature")
    cid = cand["id"]
    _edit_and_publish(aw, cid, "alice", "a.txt", lines("a", l3="alice"))
    _edit_and_publish(aw, cid, "alice", "new/file.txt", b"brand new\n")
    files = aw.get(f"{C}/{cid}/files").json()["items"]
    assert [(f["path"], f["status"], f["conflicted"]) for f in files] == [
        ("a.txt", "CHANGED", False), ("new/file.txt", "NEW", False)]
    head = aw.get(f"{C}/{cid}").json()["head_commit"]
    mirror = aw.world.mirror_path  # the candidate's commits are in the source's mirror
    assert mirror is not None
    repo = Upstream(mirror)
    assert files[0]["etag"] == repo.ls_tree(head)["a.txt"][1]
    all_files = aw.get(f"{C}/{cid}/files", params={"include_unchanged": "true"}).json()
    assert {f["path"] for f in all_files["items"]} == set(repo.ls_tree(head))
    page1 = aw.get(f"{C}/{cid}/files", params={"include_unchanged": "true", "limit": 3}).json()
    page2 = aw.get(f"{C}/{cid}/files", params={"include_unchanged": "true", "limit": 3,
                                               "cursor": page1["next_cursor"]}).json()
    assert [f["path"] for f in page1["items"] + page2["items"]] == [
        f["path"] for f in all_files["items"]][:6]

    diff = aw.get(f"{C}/{cid}/diff").json()["items"]
    base = cand["base_commit"]
    assert {d["change"]["path"]: d["change"]["kind"] for d in diff} == {
        "a.txt": "modified", "new/file.txt": "added"}
    git_patch = repo.git("diff", "--no-renames", base, head, "--", "a.txt")
    a_patch = next(d["patch"] for d in diff if d["change"]["path"] == "a.txt")
    assert a_patch.splitlines()[-6:] == git_patch.splitlines()[-6:]
    only = aw.get(f"{C}/{cid}/diff", params={"path": "new/file.txt"}).json()["items"]
    assert [d["change"]["path"] for d in only] == ["new/file.txt"]
    assert aw.get(f"{C}/{cid}/diff", params={"path": "../etc"}).status_code == 400

    # no conflicts yet; the target moves the same line: the check names the path
    assert aw.get(f"{C}/{cid}/conflicts").json()["has_conflicts"] is False
    aw.world.upstream.commit("refs/heads/main", {"a.txt": lines("a", l3="upstream")})
    aw.world.source.stored.refresh()
    conflicts = aw.get(f"{C}/{cid}/conflicts").json()
    assert conflicts["has_conflicts"] is True and conflicts["conflicts"] == ["a.txt"]
    assert conflicts["target_checked"] == aw.world.upstream.ref("refs/heads/main")
    files = aw.get(f"{C}/{cid}/files").json()["items"]
    assert [f["path"] for f in files if f["conflicted"]] == ["a.txt"]


def test_rebase_moves_or_answers_the_conflicts(aw: ApiWorld) -> None:
    cand = _create(aw, "rebased")
    cid = cand["id"]
    _edit_and_publish(aw, cid, "alice", "a.txt", lines("a", l3="alice"))
    r = aw.post(f"{C}/{cid}/rebase")
    assert r.status_code == 200 and r.json()["moved"] is False  # up to date
    # the target moves elsewhere: the rebase takes it
    moved = aw.world.upstream.commit("refs/heads/main", {"b.txt": lines("b", l1="up")})
    aw.world.source.stored.refresh()
    r = aw.post(f"{C}/{cid}/rebase")
    assert r.status_code == 200, r.text
    assert r.json()["moved"] is True and r.json()["candidate"]["base_commit"] == moved
    # the target changes the same line: 409 with the path, nothing moved
    before = aw.get(f"{C}/{cid}").json()
    aw.world.upstream.commit("refs/heads/main", {"a.txt": lines("a", l3="upstream")})
    aw.world.source.stored.refresh()
    r = aw.post(f"{C}/{cid}/rebase")
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["conflicts"] == ["a.txt"]
    after = aw.get(f"{C}/{cid}").json()
    assert (after["head_commit"], after["base_commit"]) == (
        before["head_commit"], before["base_commit"])
    assert after["has_conflicts"] is True
    assert aw.post(f"{C}/999/rebase").status_code == 404


def test_submit_lands_on_the_target_and_links_the_proposal(aw: ApiWorld) -> None:
    cand = _create(aw, "shipit", description="Ship it.")
    cid = cand["id"]
    _edit_and_publish(aw, cid, "alice", "a.txt", lines("a", l3="alice"))
    _edit_and_publish(aw, cid, "bob", "b.txt", lines("b", l2="bob"))
    before = aw.world.upstream.ref("refs/heads/main")
    r = aw.post(f"{C}/{cid}/submit")
    assert r.status_code == 200, r.text
    done = r.json()
    main = aw.world.upstream.ref("refs/heads/main")
    assert done["status"] == "submitted" and done["submitted_commit"] == main
    assert done["proposal"]["provider"] == "builtin" and done["proposal"]["number"] >= 1
    # one squashed commit on the old target, with the candidate's files (git CLI)
    assert aw.world.upstream.parents(main) == [before]
    assert aw.world.upstream.show(main, "a.txt") == lines("a", l3="alice")
    assert aw.world.upstream.show(main, "b.txt") == lines("b", l2="bob")
    subject = aw.world.upstream.git("log", "-1", "--format=%s", main).strip()
    assert subject == "Title of shipit"
    # submitted: no more changes, no abandon; submitting again changes nothing
    assert aw.post(f"{C}/{cid}/submit").json()["submitted_commit"] == main
    assert aw.post(f"{C}/{cid}/abandon").status_code == 409
    assert aw.patch(f"{C}/{cid}", json={"title": "late"}).status_code == 409
    r = aw.put(f"{C}/{cid}/workspaces/alice/files/a.txt", content=b"x",
               headers={"If-Match": "*"})
    assert r.status_code == 409


def test_submit_that_conflicts_with_the_target_is_409(aw: ApiWorld) -> None:
    cid = _create(aw, "clash")["id"]
    _edit_and_publish(aw, cid, "alice", "a.txt", lines("a", l3="alice"))
    aw.world.upstream.commit("refs/heads/main", {"a.txt": lines("a", l3="upstream")})
    before = aw.world.upstream.ref("refs/heads/main")
    # not fetched yet: the push's lease is lost, nothing is overwritten
    r = aw.post(f"{C}/{cid}/submit")
    assert r.status_code == 409, r.text
    assert r.json()["actual"] == before
    aw.world.source.stored.refresh()
    r = aw.post(f"{C}/{cid}/submit")
    assert r.status_code == 409, r.text
    assert r.json()["conflicts"] == ["a.txt"]
    assert aw.world.upstream.ref("refs/heads/main") == before
    assert aw.get(f"{C}/{cid}").json()["status"] == "open"


def test_abandon(aw: ApiWorld) -> None:
    cid = _create(aw, "dropped")["id"]
    r = aw.post(f"{C}/{cid}/abandon")
    assert r.status_code == 200 and r.json()["status"] == "abandoned"
    assert aw.post(f"{C}/{cid}/abandon").json()["status"] == "abandoned"  # idempotent
    # what was last found, not checked again
    r = aw.get(f"{C}/{cid}/conflicts")
    assert r.status_code == 200 and r.json()["has_conflicts"] is False
    assert aw.post(f"{C}/{cid}/submit").status_code == 409
    r = aw.put(f"{C}/{cid}/workspaces/alice/files/x.txt", content=b"x")
    assert r.status_code == 409
    assert "candidate.abandon" in aw.world.audit_actions()


def test_request_bodies_over_the_limit_are_413(tmp_path: Path) -> None:
    settings = ServeSettings(scheduler=False, ui=False, max_body_bytes=1000)
    with api_world(tmp_path, BASE_FILES, settings=settings) as aw:
        r = aw.post(C, json={"name": "big", "title": "x" * 2000})
        assert r.status_code == 413 and r.json()["limit"] == 1000
        assert aw.get(C).json()["items"] == []
