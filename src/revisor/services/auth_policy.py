"""The authorization policy: roles, actions, and who may do what, as one pure function.

Why this module exists: the HTTP API, the web UI and the tests must agree on one matrix, and a
pure function (:func:`permitted`) can be checked exhaustively without a database or a server.
``revisor.services.auth`` re-exports everything here and raises on a refusal.

**Roles.** ``reader`` < ``editor`` < ``admin``. A user has a global role and, optionally, a role
per source that replaces the global one on that source (higher or lower); actions not on a source
(``source=None``) use the global role. The matrix (:func:`permitted`):

=================  ======  ================================================  =====
action             reader  editor                                            admin
=================  ======  ================================================  =====
read               yes     yes                                               yes
refresh            no      yes                                               yes
transact           no      yes                                               yes
create_candidate   no      yes (``auth.create_candidates``: least role)      yes
manage_candidate   no      own candidates (``auth.editors_manage_own_...``)  yes
submit_candidate   no      no (``auth.submit_candidates``: least role)       yes
write_workspace    no      own workspace only                                yes
manage_proposal    no      no                                                yes
run_job            no      no                                                yes
read_audit         no      no                                                yes
=================  ======  ================================================  =====

"Own" means ``owner == principal.user``: for a workspace, ``owner`` is the workspace's user (the
``{user}`` of its URL); for a candidate, the user name of its author —
:meth:`revisor.services.auth.AuthService.owner_of` maps the author e-mail recorded on the
candidate (the creating principal's :meth:`Principal.signature`) back to that user. An editor
asking for someone else's (or with ``owner=None``) is refused. The configurable least roles
apply as they are: ``submit_candidates: editor`` lets every editor submit any candidate. Every
refusal is :class:`~revisor.errors.NotAllowed` (HTTP 403) naming the user, action and source.
In single-user mode the caller (``Principal.single_user``) may do everything.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from revisor.config import AuthConfig
from revisor.db.auth import Role
from revisor.errors import InvalidInput
from revisor.vcs import Signature

__all__ = [
    "ADMIN_ACTIONS",
    "DEFAULT_POLICY",
    "LOCAL_USER",
    "Action",
    "AuthPolicy",
    "Principal",
    "Role",
    "parse_role",
    "permitted",
]

LOCAL_USER = "local"
"""The single-user mode's principal (a name no user may take)."""


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
        """The commit author for this caller's writes: the display name and e-mail (else the
        user name and ``<user>@revisor``)."""
        return Signature.now(self.display_name or self.user, self.email or f"{self.user}@revisor")


@dataclass(frozen=True)
class AuthPolicy:
    """The configurable part of the matrix (``auth:`` in revisor.yaml)."""

    create_candidates: Role = Role.EDITOR
    submit_candidates: Role = Role.ADMIN
    editors_manage_own_candidates: bool = True

    @classmethod
    def from_config(cls, config: AuthConfig) -> AuthPolicy:
        return cls(
            create_candidates=Role(config.create_candidates),
            submit_candidates=Role(config.submit_candidates),
            editors_manage_own_candidates=config.editors_manage_own_candidates,
        )


DEFAULT_POLICY = AuthPolicy()

_EDITOR_ACTIONS = frozenset({Action.REFRESH, Action.TRANSACT})
ADMIN_ACTIONS = frozenset({Action.MANAGE_PROPOSAL, Action.RUN_JOB, Action.READ_AUDIT})


def permitted(
    principal: Principal,
    action: Action,
    source: str | None = None,
    owner: str | None = None,
    policy: AuthPolicy = DEFAULT_POLICY,
) -> bool:
    """Whether ``principal`` may do ``action`` on ``source`` (None: not on one source), where
    ``owner`` is the user owning what is acted on (a workspace's user, a candidate's author).
    The whole matrix is in the module docstring."""
    if principal.single_user:
        return True
    rank = principal.role_for(source).rank
    if rank >= Role.ADMIN.rank:
        return True
    own = owner is not None and owner == principal.user
    editor = rank >= Role.EDITOR.rank
    if action is Action.READ:
        return True
    if action in _EDITOR_ACTIONS:
        return editor
    if action is Action.CREATE_CANDIDATE:
        return rank >= policy.create_candidates.rank
    if action is Action.SUBMIT_CANDIDATE:
        return rank >= policy.submit_candidates.rank
    if action is Action.MANAGE_CANDIDATE:
        return editor and own and policy.editors_manage_own_candidates
    if action is Action.WRITE_WORKSPACE:
        return editor and own
    assert action in ADMIN_ACTIONS, action
    return False


def parse_role(value: str | Role) -> Role:
    """``reader``, ``editor`` or ``admin`` (any case), else :class:`InvalidInput`."""
    try:
        return Role(value.strip().lower() if isinstance(value, str) else value)
    except ValueError:
        raise InvalidInput(
            f"unknown role {value!r}", hint="use one of: reader, editor, admin"
        ) from None
