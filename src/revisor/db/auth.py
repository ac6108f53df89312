"""Users, their roles (global and per source) and their API tokens, as stored.

Why this module exists: the HTTP API and the web UI serve several people, and who they are lives
in SQL next to the rest of the metadata (DESIGN principle 7). Three tables:

- ``users``: a unique login ``name``, a display name and e-mail (a commit's author), a global
  ``role``, ``disabled``. Users are never deleted (a name in the audit log keeps meaning the same
  person); they are disabled. E-mails, when given, are unique: they map a commit's author back to
  one user.
- ``user_source_roles``: a role for one source that overrides the global role there.
- ``api_tokens``: the SHA-256 of a token (never the token itself), a short non-secret prefix to
  recognise it in listings, a label, when it was made, when it expires, when it was revoked and
  when it was last used. Ids are never reused (a revoked id stays revoked).

Callers get frozen dataclasses, never rows. Every writing method takes an optional ``session`` so
that the service records its audit entry in the same database transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    CursorResult,
    Executable,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    exists,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from revisor.db.database import Database
from revisor.db.models import NAME, Base, _str_enum
from revisor.errors import AlreadyExists, TokenNotFound, UserNotFound

__all__ = [
    "AuthStore",
    "Role",
    "SourceRoleRow",
    "Token",
    "TokenMatch",
    "TokenRow",
    "TokenState",
    "User",
    "UserRow",
]

HASH = 64  # a SHA-256, hex
PREFIX = 16


class Role(enum.StrEnum):
    """Ordered: each role can do everything the roles before it can."""

    READER = "reader"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class UserRow(Base):
    """A person (or a program) that calls the API; ``email`` None: none given."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME))
    display_name: Mapped[str] = mapped_column(String(NAME))
    email: Mapped[str | None] = mapped_column(String(NAME))
    role: Mapped[Role] = mapped_column(_str_enum(Role))
    disabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("name"),
        UniqueConstraint("email"),
        {"sqlite_autoincrement": True},
    )


class SourceRoleRow(Base):
    """A user's role on one source, overriding their global role there."""

    __tablename__ = "user_source_roles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(NAME))
    role: Mapped[Role] = mapped_column(_str_enum(Role))

    __table_args__ = (UniqueConstraint("user_id", "source"),)


