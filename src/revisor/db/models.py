"""The tables: proposals and their comments, the transaction journal, the audit log.

Why this module exists: it is the schema, in one place, as typed SQLAlchemy models; the initial
migration was generated from it and is reviewed against it. Only portable types are used (no JSON
column type, no native enums, no server-side defaults), so the same models run on SQLite and
PostgreSQL. JSON is stored as text and read by the data-access modules. Times are timezone-aware
UTC everywhere (:class:`UTCDateTime`), whatever the database does with time zones. Constraint
names follow one naming convention, so migrations can refer to them on both databases.

Nothing outside ``revisor.db`` sees these rows: the data-access modules hand out frozen
dataclasses.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from revisor.providers.base import MergeMethod, ProposalStatus

__all__ = [
    "AuditRow",
    "Base",
    "CandidateRow",
    "CandidateStatus",
    "CandidateStrategy",
    "CommentRow",
    "ProposalRow",
    "TransactionRow",
    "TxState",
    "UTCDateTime",
    "WorkspaceRow",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHA = 64  # room for SHA-256 object ids
NAME = 255
REF = 1000


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite keeps none: UTC is assumed)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: give a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class TxState(enum.StrEnum):
    """Where a transaction is. The first four are steps, the last four are endings.

    ``failed``: it failed and left nothing behind (nothing had been pushed, or compensation
    removed it); ``compensated``: it failed after reaching the remote and compensation undid that.
    An entry whose compensation itself failed stays in its step (with ``error`` set), so recovery
    finds it among the unfinished ones.
    """

    STARTED = "started"
    COMMITTED = "committed"
    PUSHED = "pushed"
    PROPOSED = "proposed"
    QUEUED = "queued"  # pushed; the provider was unreachable, the proposal is opened later
    DONE = "done"
    EMPTY = "empty"
    FAILED = "failed"
    COMPENSATED = "compensated"

    @property
    def final(self) -> bool:
        return self in _FINAL



_FINAL = frozenset({TxState.DONE, TxState.EMPTY, TxState.FAILED, TxState.COMPENSATED})


def _str_enum(cls: type[enum.StrEnum]) -> Enum:
    # A VARCHAR holding the enum's values: no native type, no CHECK, so adding a value later
    # needs no migration on either database.
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}  # noqa: RUF012


class ProposalRow(Base):
    """A proposal hosted by the builtin provider; ``number`` counts per source from 1."""

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(NAME))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    author_name: Mapped[str] = mapped_column(String(NAME))
    author_email: Mapped[str] = mapped_column(String(NAME))
    source_branch: Mapped[str] = mapped_column(String(REF))
    source_commit: Mapped[str] = mapped_column(String(SHA))
    target_branch: Mapped[str] = mapped_column(String(REF))
    status: Mapped[ProposalStatus] = mapped_column(_str_enum(ProposalStatus))
    provider: Mapped[str] = mapped_column(String(32))
    url: Mapped[str | None] = mapped_column(Text)
    merged_commit: Mapped[str | None] = mapped_column(String(SHA))
    merge_method: Mapped[MergeMethod | None] = mapped_column(_str_enum(MergeMethod))
    labels: Mapped[str] = mapped_column(Text)  # a JSON list of strings
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("source", "number"),
        Index(None, "source", "status", "number"),
        Index(None, "source", "source_branch"),
        # At most one open proposal per branch: concurrent opens of the same branch meet here.
        Index(
            "uq_proposals_open_branch",
            "source",
            "source_branch",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )


class CommentRow(Base):
    """A comment on a builtin proposal."""

    __tablename__ = "proposal_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    author_name: Mapped[str] = mapped_column(String(NAME))
    author_email: Mapped[str] = mapped_column(String(NAME))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]

    __table_args__ = (Index(None, "proposal_id", "id"),)


class TransactionRow(Base):
    """The journal: one row per transaction, moved step by step, so that a crash is found and
    compensated at the next start and an idempotency key answers a retry."""

    __tablename__ = "transactions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex
    source: Mapped[str] = mapped_column(String(NAME))
    idempotency_key: Mapped[str | None] = mapped_column(String(NAME))
    state: Mapped[TxState] = mapped_column(_str_enum(TxState))
    owner: Mapped[str] = mapped_column(String(NAME))  # host:pid of the process running it
    actor_name: Mapped[str] = mapped_column(String(NAME))
    actor_email: Mapped[str] = mapped_column(String(NAME))
    message: Mapped[str] = mapped_column(Text)
    base_ref: Mapped[str] = mapped_column(String(REF))
    base_commit: Mapped[str | None] = mapped_column(String(SHA))
    commit: Mapped[str | None] = mapped_column(String(SHA))
    branch: Mapped[str | None] = mapped_column(String(REF))
    direct: Mapped[bool] = mapped_column(Boolean)
    proposal_number: Mapped[int | None] = mapped_column(Integer)
    result_json: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("source", "idempotency_key"),
        Index(None, "state", "source"),
    )


class AuditRow(Base):
    """Who did what, when, to what, from which value to which."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(500))
    action: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(NAME))
    target: Mapped[str | None] = mapped_column(String(REF))
    before: Mapped[str | None] = mapped_column(String(REF))
    after: Mapped[str | None] = mapped_column(String(REF))
    details: Mapped[str | None] = mapped_column(Text)  # a JSON object

    __table_args__ = (
        Index(None, "source", "id"),
        Index(None, "actor", "id"),
        Index(None, "action", "id"),
        Index(None, "target", "id"),
        Index(None, "at"),
        {"sqlite_autoincrement": True},  # ids never reused: they are the pagination cursor
    )


