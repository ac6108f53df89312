"""A protocol-faithful fake of GitLab's REST API (v4), for the GitLab provider's integration tests.

Why this module exists: GitLab cannot be installed here, and the provider must be tested against
the API as GitLab documents it, not against a mock shaped like the client. This is a real HTTP
server on 127.0.0.1 implementing the merge request endpoints Revisor calls — paths (with
URL-encoded project paths as ids), methods, parameters from the query string or the body (as
GitLab's Grape API merges them), status codes, offset pagination (``X-Page``, ``X-Next-Page``,
``X-Total``… and ``Link``), error bodies (``{"message": …}`` / ``{"error": …}``), ``PRIVATE-TOKEN``
and ``Authorization: Bearer`` authentication, and the ``RateLimit-*``/``Retry-After`` headers of
a 429 — each route citing its documentation. Projects are the real bare repositories a
:class:`~tests.support.githttp.GitHttpServer` serves: branches are real pushes, mergeability is
``git merge-tree``'s, merges move the target branch with a real commit by compare-and-swap (merge
commit, squash, fast-forward per the project's merge method), and a rebase rewrites the source
branch asynchronously, as GitLab's does.

The HTTP machinery, faults and git plumbing are shared with ``fake_github`` (``fake_scm``'s
:class:`~tests.support.fake_scm.FakeScm` and :class:`~tests.support.fake_scm.BareRepo`).
Deviations, on purpose: one account per token and no permissions model; mergeability is computed
on each read (``recheck_pending_reads`` simulates GitLab's asynchronous check);
``diff_refs.start_sha`` follows the target branch live; pipelines and approvals are added by the
test (:meth:`FakeGitLab.add_pipeline`, :meth:`FakeGitLab.approve`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from tests.support.fake_scm import BareRepo, FakeScm, Fault, Reply, Request, iso

__all__ = ["FakeGitLab", "GlMergeRequest", "GlProject"]

def flag(request: Request, name: str) -> bool:
    """A Boolean parameter, coerced as GitLab's Grape API does (``true``, ``1``, ``yes``…)."""
    return (request.arg(name) or "").lower() in ("true", "1", "t", "yes", "y", "on")


_PROJECT = r"/api/v4/projects/(?P<project>[^/]+)"
_MR = _PROJECT + r"/merge_requests/(?P<iid>\d+)"
GITLAB_COMMITTER = ("GitLab", "gitlab@example.com")


@dataclass
class GlMergeRequest:
    iid: int
    id: int
    title: str
    description: str
    source_branch: str
    target_branch: str
    author: str
    sha: str
    created_at: float
    updated_at: float
    state: str = "opened"  # opened, closed, locked, merged
    labels: list[str] = field(default_factory=list)
    merged_at: float | None = None
    closed_at: float | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    squash: bool = False
    merge_error: str | None = None
    rebase_in_progress: bool = False
    draft: bool = False


@dataclass
class GlNote:
    id: int
    iid: int
    author: str
    body: str
    created_at: float
    system: bool = False


@dataclass
class GlPipeline:
    id: int
    iid: int
    sha: str
    ref: str
    status: str  # created, pending, running, success, failed, canceled, skipped, manual, …
    source: str
    created_at: float


@dataclass
class GlProject:
    id: int
    path: str  # group/name
    git: BareRepo
    default_branch: str = "main"
    merge_method: str = "merge"  # merge, rebase_merge, ff
    only_allow_merge_if_pipeline_succeeds: bool = False
    mrs: dict[int, GlMergeRequest] = field(default_factory=dict)
    notes: list[GlNote] = field(default_factory=list)
    pipelines: list[GlPipeline] = field(default_factory=list)
    approvals: dict[int, list[str]] = field(default_factory=dict)


