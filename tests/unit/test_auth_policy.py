"""The authorization policy as a pure function, checked exhaustively against a table written out
here (not derived from the code): every role by every action by whose it is (own, someone else's,
nobody's) by where the role comes from (the global role, a per-source role overriding a different
global role, a per-source role on another source). Then the configurable parts, single-user
mode, the refusal's message, roles, names and the commit signature."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from revisor.config import AuthConfig, load_config
from revisor.db.database import Database
from revisor.errors import InvalidInput, NotAllowed, ValidationFailed
from revisor.services.auth import (
    LOCAL_USER,
    Action,
    AuthPolicy,
    AuthService,
    Principal,
    Role,
    parse_role,
    permitted,
)

A = Action
#            reader  editor-own  editor-other  admin       (with the default policy)
EXPECTED: dict[Action, tuple[bool, bool, bool, bool]] = {
    A.READ:             (True,  True,  True,  True),
    A.REFRESH:          (False, True,  True,  True),
    A.TRANSACT:         (False, True,  True,  True),
    A.CREATE_CANDIDATE: (False, True,  True,  True),
    A.MANAGE_CANDIDATE: (False, True,  False, True),
    A.SUBMIT_CANDIDATE: (False, False, False, True),
    A.WRITE_WORKSPACE:  (False, True,  False, True),
    A.MANAGE_PROPOSAL:  (False, False, False, True),
    A.RUN_JOB:          (False, False, False, True),
    A.READ_AUDIT:       (False, False, False, True),
}
SOURCE = "proj"
OTHER_SOURCE = "elsewhere"


def expected(role: Role, action: Action, ownership: str) -> bool:
    reader, own, other, admin = EXPECTED[action]
    if role is Role.READER:
        return reader
    if role is Role.ADMIN:
        return admin
    return own if ownership == "own" else other


def principal_with(role: Role, how: str) -> Principal:
    """``alice`` holding ``role`` on SOURCE: globally, by a per-source role over a different
    global role, or globally with a different role on another source."""
    different = Role.ADMIN if role is not Role.ADMIN else Role.READER
    if how == "global":
        return Principal("alice", role)
    if how == "per-source":
        return Principal("alice", different, source_roles={SOURCE: role})
    assert how == "other-source"
    return Principal("alice", role, source_roles={OTHER_SOURCE: different})


def test_the_table_covers_every_action() -> None:
    assert set(EXPECTED) == set(Action)


@pytest.mark.parametrize("how", ["global", "per-source", "other-source"])
@pytest.mark.parametrize("role", list(Role))
def test_the_whole_matrix(role: Role, how: str) -> None:
    p = principal_with(role, how)
    owners = {"own": "alice", "other": "bob", "nobody": None}
    checked = 0
    for action, (ownership, owner) in itertools.product(Action, owners.items()):
        want = expected(role, action, "own" if ownership == "own" else "other")
        assert permitted(p, action, SOURCE, owner) is want, (role, how, action, ownership)
        checked += 1
    assert checked == len(Action) * 3


@pytest.mark.parametrize("role", list(Role))
def test_actions_not_on_a_source_use_the_global_role(role: Role) -> None:
    different = Role.ADMIN if role is not Role.ADMIN else Role.READER
    p = Principal("alice", role, source_roles={SOURCE: different})
    for action in Action:
        assert permitted(p, action, None, "alice") is expected(role, action, "own")
        assert permitted(p, action, None, "bob") is expected(role, action, "other")


def test_a_per_source_role_can_lower_the_global_one() -> None:
    p = Principal("alice", Role.ADMIN, source_roles={SOURCE: Role.READER})
    assert not permitted(p, A.TRANSACT, SOURCE)
    assert not permitted(p, A.WRITE_WORKSPACE, SOURCE, "alice")
    assert permitted(p, A.TRANSACT, OTHER_SOURCE)
    assert permitted(p, A.RUN_JOB, None)


def test_single_user_mode_may_do_everything() -> None:
    local = AuthService(Database("sqlite://")).local_principal()  # no I/O
    assert (local.user, local.role, local.single_user) == (LOCAL_USER, Role.ADMIN, True)
    strict = AuthPolicy(Role.ADMIN, Role.ADMIN, False)
    for action, source, owner in itertools.product(Action, (None, SOURCE), (None, "bob")):
        assert permitted(local, action, source, owner, strict)
    # a principal marked single-user is allowed whatever its role says
    assert permitted(Principal("x", Role.READER, single_user=True), A.RUN_JOB)


@pytest.mark.parametrize(
    ("policy", "role", "action", "owner", "allowed"),
    [
        (AuthPolicy(create_candidates=Role.ADMIN), Role.EDITOR, A.CREATE_CANDIDATE, None, False),
        (AuthPolicy(create_candidates=Role.ADMIN), Role.ADMIN, A.CREATE_CANDIDATE, None, True),
        (AuthPolicy(create_candidates=Role.READER), Role.READER, A.CREATE_CANDIDATE, None, True),
        (AuthPolicy(submit_candidates=Role.EDITOR), Role.EDITOR, A.SUBMIT_CANDIDATE, "bob", True),
        (AuthPolicy(submit_candidates=Role.EDITOR), Role.READER, A.SUBMIT_CANDIDATE, None, False),
        (AuthPolicy(submit_candidates=Role.READER), Role.READER, A.SUBMIT_CANDIDATE, None, True),
        (AuthPolicy(editors_manage_own_candidates=False), Role.EDITOR, A.MANAGE_CANDIDATE,
         "alice", False),
        (AuthPolicy(editors_manage_own_candidates=False), Role.ADMIN, A.MANAGE_CANDIDATE,
         "bob", True),
        # the configurable parts never widen what they do not name
        (AuthPolicy(Role.READER, Role.READER, True), Role.READER, A.WRITE_WORKSPACE, "alice",
         False),
        (AuthPolicy(Role.READER, Role.READER, True), Role.EDITOR, A.RUN_JOB, None, False),
    ],
)
def test_the_configurable_policy(
    policy: AuthPolicy, role: Role, action: Action, owner: str | None, allowed: bool
) -> None:
    assert permitted(Principal("alice", role), action, SOURCE, owner, policy) is allowed


def test_the_policy_from_the_configuration() -> None:
    assert AuthPolicy.from_config(AuthConfig()) == AuthPolicy()
    cfg = AuthConfig(create_candidates="admin", submit_candidates="editor",
                     editors_manage_own_candidates=False)
    assert AuthPolicy.from_config(cfg) == AuthPolicy(Role.ADMIN, Role.EDITOR, False)


def test_the_auth_section_of_revisor_yaml(tmp_path: Path) -> None:
    base = tmp_path
    good = base / "good.yaml"
    good.write_text("auth:\n  submit_candidates: editor\n")
    assert load_config(good, env={}).auth.submit_candidates == "editor"
    for text in ("auth:\n  submit_candidates: boss\n", "auth:\n  submit: admin\n"):
        bad = base / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(InvalidInput) as info:
            load_config(bad, env={})
        assert "auth." in str(info.value) or "auth" in getattr(info.value, "field", "")


def test_a_refusal_names_user_action_and_source() -> None:
    service = AuthService(Database("sqlite://"))
    p = Principal("alice", Role.EDITOR, token_id=7)
    with pytest.raises(NotAllowed) as info:
        service.authorize(p, A.WRITE_WORKSPACE, SOURCE, owner="bob")
    text = str(info.value)
    assert "'alice'" in text and "write_workspace" in text and "'proj'" in text and "'bob'" in text
    assert info.value.hint and "own" in info.value.hint
    service.authorize(p, A.WRITE_WORKSPACE, SOURCE, owner="alice")  # allowed: no error
    with pytest.raises(NotAllowed, match="run_job"):
        service.authorize(p, A.RUN_JOB)


def test_roles_are_ordered_and_parsed() -> None:
    assert [r.rank for r in (Role.READER, Role.EDITOR, Role.ADMIN)] == [0, 1, 2]
    assert parse_role(" Editor ") is Role.EDITOR and parse_role(Role.ADMIN) is Role.ADMIN
    for bad in ("boss", "", "admins"):
        with pytest.raises(InvalidInput, match="unknown role"):
            parse_role(bad)


def test_the_signature_is_the_display_name_and_email() -> None:
    sig = Principal("alice", Role.EDITOR, email="alice@example.com",
                    display_name="Alice Example").signature()
    assert (sig.name, sig.email) == ("Alice Example", "alice@example.com")
    bare = Principal("bob", Role.READER).signature()
    assert (bare.name, bare.email) == ("bob", "bob@revisor")
    assert sig.time.tzinfo is not None


def test_user_names_are_checked() -> None:
    from revisor.services.auth import _check_user_name

    for good in ("alice", "Alice.Smith@corp", "ci-bot_2", "a"):
        assert _check_user_name(good) == good
    for bad in ("", "-x", "a b", "a/b", "x" * 65, "ü", LOCAL_USER, "a\nb"):
        with pytest.raises(ValidationFailed) as info:
            _check_user_name(bad)
        assert info.value.field == "name"
