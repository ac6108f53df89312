"""A protocol-faithful fake of GitHub's REST API, for the GitHub provider's integration tests.

Why this module exists: GitHub cannot be installed here, and a mock that answers whatever the
client expects proves nothing. This fake is a real HTTP server on 127.0.0.1 that implements the
endpoints Revisor's GitHub provider calls — their paths, methods, parameters, status codes,
``Link`` pagination, error bodies, ``Authorization`` handling and ``X-RateLimit-*`` headers —
as GitHub's REST documentation describes them (the URL of each is beside its route). Its
repositories are the real bare repositories a :class:`~tests.support.githttp.GitHttpServer`
serves, so the branches a pull request names are real pushes; mergeability is computed with
``git merge-tree --write-tree``, and merging moves the base branch with a real commit (merge,
squash or rebase) by compare-and-swap (``git update-ref``), honouring the ``sha`` lease.

Faults are injected per route (``fail_next``, ``hang_next``, ``rate_limit_next``): an error
status before the action, or *after* it (GitHub created the pull request but answered 500), and
requests that hang until the client gives up.

The first half is SCM-neutral (:class:`FakeScm`: HTTP, routing, authentication, faults,
pagination; :class:`BareRepo`: git plumbing) and is reused by ``fake_gitlab``.

Deviations from GitHub, on purpose: one account per token and no permissions model beyond
"known token"; mergeability is computed on each read (``mergeable_pending_reads`` simulates
GitHub's background computation); no branch protection; issues exist only as pull requests.
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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit

__all__ = [
    "BareRepo",
    "FakeGitHub",
    "FakeScm",
    "Fault",
    "Reply",
    "Request",
    "iso",
]

_GIT_TIMEOUT = 60.0
DOCS = "https://docs.github.com/rest"


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


# == the HTTP server ==============================================================================


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


@dataclass
class Fault:
    """What the next matching request gets instead of (or after) its normal answer."""

    route: str | None
    status: int | None  # None: hang
    after: bool = False  # perform the action first, then answer with the fault
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    remaining: int = 1


Handler = Callable[[Request], Reply]


class _Stop(Exception):
    pass


class FakeScm:
    """An SCM's HTTP API on 127.0.0.1: routes, token authentication, faults, pagination.

    Subclasses register routes with :meth:`route` and say how errors and auth look.
    """

    #: Shown in error messages; subclasses override.
    name = "scm"

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        self._faults: list[Fault] = []
        self._lock = threading.RLock()  # one request changes state at a time
        self._meta = threading.Lock()
        self._stopping = threading.Event()
        self._hung: list[threading.Event] = []
        self.tokens: dict[str, str] = {}  # token -> user name
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> FakeScm:
        fake = self

        class _H(_FakeHandler):
            pass

        _H.fake = fake
        httpd = _Httpd(("127.0.0.1", 0), _H)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
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

    @property
    def url(self) -> str:
        assert self._httpd is not None, "not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- configuration ----------------------------------------------------------------------
    def add_token(self, token: str, user: str) -> None:
        with self._meta:
            self.tokens[token] = user

    def revoke_token(self, token: str) -> None:
        with self._meta:
            self.tokens.pop(token, None)

    def route(self, method: str, pattern: str, name: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern + r"\Z"), name, handler))

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
        with self._meta:
            self._faults.append(Fault(route, status, after, message, dict(headers or {}), times))

    def hang_next(self, *, route: str | None = None, after: bool = False, times: int = 1) -> None:
        """Never answer the next ``times`` requests to ``route`` (the client must time out);
        with ``after``, the action is performed first."""
        with self._meta:
            self._faults.append(Fault(route, None, after, remaining=times))

    def release(self) -> None:
        with self._meta:
            hung, self._hung = self._hung, []
        for event in hung:
            event.set()

    def pending_faults(self) -> int:
        with self._meta:
            return sum(f.remaining for f in self._faults)

    def _take_fault(self, route: str) -> Fault | None:
        with self._meta:
            for fault in self._faults:
                if fault.remaining > 0 and fault.route in (None, route):
                    fault.remaining -= 1
                    self._faults = [f for f in self._faults if f.remaining > 0]
                    return fault
        return None

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
        found = None
        path = request.path
        allowed = False
        for method, pattern, name, handler in self._routes:
            m = pattern.match(path)
            if m is None:
                continue
            allowed = True
            if method == request.method:
                found = (name, handler, m.groupdict())
                break
        if found is None:
            return self.error(405 if allowed else 404)
        request.route, handler, request.params = found[0], found[1], found[2]
        with self._meta:
            self.requests.append(request)
        request.user = self.authenticate(request)
        if request.user is None:
            return self.error(401)
        fault = self._take_fault(request.route)
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


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up (after its timeout, say) is no error of the fake's."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeScm/1.0"
    timeout = 60
    fake: FakeScm

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests assert on ``fake.requests``."""

    def _serve(self) -> None:
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
            reply = self.fake._dispatch(request)
        except Exception:  # a bug in the fake: answer 500 and keep it for the test to see
            import traceback

            self.fake.errors.append(traceback.format_exc())
            reply = self.fake.error(500)
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
            headers = {**self.fake.common_headers(request), **reply.headers}
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


