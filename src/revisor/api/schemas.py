"""The API's shared request and response models (Pydantic), and their builders from typed values.

Why this module exists: the published OpenAPI must say exactly what every route answers, so each
route declares one of these models. The models are the wire format only; they are built from the
library's frozen dataclasses (``Changeset``, ``TreeEntry``, ``Proposal``, ``TransactionResult``…)
by the ``*.of(...)`` class methods here, never by hand in a route. Times are ISO 8601 with their
offset; object ids are full lower-case hex; lists are pages ``{items, next_cursor}``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from revisor.core.changes import Delete, FileChange, Move, Write
from revisor.core.lastcommits import LastCommit
from revisor.core.transaction import TransactionResult
from revisor.errors import InvalidInput
from revisor.providers.base import Mergeability, Proposal
from revisor.store.store import Freshness
from revisor.vcs import Change, Changeset, FileDiff, Signature, TreeEntry

__all__ = [
    "PROBLEM_RESPONSES",
    "ChangeIn",
    "ChangeOut",
    "CommitOut",
    "DeleteIn",
    "DiffOut",
    "FileDiffOut",
    "FreshnessOut",
    "HealthOut",
    "LastCommitOut",
    "MergeIn",
    "MergeabilityOut",
    "MoveIn",
    "Page",
    "Problem",
    "ProposalDetailOut",
    "ProposalOut",
    "ProposalRefOut",
    "ReadyOut",
    "RefChangeOut",
    "RefOut",
    "RefreshOut",
    "SignatureOut",
    "SourceOut",
    "TransactionIn",
    "TransactionOut",
    "TreeEntryOut",
    "TreeOut",
    "WriteIn",
    "problems",
]

T = TypeVar("T")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- errors -----------------------------------------------------------------------------------
class Problem(BaseModel):
    """An RFC 9457 problem document; error-specific members (``conflicts``, ``current_etag``,
    ``retry_after``, ``errors``, ``ref``/``expected``/``actual``, ``limit``, ``hint``…) are
    added beside the standard ones."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    hint: str | None = None
    conflicts: list[str] | None = None
    current_etag: str | None = None
    retry_after: float | None = None


_DESCRIPTIONS = {
    400: "Invalid path, revision or input",
    401: "Missing, unknown, expired or revoked token",
    403: "Not allowed for this caller's role",
    404: "Not found",
    409: "Conflict: a stale base, a moved ref or a merge conflict (with the conflicting paths)",
    412: "ETag mismatch (with the current ETag)",
    413: "Over the size limit",
    416: "Range not satisfiable",
    422: "Validation failed",
    428: "A precondition (If-Match) is required",
    503: "Unavailable: retry after Retry-After seconds",
}

#: Statuses every route can answer (authentication, validation, the body limit).
_ALWAYS = (401, 403, 413, 422)


def problems(*statuses: int) -> dict[int | str, dict[str, object]]:
    """``responses=`` for a route: ``statuses`` plus those every route may answer, each a
    :class:`Problem` served as ``application/problem+json``."""
    out: dict[int | str, dict[str, object]] = {}
    for status in sorted({*statuses, *_ALWAYS}):
        out[status] = {
            "model": Problem,
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {"application/problem+json": {}},
        }
    return out


PROBLEM_RESPONSES = problems()


