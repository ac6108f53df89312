"""Who is calling, and what they may do: users, API tokens and roles.

Why this module exists: every entry point that serves more than one person (the HTTP API, the web
UI) asks the same two questions — *who is this* (``authenticate``) and *may they do this*
(``authorize``) — and must get the same answers. The rules, in one place:

**Tokens.** A token is ``rvs_`` followed by ``secrets.token_urlsafe(32)`` (43 characters, 256
random bits). It is shown once, when it is made; the database keeps its SHA-256 and a short
prefix (``rvs_`` + 8 characters) to recognise it in listings, never the token. A presented token
is checked for its shape, hashed, looked up by hash and compared in constant time. Missing,
malformed, unknown, expired and revoked tokens, and tokens of disabled users, are refused with
:class:`~revisor.errors.Unauthenticated` (HTTP 401) and a message that never contains the token.
``last_used_at`` is written at most once a minute per token.

**Single-user mode.** While no user exists, :meth:`AuthService.has_users` is False and every
caller is the local administrator (:meth:`AuthService.local_principal`); a bearer token is
ignored, and ``revisor serve`` refuses to listen beyond loopback. Once a user exists, every
request needs a valid token — also when every user is later disabled (users are never deleted).
``has_users`` is cheap: a True answer is kept for good, a False one for
:data:`HAS_USERS_TTL` seconds (a user made by another process counts within that time).

**Roles** and who may do what: :mod:`revisor.services.auth_policy` (re-exported here).

**Managing users** (``revisor users …``, ``revisor tokens …``): every change is written to the
audit log in the same database transaction (``user.create``, ``user.update``, ``user.role``,
``token.create``, ``token.revoke``), never with a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from revisor.config import Config
from revisor.db.audit import AuditLog, actor_of
from revisor.db.auth import AuthStore, Role, Token, TokenState, User
from revisor.db.database import Database
from revisor.db.models import utcnow
from revisor.errors import (
    DatabaseUnavailable,
    InvalidInput,
    InvalidState,
    NotAllowed,
    Unauthenticated,
    UserNotFound,
    ValidationFailed,
)
from revisor.services.auth_policy import (
    ADMIN_ACTIONS,
    DEFAULT_POLICY,
    LOCAL_USER,
    Action,
    AuthPolicy,
    Principal,
    parse_role,
    permitted,
)

__all__ = [
    "DEFAULT_POLICY",
    "HAS_USERS_TTL",
    "LOCAL_USER",
    "TOKEN_PREFIX",
    "Action",
    "AuthPolicy",
    "AuthService",
    "NewToken",
    "Principal",
    "Role",
    "Token",
    "TokenState",
    "User",
    "hash_token",
    "parse_role",
    "permitted",
]

log = logging.getLogger(__name__)

TOKEN_PREFIX = "rvs_"  # noqa: S105 - a marker, not a secret
HAS_USERS_TTL = 2.0
"""Seconds a "no users yet" answer is reused."""
TOUCH_EVERY = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per token."""

_SECRET_CHARS = 43  # len(secrets.token_urlsafe(32))
_TOKEN = re.compile(re.escape(TOKEN_PREFIX) + rf"[A-Za-z0-9_-]{{{_SECRET_CHARS}}}")
_SHOWN = len(TOKEN_PREFIX) + 8  # the prefix kept for display
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
_EMAIL = re.compile(r"[^\s<>@]+@[^\s<>@]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f<>]")
MAX_TEXT = 255


