"""Commands on configured sources: ``sources``, ``fetch``, ``doctor``, ``prepare``."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from revisor.cli.app import JsonOpt, app
from revisor.cli.context import cli_context
from revisor.cli.errors import ExitCode, exit_code_for, handle_errors
from revisor.cli.render import dumps, to_plain
from revisor.errors import RevisorError
from revisor.store.schemes import Scheme
from revisor.store.store import StoreSource

_err = Console(stderr=True, highlight=False)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


@dataclass(frozen=True)
class SourceRow:
    name: str
    type: str
    location: str
    branch: str | None
    mirror: str | None
    last_fetch: float | None
    staleness_seconds: float | None
    last_error: str | None


@app.command("sources")
@handle_errors
def list_sources(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List the configured sources and how fresh each one is."""
    store = cli_context(ctx).store
    rows = []
    for src in store.sources():
        fresh = src.freshness()
        rows.append(
            SourceRow(
                src.name, src.config.type, src.display_location, src.config.branch,
                str(src.mirror.path) if src.mirror else None,
                fresh.last_fetch_ok, fresh.staleness, fresh.last_error,
            )
        )
    if json_out:
        print(dumps(rows))
        return
    if not rows:
        print("no sources configured (see --config / REVISOR_CONFIG)")
    for r in rows:
        status = f"fetched {_age(r.staleness_seconds)}" if r.type == "git" else "in place"
        if r.last_error:
            status += f"; last fetch failed: {r.last_error}"
        print(f"{r.name:<20} {r.type:<5} {r.location}  [{status}]")


def _selected(ctx: typer.Context, names: list[str] | None) -> list[StoreSource]:
    store = cli_context(ctx).store
    return [store.source(n) for n in names] if names else store.sources()


@app.command("fetch")
@handle_errors
def fetch(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Sources to fetch (default: all).")]
    = None,
    json_out: JsonOpt = False,
) -> None:
    """Fetch sources from their remotes, with a progress bar on long clones."""
    results = []
    worst = ExitCode.OK
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[phase]}"),
        TimeElapsedColumn(), console=_err, transient=True, disable=json_out or not _err.is_terminal,
    ) as bar:
        for src in _selected(ctx, names):
            task: TaskID = bar.add_task(src.name, total=None, phase="")

            def report(phase: str, done: int, total: int, task: TaskID = task) -> None:
                bar.update(task, completed=done, total=total, phase=phase)

            start = time.perf_counter()
            try:
                res = src.refresh(progress=report)
            except RevisorError as exc:
                worst = max(worst, exit_code_for(exc))
                results.append({"source": src.name, "ok": False, "error": str(exc)})
                _err.print(f"revisor: error: {src.name}: {exc}")
                continue
            finally:
                bar.remove_task(task)
            changes = [to_plain(c) for c in res.changes] if res else []
            results.append({"source": src.name, "ok": True, "changes": changes,
                            "seconds": round(time.perf_counter() - start, 3)})
            if not json_out:
                what = "in place" if res is None else f"{len(changes)} refs changed"
                print(f"{src.name}: {what} ({time.perf_counter() - start:.2f}s)")
    if json_out:
        print(dumps(results))
    if worst:
        raise typer.Exit(worst)


@app.command("doctor")
@handle_errors
def doctor_cmd(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Sources to check (default: all).")]
    = None,
    repair: Annotated[bool, typer.Option("--repair/--no-repair", help="Fix what is found.")]
    = True,
    quick: Annotated[bool, typer.Option("--quick", help="Check connectivity only.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check mirrors (HEAD, stale locks, objects) and repair or rebuild what is broken."""
    reports = []
    healthy = True
    for src in _selected(ctx, names):
        report = src.doctor(repair=repair, full=not quick)
        healthy &= report.healthy
        reports.append({"source": src.name, "path": str(report.path), "healthy": report.healthy,
                        "findings": to_plain(report.findings)})
        if not json_out:
            if not report.findings:
                print(f"{src.name}: healthy")
            for f in report.findings:
                mark = "repaired" if f.repaired else "NOT repaired"
                print(f"{src.name}: {f.check}: {f.problem} -> {f.action} [{mark}]")
    if json_out:
        print(dumps(reports))
    if not healthy:
        raise typer.Exit(ExitCode.FAILURE)


@app.command("prepare")
@handle_errors
def prepare(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A configured source.")],
    rev: Annotated[str, typer.Argument(help="The revision to materialize.")],
    directory: Annotated[Path, typer.Argument(help="The root directory to prepare under.")],
    scheme: Annotated[Scheme, typer.Option("--scheme", help="golang or flat.")] = Scheme.GOLANG,
    json_out: JsonOpt = False,
) -> None:
    """Materialize a read-only checkout of SOURCE at REV under DIR, laid out by the scheme."""
    src = cli_context(ctx).store.source(name)
    prepared = src.prepare(rev, directory, scheme)
    if json_out:
        print(dumps(prepared))
    else:
        print(f"{prepared.path}  ({prepared.files} files at {prepared.commit[:12]})")
    sys.stdout.flush()
