"""The web UI in a real headless Chromium (Debian's, driven by Playwright): browsing into a file
and back by breadcrumb, odd and Unicode file names, the last commits filling in, two editors of
one file (the second gets the "changed by someone else" page and keeps their text), a conflict
resolved in the conflicts view and published, a candidate made, edited and submitted from the UI
with the target branch moving (checked with git on the upstream), jobs and audit, sign-in.

A screenshot of each main page is saved under the test output directory
(``$REVISOR_TEST_OUTPUT/screenshots``, default ``test-output/screenshots``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from revisor.api.settings import ServeSettings
from revisor.jobs import runner
from tests.browser.support import fits_the_screen, new_context, shot, unlabelled, watch
from tests.e2e.test_web_support import ODD, UNICODE, WebWorld, web_world
from tests.integration.test_transactions_support import BOB, Upstream


@pytest.fixture(scope="module")
def ww(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebWorld]:
    # no time for the last commits on the first answer: the tree page fills them in afterwards
    settings = ServeSettings(scheduler=False, ui=True, last_commit_budget_s=0.0)
    with web_world(tmp_path_factory.mktemp("browser"), settings=settings) as w:
        yield w


@pytest.fixture
def page(browser: Browser, ww: WebWorld) -> Iterator[Page]:
    ctx = new_context(browser, ww.url)
    try:
        p = ctx.new_page()
        problems = watch(p)
        yield p
        # every page's script and styles ran, nothing refused by the content security policy
        assert problems == []
    finally:
        ctx.close()


def mirror(ww: WebWorld) -> Upstream:
    path = ww.world.mirror_path
    assert path is not None
    return Upstream(path)


def test_browse_into_a_file_and_back_by_breadcrumb(page: Page, ww: WebWorld) -> None:
    page.goto("/")
    shot(page, "home")
    page.get_by_role("link", name="proj", exact=True).click()
    expect(page.locator("main > h1")).to_have_text("proj")
    up = ww.world.upstream
    # the last change of each entry fills in (the server had no time for it at first)
    row = page.locator('tr[data-name="forms"] td.msg a')
    expect(row).to_be_visible()
    forms_last = up.git("log", "-1", "--format=%H", "main", "--", "forms").strip()
    assert row.get_attribute("href") == f"/s/proj/commit?rev={forms_last}"
    expect(page.locator("td.pending")).to_have_count(0)
    assert fits_the_screen(page) and unlabelled(page) == []
    shot(page, "tree")
    # into a folder with the keyboard
    page.get_by_role("link", name="forms", exact=True).focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/s/proj/tree\?rev=main&path=forms$"))
    page.get_by_role("link", name="a.json").click()
    expect(page.locator(".highlight")).to_contain_text('"name": "a"')
    assert page.locator("#L-1").count() == 1
    shot(page, "file")
    # and back by the breadcrumb
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="forms").click()
    expect(page).to_have_url(re.compile(r"path=forms$"))
    expect(page.locator('tr[data-name="b.json"]')).to_be_visible()
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="proj").click()
    expect(page.locator('tr[data-name="README.md"]')).to_be_visible()


def test_unicode_and_odd_file_names(page: Page, ww: WebWorld) -> None:
    page.goto("/s/proj/tree")
    page.get_by_role("link", name="docs", exact=True).click()
    page.get_by_role("link", name="ünïcödé 文件.md").click()
    expect(page.locator("main > h1")).to_have_text("ünïcödé 文件.md")
    expect(page.locator("article.markdown em")).to_have_text("Markdown")
    shot(page, "file-markdown")
    page.goto("/s/proj/tree")
    page.get_by_role("link", name="odd dir").click()
    page.get_by_role("link", name=ODD.split("/")[1]).click()
    expect(page.locator(".highlight")).to_contain_text("odd name")
    # its raw download is the file's bytes, as git has them
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download", exact=True).click()
    path = dl.value.path()
    assert path is not None
    assert path.read_bytes() == ww.world.upstream.show("main", ODD)
    # named as the file is (Chromium itself replaces the '?' it refuses in file names)
    assert dl.value.suggested_filename == ODD.split("/")[1].replace("?", "_")
    assert UNICODE.startswith("docs/")


def test_history_and_commit_pages(page: Page, ww: WebWorld) -> None:
    page.goto("/s/proj/log?path=forms")
    page.locator("ol.log a.summary").first.click()
    expect(page.locator("h2")).to_contain_text("changed")
    shot(page, "commit")
    page.get_by_role("link", name="side by side").click()
    expect(page.locator("table.split").first).to_be_visible()
    assert fits_the_screen(page)
    shot(page, "commit-split")


def edit_url(cid: int, path: str) -> str:
    return f"/s/proj/candidates/{cid}/ws/edit?path={path}"


def test_two_editors_of_one_file(browser: Browser, ww: WebWorld) -> None:
    cand = ww.candidates.create("two-editors", "Two editors", BOB)
    ww.candidates.workspace(cand.id, "local")
    first, second = new_context(browser, ww.url), new_context(browser, ww.url)
    try:
        a, b = first.new_page(), second.new_page()
        a.goto(edit_url(cand.id, "forms/a.json"))
        b.goto(edit_url(cand.id, "forms/a.json"))
        assert unlabelled(a) == []
        shot(a, "edit")
        a.get_by_label("Content").fill('{"name": "from A"}\n')
        a.get_by_role("button", name="Save").click()
        expect(a.locator(".flash")).to_have_text("Saved.")
        mine = '{"name": "from B",\n "note": "keep me"}\n'
        b.get_by_label("Content").fill(mine)
        b.get_by_role("button", name="Save").click()
        expect(b.get_by_role("heading", name="Someone else changed this file")).to_be_visible()
        assert b.get_by_label("Your version").input_value() == mine
        assert b.get_by_label("Their version (read only)").input_value() == '{"name": "from A"}\n'
        shot(b, "edit-changed-by-someone-else")
        ws = ww.candidates.workspace(cand.id, "local")
        assert ws.read("forms/a.json")[0] == b'{"name": "from A"}\n'
        # saving again, knowingly, replaces their version
        b.get_by_role("button", name="Save").click()
        expect(b.locator(".flash")).to_have_text("Saved.")
        assert ws.read("forms/a.json")[0] == mine.encode()
    finally:
        first.close()
        second.close()


def test_a_conflict_resolved_and_published(page: Page, ww: WebWorld) -> None:
    cand = ww.candidates.create("conflicting", "Conflicting", BOB)
    mine = ww.candidates.workspace(cand.id, "local")  # made at the candidate's start
    bob = ww.candidates.workspace(cand.id, "bob", identity=BOB)
    data, etag = bob.read("forms/b.json")
    bob.write("forms/b.json", b'{"name": "bob"}\n', if_match=etag)
    assert bob.publish().published
    assert mine.read("forms/b.json")[0] == data  # bob's change is not in mine yet
    page.goto(edit_url(cand.id, "forms/b.json"))
    page.get_by_label("Content").fill('{"name": "local"}\n')
    page.get_by_role("button", name="Save").click()
    page.goto(f"/s/proj/candidates/{cand.id}/ws")
    page.get_by_role("button", name="Publish to the candidate").click()
    expect(page.locator(".flash")).to_contain_text("could not be published")
    page.get_by_role("button", name="Get others' changes (sync)").click()
    expect(page.locator("main > h1")).to_contain_text("Conflicts")
    expect(page.locator("fieldset legend")).to_contain_text("forms/b.json")
    expect(page.locator(".side-theirs pre")).to_have_text('{"name": "bob"}\n')
    expect(page.locator(".side-ours pre")).to_have_text('{"name": "local"}\n')
    assert unlabelled(page) == [] and fits_the_screen(page)
    shot(page, "conflicts")
    combined = '{"name": "bob and local"}\n'
    page.get_by_label("Combined text for forms/b.json").fill(combined)
    assert page.get_by_label("Use this text:").is_checked()  # editing chose it
    page.get_by_role("button", name="Save these decisions").click()
    expect(page.locator(".flash")).to_contain_text("The conflicts are resolved")
    page.get_by_role("button", name="Publish to the candidate").click()
    expect(page.locator(".flash")).to_have_text("Your changes were published to the candidate.")
    head = mirror(ww).ref(f"refs/revisor/candidates/{cand.id}")
    assert head is not None
    assert mirror(ww).show(head, "forms/b.json") == combined.encode()


def test_a_candidate_made_edited_and_submitted(page: Page, ww: WebWorld) -> None:
    up = ww.world.upstream
    before = up.ref("refs/heads/main")
    page.goto("/s/proj/candidates")
    page.get_by_role("link", name="New candidate").click()
    page.get_by_label("Short name").fill("release-9")
    page.get_by_label("Title").fill("Release 9")
    page.get_by_label("Description").fill("The forms of release 9.")
    page.get_by_role("button", name="Create the candidate").click()
    expect(page.locator(".flash")).to_have_text("The candidate was created.")
    page.get_by_role("link", name="My workspace").click()
    page.get_by_role("button", name="Start editing").click()
    page.get_by_label("File name (with its folder)").fill("forms/c.json")
    page.get_by_label("Content", exact=True).fill('{"name": "c"}\n')
    page.get_by_role("button", name="Create the file").click()
    expect(page.locator(".flash")).to_have_text("The file was created.")
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="files").click()
    assert unlabelled(page) == [] and fits_the_screen(page)
    shot(page, "workspace")
    page.get_by_role("button", name="Publish to the candidate").click()
    expect(page.locator(".flash")).to_have_text("Your changes were published to the candidate.")
    page.get_by_role("link", name="Release 9").click()
    expect(page.locator("#files")).to_contain_text("forms/c.json")
    expect(page.locator("#files")).to_contain_text("NEW")
    expect(page.locator("#workspaces")).to_contain_text("in sync")
    assert fits_the_screen(page) and unlabelled(page) == []
    shot(page, "candidate")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".flash")).to_have_text("The candidate was submitted.")
    after = up.ref("refs/heads/main")
    assert after != before
    assert up.parents(after) == [before]
    assert up.show("main", "forms/c.json") == b'{"name": "c"}\n'
    assert up.git("log", "-1", "--format=%s", "main").strip() == "Release 9"
    page.goto("/s/proj/candidates?status=all")
    shot(page, "candidates")
    expect(page.locator("#candidates")).to_contain_text("submitted")


def test_jobs_and_audit(page: Page, ww: WebWorld) -> None:
    run = runner.run_job(ww.world.rv, "refresh", source="proj")
    page.goto("/jobs")
    expect(page.locator("#runs")).to_contain_text("refresh")
    expect(page.locator(f"#runs tr:has(td:text-is('{run.id}'))")).to_contain_text(
        run.outcome.value)
    assert unlabelled(page) == []
    shot(page, "jobs")
    cand = ww.candidates.create("audited", "Audited", BOB)
    ws = ww.candidates.workspace(cand.id, "bob", identity=BOB)
    ws.write("forms/new.json", b"{}\n", if_match=None)
    assert ws.publish().published
    page.goto("/audit")
    page.get_by_label("Candidate number").fill(str(cand.id))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"candidate={cand.id}"))
    expect(page.locator("#audit")).to_contain_text("candidate.publish")
    targets = page.locator("#audit tbody td:nth-child(5)").all_inner_texts()
    assert targets and all(
        t == f"refs/revisor/candidates/{cand.id}"
        or t.startswith(f"refs/revisor/workspaces/{cand.id}/") for t in targets)
    assert unlabelled(page) == [] and fits_the_screen(page)
    shot(page, "audit")


def test_sign_in_with_a_token(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> None:
    with web_world(tmp_path_factory.mktemp("signin"), users={"alice": "editor"}) as w:
        ctx = new_context(browser, w.url)
        try:
            page = ctx.new_page()
            page.goto("/s/proj/candidates")
            expect(page).to_have_url(re.compile(r"/signin\?next="))
            assert unlabelled(page) == []
            shot(page, "signin")
            page.get_by_label("Your access token").fill(w.tokens["alice"])
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(re.compile(r"/s/proj/candidates$"))
            expect(page.locator("header .who")).to_contain_text("Signed in as Alice")
            cookies = {c["name"]: c for c in ctx.cookies()}
            session = cookies["revisor_session"]
            assert session["httpOnly"] and session["sameSite"] == "Lax"
            assert w.tokens["alice"] not in session["value"]
            page.get_by_role("button", name="Sign out").click()
            expect(page.locator(".flash")).to_have_text("You are signed out.")
        finally:
            ctx.close()
