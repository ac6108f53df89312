"""Reading commands: ``ls``, ``cat``, ``log``, ``show`` over a source or a repository path."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from revisor.cli.app import JsonOpt, SourceArg, app
from revisor.cli.context import cli_context
from revisor.cli.errors import handle_errors
from revisor.cli.render import (
    changeset_dict,
    dumps,
    format_change,
    format_entries,
    format_log_line,
    to_plain,
)

RevArg = Annotated[str, typer.Argument(help="A branch, tag, commit id or HEAD, with ~N / ^N.")]


@app.command("ls")
@handle_errors
def ls(
    ctx: typer.Context,
    source: SourceArg,
    rev: RevArg = "HEAD",
    path: Annotated[str, typer.Argument(help="Directory inside the repository.")] = "",
    json_out: JsonOpt = False,
    last_commits: Annotated[
        bool, typer.Option("--last-commits", help="Show the commit that last touched each entry.")
    ] = False,
) -> None:
    """List a directory at a revision."""
    target = cli_context(ctx).open(source)
    commit = target.resolve(rev)
    entries = target.repo.tree(commit, path)
    last = target.repo.last_commits(commit, path) if last_commits else {}
    if json_out:
        payload = []
        for e in entries:
            row = to_plain(e)
            if e.name in last:
                row["last_commit"] = changeset_dict(last[e.name])
            payload.append(row)
        print(dumps(payload))
        return
    for line in format_entries(entries, last):
        print(line)


@app.command("cat")
@handle_errors
def cat(
    ctx: typer.Context,
    source: SourceArg,
    rev: RevArg,
    path: Annotated[str, typer.Argument(help="File inside the repository.")],
) -> None:
    """Print a file's content at a revision (binary safe, streamed)."""
    target = cli_context(ctx).open(source)
    f = target.repo.file(target.resolve(rev), path)
    out = sys.stdout.buffer
    for chunk in f.stream():
        out.write(chunk)
    out.flush()


@app.command("log")
@handle_errors
def log(
    ctx: typer.Context,
    source: SourceArg,
    rev: RevArg = "HEAD",
    path: Annotated[
        str | None, typer.Option("--path", "-p", help="Only commits touching this path.")
    ] = None,
    limit: Annotated[int | None, typer.Option("-n", "--limit", min=0)] = None,
    skip: Annotated[int, typer.Option("--skip", min=0)] = 0,
    json_out: JsonOpt = False,
) -> None:
    """List commits in git log order."""
    target = cli_context(ctx).open(source)
    commits = target.repo.log(target.resolve(rev), path, limit=limit, skip=skip)
    if json_out:
        print(dumps([changeset_dict(c) for c in commits]))
        return
    for c in commits:
        print(format_log_line(c))


@app.command("show")
@handle_errors
def show(
    ctx: typer.Context,
    source: SourceArg,
    rev: RevArg = "HEAD",
    patch: Annotated[bool, typer.Option("--patch", help="Show the diff too.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show a commit: author, committer, message and changed paths."""
    target = cli_context(ctx).open(source)
    r = target.repo
    cs = r.changeset(target.resolve(rev))
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
