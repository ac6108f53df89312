"""``revisor proposals list|show|merge|close``: proposals on a source's provider."""

from __future__ import annotations

from typing import Annotated

import typer

from revisor.cli.app import JsonOpt, SourceArg, app
from revisor.cli.changes import parse_author
from revisor.cli.context import cli_context
from revisor.cli.errors import handle_errors
from revisor.cli.render import dumps
from revisor.providers.base import MergeMethod, Proposal, ProposalStatus

proposals_app = typer.Typer(help="Proposals (pull/merge requests) Revisor opened.",
                            no_args_is_help=True)
app.add_typer(proposals_app, name="proposals")

NumberArg = Annotated[int, typer.Argument(help="The proposal's number.", min=1)]


def _line(p: Proposal) -> str:
    return (f"#{p.number:<5} {p.status.value:<7} {p.source_branch} -> {p.target_branch}  "
            f"{p.title}  ({p.author_name})")


def _show(p: Proposal) -> None:
    print(_line(p))
    print(f"commit   {p.source_commit}")
    if p.merged_commit:
        print(f"merged   {p.merged_commit}")
    if p.url:
        print(f"url      {p.url}")
    if p.description:
        print()
        print(p.description)


@proposals_app.command("list")
@handle_errors
def list_proposals(
    ctx: typer.Context,
    source: SourceArg,
    status: Annotated[ProposalStatus | None, typer.Option("--status")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List proposals, newest first."""
    rv, name = cli_context(ctx).app_for(source)
    found = rv.source(name).provider.list(status)
    if json_out:
        print(dumps(found))
        return
    for p in found:
        print(_line(p))


@proposals_app.command("show")
@handle_errors
def show_proposal(ctx: typer.Context, source: SourceArg, number: NumberArg,
                  json_out: JsonOpt = False) -> None:
    """Show one proposal and whether it merges cleanly now."""
    rv, name = cli_context(ctx).app_for(source)
    provider = rv.source(name).provider
    p = provider.get(number)
    merge = provider.mergeability(number) if p.status is ProposalStatus.OPEN else None
    if json_out:
        print(dumps({"proposal": p, "mergeability": merge}))
        return
    _show(p)
    if merge is not None:
        print()
        print("mergeable" if merge.clean else f"conflicts: {', '.join(merge.conflicts)}")


@proposals_app.command("merge")
@handle_errors
def merge_proposal(
    ctx: typer.Context,
    source: SourceArg,
    number: NumberArg,
    method: Annotated[MergeMethod, typer.Option("--method")] = MergeMethod.MERGE,
    author: Annotated[str | None, typer.Option("--author", help='"Name <email>".')] = None,
    json_out: JsonOpt = False,
) -> None:
    """Merge a proposal into its target (moving the target with a lease)."""
    who = parse_author(author)
    rv, name = cli_context(ctx).app_for(source)
    p = rv.source(name).provider.merge(number, method, who)
    print(dumps(p)) if json_out else _show(p)


@proposals_app.command("close")
@handle_errors
def close_proposal(
    ctx: typer.Context,
    source: SourceArg,
    number: NumberArg,
    author: Annotated[str | None, typer.Option("--author", help='"Name <email>".')] = None,
    json_out: JsonOpt = False,
) -> None:
    """Close a proposal without merging it."""
    who = parse_author(author)
    rv, name = cli_context(ctx).app_for(source)
    p = rv.source(name).provider.close(number, who)
    print(dumps(p)) if json_out else _show(p)
