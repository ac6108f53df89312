"""A protocol-faithful fake of Gitea's REST API v1, backed by real bare repositories.

Why this module exists: Gitea cannot be installed where the tests run, and a mock would only
check that Revisor calls what Revisor thinks Gitea offers. This server implements, on 127.0.0.1,
exactly the documented endpoints the Gitea provider uses — paths, methods, status codes, JSON
shapes, ``Link``/``X-Total-Count`` pagination, ``{"message", "url"}`` error bodies, ``Authorization:
token …`` — each written from Gitea's API documentation (the swagger at
https://docs.gitea.com/api/1.22/, cited beside each route by operation id) and, where the
documentation is silent, from Gitea's handlers (``routers/api/v1/repo/pull.go``). The repositories
are real bare repositories served over smart HTTP by :class:`~tests.support.githttp.GitHttpServer`,
so pushes are real pushes, a pull request's head is its branch as pushed, and merging really
moves the base branch (merge, squash, rebase, fast-forward-only; a moved head or a conflict is
refused as Gitea refuses it).

The HTTP machinery it shares with the Gerrit fake is ``fake_scm``'s
:class:`~tests.support.fake_scm.FakeRestServer`: routing by method and path pattern to a named
*operation*, recording of every request, and fault injection per operation — any status (401,
403, 404, 409, 422, 429 with ``Retry-After``, 500…), optionally *after* performing the action (the
lost-answer case), or a hang until the client gives up.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pygit2

from tests.support.fake_scm import (
    Answer,
    GitHostingServer,
    HttpError,
    RestRequest,
    commit_tree,
    git,
    is_ancestor,
    merge_commits,
    read_ref,
    update_ref,
)

__all__ = ["FakeGitea"]


# -- Gitea -----------------------------------------------------------------------------------------
_DOCS = "https://docs.gitea.com/api/1.22/"
_REPO = r"/api/v1/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
_PAGE_DEFAULT, _PAGE_MAX = 30, 50


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeUser:
    id: int
    login: str
    full_name: str
    email: str

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "login": self.login, "full_name": self.full_name,
                "email": self.email, "username": self.login}


@dataclass
class FakePull:
    number: int
    id: int
    title: str
    body: str
    poster: FakeUser
    head: str
    base: str
    head_sha: str
    state: str = "open"
    merged: bool = False
    merge_commit_sha: str | None = None
    merged_at: str | None = None
    closed_at: str | None = None
    labels: list[int] = field(default_factory=list)
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)


@dataclass
class FakeRepo:
    owner: str
    name: str
    path: Path
    pulls: dict[int, FakePull] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    labels: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    next_index: int = 1


class FakeGitea(GitHostingServer):
    """Gitea's REST API v1 on 127.0.0.1 plus its git smart HTTP, over bare repositories under
    ``root``. ``token`` authenticates the service account ``user`` for both (git: basic auth
    with the token as password, as Gitea accepts)."""

    server_name = "gitea"

    def __init__(self, root: Path, *, user: str = "revisor-bot",
                 token: str = "gitea-token-s3cr3t") -> None:  # noqa: S107 - a test server's
        super().__init__(root, (user, token))
        self.users: dict[str, FakeUser] = {}
        self.tokens: dict[str, str] = {}
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self._ids = iter(range(1000, 10**9))
        self.add_user(user, token, "Revisor Bot", f"{user}@example.com")
        self._register()

    # -- set-up -----------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v1"

    def add_user(self, login: str, token: str, full_name: str, email: str) -> FakeUser:
        user = FakeUser(next(self._ids), login, full_name, email)
        self.users[login] = user
        self.tokens[token] = login
        return user

    def create_repo(self, owner: str, name: str, files: Mapping[str, str] | None = None,
                    branch: str = "main") -> tuple[Path, str]:
        """A bare repository with one commit on ``branch``; (its path, its clone URL)."""
        path = self.root / owner / f"{name}.git"
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(path)], check=True)
        r = pygit2.Repository(str(path))
        builder = r.TreeBuilder()
        for rel, text in (files or {"README.md": "hello\n"}).items():
            assert "/" not in rel, "flat files only"
            builder.insert(rel, r.create_blob(text.encode()), pygit2.GIT_FILEMODE_BLOB)
        sig = pygit2.Signature("Seed", "seed@example.com", 1700000000, 0)
        r.create_commit(f"refs/heads/{branch}", sig, sig, "initial commit\n", builder.write(), [])
        self.repos[(owner, name)] = FakeRepo(owner, name, path)
        return path, self.git.url_for(f"{owner}/{name}.git")

    # -- protocol details -------------------------------------------------------------------------
    def authenticate(self, request: RestRequest) -> None:
        # https://docs.gitea.com/development/api-usage#authentication
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if header:
            if scheme.lower() not in ("token", "bearer") or token not in self.tokens:
                raise HttpError(401, "invalid username, password or token")
            request.user = self.tokens[token]
        elif request.method != "GET":
            raise HttpError(401, "token is required")

    def error_answer(self, status: int, message: str) -> Answer:
        # APIError / APIValidationError / APINotFound: {"message": …, "url": …}
        body: dict[str, Any] = {"message": message, "url": _DOCS}
        if status == 404:
            body["errors"] = []
        return Answer(status, body)

    def _repo(self, owner: str, repo: str) -> FakeRepo:
        found = self.repos.get((owner, repo))
        if found is None:
            raise HttpError(404, "The target couldn't be found.")
        return found

    def _pull(self, owner: str, repo: str, index: str) -> tuple[FakeRepo, FakePull]:
        r = self._repo(owner, repo)
        pr = r.pulls.get(int(index)) if index.isdigit() else None
        if pr is None:
            raise HttpError(404, "The target couldn't be found.")
        return r, pr

    def _doer(self, request: RestRequest) -> FakeUser:
        if request.user is None:
            raise HttpError(401, "token is required")
        return self.users[request.user]

    def head_sha(self, r: FakeRepo, pr: FakePull) -> str:
        """An open pull request follows its branch (Gitea's push hook keeps refs/pull/N/head
        current); a closed one keeps the head it had."""
        if pr.state == "open":
            sha = read_ref(r.path, f"refs/heads/{pr.head}")
            if sha is not None and sha != pr.head_sha:
                pr.head_sha = sha
                git(r.path, "update-ref", f"refs/pull/{pr.number}/head", sha)
        return pr.head_sha

    def mergeable(self, r: FakeRepo, pr: FakePull) -> bool:
        base = read_ref(r.path, f"refs/heads/{pr.base}")
        if base is None:
            return False
        tree, _ = merge_commits(r.path, base, self.head_sha(r, pr))
        return tree is not None

    def pull_json(self, r: FakeRepo, pr: FakePull) -> dict[str, Any]:
        # The PullRequest schema: https://docs.gitea.com/api/1.22/#tag/repository/operation/repoGetPullRequest
        head_sha = self.head_sha(r, pr)
        base_sha = read_ref(r.path, f"refs/heads/{pr.base}") or ""
        clone = self.git.url_for(f"{r.owner}/{r.name}.git")
        html = f"{self.url}/{r.owner}/{r.name}/pulls/{pr.number}"
        return {
            "id": pr.id, "number": pr.number, "url": html, "html_url": html,
            "diff_url": f"{html}.diff", "patch_url": f"{html}.patch",
            "title": pr.title, "body": pr.body, "user": pr.poster.json(),
            "labels": [r.labels[i] for i in pr.labels if i in r.labels],
            "state": pr.state, "merged": pr.merged, "merged_at": pr.merged_at,
            "merge_commit_sha": pr.merge_commit_sha, "closed_at": pr.closed_at,
            "mergeable": pr.state == "open" and self.mergeable(r, pr),
            "created_at": pr.created_at, "updated_at": pr.updated_at,
            "head": {"label": pr.head, "ref": pr.head, "sha": head_sha,
                     "repo": {"full_name": f"{r.owner}/{r.name}", "clone_url": clone}},
            "base": {"label": pr.base, "ref": pr.base, "sha": base_sha,
                     "repo": {"full_name": f"{r.owner}/{r.name}", "clone_url": clone}},
            "merge_base": "",
        }

    def _page(self, request: RestRequest, items: list[Any]) -> Answer:
        """Gitea's paging: ``page`` (1-based) and ``limit``; ``Link`` and ``X-Total-Count``."""
        page = max(1, int(request.arg("page", "1") or 1))
        limit = int(request.arg("limit", str(_PAGE_DEFAULT)) or _PAGE_DEFAULT)
        limit = _PAGE_DEFAULT if limit <= 0 else min(limit, _PAGE_MAX)
        chunk = items[(page - 1) * limit: page * limit]
        last = max(1, -(-len(items) // limit))
        base = f"{self.url}{request.headers['X-Raw-Path']}"

        def link(p: int, rel: str) -> str:
            query = {k: v[0] for k, v in request.query.items()} | {"page": p, "limit": limit}
            return f'<{base}?{urlencode(query)}>; rel="{rel}"'

        links = []
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        headers = {"X-Total-Count": str(len(items))}
        if links:
            headers["Link"] = ", ".join(links)
        return Answer(200, chunk, headers)

    # -- routes -----------------------------------------------------------------------------------
    def _register(self) -> None:
        add = self.add_route
        add("GET", _REPO + r"/pulls", "repoListPullRequests", self._list_pulls)
        add("POST", _REPO + r"/pulls", "repoCreatePullRequest", self._create_pull)
        add("GET", _REPO + r"/pulls/(?P<index>\d+)", "repoGetPullRequest", self._get_pull)
        add("PATCH", _REPO + r"/pulls/(?P<index>\d+)", "repoEditPullRequest", self._edit_pull)
        add("POST", _REPO + r"/pulls/(?P<index>\d+)/merge", "repoMergePullRequest", self._merge)
        add("GET", _REPO + r"/pulls/(?P<index>\d+)/merge", "repoPullRequestIsMerged",
            self._is_merged)
        add("GET", _REPO + r"/pulls/(?P<index>\d+)/reviews", "repoListPullReviews",
            self._list_reviews)
        add("POST", _REPO + r"/pulls/(?P<index>\d+)/reviews", "repoCreatePullReview",
            self._create_review)
        add("GET", _REPO + r"/issues/(?P<index>\d+)/comments", "issueGetComments",
            self._list_comments)
        add("POST", _REPO + r"/issues/(?P<index>\d+)/comments", "issueCreateComment",
            self._create_comment)
        add("GET", _REPO + r"/labels", "issueListLabels", self._list_labels)
        add("POST", _REPO + r"/labels", "issueCreateLabel", self._create_label)
        add("GET", _REPO + r"/commits/(?P<ref>[^/]+)/status", "repoGetCombinedStatusByRef",
            self._combined_status)
        add("POST", _REPO + r"/statuses/(?P<sha>[0-9a-f]{40})", "repoCreateStatus",
            self._create_status)

    def _list_pulls(self, request: RestRequest, owner: str, repo: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoListPullRequests
        r = self._repo(owner, repo)
        state = request.arg("state", "open")
        with self.lock:
            pulls = [pr for pr in r.pulls.values() if state == "all" or pr.state == state]
            pulls.sort(key=lambda pr: pr.number, reverse=True)  # newest first
            return self._page(request, [self.pull_json(r, pr) for pr in pulls])

    def _create_pull(self, request: RestRequest, owner: str, repo: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoCreatePullRequest
        r = self._repo(owner, repo)
        doer = self._doer(request)
        form = request.json() or {}
        head, base = str(form.get("head") or ""), str(form.get("base") or "")
        if not str(form.get("title") or "").strip():
            raise HttpError(422, "[Title]: Required")
        if head == base:
            raise HttpError(422, "Invalid PullRequest: There are no changes between the head "
                                 "and the base")
        with self.lock:
            head_sha = read_ref(r.path, f"refs/heads/{head}")
            if head_sha is None or read_ref(r.path, f"refs/heads/{base}") is None:
                raise HttpError(404, "The target couldn't be found.")
            for pr in r.pulls.values():
                if pr.state == "open" and (pr.head, pr.base) == (head, base):
                    raise HttpError(409, f"pull request already exists for these targets "
                                         f"[id: {pr.id}, issue_id: {pr.number}, head_repo_id: 1, "
                                         f"base_repo_id: 1, head_branch: {head}, base_branch: "
                                         f"{base}]")
            number = r.next_index
            r.next_index += 1
            pr = FakePull(number, next(self._ids), str(form["title"]), str(form.get("body") or ""),
                          doer, head, base, head_sha,
                          labels=[i for i in form.get("labels") or [] if i in r.labels])
            r.pulls[number] = pr
            git(r.path, "update-ref", f"refs/pull/{number}/head", head_sha)
            return Answer(201, self.pull_json(r, pr))

    def _get_pull(self, request: RestRequest, owner: str, repo: str, index: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoGetPullRequest
        with self.lock:
            r, pr = self._pull(owner, repo, index)
            return Answer(200, self.pull_json(r, pr))

    def _edit_pull(self, request: RestRequest, owner: str, repo: str, index: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoEditPullRequest
        self._doer(request)
        form = request.json() or {}
        with self.lock:
            r, pr = self._pull(owner, repo, index)
            if "title" in form:
                if not str(form["title"]).strip():
                    raise HttpError(422, "[Title]: Required")
                pr.title = str(form["title"])
            if "body" in form:
                pr.body = str(form["body"])
            if "labels" in form:
                pr.labels = [i for i in form["labels"] or [] if i in r.labels]
            state = form.get("state")
            if state is not None and state != pr.state:
                if pr.merged:
                    raise HttpError(412, "cannot change state of this pull request, it was "
                                         "already merged")
                self.head_sha(r, pr)
                pr.state = str(state)
                pr.closed_at = _now() if state == "closed" else None
            pr.updated_at = _now()
            return Answer(201, self.pull_json(r, pr))

    def _is_merged(self, request: RestRequest, owner: str, repo: str, index: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoPullRequestIsMerged
        with self.lock:
            _, pr = self._pull(owner, repo, index)
            if not pr.merged:
                raise HttpError(404)
            return Answer(204)

    def _merge(self, request: RestRequest, owner: str, repo: str, index: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoMergePullRequest
        # (the checks in the order of routers/api/v1/repo/pull.go MergePullRequest)
        doer = self._doer(request)
        form = request.json() or {}
        style = str(form.get("Do") or "merge")
        with self.lock:
            r, pr = self._pull(owner, repo, index)
            if pr.merged:
                raise HttpError(405, "")
            if pr.state == "closed":
                raise HttpError(404)
            head = self.head_sha(r, pr)
            base_ref = f"refs/heads/{pr.base}"
            base = read_ref(r.path, base_ref)
            assert base is not None
            if style != "fast-forward-only" and not self.mergeable(r, pr):
                raise HttpError(405, "Please try again later")
            if form.get("head_commit_id") and form["head_commit_id"] != head:
                raise HttpError(409, "head out of date")
            new = self._merged(r, pr, style, base, head, doer)
            if not update_ref(r.path, base_ref, new, base):
                raise HttpError(409, "merge push out of date")
            pr.merged, pr.state = True, "closed"
            pr.merge_commit_sha, pr.merged_at = new, _now()
            pr.closed_at = pr.updated_at = pr.merged_at
            return Answer(200, b"", {"Content-Type": "text/plain"})

    def _merged(self, r: FakeRepo, pr: FakePull, style: str, base: str, head: str,
                doer: FakeUser) -> str:
        """The base branch's new commit for a merge ``style`` (Gitea's MergeStyle values)."""
        now = int(time.time())
        committer = pygit2.Signature(doer.full_name, doer.email, now, 0)
        repo = pygit2.Repository(str(r.path))
        if style == "fast-forward-only":
            if not is_ancestor(r.path, base, head):
                raise HttpError(409, "merge push out of date")
            return head
        if style == "merge":
            tree, _ = merge_commits(r.path, base, head)
            assert tree is not None
            message = f"Merge pull request '{pr.title}' (#{pr.number}) from {pr.head} into " \
                      f"{pr.base}\n"
            return commit_tree(r.path, tree, [base, head], message, committer, committer)
        if style == "squash":
            tree, _ = merge_commits(r.path, base, head)
            assert tree is not None
            author = repo[head].peel(pygit2.Commit).author
            return commit_tree(r.path, tree, [base], f"{pr.title} (#{pr.number})\n\n{pr.body}\n",
                               author, committer)
        if style == "rebase":
            if is_ancestor(r.path, base, head):
                return head
            merge_base = repo.merge_base(base, head)
            walker = repo.walk(pygit2.Oid(hex=head),
                               pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
            if merge_base is not None:
                walker.hide(merge_base)
            current = base
            for c in walker:
                if len(c.parent_ids) > 1:
                    continue
                parent = str(c.parent_ids[0]) if c.parent_ids else None
                tree, conflicts = merge_commits(r.path, current, str(c.id), parent)
                if tree is None:
                    raise HttpError(409, f"rebase conflicts: {conflicts}")
                current = commit_tree(r.path, tree, [current], c.message, c.author, committer)
            return current
        raise HttpError(405, f"{style} is not allowed an allowed merge style for this repository")

    def _list_reviews(self, request: RestRequest, owner: str, repo: str, index: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoListPullReviews
        with self.lock:
            r, pr = self._pull(owner, repo, index)
            return self._page(request, list(r.reviews.get(pr.number, [])))

    def _create_review(self, request: RestRequest, owner: str, repo: str, index: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoCreatePullReview
        doer = self._doer(request)
        form = request.json() or {}
        event = str(form.get("event") or "COMMENT")
        if event not in ("APPROVED", "REQUEST_CHANGES", "COMMENT", "PENDING"):
            raise HttpError(422, f"unknown review event {event}")
        with self.lock:
            r, pr = self._pull(owner, repo, index)
            review = {"id": next(self._ids), "user": doer.json(), "state": event,
                      "body": str(form.get("body") or ""), "commit_id": self.head_sha(r, pr),
                      "stale": False, "dismissed": False, "official": True,
                      "submitted_at": _now()}
            r.reviews.setdefault(pr.number, []).append(review)
            return Answer(200, review)

    def _list_comments(self, request: RestRequest, owner: str, repo: str, index: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/issue/operation/issueGetComments (not paged)
        with self.lock:
            r, pr = self._pull(owner, repo, index)
            return Answer(200, list(r.comments.get(pr.number, [])))

    def _create_comment(self, request: RestRequest, owner: str, repo: str, index: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/issue/operation/issueCreateComment
        doer = self._doer(request)
        form = request.json() or {}
        if not str(form.get("body") or "").strip():
            raise HttpError(422, "[Body]: Required")
        with self.lock:
            r, pr = self._pull(owner, repo, index)
            cid = next(self._ids)
            comment = {"id": cid, "body": str(form["body"]), "user": doer.json(),
                       "created_at": _now(), "updated_at": _now(),
                       "html_url": f"{self.url}/{owner}/{repo}/pulls/{pr.number}#issuecomment-"
                                   f"{cid}"}
            r.comments.setdefault(pr.number, []).append(comment)
            return Answer(201, comment)

    def _list_labels(self, request: RestRequest, owner: str, repo: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/issue/operation/issueListLabels
        with self.lock:
            return self._page(request, list(self._repo(owner, repo).labels.values()))

    def _create_label(self, request: RestRequest, owner: str, repo: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/issue/operation/issueCreateLabel
        self._doer(request)
        form = request.json() or {}
        name, color = str(form.get("name") or ""), str(form.get("color") or "")
        if not name.strip() or not re.fullmatch(r"#?[0-9a-fA-F]{6}", color):
            raise HttpError(422, "[Name]: Required / [Color]: invalid color")
        with self.lock:
            r = self._repo(owner, repo)
            label: dict[str, Any] = {
                "id": next(self._ids), "name": name, "color": color.lstrip("#"),
                "description": str(form.get("description") or ""), "exclusive": False,
            }
            r.labels[int(label["id"])] = label
            return Answer(201, label)

    def _combined_status(self, request: RestRequest, owner: str, repo: str, ref: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoGetCombinedStatusByRef
        with self.lock:
            r = self._repo(owner, repo)
            sha = ref if re.fullmatch(r"[0-9a-f]{40}", ref) else read_ref(r.path, ref)
            if sha is None:
                raise HttpError(404)
            latest: dict[str, dict[str, Any]] = {}
            for s in reversed(r.statuses.get(sha, [])):
                latest.setdefault(s["context"], s)
            states = [s["status"] for s in latest.values()]
            state = ("failure" if {"failure", "error"} & set(states) else
                     "pending" if "pending" in states or not states else "success")
            return Answer(200, {"sha": sha, "state": state, "statuses": list(latest.values()),
                                "total_count": len(latest)})

    def _create_status(self, request: RestRequest, owner: str, repo: str, sha: str) -> Answer:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoCreateStatus
        self._doer(request)
        form = request.json() or {}
        state = str(form.get("state") or "")
        if state not in ("pending", "success", "error", "failure", "warning"):
            raise HttpError(422, "[State]: invalid")
        with self.lock:
            r = self._repo(owner, repo)
            status = {"id": next(self._ids), "status": state,
                      "context": str(form.get("context") or "default"),
                      "target_url": str(form.get("target_url") or ""),
                      "description": str(form.get("description") or ""),
                      "created_at": _now(), "updated_at": _now()}
            r.statuses.setdefault(sha, []).append(status)
            return Answer(201, status)

