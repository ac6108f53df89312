"""``revisor restore SOURCE --from-backup [--force] [--json]``: rebuild a lost store and
database for one source from its backup remote (``revisor.services.restore``), with a progress
bar while the mirror is cloned and the backup fetched. It holds the source's backup lease
(``revisor.jobs.backup.restore_under_lease``): no backup or cleanup of the source runs
meanwhile."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from revisor.cli.app import JsonOpt, app
from revisor.cli.context import cli_context
from revisor.cli.errors import handle_errors
from revisor.cli.render import dumps, to_plain
from revisor.errors import InvalidInput
from revisor.jobs.backup import restore_under_lease

_err = Console(stderr=True, highlight=False)


@app.command("restore")
@handle_errors
def restore(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A configured source with a backup remote.")],
    from_backup: Annotated[
        bool, typer.Option("--from-backup", help="Restore from the source's backup remote.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace the source's candidate and workspace records "
                                     "if the database holds different ones."),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Rebuild a source's candidates, workspaces and their refs from its backup remote."""
    from revisor.bootstrap import Revisor

    if not from_backup:
        raise InvalidInput("say where to restore from", hint="revisor restore SOURCE --from-backup")
    config = cli_context(ctx).config
    config.source(source)  # SourceNotFound before anything is created
    with Revisor(config).start(recover=False) as rv, Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=_err, transient=True,
        disable=json_out or not _err.is_terminal,
    ) as bar:
        task = bar.add_task(source, total=None)

        def report(phase: str, done: int, total: int) -> None:
            bar.update(task, description=f"{source}: {phase}", completed=done, total=total)

        result = restore_under_lease(rv, source, force=force, progress=report)
    if json_out:
        print(dumps(to_plain(result)))
        return
    what = "restored" if result.rows_written else "already restored"
    print(f"{source}: {what} from {result.url}: {result.candidates} candidates, "
          f"{result.workspaces} workspaces, {result.refs} refs ({result.refs_changed} changed) "
          f"in {result.seconds:.2f}s")
    if result.orphans:
        print(f"{source}: {result.orphans} refs on the backup without a record were left out")
