"""The interface every proposal provider implements: builtin, GitHub, GitLab, Gitea, Gerrit.

A *proposal* is a pull request, a merge request or a Gerrit change: a request to merge a pushed
branch into a target branch. Transactions open one after pushing; candidates submit through one.
Providers return typed :class:`Proposal` values and raise Revisor's errors (``NotFound``,
``Conflict``/:class:`MergeConflict`, ``Unavailable``) with the SCM's message kept.
"""

from __future__ import annotations

import abc
import builtins
import enum
from dataclasses import dataclass, field
from datetime import datetime

from revisor.errors import Conflict
from revisor.vcs import ObjectId, Signature

__all__ = [
    "Check",
    "CheckState",
    "Comment",
    "MergeConflict",
    "MergeMethod",
    "Mergeability",
    "Proposal",
    "ProposalRequest",
    "ProposalStatus",
    "Provider",
    "Review",
]


class ProposalStatus(enum.StrEnum):
    OPEN = "open"
    MERGED = "merged"
    CLOSED = "closed"


class MergeMethod(enum.StrEnum):
    MERGE = "merge"  # a merge commit, or a fast-forward when the target has not moved
    SQUASH = "squash"  # one commit on the target
    REBASE = "rebase"  # the proposal's commits replayed on the target


@dataclass(frozen=True)
class Mergeability:
    """Whether a proposal merges cleanly into its target now, and if not, which paths conflict."""

    clean: bool
    conflicts: tuple[str, ...] = ()
    target_commit: ObjectId | None = None


@dataclass(frozen=True)
class ProposalRequest:
    """What a transaction asks a provider to open."""

    title: str
    description: str
    author: Signature
    source_branch: str
    source_commit: ObjectId
    target_branch: str
    labels: tuple[str, ...] = ()


class CheckState(enum.StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"  # skipped, cancelled, or informational


@dataclass(frozen=True)
class Check:
    """One CI result on the proposal's commit: a GitHub check run, a GitLab pipeline, a Gerrit
    ``Verified`` vote."""

    name: str
    state: CheckState
    url: str | None = None


@dataclass(frozen=True)
class Review:
    """One reviewer's verdict: a GitHub review, a GitLab approval, a Gerrit label vote.

    ``label``/``value`` carry Gerrit-style votes (``Code-Review`` +2); ``approved`` is the
    provider-neutral reading (a positive, sufficient vote or an approval).
    """

    reviewer: str
    approved: bool
    label: str | None = None
    value: int | None = None


@dataclass(frozen=True)
class Proposal:
    """A proposal as its provider reports it."""

    provider: str
    number: int
    url: str | None
    title: str
    description: str
    author_name: str
    author_email: str
    source_branch: str
    source_commit: ObjectId
    target_branch: str
    status: ProposalStatus
    created_at: datetime
    updated_at: datetime
    merged_commit: ObjectId | None = None
    labels: tuple[str, ...] = field(default=())
    merge_method: MergeMethod | None = None  # how it was merged, when the provider knows
    mergeable: bool | None = None  # as the provider last computed it; None: unknown
    checks: tuple[Check, ...] = field(default=())
    reviews: tuple[Review, ...] = field(default=())
    external_id: str | None = None  # the SCM's own id (Gerrit Change-Id, GitLab MR id, node id)


@dataclass(frozen=True)
class Comment:
    """One comment on a proposal."""

    id: int
    author_name: str
    author_email: str
    text: str
    created_at: datetime


class MergeConflict(Conflict):
    """A merge that git cannot make cleanly; ``conflicts`` lists the paths."""

    def __init__(self, message: str, conflicts: tuple[str, ...]) -> None:
        super().__init__(
            f"{message}: {len(conflicts)} conflicting path(s): {', '.join(conflicts[:10])}",
            hint="update the proposal so it merges cleanly, then try again",
        )
        self.conflicts = conflicts


class Provider(abc.ABC):
    """Hosts proposals for one source."""

    name: str

    def proposes(self, proposal: Proposal, commit: ObjectId) -> bool:
        """Whether ``proposal`` is the proposal of ``commit``. Most providers propose the commit
        itself; Gerrit proposes a copy carrying its Change-Id footer, and overrides this."""
        return proposal.source_commit == commit

    @abc.abstractmethod
    def open(self, request: ProposalRequest) -> Proposal:
        """Open a proposal for a pushed branch. Idempotent per source branch: if one is already
        open for ``request.source_branch`` (e.g. a retry after a timeout), return it."""

    @abc.abstractmethod
    def get(self, number: int) -> Proposal:
        """The proposal with this number, else NotFound."""

    @abc.abstractmethod
    def find_by_branch(self, source_branch: str) -> Proposal | None:
        """The proposal opened from this branch, if any (any status)."""

    @abc.abstractmethod
    def list(self, status: ProposalStatus | None = None) -> list[Proposal]:
        """Proposals Revisor opened on this source, newest first."""

    @abc.abstractmethod
    def update(
        self,
        number: int,
        *,
        title: str | None = None,
        description: str | None = None,
        source_commit: ObjectId | None = None,
        actor: Signature | None = None,
    ) -> Proposal:
        """Change a proposal's text, or record that its branch moved (``actor``: who did it;
        None: Revisor itself)."""

    @abc.abstractmethod
    def mergeability(self, number: int) -> Mergeability:
        """Whether it merges cleanly into its target now."""

    @abc.abstractmethod
    def merge(self, number: int, method: MergeMethod, actor: Signature) -> Proposal:
        """Merge it into its target (moving the target with a lease); MergeConflict if it cannot."""

    @abc.abstractmethod
    def close(self, number: int, actor: Signature) -> Proposal:
        """Close it without merging."""

    @abc.abstractmethod
    def comment(self, number: int, text: str, actor: Signature) -> None:
        """Add a comment."""

    @abc.abstractmethod
    def comments(self, number: int) -> builtins.list[Comment]:
        """Its comments, oldest first."""
