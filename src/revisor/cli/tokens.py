"""``revisor users create|list|disable|enable|role`` and ``revisor tokens create|list|revoke``.

Why this module exists: the people (and programs) who call ``revisor serve`` are managed from the
command line of the machine that runs it, over the same database (``revisor.services.auth``).
Creating the first user ends single-user mode: from then on every request needs a token.

``revisor tokens create --user NAME --role ROLE`` prints the new token alone on the last line of
stdout (``--json``: a JSON object with it in ``token``), so a script takes it with ``tail -n1``.
The rule for ``--role``: a missing user is created with it (then it is required); an existing
user's role is set to it (globally, or with ``--source`` on that source only); without it an
existing user keeps their roles. ``tokens list`` never shows a token, only its prefix.

Exit codes are ``cli.errors``'s: an unknown role or a refused field is 2, an unknown user or
token 3, a token for a disabled user or a taken name 4.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import typer

from revisor.cli.app import JsonOpt, app
from revisor.cli.context import cli_context
from revisor.cli.errors import handle_errors
from revisor.cli.render import dumps
from revisor.config import parse_duration
from revisor.errors import ValidationFailed
from revisor.services.auth import AuthService, Token, User

__all__ = ["token_json", "tokens_app", "user_json", "users_app"]

users_app = typer.Typer(help="The users of the HTTP API and the web UI.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (Authorization: Bearer …).", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")

UserArg = Annotated[str, typer.Argument(help="The user's login name.")]
RoleOpt = Annotated[str, typer.Option("--role", help="reader, editor or admin.")]
SourceOpt = Annotated[
    str | None, typer.Option("--source", help="Only on this source (overrides the global role).")
]
EmailOpt = Annotated[str, typer.Option("--email", help="The e-mail of their commits.")]
NameOpt = Annotated[str, typer.Option("--name", help='The display name ("Alice Example").')]


def _service(ctx: typer.Context) -> AuthService:
    return AuthService.open(cli_context(ctx).config)


def _when(value: datetime | None, default: str = "-") -> str:
    return value.isoformat(timespec="seconds") if value is not None else default


def user_json(user: User) -> dict[str, Any]:
    return {
        "name": user.name,
        "display_name": user.display_name,
        "email": user.email,
        "role": user.role.value,
        "source_roles": {s: r.value for s, r in user.source_roles.items()},
        "disabled": user.disabled,
        "created": user.created_at.isoformat(),
    }


def token_json(token: Token, now: datetime) -> dict[str, Any]:
    """A token as JSON: its id, prefix and dates; never the token itself."""
    return {
        "id": token.id,
        "user": token.user,
        "prefix": token.prefix,
        "label": token.label,
        "state": token.state(now).value,
        "created": token.created_at.isoformat(),
        "expires": token.expires_at.isoformat() if token.expires_at else None,
        "revoked": token.revoked_at.isoformat() if token.revoked_at else None,
        "last_used": token.last_used_at.isoformat() if token.last_used_at else None,
    }


def _user_line(user: User) -> str:
    roles = "".join(f" {s}:{r.value}" for s, r in user.source_roles.items())
    mail = f" <{user.email}>" if user.email else ""
    state = "  DISABLED" if user.disabled else ""
    return f"{user.name:<20} {user.role.value:<7}{roles}  {user.display_name}{mail}{state}"


def _token_line(token: Token, now: datetime) -> str:
    label = f"  {token.label}" if token.label else ""
    return (
        f"#{token.id:<4} {token.prefix}…  {token.user:<16} {token.state(now).value:<8} "
        f"created {_when(token.created_at)}  expires {_when(token.expires_at, 'never')}  "
        f"last used {_when(token.last_used_at, 'never')}{label}"
    )


def _expiry(value: str | None) -> timedelta | None:
    if value is None or value.strip().lower() == "never":
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValidationFailed((("expires", str(exc)),)) from None


# -- users -----------------------------------------------------------------------------------------
@users_app.command("create")
@handle_errors
def create_user(
    ctx: typer.Context,
    name: UserArg,
    role: RoleOpt,
    email: EmailOpt = "",
    display_name: NameOpt = "",
    json_out: JsonOpt = False,
) -> None:
    """Create a user (the first one ends single-user mode)."""
    user = _service(ctx).create_user(name, role, display_name=display_name, email=email)
    print(dumps(user_json(user)) if json_out else f"created user {_user_line(user)}")


@users_app.command("list")
@handle_errors
def list_users(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List the users, by name."""
    users = _service(ctx).list_users()
    if json_out:
        print(dumps([user_json(u) for u in users]))
        return
    for user in users:
        print(_user_line(user))


