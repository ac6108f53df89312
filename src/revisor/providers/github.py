"""GitHub pull requests as Revisor proposals, through PyGithub.

Why this module exists: a source hosted on GitHub (or GitHub Enterprise) keeps its proposals
where its people review them. A proposal is a pull request from a branch Revisor pushed; its
``number`` is the PR number, ``url`` the PR's web page, ``external_id`` its GraphQL node id.
Nothing is kept locally: the PRs Revisor opened carry a label (``revisor``) and a hidden marker
in their body naming the real author, so :meth:`GitHubProvider.list` finds them again after a
restart, with the issues API's label filter.

Configuration (the source's ``provider``)::

    provider:
      type: github
      api_url: https://api.github.com    # GitHub Enterprise: https://HOST/api/v3
      repository: org/repo               # default: the path of the source's URL
      token_env: GH_TOKEN                # read at every request, so a rotated token just works
      label: revisor                     # marks the pull requests Revisor opened
      timeout: 30                        # seconds per request
      max_retries: 3                     # for 5xx, timeouts and rate limits
      backoff: 0.5                       # seconds, doubled at each retry
      max_wait: 60                       # the longest rate-limit wait sat out in-line
      per_page: 100
      throttle: true                     # PyGithub's pauses between requests and writes

Retries: PyGithub's urllib3 retry (:class:`_Retry`) retries 5xx answers and timeouts of
idempotent requests (GET, PATCH, DELETE) with exponential backoff, and every request that was
rate limited (429, or 403 with ``X-RateLimit-Remaining: 0``) after ``Retry-After`` or until
``X-RateLimit-Reset`` — nothing was done, so even a POST is safe to repeat. A POST or PUT that
failed with 5xx or timed out may have been carried out anyway, so it is never repeated blindly:
:meth:`GitHubProvider.open` looks the PR up by its head branch before trying again, and
:meth:`GitHubProvider.merge` reads the PR back. A wait longer than ``max_wait`` is not sat out:
it becomes :class:`~revisor.errors.RemoteUnavailable` with ``retry_after``.

Errors are converted once (:meth:`GitHubProvider._error`), keeping GitHub's message: 401/403 →
``NotAllowed``, 404 → ``ProposalNotFound``/``NotFound``, 405/409 on merge → ``MergeConflict`` (the
conflicting paths computed from the source's mirror) or ``Conflict``, 422 → ``InvalidInput``,
429/5xx/timeouts → ``RemoteUnavailable``. The token never appears in a message: every text
taken from a response passes through :func:`~revisor.store.urls.redact` with the token's value.
"""

from __future__ import annotations

import builtins
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
import urllib3.exceptions
from github import Github
from github.Auth import Auth
from github.GithubException import GithubException, RateLimitExceededExceedsMaxWait
from github.GithubObject import NotSet, Opt
from github.GithubRetry import GithubRetry
from github.PullRequest import PullRequest
from github.Repository import Repository as GhRepository
from urllib3.response import BaseHTTPResponse, HTTPResponse
from urllib3.util.retry import Retry

from revisor.db.audit import AuditLog
from revisor.db.database import Database
from revisor.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    InvalidState,
    NotAllowed,
    NotFound,
    RemoteUnavailable,
    RevisorError,
)
from revisor.providers import common
from revisor.providers.base import (
    Check,
    CheckState,
    Comment,
    Mergeability,
    MergeConflict,
    MergeMethod,
    Proposal,
    ProposalRequest,
    ProposalStatus,
    Provider,
    Review,
)
from revisor.providers.http import read_secret
from revisor.store.store import StoreSource
from revisor.store.urls import redact
from revisor.vcs import MergeResult, ObjectId, Signature

__all__ = ["GitHubProvider", "GitHubSettings", "make_github_provider"]

log = logging.getLogger(__name__)

PROVIDER = "github"
T = TypeVar("T")

#: Requests whose repetition cannot do anything twice.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PATCH", "DELETE"})
_RATE_LIMITED = (403, 429)