class TokenRow(Base):
    """An API token: its SHA-256 only, and a short prefix of it for people to recognise."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(HASH))
    prefix: Mapped[str] = mapped_column(String(PREFIX))
    label: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("token_hash"),
        Index(None, "user_id", "id"),
        {"sqlite_autoincrement": True},  # a revoked id is never handed out again
    )


# -- values ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class User:
    """A user as stored; ``email`` is "" when none was given."""

    id: int
    name: str
    display_name: str
    email: str
    role: Role
    disabled: bool
    created_at: datetime
    updated_at: datetime
    source_roles: Mapping[str, Role] = field(default_factory=dict)


class TokenState(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Token:
    """A token as stored: everything but the secret (which is stored nowhere)."""

    id: int
    user: str
    prefix: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> TokenState:
        if self.revoked_at is not None:
            return TokenState.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return TokenState.EXPIRED
        return TokenState.ACTIVE


@dataclass(frozen=True)
class TokenMatch:
    """A token found by its hash, with its user (who may be disabled)."""

    token: Token
    token_hash: str
    user: User


def _rowcount(s: Session, statement: Executable) -> int:
    return cast(CursorResult[Any], s.execute(statement)).rowcount


def _user(row: UserRow, roles: Mapping[str, Role]) -> User:
    return User(
        id=row.id,
        name=row.name,
        display_name=row.display_name,
        email=row.email or "",
        role=row.role,
        disabled=row.disabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
        source_roles=MappingProxyType(dict(sorted(roles.items()))),
    )


def _token(row: TokenRow, user: str) -> Token:
    return Token(
        id=row.id,
        user=user,
        prefix=row.prefix,
        label=row.label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


# -- data access -----------------------------------------------------------------------------------
class AuthStore:
    """Users, per-source roles and tokens in one database. Constructing it does no I/O."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def _session(self, session: Session | None, *, write: bool) -> Iterator[Session]:
        if session is not None:
            yield session
        else:
            with self.db.session(write=write) as own:
                yield own

    # -- users ------------------------------------------------------------------------------------
    def has_users(self) -> bool:
        with self.db.session(write=False) as s:
            return bool(s.execute(select(exists().where(UserRow.id.is_not(None)))).scalar())

    def create_user(
        self,
        name: str,
        *,
        role: Role,
        display_name: str,
        email: str,
        now: datetime,
        session: Session | None = None,
    ) -> User:
        """A new user; :class:`AlreadyExists` when the name (or the e-mail) is taken."""
        with self._session(session, write=True) as s:
            self._check_free(s, name, email, None)
            row = UserRow(
                name=name, display_name=display_name, email=email or None, role=role,
                disabled=False, created_at=now, updated_at=now,
            )
            try:
                with s.begin_nested():
                    s.add(row)
            except IntegrityError:  # a concurrent creation won
                raise AlreadyExists("user", name) from None
            return _user(row, {})

    def _check_free(self, s: Session, name: str | None, email: str, user_id: int | None) -> None:
        if name is not None and s.execute(select(UserRow.id).where(UserRow.name == name)).first():
            raise AlreadyExists("user", name)
        if email:
            other = s.execute(select(UserRow.name).where(UserRow.email == email)).scalar()
            if other is not None and (user_id is None or other != name):
                raise AlreadyExists(
                    "e-mail", email, hint=f"user {other!r} has it: e-mails name one user each"
                )

    def _user_row(self, s: Session, name: str) -> UserRow:
        row = s.execute(select(UserRow).where(UserRow.name == name)).scalar_one_or_none()
        if row is None:
            raise UserNotFound(name)
        return row

    def _roles(self, s: Session, user_ids: list[int]) -> dict[int, dict[str, Role]]:
        roles: dict[int, dict[str, Role]] = {i: {} for i in user_ids}
        if user_ids:
            query = select(SourceRoleRow).where(SourceRoleRow.user_id.in_(user_ids))
            for r in s.execute(query).scalars():
                roles[r.user_id][r.source] = r.role
        return roles

    def get_user(self, name: str, *, session: Session | None = None) -> User:
        with self._session(session, write=False) as s:
            row = self._user_row(s, name)
            return _user(row, self._roles(s, [row.id])[row.id])

    def user_by_email(self, email: str, *, session: Session | None = None) -> User | None:
        with self._session(session, write=False) as s:
            row = s.execute(select(UserRow).where(UserRow.email == email)).scalar_one_or_none()
            return None if row is None else _user(row, self._roles(s, [row.id])[row.id])

    def list_users(self, *, session: Session | None = None) -> list[User]:
        with self._session(session, write=False) as s:
            rows = list(s.execute(select(UserRow).order_by(UserRow.name)).scalars())
            roles = self._roles(s, [r.id for r in rows])
            return [_user(r, roles[r.id]) for r in rows]

    def update_user(
        self,
        name: str,
        *,
        now: datetime,
        role: Role | None = None,
        display_name: str | None = None,
        email: str | None = None,
        disabled: bool | None = None,
        session: Session | None = None,
    ) -> User:
        """Change the fields given (None: unchanged); returns the user as it now is."""
        with self._session(session, write=True) as s:
            row = self._user_row(s, name)
            if email is not None and email != (row.email or ""):
                self._check_free(s, None, email, row.id)
                row.email = email or None
            if role is not None:
                row.role = role
            if display_name is not None:
                row.display_name = display_name
            if disabled is not None:
                row.disabled = disabled
            row.updated_at = now
            try:
                with s.begin_nested():
                    s.flush()
            except IntegrityError:
                raise AlreadyExists("e-mail", email or "") from None
            return _user(row, self._roles(s, [row.id])[row.id])

    def set_source_role(
        self,
        name: str,
        source: str,
        role: Role | None,
        *,
        now: datetime,
        session: Session | None = None,
    ) -> User:
        """Give ``name`` ``role`` on ``source`` (None: remove it, the global role applies)."""
        with self._session(session, write=True) as s:
            row = self._user_row(s, name)
            current = s.execute(
                select(SourceRoleRow).where(
                    SourceRoleRow.user_id == row.id, SourceRoleRow.source == source
                )
            ).scalar_one_or_none()
            if role is None:
                if current is not None:
                    s.delete(current)
            elif current is not None:
                current.role = role
            else:
                s.add(SourceRoleRow(user_id=row.id, source=source, role=role))
            row.updated_at = now
            s.flush()
            return _user(row, self._roles(s, [row.id])[row.id])

    # -- tokens -----------------------------------------------------------------------------------
    def add_token(
        self,
        user: str,
        *,
        token_hash: str,
        prefix: str,
        label: str,
        now: datetime,
        expires_at: datetime | None,
        session: Session | None = None,
    ) -> Token:
        with self._session(session, write=True) as s:
            owner = self._user_row(s, user)
            row = TokenRow(
                user_id=owner.id, token_hash=token_hash, prefix=prefix, label=label,
                created_at=now, expires_at=expires_at, revoked_at=None, last_used_at=None,
            )
            s.add(row)
            s.flush()
            return _token(row, owner.name)

    def get_token(self, token_id: int, *, session: Session | None = None) -> Token:
        with self._session(session, write=False) as s:
            found = s.execute(
                select(TokenRow, UserRow.name)
                .join(UserRow, UserRow.id == TokenRow.user_id)
                .where(TokenRow.id == token_id)
            ).first()
            if found is None:
                raise TokenNotFound(token_id)
            return _token(found[0], found[1])

    def list_tokens(
        self, user: str | None = None, *, session: Session | None = None
    ) -> list[Token]:
        """Tokens (of ``user``, or of everyone), oldest first."""
        with self._session(session, write=False) as s:
            query = select(TokenRow, UserRow.name).join(UserRow, UserRow.id == TokenRow.user_id)
            if user is not None:
                query = query.where(TokenRow.user_id == self._user_row(s, user).id)
            return [_token(t, n) for t, n in s.execute(query.order_by(TokenRow.id))]

    def revoke_token(
        self, token_id: int, *, now: datetime, session: Session | None = None
    ) -> tuple[Token, bool]:
        """Revoke a token; returns it and whether this call revoked it (False: it already was)."""
        with self._session(session, write=True) as s:
            changed = _rowcount(
                s,
                update(TokenRow)
                .where(TokenRow.id == token_id, TokenRow.revoked_at.is_(None))
                .values(revoked_at=now),
            )
            return self.get_token(token_id, session=s), bool(changed)

    def find_token(self, token_hash: str) -> TokenMatch | None:
        """The token with this hash and its user (one read), or None."""
        with self.db.session(write=False) as s:
            found = s.execute(
                select(TokenRow, UserRow)
                .join(UserRow, UserRow.id == TokenRow.user_id)
                .where(TokenRow.token_hash == token_hash)
            ).first()
            if found is None:
                return None
            token_row, user_row = found
            user = _user(user_row, self._roles(s, [user_row.id])[user_row.id])
            return TokenMatch(_token(token_row, user.name), token_row.token_hash, user)

    def touch_token(self, token_id: int, *, now: datetime, every: timedelta) -> bool:
        """Set ``last_used_at`` to ``now`` unless it was set less than ``every`` ago; True if
        it was written (one conditional UPDATE: concurrent requests write it once)."""
        with self.db.session() as s:
            changed = _rowcount(
                s,
                update(TokenRow)
                .where(
                    TokenRow.id == token_id,
                    or_(TokenRow.last_used_at.is_(None), TokenRow.last_used_at <= now - every),
                )
                .values(last_used_at=now),
            )
            return bool(changed)
