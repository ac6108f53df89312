"""``revisor serve`` as a process: ``--source PATH`` on a free port, reads compared with git, a
50 MB blob streamed in constant memory (the server's peak RSS barely moves), two workers with the
job scheduler, graceful shutdown on SIGTERM (exit 0), and the refusals (0.0.0.0 without users,
nothing to serve)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.integration.test_transactions_support import Upstream

PUBLIC = "0.0.0.0"  # noqa: S104 - the address serve must refuse without users
REVISOR = str(Path(sys.executable).with_name("revisor"))
# SIGTERM: uvicorn shuts down gracefully, and the command then exits 0 (not by the signal)
STOPPED = 0
LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def peak_rss_kb(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]


def _reader(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)


@contextmanager
def serve(tmp: Path, *args: str, port: int = 0) -> Iterator[Served]:
    """Start ``revisor serve`` and wait until it listens; stop it with SIGTERM afterwards."""
    cmd = [REVISOR, "serve", "--port", str(port), "--data-dir", str(tmp / "data"), "--no-ui",
           *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=tmp, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=_reader, args=(proc, lines), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    url = None
    try:
        while url is None:
            assert time.monotonic() < deadline, "".join(lines)
            assert proc.poll() is None, "".join(lines)
            for line in list(lines):
                m = LISTENING.search(line)
                if m:
                    found = int(m.group(1))
                    url = f"http://127.0.0.1:{found or port}"
            time.sleep(0.05)
        yield Served(proc, url, lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        reader.join(10)


def _repo(tmp: Path, big: int = 0) -> Upstream:
    up = Upstream.init(tmp / "site.git", {"README.md": "hello\n", "docs/a.md": "a\n"})
    if big:
        path = tmp / "big.bin"
        block = os.urandom(1 << 20)
        with path.open("wb") as f:
            for _ in range(big):
                f.write(block)
        up.commit("refs/heads/main", {"big.bin": up.write_blob(path)}, message="big")
        path.unlink()
    return up


def test_serve_a_path_streams_in_constant_memory_and_stops_gracefully(tmp_path: Path) -> None:
    up = _repo(tmp_path, big=50)
    with serve(tmp_path, "--source", str(up.path), "--no-scheduler") as s, \
            httpx.Client(timeout=60) as client:
        sources = client.get(s.api + "/sources").json()["items"]
        assert [x["name"] for x in sources] == ["site"] and sources[0]["type"] == "local"
        tree = client.get(s.api + "/sources/site/tree").json()
        assert {e["name"] for e in tree["entries"]} == set(up.git("ls-tree", "--name-only",
                                                                  "main").split())
        r = client.get(s.api + "/sources/site/blob", params={"path": "README.md"})
        assert r.content == b"hello\n"
        before = s.peak_rss_kb()
        size = 0
        with client.stream("GET", s.api + "/sources/site/blob",
                           params={"path": "big.bin"}) as r:
            assert r.status_code == 200
            assert int(r.headers["content-length"]) == 50 << 20
            for chunk in r.iter_raw(1 << 16):
                size += len(chunk)
        assert size == 50 << 20
        grown_mb = (s.peak_rss_kb() - before) / 1024
        assert grown_mb < 20, f"the server's peak RSS grew by {grown_mb:.1f} MB for 50 MB"
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(30) == STOPPED
    text = "".join(s.lines)
    assert "Application shutdown complete" in text and "Traceback" not in text
    assert (tmp_path / "data" / "revisor.db").exists() or any((tmp_path / "data").iterdir())


def test_two_workers(tmp_path: Path) -> None:
    up = _repo(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # with the job scheduler (the default): each worker runs one; they elect a leader
    with serve(tmp_path, "--source", str(up.path), "--workers", "2", port=port) as s, \
            httpx.Client(timeout=60) as client:
        deadline = time.monotonic() + 60
        while True:  # the workers start after the parent listens
            children = Path(f"/proc/{s.proc.pid}/task/{s.proc.pid}/children").read_text().split()
            try:
                up_now = client.get(s.api + "/healthz").status_code == 200
            except httpx.ConnectError:
                up_now = False
            if len(children) >= 2 and up_now:
                break
            assert time.monotonic() < deadline, "".join(s.lines)
            time.sleep(0.1)
        for _ in range(10):
            r = client.get(s.api + "/sources/site/blob", params={"path": "docs/a.md"})
            assert r.status_code == 200 and r.content == b"a\n"
        assert client.get(s.api + "/readyz").json()["status"] == "ready"
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(30) == STOPPED
    assert "Traceback" not in "".join(s.lines), "".join(s.lines)
    # every child ends with the parent (multiprocessing's resource tracker, one of them, only
    # notices the parent is gone a moment later: wait for it, up to a deadline)
    deadline = time.monotonic() + 30
    while alive := [c for c in children if _running(c)]:
        assert time.monotonic() < deadline, f"children still running: {alive}"
        time.sleep(0.1)


def _running(pid: str) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return False


def test_refuses_public_address_without_users(tmp_path: Path) -> None:
    up = _repo(tmp_path)
    proc = subprocess.run(
        [REVISOR, "serve", "--source", str(up.path), "--host", PUBLIC, "--port", "0",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "refusing to listen on 0.0.0.0" in proc.stderr
    assert "Uvicorn running" not in proc.stderr


def test_nothing_to_serve_and_bad_sources(tmp_path: Path) -> None:
    proc = subprocess.run([REVISOR, "serve", "--data-dir", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and "nothing to serve" in proc.stderr
    proc = subprocess.run([REVISOR, "serve", "--source", "--x", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
