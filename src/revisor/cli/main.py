"""The ``revisor`` command: thin commands that parse arguments, call the library, render.

Every command takes the repository first (a path, bare or not), then a revision, then a path.
Errors are one line on stderr with an exit code chosen by ``cli.errors``; ``--json`` prints
machine-readable output.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from revisor import __version__
from revisor.cli.errors import handle_errors
from revisor.cli.render import (
    changeset_dict,
    dumps,
    format_change,
    format_entry,
    format_log_line,
    to_plain,
)
from revisor.vcs import Repository

__all__ = ["app", "main"]

app = typer.Typer(
    name="revisor",
    help="Read and change files in git repositories without managing clones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RepoArg = Annotated[Path, typer.Argument(help="A git repository (bare or with a .git).")]
RevArg = Annotated[str, typer.Argument(help="A branch, tag, commit id or HEAD, with ~N / ^N.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _version(value: bool) -> None:
    if value:
        print(f"revisor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """Revisor: snapshots, transactions and version candidates over git."""


@app.command("ls")
@handle_errors
def ls(
    repo: RepoArg,
    rev: RevArg = "HEAD",
    path: Annotated[str, typer.Argument(help="Directory inside the repository.")] = "",
    json_out: JsonOpt = False,
    last_commits: Annotated[
        bool, typer.Option("--last-commits", help="Show the commit that last touched each entry.")
    ] = False,
) -> None:
    """List a directory at a revision."""
    r = Repository.open(repo)
    entries = r.tree(rev, path)
    last = r.last_commits(rev, path) if last_commits else {}
    if json_out:
        payload = []
        for e in entries:
            row = to_plain(e)
            if e.name in last:
                row["last_commit"] = changeset_dict(last[e.name])
            payload.append(row)
        print(dumps(payload))
        return
    for e in entries:
        line = format_entry(e)
        if e.name in last:
            line += f"  {format_log_line(last[e.name])}"
        print(line)


@app.command("cat")
@handle_errors
def cat(
    repo: RepoArg,
    rev: RevArg,
    path: Annotated[str, typer.Argument(help="File inside the repository.")],
) -> None:
    """Print a file's content at a revision (binary safe, streamed)."""
    f = Repository.open(repo).file(rev, path)
    out = sys.stdout.buffer
    for chunk in f.stream():
        out.write(chunk)
    out.flush()


@app.command("log")
@handle_errors
def log(
    repo: RepoArg,
    rev: RevArg = "HEAD",
    path: Annotated[
        str | None, typer.Option("--path", "-p", help="Only commits touching this path.")
    ] = None,
    limit: Annotated[int | None, typer.Option("-n", "--limit", min=0)] = None,
    skip: Annotated[int, typer.Option("--skip", min=0)] = 0,
    json_out: JsonOpt = False,
) -> None:
    """List commits in git log order."""
    commits = Repository.open(repo).log(rev, path, limit=limit, skip=skip)
    if json_out:
        print(dumps([changeset_dict(c) for c in commits]))
        return
    for c in commits:
        print(format_log_line(c))


@app.command("show")
@handle_errors
def show(
    repo: RepoArg,
    rev: RevArg = "HEAD",
    patch: Annotated[bool, typer.Option("--patch", help="Show the diff too.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show a commit: author, committer, message and changed paths."""
    r = Repository.open(repo)
    cs = r.changeset(rev)
    diffs = r.diff(cs.parents[0] if cs.parents else None, cs.id) if patch else []
    if json_out:
        out = changeset_dict(cs, with_changes=True)
        if patch:
            out["diff"] = to_plain(diffs)
        print(dumps(out))
        return
    print(f"commit {cs.id}")
    if len(cs.parents) > 1:
        print("merge  " + " ".join(p[:12] for p in cs.parents))
    print(f"author    {cs.author.name} <{cs.author.email}>  {cs.author.time.isoformat()}")
    print(f"committer {cs.committer.name} <{cs.committer.email}>  {cs.committer.time.isoformat()}")
    print()
    for line in cs.message.rstrip("\n").split("\n"):
        print(f"    {line}")
    print()
    for c in cs.changes():
        print(format_change(c))
    for d in diffs:
        print()
        print(d.patch, end="")


def main() -> None:
    app()