# -- settings ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GitHubSettings:
    """The ``provider`` block of a GitHub source, validated."""

    repository: str
    token_env: str
    api_url: str = "https://api.github.com"
    label: str = "revisor"
    timeout: float = 30.0
    max_retries: int = 3
    backoff: float = 0.5
    max_wait: float = 60.0
    per_page: int = 100
    throttle: bool = True
    mergeability_polls: int = 5
    poll_interval: float = 1.0

    @classmethod
    def from_source(cls, source: StoreSource) -> GitHubSettings:
        extra, where = common.provider_block(source)
        common.reject_unknown(sorted(extra), cls.__dataclass_fields__, where)
        if not extra.get("repository"):
            project = common.remote_project(source)
            if project.count("/") != 1:
                raise ConfigError("field required: the GitHub repository as owner/name",
                                  field=f"{where}.repository")
            extra["repository"] = project
        if not extra.get("token_env"):
            raise ConfigError("field required: the environment variable holding the token",
                              field=f"{where}.token_env")
        for key, value in extra.items():
            common.check_type(value, str(cls.__dataclass_fields__[key].type), f"{where}.{key}")
        settings = cls(**extra)
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", settings.repository):
            raise ConfigError("expected owner/name", field=f"{where}.repository")
        if not settings.api_url.startswith(("https://", "http://")):
            raise ConfigError("expected an http(s) URL", field=f"{where}.api_url")
        return settings


# -- PyGithub plumbing ---------------------------------------------------------------------------
class _EnvToken(Auth):
    """A token read from the environment at each request (so rotation needs no restart)."""

    def __init__(self, env: Mapping[str, str], var: str, field: str) -> None:
        self._env = env
        self._var = var
        self._field = field

    @property
    def token_type(self) -> str:
        return "Bearer"

    @property
    def token(self) -> str:
        return read_secret(self._env, self._var, self._field)

    @property
    def _masked_token(self) -> str:
        return f"{self.token_type} (${self._var})"


