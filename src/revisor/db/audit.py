"""The audit log: who did what, when, to what, and the ids before and after.

Why this module exists: every transaction, proposal action and ref move is recorded (issue 4,
section 5) in one append-only table that operators and the API can query. An entry is written in
the same database transaction as the change it describes when there is one (pass ``session``),
so the log never claims a change that was rolled back, nor misses one that was committed.

Entries are read newest first; ``before_id`` is the pagination cursor (ids only grow, and are
never reused, even on SQLite).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import QueryableAttribute, Session

from revisor.db.database import Database
from revisor.db.models import AuditRow, utcnow
from revisor.errors import InvalidInput
from revisor.vcs import Signature

__all__ = ["MAX_LIMIT", "AuditEntry", "AuditLog", "actor_of"]

MAX_LIMIT = 1000


def actor_of(sig: Signature) -> str:
    """How a person is named in the log: ``Name <email>``."""
    return f"{sig.name} <{sig.email}>"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str  # dotted: proposal.open, proposal.merge, ref.move, transaction.done, …
    source: str | None
    target: str | None  # what it acted on: refs/heads/main, proposals/3, a transaction id
    before: str | None
    after: str | None
    details: Mapping[str, Any] = field(default_factory=dict)


def _entry(row: AuditRow) -> AuditEntry:
    details = json.loads(row.details) if row.details else {}
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        source=row.source,
        target=row.target,
        before=row.before,
        after=row.after,
        details=details,
    )


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise InvalidInput(f"{name} must be a timezone-aware time")
    return value.astimezone(UTC)


def _starts_with(column: QueryableAttribute[str | None], prefix: str) -> ColumnElement[bool]:
    # LIKE narrows (and may use an index) but ignores case on SQLite; substr makes it exact.
    return and_(
        column.startswith(prefix, autoescape=True),
        func.substr(column, 1, len(prefix)) == prefix,
    )


class AuditLog:
    """The audit log in one database. Constructing it does no I/O."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        actor: str,
        action: str,
        source: str | None,
        target: str | None,
        before: str | None = None,
        after: str | None = None,
        details: Mapping[str, object] | None = None,
        *,
        session: Session | None = None,
    ) -> AuditEntry:
        """Append an entry. With ``session`` it commits (or rolls back) with that session's
        transaction; without, in a transaction of its own."""
        if not actor or not action:
            raise InvalidInput("an audit entry needs an actor and an action")
        row = AuditRow(
            at=utcnow(),
            actor=actor,
            action=action,
            source=source,
            target=target,
            before=before,
            after=after,
            details=json.dumps(dict(details), sort_keys=True, default=str) if details else None,
        )
        if session is not None:
            session.add(row)
            session.flush()
            return _entry(row)
        with self.db.session() as own:
            own.add(row)
            own.flush()
            return _entry(row)

    def query(
        self,
        *,
        actor: str | None = None,
        source: str | None = None,
        action: str | None = None,
        target: str | None = None,
        target_prefix: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        """Entries matching every filter given, newest first, at most ``limit`` (≤ 1000).

        ``since`` is inclusive, ``until`` exclusive; ``action`` ending in ``.`` matches a family
        (``proposal.``). For the next page pass the last entry's id as ``before_id``.
        """
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
        query = select(AuditRow)
        if actor is not None:
            query = query.where(AuditRow.actor == actor)
        if source is not None:
            query = query.where(AuditRow.source == source)
        if action is not None:
            if action.endswith("."):
                query = query.where(_starts_with(AuditRow.action, action))
            else:
                query = query.where(AuditRow.action == action)
        if target is not None:
            query = query.where(AuditRow.target == target)
        if target_prefix is not None:
            query = query.where(_starts_with(AuditRow.target, target_prefix))
        if since is not None:
            query = query.where(AuditRow.at >= _utc(since, "since"))
        if until is not None:
            query = query.where(AuditRow.at < _utc(until, "until"))
        if before_id is not None:
            query = query.where(AuditRow.id < before_id)
        query = query.order_by(AuditRow.id.desc()).limit(limit)
        with self.db.session(write=False) as session:
            return [_entry(r) for r in session.execute(query).scalars()]
