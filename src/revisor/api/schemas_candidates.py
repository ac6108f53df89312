"""The API's models for candidates, workspaces, jobs and the audit log (Pydantic), and their
builders from the services' typed values.

Why this module exists: ``api.schemas`` holds the models every area shares (``Problem``,
``Page``, ``TreeEntryOut``…); the candidate and workspace routes answer with many more, built
here from the frozen dataclasses of ``services.candidate_types`` by ``*.of(...)`` class methods,
so a route never assembles a dict by hand and the published OpenAPI says what is sent. File
contents travel as base64 in JSON (``content_base64``); modes are git's octal numbers as integers
(``33188`` is ``0o100644``), as in ``TreeEntryOut``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from revisor.api.schemas import Problem, ProposalRefOut, TreeEntryOut
from revisor.db.audit import AuditEntry
from revisor.errors import InvalidInput
from revisor.jobs.base import Job
from revisor.jobs.runs import JobRun, TargetResult
from revisor.services.candidate_types import (
    Candidate,
    CandidateFile,
    ConflictVersions,
    FileVersion,
    PublishResult,
    RebaseResult,
    ResolveResult,
    SyncResult,
    WorkspaceConflict,
    WorkspaceRecord,
)

__all__ = [
    "AuditEntryOut",
    "CandidateConflictsOut",
    "CandidateFileOut",
    "CandidateIn",
    "CandidateOut",
    "CandidatePatchIn",
    "ConflictVersionsOut",
    "DeletedOut",
    "FileVersionOut",
    "JobOut",
    "JobRunIn",
    "JobRunOut",
    "JobTargetOut",
    "PersonOut",
    "PublishIn",
    "PublishOut",
    "RebaseOut",
    "ResolveChoiceIn",
    "ResolveOut",
    "RolledBackOut",
    "RunProgressOut",
    "SyncOut",
    "WorkspaceConflictOut",
    "WorkspaceConflictProblem",
    "WorkspaceDirOut",
    "WorkspaceOut",
    "WrittenOut",
]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class PersonOut(_Out):
    name: str
    email: str


# -- candidates -------------------------------------------------------------------------------
class CandidateIn(BaseModel):
    """``POST /sources/{s}/candidates``: the fields of ``Candidates.create`` (each refused one
    is named in a 422)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=256, description="3 to 32 of a-z, 0-9 and '-'.")
    title: str = Field(max_length=4096)
    description: str = Field("", max_length=65536)
    target: str | None = Field(None, max_length=1024,
                               description="The target branch (default: the source's).")
    strategy: Literal["rebase", "merge"] = "rebase"


class CandidatePatchIn(BaseModel):
    """``PATCH /sources/{s}/candidates/{id}``: what to change (absent: keep)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=4096)
    description: str | None = Field(None, max_length=65536)


class CandidateOut(_Out):
    id: int
    source: str
    name: str
    title: str
    description: str
    author: PersonOut
    target: str
    strategy: Literal["rebase", "merge"]
    status: Literal["open", "submitted", "abandoned"]
    base_commit: str
    head_commit: str
    has_conflicts: bool
    conflicts: list[str]
    target_checked: str | None = None
    proposal: ProposalRefOut | None = None
    submitted_commit: str | None = None
    created: datetime
    updated: datetime
    last_synced: datetime | None = None

    @classmethod
    def of(cls, c: Candidate) -> CandidateOut:
        proposal = None
        if c.proposal is not None:
            proposal = ProposalRefOut(provider=c.proposal.provider, number=c.proposal.number,
                                      url=c.proposal.url)
        return cls(
            id=c.id, source=c.source, name=c.name, title=c.title, description=c.description,
            author=PersonOut(name=c.author_name, email=c.author_email),
            target=c.target_branch, strategy=c.strategy.value, status=c.status.value,
            base_commit=c.base_commit, head_commit=c.head_commit, has_conflicts=c.has_conflicts,
            conflicts=list(c.conflicts), target_checked=c.target_checked, proposal=proposal,
            submitted_commit=c.submitted_commit, created=c.created_at, updated=c.updated_at,
            last_synced=c.last_synced_at,
        )


class CandidateFileOut(_Out):
    """One file the candidate changes, against the target's current version."""

    path: str
    status: Literal["NEW", "CHANGED", "DELETED", "UNCHANGED"]
    conflicted: bool
    etag: str | None = None

    @classmethod
    def of(cls, f: CandidateFile) -> CandidateFileOut:
        return cls(path=f.path, status=f.status.value, conflicted=f.conflicted, etag=f.etag)


