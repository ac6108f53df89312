"""End to end over real HTTP: ``POST /sources/{s}/transactions`` — 201 with commit, branch and
proposal; 200 empty; 409 stale base; 400 bad paths and revisions; 413 over the file and body
limits; 422 malformed bodies; idempotency keys; direct commits. What reached the upstream is read
back with the git CLI."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from revisor.api.settings import ServeSettings
from tests.support.api import ApiWorld, api_world

T = "/sources/proj/transactions"
FILES = {"README.md": "hello\n", "docs/a.md": "a\n", "docs/b.md": "b\n"}


@pytest.fixture
def aw(tmp_path: Path) -> Iterator[ApiWorld]:
    with api_world(tmp_path, FILES, allow_direct=True) as w:
        yield w


def test_a_transaction_commits_pushes_and_proposes(aw: ApiWorld) -> None:
    up = aw.world.upstream
    main = up.ref("refs/heads/main")
    body = {
        "message": "Edit docs\n\nWhy.",
        "changes": [
            {"op": "write", "path": "docs/a.md", "content": "A\n"},
            {"op": "write", "path": "bin/tool", "content_base64":
                base64.b64encode(b"\x00#!tool\n").decode(), "executable": True},
            {"op": "delete", "path": "docs/b.md"},
            {"op": "move", "from": "README.md", "to": "READ.md"},
        ],
    }
    r = aw.post(T, json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["empty"] is False and out["base"] == main and out["replayed"] is False
    assert out["proposal"]["provider"] == "builtin" and out["proposal"]["number"] == 1
    branch = out["branch"]
    assert up.ref(f"refs/heads/{branch}") == out["commit"]
    assert up.parents(out["commit"]) == [main]
    tree = up.ls_tree(out["commit"])
    assert set(tree) == {"READ.md", "bin/tool", "docs/a.md"}
    assert tree["bin/tool"][0] == "100755"
    assert up.show(out["commit"], "bin/tool") == b"\x00#!tool\n"
    assert up.show(out["commit"], "docs/a.md") == b"A\n"
    # attributed to the caller (single-user mode: the local administrator)
    author = up.git("log", "-1", "--format=%an <%ae>", out["commit"]).strip()
    assert author == "local <local@revisor>"
    assert up.git("log", "-1", "--format=%B", out["commit"]).strip() == "Edit docs\n\nWhy."
    p = aw.get(f"/sources/proj/proposals/{out['proposal']['number']}").json()
    assert p["source_branch"] == branch and p["status"] == "open"
    assert up.ref("refs/heads/main") == main  # the target did not move


def test_nothing_changed_is_200_empty(aw: ApiWorld) -> None:
    before = aw.world.upstream.branches()
    r = aw.post(T, json={"message": "same", "changes": [
        {"op": "write", "path": "README.md", "content": "hello\n"}]})
    assert r.status_code == 200, r.text
    assert r.json()["empty"] is True and r.json()["commit"] is None
    assert aw.world.upstream.branches() == before


def test_stale_expected_base_is_409(aw: ApiWorld) -> None:
    up = aw.world.upstream
    old = up.ref("refs/heads/main")
    moved = up.commit("refs/heads/main", {"other.txt": "x\n"})
    r = aw.post(T, json={"message": "m", "expected": old, "changes": [
        {"op": "write", "path": "x.txt", "content": "x"}]})
    assert r.status_code == 409, r.text
    problem = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith("/stale-base")
    assert (problem["expected"], problem["actual"]) == (old, moved)
    ok = aw.post(T, json={"message": "m", "expected": moved, "changes": [
        {"op": "write", "path": "x.txt", "content": "x"}]})
    assert ok.status_code == 201 and ok.json()["base"] == moved
    bad = aw.post(T, json={"message": "m", "expected": "HEAD", "changes": []})
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "change",
    [
        {"op": "write", "path": "../x", "content": "x"},
        {"op": "write", "path": "/etc/passwd", "content": "x"},
        {"op": "write", "path": ".git/config", "content": "x"},
        {"op": "write", "path": "a\u0000b", "content": "x"},
        {"op": "delete", "path": "a//b"},
        {"op": "move", "from": "README.md", "to": "../README.md"},
        {"op": "write", "path": "x", "content_base64": "***"},
        {"op": "write", "path": "x", "content": "a", "content_base64": "YQ=="},
        {"op": "write", "path": "x"},
    ],
)
def test_bad_changes_are_400_and_change_nothing(aw: ApiWorld, change: dict[str, str]) -> None:
    before = aw.world.upstream.branches()
    r = aw.post(T, json={"message": "m", "changes": [change]})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert aw.world.upstream.branches() == before
    assert aw.world.journal_rows() == []


def test_bad_revisions_and_branches_are_400(aw: ApiWorld) -> None:
    change = [{"op": "write", "path": "x", "content": "x"}]
    for base in ("--output=/tmp/x", "main..other", "refs/../heads"):
        assert aw.post(T, json={"message": "m", "base": base, "changes": change}).status_code \
            == 400
    for branch in ("-f", "a..b", "with space"):
        assert aw.post(T, json={"message": "m", "branch": branch, "changes": change}) \
            .status_code == 400
    assert aw.post(T, json={"message": "m", "base": "nope", "changes": change}).status_code \
        == 404
    assert not Path("/tmp/x").exists()


def test_malformed_bodies_are_422(aw: ApiWorld) -> None:
    assert aw.post(T, json={"changes": []}).status_code == 422  # no message
    assert aw.post(T, json={"message": "", "changes": []}).status_code == 422
    assert aw.post(T, json={"message": "m", "changes": [{"op": "chown", "path": "x"}]}) \
        .status_code == 422
    assert aw.post(T, json={"message": "m", "changes": [], "colour": 1}).status_code == 422
    r = aw.post(T, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"]
    assert aw.post("/sources/nope/transactions", json={"message": "m", "changes": []}) \
        .status_code == 404


def test_idempotency_key_returns_the_first_result(aw: ApiWorld) -> None:
    body = {"message": "once", "changes": [{"op": "write", "path": "once.txt", "content": "1"}]}
    first = aw.post(T, json=body, headers={"Idempotency-Key": "req-42"})
    assert first.status_code == 201
    second = aw.post(T, json=body, headers={"Idempotency-Key": "req-42"})
    assert second.status_code == 201 and second.json()["replayed"] is True
    assert second.json()["commit"] == first.json()["commit"]
    assert len(aw.world.upstream.revisor_branches()) == 1
    assert aw.post(T, json=body, headers={"Idempotency-Key": "has space"}).status_code == 400


def test_direct_commits_need_allow_direct(aw: ApiWorld, tmp_path: Path) -> None:
    up = aw.world.upstream
    main = up.ref("refs/heads/main")
    r = aw.post(T, json={"message": "direct", "propose": False, "branch": "main",
                         "changes": [{"op": "write", "path": "d.txt", "content": "d"}]})
    assert r.status_code == 201, r.text
    assert r.json()["direct"] is True and r.json()["proposal"] is None
    assert up.ref("refs/heads/main") == r.json()["commit"] and up.parents(r.json()["commit"]) \
        == [main]
    with api_world(tmp_path / "strict", FILES) as strict:
        r = strict.post(T, json={"message": "direct", "propose": False, "branch": "main",
                                 "changes": [{"op": "write", "path": "d.txt", "content": "d"}]})
        assert r.status_code == 403, r.text


def test_size_limits_are_413(tmp_path: Path) -> None:
    settings = ServeSettings(scheduler=False, ui=False, max_body_bytes=64 * 1024,
                             max_file_bytes=1000)
    with api_world(tmp_path, FILES, settings=settings) as w:
        before = w.world.upstream.branches()
        r = w.post(T, json={"message": "big", "changes": [
            {"op": "write", "path": "big.txt", "content": "x" * 1001}]})
        assert r.status_code == 413, r.text
        assert r.json()["limit"] == 1000
        r = w.post(T, json={"message": "big", "changes": [
            {"op": "write", "path": "big.txt", "content": "x" * 100_000}]})
        assert r.status_code == 413 and r.json()["limit"] == 64 * 1024

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"message": "m", "changes": [{"op": "write", "path": "a", "content": "'
            for _ in range(100):
                yield b"y" * 1024
            yield b'"}]}'

        r = w.client.post(w.api + T, content=chunks(), headers={"content-type":
                                                                "application/json"})
        assert r.status_code == 413
        assert w.world.upstream.branches() == before
        ok = w.post(T, json={"message": "ok", "changes": [
            {"op": "write", "path": "ok.txt", "content": "x" * 1000}]})
        assert ok.status_code == 201
