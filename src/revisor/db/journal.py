"""The transaction journal: what each transaction has done so far, durable before it does more.

Why this module exists: a transaction touches three places that cannot commit together — the
mirror (objects, refs), the remote (a pushed branch) and a provider (a proposal). Like Mercurial's
journal, each step is written down before the next one starts, so a process killed half-way
leaves an entry naming what may be left behind (a commit, a pushed branch, a proposal) and the
next start compensates it (:meth:`Journal.unfinished`). The same rows answer idempotency, as
Stripe's idempotency keys do: a transaction begun again with the key of one that succeeded (done,
empty, or pushed with its proposal queued) gets that entry back, whose stored result is the
answer; of one still running, or unfinished awaiting recovery (a process died, or undoing a push
failed while the remote was down), gets that entry back too (the caller answers 409 until it
ends). Only a key whose transaction failed *without effect* — ``failed`` or ``compensated``:
nothing of it is left, locally or remotely — may run again: the new entry takes the key over
and the failed one keeps its id, state and error, without the key (:attr:`Began.retried`).

An entry goes through its steps (started → committed → pushed → proposed; a step may be set
again, e.g. back to ``committed`` with an ``error`` when undoing a push failed), then ends once
(done, empty, failed or compensated); a finished entry never changes again, except that a failed
one hands its idempotency key over to a retry. Moves are checked
under the database's write lock (``BEGIN IMMEDIATE`` on SQLite, ``FOR UPDATE`` on PostgreSQL),
so two processes recovering the same entry cannot both move it (see ``expected``).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from revisor.db.database import Database
from revisor.db.models import TransactionRow, TxState, utcnow
from revisor.errors import InvalidInput, InvalidState, TransactionNotFound
from revisor.vcs import ObjectId, Signature

__all__ = [
    "RETRYABLE", "Began", "Journal", "JournalEntry", "TxState", "new_tx_id", "this_owner",
]

RETRYABLE = frozenset({TxState.FAILED, TxState.COMPENSATED})
"""Endings that left nothing behind: a transaction begun again with the same idempotency key
runs anew (every other state answers with the earlier entry)."""

# Fields a step may set, besides the state (``advance``/``finish`` refuse any other name).
_FIELDS = frozenset(
    {"base_commit", "commit", "branch", "proposal_number", "result_json", "error", "message"}
)


def new_tx_id() -> str:
    """A fresh transaction id: 32 lower-case hex characters."""
    return uuid.uuid4().hex


def this_owner() -> str:
    """``host:pid`` of this process, recorded as the owner of the entries it begins."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class JournalEntry:
    """One transaction as journaled."""

    id: str
    source: str
    idempotency_key: str | None
    state: TxState
    owner: str
    actor_name: str
    actor_email: str
    message: str
    base_ref: str
    base_commit: ObjectId | None
    commit: ObjectId | None
    branch: str | None
    direct: bool
    proposal_number: int | None
    result_json: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def finished(self) -> bool:
        return self.state.final


@dataclass(frozen=True)
class Began:
    """What :meth:`Journal.begin` did: ``created`` False means ``entry`` is an earlier attempt
    with the same idempotency key (finished: its result is the answer; unfinished: another
    attempt is running, or crashed and awaits recovery). ``retried``: the id of the earlier
    attempt that failed without effect and handed its key over to this new entry."""

    entry: JournalEntry
    created: bool
    retried: str | None = None


