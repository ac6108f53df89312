"""The machinery the SCM fakes share: a local HTTP server with routes, faults, and git plumbing.

Why this module exists: the GitHub, GitLab, Gitea and Gerrit fakes are each a real HTTP server on
127.0.0.1 over real bare repositories, and they need the same things underneath — a server in a
daemon thread that routes by method and path pattern, a log of the requests it saw, faults
injected per route (an error status before or *after* the action, the lost-answer case, or a
hang until the client gives up), and git operations on a bare repository. They are here once.

Two request/answer dialects sit on the shared :class:`LocalServer`, because the fakes' tests
speak them: :class:`FakeScm` (``Request``/``Reply``, ``fail_next(status, route=…)``; GitHub and
GitLab) and :class:`FakeRestServer` (``RestRequest``/``Answer``/``HttpError``,
``fail_next(operation, status)``; Gitea and Gerrit). Git plumbing comes as :class:`BareRepo` (the
git CLI with a clean environment) and as functions over a repository path (pygit2 and the CLI).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pygit2

from tests.support.githttp import GitHttpServer

__all__ = [
    "Answer",
    "BareRepo",
    "FakeRestServer",
    "FakeScm",
    "Fault",
    "GitHostingServer",
    "HttpError",
    "LocalServer",
    "Reply",
    "Request",
    "RestRequest",
    "commit_tree",
    "git",
    "is_ancestor",
    "iso",
    "merge_commits",
    "read_ref",
    "update_ref",
]

_GIT_TIMEOUT = 60.0

def iso(t: float) -> str:
    """ISO 8601 in UTC with a ``Z``, as GitHub and GitLab print times."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# == git plumbing on a bare repository ============================================================


@dataclass(frozen=True)
class MergeTree:
    clean: bool
    tree: str
    conflicts: tuple[str, ...]


class BareRepo:
    """The git operations an SCM performs on its own bare repository, with the git CLI."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.path),
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
        }
        env.update(extra or {})
        return env

    def git(
        self, *args: str, check: bool = True, env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        base = [] if cwd is not None else [f"--git-dir={self.path}"]
        proc = subprocess.run(
            ["git", *base, *args], capture_output=True, text=True, env=self._env(env),
            timeout=_GIT_TIMEOUT, check=False, cwd=cwd,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr}")
        return proc

    def rev(self, rev: str) -> str | None:
        proc = self.git("rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def branch(self, name: str) -> str | None:
        return self.rev(f"refs/heads/{name}")

    def is_ancestor(self, a: str, b: str) -> bool:
        return self.git("merge-base", "--is-ancestor", a, b, check=False).returncode == 0

    def merge_base(self, a: str, b: str) -> str | None:
        proc = self.git("merge-base", a, b, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def merge_tree(self, ours: str, theirs: str) -> MergeTree:
        """``git merge-tree --write-tree``: the merged tree, and the conflicting paths."""
        proc = self.git(
            "merge-tree", "--write-tree", "-z", "--name-only", "--no-messages", ours, theirs,
            check=False,
        )
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"git merge-tree failed: {proc.stderr}")
        parts = [p for p in proc.stdout.split("\0") if p]
        return MergeTree(proc.returncode == 0, parts[0], tuple(dict.fromkeys(parts[1:])))

    def tree_of(self, commit: str) -> str:
        return self.git("rev-parse", f"{commit}^{{tree}}").stdout.strip()

    def author_of(self, commit: str) -> tuple[str, str]:
        name, _, email = self.git("log", "-1", "--format=%an%x00%ae", commit).stdout.strip() \
            .partition("\0")
        return name, email

    def commits(self, upstream: str, head: str) -> list[str]:
        out = self.git("rev-list", "--reverse", f"{upstream}..{head}").stdout
        return out.split()

    def commit_tree(
        self, tree: str, parents: Sequence[str], message: str,
        author: tuple[str, str], committer: tuple[str, str],
    ) -> str:
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        args += ["-m", message]
        env = {
            "GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
            "GIT_COMMITTER_NAME": committer[0], "GIT_COMMITTER_EMAIL": committer[1],
        }
        return self.git(*args, env=env).stdout.strip()

    def update_ref(self, ref: str, new: str, old: str | None) -> bool:
        """Compare-and-swap ``ref`` from ``old`` (None: must not exist) to ``new``."""
        return self.git(
            "update-ref", ref, new, old or "0" * 40, check=False
        ).returncode == 0

    def rebase(self, onto: str, head: str, committer: tuple[str, str]) -> str | None:
        """``git rebase onto`` of ``head`` in a scratch worktree; the new head, or None when a
        commit does not apply (the rebase is aborted). Refs of this repository are untouched."""
        scratch = Path(tempfile.mkdtemp(prefix="fake-scm-rebase-"))
        work = scratch / "w"
        try:
            self.git("worktree", "add", "--detach", "-q", str(work), head)
            env = {"GIT_COMMITTER_NAME": committer[0], "GIT_COMMITTER_EMAIL": committer[1]}
            proc = self.git("rebase", "-q", onto, check=False, env=env, cwd=work)
            if proc.returncode != 0:
                self.git("rebase", "--abort", check=False, cwd=work)
                return None
            return self.git("rev-parse", "HEAD", cwd=work).stdout.strip()
        finally:
            self.git("worktree", "remove", "--force", str(work), check=False)
            shutil.rmtree(scratch, ignore_errors=True)
            self.git("worktree", "prune", check=False)


# -- git helpers shared by the fakes ---------------------------------------------------------------
def git(repo: Path, *args: str, input: bytes | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        ["git", f"--git-dir={repo}", *args], input=input, capture_output=True, check=False,
        timeout=60,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.decode().strip()}")
    return proc.stdout.decode().strip()


def merge_commits(
    repo: Path, ours: str, theirs: str, base: str | None = None
) -> tuple[str | None, list[str]]:
    """(merged tree id, []) or (None, conflicting paths) of a three-way merge, like git's."""
    r = pygit2.Repository(str(repo))
    if base is None:
        merge_base = r.merge_base(ours, theirs)
        base = str(merge_base) if merge_base is not None else None
    ancestor: pygit2.Tree | pygit2.Oid = (
        r[base].peel(pygit2.Tree) if base else r.TreeBuilder().write()  # no base: the empty tree
    )
    index = r.merge_trees(ancestor, r[ours].peel(pygit2.Tree), r[theirs].peel(pygit2.Tree))
    if index.conflicts is not None:
        paths = sorted({(a or o or t).path for a, o, t in index.conflicts})
        return None, paths
    return str(index.write_tree(r)), []


