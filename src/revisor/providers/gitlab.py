"""GitLab merge requests as Revisor proposals, through python-gitlab.

Why this module exists: a source hosted on GitLab keeps its proposals as merge requests, where
its people review them and its pipelines run. A proposal's ``number`` is the MR's ``iid``,
``url`` its web page, ``external_id`` its instance-wide ``id``. Nothing is kept locally: the MRs
Revisor opens carry a label (``revisor``), which the list endpoint filters on, and a hidden
marker in their description naming the real author (the MR is opened by the token's account).

Configuration (the source's ``provider``)::

    provider:
      type: gitlab
      api_url: https://gitlab.example.com/api/v4
      project: group/repo                # default: the path of the source's URL
      token_env: GL_TOKEN                # read at every use, so a rotated token just works
      auth: private                      # a PRIVATE-TOKEN header; oauth: Authorization: Bearer
      label: revisor
      timeout: 30                        # seconds per request
      max_retries: 3                     # for 5xx, timeouts and 429s
      max_wait: 60                       # the longest rate-limit wait sat out in-line
      per_page: 100
      poll_interval: 1                   # while GitLab checks mergeability or rebases
      rebase_timeout: 120

Retries are python-gitlab's own: 429 answers wait for ``Retry-After`` (or ``RateLimit-Reset``)
and are retried, 5xx answers and timeouts are retried with exponential backoff — except for the
requests that may have done something before failing (creating an MR, merging, rebasing,
posting a note), which are never repeated blindly: :meth:`GitLabProvider.open` looks the MR up by
its source branch before trying again, :meth:`GitLabProvider.merge` reads the MR back. A
rate-limit wait longer than ``max_wait`` is not sat out (a response hook on the session stops
it) and becomes :class:`~revisor.errors.RemoteUnavailable` with ``retry_after``.

Errors are converted once (:meth:`GitLabProvider._error`), keeping GitLab's message: 401/403 →
``NotAllowed``, 404 → ``ProposalNotFound``/``NotFound``, 405/406/409/422 on merge →
``MergeConflict`` (the conflicting paths computed from the source's mirror) or ``Conflict``,
400/422 elsewhere → ``InvalidInput``, 429/5xx/timeouts → ``RemoteUnavailable``. Texts taken from
responses pass through :func:`~revisor.store.urls.redact` with the token's value.

Merge methods: ``merge`` and ``squash`` are GitLab's merge (``squash: true`` for the latter) with
the head read as the lease (``sha``); ``rebase`` is GitLab's rebase endpoint (the source branch
is rewritten on the server), waited for, then a merge with the new head as the lease. What the
target's history looks like after that is the project's merge method (merge commit,
semi-linear, fast-forward), as GitLab's own button does.
"""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import gitlab
import requests
from gitlab.exceptions import GitlabError
from gitlab.v4.objects import Project

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

__all__ = ["GitLabProvider", "GitLabSettings", "make_gitlab_provider"]

log = logging.getLogger(__name__)

PROVIDER = "gitlab"
T = TypeVar("T")

# -- settings ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GitLabSettings:
    """The ``provider`` block of a GitLab source, validated."""

    api_url: str
    project: str
    token_env: str
    auth: str = "private"  # or "oauth"
    label: str = "revisor"
    timeout: float = 30.0
    max_retries: int = 3
    max_wait: float = 60.0
    per_page: int = 100
    mergeability_polls: int = 5
    poll_interval: float = 1.0
    rebase_timeout: float = 120.0

    @classmethod
    def from_source(cls, source: StoreSource) -> GitLabSettings:
        extra, where = common.provider_block(source)
        common.reject_unknown(sorted(extra), cls.__dataclass_fields__, where)
        if not extra.get("project"):
            project = common.remote_project(source)
            if "/" not in project:
                raise ConfigError("field required: the GitLab project as group/name",
                                  field=f"{where}.project")
            extra["project"] = project
        for key in ("api_url", "token_env"):
            if not extra.get(key):
                raise ConfigError("field required", field=f"{where}.{key}")
        for key, value in extra.items():
            common.check_type(value, str(cls.__dataclass_fields__[key].type), f"{where}.{key}")
        settings = cls(**extra)
        if settings.auth not in ("private", "oauth"):
            raise ConfigError("expected 'private' or 'oauth'", field=f"{where}.auth")
        if not settings.api_url.startswith(("https://", "http://")):
            raise ConfigError("expected an http(s) URL", field=f"{where}.api_url")
        return settings

    @property
    def base_url(self) -> str:
        """The instance's URL, as python-gitlab wants it (it adds ``/api/v4``)."""
        return self.api_url.rstrip("/").removesuffix("/api/v4")