def _set_disabled(ctx: typer.Context, name: str, disabled: bool, json_out: bool) -> None:
    user = _service(ctx).update_user(name, disabled=disabled)
    print(dumps(user_json(user)) if json_out else _user_line(user))


@users_app.command("disable")
@handle_errors
def disable_user(ctx: typer.Context, name: UserArg, json_out: JsonOpt = False) -> None:
    """Disable a user: their tokens stop working at once."""
    _set_disabled(ctx, name, True, json_out)


@users_app.command("enable")
@handle_errors
def enable_user(ctx: typer.Context, name: UserArg, json_out: JsonOpt = False) -> None:
    """Enable a disabled user again (their tokens not revoked work again)."""
    _set_disabled(ctx, name, False, json_out)


@users_app.command("role")
@handle_errors
def set_role(
    ctx: typer.Context,
    name: UserArg,
    role: Annotated[
        str,
        typer.Argument(help="reader, editor or admin; with --source also 'default' (remove it)."),
    ],
    source: SourceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Set a user's role, globally or on one source."""
    new = None if source is not None and role.strip().lower() == "default" else role
    user = _service(ctx).set_role(name, new, source=source)
    print(dumps(user_json(user)) if json_out else _user_line(user))


# -- tokens ----------------------------------------------------------------------------------------
@tokens_app.command("create")
@handle_errors
def create_token(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="Whose token (created if missing).")],
    role: Annotated[
        str | None,
        typer.Option("--role", help="reader, editor or admin: a new user's role, or an "
                     "existing user's new role."),
    ] = None,
    source: SourceOpt = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="e.g. 30d, 12h or never (default: never).")
    ] = None,
    label: Annotated[str, typer.Option("--label", help="What the token is for.")] = "",
    email: EmailOpt = "",
    display_name: NameOpt = "",
    json_out: JsonOpt = False,
) -> None:
    """Make a token; it is printed once, alone on the last line, and stored only hashed."""
    service = _service(ctx)
    new = service.issue_token(
        user, role, source=source, display_name=display_name, email=email, label=label,
        expires_in=_expiry(expires),
    )
    if json_out:
        out = {**token_json(new.token, service.clock()), "role": new.user.role.value,
               "source_roles": {s: r.value for s, r in new.user.source_roles.items()},
               "token": new.secret}
        print(dumps(out))
        return
    roles = new.user.role.value + "".join(
        f", {s}: {r.value}" for s, r in new.user.source_roles.items()
    )
    print(f"token #{new.token.id} for {new.user.name} ({roles}), "
          f"expires {_when(new.token.expires_at, 'never')}")
    print("it is shown only this once:")
    print(new.secret)


@tokens_app.command("list")
@handle_errors
def list_tokens(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List tokens (never the tokens themselves: their prefixes)."""
    service = _service(ctx)
    tokens, now = service.list_tokens(user), service.clock()
    if json_out:
        print(dumps([token_json(t, now) for t in tokens]))
        return
    for token in tokens:
        print(_token_line(token, now))


@tokens_app.command("revoke")
@handle_errors
def revoke_token(
    ctx: typer.Context,
    token_id: Annotated[int, typer.Argument(metavar="ID", help="The token's id (tokens list).")],
    json_out: JsonOpt = False,
) -> None:
    """Revoke a token: the next request with it is refused."""
    service = _service(ctx)
    token = service.revoke_token(token_id)
    print(dumps(token_json(token, service.clock())) if json_out
          else _token_line(token, service.clock()))
