"""The test smart-HTTP git server works with the real git CLI, faults included.

Every network test of Revisor leans on ``tests.support.githttp``; these tests pin down that it is a
faithful git server (clone, fetch, push, chunked and gzip bodies, auth) and that each injected
fault looks to a real client the way the real failure would, and then goes away.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.fixtures import MakeRemote
from tests.support.githttp import GitHttpServer, HangingTCPServer

pytestmark = pytest.mark.timeout(60)

SLOW = ("-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=2")


def git(
    *args: str, cwd: Path | None = None, check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run git without any prompt; raise with its stderr when ``check`` and it fails."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def bare_rev(bare: Path, ref: str) -> str:
    return git(f"--git-dir={bare}", "rev-parse", "--verify", ref).stdout.strip()


def helper(user: str, password: str) -> tuple[str, ...]:
    """``-c`` options that make git take ``user``/``password`` from a credential helper."""
    answer = f"printf 'username={user}\\npassword={password}\\n'"
    script = f"!f() {{ test \"$1\" = get && {answer}; }}; f"
    return ("-c", "credential.helper=", "-c", f"credential.helper={script}")


# -- a faithful server ------------------------------------------------------------------------


def test_clone_and_ls_remote(
    http_git: GitHttpServer, make_remote: MakeRemote, tmp_path: Path
) -> None:
    bare, url = make_remote({"a.txt": "A\n", "dir/b.txt": "B\n"})
    git("clone", "-q", url, str(tmp_path / "clone"))
    assert (tmp_path / "clone" / "dir" / "b.txt").read_text() == "B\n"

    listing = git("ls-remote", url).stdout
    assert f"{bare_rev(bare, 'main')}\trefs/heads/main" in listing

    discovery = http_git.requests[0]
    assert (discovery.method, discovery.endpoint, discovery.service) == (
        "GET", "info/refs", "git-upload-pack"
    )
    assert discovery.header("Git-Protocol") == "version=2"
    assert discovery.status == 200 and not discovery.authorization_present
    assert discovery.raw.startswith(f"GET /{bare.name}/info/refs?service=git-upload-pack HTTP/1.1")
    assert "\r\nGit-Protocol: version=2\r\n" in discovery.raw and discovery.raw.endswith("\r\n\r\n")
    assert all(r.status == 200 for r in http_git.requests)


def test_push_new_branch(make_remote: MakeRemote, tmp_path: Path) -> None:
    bare, url = make_remote()
    work = tmp_path / "work"
    git("clone", "-q", url, str(work))
    (work / "new.txt").write_text("new\n")
    git("-C", str(work), "add", "new.txt")
    git("-C", str(work), "commit", "-q", "-m", "add new")
    git("-C", str(work), "push", "-q", "origin", "HEAD:refs/heads/feature")
    assert bare_rev(bare, "feature") == git("-C", str(work), "rev-parse", "HEAD").stdout.strip()


def test_large_push_is_chunked_and_lands(
    http_git: GitHttpServer, make_remote: MakeRemote, tmp_path: Path
) -> None:
    bare, url = make_remote()
    work = tmp_path / "work"
    git("clone", "-q", url, str(work))
    (work / "big.bin").write_bytes(os.urandom(1_500_000))
    git("-C", str(work), "add", "big.bin")
    git("-C", str(work), "commit", "-q", "-m", "big")
    http_git.clear_requests()
    git("-C", str(work), "-c", "http.postBuffer=65536", "push", "-q", "origin", "main")

    assert bare_rev(bare, "main") == git("-C", str(work), "rev-parse", "HEAD").stdout.strip()
    git(f"--git-dir={bare}", "fsck", "--strict")
    pushes = [r for r in http_git.requests if r.endpoint == "git-receive-pack"]
    big = [r for r in pushes if r.header("Transfer-Encoding") == "chunked"]
    assert big and big[0].body_bytes > 1_000_000 and big[0].status == 200


def test_gzip_request_body(
    http_git: GitHttpServer, make_remote: MakeRemote, tmp_path: Path
) -> None:
    # Forty branches on forty commits: the fetch request lists more than 1 KiB of wants, which
    # git sends gzip-compressed.
    bare, url = make_remote()
    lines = []
    for i in range(40):
        lines += [
            f"commit refs/heads/b{i}",
            "committer C <c@example.com> 1700000000 +0000",
            "data 2",
            f"{i:02d}",
            "",
        ]
    stream = "\n".join(lines) + "\n"
    subprocess.run(
        ["git", f"--git-dir={bare}", "fast-import", "--quiet"],
        input=stream.encode(), check=True, capture_output=True, timeout=30,
    )
    git("clone", "-q", "--mirror", url, str(tmp_path / "mirror.git"))
    assert bare_rev(tmp_path / "mirror.git", "b39") == bare_rev(bare, "b39")
    assert any(r.header("Content-Encoding") == "gzip" for r in http_git.requests)


# -- authentication ---------------------------------------------------------------------------


def test_basic_auth_and_rotation(make_remote: MakeRemote, http_git_root: Path) -> None:
    bare, _ = make_remote()
    with GitHttpServer(http_git_root, auth=("alice", "s3cret")) as server:
        url = server.url_for(bare.name)

        denied = git("ls-remote", url, check=False)
        assert denied.returncode != 0
        assert server.requests[-1].status == 401 and not server.requests[-1].authorization_present

        git(*helper("alice", "s3cret"), "ls-remote", url)
        ok = server.requests[-1]
        assert (ok.status, ok.user, ok.auth_scheme) == (200, "alice", "basic")
        assert ok.authorization_present and "Authorization: Basic " in ok.raw

        git("ls-remote", server.url_for(bare.name, credentials=("alice", "s3cret")))

        wrong = git(*helper("alice", "nope"), "ls-remote", url, check=False)
        assert wrong.returncode != 0 and server.requests[-1].status == 403

        server.set_auth(("alice", "rotated"))
        stale = git(*helper("alice", "s3cret"), "ls-remote", url, check=False)
        assert stale.returncode != 0 and server.requests[-1].status == 403
        git(*helper("alice", "rotated"), "ls-remote", url)


def test_bearer_token(make_remote: MakeRemote, http_git_root: Path) -> None:
    bare, _ = make_remote()
    token = secrets.token_urlsafe(16)
    with GitHttpServer(http_git_root, bearer_token=token) as server:
        url = server.url_for(bare.name)
        git("-c", f"http.extraHeader=Authorization: Bearer {token}", "ls-remote", url)
        assert server.requests[-1].auth_scheme == "bearer" and server.requests[-1].status == 200
        git(*helper("x-access-token", token), "ls-remote", url)
        assert server.requests[-1].user == "x-access-token"
        bad = git("-c", "http.extraHeader=Authorization: Bearer nope", "ls-remote", url,
                  check=False)
        assert bad.returncode != 0 and server.requests[-1].status == 403


# -- faults -----------------------------------------------------------------------------------


def test_fail_next_then_recovers(http_git: GitHttpServer, make_remote: MakeRemote) -> None:
    _, url = make_remote()
    http_git.fail_next(1, status=503, retry_after=1)
    failed = git("ls-remote", url, check=False)
    assert failed.returncode != 0 and "503" in failed.stderr
    assert (http_git.requests[-1].status, http_git.requests[-1].fault) == (503, "fail")
    git("ls-remote", url)
    assert http_git.pending_faults() == 0


def test_fail_next_filtered_by_service(
    http_git: GitHttpServer, make_remote: MakeRemote, tmp_path: Path
) -> None:
    _, url = make_remote()
    work = tmp_path / "work"
    http_git.fail_next(1, status=500, service="info/refs?service=git-receive-pack")
    git("clone", "-q", url, str(work))  # fetches are not affected
    git("-C", str(work), "commit", "-q", "--allow-empty", "-m", "empty")
    failed = git("-C", str(work), "push", "-q", "origin", "main", check=False)
    assert failed.returncode != 0 and "500" in failed.stderr
    git("-C", str(work), "push", "-q", "origin", "main")


def test_hang_next_times_out_then_recovers(
    http_git: GitHttpServer, make_remote: MakeRemote, tmp_path: Path
) -> None:
    _, url = make_remote()
    git("clone", "-q", url, str(tmp_path / "clone"))
    http_git.hang_next(1, service="git-upload-pack")
    started = time.monotonic()
    hung = git("-C", str(tmp_path / "clone"), *SLOW, "fetch", "-q", "origin", check=False)
    assert hung.returncode != 0 and "too slow" in hung.stderr.lower()
    assert time.monotonic() - started < 15
    assert http_git.hung_count == 1
    http_git.release()
    assert http_git.hung_count == 0
    git("-C", str(tmp_path / "clone"), *SLOW, "fetch", "-q", "origin")


def test_stop_does_not_block_on_hung_requests(
    make_remote: MakeRemote, http_git_root: Path
) -> None:
    bare, _ = make_remote()
    server = GitHttpServer(http_git_root).start()
    server.hang_next(2)
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    clients = [
        subprocess.Popen(
            ["git", "ls-remote", server.url_for(bare.name)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        for _ in range(2)
    ]
    try:
        server.wait_until_hung(2, timeout=10)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 3
        assert all(c.wait(timeout=10) != 0 for c in clients)
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
        server.stop()


def test_drop_mid_pack_then_recovers(
    http_git: GitHttpServer, make_remote: MakeRemote, tmp_path: Path
) -> None:
    _, url = make_remote({"data.bin": os.urandom(200_000)})
    http_git.drop_mid_pack_next(1)
    broken = git("clone", "-q", url, str(tmp_path / "broken"), check=False)
    assert broken.returncode != 0
    dropped = [r for r in http_git.requests if r.fault == "drop"]
    assert len(dropped) == 1 and dropped[0].status == 200
    assert http_git.pending_faults() == 0 and http_git.errors == []

    git("clone", "-q", url, str(tmp_path / "good"))
    git("-C", str(tmp_path / "good"), "fsck", "--strict")


def test_dropped_push_answer_still_applies(
    http_git: GitHttpServer, make_remote: MakeRemote, tmp_path: Path
) -> None:
    bare, url = make_remote()
    work = tmp_path / "work"
    git("clone", "-q", url, str(work))
    git("-C", str(work), "commit", "-q", "--allow-empty", "-m", "pushed blind")
    head = git("-C", str(work), "rev-parse", "HEAD").stdout.strip()
    http_git.drop_response_next(1, service="git-receive-pack")
    failed = git("-C", str(work), "push", "-q", "origin", "main", check=False)
    assert failed.returncode != 0
    assert bare_rev(bare, "main") == head  # applied, although the client saw an error


def test_delay_next(http_git: GitHttpServer, make_remote: MakeRemote) -> None:
    _, url = make_remote()
    http_git.delay_next(1, 1.0, service="info/refs")
    started = time.monotonic()
    git("ls-remote", url)
    assert time.monotonic() - started >= 1.0
    assert http_git.requests[0].fault == "delay"


def test_hanging_tcp_server_read_timeout(hanging_tcp: HangingTCPServer) -> None:
    started = time.monotonic()
    failed = git(*SLOW, "ls-remote", hanging_tcp.url_for("repo.git"), check=False)
    assert failed.returncode != 0 and "too slow" in failed.stderr.lower()
    assert time.monotonic() - started < 15
    assert hanging_tcp.accepted >= 1


def test_hanging_tcp_server_blackhole_connect_timeout() -> None:
    with HangingTCPServer(mode="blackhole") as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(0.5)
        try:
            with pytest.raises(TimeoutError):
                sock.connect(("127.0.0.1", server.port))
        finally:
            sock.close()