class FakeGitLab(FakeScm):
    """GitLab's REST API v4 over real bare repositories.

    ``add_project("group/app", bare)`` serves a project; ``add_token(token, username)`` lets a
    user in (as ``PRIVATE-TOKEN`` or ``Authorization: Bearer``).
    """

    name = "GitLab"

    def __init__(self) -> None:
        super().__init__()
        self.projects: dict[str, GlProject] = {}
        self._ids = iter(range(100, 10**9))
        #: The next N reads of a merge request report ``merge_status: checking``.
        self.recheck_pending_reads = 0
        #: How long an asynchronous rebase takes.
        self.rebase_delay = 0.05
        self.web_url = "https://gitlab.example"
        r = self.add_route
        # https://docs.gitlab.com/api/projects/#get-a-single-project
        r("GET", _PROJECT, "projects.get", self._get_project)
        # https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests
        r("GET", _PROJECT + r"/merge_requests", "mrs.list", self._list_mrs)
        # https://docs.gitlab.com/api/merge_requests/#create-mr
        r("POST", _PROJECT + r"/merge_requests", "mrs.create", self._create_mr)
        # https://docs.gitlab.com/api/merge_requests/#get-single-mr
        r("GET", _MR, "mrs.get", self._get_mr)
        # https://docs.gitlab.com/api/merge_requests/#update-mr
        r("PUT", _MR, "mrs.update", self._update_mr)
        # https://docs.gitlab.com/api/merge_requests/#merge-a-merge-request
        r("PUT", _MR + r"/merge", "mrs.merge", self._merge_mr)
        # https://docs.gitlab.com/api/merge_requests/#rebase-a-merge-request
        r("PUT", _MR + r"/rebase", "mrs.rebase", self._rebase_mr)
        # https://docs.gitlab.com/api/merge_requests/#list-merge-request-pipelines
        r("GET", _MR + r"/pipelines", "mrs.pipelines", self._list_pipelines)
        # https://docs.gitlab.com/api/merge_request_approvals/#for-a-merge-request
        r("GET", _MR + r"/approvals", "mrs.approvals", self._get_approvals)
        # https://docs.gitlab.com/api/notes/#list-all-merge-request-notes
        r("GET", _MR + r"/notes", "notes.list", self._list_notes)
        # https://docs.gitlab.com/api/notes/#create-new-merge-request-note
        r("POST", _MR + r"/notes", "notes.create", self._create_note)

    # -- test-side API ----------------------------------------------------------------------
    def add_project(self, path: str, bare: Path, *, merge_method: str = "merge") -> GlProject:
        project = GlProject(next(self._ids), path, BareRepo(bare), merge_method=merge_method)
        self.projects[path] = project
        return project

    def project(self, path: str) -> GlProject:
        return self.projects[path]

    def add_pipeline(self, path: str, iid: int, status: str, *, sha: str | None = None,
                     source: str = "merge_request_event") -> None:
        with self._lock:
            project = self.project(path)
            mr = project.mrs[iid]
            project.pipelines.append(GlPipeline(
                next(self._ids), iid, sha or mr.sha, f"refs/merge-requests/{iid}/head", status,
                source, time.time(),
            ))

    def approve(self, path: str, iid: int, username: str) -> None:
        with self._lock:
            self.project(path).approvals.setdefault(iid, []).append(username)

    def add_system_note(self, path: str, iid: int, body: str) -> None:
        with self._lock:
            self.project(path).notes.append(
                GlNote(next(self._ids), iid, "ghost", body, time.time(), system=True)
            )

    def rate_limit_next(self, *, route: str | None = None, retry_after: int | None = 1,
                        reset_in: int = 1) -> None:
        """A 429 as GitLab's rate limiter sends it, with ``Retry-After`` and ``RateLimit-*``:
        https://docs.gitlab.com/administration/settings/user_and_ip_rate_limits/#response-headers
        """
        reset = int(time.time()) + reset_in
        headers = {
            "RateLimit-Name": "throttle_authenticated_api", "RateLimit-Limit": "60",
            "RateLimit-Observed": "67", "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(reset),
            "RateLimit-ResetTime": time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                                 time.gmtime(reset)),
        }
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        self.fail_next(429, route=route, headers=headers)

    # -- protocol ---------------------------------------------------------------------------
    def authenticate(self, request: Request) -> str | None:
        # https://docs.gitlab.com/api/rest/authentication/#personalprojectgroup-access-tokens
        token = request.header("PRIVATE-TOKEN")
        if token is None:
            scheme, _, value = (request.header("Authorization") or "").partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else None
        if not token:
            return None
        with self._meta:
            return self.tokens.get(token)

    def error(self, status: int, message: str | None = None) -> Reply:
        # https://docs.gitlab.com/api/rest/troubleshooting/#status-codes
        if status == 429:
            return Reply(429, message or "Retry later\n")
        if status == 400 and message is None:
            return Reply(400, {"error": "400 Bad request"})
        words = {401: "Unauthorized", 403: "Forbidden", 404: "Not found",
                 405: "Method Not Allowed", 409: "Conflict", 422: "Unprocessable Entity",
                 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        return Reply(status, {"message": message or f"{status} {words.get(status, 'Error')}"})

    def fault_reply(self, fault: Fault, request: Request) -> Reply:
        reply = super().fault_reply(fault, request)
        if fault.status == 429:
            reply.body = fault.message or "Retry later\n"
        return reply

    # -- rendering --------------------------------------------------------------------------
    def _user(self, username: str) -> dict[str, Any]:
        return {"id": abs(hash(username)) % 10**6, "username": username,
                "name": username.replace("-", " ").title(), "state": "active",
                "avatar_url": None, "web_url": f"{self.web_url}/{username}"}

    def _refresh(self, project: GlProject, mr: GlMergeRequest) -> None:
        """An open MR follows its source branch."""
        if mr.state == "opened" and not mr.rebase_in_progress:
            sha = project.git.branch(mr.source_branch)
            if sha is not None and sha != mr.sha:
                mr.sha, mr.updated_at = sha, time.time()

    def _status(self, project: GlProject, mr: GlMergeRequest) -> tuple[str, str, bool]:
        """(merge_status, detailed_merge_status, has_conflicts)."""
        if mr.state != "opened":
            return "can_be_merged" if mr.state == "merged" else "cannot_be_merged", \
                "not_open", False
        if self.recheck_pending_reads > 0:
            self.recheck_pending_reads -= 1
            return "checking", "checking", False
        target = project.git.branch(mr.target_branch)
        if target is None:
            return "cannot_be_merged", "broken_status", False
        if not project.git.merge_tree(target, mr.sha).clean:
            return "cannot_be_merged", "conflict", True
        if mr.draft:
            return "can_be_merged", "draft_status", False
        if project.merge_method != "merge" and not project.git.is_ancestor(target, mr.sha):
            return "can_be_merged", "need_rebase", False
        if project.only_allow_merge_if_pipeline_succeeds:
            head = self._head_pipeline(project, mr)
            if head is None or head.status != "success":
                return "can_be_merged", "ci_must_pass", False
        return "can_be_merged", "mergeable", False

    @staticmethod
    def _head_pipeline(project: GlProject, mr: GlMergeRequest) -> GlPipeline | None:
        mine = [p for p in project.pipelines if p.iid == mr.iid and p.sha == mr.sha]
        return mine[-1] if mine else None

    def _pipeline_json(self, project: GlProject, p: GlPipeline) -> dict[str, Any]:
        return {"id": p.id, "iid": p.id, "project_id": project.id, "sha": p.sha, "ref": p.ref,
                "status": p.status, "source": p.source, "created_at": iso(p.created_at),
                "updated_at": iso(p.created_at),
                "web_url": f"{self.web_url}/{project.path}/-/pipelines/{p.id}"}

    def _mr_json(self, project: GlProject, mr: GlMergeRequest, *, single: bool,
                 request: Request | None = None) -> dict[str, Any]:
        self._refresh(project, mr)
        merge_status, detailed, conflicts = self._status(project, mr)
        out: dict[str, Any] = {
            "id": mr.id, "iid": mr.iid, "project_id": project.id, "title": mr.title,
            "description": mr.description, "state": mr.state,
            "created_at": iso(mr.created_at), "updated_at": iso(mr.updated_at),
            "merged_by": self._user(mr.merged_by) if mr.merged_by else None,
            "merge_user": self._user(mr.merged_by) if mr.merged_by else None,
            "merged_at": iso(mr.merged_at) if mr.merged_at else None,
            "closed_by": None, "closed_at": iso(mr.closed_at) if mr.closed_at else None,
            "target_branch": mr.target_branch, "source_branch": mr.source_branch,
            "user_notes_count": sum(1 for n in project.notes if n.iid == mr.iid),
            "upvotes": 0, "downvotes": 0, "author": self._user(mr.author),
            "assignees": [], "assignee": None, "reviewers": [],
            "source_project_id": project.id, "target_project_id": project.id,
            "labels": list(mr.labels), "draft": mr.draft, "work_in_progress": mr.draft,
            "milestone": None, "merge_when_pipeline_succeeds": False,
            "merge_status": merge_status, "detailed_merge_status": detailed,
            "has_conflicts": conflicts, "sha": mr.sha,
            "merge_commit_sha": mr.merge_commit_sha, "squash_commit_sha": mr.squash_commit_sha,
            "discussion_locked": None, "should_remove_source_branch": None,
            "force_remove_source_branch": False, "reference": f"!{mr.iid}",
            "references": {"short": f"!{mr.iid}", "relative": f"!{mr.iid}",
                           "full": f"{project.path}!{mr.iid}"},
            "web_url": f"{self.web_url}/{project.path}/-/merge_requests/{mr.iid}",
            "squash": mr.squash, "squash_on_merge": mr.squash,
            "blocking_discussions_resolved": True,
        }
        if single:
            target = project.git.branch(mr.target_branch)
            head = self._head_pipeline(project, mr)
            out.update({
                "merge_error": mr.merge_error, "user": {"can_merge": True},
                "head_pipeline": self._pipeline_json(project, head) if head else None,
                "diff_refs": {
                    "base_sha": project.git.merge_base(target, mr.sha) if target else None,
                    "head_sha": mr.sha, "start_sha": target,
                },
            })
            if request is not None and flag(request, "include_rebase_in_progress"):
                out["rebase_in_progress"] = mr.rebase_in_progress
        return out

    # -- lookups ----------------------------------------------------------------------------
    def _project_of(self, request: Request) -> GlProject | Reply:
        ident = unquote(request.params["project"])
        for project in self.projects.values():
            if ident in (project.path, str(project.id)):
                return project
        return self.error(404, "404 Project Not Found")

    def _mr_of(self, request: Request) -> tuple[GlProject, GlMergeRequest] | Reply:
        project = self._project_of(request)
        if isinstance(project, Reply):
            return project
        mr = project.mrs.get(int(request.params["iid"]))
        return (project, mr) if mr is not None else self.error(404, "404 Not found")

    # -- routes -----------------------------------------------------------------------------
    def _get_project(self, request: Request) -> Reply:
        project = self._project_of(request)
        if isinstance(project, Reply):
            return project
        return Reply(200, {
            "id": project.id, "path_with_namespace": project.path,
            "name": project.path.rsplit("/", 1)[-1], "default_branch": project.default_branch,
            "web_url": f"{self.web_url}/{project.path}", "merge_method": project.merge_method,
            "only_allow_merge_if_pipeline_succeeds":
                project.only_allow_merge_if_pipeline_succeeds,
        })

    def _list_mrs(self, request: Request) -> Reply:
        project = self._project_of(request)
        if isinstance(project, Reply):
            return project
        state = request.arg("state") or "all"
        if state not in ("opened", "closed", "locked", "merged", "all"):
            return Reply(400, {"error": "state does not have a valid value"})
        mrs = [m for m in project.mrs.values() if state == "all" or m.state == state]
        for key in ("source_branch", "target_branch"):
            value = request.arg(key)
            if value:
                mrs = [m for m in mrs if getattr(m, key) == value]
        wanted = [s for s in (request.arg("labels") or "").split(",") if s]
        mrs = [m for m in mrs if all(w in m.labels for w in wanted)]
        order = "updated_at" if request.arg("order_by") == "updated_at" else "created_at"
        mrs.sort(key=lambda m: (getattr(m, order), m.iid),
                 reverse=(request.arg("sort") or "desc") == "desc")
        page, headers = self.paginate(request, mrs, default=20, gitlab=True)
        return Reply(200, [self._mr_json(project, m, single=False) for m in page], headers)

    def _create_mr(self, request: Request) -> Reply:
        project = self._project_of(request)
        if isinstance(project, Reply):
            return project
        missing = [k for k in ("source_branch", "target_branch", "title") if not request.arg(k)]
        if missing:
            return Reply(400, {"error": ", ".join(f"{k} is missing" for k in missing)})
        source, target = request.arg("source_branch") or "", request.arg("target_branch") or ""
        errors = []
        if source == target:
            errors.append("You can't use same project/branch for source and target")
        for kind, branch in (("Source", source), ("Target", target)):
            if project.git.branch(branch) is None:
                errors.append(f'{kind} branch "{branch}" does not exist')
        for m in project.mrs.values():
            if m.state == "opened" and m.source_branch == source and m.target_branch == target:
                errors.append(
                    f"Another open merge request already exists for this source branch: "
                    f"!{m.iid}"
                )
        if errors:  # validate_branches errors are answered with 409
            return Reply(409, {"message": errors})
        labels = request.body.get("labels") if isinstance(request.body, dict) else None
        if labels is None:
            labels = request.arg("labels") or ""
        if isinstance(labels, str):
            labels = [s.strip() for s in labels.split(",") if s.strip()]
        now = time.time()
        iid = max(project.mrs, default=0) + 1
        sha = project.git.branch(source)
        assert sha is not None
        mr = GlMergeRequest(
            iid=iid, id=next(self._ids), title=request.arg("title") or "",
            description=request.arg("description") or "", source_branch=source,
            target_branch=target, author=request.user or "ghost", sha=sha, created_at=now,
            updated_at=now, labels=list(dict.fromkeys(labels)),
            squash=flag(request, "squash"),
        )
        project.mrs[iid] = mr
        return Reply(201, self._mr_json(project, mr, single=True))

    def _get_mr(self, request: Request) -> Reply:
        found = self._mr_of(request)
        if isinstance(found, Reply):
            return found
        project, mr = found
        return Reply(200, self._mr_json(project, mr, single=True, request=request))

    def _update_mr(self, request: Request) -> Reply:
        found = self._mr_of(request)
        if isinstance(found, Reply):
            return found
        project, mr = found
        self._refresh(project, mr)
        event = request.arg("state_event")
        if event is not None:
            if event not in ("close", "reopen"):
                return Reply(400, {"error": "state_event does not have a valid value"})
            if mr.state != "merged":
                mr.state = "closed" if event == "close" else "opened"
                mr.closed_at = time.time() if event == "close" else None
        if request.arg("title") is not None:
            title = request.arg("title") or ""
            if not title.strip():
                return Reply(400, {"message": {"title": ["can't be blank"]}})
            mr.title = title
        if request.arg("description") is not None:
            mr.description = request.arg("description") or ""
        add = request.arg("add_labels")
        if add:
            mr.labels += [s for s in add.split(",") if s and s not in mr.labels]
        mr.updated_at = time.time()
        return Reply(200, self._mr_json(project, mr, single=True))

    def _merge_mr(self, request: Request) -> Reply:
        found = self._mr_of(request)
        if isinstance(found, Reply):
            return found
        project, mr = found
        self._refresh(project, mr)
        if mr.state != "opened" or mr.draft or mr.rebase_in_progress:
            return self.error(405)
        sha = request.arg("sha")
        if sha and sha != mr.sha:
            return self.error(409, f"SHA does not match HEAD of source branch: {mr.sha}")
        _, detailed, _ = self._status(project, mr)
        if detailed == "ci_must_pass":
            return self.error(405)
        if detailed in ("conflict", "need_rebase", "broken_status"):
            return self.error(422, "Branch cannot be merged")
        target = project.git.branch(mr.target_branch)
        assert target is not None
        squash = flag(request, "squash") or mr.squash
        merger = request.user or "ghost"
        squashed = None
        if squash:
            parent = target if project.merge_method == "ff" else \
                project.git.merge_base(target, mr.sha)
            message = request.arg("squash_commit_message") or mr.title
            squashed = project.git.commit_tree(
                project.git.tree_of(mr.sha), [parent] if parent else [], message,
                project.git.author_of(mr.sha), GITLAB_COMMITTER,
            )
        head = squashed or mr.sha
        merge_commit = None
        if project.merge_method == "ff":
            new = head
        else:
            tree = project.git.merge_tree(target, head)
            message = request.arg("merge_commit_message") or (
                f"Merge branch '{mr.source_branch}' into '{mr.target_branch}'\n\n{mr.title}\n\n"
                f"See merge request {project.path}!{mr.iid}"
            )
            new = merge_commit = project.git.commit_tree(
                tree.tree, [target, head], message, (merger, f"{merger}@example.com"),
                GITLAB_COMMITTER,
            )
        if not project.git.update_ref(f"refs/heads/{mr.target_branch}", new, target):
            return self.error(409, "Failed to merge: the target branch moved")
        now = time.time()
        mr.state, mr.merged_at, mr.merged_by, mr.updated_at = "merged", now, merger, now
        mr.merge_commit_sha, mr.squash_commit_sha, mr.squash = merge_commit, squashed, squash
        return Reply(200, self._mr_json(project, mr, single=True))

    def _rebase_mr(self, request: Request) -> Reply:
        found = self._mr_of(request)
        if isinstance(found, Reply):
            return found
        project, mr = found
        if mr.state != "opened":
            return self.error(403)
        if mr.rebase_in_progress:
            return self.error(409, "Rebase in progress")
        self._refresh(project, mr)
        mr.rebase_in_progress, mr.merge_error = True, None
        threading.Thread(target=self._rebase_later, args=(project, mr), daemon=True).start()
        return Reply(202, {"rebase_in_progress": True})

    def _rebase_later(self, project: GlProject, mr: GlMergeRequest) -> None:
        time.sleep(self.rebase_delay)
        with self._lock:
            try:
                target = project.git.branch(mr.target_branch)
                old = mr.sha
                new = project.git.rebase(target, old, GITLAB_COMMITTER) if target else None
                if new is None:
                    mr.merge_error = ("Rebase failed: Rebase locally, resolve all conflicts, "
                                      "then push the branch.")
                elif new != old:
                    if project.git.update_ref(f"refs/heads/{mr.source_branch}", new, old):
                        mr.sha = new
                    else:
                        mr.merge_error = "Rebase failed: the source branch moved"
            finally:
                mr.rebase_in_progress = False
                mr.updated_at = time.time()

    def _list_pipelines(self, request: Request) -> Reply:
        found = self._mr_of(request)
        if isinstance(found, Reply):
            return found
        project, mr = found
        mine = sorted((p for p in project.pipelines if p.iid == mr.iid),
                      key=lambda p: p.id, reverse=True)
        page, headers = self.paginate(request, mine, default=20, gitlab=True)
        return Reply(200, [self._pipeline_json(project, p) for p in page], headers)

    def _get_approvals(self, request: Request) -> Reply:
        found = self._mr_of(request)
        if isinstance(found, Reply):
            return found
        project, mr = found
        approvers = project.approvals.get(mr.iid, [])
        return Reply(200, {
            "id": mr.id, "iid": mr.iid, "project_id": project.id, "title": mr.title,
            "description": mr.description, "state": mr.state,
            "created_at": iso(mr.created_at), "updated_at": iso(mr.updated_at),
            "merge_status": "can_be_merged", "approved": bool(approvers),
            "approvals_required": 0, "approvals_left": 0,
            "approved_by": [{"user": self._user(u)} for u in approvers],
        })

    def _note_json(self, project: GlProject, n: GlNote) -> dict[str, Any]:
        mr = project.mrs[n.iid]
        return {"id": n.id, "type": None, "body": n.body, "attachment": None,
                "author": self._user(n.author), "created_at": iso(n.created_at),
                "updated_at": iso(n.created_at), "system": n.system, "noteable_id": mr.id,
                "noteable_type": "MergeRequest", "noteable_iid": mr.iid,
                "resolvable": False, "confidential": False, "internal": False}

    def _list_notes(self, request: Request) -> Reply:
        found = self._mr_of(request)
        if isinstance(found, Reply):
            return found
        project, mr = found
        notes = [n for n in project.notes if n.iid == mr.iid]
        notes.sort(key=lambda n: (n.created_at, n.id),
                   reverse=(request.arg("sort") or "desc") == "desc")
        page, headers = self.paginate(request, notes, default=20, gitlab=True)
        return Reply(200, [self._note_json(project, n) for n in page], headers)

    def _create_note(self, request: Request) -> Reply:
        found = self._mr_of(request)
        if isinstance(found, Reply):
            return found
        project, mr = found
        body = request.arg("body")
        if not body:
            return Reply(400, {"error": "body is missing"})
        note = GlNote(next(self._ids), mr.iid, request.user or "ghost", body, time.time())
        project.notes.append(note)
        return Reply(201, self._note_json(project, note))


def project_id(path: str) -> str:
    """A project path as GitLab wants it in a URL: ``group%2Fapp``."""
    return quote(path, safe="")