class CandidateConflictsOut(_Out):
    """Whether the candidate merges into its target's current head (checked now)."""

    candidate: int
    target: str
    target_checked: str | None
    has_conflicts: bool
    conflicts: list[str]

    @classmethod
    def of(cls, c: Candidate) -> CandidateConflictsOut:
        return cls(candidate=c.id, target=c.target_branch, target_checked=c.target_checked,
                   has_conflicts=c.has_conflicts, conflicts=list(c.conflicts))


class RebaseOut(_Out):
    """A rebase that moved the candidate, or found it up to date (conflicts answer 409)."""

    candidate: CandidateOut
    moved: bool

    @classmethod
    def of(cls, r: RebaseResult) -> RebaseOut:
        return cls(candidate=CandidateOut.of(r.candidate), moved=r.moved)


# -- workspaces -------------------------------------------------------------------------------
class WorkspaceConflictOut(_Out):
    """A path a workspace cannot take from its candidate, and the candidate commits (and their
    users) it collides with."""

    path: str
    candidate_commits: list[str]
    users: list[str]

    @classmethod
    def of(cls, c: WorkspaceConflict) -> WorkspaceConflictOut:
        return cls(path=c.path, candidate_commits=list(c.candidate_commits), users=list(c.users))


class WorkspaceConflictProblem(Problem):
    """A 409 of a workspace publish: nothing moved; ``conflicts`` names each path and whom it
    collides with."""

    conflicts: list[WorkspaceConflictOut] | None = None  # type: ignore[assignment]


class WorkspaceOut(_Out):
    user: str
    candidate: int
    ref: str
    author: PersonOut
    head_commit: str
    base_commit: str
    candidate_head: str
    in_sync: bool
    conflicts: list[WorkspaceConflictOut]
    last_synced: datetime | None = None
    unpublished: list[str] | None = Field(
        None, description="The paths changed since the last sync (single workspace only)."
    )

    @classmethod
    def of(
        cls, rec: WorkspaceRecord, cand: Candidate, unpublished: list[str] | None = None
    ) -> WorkspaceOut:
        return cls(
            user=rec.user, candidate=cand.id, ref=rec.ref,
            author=PersonOut(name=rec.author_name, email=rec.author_email),
            head_commit=rec.head_commit, base_commit=rec.base_commit,
            candidate_head=cand.head_commit,
            in_sync=rec.base_commit == cand.head_commit and not rec.conflicts,
            conflicts=[WorkspaceConflictOut.of(c) for c in rec.conflicts],
            last_synced=rec.last_synced_at, unpublished=unpublished,
        )


class WorkspaceDirOut(_Out):
    """A directory of a workspace (``GET …/files/`` or a directory's path): its entries, whose
    ids are their ETags, one page at a time."""

    path: str
    head: str
    items: list[TreeEntryOut]
    next_cursor: str | None = None


class WrittenOut(_Out):
    """A saved file: its new ETag (also in the ``ETag`` header) and the workspace's head."""

    path: str
    etag: str
    created: bool
    head: str


class DeletedOut(_Out):
    path: str
    deleted: Literal[True] = True
    head: str


class RolledBackOut(_Out):
    """The base's version put back (``etag``), or the file deleted (the base lacks it)."""

    path: str
    etag: str | None
    deleted: bool
    head: str


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str | None = Field(None, max_length=65536)


class PublishOut(_Out):
    """``published`` with the candidate's new ``commit``, or nothing to publish."""

    user: str
    published: bool
    commit: str | None = None

    @classmethod
    def of(cls, r: PublishResult) -> PublishOut:
        return cls(user=r.user, published=r.published, commit=r.commit)


class SyncOut(_Out):
    user: str
    head: str
    synced_to: str
    up_to_date: bool
    moved: bool
    conflicts: list[WorkspaceConflictOut]
    pending: list[str]

    @classmethod
    def of(cls, r: SyncResult) -> SyncOut:
        return cls(user=r.user, head=r.head, synced_to=r.synced_to, up_to_date=r.up_to_date,
                   moved=r.moved, conflicts=[WorkspaceConflictOut.of(c) for c in r.conflicts],
                   pending=list(r.pending))


class FileVersionOut(_Out):
    etag: str
    mode: int
    size: int
    content_base64: str

    @classmethod
    def of(cls, v: FileVersion | None) -> FileVersionOut | None:
        if v is None:
            return None
        return cls(etag=v.etag, mode=v.mode, size=len(v.data),
                   content_base64=base64.b64encode(v.data).decode("ascii"))