def _entry(row: TransactionRow) -> JournalEntry:
    return JournalEntry(
        id=row.id,
        source=row.source,
        idempotency_key=row.idempotency_key,
        state=TxState(row.state),
        owner=row.owner,
        actor_name=row.actor_name,
        actor_email=row.actor_email,
        message=row.message,
        base_ref=row.base_ref,
        base_commit=ObjectId(row.base_commit) if row.base_commit else None,
        commit=ObjectId(row.commit) if row.commit else None,
        branch=row.branch,
        direct=row.direct,
        proposal_number=row.proposal_number,
        result_json=row.result_json,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class Journal:
    """The journal of all sources in one database. Constructing it does no I/O."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def begin(
        self,
        *,
        source: str,
        actor: Signature,
        message: str,
        base_ref: str,
        base_commit: ObjectId | None = None,
        branch: str | None = None,
        direct: bool = False,
        idempotency_key: str | None = None,
        tx_id: str | None = None,
        owner: str | None = None,
    ) -> Began:
        """Journal a new transaction in state ``started``.

        With an ``idempotency_key`` already used on ``source`` nothing is written and the
        existing entry is returned (``created`` False), also when two processes race: the
        unique constraint on (source, key) decides, and the loser reads the winner's entry.
        The exception: the key of an entry that failed without effect (``failed``,
        ``compensated``) is taken over by the new entry (``retried`` names the old one), under
        the row's lock, so of two racing retries one begins and the other gets its entry.
        ``owner`` (default: this process, ``host:pid``) tells recovery whose entry it is.
        """
        if idempotency_key is not None and not idempotency_key.strip():
            raise InvalidInput("an idempotency key must not be empty")
        tx_id = tx_id or new_tx_id()
        if len(tx_id) != 32 or any(c not in "0123456789abcdef" for c in tx_id):
            raise InvalidInput(f"invalid transaction id {tx_id!r}: 32 lower-case hex digits")
        now = utcnow()
        retried: TransactionRow | None = None
        with self.db.session() as session:
            if idempotency_key is not None:
                found = self._by_key(session, source, idempotency_key, lock=True)
                if found is not None:
                    if TxState(found.state) not in RETRYABLE:
                        return Began(_entry(found), False)
                    retried = found  # failed without effect: the key is free for a retry
            row = TransactionRow(
                id=tx_id,
                source=source,
                idempotency_key=idempotency_key,
                state=TxState.STARTED,
                owner=owner or this_owner(),
                actor_name=actor.name,
                actor_email=actor.email,
                message=message,
                base_ref=base_ref,
                base_commit=base_commit,
                branch=branch,
                direct=direct,
                created_at=now,
                updated_at=now,
            )
            try:
                with session.begin_nested():
                    if retried is not None:
                        # The old entry keeps its id, state and error; its key moves to the
                        # new one (released first: the key is unique per source).
                        retried.idempotency_key = None
                        session.flush()
                    session.add(row)
            except IntegrityError:
                # PostgreSQL: another process inserted the same key after our read.
                found = (
                    self._by_key(session, source, idempotency_key)
                    if idempotency_key is not None
                    else None
                )
                if found is None:
                    raise InvalidInput(f"transaction id {tx_id} is already used") from None
                return Began(_entry(found), False)
            return Began(_entry(row), True, retried.id if retried is not None else None)

    def advance(
        self, tx_id: str, state: TxState, *, expected: TxState | None = None, **fields: Any
    ) -> JournalEntry:
        """Move an unfinished entry to a step (``committed``, ``pushed``, …; the same one to
        only set fields), setting ``fields`` (``commit``, ``branch``, ``base_commit``,
        ``proposal_number``, ``error``, …).

        ``expected``: only if the entry is in that state now, else :class:`InvalidState`
        (recovery's compare-and-swap). Moving a finished entry is refused with
        :class:`InvalidState`.
        """
        if state.final:
            raise InvalidInput(f"{state} ends a transaction: use finish()")
        return self._move(tx_id, state, expected, fields)

    def finish(
        self,
        tx_id: str,
        state: TxState,
        *,
        result_json: str | None = None,
        error: str | None = None,
        expected: TxState | None = None,
        **fields: Any,
    ) -> JournalEntry:
        """End an entry in a final state (done, empty, failed, compensated), storing the result
        a retry with the same idempotency key gets, or the error."""
        if not state.final:
            raise InvalidInput(f"{state} does not end a transaction: use advance()")
        if result_json is not None:
            fields["result_json"] = result_json
        if error is not None:
            fields["error"] = error
        return self._move(tx_id, state, expected, fields)

    def _move(
        self, tx_id: str, state: TxState, expected: TxState | None, fields: dict[str, Any]
    ) -> JournalEntry:
        unknown = set(fields) - _FIELDS
        if unknown:
            raise TypeError(f"unknown journal field(s): {', '.join(sorted(unknown))}")
        with self.db.session() as session:
            row = session.execute(
                select(TransactionRow).where(TransactionRow.id == tx_id).with_for_update()
            ).scalar_one_or_none()
            if row is None:
                raise TransactionNotFound(tx_id)
            current = TxState(row.state)
            what = f"transaction {tx_id}"
            if expected is not None and current is not expected:
                raise InvalidState(what, current, f"move from {expected} to {state}")
            if current.final:
                raise InvalidState(what, current, f"move to {state}", hint="it has finished")
            row.state = state
            for name, value in fields.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
            session.flush()
            return _entry(row)

    def get(self, tx_id: str) -> JournalEntry:
        """The entry with this id, else :class:`TransactionNotFound`."""
        with self.db.session(write=False) as session:
            row = session.get(TransactionRow, tx_id)
            if row is None:
                raise TransactionNotFound(tx_id)
            return _entry(row)

    def by_key(self, source: str, key: str) -> JournalEntry | None:
        """The entry begun on ``source`` with this idempotency key, if any."""
        with self.db.session(write=False) as session:
            row = self._by_key(session, source, key)
            return _entry(row) if row is not None else None

    def unfinished(
        self, source: str | None = None, *, older_than: timedelta | None = None
    ) -> list[JournalEntry]:
        """Entries not in a final state, oldest first: what crash recovery looks at.

        ``older_than``: only those not moved for that long (an entry moved recently is likely
        still running; ``owner`` says which process runs it).
        """
        steps = [s for s in TxState if not s.final]
        query = select(TransactionRow).where(TransactionRow.state.in_(steps))
        if source is not None:
            query = query.where(TransactionRow.source == source)
        if older_than is not None:
            query = query.where(TransactionRow.updated_at <= utcnow() - older_than)
        query = query.order_by(TransactionRow.created_at, TransactionRow.id)
        with self.db.session(write=False) as session:
            return [_entry(r) for r in session.execute(query).scalars()]

    @staticmethod
    def _by_key(
        session: Session, source: str, key: str, *, lock: bool = False
    ) -> TransactionRow | None:
        query = select(TransactionRow).where(
            TransactionRow.source == source, TransactionRow.idempotency_key == key
        )
        if lock:  # PostgreSQL: a racing retry waits here, then no longer finds the old row
            query = query.with_for_update()
        return session.execute(query).scalar_one_or_none()
