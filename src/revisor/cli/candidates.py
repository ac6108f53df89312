"""``revisor candidates SOURCE list|create|show|files|diff|check|rebase|sync-workspaces|abandon|
submit``.

Why this module exists: version candidates (seed 001, ``revisor.services.candidates``) are driven
by people and by scripts; this is their command line, as thin as the other commands: parse, call
``source.candidates``, render text or ``--json``. The source comes first (``revisor candidates
demo list``) because every command of the group works on one source; a candidate is named by its
id or its name (digits are tried as an id first, then as a name).

Exit codes are ``cli.errors``'s, by error class: a refused field is 2 (the message names the
field: ``title: must not be empty``), an unknown candidate 3, a state that forbids the action or a
stale target 4. ``rebase`` that stops on conflicts has moved nothing: it prints the conflicting
paths and exits 4, like every action here that did not happen because of a conflict. Queries
(``check``, ``files``) exit 0 whatever they find.

The helpers the workspace commands share (``candidate_id``, ``candidate_json``, ``actor``) live
here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer

from revisor.cli.app import JsonOpt, SourceArg, app
from revisor.cli.changes import parse_author
from revisor.cli.context import CliContext, cli_context
from revisor.cli.errors import ExitCode, handle_errors
from revisor.cli.render import dumps, format_change, to_plain
from revisor.db.candidates import Candidate, WorkspaceRecord
from revisor.errors import CandidateNotFound
from revisor.services.candidate_types import CandidateFile, RebaseResult
from revisor.services.candidates import Candidates

__all__ = [
    "CandidateArg",
    "candidate_id",
    "candidate_json",
    "candidates_app",
    "workspace_json",
]

candidates_app = typer.Typer(
    help="Version candidates: named change sets against a source's target branch.",
    no_args_is_help=True,
)
app.add_typer(candidates_app, name="candidates")

CandidateArg = Annotated[str, typer.Argument(help="The candidate's id or name.")]
AuthorOpt = Annotated[
    str | None, typer.Option("--author", help='"Name <email>" (default: git\'s user.name/email).')
]


@dataclass(frozen=True)
class _Group:
    """What ``revisor candidates SOURCE`` parsed, for its subcommands."""

    cli: CliContext
    source: str

    def candidates(self) -> Candidates:
        rv, name = self.cli.app_for(self.source)
        return rv.source(name).candidates


def _group(ctx: typer.Context) -> _Group:
    group = ctx.find_object(_Group)
    assert group is not None, "a candidates command runs under its group"
    return group


@candidates_app.callback()
def _candidates(ctx: typer.Context, source: SourceArg) -> None:
    """Version candidates of SOURCE."""
    ctx.obj = _Group(cli_context(ctx), source)


# -- helpers shared with the workspace commands ----------------------------------------------------
def candidate_id(c: Candidates, value: str) -> int:
    """The id of the candidate named ``value``: an id (digits) if there is one, else a name."""
    text = value.strip()
    if text.isascii() and text.isdigit() and not text.startswith("0"):
        try:
            return c.get(int(text)).id
        except CandidateNotFound:
            pass
    try:
        return c.by_name(text).id
    except CandidateNotFound:
        raise CandidateNotFound(c.source, value) from None


def candidate_json(cand: Candidate) -> dict[str, Any]:
    """A candidate as JSON: every field a client needs, none of the internal bookkeeping."""
    return {
        "id": cand.id,
        "source": cand.source,
        "name": cand.name,
        "title": cand.title,
        "description": cand.description,
        "author": {"name": cand.author_name, "email": cand.author_email},
        "target": cand.target_branch,
        "strategy": cand.strategy.value,
        "status": cand.status.value,
        "base_commit": cand.base_commit,
        "head_commit": cand.head_commit,
        "has_conflicts": cand.has_conflicts,
        "conflicts": list(cand.conflicts),
        "target_checked": cand.target_checked,
        "proposal": to_plain(cand.proposal),
        "submitted_commit": cand.submitted_commit,
        "created": cand.created_at.isoformat(),
        "updated": cand.updated_at.isoformat(),
        "last_synced": cand.last_synced_at.isoformat() if cand.last_synced_at else None,
    }


def workspace_json(rec: WorkspaceRecord, cand: Candidate) -> dict[str, Any]:
    return {
        "user": rec.user,
        "ref": rec.ref,
        "author": {"name": rec.author_name, "email": rec.author_email},
        "head_commit": rec.head_commit,
        "base_commit": rec.base_commit,
        "in_sync": rec.base_commit == cand.head_commit and not rec.conflicts,
        "conflicts": [c.to_json() for c in rec.conflicts],
        "last_synced": rec.last_synced_at.isoformat() if rec.last_synced_at else None,
    }


def _line(c: Candidate) -> str:
    flag = "  CONFLICTS" if c.has_conflicts else ""
    return (f"#{c.id:<4} {c.name:<20} {c.status.value:<9} {c.target_branch} "
            f"{c.head_commit[:12]}{flag}  {c.title}  ({c.author})")


def _show(c: Candidate, workspaces: list[WorkspaceRecord]) -> None:
    print(_line(c))
    rows = [
        ("author", c.author),
        ("target", f"{c.target_branch} (strategy {c.strategy.value})"),
        ("base", c.base_commit),
        ("head", c.head_commit),
        ("created", c.created_at.isoformat()),
        ("updated", c.updated_at.isoformat()),
        ("synced", c.last_synced_at.isoformat() if c.last_synced_at else "never"),
        ("conflicts", ", ".join(c.conflicts) if c.has_conflicts else "none with the target"),
    ]
    if c.proposal is not None:
        url = f"  {c.proposal.url}" if c.proposal.url else ""
        rows.append(("proposal", f"{c.proposal.provider} #{c.proposal.number}{url}"))
    if c.submitted_commit:
        rows.append(("submitted", c.submitted_commit))
    for key, value in rows:
        print(f"{key:<10} {value}")
    if c.description:
        print()
        print(c.description)
    if workspaces:
        print()
        for w in workspaces:
            state = "in sync" if w.base_commit == c.head_commit and not w.conflicts else "behind"
            if w.conflicts:
                state = f"conflicts: {', '.join(x.path for x in w.conflicts)}"
            print(f"workspace {w.user:<20} {w.head_commit[:12]}  {state}")


def _file_line(f: CandidateFile) -> str:
    mark = "  CONFLICT" if f.conflicted else ""
    return f"{f.status.value:<9} {f.path}{mark}"


# -- commands --------------------------------------------------------------------------------------
@candidates_app.command("list")
@handle_errors
def list_candidates(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="open, submitted or abandoned.")
    ] = None,
    author: Annotated[
        str | None, typer.Option("--author", help="The author's name or email.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List candidates, newest first."""
    found = _group(ctx).candidates().list(status=status, author=author)
    if json_out:
        print(dumps([candidate_json(c) for c in found]))
        return
    for c in found:
        print(_line(c))