def commit_tree(
    repo: Path, tree: str, parents: list[str], message: str, author: pygit2.Signature,
    committer: pygit2.Signature,
) -> str:
    r = pygit2.Repository(str(repo))
    return str(r.create_commit(None, author, committer, message, pygit2.Oid(hex=tree),
                               [pygit2.Oid(hex=p) for p in parents]))


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    return ancestor == descendant or pygit2.Repository(str(repo)).descendant_of(
        descendant, ancestor)


def update_ref(repo: Path, ref: str, new: str, old: str | None) -> bool:
    """Compare-and-swap a ref (``old`` None: must not exist); False when it moved."""
    proc = subprocess.run(
        ["git", f"--git-dir={repo}", "update-ref", ref, new, old or ""],
        capture_output=True, check=False, timeout=60,
    )
    return proc.returncode == 0


def read_ref(repo: Path, ref: str) -> str | None:
    out = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return out or None



# == the local HTTP server ========================================================================


@dataclass
class Fault:
    """What the next matching request gets instead of (or after) its normal answer."""

    route: str | None  # None: any route
    status: int | None  # None: hang
    after: bool = False  # perform the action first, then answer with the fault
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    remaining: int = 1


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: LocalServer[Any]

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up (after its timeout, say) is no error of the fake's."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    server: _Httpd

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read the fake's log of requests."""


H = TypeVar("H")


