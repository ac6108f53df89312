"""End to end over real HTTP: the browse routes — sources, refs, commits, log, tree (with last
commits), blob (ETag, 304, Range, 416, streaming), diff, archive, refresh.

One served Revisor per module over a bare upstream with a small history (nested directories, an
executable, a symlink, a binary file, a file above the 8 MB streaming threshold, a branch with a
slash, a tag). Every answer that git defines is compared with the git CLI.
"""

from __future__ import annotations

import io
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from revisor.api.settings import ServeSettings
from tests.integration.test_transactions_support import Upstream
from tests.support.api import ApiWorld, api_world

S = "/sources/proj"
BIG = bytes(range(256)) * (40 * 1024 + 7)  # ~10 MB: above the 8 MB streaming threshold


def _seed(up: Upstream, tmp: Path) -> None:
    up.commit("refs/heads/main", {"docs/guide.md": "# Guide\n", "src/app.py": "print(1)\n"},
              message="add docs and app")
    up.commit("refs/heads/main", {"src/app.py": "print(2)\n", "run.sh": ("100755", "#!/bin/sh\n"),
                                  "link": ("120000", "README.md")}, message="change app")
    big = tmp / "big.bin"
    big.write_bytes(BIG)
    blob = up.write_blob(big)
    up.commit("refs/heads/main", {"data/big.bin": blob, "data/small.bin": b"\x00\x01\x02\xff"},
              message="data")
    up.commit("refs/heads/main", {"docs/guide.md": "# Guide\n\nMore.\n"}, message="more docs")
    main = up.ref("refs/heads/main")
    assert main is not None
    up.commit("refs/heads/feature/x", {"feature.txt": "x\n"}, parent=main, message="feature")
    up.git("tag", "v1", f"{main}~1")


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    tmp = tmp_path_factory.mktemp("browse")
    up = Upstream.init(tmp / "upstream.git", {"README.md": "hello\n"})
    _seed(up, tmp)
    with api_world(tmp, upstream=up.path, kind="git") as w:
        yield w


def _git_log(aw: ApiWorld, *args: str) -> list[str]:
    return aw.world.upstream.git("log", "--format=%H", *args).split()


# -- sources and refs -----------------------------------------------------------------------------
def test_sources(aw: ApiWorld) -> None:
    r = aw.get("/sources")
    assert r.status_code == 200
    (item,) = r.json()["items"]
    assert item["name"] == "proj" and item["type"] == "git" and item["provider"] == "builtin"
    assert r.json()["next_cursor"] is None
    one = aw.get(S).json()
    assert one["target_branch"] == "main" and one["freshness"]["refresh_interval_s"] == 3600
    assert aw.get("/sources/nope").status_code == 404
    assert aw.get("/sources", params={"cursor": "not-a-cursor"}).status_code == 400
    assert aw.get("/sources", params={"limit": 0}).status_code == 422
    assert aw.get("/sources", params={"limit": 100_000}).status_code == 422


