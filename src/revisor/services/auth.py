"""Who is calling, and what they may do: users, API tokens and roles.

Why this module exists: every entry point that serves more than one person (the HTTP API, the web
UI) asks the same two questions — *who is this* (``authenticate``) and *may they do this*
(``authorize``) — and must get the same answers. Tokens are stored hashed; a token is shown once,
when it is created. With no users configured Revisor runs single-user: every caller is the local
administrator, and the server refuses to listen beyond loopback.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from revisor.db.database import Database
from revisor.errors import NotAllowed, Unauthenticated
from revisor.vcs import Signature

__all__ = ["LOCAL_USER", "Action", "AuthService", "Principal", "Role"]

LOCAL_USER = "local"


class Role(enum.StrEnum):
    """Ordered: each role can do everything the roles before it can."""

    READER = "reader"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class Action(enum.StrEnum):
    READ = "read"  # browse, candidates, workspaces (read)
    REFRESH = "refresh"  # fetch a source now
    TRANSACT = "transact"  # POST /transactions
    MANAGE_PROPOSAL = "manage_proposal"  # merge / close a proposal
    CREATE_CANDIDATE = "create_candidate"
    MANAGE_CANDIDATE = "manage_candidate"  # patch, rebase, abandon
    SUBMIT_CANDIDATE = "submit_candidate"
    WRITE_WORKSPACE = "write_workspace"  # files, rollback, publish, sync, resolve
    RUN_JOB = "run_job"
    READ_AUDIT = "read_audit"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``role`` applies to every source unless ``source_roles`` names
    the source."""

    user: str
    role: Role
    email: str = ""
    display_name: str = ""
    source_roles: Mapping[str, Role] = field(default_factory=dict)
    token_id: int | None = None
    single_user: bool = False

    def role_for(self, source: str | None) -> Role:
        if source is not None and source in self.source_roles:
            return self.source_roles[source]
        return self.role

    def signature(self) -> Signature:
        """The commit author for this caller's writes."""
        return Signature.now(self.display_name or self.user, self.email or f"{self.user}@revisor")


class AuthService:
    """Users, tokens and the authorization policy over one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def has_users(self) -> bool:
        """False: single-user mode (no users were ever created)."""
        return False

    def local_principal(self) -> Principal:
        return Principal(LOCAL_USER, Role.ADMIN, single_user=True)

    def authenticate(self, bearer: str | None) -> Principal:
        """The caller of a request carrying ``Authorization: Bearer <bearer>`` (None: none).

        Raises :class:`Unauthenticated` for a missing, unknown, expired or revoked token when
        users exist.
        """
        if not self.has_users():
            return self.local_principal()
        raise Unauthenticated("a bearer token is required")

    def authorize(
        self,
        principal: Principal,
        action: Action,
        source: str | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        """Raise :class:`NotAllowed` unless ``principal`` may do ``action`` on ``source``;
        ``owner`` is the user whose workspace is being written."""
        if principal.role_for(source) is not Role.ADMIN and not principal.single_user:
            raise NotAllowed(f"{principal.user} may not {action.value}")