class LocalServer(Generic[H]):
    """An HTTP server on 127.0.0.1 in a daemon thread: routes by method and path pattern, each
    named (the fault's and the log's key), and the queue of injected faults.

    Subclasses give :attr:`handler_class` (which parses a request and hands it back to the fake),
    and say what a fault's hang is (:meth:`release` ends them).
    """

    server_name = "fake"
    handler_class: ClassVar[type[_QuietHandler]]
    poll_interval: ClassVar[float] = 0.05

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], str, H]] = []
        self._faults: list[Fault] = []
        self._fault_lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Httpd | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> Self:
        httpd = _Httpd(("127.0.0.1", 0), self.handler_class)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": self.poll_interval},
            daemon=True, name=f"{self.server_name}-http",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.release()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def release(self) -> None:
        """Let the requests a fault hangs go (they are answered by a closed connection)."""

    @property
    def url(self) -> str:
        assert self._httpd is not None, "not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- routes -----------------------------------------------------------------------------------
    def add_route(self, method: str, pattern: str, name: str, handler: H) -> None:
        """Answer ``method`` on paths matching ``pattern`` (named groups are parameters)."""
        self._routes.append((method, re.compile(pattern + r"\Z"), name, handler))

    def _match(self, method: str, path: str) -> tuple[str, H, dict[str, str]] | int:
        """The route's name, handler and parameters; else 405 (the path is known) or 404."""
        allowed = False
        for want, pattern, name, handler in self._routes:
            m = pattern.match(path)
            if m is None:
                continue
            allowed = True
            if want == method:
                return name, handler, m.groupdict()
        return 405 if allowed else 404

    # -- faults -----------------------------------------------------------------------------------
    def _add_fault(self, fault: Fault) -> None:
        with self._fault_lock:
            self._faults.append(fault)

    def take_fault(self, route: str) -> Fault | None:
        """The fault for this request to ``route``, if one is pending (counted as used)."""
        with self._fault_lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.route in (None, route):
                    fault.remaining -= 1
                    self._faults = [f for f in self._faults if f.remaining > 0]
                    return fault
        return None

    def pending_faults(self) -> int:
        with self._fault_lock:
            return sum(f.remaining for f in self._faults)


# == GitHub's and GitLab's dialect ================================================================


@dataclass
class Request:
    """One request as the fake saw it (``body`` parsed from JSON or a form)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    route: str = ""
    params: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    status: int | None = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        """A parameter from the query string or the body (GitLab's Grape merges both)."""
        if name in self.query:
            return self.query[name][-1]
        if isinstance(self.body, dict) and name in self.body:
            value = self.body[name]
            return value if isinstance(value, str) else json.dumps(value)
        return default

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-encoded unless bytes or str
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Reply]


