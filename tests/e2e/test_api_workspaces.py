"""End to end over real HTTP: users' workspaces in a candidate — files with ETags (If-Match,
If-None-Match, 412 with the current ETag, 428), listings, rollback, publish (and its 409 naming
the other user), sync, conflicts and resolve. What git defines is read back with the git CLI
from the source's mirror."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
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


def _candidate(aw: ApiWorld, name: str = "work") -> int:
    r = aw.post(C, json={"name": name, "title": "work"})
    assert r.status_code == 201, r.text
    cid: int = r.json()["id"]
    return cid


def _mirror(aw: ApiWorld) -> Upstream:
    assert aw.world.mirror_path is not None
    return Upstream(aw.world.mirror_path)


def _read(aw: ApiWorld, ws: str, path: str) -> httpx.Response:
    r = aw.get(f"{ws}/files/{path}")
    assert r.status_code == 200, r.text
    return r


def test_reading_a_workspace_does_not_create_it(aw: ApiWorld) -> None:
    cid = _candidate(aw)
    ws = f"{C}/{cid}/workspaces/alice"
    assert aw.get(ws).status_code == 404
    assert aw.get(f"{ws}/files/README.md").status_code == 404
    assert aw.get(f"{ws}/conflicts").status_code == 404
    assert aw.get(f"{C}/{cid}/workspaces").json() == {"items": [], "next_cursor": None}
    assert "refs/revisor/workspaces/1/alice" not in _mirror(aw).refs()
    # the first write makes it, at the candidate's head
    r = aw.put(f"{ws}/files/new.txt", content=b"hello\n")
    assert r.status_code == 201, r.text
    info = aw.get(ws).json()
    assert info["user"] == "alice" and info["unpublished"] == ["new.txt"]
    # made by the single user on alice's behalf: alice's identity, not the caller's
    assert info["author"]["name"] == "alice"
    assert info["in_sync"] is True and info["candidate"] == cid
    listed = aw.get(f"{C}/{cid}/workspaces").json()["items"]
    assert [w["user"] for w in listed] == ["alice"]
    assert aw.get(f"{C}/999/workspaces/alice").status_code == 404
    assert aw.get(f"{C}/999/workspaces").status_code == 404


def test_files_with_etags(aw: ApiWorld) -> None:
    cid = _candidate(aw)
    ws = f"{C}/{cid}/workspaces/alice"
    aw.put(f"{ws}/files/scratch.txt", content=b"x\n")  # make the workspace
    r = _read(aw, ws, "a.txt")
    assert r.content == lines("a")
    assert r.headers["content-type"] == "application/octet-stream"
    mirror = _mirror(aw)
    head = aw.get(ws).json()["head_commit"]
    etag = mirror.ls_tree(head)["a.txt"][1]
    assert r.headers["etag"] == f'"{etag}"' and r.headers["x-revisor-mode"] == "100644"
    # 304 for the version the client has
    assert aw.get(f"{ws}/files/a.txt", headers={"If-None-Match": f'"{etag}"'}).status_code == 304

    # replacing an existing file needs a precondition: 428
    r = aw.put(f"{ws}/files/a.txt", content=b"no\n")
    assert r.status_code == 428 and r.headers["content-type"] == "application/problem+json"
    # the version read: 200 and the new ETag (= git's blob id)
    r = aw.put(f"{ws}/files/a.txt", content=b"one\n", headers={"If-Match": f'"{etag}"'})
    assert r.status_code == 200, r.text
    new = r.json()["etag"]
    assert r.headers["etag"] == f'"{new}"'
    assert new == mirror.git("hash-object", "--stdin", input=b"one\n").strip()
    assert mirror.show(r.json()["head"], "a.txt") == b"one\n"
    # a stale ETag: 412 with the current one, nothing changed
    r = aw.put(f"{ws}/files/a.txt", content=b"two\n", headers={"If-Match": f'"{etag}"'})
    assert r.status_code == 412 and r.json()["current_etag"] == f'"{new}"'
    assert _read(aw, ws, "a.txt").content == b"one\n"
    # a list of ETags naming the current one, and * (any version)
    r = aw.put(f"{ws}/files/a.txt", content=b"three\n",
               headers={"If-Match": f'"{etag}", "{new}"'})
    assert r.status_code == 200, r.text
    r = aw.put(f"{ws}/files/a.txt", content=b"four\n", headers={"If-Match": "*"})
    assert r.status_code == 200 and _read(aw, ws, "a.txt").content == b"four\n"
    # * on a file that does not exist is 412 (current_etag null)
    r = aw.put(f"{ws}/files/missing.txt", content=b"m", headers={"If-Match": "*"})
    assert r.status_code == 412 and r.json()["current_etag"] is None
    # If-None-Match: * creates, and is 412 when the file exists
    r = aw.put(f"{ws}/files/dir/fresh.bin", content=bytes(range(256)),
               headers={"If-None-Match": "*", "Content-Type": "image/png"})
    assert r.status_code == 201 and r.json()["created"] is True
    assert _read(aw, ws, "dir/fresh.bin").content == bytes(range(256))
    r = aw.put(f"{ws}/files/dir/fresh.bin", content=b"again", headers={"If-None-Match": "*"})
    assert r.status_code == 412
    assert r.json()["current_etag"] == _read(aw, ws, "dir/fresh.bin").headers["etag"]
    assert aw.put(f"{ws}/files/a.txt", content=b"x", headers={
        "If-Match": "*", "If-None-Match": "*"}).status_code == 400
    # executable bit
    r = aw.put(f"{ws}/files/run.sh", content=b"#!/bin/sh\n",
               headers={"X-Revisor-Executable": "true"})
    assert r.status_code == 201
    assert mirror.ls_tree(r.json()["head"])["run.sh"][0] == "100755"
    assert _read(aw, ws, "run.sh").headers["x-revisor-mode"] == "100755"
    assert aw.put(f"{ws}/files/run.sh", content=b"", headers={
        "If-Match": "*", "X-Revisor-Executable": "maybe"}).status_code == 400
    # a commit message; an empty file
    r = aw.put(f"{ws}/files/empty.txt", content=b"", params={"message": "Add an empty file"})
    assert r.status_code == 201
    assert mirror.git("log", "-1", "--format=%s", r.json()["head"]).strip() == \
        "Add an empty file"
    assert _read(aw, ws, "empty.txt").content == b""


def test_two_clients_edit_one_file(aw: ApiWorld) -> None:
    """Both read the same version; the first save wins, the second gets 412 with the current
    ETag, and succeeds once it names it."""
    cid = _candidate(aw)
    ws = f"{C}/{cid}/workspaces/alice"
    aw.put(f"{ws}/files/scratch.txt", content=b"x\n")
    with httpx.Client(timeout=60) as other:
        first = _read(aw, ws, "c.txt").headers["etag"]
        second = other.get(f"{aw.api}{ws}/files/c.txt").headers["etag"]
        assert first == second
        r1 = aw.put(f"{ws}/files/c.txt", content=b"mine\n", headers={"If-Match": first})
        assert r1.status_code == 200
        r2 = other.put(f"{aw.api}{ws}/files/c.txt", content=b"theirs\n",
                       headers={"If-Match": second})
        assert r2.status_code == 412
        current = r2.json()["current_etag"]
        assert current == r1.headers["etag"]
        r3 = other.put(f"{aw.api}{ws}/files/c.txt", content=b"theirs\n",
                       headers={"If-Match": current})
        assert r3.status_code == 200
    assert _read(aw, ws, "c.txt").content == b"theirs\n"
    log = _mirror(aw).git("log", "--format=%s", r3.json()["head"]).splitlines()
    assert log[:2] == ["Update c.txt", "Update c.txt"]  # two saves, none lost


def test_simultaneous_saves_of_one_version_have_one_winner(aw: ApiWorld) -> None:
    """Eight clients save over the same ETag at once: one 200, seven 412 naming the winner's
    ETag, and exactly one new commit (no lost update)."""
    cid = _candidate(aw)
    ws = f"{C}/{cid}/workspaces/alice"
    aw.put(f"{ws}/files/scratch.txt", content=b"x\n")
    etag = _read(aw, ws, "c.txt").headers["etag"]
    before = aw.get(ws).json()["head_commit"]
    barrier = threading.Barrier(8)

    def save(i: int) -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            return client.put(f"{aw.api}{ws}/files/c.txt", content=f"client {i}\n".encode(),
                              headers={"If-Match": etag})

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(save, range(8)))
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [412] * 7, [r.text for r in results]
    (winner,) = [r for r in results if r.status_code == 200]
    assert {r.json()["current_etag"] for r in results if r.status_code == 412} == {
        winner.headers["etag"]}
    head = aw.get(ws).json()["head_commit"]
    assert _mirror(aw).git("rev-list", "--count", f"{before}..{head}").strip() == "1"


def test_listings_delete_rollback_and_bad_paths(aw: ApiWorld) -> None:
    cid = _candidate(aw)
    ws = f"{C}/{cid}/workspaces/alice"
    aw.put(f"{ws}/files/docs/extra.md", content=b"extra\n")
    root = aw.get(f"{ws}/files")
    assert root.status_code == 200 and root.headers["content-type"] == "application/json"
    names = [e["name"] for e in root.json()["items"]]
    head = root.json()["head"]
    mirror = _mirror(aw)
    git_names = mirror.git("ls-tree", "--name-only", head).split()
    assert names == git_names
    assert aw.get(f"{ws}/files/").json()["items"] == root.json()["items"]
    docs = aw.get(f"{ws}/files/docs").json()
    assert [e["path"] for e in docs["items"]] == ["docs/extra.md", "docs/guide.md"]
    assert aw.get(f"{ws}/files/docs/").json()["items"] == docs["items"]
    page = aw.get(f"{ws}/files", params={"limit": 2}).json()
    rest = aw.get(f"{ws}/files", params={"limit": 100, "cursor": page["next_cursor"]}).json()
    assert [e["name"] for e in page["items"] + rest["items"]] == names
    assert aw.get(f"{ws}/files/nothing/here").status_code == 404

    # delete: needs If-Match like a replacement
    assert aw.delete(f"{ws}/files/b.txt").status_code == 428
    assert aw.delete(f"{ws}/files/b.txt", headers={"If-Match": '"0000"'}).status_code == 412
    assert aw.delete(f"{ws}/files/nope.txt").status_code == 404
    etag = _read(aw, ws, "b.txt").headers["etag"]
    r = aw.delete(f"{ws}/files/b.txt", headers={"If-Match": etag})
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert "b.txt" not in mirror.ls_tree(r.json()["head"])

    # rollback: the base's version comes back; a file the base lacks goes away
    aw.put(f"{ws}/files/a.txt", content=b"changed\n", headers={"If-Match": "*"})
    r = aw.post(f"{ws}/files/a.txt:rollback")
    assert r.status_code == 200, r.text
    assert r.json()["deleted"] is False
    assert _read(aw, ws, "a.txt").content == lines("a")
    r = aw.post(f"{ws}/files/b.txt:rollback")
    assert r.json()["etag"] == mirror.ls_tree(aw.get(f"{C}/{cid}").json()["base_commit"])[
        "b.txt"][1]
    r = aw.post(f"{ws}/files/docs/extra.md:rollback")
    assert r.status_code == 200 and r.json() | {"head": None} == {
        "path": "docs/extra.md", "etag": None, "deleted": True, "head": None}
    assert aw.get(ws).json()["unpublished"] == []
    assert aw.post(f"{ws}/files/a.txt").status_code == 404  # POST is only :rollback
    assert aw.post(f"{ws}/files/docs:rollback").status_code == 400  # a directory

    # invalid paths and users are 400, before anything is made
    for bad in ("%2E%2E/etc/passwd", ".git/config", "a//b", "dir/%00x", "/abs"):
        r = aw.put(f"{ws}/files/{bad}", content=b"x")
        assert r.status_code == 400, (bad, r.text)
    # a file named like an option is only a name
    assert aw.put(f"{ws}/files/-rf", content=b"x").status_code == 201
    assert _read(aw, ws, "-rf").content == b"x"
    assert aw.put(f"{C}/{cid}/workspaces/{'u' * 300}/files/x", content=b"x").status_code == 400
    assert aw.get(f"{C}/{cid}/workspaces/nul%00user").status_code == 400
    # any other user name is encoded into a valid ref
    assert aw.put(f"{C}/{cid}/workspaces/bad..user/files/x", content=b"x").status_code == 201
    (ref,) = [r for r in mirror.refs("refs/revisor/workspaces/") if r.endswith("user")]
    assert ref != f"refs/revisor/workspaces/{cid}/bad..user"
    mirror.git("check-ref-format", ref)
    assert aw.get(f"{ws}/files/%2E%2E/README.md").status_code == 400


def test_a_large_file_streams_back(aw: ApiWorld) -> None:
    cid = _candidate(aw)
    ws = f"{C}/{cid}/workspaces/alice"
    data = bytes(range(256)) * (3 * 4096 + 7)  # over 3 MiB: streamed, not sent from memory
    r = aw.put(f"{ws}/files/big/blob.bin", content=data)
    assert r.status_code == 201, r.text
    with aw.client.stream("GET", f"{aw.api}{ws}/files/big/blob.bin") as got:
        assert got.status_code == 200
        assert got.headers["content-length"] == str(len(data))
        assert got.headers["etag"] == f'"{r.json()["etag"]}"'
        body = b"".join(got.iter_bytes())
    assert body == data
    assert _mirror(aw).show(r.json()["head"], "big/blob.bin") == data


def test_big_files_are_413(tmp_path: Path) -> None:
    settings = ServeSettings(scheduler=False, ui=False, max_body_bytes=4096)
    with api_world(tmp_path, BASE_FILES, settings=settings) as aw:
        cid = _candidate(aw)
        ws = f"{C}/{cid}/workspaces/alice"
        r = aw.put(f"{ws}/files/big.bin", content=b"x" * 5000)
        assert r.status_code == 413 and r.json()["limit"] == 4096

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(10):
                yield b"y" * 1000

        r = aw.put(f"{ws}/files/big.bin", content=chunks())
        assert r.status_code == 413
        assert r.json()["detail"] == "the request body is larger than the limit of 4096 bytes"
        assert aw.get(f"{ws}/files/big.bin").status_code == 404
        assert aw.put(f"{ws}/files/small.bin", content=b"x" * 4000).status_code == 201


def test_files_over_the_file_limit_are_413(tmp_path: Path) -> None:
    """``--max-file`` holds for a workspace save as for a file of a transaction."""
    settings = ServeSettings(scheduler=False, ui=False, max_body_bytes=4096, max_file_bytes=100)
    with api_world(tmp_path, BASE_FILES, settings=settings) as aw:
        cid = _candidate(aw)
        ws = f"{C}/{cid}/workspaces/alice"
        r = aw.put(f"{ws}/files/big.bin", content=b"x" * 101)
        assert r.status_code == 413 and r.json()["limit"] == 100, r.text
        assert "big.bin" in r.json()["detail"]
        assert aw.get(f"{ws}/files/big.bin").status_code == 404
        assert aw.put(f"{ws}/files/big.bin", content=b"x" * 100).status_code == 201


def test_publish_conflict_sync_resolve_and_publish(aw: ApiWorld) -> None:
    cid = _candidate(aw)
    alice, bob = f"{C}/{cid}/workspaces/alice", f"{C}/{cid}/workspaces/bob"
    # both start from the candidate's head and change the same line
    for ws in (alice, bob):
        r = aw.post(f"{ws}/sync")
        assert r.status_code == 200 and r.json()["up_to_date"] is True
    assert aw.put(f"{alice}/files/a.txt", content=lines("a", l3="alice"),
                  headers={"If-Match": "*"}).status_code == 200
    assert aw.put(f"{bob}/files/a.txt", content=lines("a", l3="bob"),
                  headers={"If-Match": "*"}).status_code == 200
    assert aw.put(f"{bob}/files/b.txt", content=lines("b", l1="bob"),
                  headers={"If-Match": "*"}).status_code == 200
    r = aw.post(f"{alice}/publish", json={"message": "Alice's change"})
    assert r.status_code == 200 and r.json()["published"] is True
    published = r.json()["commit"]
    mirror = _mirror(aw)
    assert mirror.ref(f"refs/revisor/candidates/{cid}") == published
    assert mirror.git("log", "-1", "--format=%s", published).strip() == "Alice's change"
    assert aw.post(f"{alice}/publish").json() == {"user": "alice", "published": False,
                                                 "commit": None}  # nothing left

    # bob's publish conflicts with alice's commit: 409 naming her, nothing moved
    r = aw.post(f"{bob}/publish")
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["conflicts"] == [
        {"path": "a.txt", "candidate_commits": [published], "users": ["alice"]}]
    assert mirror.ref(f"refs/revisor/candidates/{cid}") == published

    # sync takes what merges, and stops on the conflict
    r = aw.post(f"{bob}/sync")
    assert r.status_code == 200, r.text
    sync = r.json()
    assert sync["up_to_date"] is False and [c["path"] for c in sync["conflicts"]] == ["a.txt"]
    assert sync["conflicts"][0]["users"] == ["alice"]
    r = aw.get(f"{bob}/conflicts")
    assert r.status_code == 200
    (conflict,) = r.json()["items"]
    assert conflict["path"] == "a.txt" and conflict["resolved"] is False

    def content(version: dict[str, object]) -> bytes:
        return base64.b64decode(str(version["content_base64"]))

    assert content(conflict["base"]) == lines("a")
    assert content(conflict["theirs"]) == lines("a", l3="alice")
    assert content(conflict["ours"]) == lines("a", l3="bob")
    assert conflict["theirs"]["etag"] == mirror.ls_tree(published)["a.txt"][1]

    # refused resolutions are 422 (not a conflicting path) or 400 (two choices at once)
    assert aw.post(f"{bob}/resolve", json={"b.txt": {"take": "ours"}}).status_code == 422
    assert aw.post(f"{bob}/resolve", json={"a.txt": {"take": "ours", "content": "x"}}
                   ).status_code == 400
    assert aw.post(f"{bob}/resolve", json={"a.txt": {"take": "mine"}}).status_code == 422
    merged = lines("a", l3="alice and bob")
    r = aw.post(f"{bob}/resolve",
                json={"a.txt": {"content_base64": base64.b64encode(merged).decode()}})
    assert r.status_code == 200, r.text
    resolved = r.json()
    assert resolved["done"] is True and resolved["synced_to"] == published
    assert aw.get(bob).json()["in_sync"] is True
    r = aw.post(f"{bob}/publish")
    assert r.status_code == 200 and r.json()["published"] is True
    head = r.json()["commit"]
    assert mirror.show(head, "a.txt") == merged
    assert mirror.show(head, "b.txt") == lines("b", l1="bob")
    assert mirror.parents(head) == [published]
    # alice syncs and gets bob's work
    r = aw.post(f"{alice}/sync")
    assert r.json()["up_to_date"] is True and r.json()["synced_to"] == head
    assert _read(aw, alice, "a.txt").content == merged


def test_resolve_by_taking_a_version(aw: ApiWorld) -> None:
    cid = _candidate(aw)
    alice, bob = f"{C}/{cid}/workspaces/alice", f"{C}/{cid}/workspaces/bob"
    for ws in (alice, bob):
        aw.post(f"{ws}/sync")
    aw.put(f"{alice}/files/a.txt", content=lines("a", l3="alice"), headers={"If-Match": "*"})
    aw.put(f"{alice}/files/c.txt", content=lines("c", l3="alice"), headers={"If-Match": "*"})
    aw.put(f"{bob}/files/a.txt", content=lines("a", l3="bob"), headers={"If-Match": "*"})
    aw.put(f"{bob}/files/c.txt", content=lines("c", l3="bob"), headers={"If-Match": "*"})
    assert aw.post(f"{alice}/publish").status_code == 200
    assert aw.post(f"{bob}/sync").json()["conflicts"] != []
    r = aw.post(f"{bob}/resolve", json={"a.txt": {"take": "base"}})
    assert r.status_code == 200 and r.json() | {"head": ""} == {
        "user": "bob", "done": False, "head": "", "synced_to": None, "remaining": ["c.txt"]}
    r = aw.post(f"{bob}/resolve", json={"c.txt": {"take": "theirs"}})
    assert r.status_code == 200 and r.json()["done"] is True
    assert _read(aw, bob, "a.txt").content == lines("a")
    assert _read(aw, bob, "c.txt").content == lines("c", l3="alice")
    assert aw.get(f"{bob}/conflicts").json()["items"] == []
