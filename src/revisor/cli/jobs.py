"""``revisor jobs list|show|run`` and ``revisor worker``: the housekeeping jobs from the shell.

Thin, like every command: parse, call ``revisor.jobs``, render. ``jobs run`` shows a Rich
progress bar when stderr is a terminal. Exit codes of ``jobs run`` and ``worker --once``: 0 when
every target succeeded (or was up to date), 4 when a target was skipped because another owner
holds its lease (a conflict: try later), 1 when a target failed; ``--json`` prints the run.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from revisor.cli.app import JsonOpt, app
from revisor.cli.context import cli_context
from revisor.cli.errors import ExitCode, handle_errors
from revisor.db.jobs import JobOutcome
from revisor.jobs.base import JobName, ProgressFn
from revisor.jobs.runs import JobRun, RunStore

if TYPE_CHECKING:
    from revisor.bootstrap import Revisor

jobs_app = typer.Typer(help="Housekeeping jobs: list and show runs, run one now.",
                       no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def _open(ctx: typer.Context) -> Revisor:
    from revisor.bootstrap import Revisor

    return Revisor(cli_context(ctx).config).start()


def _exit_code(runs: list[JobRun]) -> ExitCode:
    if any(r.outcome is JobOutcome.FAILED for r in runs) or any(
        t.outcome is JobOutcome.FAILED for r in runs for t in r.results
    ):
        return ExitCode.FAILURE
    if any(t.outcome is JobOutcome.SKIPPED for r in runs for t in r.results):
        return ExitCode.CONFLICT
    return ExitCode.OK


def _line(r: JobRun) -> str:
    when = r.started_at.strftime("%Y-%m-%d %H:%M:%S")
    took = f"{(r.finished_at - r.started_at).total_seconds():.1f}s" if r.finished_at else "…"
    what = r.source or "*"
    if r.candidate is not None:
        what += f"#{r.candidate}"
    counts = ", ".join(f"{n} {k}" for k, n in sorted(r.counts().items())) or "no targets"
    if not r.finished:  # a live run: how far it is, rather than "no targets"
        counts = f"{r.progress.done}/{r.progress.total} targets"
    return (f"{r.id:<6} {r.job:<9} {r.outcome.value:<10} {when}  {took:>7}  {what:<16} "
            f"{r.changed} changed; {counts}")


def _show(r: JobRun) -> None:
    print(_line(r))
    print(f"owner    {r.owner} ({r.trigger})")
    if not r.finished:
        print(f"progress {r.progress.done}/{r.progress.total} {r.progress.message}")
    if r.error:
        print(f"error    {r.error}")
    for t in r.results:
        mark = "*" if t.changed else " "
        print(f" {mark} {t.target:<20} {t.outcome.value:<10} {t.summary}")
        if t.error:
            print(f"   {'':<20} error: {t.error}")


@jobs_app.command("list")
@handle_errors
def list_runs(
    ctx: typer.Context,
    job: Annotated[JobName | None, typer.Option("--job", help="Only this job's runs.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    before: Annotated[int | None, typer.Option("--before", help="Runs older than this id.")]
    = None,
    json_out: JsonOpt = False,
) -> None:
    """Recorded runs, newest first."""
    rv = _open(ctx)
    runs = RunStore(rv.db).list(job=job.value if job else None, limit=limit, before=before)
    if json_out:
        import json

        print(json.dumps([r.to_json() for r in runs], indent=2))
        return
    for r in runs:
        print(_line(r))


@jobs_app.command("show")
@handle_errors
def show_run(
    ctx: typer.Context,
    run: Annotated[int, typer.Argument(help="The run's id.", min=1)],
    json_out: JsonOpt = False,
) -> None:
    """One run: its targets, what each changed, errors."""
    r = RunStore(_open(ctx).db).get(run)
    if json_out:
        import json

        print(json.dumps(r.to_json(), indent=2))
        return
    _show(r)


@contextmanager
def _progress_bar(name: str) -> Iterator[ProgressFn | None]:
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[message]}"), console=Console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task(name, total=None, message="")

        def report(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total or None, message=message[:60])

        yield report


@jobs_app.command("run")
@handle_errors
def run_now(
    ctx: typer.Context,
    name: Annotated[JobName, typer.Argument(help="The job to run.")],
    source: Annotated[str | None, typer.Option("--source", help="Only this source.")] = None,
    candidate: Annotated[int | None, typer.Option("--candidate", min=1,
                                                  help="Only this candidate (with --source).")]
    = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a job now, over everything it covers (or the source / candidate given)."""
    from revisor.jobs.runner import run_job

    rv = _open(ctx)
    with _progress_bar(name.value) as report:
        run = run_job(rv, name.value, source=source, candidate=candidate, progress=report)
    if json_out:
        import json

        print(json.dumps(run.to_json(), indent=2))
    else:
        _show(run)
    code = _exit_code([run])
    if code is not ExitCode.OK:
        raise typer.Exit(code)


@app.command("worker")
@handle_errors
def worker(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One scheduling step, then exit.")]
    = False,
    poll: Annotated[float, typer.Option("--poll", min=0.05, help="Seconds between steps.")]
    = 1.0,
    json_out: JsonOpt = False,
) -> None:
    """Run the jobs on their schedules without the HTTP server, until SIGINT or SIGTERM."""
    from revisor.jobs.scheduler import Scheduler

    rv = _open(ctx)
    scheduler = Scheduler(rv, poll=poll)
    if once:
        runs = scheduler.tick()
        scheduler.stop()
        if json_out:
            import json

            print(json.dumps([r.to_json() for r in runs], indent=2))
        else:
            for r in runs:
                print(_line(r))
        code = _exit_code(runs)
        if code is not ExitCode.OK:
            raise typer.Exit(code)
        return
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    scheduler.start()
    print(f"revisor worker {scheduler.owner}: running the schedule", file=sys.stderr)
    try:
        while not stopping.wait(0.5):
            continue
    finally:
        scheduler.stop()
        print("revisor worker: stopped", file=sys.stderr)