class _FakeHandler(_QuietHandler):
    server_version = "FakeScm/1.0"

    def _serve(self) -> None:
        fake = self.server.fake
        assert isinstance(fake, FakeScm)
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            ctype = self.headers.get("Content-Type") or ""
            try:
                if "json" in ctype or raw[:1] in (b"{", b"["):
                    body = json.loads(raw)
                else:
                    body = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
            except ValueError:
                body = None
        request = Request(
            method=self.command,
            path=split.path,  # still percent-encoded: GitLab's project ids contain %2F
            query=parse_qs(split.query, keep_blank_values=True),
            headers=dict(self.headers.items()),
            body=body,
        )
        try:
            reply = fake._dispatch(request)
        except Exception:  # a bug in the fake: answer 500 and keep it for the test to see
            import traceback

            fake.errors.append(traceback.format_exc())
            reply = fake.error(500)
        if reply is None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        request.status = reply.status
        if isinstance(reply.body, bytes):
            data, ctype = reply.body, "application/octet-stream"
        elif isinstance(reply.body, str):
            data, ctype = reply.body.encode(), "text/plain; charset=utf-8"
        elif reply.body is None and reply.status == 204:
            data, ctype = b"", ""
        else:
            data, ctype = json.dumps(reply.body).encode(), "application/json; charset=utf-8"
        try:
            self.send_response(reply.status)
            headers = {**fake.common_headers(request), **reply.headers}
            if ctype:
                headers.setdefault("Content-Type", ctype)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class FakeScm(LocalServer[Handler]):
    """An SCM's HTTP API on 127.0.0.1: routes, token authentication, faults, pagination.

    Subclasses register routes with :meth:`add_route` and say how errors and auth look.
    """

    #: Shown in error messages; subclasses override.
    name = "scm"
    handler_class = _FakeHandler
    poll_interval = 0.02

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()  # one request changes state at a time
        self._meta = threading.Lock()
        self._hung: list[threading.Event] = []
        self.tokens: dict[str, str] = {}  # token -> user name
        self.requests: list[Request] = []
        self.errors: list[str] = []

    # -- configuration ----------------------------------------------------------------------
    def add_token(self, token: str, user: str) -> None:
        with self._meta:
            self.tokens[token] = user

    def revoke_token(self, token: str) -> None:
        with self._meta:
            self.tokens.pop(token, None)

    # -- faults -----------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        *,
        route: str | None = None,
        after: bool = False,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests to ``route`` (any: None) with ``status``; with
        ``after``, only once the request has done what it asked (e.g. created the PR)."""
        self._add_fault(Fault(route, status, after, message, dict(headers or {}), times))

    def hang_next(self, *, route: str | None = None, after: bool = False, times: int = 1) -> None:
        """Never answer the next ``times`` requests to ``route`` (the client must time out);
        with ``after``, the action is performed first."""
        self._add_fault(Fault(route, None, after, remaining=times))

    def release(self) -> None:
        with self._meta:
            hung, self._hung = self._hung, []
        for event in hung:
            event.set()

    def _hang(self) -> None:
        event = threading.Event()
        with self._meta:
            self._hung.append(event)
        if not self._stopping.is_set():
            event.wait(120)

    # -- what subclasses define -------------------------------------------------------------
    def authenticate(self, request: Request) -> str | None:
        """The user the request's credentials name, else None."""
        raise NotImplementedError

    def error(self, status: int, message: str | None = None) -> Reply:
        raise NotImplementedError

    def common_headers(self, request: Request) -> dict[str, str]:
        return {}

    def fault_reply(self, fault: Fault, request: Request) -> Reply:
        assert fault.status is not None
        reply = self.error(fault.status, fault.message)
        reply.headers.update(fault.headers)
        return reply

    # -- pagination -------------------------------------------------------------------------
    def paginate(
        self, request: Request, items: Sequence[Any], *, default: int, maximum: int = 100,
        gitlab: bool = False,
    ) -> tuple[list[Any], dict[str, str]]:
        """One page of ``items`` as ``page``/``per_page`` ask, and its ``Link`` header (plus
        GitLab's ``X-*`` page headers)."""
        try:
            per_page = min(max(int(request.arg("per_page") or default), 1), maximum)
            page = max(int(request.arg("page") or 1), 1)
        except ValueError:
            per_page, page = default, 1
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = list(items[(page - 1) * per_page : page * per_page])
        query = {k: v[-1] for k, v in request.query.items()}

        def link(p: int) -> str:
            params = urlencode({**query, "page": p, "per_page": per_page})
            return f"{self.url}{request.path}?{params}"

        rels = []
        if page < last:
            rels.append(f'<{link(page + 1)}>; rel="next"')
        if page > 1:
            rels.append(f'<{link(page - 1)}>; rel="prev"')
        rels.append(f'<{link(1)}>; rel="first"')
        rels.append(f'<{link(last)}>; rel="last"')
        headers = {"Link": ", ".join(rels)}
        if gitlab:
            headers.update({
                "X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
                "X-Total-Pages": str(last),
                "X-Next-Page": str(page + 1) if page < last else "",
                "X-Prev-Page": str(page - 1) if page > 1 else "",
            })
        return chunk, headers

    # -- dispatch ---------------------------------------------------------------------------
    def _dispatch(self, request: Request) -> Reply | None:
        """The reply to send, or None to hang up without one."""
        found = self._match(request.method, request.path)
        if isinstance(found, int):
            return self.error(found)
        request.route, handler, request.params = found
        with self._meta:
            self.requests.append(request)
        request.user = self.authenticate(request)
        if request.user is None:
            return self.error(401)
        fault = self.take_fault(request.route)
        if fault is not None and not fault.after:
            if fault.status is None:
                self._hang()
                return None
            return self.fault_reply(fault, request)
        with self._lock:
            reply = handler(request)
        if fault is not None:
            if fault.status is None:
                self._hang()
                return None
            return self.fault_reply(fault, request)
        return reply


# == Gitea's and Gerrit's dialect =================================================================