@candidates_app.command("create")
@handle_errors
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="3-32 characters of a-z, 0-9 and '-'.")],
    title: Annotated[str, typer.Option("--title", help="One line.")] = "",
    description: Annotated[str, typer.Option("--description", help="At most 512 characters.")]
    = "",
    target: Annotated[
        str | None, typer.Option("--target", help="The branch (default: the source's).")
    ] = None,
    strategy: Annotated[
        str, typer.Option("--strategy", help="How it follows its target: rebase or merge.")
    ] = "rebase",
    author: AuthorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a candidate at its target branch's current commit."""
    who = parse_author(author)
    cand = _group(ctx).candidates().create(
        name, title, who, description=description, target=target, strategy=strategy
    )
    if json_out:
        print(dumps(candidate_json(cand)))
        return
    print(f"created candidate #{cand.id} {cand.name} on {cand.target_branch} at "
          f"{cand.base_commit}")


@candidates_app.command("show")
@handle_errors
def show(ctx: typer.Context, candidate: CandidateArg, json_out: JsonOpt = False) -> None:
    """Show a candidate's details and its workspaces."""
    c = _group(ctx).candidates()
    cand = c.get(candidate_id(c, candidate))
    workspaces = c.workspaces(cand.id)
    if json_out:
        print(dumps({**candidate_json(cand),
                     "workspaces": [workspace_json(w, cand) for w in workspaces]}))
        return
    _show(cand, workspaces)


