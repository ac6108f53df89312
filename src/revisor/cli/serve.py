"""``revisor serve``: the HTTP API (and web UI) on uvicorn, over a configuration or ``--source``.

Why this module exists: the README's main command. With only ``--source PATH_OR_URL`` it serves
that repository on 127.0.0.1:8080 over SQLite and a store in the data directory, with the job
scheduler in-process. Without users (no tokens can be checked) it refuses to listen anywhere but
loopback. ``--workers N`` runs N processes through uvicorn's factory (``api.factory``). SIGINT /
SIGTERM stop it gracefully: requests under way finish, the scheduler stops; SIGTERM then exits 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from revisor.api.settings import LOOPBACK, ServeSettings
from revisor.cli.app import app
from revisor.cli.context import cli_context
from revisor.cli.errors import handle_errors

__all__ = ["serve"]


@app.command("serve")
@handle_errors
def serve(
    ctx: typer.Context,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", "-s",
                     help="A repository path or URL to serve (repeatable), besides --config's."),
    ] = None,
    config_path: Annotated[
        Path | None, typer.Option("--config", "-c", help="The configuration (revisor.yaml).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Port (0: any free port).")] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64)] = 1,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Do not run the job schedule in-process.")
    ] = False,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Serve the API only.")] = False,
    max_body: Annotated[
        int, typer.Option("--max-body", min=1, help="Largest request body, in bytes.")
    ] = ServeSettings.max_body_bytes,
    max_file: Annotated[
        int, typer.Option("--max-file", min=1, help="Largest file in a transaction, in bytes.")
    ] = ServeSettings.max_file_bytes,
    last_commit_budget: Annotated[
        float, typer.Option("--last-commit-budget", min=0.0,
                            help="Seconds tree?last_commits=true waits before answering partial.")
    ] = ServeSettings.last_commit_budget_s,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Mirrors, database (default: config's).")
    ] = None,
) -> None:
    """Serve the HTTP API v1 (/api/v1, OpenAPI at /api/v1/openapi.json) and the web UI."""
    from revisor.api.factory import build_app, serve_config, serve_env
    from revisor.bootstrap import Revisor
    from revisor.services.auth import AuthService

    config_path = config_path or cli_context(ctx).config_path
    config = serve_config(config_path, list(source or ()), data_dir)
    settings = ServeSettings(
        host=host, port=port, max_body_bytes=max_body, max_file_bytes=max_file,
        scheduler=not no_scheduler, ui=not no_ui, last_commit_budget_s=last_commit_budget,
    )
    rv = Revisor(config).start()
    try:
        if host not in LOOPBACK and not AuthService(rv.db).has_users():
            # refused by policy before listening: a usage error of this command (exit 2)
            typer.echo(f"revisor: error: refusing to listen on {host}: no users exist, so "
                       "every caller would be the administrator", err=True)
            typer.echo("revisor: hint: create a user and a token first (revisor tokens create "
                       "--user NAME --role admin), or listen on 127.0.0.1", err=True)
            raise typer.Exit(2)
        typer.echo(f"revisor: serving {', '.join(config.sources)} from {config.data_dir}",
                   err=True)
        if workers == 1:
            with _sigterm_ends_cleanly():
                uvicorn.run(build_app(rv, settings), host=host, port=port, log_level="info",
                            timeout_graceful_shutdown=10, access_log=False)
            return
    finally:
        rv.close()
    os.environ.update(serve_env(config_path, list(source or ()), data_dir, settings))
    _run_workers(uvicorn.Config("revisor.api.factory:app_from_env", factory=True, host=host,
                                port=port, workers=workers, log_level="info",
                                timeout_graceful_shutdown=10, access_log=False))


@contextlib.contextmanager
def _sigterm_ends_cleanly() -> Iterator[None]:
    """SIGTERM is the ordinary way to stop the service: after uvicorn's graceful shutdown the
    command exits 0. (uvicorn puts back the handler it found and raises the signal again; with
    the default handler the process would die by it, -15, and skip closing the service.)"""
    stopped: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: stopped.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_workers(config: uvicorn.Config) -> None:
    """``uvicorn.run(..., workers=N)``, with the listening socket marked as TCP.

    uvicorn creates that socket with protocol 0, and the workers inherit the value: asyncio then
    never sets TCP_NODELAY on the connections it accepts, and every response waits ~40 ms for a
    delayed ACK (Nagle). Re-wrapping the same descriptor with ``IPPROTO_TCP`` fixes it.
    """
    from uvicorn.supervisors import Multiprocess

    bound = config.bind_socket()
    sock = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    sock.set_inheritable(True)
    try:
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
