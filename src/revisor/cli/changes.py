"""``revisor update``: one transaction from the command line, printed as its result."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from revisor.cli.app import JsonOpt, SourceArg, app
from revisor.cli.context import cli_context
from revisor.cli.errors import handle_errors
from revisor.cli.render import dumps
from revisor.core.changes import Delete, FileChange, Move, Write
from revisor.errors import InvalidInput
from revisor.vcs import Signature

__all__ = ["parse_author", "parse_changes"]

_AUTHOR = re.compile(r"^\s*(?P<name>[^<>\n]+?)\s*<(?P<email>[^<>\s]+)>\s*$")


def parse_author(value: str | None) -> Signature:
    """``"Name <email>"``; by default git's ``user.name`` / ``user.email``."""
    if value is None:
        def git_config(key: str) -> str:
            proc = subprocess.run(["git", "config", "--get", key], capture_output=True,
                                  text=True, check=False, timeout=10)
            return proc.stdout.strip()

        name, email = git_config("user.name"), git_config("user.email")
        if not name or not email:
            raise InvalidInput("who is making this change?",
                               hint='pass --author "Name <email>" or set git\'s user.name/email')
        return Signature.now(name, email)
    m = _AUTHOR.match(value)
    if m is None:
        raise InvalidInput(f"invalid author {value!r}", hint='use "Name <email>"')
    return Signature.now(m["name"], m["email"])


def _split(option: str, value: str) -> tuple[str, str]:
    left, sep, right = value.partition("=")
    if not sep or not left or not right:
        raise InvalidInput(f"{option} expects PATH=VALUE, got {value!r}")
    return left, right


def parse_changes(puts: list[str], deletes: list[str], moves: list[str]) -> list[FileChange]:
    """``--put PATH=@FILE`` (a file's content), ``--put PATH=-`` (stdin), ``--put PATH=TEXT``."""
    changes: list[FileChange] = []
    used_stdin = False
    for spec in puts:
        path, value = _split("--put", spec)
        if value == "-":
            if used_stdin:
                raise InvalidInput("only one --put can read standard input")
            used_stdin = True
            changes.append(Write(path, sys.stdin.buffer.read()))
        elif value.startswith("@"):
            file = Path(value[1:])
            if not file.is_file():
                raise InvalidInput(f"--put {path}: no such file {file}")
            changes.append(Write(path, file.read_bytes()))
        else:
            changes.append(Write(path, value.encode()))
    changes += [Delete(p) for p in deletes]
    for spec in moves:
        old, new = _split("--move", spec)
        changes.append(Move(old, new))
    return changes


@app.command("update")
@handle_errors
def update(
    ctx: typer.Context,
    source: SourceArg,
    message: Annotated[str, typer.Option("-m", "--message", help="The commit message.")],
    put: Annotated[
        list[str] | None,
        typer.Option("--put", help="PATH=@FILE, PATH=- (stdin) or PATH=TEXT; repeatable."),
    ] = None,
    delete: Annotated[list[str] | None, typer.Option("--delete", help="PATH; repeatable.")] = None,
    move: Annotated[list[str] | None, typer.Option("--move", help="OLD=NEW; repeatable.")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Base branch (default: target).")]
    = None,
    expect: Annotated[
        str | None, typer.Option("--expect", help="Apply only if the base is at this commit.")
    ] = None,
    branch: Annotated[str | None, typer.Option("--branch", help="Branch to create.")] = None,
    propose: Annotated[
        bool, typer.Option("--propose/--no-propose", help="Open a proposal (default) or not.")
    ] = True,
    author: Annotated[str | None, typer.Option("--author", help='"Name <email>".')] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Change files in one atomic transaction: commit, push a branch, open a proposal."""
    changes = parse_changes(put or [], delete or [], move or [])
    who = parse_author(author)
    rv, name = cli_context(ctx).app_for(source)
    result = rv.source(name).update(
        base, message, who, changes=changes, branch=branch, propose=propose, expected=expect,
        idempotency_key=idempotency_key,
    )
    if json_out:
        print(dumps(result))
        return
    if result.empty:
        print("no change: nothing committed")
        return
    print(f"commit   {result.commit}")
    print(f"branch   {result.branch}{' (direct)' if result.direct else ''}")
    if result.proposal is not None:
        where = f"  {result.proposal.url}" if result.proposal.url else ""
        print(f"proposal {result.proposal.provider} #{result.proposal.number}{where}")
