"""Leases with fencing tokens: who may work on a source or a candidate, and until when.

Why this module exists: jobs run in several threads, processes and nodes at once (a scheduler in
``revisor serve``, a ``revisor worker``, someone typing ``revisor jobs run``), and some of their
work must not overlap — sync and squash on one candidate, cleanup and backup of one candidate. A
lease is a row in the shared database (``job_leases``): a key, an owner, an expiry and a
*fencing token* that grows by one at every acquisition and is never reused, because the row is
never deleted. A holder that stalls past its expiry (a GC pause, a stopped VM) may find its lease
taken over by another owner with a higher token; it must then not write its result, so every
write that matters is *fenced*: :meth:`Leases.check` is called inside the same database
transaction as the write (it locks the lease row, so a takeover cannot slip in between the check
and the commit), and just before a ref compare-and-swap whose expected value was read under the
lease (so whatever moved the ref meanwhile makes the CAS fail).

Every statement is atomic on SQLite and PostgreSQL alike: a new key is an INSERT that meets the
primary key when two race (the loser retries), an existing key is taken with a conditional
``UPDATE … WHERE token = <the token read>`` that only one racer can win.

Keys in use: ``source:<name>``, ``candidate:<source>:<id>``, ``scheduler`` (see
:func:`source_key`, :func:`candidate_key`).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from revisor.db.database import Database
from revisor.db.jobs import LeaseRow
from revisor.errors import LeaseLost

__all__ = [
    "SCHEDULER_KEY",
    "Lease",
    "Leases",
    "candidate_key",
    "new_owner",
    "source_key",
]

SCHEDULER_KEY = "scheduler"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _execute(s: Session, statement: Executable) -> int:
    """Run an UPDATE and return how many rows it matched."""
    return cast(CursorResult[Any], s.execute(statement)).rowcount


def source_key(source: str) -> str:
    return f"source:{source}"


def candidate_key(source: str, candidate: int) -> str:
    return f"candidate:{source}:{candidate}"


def new_owner(label: str = "") -> str:
    """A unique owner name: ``host:pid:<random>`` (with a label, e.g. the job's name)."""
    parts = [socket.gethostname()[:64], str(os.getpid()), uuid.uuid4().hex[:8]]
    if label:
        parts.append(label[:32])
    return ":".join(parts)


@dataclass(frozen=True)
class Lease:
    """A lease as it was granted or last renewed. ``token`` fences every write made under it."""

    key: str
    owner: str
    token: int
    expires_at: datetime

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires_at


class Leases:
    """The leases in one database. ``clock`` (epoch seconds) is replaceable for tests.
    Constructing does no I/O."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # -- taking and giving back -------------------------------------------------------------------
    def acquire(self, key: str, owner: str, ttl: float) -> Lease | None:
        """Take ``key`` for ``ttl`` seconds, or None if another owner holds it unexpired.

        A free or expired lease (or one this owner holds already) is taken with a new, higher
        token: whoever held it before is fenced out from now on.
        """
        for _ in range(20):  # only a lost INSERT race loops, and then the row exists
            now = self._now()
            expires = datetime.fromtimestamp(now.timestamp() + ttl, UTC)
            with self.db.session() as s:
                row = s.get(LeaseRow, key)
                if row is None:
                    try:
                        with s.begin_nested():
                            s.add(LeaseRow(key=key, owner=owner, token=1, expires_at=expires,
                                           acquired_at=now))
                    except IntegrityError:
                        continue  # another owner inserted it first: read it again
                    return Lease(key, owner, 1, expires)
                if row.owner and row.owner != owner and row.expires_at > now:
                    return None
                token = row.token
                done = _execute(
                    s,
                    update(LeaseRow)
                    .where(LeaseRow.key == key, LeaseRow.token == token)
                    .values(owner=owner, token=token + 1, expires_at=expires, acquired_at=now)
                    .execution_options(synchronize_session=False)
                )
                if done == 1:
                    return Lease(key, owner, token + 1, expires)
            # the token moved between our read and our update: someone else took it
            return None
        return None

    def renew(self, lease: Lease, ttl: float | None = None) -> Lease:
        """Extend the lease (by its original length unless ``ttl`` is given). LeaseLost if it
        was taken over — or has expired: an expired holder must stop, not carry on."""
        now = self._now()
        with self.db.session() as s:
            row = s.get(LeaseRow, lease.key)
            length = ttl
            if length is None and row is not None:
                length = max((row.expires_at - row.acquired_at).total_seconds(), 1.0)
            expires = datetime.fromtimestamp(now.timestamp() + (length or 1.0), UTC)
            done = _execute(
                s,
                update(LeaseRow)
                .where(LeaseRow.key == lease.key, LeaseRow.token == lease.token,
                       LeaseRow.owner == lease.owner, LeaseRow.expires_at > now)
                .values(expires_at=expires)
                .execution_options(synchronize_session=False)
            )
            if done != 1:
                raise LeaseLost(lease.key, lease.token, current=self._token(s, lease.key))
        return Lease(lease.key, lease.owner, lease.token, expires)

    def release(self, lease: Lease) -> None:
        """Give the lease back (nothing happens if it was taken over meanwhile). The row stays,
        so the next holder's token is higher still."""
        with self.db.session() as s:
            s.execute(
                update(LeaseRow)
                .where(LeaseRow.key == lease.key, LeaseRow.token == lease.token,
                       LeaseRow.owner == lease.owner)
                .values(owner="", expires_at=_EPOCH)
                .execution_options(synchronize_session=False)
            )

    # -- fencing ----------------------------------------------------------------------------------
    def check(self, lease: Lease, session: Session | None = None) -> None:
        """Raise LeaseLost unless ``lease`` is still current and unexpired.

        Given the ``session`` that is about to write a result, the check is part of that
        transaction: it locks the lease row (a no-op UPDATE), so no takeover can commit between
        this check and the write (PostgreSQL: the row lock; SQLite: the write lock).
        """
        if session is None:
            with self.db.session() as s:
                self._check(lease, s)
            return
        self._check(lease, session)

    def _check(self, lease: Lease, s: Session) -> None:
        now = self._now()
        done = _execute(
            s,
            update(LeaseRow)
            .where(LeaseRow.key == lease.key, LeaseRow.token == lease.token,
                   LeaseRow.owner == lease.owner, LeaseRow.expires_at > now)
            .values(owner=lease.owner)
            .execution_options(synchronize_session=False)
        )
        if done != 1:
            raise LeaseLost(lease.key, lease.token, current=self._token(s, lease.key))

    @staticmethod
    def _token(s: Session, key: str) -> int | None:
        token: int | None = s.execute(
            select(LeaseRow.token).where(LeaseRow.key == key)
        ).scalar_one_or_none()
        return token

    # -- looking ----------------------------------------------------------------------------------
    def held(self, key: str) -> Lease | None:
        """The unexpired lease on ``key``, whoever holds it (None: free)."""
        now = self._now()
        with self.db.session(write=False) as s:
            row = s.get(LeaseRow, key)
            if row is None or not row.owner or row.expires_at <= now:
                return None
            return Lease(row.key, row.owner, row.token, row.expires_at)

    def token(self, key: str) -> int | None:
        """The current (highest) token of ``key``, held or not (None: never taken)."""
        with self.db.session(write=False) as s:
            return self._token(s, key)
