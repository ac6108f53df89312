"""Gitea: proposals are pull requests, over Gitea's REST API v1.

Why this module exists: sources hosted on Gitea (or Forgejo, which keeps the same API) propose
their changes as pull requests there, so reviewers use the tool they already have. Gitea has no
well-kept Python client; this speaks the documented endpoints through
:class:`~revisor.providers.http.HttpClient`.

How Revisor's model maps onto Gitea:

- **Which pull requests are Revisor's.** Every body Revisor writes ends with a hidden marker,
  ``<!-- revisor:proposal {"author": …, "email": …} -->`` (invisible when Gitea renders the
  Markdown). :meth:`list` and :meth:`find_by_branch` keep only marked pull requests, so they are
  found again after a restart with no local state. The marker also carries the real author: the
  pull request itself is opened by the token's account.
- **Opening is idempotent and never duplicates.** An open, marked pull request for the branch is
  returned as is. Creating is a non-idempotent ``POST``: after a 5xx or a timeout, Revisor looks
  for the pull request before trying again (:func:`~revisor.providers.http.at_most_once`); a 409
  "already exists" is answered the same way.
- **Updating** moves the pull request's branch to the new commit with a lease (the pull request
  follows its branch) and edits title and body (keeping the marker).
- **Merging** sends ``Do: merge|squash|rebase`` with ``head_commit_id`` — the head Revisor read —
  as a lease: if the branch moved meanwhile Gitea refuses (409), and nothing is merged unseen.
  A refusal is explained from state, not from Gitea's wording: merged meanwhile (success), the
  branch moved (:class:`~revisor.errors.Conflict`), or the merge conflicts
  (:class:`~revisor.providers.base.MergeConflict` with the paths, computed locally).
- **Checks** are the head commit's statuses; **reviews** the pull request's reviews (the latest
  verdict per reviewer). Comments carry a hidden marker too (the real author and a nonce, so a
  comment whose answer was lost is found instead of posted twice).

Configuration::

    provider: {type: gitea, api_url: https://gitea.example.com/api/v1, repository: org/repo,
               token_env: GITEA_TOKEN, timeout: 30s}
"""

from __future__ import annotations

import builtins
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from revisor.db.audit import AuditLog
from revisor.db.database import Database
from revisor.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    InvalidState,
    NotFound,
    RemoteUnavailable,
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
from revisor.providers.http import (
    HttpClient,
    HttpPolicy,
    TokenAuth,
    at_most_once,
    json_message,
    read_secret,
)
from revisor.store.mirror import PushUpdate
from revisor.store.store import StoreSource
from revisor.vcs import ObjectId, Signature

__all__ = ["GiteaProvider", "GiteaSettings", "make_gitea_provider"]

log = logging.getLogger(__name__)

PROVIDER = "gitea"
_PROPOSAL_MARKER = re.compile(r"\s*<!-- revisor:proposal (\{.*?\}) -->\s*\Z", re.S)
_COMMENT_MARKER = re.compile(r"\s*<!-- revisor:comment (\{.*?\}) -->\s*\Z", re.S)
_LABEL_COLOR = "#c5def5"
_STATUS_STATES = {
    "success": CheckState.SUCCESS,
    "pending": CheckState.PENDING,
    "failure": CheckState.FAILURE,
    "error": CheckState.FAILURE,
    "warning": CheckState.NEUTRAL,
}


@dataclass(frozen=True)
class GiteaSettings:
    """A source's ``provider`` block for Gitea, validated."""

    api_url: str
    owner: str
    repo: str
    token_env: str
    timeout: float | None = None

    @classmethod
    def from_source(cls, source: StoreSource) -> GiteaSettings:
        extra, where = common.provider_block(source)
        common.reject_unknown(extra, ("api_url", "repository", "token_env", "timeout"), where)
        values = common.required_strings(extra, ("api_url", "repository", "token_env"), where)
        if not values["api_url"].startswith(("https://", "http://")):
            raise ConfigError("must be an http(s) URL", field=f"{where}.api_url")
        owner, _, repo = values["repository"].partition("/")
        if not owner or not repo or "/" in repo:
            raise ConfigError("must be 'owner/repo'", field=f"{where}.repository")
        return cls(values["api_url"], owner, repo, values["token_env"],
                   common.parse_timeout(extra, where))