# == GitHub =======================================================================================


@dataclass
class GhPull:
    number: int
    id: int
    title: str
    body: str | None
    head: str
    base: str
    user: str
    head_sha: str
    created_at: float
    updated_at: float
    state: str = "open"
    closed_at: float | None = None
    merged_at: float | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    labels: list[str] = field(default_factory=list)
    draft: bool = False


@dataclass
class GhComment:
    id: int
    issue: int
    user: str
    body: str
    created_at: float


@dataclass
class GhReview:
    id: int
    pull: int
    user: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
    commit_id: str
    submitted_at: float


@dataclass
class GhCheckRun:
    id: int
    head_sha: str
    name: str
    status: str  # queued, in_progress, completed
    conclusion: str | None  # success, failure, neutral, cancelled, skipped, timed_out, …
    started_at: float


@dataclass
class GhRepo:
    owner: str
    name: str
    git: BareRepo
    id: int
    default_branch: str = "main"
    allow_merge_commit: bool = True
    allow_squash_merge: bool = True
    allow_rebase_merge: bool = True
    pulls: dict[int, GhPull] = field(default_factory=dict)
    comments: list[GhComment] = field(default_factory=list)
    reviews: list[GhReview] = field(default_factory=list)
    check_runs: list[GhCheckRun] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
GITHUB_COMMITTER = ("GitHub", "noreply@github.com")