class CandidateStatus(enum.StrEnum):
    """Where a version candidate is: taking changes, landed on its target, or given up."""

    OPEN = "open"
    SUBMITTED = "submitted"
    ABANDONED = "abandoned"


class CandidateStrategy(enum.StrEnum):
    """How a candidate follows its moving target: its commits replayed onto the target
    (``rebase``), or the target merged into it (``merge``)."""

    REBASE = "rebase"
    MERGE = "merge"


class CandidateRow(Base):
    """A version candidate (seed 001): a named change set against a source's target branch.

    Its commits are the ref ``refs/revisor/candidates/<id>``; ``head_commit`` mirrors that ref as
    last moved (the ref is the truth). ``base_commit`` is the target commit it is based on,
    ``conflicts`` the paths (a JSON list) that conflict with the target as of ``target_checked``.
    ``rewrites`` (a JSON object, old → new commit) remembers candidate commits replaced by a
    rebase, for workspaces synced with the old ones. Ids are never reused (they name refs).
    """

    __tablename__ = "candidates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    author_name: Mapped[str] = mapped_column(String(NAME))
    author_email: Mapped[str] = mapped_column(String(NAME))
    target_branch: Mapped[str] = mapped_column(String(REF))
    base_commit: Mapped[str] = mapped_column(String(SHA))
    head_commit: Mapped[str] = mapped_column(String(SHA))
    status: Mapped[CandidateStatus] = mapped_column(_str_enum(CandidateStatus))
    strategy: Mapped[CandidateStrategy] = mapped_column(_str_enum(CandidateStrategy))
    has_conflicts: Mapped[bool] = mapped_column(Boolean)
    conflicts: Mapped[str] = mapped_column(Text)  # a JSON list of paths
    target_checked: Mapped[str | None] = mapped_column(String(SHA))
    rewrites: Mapped[str] = mapped_column(Text)  # a JSON object: old commit → new commit
    proposal_provider: Mapped[str | None] = mapped_column(String(32))
    proposal_number: Mapped[int | None] = mapped_column(Integer)
    proposal_url: Mapped[str | None] = mapped_column(Text)
    change_id: Mapped[str | None] = mapped_column(String(NAME))
    submitted_commit: Mapped[str | None] = mapped_column(String(SHA))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_synced_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("source", "name"),
        Index(None, "source", "status", "id"),
        {"sqlite_autoincrement": True},  # ids name refs: never reused
    )


class WorkspaceRow(Base):
    """One user's workspace in one candidate: the ref ``refs/revisor/workspaces/<id>/<ref_name>``.

    ``base_commit`` is the candidate commit it last synced with; ``changes_base`` (None: the
    same) the commit its unpublished changes are relative to, when that differs (after a
    publish that raced a save, or a rebase of the candidate). ``conflicts`` is a JSON list of
    ``{path, candidate_commits, users}``; ``resolutions`` a JSON object of the resolutions given
    so far for some of them, path → ``{blob, mode, theirs}`` (``blob`` None: deleted).
    """

    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    user_name: Mapped[str] = mapped_column(String(NAME))  # the user's login, as given
    ref_name: Mapped[str] = mapped_column(String(NAME))  # the encoded user: one ref component
    author_name: Mapped[str] = mapped_column(String(NAME))
    author_email: Mapped[str] = mapped_column(String(NAME))
    base_commit: Mapped[str] = mapped_column(String(SHA))
    changes_base: Mapped[str | None] = mapped_column(String(SHA))
    head_commit: Mapped[str] = mapped_column(String(SHA))
    conflicts: Mapped[str] = mapped_column(Text)
    resolutions: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_synced_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("candidate_id", "user_name"),)
