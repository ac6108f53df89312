"""The values candidates and workspaces answer with: frozen dataclasses and enums, never dicts.

The stored records themselves (:class:`~revisor.db.candidates.Candidate`,
:class:`~revisor.db.candidates.WorkspaceRecord`, :class:`~revisor.db.candidates.WorkspaceConflict`)
come from ``revisor.db.candidates`` and are re-exported here with the rest.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from revisor.db.candidates import (
    Candidate,
    CandidateStatus,
    CandidateStrategy,
    ProposalLink,
    WorkspaceConflict,
    WorkspaceRecord,
)
from revisor.vcs import ObjectId

__all__ = [
    "ANY",
    "NAME_PATTERN",
    "Candidate",
    "CandidateFile",
    "CandidateStatus",
    "CandidateStrategy",
    "ConflictVersions",
    "FileStatus",
    "FileVersion",
    "ProposalLink",
    "PublishResult",
    "RebaseResult",
    "ResolveResult",
    "SyncResult",
    "WorkspaceConflict",
    "WorkspaceRecord",
]

NAME_PATTERN = re.compile(r"^[0-9a-z][0-9a-z-]{2,31}$")
"""A candidate's name: 3 to 32 of ``[0-9a-z-]``, not starting with ``-``."""

ANY = "*"
"""``if_match=ANY``: whatever version of the file there is (it must exist), as HTTP's
``If-Match: *``."""


class FileStatus(enum.StrEnum):
    """A candidate's file compared with the target's current version (seed 001's API)."""

    NEW = "NEW"
    CHANGED = "CHANGED"
    DELETED = "DELETED"
    UNCHANGED = "UNCHANGED"


@dataclass(frozen=True)
class CandidateFile:
    """One file of a candidate: its status against the target, whether it conflicts with the
    target, and its ETag in the candidate (None when the candidate deletes it)."""

    path: str
    status: FileStatus
    conflicted: bool
    etag: ObjectId | None


@dataclass(frozen=True)
class RebaseResult:
    """What bringing a candidate onto its moved target did. ``moved`` False with ``conflicts``:
    nothing moved, the candidate keeps its base. ``moved`` False without: it was up to date."""

    candidate: Candidate
    moved: bool
    conflicts: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.conflicts


@dataclass(frozen=True)
class PublishResult:
    """What a publish did: ``commit`` is the candidate's new commit when it moved; otherwise
    ``conflicts`` lists what stopped it (each with the users it collides with), or neither when
    there was nothing to publish."""

    user: str
    published: bool
    commit: ObjectId | None = None
    conflicts: tuple[WorkspaceConflict, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.conflicts


@dataclass(frozen=True)
class SyncResult:
    """What a sync did. ``synced_to`` is the candidate commit the workspace is now in sync with;
    ``up_to_date`` whether that is the candidate's head. Otherwise ``conflicts`` lists the paths
    that stopped it and ``pending`` the candidate commits it did not take (oldest first)."""

    user: str
    head: ObjectId
    synced_to: ObjectId
    up_to_date: bool
    moved: bool
    conflicts: tuple[WorkspaceConflict, ...] = ()
    pending: tuple[ObjectId, ...] = ()


@dataclass(frozen=True)
class FileVersion:
    """One side of a conflict: the blob (its ETag), its mode and its content."""

    etag: ObjectId
    mode: int
    data: bytes


@dataclass(frozen=True)
class ConflictVersions:
    """A conflicting path's three versions: ``base`` (what the workspace's changes started
    from), ``theirs`` (the candidate's head), ``ours`` (the workspace's); None: absent there."""

    path: str
    base: FileVersion | None
    theirs: FileVersion | None
    ours: FileVersion | None
    candidate_commits: tuple[ObjectId, ...]
    users: tuple[str, ...]
    resolved: bool


@dataclass(frozen=True)
class ResolveResult:
    """``done``: every conflict was resolved and the workspace recorded its merge with the
    candidate at ``synced_to``; otherwise ``remaining`` lists the paths still to resolve."""

    user: str
    done: bool
    head: ObjectId
    synced_to: ObjectId | None = None
    remaining: tuple[str, ...] = ()