class FakeGitHub(FakeScm):
    """GitHub's REST API (v3, ``X-GitHub-Api-Version: 2022-11-28``) over real bare repositories.

    ``add_repo("octo/app", bare)`` serves a repository; ``add_token(token, login)`` lets a user
    in. CI and reviewers are played by the test: :meth:`add_check_run`, :meth:`add_review`.
    """

    name = "GitHub"

    def __init__(self) -> None:
        super().__init__()
        self.repos: dict[str, GhRepo] = {}
        self._ids = iter(range(1000, 10**9))
        #: The next N reads of a pull request report ``mergeable: null`` (still computing).
        self.mergeable_pending_reads = 0
        self.rate_remaining = 5000
        self.web_url = "https://github.example"
        r = self.route
        # https://docs.github.com/en/rest/repos/repos#get-a-repository
        r("GET", _REPO, "repos.get", self._get_repo)
        # https://docs.github.com/en/rest/pulls/pulls#list-pull-requests
        r("GET", _REPO + r"/pulls", "pulls.list", self._list_pulls)
        # https://docs.github.com/en/rest/pulls/pulls#create-a-pull-request
        r("POST", _REPO + r"/pulls", "pulls.create", self._create_pull)
        # https://docs.github.com/en/rest/pulls/pulls#get-a-pull-request
        r("GET", _REPO + r"/pulls/(?P<number>\d+)", "pulls.get", self._get_pull)
        # https://docs.github.com/en/rest/pulls/pulls#update-a-pull-request
        r("PATCH", _REPO + r"/pulls/(?P<number>\d+)", "pulls.update", self._update_pull)
        # https://docs.github.com/en/rest/pulls/pulls#merge-a-pull-request
        r("PUT", _REPO + r"/pulls/(?P<number>\d+)/merge", "pulls.merge", self._merge_pull)
        # https://docs.github.com/en/rest/pulls/reviews#list-reviews-for-a-pull-request
        r("GET", _REPO + r"/pulls/(?P<number>\d+)/reviews", "reviews.list", self._list_reviews)
        # https://docs.github.com/en/rest/checks/runs#list-check-runs-for-a-git-reference
        r("GET", _REPO + r"/commits/(?P<ref>[^/]+)/check-runs", "checks.list", self._list_checks)
        # https://docs.github.com/en/rest/issues/issues#list-repository-issues
        r("GET", _REPO + r"/issues", "issues.list", self._list_issues)
        # https://docs.github.com/en/rest/issues/labels#add-labels-to-an-issue
        r("POST", _REPO + r"/issues/(?P<number>\d+)/labels", "labels.add", self._add_labels)
        # https://docs.github.com/en/rest/issues/comments#list-issue-comments
        r("GET", _REPO + r"/issues/(?P<number>\d+)/comments", "comments.list",
          self._list_comments)
        # https://docs.github.com/en/rest/issues/comments#create-an-issue-comment
        r("POST", _REPO + r"/issues/(?P<number>\d+)/comments", "comments.create",
          self._create_comment)

    # -- test-side API ----------------------------------------------------------------------
    def add_repo(self, full_name: str, path: Path, default_branch: str = "main") -> GhRepo:
        owner, _, name = full_name.partition("/")
        repo = GhRepo(owner, name, BareRepo(path), next(self._ids), default_branch)
        self.repos[full_name.lower()] = repo
        return repo

    def repo(self, full_name: str) -> GhRepo:
        return self.repos[full_name.lower()]

    def add_check_run(
        self, full_name: str, sha: str, name: str, status: str = "completed",
        conclusion: str | None = "success",
    ) -> None:
        with self._lock:
            self.repo(full_name).check_runs.append(
                GhCheckRun(next(self._ids), sha, name, status, conclusion, time.time())
            )

    def add_review(self, full_name: str, number: int, user: str, state: str) -> None:
        with self._lock:
            repo = self.repo(full_name)
            pull = repo.pulls[number]
            repo.reviews.append(
                GhReview(next(self._ids), number, user, state, pull.head_sha, time.time())
            )

    def rate_limit_next(
        self, *, route: str | None = None, retry_after: int | None = 1,
        reset_in: int | None = None, status: int = 429,
    ) -> None:
        """A secondary rate limit (``retry-after``), or a primary one (``x-ratelimit-remaining:
        0`` and ``x-ratelimit-reset``) when ``reset_in`` is given, as GitHub documents both:
        https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api"""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if reset_in is not None:
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(int(time.time()) + reset_in)
            message = "API rate limit exceeded for user ID 1."
        else:
            message = ("You have exceeded a secondary rate limit. Please wait a few minutes "
                       "before you try again.")
        self.fail_next(status, route=route, message=message, headers=headers)

    # -- protocol ---------------------------------------------------------------------------
    def authenticate(self, request: Request) -> str | None:
        # https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api
        value = request.header("Authorization") or ""
        scheme, _, token = value.partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return None
        with self._meta:
            return self.tokens.get(token.strip())

    _MESSAGES: ClassVar[dict[int, str]] = {
        # https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api
        401: "Bad credentials",
        403: "Resource not accessible by personal access token",
        404: "Not Found",
        405: "Method Not Allowed",
        409: "Conflict",
        422: "Validation Failed",
        429: "You have exceeded a secondary rate limit. Please wait a few minutes before you "
             "try again.",
        500: "Server Error",
        502: "Server Error",
        503: "Service Unavailable",
    }

    def error(self, status: int, message: str | None = None) -> Reply:
        body = {
            "message": message or self._MESSAGES.get(status, "Error"),
            "documentation_url": DOCS,
            "status": str(status),
        }
        return Reply(status, body)

    def common_headers(self, request: Request) -> dict[str, str]:
        # https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api
        with self._meta:
            self.rate_remaining = max(self.rate_remaining - 1, 0)
            remaining = self.rate_remaining
        return {
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            "X-RateLimit-Used": str(5000 - remaining),
            "X-RateLimit-Resource": "core",
        }

    # -- rendering --------------------------------------------------------------------------
    def _api(self, repo: GhRepo) -> str:
        return f"{self.url}/repos/{repo.full_name}"

    def _user(self, login: str) -> dict[str, Any]:
        return {
            "login": login, "id": abs(hash(login)) % 10**6, "node_id": f"U_{login}",
            "type": "Bot" if login.endswith("[bot]") else "User", "site_admin": False,
            "url": f"{self.url}/users/{login}", "html_url": f"{self.web_url}/{login}",
        }

    def _repo_json(self, repo: GhRepo) -> dict[str, Any]:
        return {
            "id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name,
            "full_name": repo.full_name, "private": True, "owner": self._user(repo.owner),
            "html_url": f"{self.web_url}/{repo.full_name}", "url": self._api(repo),
            "default_branch": repo.default_branch,
            "allow_merge_commit": repo.allow_merge_commit,
            "allow_squash_merge": repo.allow_squash_merge,
            "allow_rebase_merge": repo.allow_rebase_merge,
        }

    def _label(self, repo: GhRepo, name: str) -> dict[str, Any]:
        return {
            "id": abs(hash(name)) % 10**6, "node_id": f"LA_{name}", "name": name,
            "url": f"{self._api(repo)}/labels/{name}", "color": "ededed", "default": False,
            "description": None,
        }

    def _refresh(self, repo: GhRepo, pull: GhPull) -> None:
        """GitHub follows the head branch while the PR is open (its last sha stays after)."""
        if pull.state == "open":
            sha = repo.git.branch(pull.head)
            if sha is not None and sha != pull.head_sha:
                pull.head_sha = sha
                pull.updated_at = time.time()

    def _ref_json(self, repo: GhRepo, ref: str, sha: str | None) -> dict[str, Any]:
        return {
            "label": f"{repo.owner}:{ref}", "ref": ref, "sha": sha,
            "user": self._user(repo.owner), "repo": self._repo_json(repo),
        }

    def _mergeability(self, repo: GhRepo, pull: GhPull, base: str | None
                      ) -> tuple[bool | None, str]:
        """(``mergeable``, ``mergeable_state``): null while "computing", then git's answer."""
        if pull.state != "open":
            return None, "unknown"
        if self.mergeable_pending_reads > 0:
            self.mergeable_pending_reads -= 1
            return None, "unknown"
        if base is None or not repo.git.merge_tree(base, pull.head_sha).clean:
            return False, "dirty"
        latest = self._latest_runs(repo, pull.head_sha)
        if any(c.conclusion in ("failure", "timed_out", "action_required") for c in latest):
            return True, "unstable"
        return True, "clean"

    def _pull_json(self, repo: GhRepo, pull: GhPull, *, full: bool) -> dict[str, Any]:
        self._refresh(repo, pull)
        api = self._api(repo)
        n = pull.number
        base = repo.git.branch(pull.base)
        out: dict[str, Any] = {
            "url": f"{api}/pulls/{n}", "id": pull.id, "node_id": f"PR_{pull.id}",
            "html_url": f"{self.web_url}/{repo.full_name}/pull/{n}",
            "diff_url": f"{self.web_url}/{repo.full_name}/pull/{n}.diff",
            "patch_url": f"{self.web_url}/{repo.full_name}/pull/{n}.patch",
            "issue_url": f"{api}/issues/{n}",
            "commits_url": f"{api}/pulls/{n}/commits",
            "review_comments_url": f"{api}/pulls/{n}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{n}/comments",
            "statuses_url": f"{api}/statuses/{pull.head_sha}",
            "number": n, "state": pull.state, "locked": False, "title": pull.title,
            "user": self._user(pull.user), "body": pull.body,
            "labels": [self._label(repo, name) for name in pull.labels],
            "milestone": None, "active_lock_reason": None,
            "created_at": iso(pull.created_at), "updated_at": iso(pull.updated_at),
            "closed_at": iso(pull.closed_at) if pull.closed_at else None,
            "merged_at": iso(pull.merged_at) if pull.merged_at else None,
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None, "assignees": [], "requested_reviewers": [], "requested_teams": [],
            "head": self._ref_json(repo, pull.head, pull.head_sha),
            "base": self._ref_json(repo, pull.base, base),
            "author_association": "MEMBER", "auto_merge": None, "draft": pull.draft,
        }
        if full:
            mergeable, state = self._mergeability(repo, pull, base)
            out.update({
                "merged": pull.merged_at is not None, "mergeable": mergeable,
                "rebaseable": mergeable, "mergeable_state": state,
                "merged_by": self._user(pull.merged_by) if pull.merged_by else None,
                "comments": sum(1 for c in repo.comments if c.issue == n),
                "review_comments": 0, "maintainer_can_modify": False,
                "commits": len(repo.git.commits(base, pull.head_sha)) if base else 0,
                "additions": 0, "deletions": 0, "changed_files": 0,
            })
        return out

    def _issue_json(self, repo: GhRepo, pull: GhPull) -> dict[str, Any]:
        api = self._api(repo)
        n = pull.number
        return {
            "id": pull.id + 1, "node_id": f"I_{pull.id}", "url": f"{api}/issues/{n}",
            "repository_url": api, "labels_url": f"{api}/issues/{n}/labels{{/name}}",
            "comments_url": f"{api}/issues/{n}/comments",
            "events_url": f"{api}/issues/{n}/events",
            "html_url": f"{self.web_url}/{repo.full_name}/pull/{n}", "number": n,
            "state": pull.state, "title": pull.title, "body": pull.body,
            "user": self._user(pull.user),
            "labels": [self._label(repo, name) for name in pull.labels],
            "assignee": None, "assignees": [], "milestone": None, "locked": False,
            "comments": sum(1 for c in repo.comments if c.issue == n),
            "pull_request": {
                "url": f"{api}/pulls/{n}",
                "html_url": f"{self.web_url}/{repo.full_name}/pull/{n}",
                "diff_url": f"{self.web_url}/{repo.full_name}/pull/{n}.diff",
                "patch_url": f"{self.web_url}/{repo.full_name}/pull/{n}.patch",
                "merged_at": iso(pull.merged_at) if pull.merged_at else None,
            },
            "closed_at": iso(pull.closed_at) if pull.closed_at else None,
            "created_at": iso(pull.created_at), "updated_at": iso(pull.updated_at),
            "author_association": "MEMBER",
        }

    def _comment_json(self, repo: GhRepo, c: GhComment) -> dict[str, Any]:
        api = self._api(repo)
        return {
            "id": c.id, "node_id": f"IC_{c.id}", "url": f"{api}/issues/comments/{c.id}",
            "html_url": f"{self.web_url}/{repo.full_name}/pull/{c.issue}#issuecomment-{c.id}",
            "body": c.body, "user": self._user(c.user), "created_at": iso(c.created_at),
            "updated_at": iso(c.created_at), "issue_url": f"{api}/issues/{c.issue}",
            "author_association": "MEMBER",
        }

    # -- lookups ----------------------------------------------------------------------------
    def _repo_of(self, request: Request) -> GhRepo | Reply:
        repo = self.repos.get(f"{request.params['owner']}/{request.params['repo']}".lower())
        return repo if repo is not None else self.error(404)

    def _pull_of(self, request: Request) -> tuple[GhRepo, GhPull] | Reply:
        repo = self._repo_of(request)
        if isinstance(repo, Reply):
            return repo
        pull = repo.pulls.get(int(request.params["number"]))
        return (repo, pull) if pull is not None else self.error(404)

    @staticmethod
    def _sorted(pulls: list[GhPull], request: Request) -> list[GhPull]:
        key = request.arg("sort") or "created"
        direction = request.arg("direction") or "desc"
        attr = "updated_at" if key == "updated" else "created_at"
        return sorted(pulls, key=lambda p: (getattr(p, attr), p.number),
                      reverse=direction == "desc")

    # -- routes -----------------------------------------------------------------------------
    def _get_repo(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        return repo if isinstance(repo, Reply) else Reply(200, self._repo_json(repo))

    def _list_pulls(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        if isinstance(repo, Reply):
            return repo
        state = request.arg("state") or "open"
        if state not in ("open", "closed", "all"):
            return self.error(422)
        pulls = [p for p in repo.pulls.values() if state == "all" or p.state == state]
        head = request.arg("head")
        if head:
            owner, _, branch = head.partition(":")
            if not branch or owner.lower() != repo.owner.lower():
                pulls = []
            else:
                pulls = [p for p in pulls if p.head == branch]
        base = request.arg("base")
        if base:
            pulls = [p for p in pulls if p.base == base]
        page, headers = self.paginate(request, self._sorted(pulls, request), default=30)
        return Reply(200, [self._pull_json(repo, p, full=False) for p in page], headers)

    def _create_pull(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        if isinstance(repo, Reply):
            return repo
        body = request.body if isinstance(request.body, dict) else {}
        missing = [k for k in ("head", "base") if not body.get(k)]
        if not body.get("title") and not body.get("issue"):
            missing.append("title")
        if missing:
            return self._invalid([
                {"resource": "PullRequest", "field": k, "code": "missing_field"} for k in missing
            ])
        head, base = str(body["head"]), str(body["base"])
        if ":" in head:
            owner, _, head = head.partition(":")
            if owner.lower() != repo.owner.lower():
                return self._invalid([{"resource": "PullRequest", "field": "head",
                                       "code": "invalid"}])
        head_sha = repo.git.branch(head)
        if head_sha is None:
            return self._invalid([{"resource": "PullRequest", "field": "head", "code": "invalid"}])
        base_sha = repo.git.branch(base)
        if base_sha is None:
            return self._invalid([{"resource": "PullRequest", "field": "base", "code": "invalid"}])
        for p in repo.pulls.values():
            if p.state == "open" and p.head == head and p.base == base:
                return self._invalid([{
                    "resource": "PullRequest", "code": "custom",
                    "message": f"A pull request already exists for {repo.owner}:{head}.",
                }])
        if repo.git.is_ancestor(head_sha, base_sha):
            return self._invalid([{
                "resource": "PullRequest", "code": "custom",
                "message": f"No commits between {base} and {head}",
            }])
        now = time.time()
        number = max(repo.pulls, default=0) + 1
        pull = GhPull(
            number=number, id=next(self._ids), title=str(body.get("title") or ""),
            body=body.get("body"), head=head, base=base, user=request.user or "ghost",
            head_sha=head_sha, created_at=now, updated_at=now, draft=bool(body.get("draft")),
        )
        repo.pulls[number] = pull
        data = self._pull_json(repo, pull, full=True)
        return Reply(201, data, {"Location": data["url"]})

    def _invalid(self, errors: list[dict[str, Any]]) -> Reply:
        reply = self.error(422)
        reply.body["errors"] = errors
        return reply

    def _get_pull(self, request: Request) -> Reply:
        found = self._pull_of(request)
        if isinstance(found, Reply):
            return found
        repo, pull = found
        return Reply(200, self._pull_json(repo, pull, full=True))

    def _update_pull(self, request: Request) -> Reply:
        found = self._pull_of(request)
        if isinstance(found, Reply):
            return found
        repo, pull = found
        body = request.body if isinstance(request.body, dict) else {}
        self._refresh(repo, pull)
        if "state" in body:
            if body["state"] not in ("open", "closed"):
                return self._invalid([{"resource": "PullRequest", "field": "state",
                                       "code": "invalid"}])
            if pull.merged_at is None and body["state"] != pull.state:
                pull.state = body["state"]
                pull.closed_at = time.time() if pull.state == "closed" else None
        if "title" in body:
            pull.title = str(body["title"])
        if "body" in body:
            pull.body = body["body"]
        if "base" in body:
            if repo.git.branch(str(body["base"])) is None:
                return self._invalid([{"resource": "PullRequest", "field": "base",
                                       "code": "invalid"}])
            pull.base = str(body["base"])
        pull.updated_at = time.time()
        return Reply(200, self._pull_json(repo, pull, full=True))

    def _merge_pull(self, request: Request) -> Reply:
        found = self._pull_of(request)
        if isinstance(found, Reply):
            return found
        repo, pull = found
        body = request.body if isinstance(request.body, dict) else {}
        self._refresh(repo, pull)
        method = body.get("merge_method", "merge")
        if method not in ("merge", "squash", "rebase"):
            return self._invalid([{"resource": "PullRequest", "field": "merge_method",
                                   "code": "invalid"}])
        allowed = {"merge": repo.allow_merge_commit, "squash": repo.allow_squash_merge,
                   "rebase": repo.allow_rebase_merge}[method]
        if not allowed:
            words = {"merge": "Merge commits", "squash": "Squash merges",
                     "rebase": "Rebase merges"}[method]
            return self.error(405, f"{words} are not allowed on this repository.")
        if pull.state != "open":
            return self.error(405, "Pull Request is not mergeable")
        if body.get("sha") and body["sha"] != pull.head_sha:
            return self.error(409, "Head branch was modified. Review and try the merge again.")
        base = repo.git.branch(pull.base)
        if base is None:
            return self.error(405, "Pull Request is not mergeable")
        merged = repo.git.merge_tree(base, pull.head_sha)
        if not merged.clean:
            return self.error(405, "Pull Request is not mergeable")
        title = body.get("commit_title")
        message = body.get("commit_message")
        if method == "merge":
            text = title or f"Merge pull request #{pull.number} from {repo.owner}/{pull.head}"
            text += "\n\n" + (message if message is not None else pull.title)
            new = repo.git.commit_tree(
                merged.tree, [base, pull.head_sha], text, self._identity(request.user),
                GITHUB_COMMITTER,
            )
        elif method == "squash":
            text = title or f"{pull.title} (#{pull.number})"
            if message:
                text += "\n\n" + message
            new = repo.git.commit_tree(
                merged.tree, [base], text, repo.git.author_of(pull.head_sha), GITHUB_COMMITTER
            )
        else:
            rebased = repo.git.rebase(base, pull.head_sha, GITHUB_COMMITTER)
            if rebased is None:
                return self.error(405, "This branch can't be rebased")
            new = rebased
        if not repo.git.update_ref(f"refs/heads/{pull.base}", new, base):
            return self.error(409, "Base branch was modified. Review and try the merge again.")
        now = time.time()
        pull.state, pull.merged_at, pull.closed_at = "closed", now, now
        pull.merged_by, pull.merge_commit_sha, pull.updated_at = request.user, new, now
        return Reply(200, {"sha": new, "merged": True,
                           "message": "Pull Request successfully merged"})

    def _identity(self, login: str | None) -> tuple[str, str]:
        login = login or "ghost"
        return login, f"{login}@users.noreply.github.com"

    def _list_reviews(self, request: Request) -> Reply:
        found = self._pull_of(request)
        if isinstance(found, Reply):
            return found
        repo, pull = found
        reviews = [r for r in repo.reviews if r.pull == pull.number]
        page, headers = self.paginate(request, reviews, default=30)
        api = self._api(repo)
        return Reply(200, [{
            "id": r.id, "node_id": f"PRR_{r.id}", "user": self._user(r.user), "body": "",
            "state": r.state, "commit_id": r.commit_id, "submitted_at": iso(r.submitted_at),
            "html_url": f"{self.web_url}/{repo.full_name}/pull/{r.pull}#pullrequestreview-{r.id}",
            "pull_request_url": f"{api}/pulls/{r.pull}", "author_association": "MEMBER",
        } for r in page], headers)

    @staticmethod
    def _latest_runs(repo: GhRepo, sha: str) -> list[GhCheckRun]:
        latest: dict[str, GhCheckRun] = {}
        for run in repo.check_runs:
            if run.head_sha == sha:
                latest[run.name] = run  # later ones replace earlier ones
        return list(latest.values())

    def _list_checks(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        if isinstance(repo, Reply):
            return repo
        ref = request.params["ref"]
        sha = repo.git.rev(ref) if not re.fullmatch(r"[0-9a-f]{40}", ref) else ref
        if sha is None:
            return self.error(422, f"No commit found for SHA: {ref}")
        if (request.arg("filter") or "latest") == "all":
            runs = [c for c in repo.check_runs if c.head_sha == sha]
        else:
            runs = self._latest_runs(repo, sha)
        if request.arg("check_name"):
            runs = [c for c in runs if c.name == request.arg("check_name")]
        if request.arg("status"):
            runs = [c for c in runs if c.status == request.arg("status")]
        page, headers = self.paginate(request, runs, default=30)
        api = self._api(repo)
        return Reply(200, {"total_count": len(runs), "check_runs": [{
            "id": c.id, "node_id": f"CR_{c.id}", "head_sha": c.head_sha, "external_id": "",
            "url": f"{api}/check-runs/{c.id}",
            "html_url": f"{self.web_url}/{repo.full_name}/runs/{c.id}",
            "details_url": f"{self.web_url}/{repo.full_name}/runs/{c.id}",
            "status": c.status, "conclusion": c.conclusion, "name": c.name,
            "started_at": iso(c.started_at),
            "completed_at": iso(c.started_at) if c.status == "completed" else None,
            "check_suite": {"id": c.id}, "app": None, "pull_requests": [],
        } for c in page]}, headers)

    def _list_issues(self, request: Request) -> Reply:
        repo = self._repo_of(request)
        if isinstance(repo, Reply):
            return repo
        state = request.arg("state") or "open"
        pulls = [p for p in repo.pulls.values() if state == "all" or p.state == state]
        wanted = [s for s in (request.arg("labels") or "").split(",") if s]
        pulls = [p for p in pulls if all(w in p.labels for w in wanted)]
        page, headers = self.paginate(request, self._sorted(pulls, request), default=30)
        for p in page:
            self._refresh(repo, p)
        return Reply(200, [self._issue_json(repo, p) for p in page], headers)

    def _add_labels(self, request: Request) -> Reply:
        found = self._pull_of(request)
        if isinstance(found, Reply):
            return found
        repo, pull = found
        body = request.body
        names = body.get("labels") if isinstance(body, dict) else body
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return self._invalid([{"resource": "Label", "field": "labels", "code": "invalid"}])
        for name in names:
            if name not in pull.labels:
                pull.labels.append(name)  # labels that do not exist yet are created
        pull.updated_at = time.time()
        return Reply(200, [self._label(repo, n) for n in pull.labels])

    def _list_comments(self, request: Request) -> Reply:
        found = self._pull_of(request)
        if isinstance(found, Reply):
            return found
        repo, pull = found
        comments = [c for c in repo.comments if c.issue == pull.number]
        page, headers = self.paginate(request, comments, default=30)
        return Reply(200, [self._comment_json(repo, c) for c in page], headers)

    def _create_comment(self, request: Request) -> Reply:
        found = self._pull_of(request)
        if isinstance(found, Reply):
            return found
        repo, pull = found
        body = request.body if isinstance(request.body, dict) else {}
        if not isinstance(body.get("body"), str) or not body["body"]:
            return self._invalid([{"resource": "IssueComment", "field": "body",
                                   "code": "missing_field"}])
        c = GhComment(next(self._ids), pull.number, request.user or "ghost", body["body"],
                      time.time())
        repo.comments.append(c)
        data = self._comment_json(repo, c)
        return Reply(201, data, {"Location": data["url"]})
