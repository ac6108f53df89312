"""``revisor ws SOURCE CANDIDATE --as USER cat|ls|put|rm|mv|rollback|publish|sync|conflicts|
resolve|status``: one user's workspace in a version candidate, from the command line.

Why this module exists: a workspace (``revisor.services.workspaces``) is where one user reads and
saves files with ETags, publishes into the candidate, syncs with it and resolves conflicts; people
script that (and tests drive it) through these commands. ``--as USER`` names the workspace's user
— any Unicode name — and the workspace is made on first use at the candidate's head. Its commits
are authored by ``--author "Name <email>"`` when given (and remembered), else, for a new
workspace, by ``USER <USER@localhost>`` (a name with spaces, ``<``, ``>`` or control characters
is written into the address in ``revisor.core.refnames``'s encoding instead).

ETags are the blob ids ``cat --etag`` and ``ls`` show. ``put`` takes ``--if-match ETAG`` (the
version it changes), ``--if-match '*'`` (whatever version there is) or ``--create`` (the file must
not exist). A stale ETag — or ``--create`` on a file that exists — is exit 4 with the current ETag
in the message (HTTP's 412); a change to an existing file with none of them is exit 2 (HTTP's
428), as are ``rm`` and ``mv`` without ``--if-match``.

``publish`` is all or nothing: when it conflicts, nothing moved, the conflicting paths and the
users they collide with are printed, and the exit code is 4. ``sync`` and ``resolve`` always make
what progress they can and exit 0, printing what is left (``status`` says it too).
"""

from __future__ import annotations

import base64
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from revisor.cli.app import JsonOpt, SourceArg, app
from revisor.cli.candidates import CandidateArg, candidate_id, workspace_json
from revisor.cli.changes import parse_author
from revisor.cli.context import CliContext, cli_context
from revisor.cli.errors import ExitCode, handle_errors
from revisor.cli.render import dumps, format_entry, to_plain
from revisor.core.refnames import encode_component
from revisor.errors import InvalidInput, PreconditionFailed, WorkspaceNotFound
from revisor.services.candidate_types import (
    ConflictVersions,
    FileVersion,
    PublishResult,
    SyncResult,
    WorkspaceConflict,
)
from revisor.services.workspaces import Workspace
from revisor.vcs import Signature

__all__ = ["default_identity", "ws_app"]


class _WorkspaceGroup(TyperGroup):
    """``ws``'s options follow its arguments, so ``--help`` after a command's name would be the
    group's: it is given to the command named last before it instead."""

    # typer exports only its subclass of click's Context (click itself is vendored, private)
    def parse_args(  # type: ignore[override]
        self, ctx: typer.Context, args: list[str]
    ) -> list[str]:
        if "--help" in args and not ctx.resilient_parsing:
            named = [a for a in args[: args.index("--help")] if a in self.commands]
            if named:
                self.commands[named[-1]].make_context(named[-1], ["--help"], parent=ctx)
        return super().parse_args(ctx, args)


ws_app = typer.Typer(
    cls=_WorkspaceGroup,
    help="One user's workspace in a version candidate: read, save, publish, sync, resolve.",
    no_args_is_help=True,
    # ``ws SOURCE CANDIDATE --as USER COMMAND``: the group's options come after its arguments,
    # and what it does not know (the command's own options) is left, in order, to the command.
    context_settings={"allow_interspersed_args": True, "ignore_unknown_options": True},
)
app.add_typer(ws_app, name="ws")

PathArg = Annotated[str, typer.Argument(help="A file's path in the workspace.")]
EtagOpt = Annotated[
    str | None,
    typer.Option("--if-match", help="The ETag of the version you changed ('*': any version)."),
]
MessageOpt = Annotated[str | None, typer.Option("-m", "--message", help="The commit message.")]


