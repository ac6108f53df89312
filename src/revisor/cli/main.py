"""The ``revisor`` command: thin commands that parse arguments, call the library, render.

The commands live in small modules (``browse``: ls/cat/log/show; ``sources``: sources, fetch,
doctor, prepare) that register themselves on the one Typer app in ``cli.app``. Errors are one line
on stderr with an exit code chosen by ``cli.errors``; ``--json`` prints machine-readable output.
"""

from __future__ import annotations

from revisor.cli import (  # noqa: F401 - importing registers the commands
    browse,
    candidates,
    changes,
    jobs,
    proposals,
    restore,
    serve,
    sources,
    tokens,
    workspaces,
)
from revisor.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