# -- pages ------------------------------------------------------------------------------------
class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``?cursor=`` for the next (null: the end)."""

    items: list[T]
    next_cursor: str | None = None


# -- commits and trees ------------------------------------------------------------------------
class SignatureOut(_Out):
    name: str
    email: str
    time: datetime

    @classmethod
    def of(cls, sig: Signature) -> SignatureOut:
        return cls(name=sig.name, email=sig.email, time=sig.time)


class ChangeOut(_Out):
    kind: str
    path: str
    old_path: str | None = None
    old_mode: int | None = None
    new_mode: int | None = None
    old_id: str | None = None
    new_id: str | None = None

    @classmethod
    def of(cls, c: Change) -> ChangeOut:
        return cls(
            kind=c.kind.value, path=c.path, old_path=c.old_path, old_mode=c.old_mode,
            new_mode=c.new_mode, old_id=c.old_id, new_id=c.new_id,
        )


class CommitOut(_Out):
    id: str
    parents: list[str]
    author: SignatureOut
    committer: SignatureOut
    message: str
    summary: str
    changes: list[ChangeOut] | None = None  # with ``GET /commits/{rev}`` only

    @classmethod
    def of(cls, cs: Changeset, *, with_changes: bool = False) -> CommitOut:
        return cls(
            id=cs.id,
            parents=list(cs.parents),
            author=SignatureOut.of(cs.author),
            committer=SignatureOut.of(cs.committer),
            message=cs.message,
            summary=cs.summary,
            changes=[ChangeOut.of(c) for c in cs.changes()] if with_changes else None,
        )


class LastCommitOut(_Out):
    """The commit that last touched an entry (``git log -1 <rev> -- <entry>``)."""

    id: str
    author: SignatureOut
    committer: SignatureOut
    summary: str

    @classmethod
    def of(cls, c: LastCommit) -> LastCommitOut:
        return cls(id=c.id, author=SignatureOut.of(c.author),
                   committer=SignatureOut.of(c.committer), summary=c.summary)


class TreeEntryOut(_Out):
    name: str
    path: str
    kind: Literal["file", "dir", "symlink", "submodule"]
    mode: int
    id: str
    size: int | None = None
    last_commit: LastCommitOut | None = None  # with ``last_commits=true``, once known

    @classmethod
    def of(cls, e: TreeEntry, last: LastCommit | None = None) -> TreeEntryOut:
        return cls(
            name=e.name, path=e.path, kind=e.kind.value, mode=e.mode, id=e.id, size=e.size,
            last_commit=LastCommitOut.of(last) if last is not None else None,
        )


class TreeOut(_Out):
    commit: str
    path: str
    entries: list[TreeEntryOut]
    partial: bool = False  # last commits asked for and not all known within the budget


class RefOut(_Out):
    name: str
    target: str


class FileDiffOut(_Out):
    change: ChangeOut
    binary: bool
    additions: int
    deletions: int
    patch: str

    @classmethod
    def of(cls, d: FileDiff) -> FileDiffOut:
        return cls(
            change=ChangeOut.of(d.change), binary=d.binary, additions=d.additions,
            deletions=d.deletions, patch=d.patch,
        )


class DiffOut(_Out):
    from_commit: str | None
    to_commit: str
    files: list[FileDiffOut]


# -- sources and operations -------------------------------------------------------------------
class FreshnessOut(_Out):
    last_fetch_ok: datetime | None = None
    staleness_s: float | None = None
    last_error: str | None = None
    refresh_interval_s: float | None = None

    @classmethod
    def of(cls, f: Freshness) -> FreshnessOut:
        from datetime import UTC

        ok = datetime.fromtimestamp(f.last_fetch_ok, UTC) if f.last_fetch_ok else None
        return cls(last_fetch_ok=ok, staleness_s=f.staleness, last_error=f.last_error,
                   refresh_interval_s=f.refresh_interval)


class SourceOut(_Out):
    name: str
    type: Literal["git", "local"]
    location: str  # the remote URL without credentials, or the local path
    target_branch: str | None = None  # null when the repository cannot be read right now
    provider: str
    allow_direct: bool
    freshness: FreshnessOut | None = None


class RefChangeOut(_Out):
    ref: str
    old: str | None = None
    new: str | None = None


class RefreshOut(_Out):
    """What ``POST /sources/{s}/refresh`` did (a local source is always current)."""

    fetched: bool
    seconds: float = 0.0
    changes: list[RefChangeOut] = Field(default_factory=list)


class HealthOut(_Out):
    status: Literal["ok"]
    version: str


class ReadyOut(_Out):
    status: Literal["ready", "not-ready"]
    database: bool
    migrated: bool
    sources: int
    reasons: list[str] = Field(default_factory=list)


# -- transactions -----------------------------------------------------------------------------
class WriteIn(BaseModel):
    """Create or replace a file: ``content`` (UTF-8 text) or ``content_base64``, not both."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["write"]
    path: str
    content: str | None = None
    content_base64: str | None = None
    executable: bool | None = None

    def data(self) -> bytes:
        if (self.content is None) == (self.content_base64 is None):
            raise InvalidInput(f"{self.path!r}: give exactly one of content or content_base64")
        if self.content is not None:
            try:
                return self.content.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput(f"{self.path!r}: content is not valid UTF-8") from None
        assert self.content_base64 is not None
        try:
            return base64.b64decode(self.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"{self.path!r}: content_base64 is not valid base64") from None


class DeleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["delete"]
    path: str


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    op: Literal["move"]
    from_: str = Field(alias="from")
    to: str


ChangeIn = Annotated[WriteIn | DeleteIn | MoveIn, Field(discriminator="op")]


class TransactionIn(BaseModel):
    """``POST /sources/{s}/transactions``: one atomic change."""

    model_config = ConfigDict(extra="forbid")

    base: str | None = Field(None, description="The revision to change (default: the target).")
    expected: str | None = Field(None, description="The commit id ``base`` must be at (409).")
    message: str = Field(min_length=1, max_length=65536)
    branch: str | None = Field(None, description="The branch to push (default: generated).")
    propose: bool = True
    changes: list[ChangeIn] = Field(max_length=100_000)

    def file_changes(self, max_file_bytes: int) -> list[FileChange]:
        """The typed changes (paths validated: InvalidPath → 400; a file over the limit → 413)."""
        from revisor.errors import TooLarge

        out: list[FileChange] = []
        for c in self.changes:
            if isinstance(c, WriteIn):
                data = c.data()
                if len(data) > max_file_bytes:
                    raise TooLarge(f"file {c.path!r}", len(data), max_file_bytes)
                out.append(Write(c.path, data, executable=c.executable))
            elif isinstance(c, DeleteIn):
                out.append(Delete(c.path))
            else:
                out.append(Move(c.from_, c.to))
        return out


class ProposalRefOut(_Out):
    provider: str
    number: int
    url: str | None = None


class TransactionOut(_Out):
    id: str
    empty: bool
    base: str
    commit: str | None = None
    branch: str | None = None
    direct: bool = False
    proposal: ProposalRefOut | None = None
    proposal_queued: bool = False
    replayed: bool = False

    @classmethod
    def of(cls, r: TransactionResult) -> TransactionOut:
        proposal = None
        if r.proposal is not None:
            proposal = ProposalRefOut(
                provider=r.proposal.provider, number=r.proposal.number, url=r.proposal.url
            )
        return cls(
            id=r.id, empty=r.empty, base=r.base, commit=r.commit, branch=r.branch,
            direct=r.direct, proposal=proposal, proposal_queued=r.proposal_queued,
            replayed=r.replayed,
        )


# -- proposals --------------------------------------------------------------------------------
class ProposalOut(_Out):
    provider: str
    number: int
    url: str | None = None
    title: str
    description: str
    author_name: str
    author_email: str
    source_branch: str
    source_commit: str
    target_branch: str
    status: Literal["open", "merged", "closed"]
    created_at: datetime
    updated_at: datetime
    merged_commit: str | None = None
    labels: list[str] = Field(default_factory=list)
    merge_method: Literal["merge", "squash", "rebase"] | None = None
    mergeable: bool | None = None

    @classmethod
    def of(cls, p: Proposal) -> ProposalOut:
        return cls(
            provider=p.provider, number=p.number, url=p.url, title=p.title,
            description=p.description, author_name=p.author_name, author_email=p.author_email,
            source_branch=p.source_branch, source_commit=p.source_commit,
            target_branch=p.target_branch, status=p.status.value, created_at=p.created_at,
            updated_at=p.updated_at, merged_commit=p.merged_commit, labels=list(p.labels),
            merge_method=p.merge_method.value if p.merge_method is not None else None,
            mergeable=p.mergeable,
        )


class MergeabilityOut(_Out):
    clean: bool
    conflicts: list[str] = Field(default_factory=list)
    target_commit: str | None = None

    @classmethod
    def of(cls, m: Mergeability) -> MergeabilityOut:
        return cls(clean=m.clean, conflicts=list(m.conflicts), target_commit=m.target_commit)


class ProposalDetailOut(ProposalOut):
    mergeability: MergeabilityOut | None = None  # for open proposals


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["merge", "squash", "rebase"] = "merge"