def _time(value: object) -> datetime:
    if not isinstance(value, str) or not value:
        return datetime.fromtimestamp(0, UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _split(body: str, marker: re.Pattern[str]) -> tuple[str, dict[str, Any] | None]:
    """``body`` without Revisor's trailing marker, and the marker's data (None: unmarked)."""
    m = marker.search(body)
    if m is None:
        return body, None
    try:
        data = json.loads(m.group(1))
    except ValueError:
        return body, None
    return body[: m.start()], data if isinstance(data, dict) else None


def _marked(text: str, kind: str, data: Mapping[str, Any]) -> str:
    blob = json.dumps(dict(data), ensure_ascii=True, sort_keys=True).replace("--", "\\u002d-")
    return f"{text.rstrip()}\n\n<!-- revisor:{kind} {blob} -->"


class GiteaProvider(Provider):
    """Pull requests of one Gitea repository. Constructing it does no I/O."""

    name = PROVIDER

    def __init__(
        self,
        source: StoreSource,
        db: Database,
        audit: AuditLog,
        committer: Signature,
        *,
        settings: GiteaSettings | None = None,
        policy: HttpPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self.db = db
        self.audit = audit
        self.committer = committer
        self.settings = settings or GiteaSettings.from_source(source)
        self.policy = policy or HttpPolicy.with_read_timeout(self.settings.timeout)
        self._sleep = sleep
        s = self.settings
        self.http = HttpClient(
            s.api_url, service=f"Gitea {s.owner}/{s.repo}", auth=self._auth, policy=self.policy,
            message_of=json_message, transport=transport, sleep=sleep,
        )
        self._repo_path = f"repos/{quote(s.owner, safe='')}/{quote(s.repo, safe='')}"

    def __repr__(self) -> str:
        return f"GiteaProvider({self.source.name!r}, {self.settings.owner}/{self.settings.repo})"

    def _auth(self) -> TokenAuth:
        field = f"sources.{self.source.name}.provider.token_env"
        return TokenAuth(read_secret(self.source.store.env, self.settings.token_env, field))

    def _path(self, *parts: object) -> str:
        return "/".join([self._repo_path, *(str(p) for p in parts)])

    # -- reading ----------------------------------------------------------------------------------
    def _raw(self, number: int) -> dict[str, Any]:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoGetPullRequest
        try:
            pr = self.http.get_json(self._path("pulls", number))
        except NotFound as exc:
            raise common.proposal_not_found(self.source.name, number, exc.message) from None
        if not isinstance(pr, dict):
            raise RemoteUnavailable(f"Gitea: pull request #{number}: unexpected answer")
        return pr

    def _pulls(self, state: str) -> Iterator[dict[str, Any]]:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoListPullRequests
        for pr in self.http.paginate(self._path("pulls"), {"state": state}):
            if isinstance(pr, dict):
                yield pr

    def _find(self, branch: str, *, open_only: bool) -> dict[str, Any] | None:
        """Revisor's newest pull request from ``branch``."""
        found = [
            pr for pr in self._pulls("open" if open_only else "all")
            if (pr.get("head") or {}).get("ref") == branch
            and _split(pr.get("body") or "", _PROPOSAL_MARKER)[1] is not None
        ]
        return max(found, key=lambda pr: int(pr["number"]), default=None)

    def _proposal(
        self,
        pr: Mapping[str, Any],
        checks: tuple[Check, ...] = (),
        reviews: tuple[Review, ...] = (),
    ) -> Proposal:
        body, meta = _split(pr.get("body") or "", _PROPOSAL_MARKER)
        meta = meta or {}
        user = pr.get("user") or {}
        head, base = pr.get("head") or {}, pr.get("base") or {}
        if pr.get("merged"):
            status = ProposalStatus.MERGED
        elif pr.get("state") == "closed":
            status = ProposalStatus.CLOSED
        else:
            status = ProposalStatus.OPEN
        return Proposal(
            provider=PROVIDER,
            number=int(pr["number"]),
            url=pr.get("html_url"),
            title=pr.get("title") or "",
            description=body,
            author_name=str(meta.get("author") or user.get("full_name") or user.get("login", "")),
            author_email=str(meta.get("email") or user.get("email") or ""),
            source_branch=str(head.get("ref") or ""),
            source_commit=ObjectId(str(head.get("sha") or "")),
            target_branch=str(base.get("ref") or ""),
            status=status,
            created_at=_time(pr.get("created_at")),
            updated_at=_time(pr.get("updated_at")),
            merged_commit=ObjectId(pr["merge_commit_sha"]) if pr.get("merge_commit_sha") else None,
            labels=tuple(str(lb.get("name")) for lb in pr.get("labels") or () if lb.get("name")),
            mergeable=pr.get("mergeable") if status is ProposalStatus.OPEN else None,
            checks=checks,
            reviews=reviews,
            external_id=str(pr["id"]) if pr.get("id") is not None else None,
        )

    def _full(self, pr: Mapping[str, Any]) -> Proposal:
        """The proposal with its head commit's statuses and its reviews."""
        head_sha = (pr.get("head") or {}).get("sha")
        return self._proposal(pr, self._checks(head_sha) if head_sha else (),
                              self._reviews(int(pr["number"])))

    def _checks(self, sha: str) -> tuple[Check, ...]:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoGetCombinedStatusByRef
        try:
            combined = self.http.get_json(self._path("commits", sha, "status"))
        except NotFound:
            return ()
        latest: dict[str, Check] = {}
        for status in (combined or {}).get("statuses") or ():
            name = str(status.get("context") or "default")
            if name in latest:
                continue  # newest first: the first one of a context is its current state
            state = _STATUS_STATES.get(str(status.get("status") or status.get("state")),
                                       CheckState.NEUTRAL)
            latest[name] = Check(name, state, status.get("target_url") or None)
        return tuple(sorted(latest.values(), key=lambda c: c.name))

    def _reviews(self, number: int) -> tuple[Review, ...]:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoListPullReviews
        verdicts: dict[str, Review] = {}
        for review in self.http.paginate(self._path("pulls", number, "reviews")):
            state = review.get("state")
            if state not in ("APPROVED", "REQUEST_CHANGES") or review.get("dismissed"):
                continue
            who = (review.get("user") or {}).get("login") or "unknown"
            verdicts[who] = Review(who, approved=state == "APPROVED" and not review.get("stale"))
        return tuple(verdicts.values())

    def get(self, number: int) -> Proposal:
        return self._full(self._raw(number))

    def find_by_branch(self, source_branch: str) -> Proposal | None:
        pr = self._find(source_branch, open_only=False)
        return self._full(pr) if pr is not None else None

    def comments(self, number: int) -> builtins.list[Comment]:
        # https://docs.gitea.com/api/1.22/#tag/issue/operation/issueGetComments
        self._raw(number)
        out = []
        for c in self.http.paginate(self._path("issues", number, "comments")):
            text, meta = _split(c.get("body") or "", _COMMENT_MARKER)
            meta = meta or {}
            user = c.get("user") or {}
            out.append(Comment(
                id=int(c["id"]),
                author_name=str(meta.get("author") or user.get("full_name") or user.get("login")),
                author_email=str(meta.get("email") or user.get("email") or ""),
                text=text,
                created_at=_time(c.get("created_at")),
            ))
        return sorted(out, key=lambda c: (c.created_at, c.id))

    # -- opening ----------------------------------------------------------------------------------
    def open(self, request: ProposalRequest) -> Proposal:
        """Open a pull request for a pushed branch; Revisor's open one for the branch if there is
        one (moved to ``request.source_commit`` if needed)."""
        common.check_branches(request)
        if not request.title.strip():
            raise InvalidInput("a proposal needs a title")
        commit = self.source.resolve(request.source_commit)
        existing = self._find(request.source_branch, open_only=True)
        if existing is not None:
            if (existing.get("head") or {}).get("sha") != commit:
                return self.update(int(existing["number"]), source_commit=commit,
                                   actor=request.author)
            return self._full(existing)
        payload = {
            "title": request.title.strip(),
            "body": _marked(request.description, "proposal",
                            {"author": request.author.name, "email": request.author.email}),
            "head": request.source_branch,
            "base": request.target_branch,
            "labels": self._label_ids(request.labels),
        }

        def lookup() -> dict[str, Any] | None:
            return self._find(request.source_branch, open_only=True)

        def create() -> dict[str, Any]:
            # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoCreatePullRequest
            try:
                created = self.http.send_json("POST", self._path("pulls"), payload)
            except Conflict:  # 409: one exists for head and base — ours from a lost answer?
                found = lookup()
                if found is None:
                    raise
                return found
            if not isinstance(created, dict):
                raise RemoteUnavailable("Gitea: creating a pull request: unexpected answer")
            return created

        pr = at_most_once(create, lookup, policy=self.policy, sleep=self._sleep,
                          what=f"open a pull request for {request.source_branch}")
        number = int(pr["number"])
        common.record_proposal(
            self.audit, request.author, "proposal.open", self.source.name, number,
            after=commit,
            details={"provider": PROVIDER, "branch": request.source_branch,
                     "target": request.target_branch, "title": request.title, "url": pr.get(
                         "html_url")},
        )
        return self._full(pr)

    def _label_ids(self, names: tuple[str, ...]) -> builtins.list[int]:
        """The ids of the repository's labels with these names, creating missing ones."""
        if not names:
            return []

        def existing() -> dict[str, int]:
            # https://docs.gitea.com/api/1.22/#tag/issue/operation/issueListLabels
            return {str(lb["name"]): int(lb["id"]) for lb in self.http.paginate(
                self._path("labels"))}

        known = existing()
        ids = []
        for name in dict.fromkeys(names):
            if name not in known:
                def create(name: str = name) -> dict[str, Any]:
                    # https://docs.gitea.com/api/1.22/#tag/issue/operation/issueCreateLabel
                    made = self.http.send_json(
                        "POST", self._path("labels"), {"name": name, "color": _LABEL_COLOR}
                    )
                    return made if isinstance(made, dict) else {}

                def find(name: str = name) -> dict[str, Any] | None:
                    found = existing().get(name)
                    return {"id": found} if found is not None else None

                made = at_most_once(create, find, policy=self.policy, sleep=self._sleep,
                                    what=f"create label {name!r}")
                known[name] = int(made["id"])
            ids.append(known[name])
        return ids

    # -- changing ---------------------------------------------------------------------------------
    def update(
        self,
        number: int,
        *,
        title: str | None = None,
        description: str | None = None,
        source_commit: ObjectId | None = None,
        actor: Signature | None = None,
    ) -> Proposal:
        """Edit an open pull request's title or description, or move its branch to
        ``source_commit`` (with a lease on the head Gitea reported)."""
        pr = self._raw(number)
        current = self._proposal(pr)
        if current.status is not ProposalStatus.OPEN:
            raise InvalidState(f"proposal #{number}", current.status, "update")
        fields = []
        if source_commit is not None:
            commit = self.source.resolve(source_commit)
            if commit != current.source_commit:
                ref = f"refs/heads/{current.source_branch}"
                self.source.push([PushUpdate(ref, commit, current.source_commit)])
                fields.append("source_commit")
        edit: dict[str, Any] = {}
        if title is not None:
            if not title.strip():
                raise InvalidInput("a proposal needs a title")
            edit["title"] = title.strip()
        if description is not None:
            meta = _split(pr.get("body") or "", _PROPOSAL_MARKER)[1] or {
                "author": current.author_name, "email": current.author_email}
            edit["body"] = _marked(description, "proposal", meta)
        if edit:
            # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoEditPullRequest
            self.http.send_json("PATCH", self._path("pulls", number), edit)
            fields += sorted(edit)
        if fields:
            who = actor if actor is not None else self.committer
            common.record_proposal(
                self.audit, who, "proposal.update", self.source.name, number,
                before=current.source_commit, after=source_commit or current.source_commit,
                details={"provider": PROVIDER, "fields": fields},
            )
        return self.get(number)

    def close(self, number: int, actor: Signature) -> Proposal:
        """Close an open pull request; closing a closed one returns it unchanged."""
        current = self._proposal(self._raw(number))
        if current.status is ProposalStatus.CLOSED:
            return self.get(number)
        if current.status is ProposalStatus.MERGED:
            raise InvalidState(f"proposal #{number}", current.status, "close")
        self.http.send_json("PATCH", self._path("pulls", number), {"state": "closed"})
        common.record_proposal(
            self.audit, actor, "proposal.close", self.source.name, number,
            before=ProposalStatus.OPEN, after=ProposalStatus.CLOSED,
            details={"provider": PROVIDER},
        )
        return self.get(number)

    def comment(self, number: int, text: str, actor: Signature) -> None:
        """Comment on a pull request (exactly once, even when an answer is lost)."""
        if not text.strip():
            raise InvalidInput("a comment needs text")
        self._raw(number)
        nonce = uuid.uuid4().hex
        body = _marked(text, "comment", {"author": actor.name, "email": actor.email, "id": nonce})
        path = self._path("issues", number, "comments")

        def post() -> dict[str, Any]:
            # https://docs.gitea.com/api/1.22/#tag/issue/operation/issueCreateComment
            made = self.http.send_json("POST", path, {"body": body})
            return made if isinstance(made, dict) else {}

        def lookup() -> dict[str, Any] | None:
            for c in self.http.paginate(path):
                meta = _split(c.get("body") or "", _COMMENT_MARKER)[1]
                if meta is not None and meta.get("id") == nonce:
                    return dict(c)
            return None

        made = at_most_once(post, lookup, policy=self.policy, sleep=self._sleep,
                            what=f"comment on pull request #{number}")
        common.record_proposal(
            self.audit, actor, "proposal.comment", self.source.name, number,
            details={"provider": PROVIDER, "comment": made.get("id"), "length": len(text)},
        )

    # -- merging ----------------------------------------------------------------------------------
    def _merge_inputs(self, pr: Mapping[str, Any]) -> tuple[ObjectId, ObjectId]:
        """(target head, proposal head), both present locally (fetched if needed)."""
        base, head = pr.get("base") or {}, pr.get("head") or {}
        target = self.source.resolve(f"refs/heads/{base.get('ref')}", fresh=True)
        if base.get("sha") and base["sha"] != target:
            target = self.source.resolve(base["sha"])
        return target, self.source.resolve(str(head.get("sha")))

    def mergeability(self, number: int) -> Mergeability:
        """Gitea's verdict, with the conflicting paths computed locally."""
        pr = self._raw(number)
        target, commit = self._merge_inputs(pr)
        result = self.source.repository.merge(target, commit)
        clean = result.clean and pr.get("mergeable") is not False
        return Mergeability(clean, result.conflicts, target)

    def _is_merged(self, number: int) -> bool:
        # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoPullRequestIsMerged
        try:
            self.http.request("GET", self._path("pulls", number, "merge"))
        except NotFound:
            return False
        return True

    def merge(self, number: int, method: MergeMethod, actor: Signature) -> Proposal:
        """Merge an open pull request with ``method``, leased on the head commit Revisor read."""
        method = MergeMethod(method)
        pr = self._raw(number)
        current = self._proposal(pr)
        if current.status is not ProposalStatus.OPEN:
            raise InvalidState(f"proposal #{number}", current.status, "merge")
        expected = current.source_commit
        body = {"Do": method.value, "head_commit_id": expected}

        def attempt() -> bool:
            # https://docs.gitea.com/api/1.22/#tag/repository/operation/repoMergePullRequest
            try:
                self.http.request("POST", self._path("pulls", number, "merge"), json_body=body,
                                  retry=False)
            except Conflict as exc:  # 405 or 409
                self._explain_refusal(number, expected, exc)
            return True

        def lookup() -> bool | None:
            return True if self._is_merged(number) else None

        at_most_once(attempt, lookup, policy=self.policy, sleep=self._sleep,
                     what=f"merge pull request #{number}")
        common.refresh_quietly(self.source, log, "a merge", (RemoteUnavailable,))
        merged = replace(self.get(number), merge_method=method)
        common.record_proposal(
            self.audit, actor, "proposal.merge", self.source.name, number,
            before=expected, after=merged.merged_commit,
            details={"provider": PROVIDER, "method": method.value,
                     "branch": current.source_branch, "target": current.target_branch},
        )
        return merged

    def _explain_refusal(self, number: int, expected: ObjectId, exc: Conflict) -> None:
        """Gitea refused to merge: decide why from the pull request's state. Returns when it is
        merged after all (by a concurrent call); raises otherwise."""
        pr = self._raw(number)
        now = self._proposal(pr)
        if now.status is ProposalStatus.MERGED:
            return
        if now.status is ProposalStatus.CLOSED:
            raise InvalidState(f"proposal #{number}", now.status, "merge") from exc
        if now.source_commit != expected:
            raise Conflict(
                f"{exc.message} (the branch moved from {expected[:12]} to "
                f"{now.source_commit[:12]} since it was read)",
                hint="read the proposal again and merge what it proposes now",
            ) from exc
        target, commit = self._merge_inputs(pr)
        result = self.source.repository.merge(target, commit)
        if not result.clean:
            raise MergeConflict(exc.message, result.conflicts) from exc
        raise exc

    # ``list`` last: inside the class body its name would shadow the builtin in annotations.
    def list(self, status: ProposalStatus | None = None) -> builtins.list[Proposal]:
        """Revisor's pull requests (by their marker), newest first; without checks and reviews
        (``get`` has those)."""
        state = {None: "all", ProposalStatus.OPEN: "open"}.get(status, "closed")
        found = [
            self._proposal(pr) for pr in self._pulls(state)
            if _split(pr.get("body") or "", _PROPOSAL_MARKER)[1] is not None
        ]
        if status is not None:
            found = [p for p in found if p.status is status]
        return sorted(found, key=lambda p: p.number, reverse=True)


def make_gitea_provider(
    source: StoreSource, db: Database, audit: AuditLog, committer: Signature
) -> Provider:
    """The Gitea provider for ``source`` (its ``provider`` block validated now; no I/O)."""
    return GiteaProvider(source, db, audit, committer)