# -- conversions ---------------------------------------------------------------------------------
def _text(message: object) -> str:
    """GitLab's error message, whatever shape it came in (a string, a list, field → list)."""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    if isinstance(message, list):
        return "; ".join(_text(m) for m in message)
    if isinstance(message, dict):
        return "; ".join(f"{k} {_text(v)}" for k, v in message.items())
    return str(message).strip()


def _time(value: object) -> datetime:
    if not isinstance(value, str) or not value:
        return datetime.now(UTC)
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


_PIPELINE_STATES = {
    "success": CheckState.SUCCESS,
    "failed": CheckState.FAILURE,
    "canceled": CheckState.NEUTRAL,
    "skipped": CheckState.NEUTRAL,
    "manual": CheckState.NEUTRAL,
}
_CHECKING = frozenset({"unchecked", "checking", "cannot_be_merged_recheck", "preparing",
                       "approvals_syncing"})
#: Requests that may have done something before failing: never repeated by python-gitlab.
_ONCE: dict[str, Any] = {"retry_transient_errors": False}


class GitLabProvider(Provider):
    """Merge requests of one GitLab project. Constructing it does no I/O."""

    name = PROVIDER

    def __init__(
        self, source: StoreSource, db: Database, audit: AuditLog, committer: Signature,
        settings: GitLabSettings | None = None, *, env: Mapping[str, str] | None = None,
    ) -> None:
        self.source = source
        self.db = db
        self.audit = audit
        self.committer = committer
        self.settings = settings or GitLabSettings.from_source(source)
        self._env = env if env is not None else source.store.env
        self._session = requests.Session()
        self._session.hooks["response"].append(self._rate_limit_guard)

    def __repr__(self) -> str:
        return f"GitLabProvider({self.source.name!r}, {self.settings.project!r})"

    # -- the client -----------------------------------------------------------------------------
    def _token(self) -> str:
        return read_secret(self._env, self.settings.token_env,
                           f"sources.{self.source.name}.provider.token_env")

    def _client(self) -> gitlab.Gitlab:
        """A client with the token as it is now (cheap: no I/O, the session is shared)."""
        token = self._token()
        s = self.settings
        return gitlab.Gitlab(
            url=s.base_url,
            private_token=None if s.auth == "oauth" else token,
            oauth_token=token if s.auth == "oauth" else None,
            timeout=s.timeout, per_page=s.per_page, retry_transient_errors=True,
            keep_base_url=True, session=self._session,
        )

    def _project(self) -> Project:
        return self._client().projects.get(self.settings.project, lazy=True)

    def _kw(self, **extra: Any) -> dict[str, Any]:
        return {"max_retries": self.settings.max_retries, **extra}

    def _rate_limit_guard(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Refuse to sit out a rate limit longer than ``max_wait`` (python-gitlab would)."""
        if response.status_code != 429:
            return
        wait: float | None = None
        after = response.headers.get("Retry-After", "")
        reset = response.headers.get("RateLimit-Reset", "")
        if after.isdigit():
            wait = float(after)
        elif reset.isdigit():
            wait = max(int(reset) - time.time(), 0.0)
        if wait is not None and wait > self.settings.max_wait:
            raise RemoteUnavailable(
                f"GitLab: rate limited for {wait:.0f}s (HTTP 429)", retry_after=wait,
                hint="GitLab's rate limit: try again later",
            )

    # -- errors, once ---------------------------------------------------------------------------
    def _secrets(self) -> list[str]:
        value = self._env.get(self.settings.token_env)
        return [value] if value else []

    def _error(self, exc: Exception, what: str, number: int | None = None) -> RevisorError:
        if isinstance(exc, RevisorError):
            return exc
        if isinstance(exc, GitlabError):
            status = exc.response_code or 0
            text = redact(f"GitLab: cannot {what}: {_text(exc.error_message)} (HTTP {status})",
                          self._secrets())
            if status in (401, 403):
                return NotAllowed(text, hint=f"check the token in ${self.settings.token_env} "
                                             f"and its access to {self.settings.project}")
            if status in (404, 410):
                if number is not None:
                    return common.proposal_not_found(self.source.name, number, text)
                return NotFound(text)
            if status in (405, 406, 409):
                return Conflict(text, hint="read the proposal again, then retry")
            if status in (400, 422):
                return InvalidInput(text)
            return RemoteUnavailable(text, hint="GitLab is failing: try again later")
        if isinstance(exc, requests.RequestException):
            kind = "timed out" if isinstance(exc, requests.Timeout) else "failed"
            return RemoteUnavailable(
                redact(f"GitLab: cannot {what}: the request {kind}: {exc}", self._secrets()),
                hint="GitLab is slow or unreachable: try again later",
            )
        raise exc

    def _call(self, what: str, fn: Callable[[], T], number: int | None = None) -> T:
        try:
            return fn()
        except (GitlabError, requests.RequestException) as exc:
            raise self._error(exc, what, number) from None

    # -- reading --------------------------------------------------------------------------------
    def _mr(self, number: int, **params: Any) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            mr = self._project().mergerequests.get(number, **self._kw(**params))
            return dict(mr.attributes)

        return self._call(f"read merge request !{number}", read, number)

    def _proposal(self, mr: Mapping[str, Any]) -> Proposal:
        description, who = common.unmark(mr.get("description"))
        state = mr.get("state")
        status = {"merged": ProposalStatus.MERGED, "closed": ProposalStatus.CLOSED}.get(
            str(state), ProposalStatus.OPEN)  # "opened", or "locked" while it merges
        author = mr.get("author") or {}
        name, email = who if who is not None else (str(author.get("username", "ghost")), "")
        merged = None
        if status is ProposalStatus.MERGED:
            merged = mr.get("merge_commit_sha") or mr.get("squash_commit_sha") or mr.get("sha")
        merge_status = mr.get("merge_status")
        mergeable = None
        if status is ProposalStatus.OPEN and merge_status not in _CHECKING:
            mergeable = merge_status == "can_be_merged" and not mr.get("has_conflicts")
        return Proposal(
            provider=PROVIDER, number=int(mr["iid"]), url=mr.get("web_url"),
            title=str(mr.get("title") or ""), description=description,
            author_name=name, author_email=email,
            source_branch=str(mr["source_branch"]), source_commit=ObjectId(str(mr["sha"])),
            target_branch=str(mr["target_branch"]), status=status,
            created_at=_time(mr.get("created_at")), updated_at=_time(mr.get("updated_at")),
            merged_commit=ObjectId(str(merged)) if merged else None,
            labels=tuple(str(label) for label in mr.get("labels") or ()),
            mergeable=mergeable, external_id=str(mr["id"]),
        )

    def get(self, number: int) -> Proposal:
        """The MR with its mergeability, the pipelines of its head commit and its approvals."""
        p = self._proposal(self._mr(number))
        return replace(p, checks=self._checks(number, p.source_commit),
                       reviews=self._reviews(number))

    def _checks(self, number: int, sha: str) -> tuple[Check, ...]:
        def read() -> builtins.list[dict[str, Any]]:
            mr = self._project().mergerequests.get(number, lazy=True)
            return [dict(p.attributes) for p in mr.pipelines.list(iterator=True, **self._kw())]

        pipelines = self._call(f"read the pipelines of !{number}", read, number)
        return tuple(
            Check(f"pipeline #{p['id']}", _PIPELINE_STATES.get(str(p.get("status")),
                                                                CheckState.PENDING),
                  p.get("web_url"))
            for p in pipelines if p.get("sha") == sha
        )

    def _reviews(self, number: int) -> tuple[Review, ...]:
        def read() -> dict[str, Any]:
            mr = self._project().mergerequests.get(number, lazy=True)
            return dict(mr.approvals.get(**self._kw()).attributes)

        approvals = self._call(f"read the approvals of !{number}", read, number)
        return tuple(
            Review(str((a.get("user") or {}).get("username", "ghost")), True, label="approved")
            for a in approvals.get("approved_by") or ()
        )

    def _find(self, branch: str, state: str) -> dict[str, Any] | None:
        def first() -> dict[str, Any] | None:
            mrs = self._project().mergerequests.list(
                state=state, source_branch=branch, order_by="created_at", sort="desc",
                iterator=True, **self._kw())
            for mr in mrs:
                return dict(mr.attributes)
            return None

        return self._call(f"look up the merge request of {branch!r}", first)

    def find_by_branch(self, source_branch: str) -> Proposal | None:
        """The newest MR from this branch, any status."""
        mr = self._find(source_branch, "all")
        return self._proposal(mr) if mr is not None else None

    def comments(self, number: int) -> builtins.list[Comment]:
        """Its notes, oldest first, without GitLab's system notes."""
        def read() -> builtins.list[dict[str, Any]]:
            mr = self._project().mergerequests.get(number, lazy=True)
            notes = mr.notes.list(sort="asc", order_by="created_at", iterator=True,
                                  **self._kw())
            return [dict(n.attributes) for n in notes]

        out = []
        for note in self._call(f"read the notes of !{number}", read, number):
            if note.get("system"):
                continue
            text, who = common.unmark(note.get("body"))
            author = note.get("author") or {}
            name, email = who if who is not None else (str(author.get("username", "ghost")), "")
            out.append(Comment(int(note["id"]), name, email, text, _time(note.get("created_at"))))
        return out

    # -- opening --------------------------------------------------------------------------------
    def open(self, request: ProposalRequest) -> Proposal:
        """Open an MR for a pushed branch, or return the one already open for it.

        A create that failed with 5xx or timed out is followed by a look-up by source branch
        before any retry, so an MR GitLab created despite the error is never duplicated.
        """
        common.check_branches(request, hint="push the change to its own branch first")
        labels = list(dict.fromkeys((self.settings.label, *request.labels)))
        existing = self._find(request.source_branch, "opened")
        if existing is not None:
            return self._labelled(existing, labels)
        data = {
            "source_branch": request.source_branch, "target_branch": request.target_branch,
            "title": request.title, "description": common.mark(request.description, request.author),
            "labels": labels, "remove_source_branch": False,
        }
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            try:
                mr = self._project().mergerequests.create(data, **self._kw(**_ONCE))
            except (GitlabError, requests.RequestException) as exc:
                error = self._error(exc, f"open a merge request from {request.source_branch!r}")
                retryable = isinstance(error, RemoteUnavailable)
                exists = isinstance(exc, GitlabError) and exc.response_code == 409
                if not retryable and not exists:
                    raise error from None
                # GitLab may have created it before failing (or it exists already: 409).
                found = self._find(request.source_branch, "opened")
                if found is not None:
                    log.info("%s: merge request !%s found for %s after: %s", self.source.name,
                             found["iid"], request.source_branch, error)
                    return self._opened(self._labelled(found, labels), request)
                if not retryable or attempt + 1 == attempts:
                    raise error from None
                wait = min(0.5 * 2**attempt, self.settings.max_wait)
                log.warning("%s: %s; retrying in %.1fs", self.source.name, error, wait)
                time.sleep(wait)
                continue
            return self._opened(self._proposal(mr.attributes), request)
        raise AssertionError("unreachable")

    def _labelled(self, mr: Mapping[str, Any], labels: builtins.list[str]) -> Proposal:
        p = self._proposal(mr)
        missing = [label for label in labels if label not in p.labels]
        if not missing:
            return p
        number = p.number
        updated = self._call(
            f"label merge request !{number}",  # idempotent: python-gitlab may repeat it
            lambda: self._project().mergerequests.update(
                number, {"add_labels": ",".join(missing)}, **self._kw()),
            number,
        )
        return self._proposal(updated)

    def _opened(self, p: Proposal, request: ProposalRequest) -> Proposal:
        common.record_proposal(
            self.audit, request.author, "proposal.open", self.source.name, p.number,
            after=p.source_commit,
            details={"provider": PROVIDER, "url": p.url, "branch": p.source_branch,
                     "target": p.target_branch, "title": p.title},
        )
        return p

    # -- listing --------------------------------------------------------------------------------
    def list(self, status: ProposalStatus | None = None) -> builtins.list[Proposal]:
        """The MRs carrying Revisor's label, newest first (the label is filtered by GitLab)."""
        state = {None: "all", ProposalStatus.OPEN: "opened", ProposalStatus.MERGED: "merged",
                 ProposalStatus.CLOSED: "closed"}[status]

        def read() -> builtins.list[dict[str, Any]]:
            mrs = self._project().mergerequests.list(
                state=state, labels=[self.settings.label], order_by="created_at", sort="desc",
                iterator=True, **self._kw())
            return [dict(mr.attributes) for mr in mrs]

        return [self._proposal(mr) for mr in self._call("list the merge requests", read)]

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
        """Change an open MR's title or description. A moved branch needs nothing here: GitLab
        follows the pushed branch (``source_commit`` is only compared with it)."""
        if title is not None and not title.strip():
            raise InvalidInput("a proposal needs a title")
        p = self._proposal(self._mr(number))
        if title is None and description is None:
            if source_commit is not None and p.source_commit != source_commit:
                log.info("%s: !%d is at %s, not yet at the pushed %s", self.source.name, number,
                         p.source_commit[:12], source_commit[:12])
            return p
        if p.status is not ProposalStatus.OPEN:
            raise InvalidState(f"proposal #{number}", p.status, "update")
        data: dict[str, str] = {}
        if title is not None:
            data["title"] = title
        if description is not None:
            data["description"] = common.mark(description, (p.author_name, p.author_email))
        updated = self._call(f"update merge request !{number}",
                             lambda: self._project().mergerequests.update(number, data,
                                                                          **self._kw()),
                             number)
        after = self._proposal(updated)
        common.record_proposal(
            self.audit, actor or self.committer, "proposal.update", self.source.name, number,
            before=p.source_commit, after=after.source_commit,
            details={"provider": PROVIDER, "fields": sorted(data)},
        )
        return after

    def close(self, number: int, actor: Signature) -> Proposal:
        """Close an open MR; a closed one is returned unchanged, a merged one refused."""
        p = self._proposal(self._mr(number))
        if p.status is ProposalStatus.CLOSED:
            return p
        if p.status is ProposalStatus.MERGED:
            raise InvalidState(f"proposal #{number}", p.status, "close")
        updated = self._call(f"close merge request !{number}",
                             lambda: self._project().mergerequests.update(
                                 number, {"state_event": "close"}, **self._kw()),
                             number)
        common.record_proposal(
            self.audit, actor, "proposal.close", self.source.name, number,
            before=ProposalStatus.OPEN, after=ProposalStatus.CLOSED,
            details={"provider": PROVIDER},
        )
        return self._proposal(updated)

    def comment(self, number: int, text: str, actor: Signature) -> None:
        """Add a note (a POST: not repeated after a 5xx, which may have posted it)."""
        if not text.strip():
            raise InvalidInput("a comment needs text")

        def post() -> int:
            mr = self._project().mergerequests.get(number, lazy=True)
            note = mr.notes.create({"body": common.mark(text, actor)}, **self._kw(**_ONCE))
            return int(note.attributes["id"])

        note_id = self._call(f"comment on !{number}", post, number)
        common.record_proposal(
            self.audit, actor, "proposal.comment", self.source.name, number,
            details={"provider": PROVIDER, "comment": note_id, "length": len(text)},
        )

    # -- merging --------------------------------------------------------------------------------
    def mergeability(self, number: int) -> Mergeability:
        """GitLab's ``merge_status``/``has_conflicts``, rechecked while GitLab computes them;
        the conflicting paths (which GitLab does not list) come from the source's mirror."""
        mr = self._mr(number, with_merge_status_recheck="true")
        for _ in range(self.settings.mergeability_polls):
            if mr.get("merge_status") not in _CHECKING or mr.get("state") != "opened":
                break
            time.sleep(self.settings.poll_interval)
            mr = self._mr(number)
        refs = mr.get("diff_refs") or {}
        target = ObjectId(str(refs["start_sha"])) if refs.get("start_sha") else None
        head = ObjectId(str(mr["sha"]))
        local = self._local_merge(target, head) if target else None
        status = mr.get("merge_status")
        if status in _CHECKING or mr.get("state") != "opened":
            if local is None:
                return Mergeability(False, (), target)
            return Mergeability(local.clean, local.conflicts, target)
        clean = status == "can_be_merged" and not mr.get("has_conflicts") and \
            mr.get("detailed_merge_status") != "conflict"
        if clean:
            return Mergeability(True, (), target)
        return Mergeability(False, local.conflicts if local else (), target)

    def _local_merge(self, target: ObjectId, head: ObjectId) -> MergeResult | None:
        return common.local_merge(self.source, target, head, log)

    def merge(self, number: int, method: MergeMethod, actor: Signature) -> Proposal:
        """Merge with GitLab (see the module's docstring for the methods), the head as read
        being the lease: :class:`Conflict` if the branch moved meanwhile, :class:`MergeConflict`
        if git cannot merge it, :class:`InvalidState` if it is not open."""
        method = MergeMethod(method)
        mr = self._mr(number)
        p = self._proposal(mr)
        if p.status is not ProposalStatus.OPEN:
            raise InvalidState(f"proposal #{number}", p.status, "merge")
        target_before = str((mr.get("diff_refs") or {}).get("start_sha") or "")
        sha = self._rebase(number, p) if method is MergeMethod.REBASE else p.source_commit
        payload: dict[str, Any] = {"sha": sha, "squash": method is MergeMethod.SQUASH,
                                   "should_remove_source_branch": False}
        if method is MergeMethod.SQUASH:
            payload["squash_commit_message"] = "\n\n".join(
                t for t in (p.title.strip(), p.description.strip()) if t)
        try:
            client = self._client()
            path = f"{client.projects.get(self.settings.project, lazy=True).mergerequests.path}"
            merged = client.http_put(f"{path}/{number}/merge", post_data=payload,
                                     **self._kw(**_ONCE))
            assert isinstance(merged, dict)
        except (GitlabError, requests.RequestException) as exc:
            error = self._error(exc, f"merge merge request !{number}", number)
            code = exc.response_code if isinstance(exc, GitlabError) else None
            if code in (405, 406, 422):
                local = self._local_merge(ObjectId(target_before), ObjectId(sha)) \
                    if target_before else None
                if local is not None and not local.clean:
                    raise MergeConflict(error.message, local.conflicts) from None
                raise Conflict(error.message, hint="GitLab refuses to merge it now: see its "
                               "merge checks") from None
            if code == 409:
                raise Conflict(error.message, hint="the branch moved: read the proposal again "
                               "and merge again") from None
            if not isinstance(error, RemoteUnavailable):
                raise error from None
            merged = self._mr(number)  # a 5xx or a timeout: did it merge? ask, never repeat
            if merged.get("state") != "merged":
                raise error from None
        after = replace(self._proposal(merged), merge_method=method)
        common.record_proposal(
            self.audit, actor, "proposal.merge", self.source.name, number,
            before=target_before or None, after=after.merged_commit,
            details={"provider": PROVIDER, "method": method.value, "source_commit": sha,
                     "branch": p.source_branch, "target": p.target_branch},
        )
        common.refresh_quietly(self.source, log, "a merge")
        return after

    def _rebase(self, number: int, p: Proposal) -> str:
        """Rebase the MR's source branch on GitLab and wait for it; its new head."""
        failed: RemoteUnavailable | None = None
        try:
            client = self._client()
            path = f"{client.projects.get(self.settings.project, lazy=True).mergerequests.path}"
            client.http_put(f"{path}/{number}/rebase", post_data={}, **self._kw(**_ONCE))
        except (GitlabError, requests.RequestException) as exc:
            error = self._error(exc, f"rebase merge request !{number}", number)
            if not isinstance(error, RemoteUnavailable):
                raise error from None
            log.warning("%s: %s; waiting for a rebase that may have started", self.source.name,
                        error)
            failed = error
        deadline = time.monotonic() + self.settings.rebase_timeout
        while True:
            mr = self._mr(number, include_rebase_in_progress="true")
            if not mr.get("rebase_in_progress"):
                break
            if time.monotonic() > deadline:
                raise RemoteUnavailable(f"GitLab: the rebase of !{number} is still running",
                                        hint="merge again later")
            time.sleep(self.settings.poll_interval)
        if mr.get("merge_error"):
            message = redact(f"GitLab: cannot rebase merge request !{number}: "
                             f"{_text(mr['merge_error'])}", self._secrets())
            refs = mr.get("diff_refs") or {}
            local = self._local_merge(ObjectId(str(refs["start_sha"])), p.source_commit) \
                if refs.get("start_sha") else None
            if local is not None and not local.clean:
                raise MergeConflict(message, local.conflicts)
            raise Conflict(message, hint="rebase the branch, push it, and merge again")
        if failed is not None and mr.get("sha") == p.source_commit:
            raise failed  # the rebase did not happen: merging now would not be a rebase
        return str(mr["sha"])


def make_gitlab_provider(
    source: StoreSource, db: Database, audit: AuditLog, committer: Signature
) -> Provider:
    """The factory's entry for ``provider.type: gitlab``."""
    return GitLabProvider(source, db, audit, committer)