def test_refs_paginate_to_what_git_lists(aw: ApiWorld) -> None:
    want = sorted(aw.world.upstream.refs("refs/").items())
    got: list[tuple[str, str]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        r = aw.get(f"{S}/refs", params=params)
        assert r.status_code == 200, r.text
        got += [(i["name"], i["target"]) for i in r.json()["items"]]
        pages += 1
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert got == want and pages == len(want)
    heads = aw.get(f"{S}/refs", params={"prefix": "heads/"}).json()["items"]
    assert [h["name"] for h in heads] == ["refs/heads/feature/x", "refs/heads/main"]
    assert aw.get(f"{S}/refs", params={"prefix": "refs/../x"}).status_code == 400
    log_cursor = aw.get(f"{S}/log", params={"limit": 1}).json()["next_cursor"]
    assert aw.get(f"{S}/refs", params={"cursor": log_cursor}).status_code == 400


# -- commits and log ------------------------------------------------------------------------------
def test_commit_by_revision_with_slashes(aw: ApiWorld) -> None:
    up = aw.world.upstream
    r = aw.get(f"{S}/commits/feature/x")
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["id"] == up.ref("refs/heads/feature/x")
    assert c["summary"] == "feature" and c["parents"] == [up.ref("refs/heads/main")]
    assert [ch["path"] for ch in c["changes"]] == ["feature.txt"]
    assert c["author"]["time"].endswith(("Z", "+00:00"))
    assert aw.get(f"{S}/commits/v1").json()["id"] == up.git("rev-parse", "main~1").strip()
    assert aw.get(f"{S}/commits/main~2").json()["id"] == up.git("rev-parse", "main~2").strip()
    assert aw.get(f"{S}/commits/refs/heads/main").json()["id"] == up.ref("refs/heads/main")
    assert aw.get(f"{S}/commits/nope").status_code == 404
    assert aw.get(f"{S}/commits/main..feature").status_code == 400


def test_log_pages_follow_git_log(aw: ApiWorld) -> None:
    want = _git_log(aw, "main")
    got: list[str] = []
    params: dict[str, str | int] = {"limit": 2}
    while True:
        r = aw.get(f"{S}/log", params=params)
        assert r.status_code == 200, r.text
        got += [c["id"] for c in r.json()["items"]]
        if r.json()["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": r.json()["next_cursor"]}
    assert got == want
    by_path = [c["id"] for c in aw.get(f"{S}/log", params={"path": "src/app.py"}).json()["items"]]
    assert by_path == _git_log(aw, "main", "--", "src/app.py")
    feat = aw.get(f"{S}/log", params={"rev": "feature/x", "limit": 1}).json()
    assert feat["items"][0]["summary"] == "feature" and feat["next_cursor"] is not None
    assert aw.get(f"{S}/log", params={"cursor": "e30"}).status_code == 400
    assert aw.get(f"{S}/log", params={"path": "/etc"}).status_code == 400


# -- trees ----------------------------------------------------------------------------------------
def test_tree_matches_ls_tree_and_last_commits_match_git_log(aw: ApiWorld) -> None:
    up = aw.world.upstream
    for path in ("", "docs", "data"):
        r = aw.get(f"{S}/tree", params={"path": path, "last_commits": "true"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["commit"] == up.ref("refs/heads/main") and body["partial"] is False
        spec = f"main:{path}" if path else "main"
        listed = up.git("ls-tree", spec).splitlines()
        want = {line.split("\t")[1]: line.split()[2] for line in listed}
        assert {e["name"]: e["id"] for e in body["entries"]} == want
        for e in body["entries"]:
            full = f"{path}/{e['name']}" if path else e["name"]
            last = up.git("log", "-1", "--format=%H", "main", "--", full).strip()
            assert e["last_commit"]["id"] == last, full
    plain = aw.get(f"{S}/tree").json()
    kinds = {e["name"]: (e["kind"], e["mode"]) for e in plain["entries"]}
    assert kinds["run.sh"] == ("file", 0o100755) and kinds["link"] == ("symlink", 0o120000)
    assert kinds["docs"] == ("dir", 0o040000)
    assert all(e["last_commit"] is None for e in plain["entries"])
    assert aw.get(f"{S}/tree", params={"path": "README.md"}).status_code == 404
    assert aw.get(f"{S}/tree", params={"path": "nope"}).status_code == 404
    assert aw.get(f"{S}/tree", params={"rev": "v1", "path": "docs"}).status_code == 200


def test_tree_with_no_budget_is_partial_then_complete(tmp_path: Path) -> None:
    settings = ServeSettings(scheduler=False, ui=False, last_commit_budget_s=0.0)
    files = {f"d{i}/f.txt": f"{i}\n" for i in range(30)}
    with api_world(tmp_path, files, settings=settings) as w:
        for i in range(30):
            w.world.upstream.commit("refs/heads/main", {f"d{i}/f.txt": f"{i} again\n"})
        w.post(f"{S}/refresh")
        first = w.get(f"{S}/tree", params={"last_commits": "true"}).json()
        unknown = [e for e in first["entries"] if e["last_commit"] is None]
        assert first["partial"] is bool(unknown)
        deadline = time.monotonic() + 60
        body = first
        while body["partial"]:
            assert time.monotonic() < deadline, "the listing never completed"
            time.sleep(0.05)
            body = w.get(f"{S}/tree", params={"last_commits": "true"}).json()
        for e in body["entries"]:
            want = w.world.upstream.git("log", "-1", "--format=%H", "main", "--", e["name"])
            assert e["last_commit"]["id"] == want.strip()
        known_first = {e["name"]: e["last_commit"]["id"] for e in first["entries"]
                       if e["last_commit"] is not None}
        assert all(body_e["last_commit"]["id"] == known_first[body_e["name"]]
                   for body_e in body["entries"] if body_e["name"] in known_first)


# -- blobs ----------------------------------------------------------------------------------------
def test_blob_bytes_etag_and_304(aw: ApiWorld) -> None:
    up = aw.world.upstream
    r = aw.get(f"{S}/blob", params={"path": "src/app.py"})
    assert r.status_code == 200
    assert r.content == up.show("main", "src/app.py") == b"print(2)\n"
    blob_id = up.git("rev-parse", "main:src/app.py").strip()
    assert r.headers["etag"] == f'"{blob_id}"'
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"].startswith("text/x-python")
    assert r.headers["x-content-type-options"] == "nosniff"
    again = aw.get(f"{S}/blob", params={"path": "src/app.py"},
                   headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == r.headers["etag"]
    other = aw.get(f"{S}/blob", params={"path": "src/app.py", "rev": "main~3"},
                   headers={"If-None-Match": r.headers["etag"]})
    assert other.status_code == 200 and other.content == b"print(1)\n"
    small = aw.get(f"{S}/blob", params={"path": "data/small.bin", "download": "true"})
    assert small.content == b"\x00\x01\x02\xff"
    assert small.headers["content-type"] == "application/octet-stream"
    assert small.headers["content-disposition"] == "attachment; filename*=UTF-8''small.bin"
    link = aw.get(f"{S}/blob", params={"path": "link"})
    assert link.content == b"README.md"
    assert aw.get(f"{S}/blob", params={"path": "docs"}).status_code == 404
    assert aw.get(f"{S}/blob", params={"path": "nope.txt"}).status_code == 404
    assert aw.get(f"{S}/blob").status_code == 422  # path is required


def test_blob_ranges(aw: ApiWorld) -> None:
    p = {"path": "README.md"}
    whole = b"hello\n"
    r = aw.get(f"{S}/blob", params=p, headers={"Range": "bytes=1-3"})
    assert r.status_code == 206 and r.content == whole[1:4]
    assert r.headers["content-range"] == f"bytes 1-3/{len(whole)}"
    assert aw.get(f"{S}/blob", params=p, headers={"Range": "bytes=-2"}).content == whole[-2:]
    assert aw.get(f"{S}/blob", params=p, headers={"Range": "bytes=2-"}).content == whole[2:]
    assert aw.get(f"{S}/blob", params=p, headers={"Range": "bytes=3-999"}).content == whole[3:]
    bad = aw.get(f"{S}/blob", params=p, headers={"Range": "bytes=6-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == "bytes */6"
    assert bad.headers["content-type"] == "application/problem+json"
    # not a byte range, or several: the whole body (RFC 9110 lets a server ignore them)
    assert aw.get(f"{S}/blob", params=p, headers={"Range": "lines=1-2"}).status_code == 200
    assert aw.get(f"{S}/blob", params=p, headers={"Range": "bytes=0-1,3-4"}).content == whole


def test_big_blob_streams_whole_and_in_ranges(aw: ApiWorld) -> None:
    p = {"path": "data/big.bin"}
    with aw.client.stream("GET", aw.api + f"{S}/blob", params=p) as r:
        assert r.status_code == 200
        assert int(r.headers["content-length"]) == len(BIG)
        chunks = [len(c) for c in r.iter_raw()]
        got = sum(chunks)
    assert got == len(BIG) and len(chunks) > 1
    start, end = 9 * 1024 * 1024 - 5, 9 * 1024 * 1024 + 70_000
    r = aw.get(f"{S}/blob", params=p, headers={"Range": f"bytes={start}-{end}"})
    assert r.status_code == 206 and r.content == BIG[start : end + 1]
    tail = aw.get(f"{S}/blob", params=p, headers={"Range": "bytes=-100"})
    assert tail.content == BIG[-100:]


# -- diffs and archives ---------------------------------------------------------------------------
def test_diff_matches_git(aw: ApiWorld) -> None:
    up = aw.world.upstream
    r = aw.get(f"{S}/diff", params={"from": "main~3", "to": "main"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["from_commit"] == up.git("rev-parse", "main~3").strip()
    got = {f["change"]["path"]: f["change"]["kind"][0].upper() for f in body["files"]}
    assert got == up.changed("main~3", "main")
    guide = next(f for f in body["files"] if f["change"]["path"] == "docs/guide.md")
    assert "+More." in guide["patch"] and guide["additions"] == 2
    binary = next(f for f in body["files"] if f["change"]["path"] == "data/small.bin")
    assert binary["binary"] is True
    only = aw.get(f"{S}/diff", params={"from": "main~3", "to": "main", "path": "docs"}).json()
    assert [f["change"]["path"] for f in only["files"]] == ["docs/guide.md"]
    default = aw.get(f"{S}/diff", params={"to": "main"}).json()
    assert default["from_commit"] == up.git("rev-parse", "main~1").strip()
    assert aw.get(f"{S}/diff", params={"from": "nope"}).status_code == 404


def _git_files(up: Upstream, rev: str) -> dict[str, tuple[str, bytes]]:
    return {p: (mode, up.show(rev, p)) for p, (mode, _oid) in up.ls_tree(rev).items()}


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_archive_holds_the_tree(aw: ApiWorld, fmt: str) -> None:
    up = aw.world.upstream
    r = aw.get(f"{S}/archive", params={"rev": "v1", "format": fmt})
    assert r.status_code == 200, r.text
    commit = up.git("rev-parse", "v1^{commit}").strip()
    prefix = f"proj-{commit[:12]}/"
    assert r.headers["x-revisor-commit"] == commit
    assert r.headers["transfer-encoding"] == "chunked"
    want = _git_files(up, "v1")
    got: dict[str, tuple[str, bytes]] = {}
    if fmt == "tar.gz":
        with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
            for m in tar.getmembers():
                name = m.name.removeprefix(prefix)
                if m.issym():
                    got[name] = ("120000", m.linkname.encode())
                else:
                    f = tar.extractfile(m)
                    assert f is not None
                    got[name] = ("100755" if m.mode & 0o111 else "100644", f.read())
    else:
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            for info in zf.infolist():
                mode = info.external_attr >> 16
                kind = "120000" if (mode & 0o170000) == 0o120000 else (
                    "100755" if mode & 0o111 else "100644")
                got[info.filename.removeprefix(prefix)] = (kind, zf.read(info))
    assert got == want
    assert aw.get(f"{S}/archive", params={"format": "rar"}).status_code == 422


# -- refresh --------------------------------------------------------------------------------------
def test_refresh_fetches_new_commits(tmp_path: Path) -> None:
    with api_world(tmp_path, {"a.txt": "1\n"}) as w:
        before = w.get(f"{S}/log").json()["items"][0]["id"]
        new = w.world.upstream.commit("refs/heads/main", {"a.txt": "2\n"}, message="two")
        assert w.get(f"{S}/log").json()["items"][0]["id"] == before  # refresh: 1h
        r = w.post(f"{S}/refresh")
        assert r.status_code == 200, r.text
        assert r.json()["fetched"] is True
        assert {"ref": "refs/heads/main", "old": before, "new": new} in r.json()["changes"]
        assert w.get(f"{S}/log").json()["items"][0]["id"] == new
        assert w.get(f"{S}/blob", params={"path": "a.txt"}).content == b"2\n"
        assert w.post("/sources/nope/refresh").status_code == 404
