"""The store's mirrors against real remotes: creation, Zuul's ref scenarios, freshness.

Remotes are bare repositories on disk (plain path and ``file://``) and the smart-HTTP server of
``tests.support.githttp``; every assertion reads real state with git (``for-each-ref``,
``ls-remote``, ``fsck``) or the server's request log.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from revisor.config import load_config
from revisor.errors import RemoteUnavailable, RevisionNotFound
from revisor.store.schemes import Scheme, project_path
from revisor.store.store import Store
from tests.integration.test_store_support import (
    FAST,
    Upstream,
    discoveries,
    fsck,
    git,
    make_store,
    mirror_commit,
    mirror_refs,
    remote_refs,
)
from tests.support.fixtures import MakeRemote
from tests.support.githttp import GitHttpServer

pytestmark = pytest.mark.timeout(60)


def seed(up: Upstream) -> dict[str, str]:
    """Two branches, a lightweight and an annotated tag."""
    a = up.commit("refs/heads/trunk", {"README.md": "hello\n", "src/a.py": "a = 1\n"})
    b = up.commit("refs/heads/dev", {"src/b.py": "b = 2\n"}, parent=a)
    up.tag("v1", a)
    up.tag("v2", b, annotated=True)
    return {"a": a, "b": b}


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    up = Upstream.init(tmp_path / "remotes" / "org" / "project.git", branch="trunk")
    seed(up)
    return up


# -- 1. the first refresh ------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["path", "file"])
def test_first_refresh_creates_a_bare_mirror_like_the_remote(
    tmp_path: Path, upstream: Upstream, form: str
) -> None:
    url = str(upstream.path) if form == "path" else upstream.path.as_uri()
    store = make_store(tmp_path / "data", {"proj": {"type": "git", "url": url}})
    src = store.source("proj")
    assert not (tmp_path / "data").exists()  # constructing does no I/O

    result = src.refresh()

    assert result is not None and result.fetched
    project = str(upstream.path).lstrip("/").removesuffix(".git")
    expected = tmp_path / "data" / "mirrors" / project_path(Scheme.UNIQUE, "localhost", project)
    assert src.mirror is not None and src.mirror.path == expected
    assert git(f"--git-dir={expected}", "rev-parse", "--is-bare-repository").stdout == b"true\n"
    assert mirror_refs(expected, "refs/heads/") | mirror_refs(expected, "refs/tags/") == (
        remote_refs(url)
    )
    assert git(f"--git-dir={expected}", "symbolic-ref", "HEAD").stdout == b"refs/heads/trunk\n"
    assert {c.ref for c in result.changes} == set(remote_refs(url))
    assert all(c.old is None for c in result.changes)
    assert src.target_branch == "trunk"
    assert src.resolve("v2") == upstream.ref("refs/heads/dev")
    fsck(expected)


def test_first_refresh_over_http_and_the_configured_branch(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote
) -> None:
    bare, url = make_remote({"a.txt": "A\n"}, name="team/app.git", branch="trunk")
    up = Upstream(bare)
    dev = up.commit("refs/heads/dev", {"b.txt": "B\n"})
    store = make_store(
        tmp_path / "data",
        {"app": {"type": "git", "url": url}, "app-dev": {"type": "git", "url": url,
                                                         "branch": "dev"}},
    )
    app = store.source("app")
    app.refresh()
    assert app.mirror is not None
    host = f"127.0.0.1:{http_git.port}"
    assert app.mirror.path == (
        tmp_path / "data" / "mirrors" / host / "team" / "team%2Fapp"
    )
    head = git(f"--git-dir={app.mirror.path}", "symbolic-ref", "HEAD").stdout.decode().strip()
    assert head == "refs/heads/trunk"
    assert mirror_refs(app.mirror.path) == remote_refs(url)

    # A second source with a configured branch on another data directory: HEAD names it.
    other = make_store(tmp_path / "data2", {"app-dev": {"type": "git", "url": url,
                                                        "branch": "dev"}})
    dev_src = other.source("app-dev")
    dev_src.refresh()
    assert dev_src.mirror is not None
    assert git(f"--git-dir={dev_src.mirror.path}", "symbolic-ref", "HEAD").stdout.decode() == (
        "refs/heads/dev\n"
    )
    assert dev_src.target_branch == "dev"
    assert dev_src.resolve("HEAD") == dev


def test_head_follows_the_remote_even_when_the_first_fetch_failed(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote
) -> None:
    _bare, url = make_remote(branch="trunk")
    src = make_store(tmp_path / "data", {"app": {"type": "git", "url": url}}).source("app")
    http_git.fail_next(FAST.attempts, status=503)
    with pytest.raises(RemoteUnavailable):
        src.refresh()
    src.refresh()
    assert src.mirror is not None
    head = git(f"--git-dir={src.mirror.path}", "symbolic-ref", "HEAD").stdout.decode().strip()
    assert head == "refs/heads/trunk"
    assert src.target_branch == "trunk"


def test_yaml_configuration_and_a_local_source_used_in_place(
    tmp_path: Path, upstream: Upstream
) -> None:
    work = tmp_path / "notes"
    git("init", "-q", "-b", "main", str(work))
    git("-C", str(work), "commit", "-q", "--allow-empty", "-m", "first")
    config_file = tmp_path / "etc" / "revisor.yaml"
    config_file.parent.mkdir()
    config_file.write_text(
        "data_dir: ../var\n"
        "sources:\n"
        f"  proj:\n    type: git\n    url: {upstream.path.as_uri()}\n    refresh: 1h\n"
        f"  notes:\n    type: local\n    path: {work}\n"
    )
    store = Store(load_config(config_file, env={}), env={}, policy=FAST)
    assert store.names() == ["proj", "notes"]
    notes = store.source("notes")
    assert not notes.is_mirrored and notes.refresh() is None
    assert notes.repository.path == work
    head = git("-C", str(work), "rev-parse", "HEAD").stdout.decode().strip()
    assert notes.resolve("main", fresh=True) == head
    assert notes.freshness().last_fetch_ok is None and not notes.is_due()
    assert notes.display_location == str(work)
    assert not (tmp_path / "var").exists()  # nothing was mirrored for it

    proj = store.source("proj")
    assert proj.resolve("trunk", fresh=True) == upstream.ref("refs/heads/trunk")
    assert proj.mirror is not None
    assert proj.mirror.path.resolve().is_relative_to(tmp_path / "var" / "mirrors")
    assert proj.freshness().refresh_interval == 3600


# -- 2. Zuul's scenarios -------------------------------------------------------------------------
def test_branch_names_that_look_like_refs_or_contain_at(
    tmp_path: Path, upstream: Upstream
) -> None:
    foobar = upstream.commit("refs/heads/foobar", {"f": "1\n"}, parent=None)
    nested = upstream.commit("refs/heads/refs/heads/foobar", {"f": "2\n"}, parent=None)
    at = upstream.commit("refs/heads/user@example/fix", {"f": "3\n"}, parent=None)
    at2 = upstream.commit("refs/heads/release@2", {"f": "4\n"}, parent=None)
    src = make_store(tmp_path / "data", {"p": {"type": "git", "url": str(upstream.path)}}).source(
        "p"
    )
    src.refresh()
    assert src.mirror is not None
    assert mirror_refs(src.mirror.path, "refs/heads/") == {
        k: v for k, v in remote_refs(upstream.path).items() if k.startswith("refs/heads/")
    }
    assert src.resolve("foobar") == foobar
    assert src.resolve("refs/heads/foobar") == foobar
    assert src.resolve("refs/heads/refs/heads/foobar") == nested
    assert src.resolve("user@example/fix") == at
    assert src.resolve("release@2") == at2
    # Deleting one of the look-alikes upstream removes exactly that one.
    upstream.delete("refs/heads/refs/heads/foobar")
    src.refresh()
    refs = mirror_refs(src.mirror.path, "refs/heads/")
    assert "refs/heads/refs/heads/foobar" not in refs and refs["refs/heads/foobar"] == foobar


@pytest.mark.parametrize("packed", [False, True], ids=["loose", "packed"])
def test_branch_replaced_by_a_nested_one_and_back_never_wedges(
    tmp_path: Path, upstream: Upstream, packed: bool
) -> None:
    foo = upstream.commit("refs/heads/foo", {"foo": "1\n"})
    src = make_store(tmp_path / "data", {"p": {"type": "git", "url": upstream.path.as_uri()}})
    s = src.source("p")
    s.refresh()
    assert s.mirror is not None
    path = s.mirror.path

    def pack() -> None:
        if packed:
            git(f"--git-dir={path}", "pack-refs", "--all")

    pack()
    upstream.delete("refs/heads/foo")
    foobar = upstream.commit("refs/heads/foo/bar", {"foo": "2\n"}, parent=foo)
    result = s.refresh()
    assert result is not None
    assert {(c.ref, c.old, c.new) for c in result.changes} == {
        ("refs/heads/foo", foo, None), ("refs/heads/foo/bar", None, foobar)
    }
    assert mirror_refs(path) == remote_refs(upstream.path)

    pack()
    upstream.delete("refs/heads/foo/bar")
    back = upstream.commit("refs/heads/foo", {"foo": "3\n"}, parent=foobar)
    s.refresh()
    assert mirror_refs(path) == remote_refs(upstream.path)
    assert s.resolve("foo") == back
    fsck(path)


def test_moved_and_deleted_tags_and_deleted_branches_follow(
    tmp_path: Path, upstream: Upstream
) -> None:
    extra = upstream.commit("refs/heads/gone", {"g": "g\n"})
    upstream.tag("doomed", extra)
    src = make_store(tmp_path / "data", {"p": {"type": "git", "url": str(upstream.path)}}).source(
        "p"
    )
    src.refresh()
    assert src.mirror is not None
    path = src.mirror.path
    assert mirror_refs(path) == remote_refs(upstream.path)

    c = upstream.commit("refs/heads/trunk", {"README.md": "moved\n"})
    upstream.tag("v1", c)  # a lightweight tag moved
    v2 = upstream.tag("v2", c, annotated=True)  # an annotated tag re-made elsewhere
    upstream.git("tag", "-d", "doomed")
    upstream.delete("refs/heads/gone")
    src.refresh()

    refs = mirror_refs(path)
    assert refs == remote_refs(upstream.path)
    assert refs["refs/tags/v1"] == c and refs["refs/tags/v2"] == v2
    assert "refs/tags/doomed" not in refs and "refs/heads/gone" not in refs
    assert src.resolve("v2") == c
    with pytest.raises(RevisionNotFound):
        src.resolve("gone")


def test_fetch_never_touches_revisor_refs(tmp_path: Path, upstream: Upstream) -> None:
    # The upstream has refs of its own under refs/revisor/: they are not fetched either.
    upstream.set("refs/revisor/upstream-only", upstream.ref("refs/heads/trunk") or "")
    upstream.commit("refs/heads/tmp", {"t": "t\n"})
    src = make_store(tmp_path / "data", {"p": {"type": "git", "url": str(upstream.path)}}).source(
        "p"
    )
    src.refresh()
    assert src.mirror is not None
    repo = src.repository
    mine = {
        "refs/revisor/tx/1": mirror_commit(repo, "refs/revisor/tx/1", {"x": "1\n"}),
        # Names that mirror upstream branches exactly, and a pin on a branch about to vanish.
        "refs/revisor/heads/trunk": mirror_commit(repo, "refs/revisor/heads/trunk", {"y": "y\n"}),
        "refs/revisor/pin": upstream.ref("refs/heads/tmp") or "",
    }
    repo.set_ref("refs/revisor/pin", mine["refs/revisor/pin"], expected=None)
    upstream.delete("refs/heads/tmp")
    upstream.delete("refs/heads/trunk")
    upstream.commit("refs/heads/trunk", {"new": "n\n"}, parent=None)
    for _ in range(2):
        src.refresh()
    assert mirror_refs(src.mirror.path, "refs/revisor/") == mine
    assert mirror_refs(src.mirror.path, "refs/heads/") == {
        k: v for k, v in remote_refs(upstream.path).items() if k.startswith("refs/heads/")
    }
    fsck(src.mirror.path)


# -- 3. freshness --------------------------------------------------------------------------------
def test_fresh_resolve_fetches_at_most_once_per_refresh_interval(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote
) -> None:
    bare, url = make_remote()
    up = Upstream(bare)
    data = tmp_path / "data"
    slow = make_store(data, {"app": {"type": "git", "url": url, "refresh": "1h"}}).source("app")
    first = up.ref("refs/heads/main")
    assert slow.resolve("main", fresh=True) == first
    # The first refresh is one clone, which also learns the remote's HEAD: one discovery.
    base = discoveries(http_git.requests)
    assert base == 1

    second = up.commit("refs/heads/main", {"b": "b\n"})
    for _ in range(3):
        assert slow.resolve("main", fresh=True) == first  # not due: the mirror answers
    assert discoveries(http_git.requests) == base
    assert not slow.is_due()

    # The same mirror through a source that wants it fresher.
    quick = make_store(data, {"app": {"type": "git", "url": url, "refresh": "300ms"}}).source(
        "app"
    )
    time.sleep(0.35)
    assert quick.is_due()
    assert quick.resolve("main", fresh=True) == second
    # A refresh asks for the remote's refs first (one discovery) and fetches only when they
    # moved (a second one).
    assert discoveries(http_git.requests) == base + 2
    for _ in range(3):
        assert quick.resolve("main", fresh=True) == second
    assert discoveries(http_git.requests) == base + 2
    fresh = quick.freshness()
    assert fresh.last_error is None and fresh.staleness is not None and fresh.staleness < 5


def test_an_unknown_commit_triggers_exactly_one_fetch(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote
) -> None:
    bare, url = make_remote()
    up = Upstream(bare)
    src = make_store(tmp_path / "data", {"app": {"type": "git", "url": url, "refresh": "1h"}})
    app = src.source("app")
    app.refresh()
    before = discoveries(http_git.requests)

    with pytest.raises(RevisionNotFound):
        app.resolve("1234567890abcdef1234567890abcdef12345678")
    assert discoveries(http_git.requests) == before + 1
    with pytest.raises(RevisionNotFound):
        app.resolve("no-such-branch", fresh=True)
    assert discoveries(http_git.requests) == before + 2

    # A commit that exists upstream (but not yet here) is found by that one refresh: the check
    # sees main moved, and the fetch brings it (two discoveries).
    new = up.commit("refs/heads/main", {"n": "n\n"})
    assert app.resolve(new) == new
    assert discoveries(http_git.requests) == before + 4
    assert app.resolve(new) == new  # now known: no fetch
    assert discoveries(http_git.requests) == before + 4


def test_a_remote_that_is_down_leaves_the_mirror_readable_and_says_how_stale(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote
) -> None:
    bare, url = make_remote()
    up = Upstream(bare)
    src = make_store(
        tmp_path / "data", {"app": {"type": "git", "url": url, "refresh": "200ms"}}
    ).source("app")
    first = src.resolve("main", fresh=True)
    ok_at = src.freshness().last_fetch_ok
    assert ok_at is not None
    up.commit("refs/heads/main", {"later": "x\n"})
    http_git.stop()
    try:
        time.sleep(0.25)
        assert src.is_due()
        assert src.resolve("main", fresh=True) == first  # the last fetched state
        fresh = src.freshness()
        assert fresh.last_fetch_ok == ok_at
        assert fresh.staleness is not None and fresh.staleness >= 0.25
        assert fresh.last_error is not None and "127.0.0.1" in fresh.last_error
        assert src.mirror is not None and src.mirror.read_state().consecutive_failures == 1
        # The failure counts as this interval's attempt: reads do not hammer a dead remote.
        assert src.resolve("main", fresh=True) == first
        assert src.mirror.read_state().consecutive_failures == 1
        # An explicit refresh says what is wrong.
        with pytest.raises(RemoteUnavailable):
            src.refresh()
        assert src.mirror.read_state().consecutive_failures == 2
        assert src.repository.resolve("main") == first
    finally:
        http_git.start()
    time.sleep(0.25)
    assert src.resolve("main", fresh=True) == up.ref("refs/heads/main")
    fresh = src.freshness()
    assert fresh.last_error is None and src.mirror.read_state().consecutive_failures == 0


def test_refresh_due_fetches_due_sources_and_survives_a_failing_one(
    tmp_path: Path, upstream: Upstream, make_remote: MakeRemote
) -> None:
    _bare, url = make_remote()
    store = make_store(
        tmp_path / "data",
        {
            # Its secret is missing from the environment: a configuration error, reported.
            "locked": {"type": "git", "url": url,
                       "credentials": {"token_env": "NOT_SET_ANYWHERE"}},
            "proj": {"type": "git", "url": str(upstream.path), "refresh": "1h"},
            "notes": {"type": "local", "path": str(upstream.path)},
        },
    )
    assert store.source("locked").maintain() is None  # nothing fetched yet: nothing to maintain
    errors: dict[str, Exception] = {}
    results = store.refresh_due(on_error=lambda name, exc: errors.update({name: exc}))
    assert list(results) == ["proj"] and results["proj"] is not None
    assert list(errors) == ["locked"] and "NOT_SET_ANYWHERE" in str(errors["locked"])
    assert store.refresh_due() == {}  # nothing is due any more, except the broken one
    proj = store.source("proj")
    assert proj.mirror is not None and mirror_refs(proj.mirror.path) == remote_refs(upstream.path)


def test_nothing_changed_costs_one_ref_listing_and_many_new_refs_are_packed(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote
) -> None:
    bare, url = make_remote()
    up = Upstream(bare)
    head = up.ref("refs/heads/main")
    names = sorted(f"refs/heads/feature/{i:05d}" for i in range(1200))
    (bare / "packed-refs").write_text(
        "# pack-refs with: peeled fully-peeled sorted \n" + "".join(f"{head} {n}\n" for n in names)
    )
    src = make_store(tmp_path / "data", {"app": {"type": "git", "url": url}}).source("app")
    first = src.refresh()
    assert first is not None and len(first.changes) == 1201
    assert src.mirror is not None
    loose = [p for p in (src.mirror.path / "refs" / "heads").rglob("*") if p.is_file()]
    assert loose == []  # packed after the first fetch, not 1,201 files
    assert mirror_refs(src.mirror.path) == remote_refs(url)
    before = discoveries(http_git.requests)
    again = src.refresh()
    assert again is not None and again.changes == ()
    assert discoveries(http_git.requests) == before + 1  # the check alone: no fetch ran
