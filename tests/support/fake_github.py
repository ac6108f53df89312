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

The SCM-neutral machinery (:class:`~tests.support.fake_scm.FakeScm`: HTTP, routing,
authentication, faults, pagination; :class:`~tests.support.fake_scm.BareRepo`: git plumbing) is
shared with ``fake_gitlab`` from ``fake_scm``.

Deviations from GitHub, on purpose: one account per token and no permissions model beyond
"known token"; mergeability is computed on each read (``mergeable_pending_reads`` simulates
GitHub's background computation); no branch protection; issues exist only as pull requests.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tests.support.fake_scm import BareRepo, FakeScm, Reply, Request, iso

__all__ = ["FakeGitHub"]

DOCS = "https://docs.github.com/rest"


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
        r = self.add_route
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
