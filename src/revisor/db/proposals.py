"""Proposal rows for the builtin provider: create, read, find, list, update, comments.

Why this module exists: the builtin provider hosts proposals in SQL, and their numbering and
uniqueness are the hard part. Numbers count per source from 1, dense, allocated atomically by
concurrent creators in threads and processes: a creator reads the highest number and inserts the
next in one write transaction — on SQLite that transaction holds the write lock from its start
(``BEGIN IMMEDIATE``), on PostgreSQL the unique constraint (source, number) rejects the loser of
a race, who retries inside a savepoint. Likewise at most one proposal per branch is open (a
partial unique index), so two concurrent opens of one branch give one proposal.

Every method takes an optional ``session`` so the provider can change a proposal and record the
audit entry in one database transaction. Values handed out are :class:`Proposal` and
:class:`Comment` (frozen), never rows.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from revisor.db.database import Database
from revisor.db.models import CommentRow, ProposalRow, utcnow
from revisor.errors import DatabaseUnavailable, InvalidInput, InvalidState, ProposalNotFound
from revisor.providers.base import Comment, MergeMethod, Proposal, ProposalRequest, ProposalStatus
from revisor.vcs import ObjectId, Signature

__all__ = ["Opened", "ProposalStore"]

_ALLOCATION_ATTEMPTS = 100
_UPDATABLE = frozenset(
    {"title", "description", "source_commit", "status", "merged_commit", "merge_method", "labels"}
)


@dataclass(frozen=True)
class Opened:
    """What :meth:`ProposalStore.create` did: ``created`` False means an open proposal for the
    branch existed already and is returned instead."""

    proposal: Proposal
    created: bool


def _proposal(row: ProposalRow) -> Proposal:
    return Proposal(
        provider=row.provider,
        number=row.number,
        url=row.url,
        title=row.title,
        description=row.description,
        author_name=row.author_name,
        author_email=row.author_email,
        source_branch=row.source_branch,
        source_commit=ObjectId(row.source_commit),
        target_branch=row.target_branch,
        status=ProposalStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        merged_commit=ObjectId(row.merged_commit) if row.merged_commit else None,
        labels=tuple(json.loads(row.labels)),
        merge_method=MergeMethod(row.merge_method) if row.merge_method else None,
    )


def _comment(row: CommentRow) -> Comment:
    return Comment(row.id, row.author_name, row.author_email, row.text, row.created_at)


class ProposalStore:
    """Proposal rows of one provider (``builtin``), for every source. No I/O when constructed.

    ``url_for(source, number)`` gives the URL stored with a new proposal (None: none).
    """

    def __init__(
        self,
        db: Database,
        *,
        provider: str = "builtin",
        url_for: Callable[[str, int], str | None] | None = None,
    ) -> None:
        self.db = db
        self.provider = provider
        self.url_for = url_for

    @contextmanager
    def _session(self, session: Session | None, *, write: bool) -> Iterator[Session]:
        if session is not None:
            yield session
        else:
            with self.db.session(write=write) as own:
                yield own

    def _row(
        self, session: Session, source: str, number: int, *, for_update: bool = False
    ) -> ProposalRow:
        query = select(ProposalRow).where(
            ProposalRow.provider == self.provider,
            ProposalRow.source == source,
            ProposalRow.number == number,
        )
        if for_update:
            query = query.with_for_update()
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            raise ProposalNotFound(source, number)
        return row

    def _open_for_branch(self, session: Session, source: str, branch: str) -> ProposalRow | None:
        return session.execute(
            select(ProposalRow).where(
                ProposalRow.source == source,
                ProposalRow.source_branch == branch,
                ProposalRow.status == ProposalStatus.OPEN,
            )
        ).scalar_one_or_none()

    # -- writing ----------------------------------------------------------------------------------
    def create(
        self, source: str, request: ProposalRequest, *, session: Session | None = None
    ) -> Opened:
        """Open a proposal with the next number on ``source``, unless one is open for
        ``request.source_branch`` already (then that one, ``created`` False)."""
        if not request.title.strip():
            raise InvalidInput("a proposal needs a title")
        with self._session(session, write=True) as s:
            for _ in range(_ALLOCATION_ATTEMPTS):
                existing = self._open_for_branch(s, source, request.source_branch)
                if existing is not None:
                    return Opened(_proposal(existing), False)
                highest = s.scalar(
                    select(func.max(ProposalRow.number)).where(ProposalRow.source == source)
                )
                number = (highest or 0) + 1
                now = utcnow()
                row = ProposalRow(
                    source=source,
                    number=number,
                    title=request.title,
                    description=request.description,
                    author_name=request.author.name,
                    author_email=request.author.email,
                    source_branch=request.source_branch,
                    source_commit=request.source_commit,
                    target_branch=request.target_branch,
                    status=ProposalStatus.OPEN,
                    provider=self.provider,
                    url=self.url_for(source, number) if self.url_for else None,
                    labels=json.dumps(list(request.labels)),
                    created_at=now,
                    updated_at=now,
                )
                try:
                    with s.begin_nested():
                        s.add(row)
                except IntegrityError:
                    continue  # PostgreSQL: a concurrent creator took the number or the branch
                return Opened(_proposal(row), True)
        raise DatabaseUnavailable(
            f"could not allocate a proposal number on {source!r}: too much contention",
            retry_after=1.0,
        )

    def update(
        self,
        source: str,
        number: int,
        *,
        require: Collection[ProposalStatus] | None = None,
        action: str = "update",
        session: Session | None = None,
        **fields: Any,
    ) -> Proposal:
        """Change fields (``title``, ``description``, ``source_commit``, ``status``,
        ``merged_commit``, ``merge_method``, ``labels``) and ``updated_at``.

        ``require``: the statuses it must be in now (read under the write lock), else
        :class:`InvalidState` naming ``action``.
        """
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise TypeError(f"unknown proposal field(s): {', '.join(sorted(unknown))}")
        if "labels" in fields:
            fields["labels"] = json.dumps(list(fields["labels"]))
        with self._session(session, write=True) as s:
            row = self._row(s, source, number, for_update=True)
            if require is not None and row.status not in require:
                raise InvalidState(f"proposal #{number}", row.status, action)
            for name, value in fields.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
            s.flush()
            return _proposal(row)

    def add_comment(
        self,
        source: str,
        number: int,
        author: Signature,
        text: str,
        *,
        session: Session | None = None,
    ) -> Comment:
        if not text.strip():
            raise InvalidInput("a comment must not be empty")
        with self._session(session, write=True) as s:
            proposal = self._row(s, source, number)
            row = CommentRow(
                proposal_id=proposal.id,
                author_name=author.name,
                author_email=author.email,
                text=text,
                created_at=utcnow(),
            )
            s.add(row)
            s.flush()
            return _comment(row)

    # -- reading ----------------------------------------------------------------------------------
    def get(
        self, source: str, number: int, *, for_update: bool = False, session: Session | None = None
    ) -> Proposal:
        """The proposal, else :class:`ProposalNotFound`. ``for_update`` (inside the caller's
        write session) keeps others from changing it until that session ends."""
        with self._session(session, write=for_update) as s:
            return _proposal(self._row(s, source, number, for_update=for_update))

    def find_by_branch(
        self,
        source: str,
        branch: str,
        *,
        status: ProposalStatus | None = None,
        session: Session | None = None,
    ) -> Proposal | None:
        """The newest proposal from ``branch`` (with ``status``, if given), if any."""
        query = select(ProposalRow).where(
            ProposalRow.provider == self.provider,
            ProposalRow.source == source,
            ProposalRow.source_branch == branch,
        )
        if status is not None:
            query = query.where(ProposalRow.status == status)
        query = query.order_by(ProposalRow.number.desc()).limit(1)
        with self._session(session, write=False) as s:
            row = s.execute(query).scalar_one_or_none()
            return _proposal(row) if row is not None else None

    def comments(
        self, source: str, number: int, *, session: Session | None = None
    ) -> builtins.list[Comment]:
        """Its comments, oldest first."""
        with self._session(session, write=False) as s:
            proposal = self._row(s, source, number)
            rows = s.execute(
                select(CommentRow)
                .where(CommentRow.proposal_id == proposal.id)
                .order_by(CommentRow.id)
            ).scalars()
            return [_comment(r) for r in rows]

    def list(
        self,
        source: str,
        status: ProposalStatus | None = None,
        *,
        limit: int | None = None,
        session: Session | None = None,
    ) -> builtins.list[Proposal]:
        """Proposals on ``source`` (with ``status``, if given), newest first."""
        query = select(ProposalRow).where(
            ProposalRow.provider == self.provider, ProposalRow.source == source
        )
        if status is not None:
            query = query.where(ProposalRow.status == status)
        query = query.order_by(ProposalRow.number.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._session(session, write=False) as s:
            return [_proposal(r) for r in s.execute(query).scalars()]