def hash_token(token: str) -> str:
    """The SHA-256 (hex) of a token: what the database keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_user_name(name: str) -> str:
    if not isinstance(name, str) or not _USER_NAME.fullmatch(name):
        raise ValidationFailed(
            (("name", "1-64 characters a-z, A-Z, 0-9, '.', '_', '@', '+' or '-', starting with "
              "a letter or a digit"),)
        )
    if name == LOCAL_USER:
        raise ValidationFailed((("name", f"{LOCAL_USER!r} is the single-user mode's name"),))
    return name


def _check_text(value: str, what: str, *, empty: bool = True) -> str:
    value = value.strip()
    if (not value and not empty) or len(value) > MAX_TEXT or _CONTROL.search(value):
        raise ValidationFailed(
            ((what, f"at most {MAX_TEXT} characters, without '<', '>' or control characters"),)
        )
    return value


def _check_email(value: str) -> str:
    value = value.strip()
    if value and (len(value) > MAX_TEXT or not _EMAIL.fullmatch(value)):
        raise ValidationFailed((("email", "expected name@host"),))
    if value.lower().endswith("@revisor"):  # the signature of users without an e-mail
        raise ValidationFailed((("email", "the host 'revisor' is reserved"),))
    return value


@dataclass(frozen=True)
class NewToken:
    """A token just made: ``secret`` is the token, shown this once and stored nowhere."""

    token: Token
    user: User
    secret: str = field(repr=False)


class AuthService:
    """Users, tokens and the authorization policy over one database. Constructing it does no
    I/O; ``clock`` (timezone-aware UTC "now") is injectable for tests of expiry."""

    def __init__(
        self,
        db: Database,
        policy: AuthPolicy | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.policy = policy or DEFAULT_POLICY
        self.clock = clock
        self.store = AuthStore(db)
        self.audit = AuditLog(db)
        self._lock = threading.Lock()
        self._has_users = False
        self._checked_at: float | None = None

    @classmethod
    def open(cls, config: Config, *, database: Database | None = None) -> AuthService:
        """For the command line: the configuration's database, migrated, and its policy."""
        db = database or Database.for_data_dir(config.data_dir)
        db.migrate()
        return cls(db, AuthPolicy.from_config(config.auth))

    # -- who is calling ---------------------------------------------------------------------------
    def has_users(self) -> bool:
        """False: single-user mode (no users were ever created)."""
        if self._has_users:
            return True  # users are never deleted
        now = time.monotonic()
        with self._lock:
            if self._checked_at is not None and now - self._checked_at < HAS_USERS_TTL:
                return self._has_users
        found = self.store.has_users()
        with self._lock:
            self._has_users = self._has_users or found
            self._checked_at = now
            return self._has_users

    def local_principal(self) -> Principal:
        return Principal(LOCAL_USER, Role.ADMIN, single_user=True)

    def principal_for(self, user: User, *, token_id: int | None = None) -> Principal:
        """The principal acting as ``user`` (the web UI's session uses this too)."""
        return Principal(
            user=user.name,
            role=user.role,
            email=user.email,
            display_name=user.display_name,
            source_roles=user.source_roles,
            token_id=token_id,
        )

    def authenticate(self, bearer: str | None) -> Principal:
        """The caller of a request carrying ``Authorization: Bearer <bearer>`` (None: none).

        Raises :class:`Unauthenticated` for a missing, malformed, unknown, expired or revoked
        token, or a disabled user, when users exist. The message never contains the token.
        """
        if not self.has_users():
            return self.local_principal()
        if bearer is None:
            raise Unauthenticated(
                "a bearer token is required",
                hint="send 'Authorization: Bearer <token>'; an admin makes one with "
                "'revisor tokens create'",
            )
        if not _TOKEN.fullmatch(bearer):
            log.info("authentication refused: a malformed token")
            raise Unauthenticated(
                "the bearer token is malformed",
                hint="send a token made by 'revisor tokens create', as it was printed",
            )
        digest = hash_token(bearer)
        match = self.store.find_token(digest)
        if match is None or not hmac.compare_digest(match.token_hash, digest):
            log.info("authentication refused: an unknown token")
            raise Unauthenticated("the token is not known")
        token, user = match.token, match.user
        now = self.clock()
        state = token.state(now)
        if state is not TokenState.ACTIVE:
            log.info("authentication refused: token %d of %s is %s", token.id, user.name, state)
            raise Unauthenticated(
                f"token {token.id} is {state.value}", hint="ask an admin for a new token"
            )
        if user.disabled:
            log.info("authentication refused: token %d of disabled user %s", token.id, user.name)
            raise Unauthenticated(f"user {user.name!r} is disabled")
        self._touch(token, now)
        return self.principal_for(user, token_id=token.id)

    def _touch(self, token: Token, now: datetime) -> None:
        if token.last_used_at is not None and now - token.last_used_at < TOUCH_EVERY:
            return
        try:
            self.store.touch_token(token.id, now=now, every=TOUCH_EVERY)
        except DatabaseUnavailable as exc:  # bookkeeping only: the request goes on
            log.warning("token %d: last use not recorded: %s", token.id, exc)

    # -- what they may do -------------------------------------------------------------------------
    def permitted(
        self,
        principal: Principal,
        action: Action,
        source: str | None = None,
        *,
        owner: str | None = None,
    ) -> bool:
        return permitted(principal, action, source, owner, self.policy)

    def authorize(
        self,
        principal: Principal,
        action: Action,
        source: str | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        """Raise :class:`NotAllowed` unless ``principal`` may do ``action`` on ``source``;
        ``owner`` is the user whose workspace (or candidate) is acted on."""
        if permitted(principal, action, source, owner, self.policy):
            return
        role = principal.role_for(source)
        where = f" on source {source!r}" if source is not None else ""
        whose = f" of user {owner!r}" if owner is not None else ""
        raise NotAllowed(
            f"user {principal.user!r} ({role.value}) may not {action.value}{whose}{where}",
            hint=self._hint(action),
        )

    def _hint(self, action: Action) -> str:
        if action is Action.WRITE_WORKSPACE:
            return "editors write only their own workspaces; admins write any"
        if action is Action.MANAGE_CANDIDATE and self.policy.editors_manage_own_candidates:
            return "editors manage only the candidates they created; admins manage any"
        if action is Action.CREATE_CANDIDATE:
            return f"creating candidates needs the role {self.policy.create_candidates.value}"
        if action is Action.SUBMIT_CANDIDATE:
            return f"submitting candidates needs the role {self.policy.submit_candidates.value}"
        if action in ADMIN_ACTIONS or action is Action.MANAGE_CANDIDATE:
            return "this needs the role admin"
        return "this needs the role editor"

    def owner_of(self, author_email: str) -> str | None:
        """The user whose commits carry ``author_email`` (a candidate's author), or None.

        A user's signature e-mail is their e-mail, else ``<name>@revisor`` (see
        :meth:`Principal.signature`); e-mails are unique among users.
        """
        user = self.store.user_by_email(author_email)
        if user is not None:
            return user.name
        local, _, domain = author_email.rpartition("@")
        if domain == "revisor" and local:
            try:
                found = self.store.get_user(local)
            except (UserNotFound, InvalidInput):
                return None
            return found.name if not found.email else None
        return None

    # -- managing users and tokens ---------------------------------------------------------------
    def _actor(self, actor: Principal | None) -> str:
        return actor_of((actor or self.local_principal()).signature())

    def _created(self) -> None:
        with self._lock:
            self._has_users = True

    def create_user(
        self,
        name: str,
        role: Role | str,
        *,
        display_name: str = "",
        email: str = "",
        actor: Principal | None = None,
    ) -> User:
        """A new user (:class:`~revisor.errors.AlreadyExists` if the name or e-mail is taken).
        The first user ends single-user mode."""
        name = _check_user_name(name)
        role = parse_role(role)
        display = _check_text(display_name, "display name") or name
        email = _check_email(email)
        with self.db.session() as s:
            user = self.store.create_user(
                name, role=role, display_name=display, email=email, now=self.clock(), session=s
            )
            self.audit.record(
                self._actor(actor), "user.create", None, f"users/{name}", after=role.value,
                details={"display_name": display, "email": email}, session=s,
            )
        self._created()
        return user

    def get_user(self, name: str) -> User:
        return self.store.get_user(name)

    def list_users(self) -> list[User]:
        return self.store.list_users()

    def set_role(
        self,
        name: str,
        role: Role | str | None,
        *,
        source: str | None = None,
        actor: Principal | None = None,
    ) -> User:
        """Set ``name``'s global role, or (``source``) their role on that source; ``role`` None
        with a source removes the source's role (the global one applies again)."""
        new = None if role is None else parse_role(role)
        if new is None and source is None:
            raise InvalidInput("a user always has a global role", hint="give reader, editor "
                               "or admin")
        with self.db.session() as s:
            before = self.store.get_user(name, session=s)
            if source is None:
                assert new is not None
                user = self.store.update_user(name, role=new, now=self.clock(), session=s)
                old: Role | None = before.role
            else:
                user = self.store.set_source_role(name, source, new, now=self.clock(), session=s)
                old = before.source_roles.get(source)
            self.audit.record(
                self._actor(actor), "user.role", source, f"users/{name}",
                before=old.value if old else None, after=new.value if new else None, session=s,
            )
        return user

    def update_user(
        self,
        name: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        disabled: bool | None = None,
        actor: Principal | None = None,
    ) -> User:
        """Change a user's display name, e-mail or disabled flag (None: unchanged). A disabled
        user's tokens stop working at once; enabling them again brings back those not revoked."""
        if display_name is not None:
            display_name = _check_text(display_name, "display name", empty=False)
        if email is not None:
            email = _check_email(email)
        changed = {k: v for k, v in (("display_name", display_name), ("email", email),
                                     ("disabled", disabled)) if v is not None}
        with self.db.session() as s:
            user = self.store.update_user(
                name, now=self.clock(), display_name=display_name, email=email,
                disabled=disabled, session=s,
            )
            self.audit.record(
                self._actor(actor), "user.update", None, f"users/{name}", details=changed,
                session=s,
            )
        return user

    def create_token(
        self,
        user: str,
        *,
        label: str = "",
        expires_in: timedelta | None = None,
        actor: Principal | None = None,
    ) -> NewToken:
        """A new token for an existing, enabled user; it never expires when ``expires_in`` is
        None. The returned :attr:`NewToken.secret` is the only copy of the token."""
        return self.issue_token(user, label=label, expires_in=expires_in, actor=actor)

    def issue_token(
        self,
        user: str,
        role: Role | str | None = None,
        *,
        source: str | None = None,
        display_name: str = "",
        email: str = "",
        label: str = "",
        expires_in: timedelta | None = None,
        actor: Principal | None = None,
    ) -> NewToken:
        """``revisor tokens create``: a token for ``user``, in one database transaction.

        The rule: a missing user is created with ``role`` (required then) — with ``source``, the
        user's global role is ``reader`` and ``role`` is their role on that source. For an
        existing user a given ``role`` is set (globally, or on ``source``); None leaves the
        roles as they are; a display name or e-mail given replaces theirs. A disabled user gets
        no token (enable them first).
        """
        name = _check_user_name(user)
        new_role = None if role is None else parse_role(role)
        label = _check_text(label, "label")
        if expires_in is not None and expires_in <= timedelta(0):
            raise ValidationFailed((("expires", "must be in the future"),))
        who = self._actor(actor)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        created = False
        with self.db.session() as s:
            try:
                existing: User | None = self.store.get_user(name, session=s)
            except UserNotFound:
                existing = None
            if existing is None:
                if new_role is None:
                    raise InvalidInput(
                        f"no user {name!r}: give a role to create them",
                        hint="revisor tokens create --user NAME --role reader|editor|admin",
                    )
                global_role = new_role if source is None else Role.READER
                display = _check_text(display_name, "display name") or name
                mail = _check_email(email)
                self.store.create_user(
                    name, role=global_role, display_name=display, email=mail, now=now, session=s
                )
                self.audit.record(who, "user.create", None, f"users/{name}",
                                  after=global_role.value,
                                  details={"display_name": display, "email": mail}, session=s)
                created = True
            elif existing.disabled:
                raise InvalidState(f"user {name!r}", "disabled", "get a token",
                                   hint=f"revisor users enable {name}")
            elif display_name.strip() or email.strip():
                new_display = _check_text(display_name, "display name") or None
                new_mail = _check_email(email) or None
                changed = {k: v for k, v in (("display_name", new_display),
                                             ("email", new_mail)) if v}
                self.store.update_user(name, now=now, display_name=new_display,
                                       email=new_mail, session=s)
                self.audit.record(who, "user.update", None, f"users/{name}", details=changed,
                                  session=s)
            if new_role is not None and (source is not None or not created):
                if source is None:
                    assert existing is not None
                    old: Role | None = existing.role
                    self.store.update_user(name, role=new_role, now=now, session=s)
                else:
                    old = existing.source_roles.get(source) if existing else None
                    self.store.set_source_role(name, source, new_role, now=now, session=s)
                if old is not new_role:
                    self.audit.record(who, "user.role", source, f"users/{name}",
                                      before=old.value if old else None, after=new_role.value,
                                      session=s)
            token = self.store.add_token(
                name, token_hash=hash_token(secret), prefix=secret[:_SHOWN], label=label,
                now=now, expires_at=None if expires_in is None else now + expires_in, session=s,
            )
            self.audit.record(
                who, "token.create", None, f"tokens/{token.id}", after=token.prefix,
                details={"user": name, "label": label,
                         "expires": token.expires_at.isoformat() if token.expires_at else None},
                session=s,
            )
            owner = self.store.get_user(name, session=s)
        self._created()
        return NewToken(token, owner, secret)

    def list_tokens(self, user: str | None = None) -> list[Token]:
        """Tokens (of ``user``, or everyone's), oldest first; never their secrets."""
        return self.store.list_tokens(user)

    def revoke_token(self, token_id: int, *, actor: Principal | None = None) -> Token:
        """Revoke a token (at once: the next request with it is refused). Revoking a revoked
        token changes nothing and answers it as it is."""
        with self.db.session() as s:
            token, changed = self.store.revoke_token(token_id, now=self.clock(), session=s)
            if changed:
                self.audit.record(
                    self._actor(actor), "token.revoke", None, f"tokens/{token_id}",
                    before=token.prefix, details={"user": token.user}, session=s,
                )
        return token
