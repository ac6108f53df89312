"""``revisor users …`` and ``revisor tokens …`` as real processes over a configured data directory:
the token printed alone on the last line (and in ``--json``) authenticates against the same
database; listings never show a token; revoking works at once; unknown users, roles and tokens
and refused states exit with ``cli.errors``'s codes and say nothing secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from revisor.db.database import Database
from revisor.errors import Unauthenticated
from revisor.services.auth import AuthService, Role


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REVISOR_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "revisor", *args], capture_output=True,
                          text=True, check=False, env=env, timeout=120)


def ok(config: Path, *args: str) -> str:
    out = run(config, *args)
    assert out.returncode == 0, (args, out.stderr)
    return out.stdout


def js(config: Path, *args: str) -> Any:
    return json.loads(ok(config, *args, "--json"))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "revisor.yaml"
    cfg.write_text("data_dir: ./data\nauth:\n  submit_candidates: editor\n")
    return cfg


@pytest.fixture
def service(config: Path) -> Iterator[AuthService]:
    """The service a server over this configuration would use (the same SQLite file)."""
    db = Database.for_data_dir(config.parent / "data")
    db.migrate()
    yield AuthService(db)
    db.dispose()


def test_a_created_token_is_the_last_line_and_authenticates(
    config: Path, service: AuthService
) -> None:
    out = ok(config, "tokens", "create", "--user", "alice", "--role", "editor", "--label", "ci",
             "--expires", "30d", "--email", "alice@example.com", "--name", "Alice Example")
    lines = out.splitlines()
    token = lines[-1]
    assert token.startswith("rvs_") and token.strip() == token and len(lines) > 1
    assert sum(token in line for line in lines) == 1  # shown once
    p = service.authenticate(token)
    assert (p.user, p.role, p.display_name, p.email) == ("alice", Role.EDITOR, "Alice Example",
                                                         "alice@example.com")
    made = js(config, "tokens", "create", "--user", "alice")
    assert made["user"] == "alice" and made["role"] == "editor" and made["label"] == ""
    assert made["expires"] is None and made["token"].startswith(made["prefix"])
    assert service.authenticate(made["token"]).token_id == made["id"]
    # listings: prefixes, never tokens
    listed = ok(config, "tokens", "list")
    listed_json = ok(config, "tokens", "list", "--user", "alice", "--json")
    for text in (listed, listed_json, ok(config, "users", "list", "--json")):
        assert token not in text and made["token"] not in text
        assert token[12:20] not in text
    assert len(listed.splitlines()) == 2 and "ci" in listed and token[:12] in listed
    assert [t["state"] for t in json.loads(listed_json)] == ["active", "active"]
    # revoke: refused at once
    revoked = js(config, "tokens", "revoke", str(made["id"]))
    assert revoked["state"] == "revoked"
    with pytest.raises(Unauthenticated, match="revoked"):
        AuthService(service.db).authenticate(made["token"])
    assert service.authenticate(token).user == "alice"


def test_users_and_roles(config: Path, service: AuthService) -> None:
    assert not service.has_users()
    created = js(config, "users", "create", "bob", "--role", "reader", "--email",
                 "bob@example.com", "--name", "Bob B")
    assert (created["name"], created["role"], created["email"]) == ("bob", "reader",
                                                                    "bob@example.com")
    assert AuthService(service.db).has_users()
    ok(config, "users", "role", "bob", "admin", "--source", "proj")
    assert js(config, "users", "role", "bob", "editor")["source_roles"] == {"proj": "admin"}
    bob = service.get_user("bob")
    assert (bob.role, dict(bob.source_roles)) == (Role.EDITOR, {"proj": Role.ADMIN})
    assert js(config, "users", "role", "bob", "default", "--source", "proj")["source_roles"] == {}
    assert "DISABLED" in ok(config, "users", "disable", "bob")
    assert service.get_user("bob").disabled
    listed = ok(config, "users", "list")
    assert listed.startswith("bob") and "DISABLED" in listed and "<bob@example.com>" in listed
    service.update_user("bob", disabled=False)
    assert not service.get_user("bob").disabled


EXIT_CASES = [
    (("tokens", "create", "--user", "carol", "--role", "boss"), 2, "unknown role"),
    (("tokens", "create", "--user", "carol"), 2, "give a role"),
    (("tokens", "create", "--user", "carol", "--role", "reader", "--expires", "soon"), 2,
     "expires"),
    (("users", "disable", "nobody"), 3, "no user 'nobody'"),
    (("tokens", "revoke", "99"), 3, "no token 99"),
    (("users", "create", "alice", "--role", "reader"), 4, "already"),
    (("tokens", "create", "--user", "off"), 4, "disabled"),
]


def test_exit_codes(config: Path, service: AuthService) -> None:
    """One process per case (each costs a Python start): unknown role and refused input 2,
    unknown user or token 3, a taken name or a disabled user 4; nothing on stdout."""
    service.create_user("alice", "editor")
    service.create_user("off", "editor")
    service.update_user("off", disabled=True)
    for args, code, said in EXIT_CASES:
        out = run(config, *args)
        assert out.returncode == code, (args, out.stderr)
        assert said in out.stderr and out.stdout == "", (args, out.stderr)
        assert "rvs_" not in out.stderr
    assert [t.user for t in service.list_tokens()] == []  # no refused command made one
