"""The web UI's pages over real HTTP with httpx (no browser): browsing, odd file names, raw
downloads, errors as pages, CSRF, the workspace's 412 page, sign-in and sessions, audit and jobs.

Fast checks of what the browser tests (``tests/browser/``) do not need a browser for. Every answer
about the repository is compared with the git CLI on the upstream.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from revisor.jobs import runner
from revisor.services.auth import AuthService
from revisor.web.pages_ops import safe_next
from revisor.web.session import COOKIE
from tests.e2e.test_web_support import FILES, ODD, UNICODE, WebWorld, csrf_of, web_world
from tests.integration.test_transactions_support import ALICE, BOB


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebWorld]:
    with web_world(tmp_path_factory.mktemp("web")) as w:
        yield w


@pytest.fixture
def client(single: WebWorld) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=single.url, timeout=60) as c:
        yield c


def q(value: str) -> str:
    return quote(value, safe="/")


def links(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page)]


# -- browsing ----------------------------------------------------------------------------------
def test_home_lists_the_source(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/s/proj/tree" in links(r.text)


def test_tree_lists_entries_with_their_last_commit(single: WebWorld, client: httpx.Client) -> None:
    r = client.get("/s/proj/tree")
    assert r.status_code == 200
    up = single.world.upstream
    names = up.git("ls-tree", "--name-only", "main").splitlines()
    for name in names:
        assert f'data-name="{html.escape(name)}"' in r.text
    head = up.git("log", "-1", "--format=%H", "main", "--", "forms").strip()
    assert f"/s/proj/commit?rev={head}" in links(r.text)
    # the README is rendered below, its raw HTML escaped
    assert "<h1>Registry forms</h1>" in r.text
    assert "<script>alert(1)</script>" not in r.text


def test_odd_and_unicode_names_survive_every_link(single: WebWorld, client: httpx.Client) -> None:
    up = single.world.upstream
    for path in (ODD, UNICODE):
        folder = path.rsplit("/", 1)[0]
        tree = client.get(f"/s/proj/tree?path={q(folder)}")
        assert tree.status_code == 200
        blob_link = next(h for h in links(tree.text) if h.startswith("/s/proj/blob"))
        assert blob_link == f"/s/proj/blob?rev=main&path={q(path)}"
        page = client.get(blob_link)
        assert page.status_code == 200
        raw_link = next(h for h in links(page.text) if h.startswith("/s/proj/raw")
                        and "download" not in h)
        raw = client.get(raw_link)
        assert raw.content == up.git("show", f"main:{path}").encode()
        # the breadcrumb leads back to the folder
        assert f"/s/proj/tree?rev=main&path={q(folder)}" in links(page.text)


def test_file_view_highlights_and_anchors_lines(client: httpx.Client) -> None:
    r = client.get("/s/proj/blob?path=src/tool.py")
    assert r.status_code == 200
    assert 'id="L-1"' in r.text and 'href="#L-2"' in r.text
    assert '<span class="k">def</span>' in r.text


def test_markdown_is_rendered_without_raw_html(client: httpx.Client) -> None:
    r = client.get("/s/proj/blob?path=README.md")
    assert "<h1>Registry forms</h1>" in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "<script>alert(1)</script>" not in r.text


def test_images_are_shown_and_binaries_offered(client: httpx.Client) -> None:
    image = client.get("/s/proj/blob?path=logo.png")
    assert '<img class="image" src="/s/proj/raw?rev=' in image.text
    binary = client.get("/s/proj/blob?path=data.bin")
    assert "cannot be shown here" in binary.text
    raw = client.get("/s/proj/raw?path=data.bin")
    assert raw.content == FILES["data.bin"]
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["content-disposition"].startswith("attachment;")
    assert raw.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in raw.headers["content-security-policy"]
    png = client.get("/s/proj/raw?path=logo.png")
    assert png.headers["content-type"] == "image/png"


def test_too_large_files_are_offered_for_download(single: WebWorld,
                                                  client: httpx.Client) -> None:
    up = single.world.upstream
    big = ("x" * 99 + "\n") * 6000  # 600 KB of text
    up.commit("refs/heads/big", {"big.txt": big}, parent=up.ref("refs/heads/main"))
    single.world.source.stored.refresh()
    page = client.get("/s/proj/blob?rev=big&path=big.txt")
    assert page.status_code == 200 and "too large to show here" in page.text
    assert 'class="highlight"' not in page.text
    raw = client.get("/s/proj/raw?rev=big&path=big.txt&download=1")
    assert raw.content == big.encode()


def test_raw_download_names_unicode_files(client: httpx.Client) -> None:
    r = client.get(f"/s/proj/raw?path={q(UNICODE)}&download=1")
    assert r.status_code == 200
    assert "filename*=UTF-8''" + quote("ünïcödé 文件.md", safe="") in r.headers[
        "content-disposition"]


def test_commit_page_shows_the_diff_both_ways(single: WebWorld, client: httpx.Client) -> None:
    up = single.world.upstream
    up.commit("refs/heads/main", {"forms/a.json": '{"name": "A", "fields": []}\n'},
              message="Rename form a\n\nBecause it was wrong.")
    head = up.ref("refs/heads/main")
    single.world.source.stored.refresh()
    unified = client.get(f"/s/proj/commit?rev={head}")
    assert "Rename form a" in unified.text and "Because it was wrong." in unified.text
    assert '<tr class="deleted">' in unified.text and '<tr class="added">' in unified.text
    split = client.get(f"/s/proj/commit?rev={head}&view=split")
    assert 'class="code split"' in split.text
    assert '<td class="added">{"name": "A", "fields": []}</td>' in html.unescape(split.text)
    history = client.get("/s/proj/log?path=forms/a.json")
    shown = re.findall(r"/s/proj/commit\?rev=([0-9a-f]{40})", history.text)
    assert shown == up.git("log", "--format=%H", "main", "--", "forms/a.json").split()


def test_branches_with_slashes(single: WebWorld, client: httpx.Client) -> None:
    up = single.world.upstream
    up.commit("refs/heads/feature/x-1", {"only-here.txt": "feature\n"},
              parent=up.ref("refs/heads/main"))
    single.world.source.stored.refresh()
    refs = client.get("/s/proj/refs")
    assert "/s/proj/tree?rev=feature/x-1" in links(refs.text)
    tree = client.get("/s/proj/tree?rev=feature/x-1")
    assert "only-here.txt" in tree.text


def test_lastcommits_endpoint_matches_git(single: WebWorld, client: httpx.Client) -> None:
    r = client.get("/s/proj/lastcommits?path=forms")
    body = r.json()
    assert body["partial"] is False
    up = single.world.upstream
    for name in ("a.json", "b.json"):
        assert body["entries"][name]["id"] == up.git(
            "log", "-1", "--format=%H", "main", "--", f"forms/{name}").strip()


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/s/proj/blob?path=no/such/file", 404),
        ("/s/nosuch/tree", 404),
        ("/s/proj/tree?path=../etc", 400),
        ("/s/proj/tree?path=.git/config", 400),
        ("/s/proj/tree?rev=--output=/tmp/x", 400),
        ("/s/proj/commit?rev=nosuchbranch", 404),
        ("/s/proj/log?skip=-1", 400),
        ("/no/such/page", 404),
        ("/s/proj/candidates/99999", 404),
        ("/s/proj/candidates/99999999999999999999999", 400),
        ("/s/proj/candidates/abc/ws", 400),
        ("/s/proj/tree?path=a%00b", 400),
    ],
)
def test_errors_are_friendly_pages(client: httpx.Client, url: str, status: int) -> None:
    r = client.get(url)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("text/html")
    assert "<h1" in r.text and "Back to the start page" in r.text


def test_the_api_keeps_problem_documents(client: httpx.Client) -> None:
    r = client.get("/api/v1/sources/nosuch")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


# -- forms and CSRF ----------------------------------------------------------------------------
def test_a_post_without_the_csrf_token_is_refused(single: WebWorld, client: httpx.Client) -> None:
    before = len(single.candidates.list())
    r = client.post("/s/proj/candidates", data={"name": "forged-1", "title": "Forged"})
    assert r.status_code == 403
    r = client.post("/s/proj/candidates",
                    data={"name": "forged-1", "title": "Forged", "csrf": "x" * 32})
    assert r.status_code == 403
    page = client.get("/s/proj/candidates/new")
    token = csrf_of(page.text)
    r = client.post("/s/proj/candidates", headers={"Origin": "http://evil.example"},
                    data={"name": "forged-1", "title": "Forged", "csrf": token})
    assert r.status_code == 403
    assert len(single.candidates.list()) == before


def test_create_a_candidate_and_see_validation(single: WebWorld, client: httpx.Client) -> None:
    token = csrf_of(client.get("/s/proj/candidates/new").text)
    bad = client.post("/s/proj/candidates", data={"name": "X", "title": "", "csrf": token})
    assert bad.status_code == 422 and "3 to 32 characters" in bad.text
    ok = client.post("/s/proj/candidates",
                     data={"name": "web-form-1", "title": "Forms of May", "csrf": token})
    assert ok.status_code == 303
    cand = single.candidates.by_name("web-form-1")
    assert ok.headers["location"].startswith(f"/s/proj/candidates/{cand.id}")
    dash = client.get("/s/proj/candidates")
    assert "Forms of May" in dash.text


def test_the_412_page_keeps_the_text(single: WebWorld, client: httpx.Client) -> None:
    cand = single.candidates.create("web-edit-1", "Edits", ALICE)
    token = csrf_of(client.get(f"/s/proj/candidates/{cand.id}/ws").text)
    client.post(f"/s/proj/candidates/{cand.id}/ws/start", data={"csrf": token})
    edit = client.get(f"/s/proj/candidates/{cand.id}/ws/edit?path=forms/a.json")
    etag = re.search(r'name="etag" value="([0-9a-f]+)"', edit.text)
    assert etag is not None
    ws = single.candidates.workspace(cand.id, "local")
    ws.write("forms/a.json", b"theirs\n", if_match=etag.group(1))
    r = client.post(f"/s/proj/candidates/{cand.id}/ws/save", data={
        "csrf": token, "path": "forms/a.json", "etag": etag.group(1), "eol": "lf",
        "text": "mine\r\nline two\r\n"})
    assert r.status_code == 412
    assert "Someone else changed this file" in r.text
    assert "mine\nline two\n" in html.unescape(r.text)
    assert "theirs" in r.text
    assert ws.read("forms/a.json")[0] == b"theirs\n"
    # saving again from that page replaces their version, with the endings of the file
    again = re.search(r'name="etag" value="([0-9a-f]+)"', r.text)
    assert again is not None and again.group(1) == ws.etag("forms/a.json")
    ok = client.post(f"/s/proj/candidates/{cand.id}/ws/save", data={
        "csrf": token, "path": "forms/a.json", "etag": again.group(1), "eol": "lf",
        "text": "mine\r\nline two\r\n"})
    assert ok.status_code == 303
    assert ws.read("forms/a.json")[0] == b"mine\nline two\n"


def test_audit_filters_by_candidate_and_user(single: WebWorld, client: httpx.Client) -> None:
    c = single.candidates
    one = c.create("audit-one", "One", ALICE)
    two = c.create("audit-two", "Two", BOB)
    r = client.get(f"/audit?candidate={one.id}")
    assert r.status_code == 200
    assert "candidate.create" in r.text and "Alice Liddell" in r.text and "Bob" not in r.text
    r = client.get("/audit?user=bob")
    assert "Bob" in r.text and "Alice Liddell" not in r.text
    assert two.id != one.id


def test_jobs_page_lists_runs(single: WebWorld, client: httpx.Client) -> None:
    run = runner.run_job(single.world.rv, "refresh", source="proj")
    r = client.get("/jobs")
    assert r.status_code == 200
    assert f"<td>{run.id}</td>" in r.text and "refresh" in r.text
    assert f"outcome-{run.outcome.value}" in r.text


# -- multi-user: signing in ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebWorld]:
    with web_world(tmp_path_factory.mktemp("webmulti"),
                   users={"alice": "editor", "root": "admin", "rita": "reader"}) as w:
        w.app.state.web.check.ttl = 0.0  # re-check the token on every request
        yield w


def sign_in(w: WebWorld, c: httpx.Client, user: str) -> httpx.Response:
    page = c.get("/signin")
    return c.post("/signin", data={"csrf": csrf_of(page.text), "token": w.tokens[user],
                                   "next": "/s/proj/candidates"})


def test_pages_need_a_sign_in(multi: WebWorld) -> None:
    with httpx.Client(base_url=multi.url, timeout=60) as c:
        r = c.get("/s/proj/tree?path=forms")
        assert r.status_code == 303
        assert r.headers["location"] == "/signin?next=" + quote("/s/proj/tree?path=forms",
                                                                safe="")
        bad = c.post("/signin", data={"csrf": csrf_of(c.get("/signin").text),
                                      "token": "rvs_" + "x" * 43})
        assert bad.status_code == 401 and "not accepted" in bad.text


def test_sign_in_sets_a_safe_cookie(multi: WebWorld) -> None:
    with httpx.Client(base_url=multi.url, timeout=60) as c:
        r = sign_in(multi, c, "alice")
        assert r.status_code == 303 and r.headers["location"] == "/s/proj/candidates"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert multi.tokens["alice"] not in cookie
        page = c.get("/s/proj/candidates")
        assert page.status_code == 200 and "Signed in as <strong>Alice</strong>" in page.text
        # the session counts for API reads, never for API writes
        assert c.get("/api/v1/sources/proj").status_code == 200
        write = c.post("/api/v1/sources/proj/candidates", json={"name": "api-1", "title": "T"})
        assert write.status_code == 401


def test_forged_post_with_a_session_is_refused(multi: WebWorld) -> None:
    with httpx.Client(base_url=multi.url, timeout=60) as c:
        sign_in(multi, c, "alice")
        r = c.post("/s/proj/candidates", data={"name": "forged-2", "title": "Forged"})
        assert r.status_code == 403
        other = httpx.Client(base_url=multi.url, timeout=60)
        with other:  # another visitor's token does not fit this session
            foreign = csrf_of(other.get("/signin").text)
        r = c.post("/s/proj/candidates",
                   data={"name": "forged-2", "title": "Forged", "csrf": foreign})
        assert r.status_code == 403
        with pytest.raises(Exception, match="forged-2"):
            multi.candidates.by_name("forged-2")


def test_roles_apply_to_pages(multi: WebWorld) -> None:
    with httpx.Client(base_url=multi.url, timeout=60) as c:
        sign_in(multi, c, "alice")
        token = csrf_of(c.get("/s/proj/candidates/new").text)
        r = c.post("/s/proj/candidates",
                   data={"name": "alice-1", "title": "Alice's", "csrf": token})
        assert r.status_code == 303
        cand = multi.candidates.by_name("alice-1")
        assert cand.author_email == "alice@example.com"
        page = c.get(f"/s/proj/candidates/{cand.id}")
        assert "Bring up to date" in page.text and ">Submit</button>" not in page.text
        submit = c.post(f"/s/proj/candidates/{cand.id}/submit", data={"csrf": token})
        assert submit.status_code == 403 and "Not allowed" in submit.text
        # her own candidate she may bring up to date; someone else's she may not
        own = c.post(f"/s/proj/candidates/{cand.id}/rebase", data={"csrf": token})
        assert own.status_code == 303 and own.headers["location"].endswith("done=uptodate")
        other = multi.candidates.create("not-alice-1", "Not hers", BOB)
        r = c.post(f"/s/proj/candidates/{other.id}/rebase", data={"csrf": token})
        assert r.status_code == 403
        assert c.get("/audit").status_code == 403


def test_a_reader_reads_but_does_not_edit(multi: WebWorld) -> None:
    cand = multi.candidates.create("read-only-1", "Read only", ALICE)
    with httpx.Client(base_url=multi.url, timeout=60) as c:
        sign_in(multi, c, "rita")
        page = c.get(f"/s/proj/candidates/{cand.id}/ws")
        assert page.status_code == 200 and "not edit it" in page.text
        assert "Start editing" not in page.text
        r = c.post(f"/s/proj/candidates/{cand.id}/ws/start", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 403 and "may not write_workspace" in r.text
        assert multi.candidates.workspaces(cand.id) == []


def test_revoking_the_token_ends_the_session(multi: WebWorld) -> None:
    auth = AuthService(multi.world.rv.db)
    made = auth.issue_token("alice", label="short-lived")
    with httpx.Client(base_url=multi.url, timeout=60) as c:
        page = c.get("/signin")
        c.post("/signin", data={"csrf": csrf_of(page.text), "token": made.secret})
        assert c.get("/s/proj/tree").status_code == 200
        auth.revoke_token(made.token.id)
        r = c.get("/s/proj/tree")
        assert r.status_code == 303 and r.headers["location"].startswith("/signin")


def test_sign_out(multi: WebWorld) -> None:
    with httpx.Client(base_url=multi.url, timeout=60) as c:
        sign_in(multi, c, "root")
        page = c.get("/s/proj/candidates")
        r = c.post("/signout", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303
        assert c.get("/s/proj/candidates").status_code == 303


def test_the_secret_file_is_private(multi: WebWorld) -> None:
    secret = Path(multi.world.rv.config.data_dir) / "web-secret"
    assert secret.stat().st_mode & 0o077 == 0


# -- workspace files and candidate actions ---------------------------------------------------------
def ws_ref(single: WebWorld, cid: int, user: str = "local") -> str:
    return f"refs/revisor/workspaces/{cid}/{user}"


def mirror_git(single: WebWorld, *args: str) -> str:
    path = single.world.mirror_path
    assert path is not None
    return single.world.upstream.__class__(path).git(*args)


def test_create_delete_and_roll_back_files(single: WebWorld, client: httpx.Client) -> None:
    cand = single.candidates.create("web-files-1", "Files", ALICE)
    base = f"/s/proj/candidates/{cand.id}/ws"
    # before starting, the editor is sent to the page that offers to start
    r = client.get(f"{base}/edit?path=forms/a.json")
    assert r.status_code == 303 and r.headers["location"] == base
    token = csrf_of(client.get(base).text)
    assert client.post(f"{base}/start", data={"csrf": token}).status_code == 303
    new = client.post(f"{base}/create", data={"csrf": token, "path": ODD.replace("odd", "new"),
                                              "text": "fresh\r\n"})
    assert new.status_code == 303
    assert new.headers["location"] == f"{base}/edit?path={q(ODD.replace('odd', 'new'))}" \
        "&done=created-file"
    ref = ws_ref(single, cand.id)
    assert mirror_git(single, "show", f"{ref}:{ODD.replace('odd', 'new')}") == "fresh\n"
    again = client.post(f"{base}/create", data={"csrf": token, "path": "forms/a.json",
                                                "text": "x"})
    assert again.status_code == 409 and "already exists" in again.text
    # change a file, then roll it back to the candidate's starting version
    edit = client.get(f"{base}/edit?path=forms/a.json")
    etag = re.search(r'name="etag" value="([0-9a-f]+)"', edit.text)
    assert etag is not None
    client.post(f"{base}/save", data={"csrf": token, "path": "forms/a.json",
                                      "etag": etag.group(1), "text": "changed\n"})
    assert mirror_git(single, "show", f"{ref}:forms/a.json") == "changed\n"
    ws_page = client.get(base + "?path=forms")
    assert "forms/a.json" in ws_page.text  # listed as not yet published
    back = client.post(f"{base}/rollback", data={"csrf": token, "path": "forms/a.json"})
    assert back.status_code == 303
    assert mirror_git(single, "show", f"{ref}:forms/a.json") == mirror_git(
        single, "show", f"{cand.base_commit}:forms/a.json")
    # delete, with the version read
    edit = client.get(f"{base}/edit?path=forms/b.json")
    etag = re.search(r'name="etag" value="([0-9a-f]+)"', edit.text)
    assert etag is not None
    gone = client.post(f"{base}/delete", data={"csrf": token, "path": "forms/b.json",
                                               "etag": etag.group(1)})
    assert gone.status_code == 303 and gone.headers["location"].endswith("path=forms&done=deleted")
    assert "forms/b.json" not in mirror_git(single, "ls-tree", "-r", "--name-only", ref).split()


def test_rebase_and_abandon_from_the_candidate_page(single: WebWorld,
                                                     client: httpx.Client) -> None:
    c = single.candidates
    cand = c.create("web-rebase-1", "Rebase me", ALICE)
    ws = c.workspace(cand.id, "alice", identity=ALICE)
    _, etag = ws.read("src/tool.py")
    ws.write("src/tool.py", b"def main():\n    return 'candidate'\n", if_match=etag)
    assert ws.publish().published
    up = single.world.upstream
    up.commit("refs/heads/main", {"src/tool.py": "def main():\n    return 'target'\n"})
    single.world.source.stored.refresh()
    page = client.get(f"/s/proj/candidates/{cand.id}")
    token = csrf_of(page.text)
    r = client.post(f"/s/proj/candidates/{cand.id}/rebase", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"].endswith("done=rebase-conflicts")
    page = client.get(r.headers["location"])
    assert "could not take the latest changes" in page.text
    assert 'class="badge conflict"' in page.text and "src/tool.py" in page.text
    assert c.get(cand.id).has_conflicts
    r = client.post(f"/s/proj/candidates/{cand.id}/abandon", data={"csrf": token})
    assert r.status_code == 303
    assert c.get(cand.id).status.value == "abandoned"
    page = client.get(r.headers["location"])
    assert "The candidate was abandoned." in page.text
    assert "Submit</button>" not in page.text  # no actions on a closed candidate


@pytest.mark.parametrize(
    ("given", "used"),
    [("/s/proj/tree?path=a b", "/"), ("/s/proj/candidates", "/s/proj/candidates"),
     ("//evil.example/x", "/"), ("/\\evil.example", "/"), ("/\t/evil.example", "/"),
     ("https://evil.example/", "/"), ("", "/")],
)
def test_sign_in_only_returns_to_this_site(given: str, used: str) -> None:
    assert safe_next(given) == used


def test_pages_refuse_framing_and_foreign_scripts(client: httpx.Client) -> None:
    r = client.get("/s/proj/tree")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert r.headers["x-frame-options"] == "DENY"


def test_the_archive_link_downloads_the_tree(single: WebWorld, client: httpx.Client) -> None:
    page = client.get("/s/proj/tree")
    link = next(h for h in links(page.text) if "/archive" in h and "format=zip" in h)
    r = client.get(link)
    assert r.status_code == 200 and r.content[:2] == b"PK"


def test_a_session_opens_api_downloads(multi: WebWorld) -> None:
    with httpx.Client(base_url=multi.url, timeout=60) as c:
        assert c.get("/api/v1/sources/proj/archive?rev=main&format=zip").status_code == 401
        sign_in(multi, c, "rita")
        page = c.get("/s/proj/tree")
        link = next(h for h in links(page.text) if "/archive" in h and "format=zip" in h)
        r = c.get(link)
        assert r.status_code == 200 and r.content[:2] == b"PK"


def test_resolve_a_conflict_by_taking_the_candidates_version(single: WebWorld,
                                                              client: httpx.Client) -> None:
    c = single.candidates
    cand = c.create("web-theirs-1", "Theirs", ALICE)
    mine = c.workspace(cand.id, "local")
    bob = c.workspace(cand.id, "bob", identity=BOB)
    for ws, text in ((bob, b"bob\n"), (mine, b"local\n")):
        _, etag = ws.read("forms/b.json")
        ws.write("forms/b.json", text, if_match=etag)
    assert bob.publish().published
    base = f"/s/proj/candidates/{cand.id}/ws"
    token = csrf_of(client.get(base).text)
    r = client.post(f"{base}/sync", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"].startswith(f"{base}/conflicts")
    page = client.get(r.headers["location"])
    assert 'name="path_0" value="forms/b.json"' in page.text
    # no choice: the conflict stays
    r = client.post(f"{base}/resolve", data={"csrf": token, "path_0": "forms/b.json"})
    assert r.headers["location"].endswith("done=partly-resolved")
    r = client.post(f"{base}/resolve", data={"csrf": token, "path_0": "forms/b.json",
                                              "choice_0": "theirs", "text_0": "ignored"})
    assert r.status_code == 303 and r.headers["location"].endswith("done=resolved")
    assert mine.read("forms/b.json")[0] == b"bob\n"
    assert mine.conflicts() == []
    assert "There are no conflicts" in client.get(f"{base}/conflicts").text