@candidates_app.command("files")
@handle_errors
def files(
    ctx: typer.Context,
    candidate: CandidateArg,
    include_all: Annotated[
        bool, typer.Option("--all", help="Every file of the candidate, UNCHANGED ones too.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """The files the candidate changes: NEW / CHANGED / DELETED against the target, and whether
    each conflicts with it."""
    c = _group(ctx).candidates()
    found = c.files(candidate_id(c, candidate), include_unchanged=include_all)
    if json_out:
        print(dumps(found))
        return
    for f in found:
        print(_file_line(f))


@candidates_app.command("diff")
@handle_errors
def diff(
    ctx: typer.Context,
    candidate: CandidateArg,
    path: Annotated[
        list[str] | None, typer.Option("--path", help="Only this path; repeatable.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """What the candidate changes against its target, as patches."""
    c = _group(ctx).candidates()
    diffs = c.diff(candidate_id(c, candidate), path or None)
    if json_out:
        print(dumps(diffs))
        return
    for d in diffs:
        print(f"# {format_change(d.change)}  (+{d.additions} -{d.deletions})")
        print(d.patch, end="" if d.patch.endswith("\n") else "\n")


@candidates_app.command("check")
@handle_errors
def check(ctx: typer.Context, candidate: CandidateArg, json_out: JsonOpt = False) -> None:
    """Whether the candidate merges into its target's current head (recorded; nothing moves)."""
    c = _group(ctx).candidates()
    cand = c.check(candidate_id(c, candidate))
    if json_out:
        print(dumps(candidate_json(cand)))
        return
    if cand.has_conflicts:
        print(f"conflicts with {cand.target_branch}: {', '.join(cand.conflicts)}")
    else:
        print(f"merges cleanly into {cand.target_branch}")


def _rebase_text(r: RebaseResult) -> str:
    cand = r.candidate
    if r.conflicts:
        return (f"conflicts with {cand.target_branch}: {', '.join(r.conflicts)} "
                f"(nothing moved; the candidate keeps its base {cand.base_commit[:12]})")
    if r.moved:
        return f"now on {cand.target_branch} at {cand.base_commit}: head {cand.head_commit}"
    return f"up to date with {cand.target_branch}"


@candidates_app.command("rebase")
@handle_errors
def rebase(
    ctx: typer.Context, candidate: CandidateArg, author: AuthorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Bring the candidate onto its target's current head (by its strategy)."""
    c = _group(ctx).candidates()
    result = c.rebase(candidate_id(c, candidate),
                      actor=parse_author(author) if author is not None else None)
    if json_out:
        print(dumps({"candidate": candidate_json(result.candidate), "moved": result.moved,
                     "conflicts": list(result.conflicts)}))
    else:
        print(_rebase_text(result))
    if result.conflicts:
        raise typer.Exit(ExitCode.CONFLICT)


@candidates_app.command("sync-workspaces")
@handle_errors
def sync_workspaces(ctx: typer.Context, candidate: CandidateArg, json_out: JsonOpt = False) -> None:
    """Sync every workspace of the candidate with it, in one pass (after it moved)."""
    c = _group(ctx).candidates()
    results = c.sync_workspaces(candidate_id(c, candidate))
    if json_out:
        print(dumps(results))
        return
    for r in results:
        if r.up_to_date:
            state = "moved" if r.moved else "in sync"
        else:
            state = (f"stopped at {r.synced_to[:12]}, {len(r.pending)} commit(s) not taken: "
                     f"{', '.join(x.path for x in r.conflicts)}")
        print(f"{r.user:<24} {r.head[:12]}  {state}")


@candidates_app.command("abandon")
@handle_errors
def abandon(
    ctx: typer.Context, candidate: CandidateArg, author: AuthorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Give the candidate up (its open proposal, if any, is closed)."""
    who = parse_author(author)
    c = _group(ctx).candidates()
    cand = c.abandon(candidate_id(c, candidate), who)
    if json_out:
        print(dumps(candidate_json(cand)))
        return
    print(f"candidate #{cand.id} {cand.name} is {cand.status.value}")


@candidates_app.command("submit")
@handle_errors
def submit(
    ctx: typer.Context, candidate: CandidateArg, author: AuthorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Squash the candidate into one commit on its target, through the source's provider."""
    who = parse_author(author)
    c = _group(ctx).candidates()
    cand = c.submit(candidate_id(c, candidate), who)
    if json_out:
        print(dumps(candidate_json(cand)))
        return
    print(f"candidate #{cand.id} {cand.name} is {cand.status.value}: "
          f"{cand.target_branch} at {cand.submitted_commit}")
