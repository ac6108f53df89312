"""The store talking to real remotes: concurrent fetches, pushes with a lease, credentials,
network faults and progress.

The remote is the smart-HTTP server of ``tests.support.githttp`` (with its request log, auth and
fault injection) or a bare repository on disk; results are read back with git.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from revisor.errors import RemoteRefConflict, RemoteUnavailable
from revisor.store.mirror import FetchResult, PushUpdate
from revisor.store.store import StoreSource
from revisor.store.transport import NetworkPolicy
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
from tests.support.githttp import GitHttpServer, HangingTCPServer

pytestmark = pytest.mark.timeout(60)


def app_source(data: Path, url: str, **extra: Any) -> StoreSource:
    return make_store(data, {"app": {"type": "git", "url": url, **extra}}).source("app")


# -- 4. two processes fetching one mirror --------------------------------------------------------
def _refresh_in_child(data_dir: str, url: str, go: Any, out: Any) -> None:
    src = app_source(Path(data_dir), url)
    out.put(("ready", os.getpid()))
    if not go.wait(30):
        out.put(("error", "never started"))
        return
    try:
        result = src.refresh()
        assert result is not None
        out.put(("ok", result.fetched, len(result.changes)))
    except Exception as exc:  # reported to the parent, which fails the test
        out.put(("error", repr(exc)))


def test_two_processes_fetching_one_mirror_share_one_fetch(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote
) -> None:
    bare, url = make_remote()
    up = Upstream(bare)
    data = tmp_path / "data"
    src = app_source(data, url)
    src.refresh()
    for i in range(3):
        up.commit(f"refs/heads/b{i}", {f"f{i}": f"{i}\n"})
    http_git.clear_requests()
    http_git.delay_next(1, 1.5, service="info/refs")

    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_refresh_in_child, args=(str(data), url, go, out))
             for _ in range(2)]
    for p in procs:
        p.start()
    try:
        ready = [out.get(timeout=30) for _ in procs]
        assert [r[0] for r in ready] == ["ready", "ready"]
        go.set()
        results = sorted(out.get(timeout=30) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert results == [("ok", False, 0), ("ok", True, 3)], results
    # one of them checked and fetched (two discoveries); the other joined
    assert discoveries(http_git.requests) == 2
    assert src.mirror is not None
    fsck(src.mirror.path)
    assert mirror_refs(src.mirror.path) == remote_refs(url)


def test_two_threads_fetching_one_mirror_share_one_fetch(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote
) -> None:
    bare, url = make_remote()
    data = tmp_path / "data"
    store = make_store(data, {"app": {"type": "git", "url": url}})
    store.source("app").refresh()
    Upstream(bare).commit("refs/heads/main", {"n": "n\n"})
    http_git.clear_requests()
    http_git.delay_next(1, 1.0, service="info/refs")
    # One source object shared by both threads, plus a second Store on the same data directory.
    sources = [store.source("app"), app_source(data, url)]
    results: list[FetchResult | BaseException] = []

    def run(src: StoreSource) -> None:
        try:
            r = src.refresh()
            assert r is not None
            results.append(r)
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in [sources[0], *sources]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert all(isinstance(r, FetchResult) for r in results), results
    fetched = [r.fetched for r in results if isinstance(r, FetchResult)]
    assert sorted(fetched) == [False, False, True]
    assert discoveries(http_git.requests) == 2  # one check and one fetch, for all three


# -- 5. push with a lease ------------------------------------------------------------------------
@pytest.fixture(params=["file", "http"])
def pushable(
    request: pytest.FixtureRequest, tmp_path: Path, make_remote: MakeRemote
) -> tuple[Upstream, str]:
    bare, url = make_remote({"a.txt": "A\n"})
    if request.param == "file":
        url = bare.as_uri()
    return Upstream(bare), url


def test_push_creates_updates_and_deletes_with_a_lease(
    tmp_path: Path, pushable: tuple[Upstream, str]
) -> None:
    up, url = pushable
    src = app_source(tmp_path / "data", url)
    src.refresh()
    assert src.mirror is not None
    repo, mirror = src.repository, src.mirror.path
    main = repo.resolve("main")
    c1 = mirror_commit(repo, None, {"f.txt": "1\n"}, parent=main)
    src.push([PushUpdate("refs/heads/feature", c1, None)])
    assert up.ref("refs/heads/feature") == c1
    assert mirror_refs(mirror)["refs/heads/feature"] == c1  # the mirror follows

    c2 = mirror_commit(repo, None, {"f.txt": "2\n"}, parent=c1)
    src.push([PushUpdate("refs/heads/feature", c2, c1)])
    assert up.ref("refs/heads/feature") == c2 and mirror_refs(mirror)["refs/heads/feature"] == c2

    # Someone else moves the branch upstream: our lease (c2) is stale.
    theirs = up.commit("refs/heads/feature", {"g.txt": "theirs\n"})
    c3 = mirror_commit(repo, None, {"f.txt": "3\n"}, parent=c2)
    before = remote_refs(url)
    with pytest.raises(RemoteRefConflict) as info:
        src.push([PushUpdate("refs/heads/feature", c3, c2)])
    assert (info.value.ref, info.value.expected, info.value.actual) == (
        "refs/heads/feature", c2, theirs
    )
    assert remote_refs(url) == before
    # Creating a ref that exists is a stale lease too.
    with pytest.raises(RemoteRefConflict) as info:
        src.push([PushUpdate("refs/heads/main", c3, None)])
    assert info.value.actual == main and remote_refs(url) == before

    # Deleting: with a stale lease nothing happens, with the right one the ref goes.
    with pytest.raises(RemoteRefConflict):
        src.push([PushUpdate("refs/heads/feature", None, c2)])
    assert up.ref("refs/heads/feature") == theirs
    src.refresh()
    src.push([PushUpdate("refs/heads/feature", None, theirs)])
    assert up.ref("refs/heads/feature") is None
    assert "refs/heads/feature" not in mirror_refs(mirror)
    fsck(up.path)


def test_a_push_of_several_refs_is_all_or_nothing(
    tmp_path: Path, pushable: tuple[Upstream, str]
) -> None:
    up, url = pushable
    src = app_source(tmp_path / "data", url)
    src.refresh()
    assert src.mirror is not None
    repo = src.repository
    main = repo.resolve("main")
    side = up.commit("refs/heads/side", {"s": "s\n"})
    src.refresh()
    m2 = mirror_commit(repo, None, {"m": "2\n"}, parent=main)
    s2 = mirror_commit(repo, None, {"s": "2\n"}, parent=side)
    t1 = mirror_commit(repo, None, {"t": "1\n"}, parent=main)
    before = remote_refs(url)

    stale = [
        PushUpdate("refs/heads/main", m2, main),  # right
        PushUpdate("refs/heads/topic", t1, None),  # right (a creation)
        PushUpdate("refs/heads/side", s2, main),  # stale
    ]
    with pytest.raises(RemoteRefConflict) as info:
        src.push(stale)
    assert (info.value.ref, info.value.actual) == ("refs/heads/side", side)
    assert remote_refs(url) == before  # none applied
    assert mirror_refs(src.mirror.path, "refs/heads/") == {
        k: v for k, v in before.items() if k.startswith("refs/heads/")
    }

    src.push([PushUpdate(u.ref, u.new, side if u.ref == "refs/heads/side" else u.expected)
              for u in stale])
    after = remote_refs(url)
    assert (after["refs/heads/main"], after["refs/heads/topic"], after["refs/heads/side"]) == (
        m2, t1, s2
    )
    assert mirror_refs(src.mirror.path, "refs/heads/") == {
        k: v for k, v in after.items() if k.startswith("refs/heads/")
    }


def test_a_push_whose_answer_is_lost_but_applied_succeeds(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote
) -> None:
    bare, url = make_remote()
    src = app_source(tmp_path / "data", url)
    src.refresh()
    main = src.repository.resolve("main")
    new = mirror_commit(src.repository, None, {"x": "x\n"}, parent=main)
    http_git.drop_response_next(1, after_bytes=0, service="git-receive-pack")
    src.push([PushUpdate("refs/heads/main", new, main)])
    assert Upstream(bare).ref("refs/heads/main") == new
    assert src.repository.resolve("main") == new


# -- 6. credentials ------------------------------------------------------------------------------
def _secret(kind: str) -> str:
    return f"{kind}-S3cr3t:%/{secrets.token_hex(8)}"


def assert_nowhere(secret: str, *, src: StoreSource, caplog: pytest.LogCaptureFixture,
                   errors: Sequence[BaseException] = ()) -> None:
    """The secret is in no error, log record, mirror config or file under the data dir."""
    from urllib.parse import quote

    forms = {secret, quote(secret, safe="")}
    for exc in errors:
        text = " ".join(str(x) for x in (exc, repr(exc), getattr(exc, "stderr", ""),
                                         getattr(exc, "hint", "")))
        assert not any(f in text for f in forms), text
    for record in caplog.records:
        text = f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        assert not any(f in text for f in forms), text
    assert src.mirror is not None
    config = git(f"--git-dir={src.mirror.path}", "config", "--list").stdout.decode()
    assert not any(f in config for f in forms), config
    assert not any(f in src.display_location for f in forms)
    root = src.store.data_dir
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            data = (Path(dirpath) / name).read_bytes()
            assert not any(f.encode() in data for f in forms), Path(dirpath) / name


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def test_password_from_the_environment(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    bare, url = make_remote()
    password = _secret("pw")
    http_git.set_auth(("bot", password))
    env = {"BOT_PASSWORD": password}
    store = make_store(
        tmp_path / "data",
        {"app": {"type": "git", "url": url,
                 "credentials": {"username": "bot", "password_env": "BOT_PASSWORD"}}},
        env=env,
    )
    src = store.source("app")
    src.refresh()
    assert src.mirror is not None
    assert mirror_refs(src.mirror.path) == remote_refs(bare)
    assert any(r.user == "bot" and r.status == 200 for r in http_git.requests)
    # A push authenticates the same way.
    main = src.repository.resolve("main")
    new = mirror_commit(src.repository, None, {"p": "p\n"}, parent=main)
    src.push([PushUpdate("refs/heads/main", new, main)])
    assert Upstream(bare).ref("refs/heads/main") == new

    # Wrong credentials: RemoteUnavailable, redacted.
    errors: list[BaseException] = []
    wrong = _secret("wrong")
    env["BOT_PASSWORD"] = wrong
    with pytest.raises(RemoteUnavailable) as info:
        src.refresh()
    errors.append(info.value)
    assert "127.0.0.1" in str(info.value)
    assert src.freshness().last_error is not None
    with pytest.raises(RemoteUnavailable) as info:
        src.push([PushUpdate("refs/heads/main", main, new)])
    errors.append(info.value)
    assert_nowhere(password, src=src, caplog=debug_logs, errors=errors)
    assert_nowhere(wrong, src=src, caplog=debug_logs, errors=errors)


def test_a_rotated_token_takes_effect_on_the_next_fetch(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    bare, url = make_remote()
    old, new = _secret("tok1"), _secret("tok2")
    http_git.set_auth(bearer_token=old)
    env = {"APP_TOKEN": old}
    src = make_store(
        tmp_path / "data",
        {"app": {"type": "git", "url": url, "credentials": {"token_env": "APP_TOKEN"}}},
        env=env,
    ).source("app")
    src.refresh()
    assert any(r.user == "x-access-token" for r in http_git.requests)

    up = Upstream(bare)
    later = up.commit("refs/heads/main", {"l": "l\n"})
    http_git.set_auth(bearer_token=new)  # the server rotates first: our old token fails
    with pytest.raises(RemoteUnavailable) as info:
        src.refresh()
    env["APP_TOKEN"] = new  # then the environment follows
    result = src.refresh()
    assert result is not None and result.fetched
    assert src.repository.resolve("main") == later
    assert_nowhere(old, src=src, caplog=debug_logs, errors=[info.value])
    assert_nowhere(new, src=src, caplog=debug_logs, errors=[info.value])


def test_credentials_embedded_in_the_url(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    bare, _ = make_remote(name="team/app.git")
    password = _secret("url")
    http_git.set_auth(("bot", password))
    url = http_git.url_for("team/app.git", credentials=("bot", password))
    store = make_store(tmp_path / "data", {"app": {"type": "git", "url": url}})
    src = store.source("app")
    src.refresh()
    assert src.display_location == http_git.url_for("team/app.git")
    assert password not in repr(store.config) and password not in str(store.config)
    assert src.mirror is not None and password not in repr(src.mirror)
    main = src.repository.resolve("main")
    new = mirror_commit(src.repository, None, {"p": "p\n"}, parent=main)
    src.push([PushUpdate("refs/heads/main", new, main)])
    assert Upstream(bare).ref("refs/heads/main") == new

    http_git.set_auth(("bot", "something-else"))
    with pytest.raises(RemoteUnavailable) as info:
        src.refresh()
    assert_nowhere(password, src=src, caplog=debug_logs, errors=[info.value])


# -- 7. faults -----------------------------------------------------------------------------------
def test_a_hung_fetch_is_abandoned_at_the_stall_limit_and_retried(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote
) -> None:
    _bare, url = make_remote()
    src = app_source(tmp_path / "data", url)
    http_git.hang_next(1)
    start = time.monotonic()
    result = src.refresh()  # one call: the hang, the stall limit, the retry
    elapsed = time.monotonic() - start
    assert result is not None and result.fetched
    assert FAST.stall_seconds <= elapsed < FAST.stall_seconds + 10
    assert [r.fault for r in http_git.requests].count("hang") == 1
    assert src.mirror is not None and mirror_refs(src.mirror.path) == remote_refs(url)
    assert src.mirror.read_state().consecutive_failures == 0


def test_two_errors_then_success_within_the_retries(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote
) -> None:
    _bare, url = make_remote()
    src = app_source(tmp_path / "data", url)
    http_git.fail_next(2, status=503)
    result = src.refresh()
    assert result is not None and result.fetched
    assert [r.status for r in http_git.requests][:2] == [503, 503]
    assert src.mirror is not None and mirror_refs(src.mirror.path) == remote_refs(url)
    state = src.mirror.read_state()
    assert state.consecutive_failures == 0 and state.last_error is None


def test_every_attempt_failing_is_recorded(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote
) -> None:
    bare, url = make_remote()
    src = app_source(tmp_path / "data", url)
    src.refresh()
    assert src.mirror is not None
    Upstream(bare).commit("refs/heads/main", {"n": "n\n"})
    http_git.clear_requests()
    http_git.fail_next(100, status=503, service="info/refs")
    for n in (1, 2):
        with pytest.raises(RemoteUnavailable) as info:
            src.refresh()
        assert "503" in str(info.value)
        state = src.mirror.read_state()
        assert state.consecutive_failures == n and state.last_error == str(info.value)
    assert len(http_git.requests) == 2 * FAST.attempts
    http_git.clear_faults()
    result = src.refresh()
    assert result is not None and len(result.changes) == 1
    assert src.mirror.read_state().consecutive_failures == 0


def test_a_pack_cut_in_the_middle_is_fetched_again(
    tmp_path: Path, http_git: GitHttpServer, make_remote: MakeRemote
) -> None:
    _bare, url = make_remote({f"f{i}.txt": f"{i}\n" * 200 for i in range(50)})
    src = app_source(tmp_path / "data", url)
    http_git.drop_mid_pack_next(1)
    src.refresh()
    assert [r.fault for r in http_git.requests].count("drop") == 1
    assert src.mirror is not None and mirror_refs(src.mirror.path) == remote_refs(url)
    fsck(src.mirror.path)


def _git_processes_for(port: int) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if f"127.0.0.1:{port}".encode() in cmdline:
            found.append(cmdline.decode(errors="replace"))
    return found


@pytest.mark.parametrize(
    ("policy", "limit"),
    [
        # curl's stall limit gives up first...
        (NetworkPolicy(timeout=30, stall_seconds=2, attempts=2, backoff_base=0.05), 2 * 2 + 4),
        # ...or the hard deadline does, killing git and its helpers.
        (NetworkPolicy(timeout=2, stall_seconds=60, attempts=1, backoff_base=0.05), 2 + 3),
    ],
    ids=["stall", "deadline"],
)
def test_a_server_that_never_answers(
    tmp_path: Path, hanging_tcp: HangingTCPServer, policy: NetworkPolicy, limit: float
) -> None:
    url = hanging_tcp.url_for("team/app.git")
    src = make_store(tmp_path / "data", {"app": {"type": "git", "url": url}},
                     policy=policy).source("app")
    start = time.monotonic()
    with pytest.raises(RemoteUnavailable) as info:
        src.refresh()
    elapsed = time.monotonic() - start
    assert elapsed < limit, elapsed
    assert hanging_tcp.accepted >= policy.attempts
    assert "127.0.0.1" in str(info.value)
    deadline = time.monotonic() + 2
    while _git_processes_for(hanging_tcp.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _git_processes_for(hanging_tcp.port) == []
    assert src.freshness().last_error == str(info.value)


# -- 11. progress --------------------------------------------------------------------------------
def test_refresh_reports_progress(
    tmp_path: Path, make_remote: MakeRemote
) -> None:
    _bare, url = make_remote({f"d{i % 7}/f{i}.txt": f"content {i}\n" * 20 for i in range(400)})
    src = app_source(tmp_path / "data", url)
    seen: list[tuple[str, int, int]] = []
    result = src.refresh(progress=lambda phase, done, total: seen.append((phase, done, total)))
    assert result is not None and result.fetched
    assert src.mirror is not None and mirror_refs(src.mirror.path) == remote_refs(url)
    phases: dict[str, list[tuple[int, int]]] = {}
    for phase, done, total in seen:
        phases.setdefault(phase, []).append((done, total))
    assert phases, "no progress reported"
    for phase, points in phases.items():
        dones = [d for d, _ in points]
        assert dones == sorted(dones), (phase, points)
        assert all(0 <= d <= t for d, t in points), (phase, points)
    assert any(points[-1][0] == points[-1][1] > 400 for points in phases.values()), phases
    assert any("objects" in phase for phase in phases)
