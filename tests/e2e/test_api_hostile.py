"""End to end over real HTTP: hostile input against every route that takes a path or a revision
(``../``, ``%2e%2e/``, absolute paths, ``.git/config``, NUL, ``--output=FILE`` as a revision,
``refs/../heads``) answers 400 or 404 — never a 5xx, never a file written — and credentials
never appear in a response or a log line."""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from revisor.bootstrap import Revisor
from revisor.config import Config
from tests.integration.test_transactions_support import (
    FAST,
    REVISOR,
    Upstream,
    World,
    make_world,
)
from tests.support.api import ApiWorld, api_world
from tests.support.githttp import GitHttpServer
from tests.support.server import serve_app

S = "/sources/proj"
# the same on every xdist worker (parameter ids must agree between workers), unique per run
MARK = Path(f"/tmp/revisor-hostile-{os.environ.get('PYTEST_XDIST_TESTRUNUID', os.getpid())}")
HOSTILE_PATHS = ["../etc/passwd", "..", "/etc/passwd", ".git/config", ".GIT/HEAD", "a\x00b",
                 "docs/../../x", "a//b", "docs/.git/x"]
# valid git paths that only look hostile: taken literally (a file of that name), never decoded
# again and never read as an option
LITERAL_PATHS = ["%2e%2e/x", f"--output={MARK}"]
HOSTILE_REVS = [f"--output={MARK}", "refs/../heads", "../main", "%2e%2e/main", "main\x00",
                "main:README.md", "main..main", "@{-1}", "-n1", "/etc/passwd", "HEAD^{tree}"]


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    tmp = tmp_path_factory.mktemp("hostile")
    with api_world(tmp, {"README.md": "hello\n", "docs/a.md": "a\n"}) as w:
        yield w