class _Retry(GithubRetry):
    """GithubRetry, with 5xx and timeouts retried only for idempotent methods, 429 retried for
    all (after ``Retry-After``, or ``X-RateLimit-Reset`` when the quota is spent), and a wait
    longer than ``max_rate_limit_wait`` raised instead of slept."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code in _RATE_LIMITED:
            return True  # GithubRetry.increment tells a rate limit from a refusal
        return status_code >= 500 and method.upper() in _IDEMPOTENT

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        value = super().get_retry_after(response)
        if value is None and response.headers.get("X-RateLimit-Remaining") == "0":
            reset = response.headers.get("X-RateLimit-Reset", "")
            if reset.isdigit():
                value = max(int(reset) - time.time(), 0.0) + 1.0
        return value

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: HTTPResponse | None = None,  # type: ignore[override]
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Retry:
        if response is not None and response.status in _RATE_LIMITED:
            wait = self.get_retry_after(response)
            limit = self.max_rate_limit_wait
            if wait is not None and limit is not None and wait > limit:
                raise RateLimitExceededExceedsMaxWait(
                    response.status, None, dict(response.headers),
                    f"rate limited for {wait:.0f}s", wait=wait,
                )
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _gh_message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict):
        parts = [str(data.get("message") or exc.message or "")]
        for err in data.get("errors") or []:
            if isinstance(err, dict):
                detail = err.get("message") or " ".join(
                    str(err[k]) for k in ("resource", "field", "code") if err.get(k)
                )
                parts.append(str(detail))
            else:
                parts.append(str(err))
        return ": ".join(p for p in parts if p)
    return str(exc.message or data or f"HTTP {exc.status}")


def _timed_out(exc: requests.RequestException) -> bool:
    """A timeout, or retries that ended in one (requests wraps those in ConnectionError)."""
    if isinstance(exc, requests.Timeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.TimeoutError)


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    value = str(headers.get("retry-after", ""))
    if value.isdigit():
        return float(value)
    reset = str(headers.get("x-ratelimit-reset", ""))
    if headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        return max(int(reset) - time.time(), 0.0) + 1.0
    return None


_CHECK_STATES = {
    "success": CheckState.SUCCESS,
    "failure": CheckState.FAILURE,
    "timed_out": CheckState.FAILURE,
    "action_required": CheckState.FAILURE,
    "startup_failure": CheckState.FAILURE,
}


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- the provider --------------------------------------------------------------------------------
class GitHubProvider(Provider):
    """Pull requests of one GitHub repository. Constructing it does no I/O."""

    name = PROVIDER

    def __init__(
        self, source: StoreSource, db: Database, audit: AuditLog, committer: Signature,
        settings: GitHubSettings | None = None, *, env: Mapping[str, str] | None = None,
    ) -> None:
        self.source = source
        self.db = db
        self.audit = audit
        self.committer = committer
        self.settings = settings or GitHubSettings.from_source(source)
        self._env = env if env is not None else source.store.env
        s = self.settings
        self._auth = _EnvToken(self._env, s.token_env, f"sources.{source.name}.provider.token_env")
        retry = _Retry(
            total=s.max_retries, backoff_factor=s.backoff, raise_on_status=False,
            status_forcelist=[*range(500, 600), 429], allowed_methods=_IDEMPOTENT,
            max_rate_limit_wait=s.max_wait, secondary_rate_wait=min(60.0, s.max_wait),
        )
        self._github = Github(
            base_url=s.api_url.rstrip("/"), auth=self._auth, timeout=max(int(s.timeout), 1),
            retry=retry, per_page=s.per_page, lazy=True,
            seconds_between_requests=0.25 if s.throttle else None,
            seconds_between_writes=1.0 if s.throttle else None,
        )
        self._owner = s.repository.split("/", 1)[0]

    def __repr__(self) -> str:
        return f"GitHubProvider({self.source.name!r}, {self.settings.repository!r})"

    @property
    def _repo(self) -> GhRepository:
        return self._github.get_repo(self.settings.repository)

    # -- errors, once ---------------------------------------------------------------------------
    def _secrets(self) -> list[str]:
        value = self._env.get(self.settings.token_env)
        return [value] if value else []

    def _error(self, exc: Exception, what: str, number: int | None = None) -> RevisorError:
        """GitHub's (or the network's) failure as Revisor's error, its message redacted."""
        if isinstance(exc, RevisorError):
            return exc
        if isinstance(exc, GithubException):
            status = exc.status
            text = redact(f"GitHub: cannot {what}: {_gh_message(exc)} (HTTP {status})",
                          self._secrets())
            headers = exc.headers or {}
            if isinstance(exc, RateLimitExceededExceedsMaxWait):
                return RemoteUnavailable(text, retry_after=exc.wait,
                                         hint="GitHub's rate limit: try again later")
            retry_after = _retry_after(headers)
            if status == 429 or (status == 403 and retry_after is not None):
                return RemoteUnavailable(text, retry_after=retry_after,
                                         hint="GitHub's rate limit: try again later")
            if status in (401, 403):
                return NotAllowed(text, hint=f"check the token in ${self.settings.token_env} "
                                             f"and its access to {self.settings.repository}")
            if status in (404, 410):
                if number is not None:
                    return common.proposal_not_found(self.source.name, number, text)
                return NotFound(text)
            if status in (405, 409):
                return Conflict(text, hint="read the proposal again, then retry")
            if status in (400, 422):
                return InvalidInput(text)
            return RemoteUnavailable(text, retry_after=retry_after)
        if isinstance(exc, requests.RequestException):
            kind = "timed out" if _timed_out(exc) else "failed"
            return RemoteUnavailable(
                redact(f"GitHub: cannot {what}: the request {kind}: {exc}", self._secrets()),
                hint="GitHub is slow or unreachable: try again later",
            )
        raise exc

    def _call(self, what: str, fn: Callable[[], T], number: int | None = None) -> T:
        try:
            return fn()
        except (GithubException, requests.RequestException) as exc:
            raise self._error(exc, what, number) from None

    # -- reading --------------------------------------------------------------------------------
    def _pull(self, number: int) -> PullRequest:
        return self._call(f"read pull request #{number}",
                          lambda: self._repo.get_pull(number).complete(), number)

    def _proposal(self, pr: PullRequest, *, full: bool) -> Proposal:
        """A Proposal from a PR as GitHub sent it; ``full``: a single-PR answer (which carries
        ``mergeable``); a list answer does not, and reading it would cost a request per PR."""
        body, who = common.unmark(pr.body)
        if pr.merged_at is not None:
            status = ProposalStatus.MERGED
        else:
            status = ProposalStatus.OPEN if pr.state == "open" else ProposalStatus.CLOSED
        name, email = who if who is not None else (pr.user.login if pr.user else "ghost", "")
        merged = pr.merge_commit_sha if status is ProposalStatus.MERGED else None
        return Proposal(
            provider=PROVIDER, number=pr.number, url=pr.html_url, title=pr.title,
            description=body, author_name=name, author_email=email,
            source_branch=pr.head.ref, source_commit=ObjectId(pr.head.sha),
            target_branch=pr.base.ref, status=status, created_at=_utc(pr.created_at),
            updated_at=_utc(pr.updated_at), merged_commit=ObjectId(merged) if merged else None,
            labels=tuple(label.name for label in pr.labels),
            mergeable=pr.mergeable if full and status is ProposalStatus.OPEN else None,
            external_id=pr.node_id,
        )

    def get(self, number: int) -> Proposal:
        """The PR with its mergeability, check runs (on its head commit) and reviews."""
        pr = self._pull(number)
        p = self._proposal(pr, full=True)
        return replace(p, checks=self._checks(p.source_commit, number),
                       reviews=self._reviews(pr, number))

    def _checks(self, sha: str, number: int) -> tuple[Check, ...]:
        runs = self._call(f"read the check runs of #{number}",
                          lambda: list(self._repo.get_commit(sha).get_check_runs()))
        out = []
        for run in runs:
            if run.status != "completed":
                state = CheckState.PENDING
            else:
                state = _CHECK_STATES.get(run.conclusion or "", CheckState.NEUTRAL)
            out.append(Check(run.name, state, run.html_url or run.details_url))
        return tuple(out)

    def _reviews(self, pr: PullRequest, number: int) -> tuple[Review, ...]:
        """Each reviewer's latest verdict (an approval or a change request); reviewers who only
        commented count as not approving."""
        reviews = self._call(f"read the reviews of #{number}", lambda: list(pr.get_reviews()))
        verdicts: dict[str, str] = {}
        for r in reviews:
            who = r.user.login if r.user is not None else "ghost"
            if r.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                verdicts[who] = r.state
            else:
                verdicts.setdefault(who, r.state)
        return tuple(Review(who, state == "APPROVED", label=state) for who, state in
                     verdicts.items())

    def _find(self, branch: str, state: str) -> PullRequest | None:
        def first() -> PullRequest | None:
            pulls = self._repo.get_pulls(state=state, head=f"{self._owner}:{branch}",
                                         sort="created", direction="desc")
            for pr in pulls:
                return pr
            return None

        return self._call(f"look up the pull request of {branch!r}", first)

    def find_by_branch(self, source_branch: str) -> Proposal | None:
        """The newest PR from this branch, any status."""
        pr = self._find(source_branch, "all")
        return self._proposal(pr, full=False) if pr is not None else None

    def comments(self, number: int) -> builtins.list[Comment]:
        raw = self._call(f"read the comments of #{number}",
                         lambda: list(self._repo.get_issue(number).get_comments()), number)
        out = []
        for c in raw:
            text, who = common.unmark(c.body)
            name, email = who if who is not None else (c.user.login if c.user else "ghost", "")
            out.append(Comment(c.id, name, email, text, _utc(c.created_at)))
        return out

    # -- opening --------------------------------------------------------------------------------
    def open(self, request: ProposalRequest) -> Proposal:
        """Open a PR for a pushed branch, or return the one already open for it.

        A create that failed with 5xx or timed out is followed by a look-up by head branch
        before any retry, so a PR GitHub created despite the error is never duplicated.
        """
        common.check_branches(request, hint="push the change to its own branch first")
        labels = tuple(dict.fromkeys((self.settings.label, *request.labels)))
        existing = self._find(request.source_branch, "open")
        if existing is not None:
            return self._labelled(existing, labels)
        body = common.mark(request.description, request.author)
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            try:
                pr = self._repo.create_pull(base=request.target_branch, head=request.source_branch,
                                            title=request.title, body=body)
            except (GithubException, requests.RequestException) as exc:
                error = self._error(exc, f"open a pull request from {request.source_branch!r}")
                retryable = isinstance(error, RemoteUnavailable)
                if not retryable and not (isinstance(exc, GithubException) and exc.status == 422):
                    raise error from None
                # GitHub may have created it before failing (or it exists already: 422).
                found = self._find(request.source_branch, "open")
                if found is not None:
                    log.info("%s: pull request #%d found for %s after: %s", self.source.name,
                             found.number, request.source_branch, error)
                    return self._opened(found, request, labels)
                if not retryable or attempt + 1 == attempts:
                    raise error from None
                self._sleep(error, attempt)
                continue
            return self._opened(pr, request, labels)
        raise AssertionError("unreachable")

    def _sleep(self, error: RevisorError, attempt: int) -> None:
        wait = self.settings.backoff * (2**attempt)
        if isinstance(error, RemoteUnavailable) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        if wait > self.settings.max_wait:
            raise error
        log.warning("%s: %s; retrying in %.1fs", self.source.name, error, wait)
        time.sleep(wait)

    def _opened(self, pr: PullRequest, request: ProposalRequest,
                labels: tuple[str, ...]) -> Proposal:
        p = self._labelled(pr, labels)
        common.record_proposal(
            self.audit, request.author, "proposal.open", self.source.name, p.number,
            after=p.source_commit,
            details={"provider": PROVIDER, "url": p.url, "branch": p.source_branch,
                     "target": p.target_branch, "title": p.title},
        )
        return p

    def _labelled(self, pr: PullRequest, labels: tuple[str, ...]) -> Proposal:
        """The PR with ``labels`` added (adding is idempotent, so failures are retried)."""
        p = self._proposal(pr, full=False)
        missing = [label for label in labels if label not in p.labels]
        if not missing:
            return p
        issue = self._repo.get_issue(p.number)
        for attempt in range(self.settings.max_retries + 1):
            try:
                self._call(f"label pull request #{p.number}",
                           lambda: issue.add_to_labels(*missing), p.number)
                break
            except RemoteUnavailable as exc:
                if attempt == self.settings.max_retries:
                    raise
                self._sleep(exc, attempt)
        return replace(p, labels=(*p.labels, *missing))

    # -- listing --------------------------------------------------------------------------------
    def list(self, status: ProposalStatus | None = None) -> builtins.list[Proposal]:
        """The PRs carrying Revisor's label, newest first (one request per page of the label's
        issues, and one per PR, whose head and base only the pulls API tells)."""
        state = "open" if status is ProposalStatus.OPEN else \
            "all" if status is None else "closed"

        def numbers() -> builtins.list[int]:
            issues = self._repo.get_issues(state=state, labels=[self.settings.label],
                                           sort="created", direction="desc")
            return [i.number for i in issues if i.pull_request is not None]

        out = []
        for number in self._call("list the pull requests", numbers):
            p = self._proposal(self._pull(number), full=True)
            if status is None or p.status is status:
                out.append(p)
        return out

    # -- changing -------------------------------------------------------------------------------
    def update(
        self,
        number: int,
        *,
        title: str | None = None,
        description: str | None = None,
        source_commit: ObjectId | None = None,
        actor: Signature | None = None,
    ) -> Proposal:
        """Change an open PR's title or description. A moved branch needs nothing here: GitHub
        follows the pushed branch (``source_commit`` is only checked against it)."""
        if title is not None and not title.strip():
            raise InvalidInput("a proposal needs a title")
        pr = self._pull(number)
        p = self._proposal(pr, full=True)
        if title is None and description is None:
            if source_commit is not None and p.source_commit != source_commit:
                log.info("%s: #%d is at %s, not yet at the pushed %s", self.source.name, number,
                         p.source_commit[:12], source_commit[:12])
            return p
        if p.status is not ProposalStatus.OPEN:
            raise InvalidState(f"proposal #{number}", p.status, "update")
        new_title: Opt[str] = title if title is not None else NotSet
        new_body: Opt[str] = NotSet
        if description is not None:
            new_body = common.mark(description, (p.author_name, p.author_email))
        self._call(f"update pull request #{number}",
                   lambda: pr.edit(title=new_title, body=new_body), number)
        fields = [f for f, v in (("title", title), ("description", description)) if v is not None]
        after = self._proposal(pr, full=True)
        common.record_proposal(
            self.audit, actor or self.committer, "proposal.update", self.source.name, number,
            before=p.source_commit, after=after.source_commit,
            details={"provider": PROVIDER, "fields": fields},
        )
        return after

    def close(self, number: int, actor: Signature) -> Proposal:
        """Close an open PR; a closed one is returned unchanged, a merged one refused."""
        pr = self._pull(number)
        p = self._proposal(pr, full=False)
        if p.status is ProposalStatus.CLOSED:
            return p
        if p.status is ProposalStatus.MERGED:
            raise InvalidState(f"proposal #{number}", p.status, "close")
        self._call(f"close pull request #{number}", lambda: pr.edit(state="closed"), number)
        common.record_proposal(
            self.audit, actor, "proposal.close", self.source.name, number,
            before=ProposalStatus.OPEN, after=ProposalStatus.CLOSED,
            details={"provider": PROVIDER},
        )
        return self._proposal(pr, full=False)

    def comment(self, number: int, text: str, actor: Signature) -> None:
        """Comment on the PR (a POST: not repeated after a 5xx, which may have been posted)."""
        if not text.strip():
            raise InvalidInput("a comment needs text")
        issue = self._repo.get_issue(number)
        c = self._call(f"comment on #{number}",
                       lambda: issue.create_comment(common.mark(text, actor)), number)
        common.record_proposal(
            self.audit, actor, "proposal.comment", self.source.name, number,
            details={"provider": PROVIDER, "comment": c.id, "length": len(text)},
        )

    # -- merging --------------------------------------------------------------------------------
    def mergeability(self, number: int) -> Mergeability:
        """GitHub's ``mergeable``, waited for while GitHub computes it; the conflicting paths
        (which GitHub does not list) are computed from the source's mirror."""
        pr = self._pull(number)
        for _ in range(self.settings.mergeability_polls):
            if pr.mergeable is not None or pr.state != "open":
                break
            time.sleep(self.settings.poll_interval)
            pr = self._pull(number)
        target = ObjectId(pr.base.sha)
        head = ObjectId(pr.head.sha)
        if pr.mergeable is True:
            return Mergeability(True, (), target)
        local = self._local_merge(target, head)
        if pr.mergeable is False:
            return Mergeability(False, local.conflicts if local else (), target)
        if local is None:  # GitHub does not know and the mirror cannot tell: say not clean
            return Mergeability(False, (), target)
        return Mergeability(local.clean, local.conflicts, target)

    def _local_merge(self, target: ObjectId, head: ObjectId) -> MergeResult | None:
        """The merge computed from the source's mirror (fetched if it lacks a commit)."""
        return common.local_merge(self.source, target, head, log)

    def merge(self, number: int, method: MergeMethod, actor: Signature) -> Proposal:
        """Merge with GitHub's merge, squash or rebase, the PR's head as read being the lease
        (``sha``): :class:`Conflict` if the branch moved meanwhile, :class:`MergeConflict` if
        git cannot merge it, :class:`InvalidState` if it is not open."""
        method = MergeMethod(method)
        pr = self._pull(number)
        p = self._proposal(pr, full=True)
        if p.status is not ProposalStatus.OPEN:
            raise InvalidState(f"proposal #{number}", p.status, "merge")
        commit_title: Opt[str] = NotSet
        commit_message: Opt[str] = NotSet
        if method is MergeMethod.SQUASH:
            commit_title = f"{p.title} (#{number})"
            commit_message = p.description.strip()
        elif method is MergeMethod.MERGE:
            commit_message = p.title
        try:
            result = pr.merge(merge_method=method.value, sha=p.source_commit,
                              commit_title=commit_title, commit_message=commit_message)
            merged_sha: str | None = result.sha
        except (GithubException, requests.RequestException) as exc:
            error = self._error(exc, f"merge pull request #{number}", number)
            if isinstance(exc, GithubException) and exc.status == 405:
                local = self._local_merge(ObjectId(pr.base.sha), p.source_commit)
                if local is not None and not local.clean:
                    raise MergeConflict(error.message, local.conflicts) from None
                raise error from None
            if isinstance(exc, GithubException) and exc.status == 409:
                raise Conflict(error.message, hint="the branch or its target moved: read the "
                               "proposal again and merge again") from None
            if not isinstance(error, RemoteUnavailable):
                raise error from None
            # A 5xx or a timeout: the merge may have happened. Ask rather than repeat it.
            again = self._pull(number)
            if again.merged_at is None:
                raise error from None
            merged_sha = again.merge_commit_sha
        after = replace(self._proposal(self._pull(number), full=False), merge_method=method)
        common.record_proposal(
            self.audit, actor, "proposal.merge", self.source.name, number,
            before=pr.base.sha, after=merged_sha,
            details={"provider": PROVIDER, "method": method.value,
                     "source_commit": p.source_commit, "branch": p.source_branch,
                     "target": p.target_branch},
        )
        common.refresh_quietly(self.source, log, "a merge")
        return after


def make_github_provider(
    source: StoreSource, db: Database, audit: AuditLog, committer: Signature
) -> Provider:
    """The factory's entry for ``provider.type: github``."""
    return GitHubProvider(source, db, audit, committer)
