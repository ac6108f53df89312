"""Users and tokens over a real database (SQLite, and a real PostgreSQL of the test session):
the migration matches the models and goes down and up again; tokens are created, authenticate,
expire (an injected clock), are revoked, stop working for a disabled user, and unknown or
malformed ones are refused without echoing them; only hashes reach the database (the SQLite file
and its WAL are read as bytes) and no secret reaches the logs; single-user mode ends with the
first user; ``last_used_at`` is written at most once a minute; and ``revisor tokens create``'s
rule for users and roles."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from revisor.db import AuditLog, Database
from revisor.db.auth import TokenRow, UserRow
from revisor.db.models import Base
from revisor.errors import (
    AlreadyExists,
    InvalidInput,
    InvalidState,
    NotAllowed,
    TokenNotFound,
    Unauthenticated,
    UserNotFound,
    ValidationFailed,
)
from revisor.services import auth as auth_module
from revisor.services.auth import (
    TOKEN_PREFIX,
    Action,
    AuthPolicy,
    AuthService,
    Role,
    TokenState,
    hash_token,
)
from tests.unit.test_db import _pg_database, postgres  # noqa: F401 - the session's server

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    """An injected clock: timezone-aware UTC, moved by the test."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'data' / 'revisor.db'}"
    else:
        url = _pg_database(request.getfixturevalue("postgres"))
    database = Database(url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(db: Database, clock: Clock) -> AuthService:
    return AuthService(db, clock=clock)


def fresh(db: Database, clock: Clock | None = None) -> AuthService:
    """Another service over the same database (as another process would have): no cache."""
    return AuthService(db, clock=clock or Clock())


# -- the schema ------------------------------------------------------------------------------------
def test_the_migration_matches_the_models(db: Database) -> None:
    tables = set(inspect(db.engine).get_table_names())
    assert {"users", "user_source_roles", "api_tokens"} <= tables
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_the_migration_goes_down_and_up(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    db.migrate()
    cfg = db.alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    assert "users" not in inspect(db.engine).get_table_names()
    db.migrate()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    db.dispose()


# -- tokens --------------------------------------------------------------------------------------
def test_create_and_authenticate(auth: AuthService, db: Database) -> None:
    new = auth.issue_token("alice", "editor", label="ci", display_name="Alice Example",
                           email="alice@example.com")
    assert re.fullmatch(r"rvs_[A-Za-z0-9_-]{43}", new.secret)
    assert new.secret not in repr(new)
    assert new.token.prefix == new.secret[:12] and new.token.label == "ci"
    assert (new.user.name, new.user.role) == ("alice", Role.EDITOR)
    p = fresh(db).authenticate(new.secret)
    assert (p.user, p.role, p.token_id, p.single_user) == ("alice", Role.EDITOR, new.token.id,
                                                           False)
    sig = p.signature()
    assert (sig.name, sig.email) == ("Alice Example", "alice@example.com")
    with db.session(write=False) as s:
        row = s.execute(select(TokenRow)).scalar_one()
        assert row.token_hash == hash_token(new.secret) and len(row.token_hash) == 64
        assert row.prefix == new.secret[:12]


def test_expiry_follows_the_clock(auth: AuthService, clock: Clock) -> None:
    new = auth.issue_token("alice", "reader", expires_in=timedelta(days=30))
    assert new.token.expires_at == T0 + timedelta(days=30)
    clock.advance(days=29, hours=23)
    assert auth.authenticate(new.secret).user == "alice"
    clock.advance(hours=1)
    with pytest.raises(Unauthenticated, match="expired") as info:
        auth.authenticate(new.secret)
    assert new.secret not in str(info.value) and new.secret not in (info.value.hint or "")
    assert auth.list_tokens()[0].state(clock()) is TokenState.EXPIRED
    with pytest.raises(ValidationFailed):
        auth.issue_token("alice", expires_in=timedelta(0))


def test_revoke(auth: AuthService, db: Database) -> None:
    keep = auth.issue_token("alice", "editor")
    gone = auth.create_token("alice", label="laptop")
    assert auth.authenticate(gone.secret).token_id == gone.token.id
    revoked = auth.revoke_token(gone.token.id)
    assert revoked.revoked_at == T0 and revoked.state(T0) is TokenState.REVOKED
    with pytest.raises(Unauthenticated, match="revoked"):
        fresh(db).authenticate(gone.secret)
    assert auth.authenticate(keep.secret).user == "alice"  # the other token still works
    assert auth.revoke_token(gone.token.id).revoked_at == T0  # again: unchanged
    with pytest.raises(TokenNotFound):
        auth.revoke_token(9999)
    revokes = AuditLog(db).query(action="token.revoke")
    assert [(e.target, e.details["user"]) for e in revokes] == [(f"tokens/{gone.token.id}",
                                                                 "alice")]


def test_a_disabled_user_is_refused_until_enabled(auth: AuthService) -> None:
    new = auth.issue_token("alice", "admin")
    auth.update_user("alice", disabled=True)
    with pytest.raises(Unauthenticated, match="disabled"):
        auth.authenticate(new.secret)
    with pytest.raises(InvalidState):
        auth.issue_token("alice")  # no new token for a disabled user
    auth.update_user("alice", disabled=False)
    assert auth.authenticate(new.secret).role is Role.ADMIN


@pytest.mark.parametrize(
    "bearer",
    [
        None,
        "",
        "rvs_",
        "not-a-token",
        TOKEN_PREFIX + "x" * 42,  # one character short
        TOKEN_PREFIX + "x" * 44,
        TOKEN_PREFIX + "a" * 42 + "/",
        TOKEN_PREFIX + "a" * 42 + "\x00",
        "Bearer " + TOKEN_PREFIX + "a" * 43,
        TOKEN_PREFIX + "N3verIssuedN3verIssuedN3verIssuedN3verIss0x",  # well formed, never issued
    ],
)
def test_missing_malformed_and_unknown_tokens(auth: AuthService, bearer: str | None) -> None:
    auth.create_user("alice", "admin")
    with pytest.raises(Unauthenticated) as info:
        auth.authenticate(bearer)
    if bearer:
        assert bearer not in str(info.value) and bearer not in (info.value.hint or "")
    assert isinstance(info.value, NotAllowed)  # 401 is a kind of refusal


def test_the_secret_is_stored_nowhere_and_logged_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'data' / 'revisor.db'}")
    db.migrate()
    auth = AuthService(db, clock=Clock())
    caplog.set_level(logging.DEBUG)
    made = [auth.issue_token("alice", "editor", label="ci"),
            auth.issue_token("bob", "reader", source="proj"),
            auth.create_token("alice", expires_in=timedelta(seconds=1))]
    for new in made[:2]:
        auth.authenticate(new.secret)
    auth.clock = Clock(T0 + timedelta(hours=1))  # type: ignore[method-assign]
    with pytest.raises(Unauthenticated):
        auth.authenticate(made[2].secret)
    auth.revoke_token(made[0].token.id)
    with pytest.raises(Unauthenticated):
        auth.authenticate(made[0].secret)
    db.dispose()
    blobs = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir() if p.is_file())
    assert blobs  # the database (and its WAL, if any) was read
    for new in made:
        assert new.secret.encode() not in blobs
        assert new.secret[12:].encode() not in blobs  # not even the part after the prefix
        assert hash_token(new.secret).encode() in blobs  # the hash is what is kept
        assert new.secret not in caplog.text
    assert "refused" in caplog.text  # the refusals were logged, without the tokens


