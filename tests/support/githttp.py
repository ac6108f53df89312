"""A real smart-HTTP git server for tests, with authentication and fault injection.

Revisor talks to remotes over HTTP, and its tests must exercise that path against a real git
server, never a mock: this module runs ``git http-backend`` as a CGI, one process per request,
behind a ``ThreadingHTTPServer`` on 127.0.0.1. It speaks protocol v0 and v2, accepts gzip and
chunked request bodies (large pushes) and streams responses, so clients see exactly what they
would see from a production server.

On top of that it records every request (for assertions about what the client sent, including
that secrets stay out of logs), can require Basic or bearer-token credentials (rotated at run
time), and injects the network faults Revisor must survive: error statuses, hung requests,
connections dropped in the middle of a pack, and slow answers. ``HangingTCPServer`` covers the
case where nothing speaks HTTP at all.

Everything is bounded: handler threads are daemons, sockets have timeouts, and ``stop()`` wakes
hung requests, shuts down client sockets and kills backends, so a test can never wedge CI.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import io
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, cast
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = [
    "FaultKind",
    "GitHttpServer",
    "HangingTCPServer",
    "RecordedRequest",
    "ServiceFilter",
]

#: What a fault may be restricted to: the POST endpoints (``git-upload-pack`` for fetches,
#: ``git-receive-pack`` for pushes), any ref discovery (``info/refs``), or the discovery of one
#: service (``info/refs?service=git-upload-pack`` / ``info/refs?service=git-receive-pack``).
#: ``None`` matches every request.
ServiceFilter = str | None

FaultKind = Literal["fail", "hang", "delay", "drop"]

_CHUNK = 64 * 1024
# How far past the start of a pack the drop fault reads before cutting (so a huge pack is not
# buffered whole); the cut lands half way between the pack header and what was read.
_DROP_LOOKAHEAD = 1024 * 1024
_PACK_SIGNATURE = b"PACK\x00\x00\x00"
_SOCKET_TIMEOUT = 60.0
_STOP_JOIN_SECONDS = 5.0


@dataclass
class RecordedRequest:
    """One request as the server saw it; ``status`` and ``fault`` are filled in as it is served.

    ``status`` is ``None`` while the request is in progress and stays ``None`` for a request that
    was hung and then closed without an answer.
    """

    method: str
    path: str
    query: str
    endpoint: str
    repo: str
    request_line: str
    headers: tuple[tuple[str, str], ...]
    client_address: str
    authorization_present: bool
    raw_bytes: bytes = b""
    auth_scheme: str | None = None
    user: str | None = None
    status: int | None = None
    fault: FaultKind | None = None
    body_bytes: int = 0
    backend_stderr: str = ""
    started_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None

    @property
    def raw(self) -> str:
        """The request line and headers byte for byte as received (latin-1 decoded), up to and
        including the blank line that ends them."""
        return self.raw_bytes.decode("latin-1")

    @property
    def service(self) -> str | None:
        """The git service asked for: ``git-upload-pack`` or ``git-receive-pack`` (or None)."""
        if self.endpoint in ("git-upload-pack", "git-receive-pack"):
            return self.endpoint
        if self.endpoint == "info/refs":
            values = parse_qs(self.query).get("service")
            return values[0] if values else None
        return None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def matches(self, service: ServiceFilter) -> bool:
        if service is None:
            return True
        if service.startswith("info/refs?service="):
            return self.endpoint == "info/refs" and self.service == service.split("=", 1)[1]
        return self.endpoint == service


@dataclass
class _Fault:
    kind: FaultKind
    remaining: int
    service: ServiceFilter
    repo: str | None
    status: int = 503
    retry_after: int | str | None = None
    seconds: float = 0.0
    # For "drop": cut inside the first pack of the response (None), or after this many body bytes.
    after_bytes: int | None = None

    def applies_to(self, record: RecordedRequest) -> bool:
        if self.remaining <= 0 or not record.matches(self.service):
            return False
        return self.repo is None or record.repo.strip("/") == self.repo.strip("/")


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    git_server: GitHttpServer

    def handle_error(self, request: object, client_address: object) -> None:
        import traceback

        self.git_server._record_error(traceback.format_exc())


class _TeeReader:
    """Reads lines from a stream and keeps a copy (``parse_headers`` only calls ``readline``)."""

    def __init__(self, stream: io.BufferedIOBase) -> None:
        self._stream = stream
        self.captured = bytearray()

    def readline(self, size: int = -1) -> bytes:
        line = self._stream.readline(size)
        self.captured += line
        return line


class _Dropped(Exception):
    """The connection was closed on purpose (fault) or by the client; stop serving it."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "RevisorTestGit/1.0"
    timeout = _SOCKET_TIMEOUT
    server: _Httpd
    raw_requestline: bytes
    _raw_header_bytes = b""

    # -- plumbing ---------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.git_server._track_connection(self.connection, threading.current_thread())

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.git_server._untrack_connection(self.connection)

    def parse_request(self) -> bool:
        """Parse as usual, keeping the header bytes exactly as they came off the socket."""
        real = self.rfile
        tee = _TeeReader(real)
        self.rfile = tee  # type: ignore[assignment]
        try:
            return super().parse_request()
        finally:
            self.rfile = real
            self._raw_header_bytes = bytes(tee.captured)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default stderr access log: ``requests`` is the log tests assert on."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    # -- request handling -------------------------------------------------------------------

    def _serve(self) -> None:
        gs = self.server.git_server
        split = urlsplit(self.path)
        path = unquote(split.path)
        endpoint, repo = _classify(path)
        record = RecordedRequest(
            method=self.command,
            path=path,
            query=split.query,
            endpoint=endpoint,
            repo=repo,
            request_line=self.requestline,
            headers=tuple(self.headers.items()),
            client_address=self.client_address[0],
            authorization_present="Authorization" in self.headers,
            raw_bytes=self.raw_requestline + self._raw_header_bytes,
        )
        gs._record(record)
        try:
            self._serve_recorded(record)
        except _Dropped:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        finally:
            record.finished_at = time.monotonic()

    def _serve_recorded(self, record: RecordedRequest) -> None:
        gs = self.server.git_server
        ok, user, scheme = gs._authenticate(self.headers.get("Authorization"))
        record.auth_scheme = scheme
        if not ok:
            status = 403 if record.authorization_present else 401
            self._simple_response(record, status, b"Unauthorized\n" if status == 401 else b"")
            return
        record.user = user

        if self.command not in ("GET", "POST"):
            self._simple_response(record, 405, b"Method not allowed\n")
            return

        delay = gs._take_fault(record, ("delay",))
        if delay is not None:
            record.fault = "delay"
            if gs._stopping.wait(delay.seconds):
                raise _Dropped
        fault = gs._take_fault(record, ("fail", "hang"))
        if fault is not None and fault.kind == "fail":
            record.fault = "fail"
            extra = {}
            if fault.retry_after is not None:
                extra["Retry-After"] = str(fault.retry_after)
            self._simple_response(record, fault.status, b"injected failure\n", extra)
            return
        if fault is not None and fault.kind == "hang":
            record.fault = "hang"
            gs._hang()
            self._abort_connection()
            raise _Dropped

        drop = gs._peek_fault(record, "drop")
        self._run_backend(record, user, drop)

    def _simple_response(
        self,
        record: RecordedRequest,
        status: int,
        body: bytes,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        record.status = status
        has_body = (
            int(self.headers.get("Content-Length") or 0) > 0
            or "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        )
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        if has_body:
            # The request body was not read: the connection cannot carry another request.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _abort_connection(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _run_backend(self, record: RecordedRequest, user: str | None, drop: _Fault | None) -> None:
        gs = self.server.git_server
        env = gs._backend_env()
        content_length = self.headers.get("Content-Length")
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        env.update(
            {
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "SERVER_SOFTWARE": self.server_version,
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": str(self.server.server_address[1]),
                "REQUEST_METHOD": self.command,
                "PATH_INFO": record.path,
                "QUERY_STRING": record.query,
                "REMOTE_ADDR": self.client_address[0],
                "CONTENT_TYPE": self.headers.get("Content-Type") or "",
            }
        )
        if content_length is not None and not chunked:
            env["CONTENT_LENGTH"] = content_length
        if user is not None:
            env["REMOTE_USER"] = user
            env["AUTH_TYPE"] = "Basic" if record.auth_scheme == "basic" else "Bearer"
        if encoding := self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = encoding
        if protocol := self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = protocol

        proc = subprocess.Popen(
            ["git", "http-backend"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        gs._track_process(proc)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        stdin, stderr = proc.stdin, proc.stderr
        stdout = cast(io.BufferedReader, proc.stdout)
        stderr_chunks: list[bytes] = []
        stderr_thread = _daemon(lambda: stderr_chunks.append(stderr.read()))
        pump_done = threading.Event()
        pump_ok: list[bool] = []

        def pump() -> None:
            try:
                if chunked:
                    total = _copy_chunked(self.rfile, stdin)
                else:
                    total = _copy_exact(self.rfile, stdin, int(content_length or 0))
                record.body_bytes = total
                pump_ok.append(True)
            except (OSError, ValueError):
                pass
            finally:
                with contextlib.suppress(OSError):
                    stdin.close()
                pump_done.set()

        pump_thread = _daemon(pump)
        try:
            self._relay_response(record, stdout, drop)
        finally:
            # Let the backend run to completion: a push whose answer was dropped has still been
            # applied, which is exactly the ambiguity clients must handle.
            _drain(stdout)
            try:
                proc.wait(timeout=_SOCKET_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            stderr_thread.join(timeout=5)
            record.backend_stderr = b"".join(stderr_chunks).decode("utf-8", "replace")
            gs._untrack_process(proc)
            if not pump_done.wait(timeout=1.0) or not pump_ok:
                # The body was not (fully) read; the connection cannot be reused.
                self._abort_connection()
            pump_thread.join(timeout=1.0)

    def _relay_response(
        self, record: RecordedRequest, out: io.BufferedReader, drop: _Fault | None
    ) -> None:
        status, reason, headers = _read_cgi_headers(out)
        record.status = status
        length_given = any(name.lower() == "content-length" for name, _ in headers)

        def send_head() -> None:
            self.send_response(status, reason)
            for name, value in headers:
                self.send_header(name, value)
            if not length_given:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def send_body(data: bytes) -> None:
            if not data:
                return
            if length_given:
                self.wfile.write(data)
            else:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        def finish_body() -> None:
            if not length_given:
                self.wfile.write(b"0\r\n\r\n")

        if drop is None:
            send_head()
            while data := out.read1(_CHUNK):
                send_body(data)
            finish_body()
            return

        # A drop fault is armed: hold the body back until we know where to cut.
        gs = self.server.git_server
        buffered = bytearray()
        cut: int | None = None
        eof = False
        while cut is None and not eof:
            data = out.read1(_CHUNK)
            eof = not data
            buffered += data
            cut = _cut_point(buffered, drop.after_bytes, eof)
        if cut is None or not gs._consume_fault(drop):
            # No pack in this answer (or the fault was used up meanwhile): answer normally.
            send_head()
            send_body(bytes(buffered))
            while data := out.read1(_CHUNK):
                send_body(data)
            finish_body()
            return
        record.fault = "drop"
        send_head()
        send_body(bytes(buffered[:cut]))
        self._abort_connection()
        raise _Dropped


# -- helpers ----------------------------------------------------------------------------------


def _classify(path: str) -> tuple[str, str]:
    """(endpoint, repo) for a request path: endpoint is ``info/refs``, ``git-upload-pack``,
    ``git-receive-pack`` or ``other`` (dumb-protocol files)."""
    for endpoint in ("info/refs", "git-upload-pack", "git-receive-pack"):
        suffix = "/" + endpoint
        if path.endswith(suffix):
            return endpoint, path[: -len(suffix)].strip("/")
    return "other", path.strip("/")


def _cut_point(buffered: bytearray, after_bytes: int | None, eof: bool) -> int | None:
    """Where to cut a response for a drop fault, or None while more must be read (or never, at
    end of input without a pack)."""
    if after_bytes is not None:
        return after_bytes if len(buffered) > after_bytes else None
    start = buffered.find(_PACK_SIGNATURE)
    if start < 0:
        return None
    if eof or len(buffered) - start >= _DROP_LOOKAHEAD:
        return start + max(1, (len(buffered) - start) // 2)
    return None


def _read_cgi_headers(out: IO[bytes]) -> tuple[int, str, list[tuple[str, str]]]:
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    while True:
        line = out.readline()
        if not line or line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            code, _, reason = value.partition(" ")
            status = int(code)
        else:
            headers.append((name, value))
    if not line:
        # The backend died before finishing its headers.
        return 500, "Internal Server Error", [("Content-Type", "text/plain")]
    if status == 200 and any(name.lower() == "location" for name, _ in headers):
        status, reason = 302, "Found"
    return status, reason or "OK", headers


def _copy_exact(src: io.BufferedIOBase, dst: IO[bytes], length: int) -> int:
    remaining = length
    while remaining > 0:
        data = src.read(min(_CHUNK, remaining))
        if not data:
            raise ValueError("request body ended early")
        dst.write(data)
        remaining -= len(data)
    dst.flush()
    return length


def _copy_chunked(src: io.BufferedIOBase, dst: IO[bytes]) -> int:
    """De-chunk a ``Transfer-Encoding: chunked`` body from ``src`` into ``dst``."""
    total = 0
    while True:
        line = src.readline(1024)
        if not line.endswith(b"\n"):
            raise ValueError("bad chunk header")
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while src.readline(8192) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            dst.flush()
            return total
        total += _copy_exact(src, dst, size)
        if src.readline(8) not in (b"\r\n", b"\n"):
            raise ValueError("bad chunk terminator")


def _drain(out: IO[bytes]) -> None:
    with contextlib.suppress(OSError, ValueError):
        while out.read(_CHUNK):
            pass


def _daemon(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _basic_credentials(value: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# -- the server -------------------------------------------------------------------------------


class GitHttpServer:
    """Serve every bare repository under ``root`` over git's smart HTTP protocol.

    Pushes are enabled (``http.receivepack=true`` is passed to the backend, so no repository
    needs configuring). ``git_config`` adds server-side configuration for every request, e.g.
    ``{"uploadpack.allowFilter": "true"}``; it is read per request and may be changed at run time.

    Faults are checked only for requests that pass authentication, in the order they were armed:
    a ``delay`` first, then a ``fail`` or ``hang``, then a ``drop`` while the answer streams.
    """

    def __init__(
        self,
        root: Path,
        *,
        auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
        git_config: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.git_config: dict[str, str] = {"http.receivepack": "true", **(git_config or {})}
        self.errors: list[str] = []
        self._auth = auth
        self._bearer_token = bearer_token
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._hung: set[threading.Event] = set()
        self._hung_changed = threading.Condition(self._lock)
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._stopping = threading.Event()
        self._httpd: _Httpd | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> GitHttpServer:
        """Start listening (again, on the same port, after ``stop()``); returns ``self``."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _Httpd(("127.0.0.1", self._port), _Handler)
        httpd.git_server = self
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
            name=f"git-http-{self._port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes hung requests, closes client sockets, kills backends. Bounded."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        self.release()
        stopper = _daemon(httpd.shutdown)
        stopper.join(timeout=_STOP_JOIN_SECONDS)
        with contextlib.suppress(OSError):
            httpd.server_close()
        with self._lock:
            connections = dict(self._connections)
            processes = set(self._processes)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for proc in processes:
            with contextlib.suppress(OSError):
                proc.kill()
        deadline = time.monotonic() + _STOP_JOIN_SECONDS
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for handler_thread in connections.values():
            handler_thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._httpd = None
        self._thread = None

    def __enter__(self) -> GitHttpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("GitHttpServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (valid once started; kept across stop/start)."""
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, relpath: str | Path, *, credentials: tuple[str, str] | None = None) -> str:
        """The URL of the repository at ``relpath`` under ``root`` (optionally with user:password
        embedded, percent-encoded)."""
        rel = Path(relpath)
        if rel.is_absolute():
            rel = rel.resolve().relative_to(self.root)
        base = self.url
        if credentials is not None:
            user, password = credentials
            base = f"http://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"
        return f"{base}/{quote(rel.as_posix())}"

    # -- authentication ---------------------------------------------------------------------

    def set_auth(
        self, auth: tuple[str, str] | None = None, *, bearer_token: str | None = None
    ) -> None:
        """Replace the accepted credentials (both kinds; None and None opens the server)."""
        with self._lock:
            self._auth = auth
            self._bearer_token = bearer_token

    def _authenticate(self, header: str | None) -> tuple[bool, str | None, str | None]:
        """(accepted, user, scheme) for an Authorization header value."""
        with self._lock:
            auth, token = self._auth, self._bearer_token
        scheme: str | None = None
        user: str | None = None
        password: str | None = None
        if header:
            kind, _, value = header.partition(" ")
            if kind.lower() == "basic":
                scheme = "basic"
                creds = _basic_credentials(value)
                if creds is not None:
                    user, password = creds
            elif kind.lower() == "bearer":
                scheme = "bearer"
                password = value.strip()
        if auth is None and token is None:
            return True, user, scheme
        if scheme == "basic" and user is not None and password is not None:
            if auth is not None and _same(user, auth[0]) and _same(password, auth[1]):
                return True, user, scheme
            if token is not None and _same(password, token):
                return True, user, scheme
        if scheme == "bearer" and token is not None and password is not None and _same(
            password, token
        ):
            return True, "bearer", scheme
        return False, None, scheme

    # -- recording --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for_requests(
        self, count: int, *, timeout: float = 10.0, service: ServiceFilter = None
    ) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests matching ``service`` have arrived."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.requests if r.matches(service)]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(found)} of {count} requests arrived")
            time.sleep(0.02)

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(record)

    def _record_error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    # -- faults -----------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 503,
        retry_after: int | str | None = None,
        service: ServiceFilter = None,
        repo: str | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with ``status`` (and ``Retry-After``), without
        running git."""
        self._arm(_Fault("fail", n, service, repo, status=status, retry_after=retry_after))

    def hang_next(
        self, n: int = 1, *, service: ServiceFilter = None, repo: str | None = None
    ) -> None:
        """Accept the next ``n`` matching requests and never answer: before the body is read and
        before git runs, so a hung push changes nothing. ``release()`` or ``stop()`` closes them
        (without an answer); the client must give up on its own timeout first."""
        self._arm(_Fault("hang", n, service, repo))

    def drop_mid_pack_next(
        self, n: int = 1, *, service: ServiceFilter = "git-upload-pack", repo: str | None = None
    ) -> None:
        """For the next ``n`` matching answers that carry a pack: send the status, headers and the
        body up to half way into the pack, then close the connection. Answers without a pack
        (e.g. protocol v2 ``ls-refs``) pass through and do not use the fault up."""
        self._arm(_Fault("drop", n, service, repo))

    def drop_response_next(
        self,
        n: int = 1,
        *,
        after_bytes: int = 0,
        service: ServiceFilter = None,
        repo: str | None = None,
    ) -> None:
        """Send the status, headers and ``after_bytes`` of the body of the next ``n`` matching
        answers (that are longer than that), then close the connection. The backend still runs
        to completion: a push dropped this way has been applied although the client saw an
        error."""
        self._arm(_Fault("drop", n, service, repo, after_bytes=after_bytes))

    def delay_next(
        self, n: int, seconds: float, *, service: ServiceFilter = None, repo: str | None = None
    ) -> None:
        """Wait ``seconds`` before serving each of the next ``n`` matching requests."""
        self._arm(_Fault("delay", n, service, repo, seconds=seconds))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        """How many fault activations are still armed (all kinds)."""
        with self._lock:
            return sum(f.remaining for f in self._faults)

    def release(self) -> None:
        """Close every request currently hung by ``hang_next`` (without an answer)."""
        with self._lock:
            hung, self._hung = self._hung, set()
            self._hung_changed.notify_all()
        for event in hung:
            event.set()

    @property
    def hung_count(self) -> int:
        """How many requests are hung right now."""
        with self._lock:
            return len(self._hung)

    def wait_until_hung(self, count: int = 1, *, timeout: float = 10.0) -> None:
        """Wait until at least ``count`` requests are hung (to know the client got that far)."""
        with self._hung_changed:
            if not self._hung_changed.wait_for(lambda: len(self._hung) >= count, timeout):
                raise TimeoutError(f"{len(self._hung)} of {count} requests hung")

    def _arm(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, record: RecordedRequest, kinds: tuple[FaultKind, ...]) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fault.applies_to(record):
                    fault.remaining -= 1
                    self._faults = [f for f in self._faults if f.remaining > 0]
                    return fault
        return None

    def _peek_fault(self, record: RecordedRequest, kind: FaultKind) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fault.applies_to(record):
                    return fault
        return None

    def _consume_fault(self, fault: _Fault) -> bool:
        with self._lock:
            if fault.remaining <= 0:
                return False
            fault.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining > 0]
            return True

    def _hang(self) -> None:
        event = threading.Event()
        with self._lock:
            if self._stopping.is_set():
                return
            self._hung.add(event)
            self._hung_changed.notify_all()
        event.wait()

    # -- bookkeeping ------------------------------------------------------------------------

    def _backend_env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": os.environ.get("HOME", str(self.root)),
            "LC_ALL": "C",
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
        }
        with self._lock:
            config = dict(self.git_config)
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for i, (key, value) in enumerate(config.items()):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        return env

    def _track_connection(self, conn: socket.socket, thread: threading.Thread) -> None:
        with self._lock:
            self._connections[conn] = thread
        if self._stopping.is_set():
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _untrack_connection(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.pop(conn, None)

    def _track_process(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.add(proc)
        if self._stopping.is_set():
            proc.kill()

    def _untrack_process(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.discard(proc)


class HangingTCPServer:
    """A TCP listener on 127.0.0.1 that never speaks: for connect and read timeout tests.

    ``mode="accept"`` (default) accepts connections and holds them open without reading or
    writing, so a client connects and then waits for an answer that never comes (read timeout).
    ``mode="blackhole"`` never accepts and fills its one-slot backlog itself, so the kernel drops
    further SYNs and a client's connect attempt itself hangs (connect timeout).
    """

    def __init__(self, *, mode: Literal["accept", "blackhole"] = "accept") -> None:
        self.mode = mode
        self._sock: socket.socket | None = None
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._port = 0
        self.accepted = 0

    def start(self) -> HangingTCPServer:
        if self._sock is not None:
            return self
        self._stopping.clear()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        self._sock = sock
        if self.mode == "blackhole":
            sock.listen(0)
            # Fill the accept queue so that the kernel drops any further SYN.
            for _ in range(2):
                filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", self._port))
                self._held.append(filler)
            time.sleep(0.05)
        else:
            sock.listen(64)
            sock.settimeout(0.05)
            self._thread = _daemon(self._accept_loop)
        return self

    def _accept_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._held.append(conn)
                self.accepted += 1

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=_STOP_JOIN_SECONDS)
            self._thread = None
        with self._lock:
            held, self._held = self._held, []
        for conn in held:
            with contextlib.suppress(OSError):
                conn.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def __enter__(self) -> HangingTCPServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("HangingTCPServer is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, relpath: str) -> str:
        return f"{self.url}/{quote(relpath)}"