def default_identity(user: str) -> Signature:
    """``USER <USER@localhost>``. A user name that cannot stand in an address as it is (spaces,
    ``<``, ``>``, unprintable characters) is written there encoded, and in the name too when it
    cannot stand there either."""
    safe_name = user.isprintable() and user.strip() == user and not any(c in "<>" for c in user)
    local = user if safe_name and not any(c.isspace() for c in user) else encode_component(user)
    return Signature.now(user if safe_name else local, f"{local}@localhost")


@dataclass
class _Group:
    """What ``revisor ws SOURCE CANDIDATE --as USER`` parsed; opens the workspace once."""

    cli: CliContext
    source: str
    candidate: str
    user: str
    author: str | None
    _ws: Workspace | None = None

    def workspace(self) -> Workspace:
        if self._ws is not None:
            return self._ws
        rv, name = self.cli.app_for(self.source)
        c = rv.source(name).candidates
        cid = candidate_id(c, self.candidate)
        if self.author is not None:
            ws = c.workspace(cid, self.user, identity=parse_author(self.author))
        else:
            try:
                ws = c.workspace(cid, self.user, create=False)
            except WorkspaceNotFound:
                ws = c.workspace(cid, self.user, identity=default_identity(self.user))
        self._ws = ws
        return ws


def _ws(ctx: typer.Context) -> Workspace:
    group = ctx.find_object(_Group)
    assert group is not None, "a ws command runs under its group"
    return group.workspace()


@ws_app.callback()
def _workspace_group(
    ctx: typer.Context,
    source: SourceArg,
    candidate: CandidateArg,
    user: Annotated[str, typer.Option("--as", help="The workspace's user (any name).")],
    author: Annotated[
        str | None,
        typer.Option("--author", help='"Name <email>" for the user\'s commits (remembered).'),
    ] = None,
) -> None:
    """USER's workspace in CANDIDATE (an id or a name) of SOURCE."""
    ctx.obj = _Group(cli_context(ctx), source, candidate, user, author)


# -- rendering -------------------------------------------------------------------------------------
def _content_json(data: bytes) -> dict[str, Any]:
    """Content as UTF-8 text when it is text, else as base64."""
    try:
        return {"encoding": "utf-8", "content": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"encoding": "base64", "content": base64.b64encode(data).decode("ascii")}


def _version_json(v: FileVersion | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"etag": v.etag, "mode": f"{v.mode:06o}", "size": len(v.data), **_content_json(v.data)}


def _conflict_line(c: WorkspaceConflict) -> str:
    commits = ", ".join(x[:12] for x in c.candidate_commits)
    users = ", ".join(c.users) or "?"
    return f"CONFLICT {c.path}  (with {users}; candidate commits {commits})"


def _print_version(label: str, v: FileVersion | None) -> None:
    if v is None:
        print(f"--- {label}: (absent)")
        return
    print(f"--- {label}: {v.etag} {v.mode:06o} {len(v.data)} bytes")
    try:
        text = v.data.decode("utf-8")
    except UnicodeDecodeError:
        print("(binary)")
        return
    print(text, end="" if text.endswith("\n") or not text else "\n")


def _sync_text(r: SyncResult) -> list[str]:
    if r.up_to_date and not r.moved:
        return [f"up to date: in sync with the candidate at {r.synced_to}"]
    out = [f"synced to candidate commit {r.synced_to}" + (" (its head)" if r.up_to_date else ""),
           f"head {r.head}" + ("" if r.moved else " (unchanged)")]
    if r.pending:
        out.append(f"not taken: {len(r.pending)} candidate commit(s) "
                   f"{', '.join(p[:12] for p in r.pending)}")
    out += [_conflict_line(c) for c in r.conflicts]
    return out


def _read_input(source: str | None, dash: str | None, what: str) -> bytes:
    """The bytes of ``--from FILE`` (``-``: standard input) or of a ``-`` argument."""
    if dash is not None and dash != "-":
        raise InvalidInput(f"{what}: unexpected argument {dash!r}", hint="use --from FILE or -")
    if (source is None) == (dash is None):
        raise InvalidInput(f"{what}: give the content with --from FILE or - (standard input)")
    if dash == "-" or source == "-":
        return sys.stdin.buffer.read()
    assert source is not None
    file = Path(source)
    if not file.is_file():
        raise InvalidInput(f"--from: no such file {file}")
    return file.read_bytes()