def test_last_used_is_written_at_most_once_a_minute(auth: AuthService, clock: Clock) -> None:
    new = auth.issue_token("alice", "reader")
    assert auth.list_tokens()[0].last_used_at is None
    auth.authenticate(new.secret)
    assert auth.list_tokens()[0].last_used_at == T0
    clock.advance(seconds=30)
    auth.authenticate(new.secret)
    assert auth.list_tokens()[0].last_used_at == T0  # throttled
    clock.advance(seconds=31)
    auth.authenticate(new.secret)
    assert auth.list_tokens()[0].last_used_at == T0 + timedelta(seconds=61)


# -- single-user mode ----------------------------------------------------------------------------
def test_single_user_mode_until_the_first_user(
    auth: AuthService, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not auth.has_users()
    for bearer in (None, "", "anything", TOKEN_PREFIX + "a" * 43):
        p = auth.authenticate(bearer)  # a token is ignored
        assert (p.user, p.role, p.single_user) == ("local", Role.ADMIN, True)
    # another process creates a user: seen once the cached "no" expires
    watcher = fresh(db)
    monkeypatch.setattr(auth_module, "HAS_USERS_TTL", 3600.0)
    assert not watcher.has_users()
    fresh(db).create_user("alice", "reader")
    assert not watcher.has_users()  # still cached
    monkeypatch.setattr(auth_module, "HAS_USERS_TTL", 0.0)
    assert watcher.has_users()
    with pytest.raises(Unauthenticated, match="required"):
        watcher.authenticate(None)
    # the creating service knows at once; disabling everyone does not reopen the server
    assert auth.has_users() or fresh(db).has_users()
    auth.update_user("alice", disabled=True)
    with pytest.raises(Unauthenticated):
        fresh(db).authenticate(None)


# -- managing users ------------------------------------------------------------------------------
def test_issue_token_creates_or_updates_the_user(auth: AuthService, db: Database) -> None:
    with pytest.raises(InvalidInput, match="give a role"):
        auth.issue_token("alice")
    assert auth.list_users() == []
    auth.issue_token("alice", "editor")
    assert auth.get_user("alice").role is Role.EDITOR
    auth.issue_token("alice", "admin")  # an existing user: the role is set
    assert auth.get_user("alice").role is Role.ADMIN
    auth.issue_token("alice")  # no role: unchanged
    assert auth.get_user("alice").role is Role.ADMIN
    auth.issue_token("alice", "reader", source="proj")  # existing, per source
    alice = auth.get_user("alice")
    assert (alice.role, dict(alice.source_roles)) == (Role.ADMIN, {"proj": Role.READER})
    bob = auth.issue_token("bob", "editor", source="proj").user  # new, per source
    assert (bob.role, dict(bob.source_roles)) == (Role.READER, {"proj": Role.EDITOR})
    assert len(auth.list_tokens("alice")) == 4 and len(auth.list_tokens()) == 5
    # an existing user's display name and e-mail are replaced when given
    auth.issue_token("alice", display_name="Alice A", email="alice@example.com")
    alice = auth.get_user("alice")
    assert (alice.display_name, alice.email, alice.role) == ("Alice A", "alice@example.com",
                                                             Role.ADMIN)
    actions = [e.action for e in reversed(AuditLog(db).query(action="user."))]
    # bob: created with the global role reader, then given editor on proj
    assert actions == ["user.create", "user.role", "user.role", "user.create", "user.role",
                       "user.update"]
    creates = AuditLog(db).query(action="token.create")
    assert len(creates) == 6 and all(e.actor == "local <local@revisor>" for e in creates)


def test_roles_per_source_through_the_service(auth: AuthService) -> None:
    token = auth.issue_token("alice", "reader").secret
    auth.set_role("alice", "admin", source="proj")
    p = auth.authenticate(token)
    assert auth.permitted(p, Action.RUN_JOB, "proj")
    with pytest.raises(NotAllowed, match=r"'alice'.*transact.*'other'"):
        auth.authorize(p, Action.TRANSACT, "other")
    auth.set_role("alice", None, source="proj")
    assert not auth.permitted(auth.authenticate(token), Action.RUN_JOB, "proj")
    with pytest.raises(InvalidInput):
        auth.set_role("alice", None)
    with pytest.raises(UserNotFound):
        auth.set_role("nobody", "admin")


def test_the_configured_policy_is_applied(db: Database) -> None:
    auth = AuthService(db, AuthPolicy(submit_candidates=Role.EDITOR), clock=Clock())
    p = auth.authenticate(auth.issue_token("alice", "editor").secret)
    auth.authorize(p, Action.SUBMIT_CANDIDATE, "proj")
    assert not AuthService(db).permitted(p, Action.SUBMIT_CANDIDATE, "proj")


def test_names_and_emails_are_unique_and_checked(auth: AuthService) -> None:
    auth.create_user("alice", "editor", email="alice@example.com", display_name="Alice")
    with pytest.raises(AlreadyExists):
        auth.create_user("alice", "reader")
    with pytest.raises(AlreadyExists, match=re.escape("alice@example.com")):
        auth.create_user("alice2", "reader", email="alice@example.com")
    auth.create_user("bob", "reader")
    with pytest.raises(AlreadyExists):
        auth.update_user("bob", email="alice@example.com")
    auth.create_user("carol", "reader")  # several users without an e-mail are fine
    for bad in ({"email": "no-at-sign"}, {"display_name": "A <b>"}, {"email": "a b@c"},
                {"email": "bob@revisor"}):
        with pytest.raises(ValidationFailed):
            auth.create_user("dave", "reader", **bad)
    with pytest.raises(InvalidInput, match="unknown role"):
        auth.create_user("dave", "root")
    with pytest.raises(ValidationFailed):
        auth.create_user("local", "admin")
    assert [u.name for u in auth.list_users()] == ["alice", "bob", "carol"]
    with pytest.raises(UserNotFound):
        auth.get_user("dave")
    with pytest.raises(UserNotFound):
        auth.list_tokens("dave")


def test_owner_of_maps_a_candidates_author_to_a_user(auth: AuthService) -> None:
    auth.create_user("alice", "editor", email="alice@example.com", display_name="Alice")
    bob = auth.authenticate(auth.issue_token("bob", "editor").secret)
    assert auth.owner_of("alice@example.com") == "alice"
    assert auth.owner_of(bob.signature().email) == "bob"  # bob@revisor: no e-mail given
    assert auth.owner_of("alice@revisor") is None  # alice's commits carry her real e-mail
    assert auth.owner_of("someone@example.com") is None
    assert auth.owner_of("nobody@revisor") is None
    assert auth.owner_of("-x@revisor") is None


def test_users_are_listed_from_the_database(auth: AuthService, db: Database) -> None:
    auth.create_user("zed", "reader")
    auth.create_user("amy", "admin", display_name="Amy A")
    with db.session(write=False) as s:
        rows = s.execute(select(UserRow.name, UserRow.email).order_by(UserRow.name)).all()
    assert rows == [("amy", None), ("zed", None)]
    assert [(u.name, u.display_name) for u in auth.list_users()] == [("amy", "Amy A"),
                                                                    ("zed", "zed")]