def _ok(r: httpx.Response) -> None:
    assert r.status_code in (400, 404), (r.request.url, r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_paths(aw: ApiWorld, path: str) -> None:
    for route in ("/tree", "/blob", "/log", "/diff", "/archive"):
        params = {"path": path}
        if route == "/archive":
            params = {"rev": path}
        _ok(aw.get(S + route, params=params))
    r = aw.post(S + "/transactions", json={"message": "m", "changes": [
        {"op": "write", "path": path, "content": "x"}]})
    _ok(r)
    r = aw.post(S + "/transactions", json={"message": "m", "changes": [
        {"op": "move", "from": "README.md", "to": path}]})
    _ok(r)
    assert not MARK.exists()


@pytest.mark.parametrize("path", LITERAL_PATHS)
def test_paths_that_look_hostile_are_literal(aw: ApiWorld, path: str) -> None:
    for route in ("/tree", "/blob"):
        _ok(aw.get(S + route, params={"path": path}))
    r = aw.get(S + "/log", params={"path": path})
    assert r.status_code == 200 and r.json()["items"] == []
    r = aw.post(S + "/transactions", json={"message": "m", "changes": [
        {"op": "write", "path": path, "content": "literal"}]})
    assert r.status_code == 201, r.text
    assert aw.world.upstream.show(r.json()["commit"], path) == b"literal"
    assert not MARK.exists()


@pytest.mark.parametrize("rev", HOSTILE_REVS)
def test_hostile_revisions(aw: ApiWorld, rev: str) -> None:
    for route, key in (("/tree", "rev"), ("/blob", "rev"), ("/log", "rev"), ("/diff", "from"),
                       ("/diff", "to"), ("/archive", "rev")):
        params = {key: rev}
        if route == "/blob":
            params["path"] = "README.md"
        _ok(aw.get(S + route, params=params))
    _ok(aw.get(f"{S}/commits/{quote(rev, safe='/')}"))
    _ok(aw.post(S + "/transactions", json={"message": "m", "base": rev, "changes": [
        {"op": "write", "path": "x", "content": "x"}]}))
    r = aw.post(S + "/transactions", json={"message": "m", "branch": rev, "changes": [
        {"op": "write", "path": "x", "content": "x"}]})
    # as a branch name, git decides: what check-ref-format accepts is a (literal) branch
    valid = "\x00" not in rev and not rev.startswith("-") and subprocess.run(
        ["git", "check-ref-format", f"refs/heads/{rev}"], check=False).returncode == 0
    if valid:
        assert r.status_code == 201, r.text
        assert aw.world.upstream.ref(f"refs/heads/{rev}") == r.json()["commit"]
    else:
        _ok(r)
    assert not MARK.exists()


@pytest.mark.parametrize(
    "raw",
    [
        "/tree?path=%2e%2e%2f%2e%2e%2fetc",
        "/blob?path=%2Fetc%2Fpasswd",
        "/blob?path=README.md&rev=%2D%2Doutput%3D%2Ftmp%2Fx",
        "/blob?path=a%00b",
        "/commits/..%2F..%2Fetc%2Fpasswd",
        "/commits/%2D%2Doutput=%2Ftmp%2Fx",
        "/commits/refs%2F..%2Fheads",
        "/refs?prefix=refs%2F..%2F",
        "/refs?prefix=%00",
    ],
)
def test_encoded_urls(aw: ApiWorld, raw: str) -> None:
    existed = Path("/tmp/x").exists()
    r = aw.client.get(aw.api + S + raw)
    _ok(r)
    assert Path("/tmp/x").exists() == existed


def test_dot_segments_in_the_url_never_leave_the_api(aw: ApiWorld) -> None:
    for raw in ("/api/v1/sources/proj/../../../etc/passwd", "/api/v1/%2e%2e/%2e%2e/etc/passwd"):
        r = aw.client.get(aw.url + raw)
        assert r.status_code == 404
        assert b"root:" not in r.content


# -- credentials ----------------------------------------------------------------------------------
SECRET = "s3cr3t-" + uuid.uuid4().hex


def _assert_clean(responses: list[httpx.Response], logs: str) -> None:
    for r in responses:
        assert SECRET not in r.text, (r.request.url, r.text)
        assert all(SECRET not in v for v in r.headers.values())
    assert SECRET not in logs


def test_credentials_never_leak(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    root = tmp_path / "served"
    root.mkdir()
    up = Upstream.init(root / "proj.git", {"README.md": "hello\n"})
    server = GitHttpServer(root, auth=("bot", SECRET))
    server.start()
    try:
        # the served source reads its password from the environment; the other has one in its URL
        cfg = {"type": "git", "url": server.url_for("proj.git"), "branch": "main",
               "refresh": "1h", "credentials": {"username": "bot", "password_env": "PROJ_TOKEN"}}
        config = Config.model_validate({"data_dir": str(tmp_path / "w" / "data"),
                                        "sources": {"proj": cfg}})
        rv = Revisor(config, policy=FAST, identity=REVISOR, env={"PROJ_TOKEN": SECRET}).start()
        world = World("http", tmp_path / "w", up, cfg["url"], cfg, rv)
        down = make_world("http", tmp_path / "down", upstream=up.path,
                          url=f"http://bot:{SECRET}@127.0.0.1:9/proj.git")
        from revisor.api.app import create_app
        from revisor.api.settings import ServeSettings

        responses: list[httpx.Response] = []
        settings = ServeSettings(scheduler=False, ui=False)
        try:
            with serve_app(create_app(world.rv, settings)) as base, \
                    serve_app(create_app(down.rv, settings)) as dead, \
                    httpx.Client(timeout=60) as client:
                api = base + "/api/v1"
                for path in ("/sources", S, f"{S}/refs", f"{S}/log", f"{S}/tree",
                             f"{S}/commits/nope", "/openapi.json", "/metrics", "/readyz"):
                    responses.append(client.get(api + path))
                responses.append(client.post(api + f"{S}/refresh"))
                responses.append(client.post(api + f"{S}/transactions", json={
                    "message": "m", "changes": [{"op": "write", "path": "x", "content": "x"}]}))
                assert responses[1].json()["location"].startswith("http://127.0.0.1:")
                assert responses[-1].status_code == 201, responses[-1].text
                api = dead + "/api/v1"
                for path in ("/sources", S, f"{S}/log", f"{S}/tree"):
                    responses.append(client.get(api + path))
                unavailable = client.post(api + f"{S}/refresh")
                responses.append(unavailable)
                assert unavailable.status_code == 503, unavailable.text
                assert int(unavailable.headers["retry-after"]) >= 1
                # the problem says it too, as the same whole seconds as the header
                assert unavailable.json()["retry_after"] == \
                    int(unavailable.headers["retry-after"])
        finally:
            world.close()
            down.close()
    finally:
        server.stop()
    assert all(r.status_code < 500 or r.status_code == 503 for r in responses)
    _assert_clean(responses, caplog.text)