class ConflictVersionsOut(_Out):
    """A conflicting path's three versions (null: absent there): ``base`` (what the
    workspace's changes started from), ``theirs`` (the candidate's), ``ours`` (the
    workspace's)."""

    path: str
    base: FileVersionOut | None
    theirs: FileVersionOut | None
    ours: FileVersionOut | None
    candidate_commits: list[str]
    users: list[str]
    resolved: bool

    @classmethod
    def of(cls, c: ConflictVersions) -> ConflictVersionsOut:
        return cls(path=c.path, base=FileVersionOut.of(c.base),
                   theirs=FileVersionOut.of(c.theirs), ours=FileVersionOut.of(c.ours),
                   candidate_commits=list(c.candidate_commits), users=list(c.users),
                   resolved=c.resolved)


class ResolveChoiceIn(BaseModel):
    """Exactly one of: ``content`` (UTF-8 text), ``content_base64``, or ``take`` a version."""

    model_config = ConfigDict(extra="forbid")

    content: str | None = None
    content_base64: str | None = None
    take: Literal["base", "theirs", "ours"] | None = None

    def choice(self, path: str) -> bytes | Literal["base", "theirs", "ours"]:
        given = [v for v in (self.content, self.content_base64, self.take) if v is not None]
        if len(given) != 1:
            raise InvalidInput(f"{path!r}: give exactly one of content, content_base64, take")
        if self.take is not None:
            return self.take
        if self.content is not None:
            try:
                return self.content.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput(f"{path!r}: content is not valid UTF-8") from None
        assert self.content_base64 is not None
        try:
            return base64.b64decode(self.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"{path!r}: content_base64 is not valid base64") from None


class ResolveOut(_Out):
    """``done``: every conflict resolved and the merge with the candidate recorded at
    ``synced_to``; else ``remaining`` lists what is left."""

    user: str
    done: bool
    head: str
    synced_to: str | None = None
    remaining: list[str]

    @classmethod
    def of(cls, r: ResolveResult) -> ResolveOut:
        return cls(user=r.user, done=r.done, head=r.head, synced_to=r.synced_to,
                   remaining=list(r.remaining))


# -- the audit log ----------------------------------------------------------------------------
class AuditEntryOut(_Out):
    id: int
    at: datetime
    actor: str
    action: str
    source: str | None = None
    target: str | None = None
    before: str | None = None
    after: str | None = None
    details: dict[str, Any]

    @classmethod
    def of(cls, e: AuditEntry) -> AuditEntryOut:
        return cls(id=e.id, at=e.at, actor=e.actor, action=e.action, source=e.source,
                   target=e.target, before=e.before, after=e.after, details=dict(e.details))


# -- jobs -------------------------------------------------------------------------------------
class JobOut(_Out):
    name: str
    description: str

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(name=job.name.value, description=job.description)


class JobRunIn(BaseModel):
    """``POST /jobs/{name}/run``: narrow the run to a source, or a candidate of it."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, max_length=256)
    candidate: int | None = Field(default=None, ge=1, le=2**31 - 1)


class RunProgressOut(_Out):
    done: int
    total: int
    message: str


class JobTargetOut(_Out):
    """How one target of a run ended (``error`` is redacted)."""

    target: str
    source: str
    candidate: int | None = None
    outcome: Literal["running", "succeeded", "partial", "failed", "skipped"]
    changed: bool
    summary: str
    details: dict[str, Any]
    error: str | None = None

    @classmethod
    def of(cls, r: TargetResult) -> JobTargetOut:
        data = r.to_json()
        return cls(target=r.target, source=r.source, candidate=r.candidate,
                   outcome=r.outcome.value, changed=r.changed, summary=r.summary,
                   details=data["details"], error=r.error)


class JobRunOut(_Out):
    """One recorded run: ``outcome`` is ``running`` until it finishes."""

    id: int
    job: str
    source: str | None = None
    candidate: int | None = None
    owner: str
    trigger: str
    outcome: Literal["running", "succeeded", "partial", "failed", "skipped"]
    started_at: datetime
    finished_at: datetime | None = None
    progress: RunProgressOut
    changed: int
    counts: dict[str, int]
    results: list[JobTargetOut]
    error: str | None = None

    @classmethod
    def of(cls, run: JobRun) -> JobRunOut:
        return cls(
            id=run.id, job=run.job, source=run.source, candidate=run.candidate,
            owner=run.owner, trigger=run.trigger, outcome=run.outcome.value,
            started_at=run.started_at, finished_at=run.finished_at,
            progress=RunProgressOut(done=run.progress.done, total=run.progress.total,
                                    message=run.progress.message),
            changed=run.changed, counts=run.counts(),
            results=[JobTargetOut.of(r) for r in run.results], error=run.error,
        )