_DEFAULT_MESSAGES = {
    400: "bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class HttpError(Exception):
    """Raised by a route: answer ``status`` with the SCM's error body for ``message``."""

    def __init__(self, status: int, message: str = "", headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message or _DEFAULT_MESSAGES.get(status, "error")
        self.headers = dict(headers or {})


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # JSON value, or bytes for a raw body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RestRequest:
    """One request as the fake saw it (the tests' log of what the client sent)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    operation: str = ""
    user: str | None = None
    status: int | None = None
    fault: str | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def raw(self) -> str:
        head = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        return f"{self.method} {self.path}\n{head}\n\n{self.body.decode('utf-8', 'replace')}"


Route = Callable[..., Answer]


class _Handler(_QuietHandler):
    def setup(self) -> None:
        super().setup()
        # Headers and body go out as separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        fake = self.server.fake
        assert isinstance(fake, FakeRestServer)
        fake._serve(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET


class FakeRestServer(LocalServer[Route]):
    """Routes, request log and fault injection for an SCM fake on 127.0.0.1.

    Subclasses register routes with :meth:`add_route` (method, a path regex with named groups,
    the documented operation name) and implement :meth:`authenticate` and :meth:`error_answer`.
    """

    handler_class = _Handler

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[RestRequest] = []
        self.lock = threading.RLock()
        self._released = threading.Event()

    # -- routes -----------------------------------------------------------------------------------
    def authenticate(self, request: RestRequest) -> None:
        """Set ``request.user`` or raise :class:`HttpError` (401/403)."""

    def error_answer(self, status: int, message: str) -> Answer:
        raise NotImplementedError

    def encode(self, value: Any) -> tuple[str, bytes]:
        return "application/json;charset=utf-8", json.dumps(value).encode()

    # -- faults -----------------------------------------------------------------------------------
    def fail_next(
        self,
        operation: str,
        status: int,
        *,
        message: str | None = None,
        retry_after: int | None = None,
        after_action: bool = False,
        n: int = 1,
    ) -> None:
        """Answer the next ``n`` calls of ``operation`` (``"*"``: any) with ``status``; with
        ``after_action``, do what was asked first (the answer is lost, the action is not)."""
        headers = {"Retry-After": str(retry_after)} if retry_after else {}
        route = None if operation == "*" else operation
        self._add_fault(Fault(route, status, after_action, message, headers, n))

    def hang_next(self, operation: str, *, n: int = 1) -> None:
        """Never answer the next ``n`` calls of ``operation`` (before acting), until
        :meth:`release` or :meth:`stop`: the client must give up on its own timeout."""
        self._add_fault(Fault(None if operation == "*" else operation, None, remaining=n))

    def release(self) -> None:
        self._released.set()

    def calls(self, operation: str) -> list[RestRequest]:
        with self.lock:
            return [r for r in self.requests if r.operation == operation]

    # -- serving ----------------------------------------------------------------------------------
    def _serve(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = RestRequest(
            method=handler.command, path=unquote(split.path), query=parse_qs(split.query),
            headers=dict(handler.headers.items()), body=body,
        )
        request.headers["X-Raw-Path"] = split.path
        with self.lock:
            self.requests.append(request)
        try:
            answer = self._dispatch(request, split.path)
        except HttpError as exc:
            answer = self.error_answer(exc.status, exc.message)
            answer.headers.update(exc.headers)
        except _Hung:
            request.fault = "hang"
            with contextlib.suppress(OSError):
                handler.connection.close()
            handler.close_connection = True
            return
        request.status = answer.status
        if isinstance(answer.body, bytes):
            ctype, data = answer.headers.pop("Content-Type", "text/plain"), answer.body
        elif answer.body is None and answer.status == 204:
            ctype, data = "", b""
        else:
            ctype, data = self.encode(answer.body)
        handler.send_response(answer.status)
        if ctype:
            handler.send_header("Content-Type", ctype)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        with contextlib.suppress(OSError):
            handler.wfile.write(data)

    def _dispatch(self, request: RestRequest, raw_path: str) -> Answer:
        found = self._match(request.method, raw_path)
        if isinstance(found, int):
            raise HttpError(found)
        operation, route, params = found
        request.operation = operation
        self.authenticate(request)
        fault = self.take_fault(operation)
        groups = {k: unquote(v) for k, v in params.items()}
        if fault is None:
            return route(request, **groups)
        if fault.status is None:
            request.fault = "hang"
            self._released.clear()
            self._released.wait(60)
            raise _Hung
        request.fault = f"{fault.status}{' after action' if fault.after else ''}"
        if fault.after:
            route(request, **groups)
        raise HttpError(fault.status, fault.message or "", fault.headers)


class _Hung(Exception):
    pass



class GitHostingServer(FakeRestServer):
    """A REST fake whose repositories under ``root`` are also served over git's smart HTTP
    (:attr:`git`, with basic auth ``auth``), started and stopped with it."""

    def __init__(self, root: Path, auth: tuple[str, str]) -> None:
        super().__init__()
        self.root = root
        self.git = GitHttpServer(root, auth=auth)

    def start(self) -> Self:
        super().start()
        self.git.start()
        return self

    def stop(self) -> None:
        super().stop()
        self.git.stop()