# -- reading ---------------------------------------------------------------------------------------
@ws_app.command("cat")
@handle_errors
def cat(
    ctx: typer.Context,
    path: PathArg,
    etag: Annotated[bool, typer.Option("--etag", help="Print the ETag on stderr.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Print a file's content (its ETag with --etag, on stderr)."""
    data, tag = _ws(ctx).read(path)
    if json_out:
        print(dumps({"path": path, "etag": tag, "size": len(data), **_content_json(data)}))
        return
    if etag:
        print(tag, file=sys.stderr)
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


@ws_app.command("ls")
@handle_errors
def ls(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="A directory in the workspace.")] = "",
    json_out: JsonOpt = False,
) -> None:
    """List a directory; each entry's id is its ETag."""
    entries = _ws(ctx).tree(path)
    if json_out:
        print(dumps(entries))
        return
    for e in entries:
        print(format_entry(e))


@ws_app.command("status")
@handle_errors
def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Whether the workspace is in sync with its candidate, what it has not published, and its
    conflicts."""
    ws = _ws(ctx)
    cand = ws.candidate()
    rec = ws.record()
    unpublished = ws.unpublished()
    info = {**workspace_json(rec, cand), "candidate": cand.id, "candidate_head": cand.head_commit,
            "unpublished": unpublished}
    if json_out:
        print(dumps(info))
        return
    print(f"workspace of {rec.user} in candidate #{cand.id} {cand.name} ({cand.status.value})")
    print(f"head      {rec.head_commit}")
    if info["in_sync"]:
        print(f"in sync with the candidate's head {cand.head_commit}")
    else:
        print(f"behind: synced to {rec.base_commit}, the candidate is at {cand.head_commit}")
    if unpublished:
        print(f"unpublished changes: {', '.join(unpublished)}")
    else:
        print("nothing to publish")
    for c in rec.conflicts:
        print(_conflict_line(c))


# -- saving ----------------------------------------------------------------------------------------
@ws_app.command("put")
@handle_errors
def put(
    ctx: typer.Context,
    path: PathArg,
    dash: Annotated[str | None, typer.Argument(help="'-': read the content from stdin.")]
    = None,
    source: Annotated[
        str | None, typer.Option("--from", help="Read the content from FILE ('-': stdin).")
    ] = None,
    if_match: EtagOpt = None,
    create: Annotated[
        bool, typer.Option("--create", help="The file must not exist yet.")
    ] = False,
    executable: Annotated[
        bool | None, typer.Option("--executable/--not-executable", help="The file's mode.")
    ] = None,
    message: MessageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Save a file (one commit in the workspace); print its new ETag."""
    if create and if_match is not None:
        raise InvalidInput("--create and --if-match exclude each other")
    data = _read_input(source, dash, "put")
    ws = _ws(ctx)
    if create:  # as HTTP's If-None-Match: *, a file that is there fails the precondition
        current = ws.etag(path)
        if current is not None:
            raise PreconditionFailed(path, None, current)
    tag = ws.write(path, data, if_match=if_match, executable=executable, message=message)
    if json_out:
        print(dumps({"path": path, "etag": tag, "head": ws.head()}))
        return
    print(tag)


@ws_app.command("rm")
@handle_errors
def rm(
    ctx: typer.Context, path: PathArg, if_match: EtagOpt = None, message: MessageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete a file (the version --if-match names)."""
    ws = _ws(ctx)
    ws.delete(path, if_match=if_match, message=message)
    if json_out:
        print(dumps({"path": path, "deleted": True, "head": ws.head()}))
        return
    print(f"deleted {path}")


@ws_app.command("mv")
@handle_errors
def mv(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="The file to move.")],
    new: Annotated[str, typer.Argument(help="Its new path (must not exist).")],
    if_match: EtagOpt = None,
    message: MessageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Rename a file (the version --if-match names); print its ETag."""
    ws = _ws(ctx)
    tag = ws.move(old, new, if_match=if_match, message=message)
    if json_out:
        print(dumps({"path": new, "from": old, "etag": tag, "head": ws.head()}))
        return
    print(tag)


@ws_app.command("rollback")
@handle_errors
def rollback(ctx: typer.Context, path: PathArg, json_out: JsonOpt = False) -> None:
    """Put back the candidate's base version of a file (or delete it if the base lacks it)."""
    ws = _ws(ctx)
    tag = ws.rollback(path)
    if json_out:
        print(dumps({"path": path, "etag": tag, "deleted": tag is None, "head": ws.head()}))
        return
    print(tag if tag is not None else f"deleted {path} (the base does not have it)")


# -- publishing, syncing, resolving ----------------------------------------------------------------
def _publish_json(r: PublishResult) -> dict[str, Any]:
    return {"user": r.user, "published": r.published, "commit": r.commit,
            "conflicts": [c.to_json() for c in r.conflicts]}


@ws_app.command("publish")
@handle_errors
def publish(ctx: typer.Context, message: MessageOpt = None, json_out: JsonOpt = False) -> None:
    """Merge the workspace's unpublished changes into the candidate (exit 4 on conflicts:
    nothing moved)."""
    result = _ws(ctx).publish(message)
    if json_out:
        print(dumps(_publish_json(result)))
    elif result.published:
        print(f"published: the candidate is at {result.commit}")
    elif result.conflicts:
        print("not published: conflicts with the candidate (nothing moved)")
        for c in result.conflicts:
            print(_conflict_line(c))
    else:
        print("nothing to publish")
    if result.conflicts:
        raise typer.Exit(ExitCode.CONFLICT)


@ws_app.command("sync")
@handle_errors
def sync(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Bring the workspace up to date with its candidate, as far as it merges cleanly."""
    result = _ws(ctx).sync()
    if json_out:
        print(dumps(result))
        return
    for line in _sync_text(result):
        print(line)


def _conflicts_json(c: ConflictVersions) -> dict[str, Any]:
    return {"path": c.path, "users": list(c.users), "candidate_commits": list(
        c.candidate_commits), "resolved": c.resolved, "base": _version_json(c.base),
        "theirs": _version_json(c.theirs), "ours": _version_json(c.ours)}


@ws_app.command("conflicts")
@handle_errors
def conflicts(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Each conflicting path with its three versions: base, theirs (the candidate's), ours."""
    found = _ws(ctx).conflicts()
    if json_out:
        print(dumps([_conflicts_json(c) for c in found]))
        return
    if not found:
        print("no conflicts")
    for c in found:
        state = "  (resolved)" if c.resolved else ""
        print(_conflict_line(WorkspaceConflict(c.path, c.candidate_commits, c.users)) + state)
        _print_version("base", c.base)
        _print_version("theirs", c.theirs)
        _print_version("ours", c.ours)


@ws_app.command("resolve")
@handle_errors
def resolve(
    ctx: typer.Context,
    path: PathArg,
    ours: Annotated[bool, typer.Option("--ours", help="Keep the workspace's version.")] = False,
    theirs: Annotated[
        bool, typer.Option("--theirs", help="Take the candidate's version.")
    ] = False,
    source: Annotated[
        str | None, typer.Option("--from", help="Resolve with FILE's content ('-': stdin).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Resolve one conflicting path; when none is left, the workspace is in sync again."""
    given = [x for x in (ours, theirs, source is not None) if x]
    if len(given) != 1:
        raise InvalidInput("resolve: give exactly one of --ours, --theirs, --from FILE")
    choice: bytes | str = "ours" if ours else "theirs" if theirs else _read_input(
        source, None, "resolve")
    result = _ws(ctx).resolve({path: choice})
    if json_out:
        print(dumps(to_plain(result)))
        return
    if result.done:
        print(f"resolved: in sync with the candidate at {result.synced_to}; head {result.head}")
    else:
        print(f"still to resolve: {', '.join(result.remaining)}")

