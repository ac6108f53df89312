"""The Typer application object and the options every command shares (``--config``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from revisor import __version__
from revisor.cli.context import CliContext

__all__ = ["JsonOpt", "SourceArg", "app"]

app = typer.Typer(
    name="revisor",
    help="Read and change files in git repositories without managing clones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
SourceArg = Annotated[
    str, typer.Argument(help="A configured source's name, or a repository path (bare or not).")
]


def _version(value: bool) -> None:
    if value:
        print(f"revisor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="REVISOR_CONFIG",
            help="The configuration file (revisor.yaml). Default: $REVISOR_CONFIG.",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """Revisor: snapshots, transactions and version candidates over git."""
    ctx.obj = CliContext(config)
