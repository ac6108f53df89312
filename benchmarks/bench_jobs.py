"""The benchmark for the jobs (issue 7): ``sync`` over 100 candidates x 10 workspaces.

Why it exists: the sync job runs every minute over every open candidate, and almost always
nothing has moved. The issue's target is that such a run takes under 0.5 s for 100 candidates with
10 workspaces each, which is only possible if it is incremental: the job remembers what each
result was computed from (target head, candidate head, workspace heads) and compares that with
one ref listing, instead of opening each workspace and merging. This script measures, on a
repository made for it (a local source, so no fetch is timed) with SQLite on the scratch disk:

(a) ``run_job(rv, "sync")`` when nothing changed since the last run (the whole run: recording it,
    listing candidates, memos and refs) — the target;
(b) the same run after the target branch moved (every candidate rebased onto it and its ten
    workspaces synced: 100 rebases, 1,000 workspace syncs), checked afterwards: every candidate
    on the new target, every workspace at its candidate's head;
(c) for reference, recomputing everything when nothing changed: ``Candidates.sync_workspaces``
    for each of the 100 candidates one after the other (what a non-incremental job would do).

    .venv/bin/python benchmarks/bench_jobs.py            # 100 x 10
    .venv/bin/python benchmarks/bench_jobs.py --quick    # 20 x 5
    .venv/bin/python benchmarks/bench_jobs.py --output PATH

Results go to the terminal and, as Markdown, to ``benchmarks/results/jobs.md`` (``jobs-quick.md``
with ``--quick``). The backup of 10,000 refs is measured by the backup work (its own section).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bench_store import SecondsTarget
from harness import (
    Section,
    Target,
    Timing,
    load_average,
    machine,
    measure,
    render_markdown,
    render_terminal,
)
from revisor.bootstrap import Revisor
from revisor.config import Config
from revisor.db.jobs import JobOutcome
from revisor.jobs.runner import run_job
from revisor.vcs import Signature

RESULTS_DIR = Path(__file__).resolve().parent / "results"
AUTHOR = Signature.now("Bench Author", "author@bench.invalid")
GOAL_UNCHANGED = 0.5


@dataclass(frozen=True)
class Plan:
    candidates: int
    workspaces: int
    unchanged_reps: int
    moved_reps: int
    full_reps: int


FULL_PLAN = Plan(100, 10, 15, 3, 3)
QUICK_PLAN = Plan(20, 5, 10, 2, 2)


def git(*args: str, cwd: Path | None = None, input: bytes | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Up", "GIT_AUTHOR_EMAIL": "up@bench.invalid",
           "GIT_COMMITTER_NAME": "Up", "GIT_COMMITTER_EMAIL": "up@bench.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, env=env,
                          check=True).stdout.decode()


def make_upstream(root: Path, files: int) -> Path:
    """A bare repository with ``files`` small files on ``main`` (made by a scratch clone)."""
    work = root / "seed"
    git("init", "-q", "-b", "main", str(work))
    for i in range(files):
        (work / f"f{i:03d}.txt").write_text("".join(f"line {j} of {i}\n" for j in range(30)))
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "seed", cwd=work)
    bare = root / "upstream.git"
    git("clone", "-q", "--bare", str(work), str(bare))
    return bare


def move_target(bare: Path, n: int) -> str:
    """A commit on ``main`` changing a file no candidate touches (``moved.txt``)."""
    parent = git("--git-dir", str(bare), "rev-parse", "refs/heads/main").strip()
    blob = git("--git-dir", str(bare), "hash-object", "-w", "--stdin",
               input=f"moved {n}\n".encode()).strip()
    base_tree = git("--git-dir", str(bare), "rev-parse", f"{parent}^{{tree}}").strip()
    listing = git("--git-dir", str(bare), "ls-tree", base_tree)
    lines = [ln for ln in listing.splitlines() if not ln.endswith("\tmoved.txt")]
    lines.append(f"100644 blob {blob}\tmoved.txt")
    tree = git("--git-dir", str(bare), "mktree", input=("\n".join(lines) + "\n").encode()).strip()
    commit = git("--git-dir", str(bare), "commit-tree", tree, "-p", parent, "-m",
                 f"target moves {n}").strip()
    git("--git-dir", str(bare), "update-ref", "refs/heads/main", commit, parent)
    return commit


def build(rv: Revisor, plan: Plan, console: Console) -> list[int]:
    c = rv.source("big").candidates
    ids = []
    t0 = time.perf_counter()
    for i in range(plan.candidates):
        cand = c.create(f"cand-{i:03d}", f"Candidate {i}", AUTHOR)
        users = [f"user{j:02d}" for j in range(plan.workspaces)]
        for u in users:
            c.workspace(cand.id, u)
        ws = c.workspace(cand.id, users[0])
        path = f"f{i % 100:03d}.txt"
        data, etag = ws.read(path)
        ws.write(path, data + f"candidate {i}\n".encode(), if_match=etag)
        ws.publish()
        ids.append(cand.id)
    console.print(f"[dim]{plan.candidates} candidates x {plan.workspaces} workspaces made in "
                  f"{time.perf_counter() - t0:.1f} s[/]")
    return ids


def check_all_synced(rv: Revisor, ids: Sequence[int], target: str) -> None:
    repo = rv.source("big").stored.repository
    refs = repo.refs("refs/revisor/")
    for cid in ids:
        head = refs[f"refs/revisor/candidates/{cid}"]
        assert repo.is_ancestor(target, head), cid
        for ref, oid in refs.items():
            if ref.startswith(f"refs/revisor/workspaces/{cid}/"):
                assert oid == head, ref


def bench(root: Path, plan: Plan, console: Console) -> tuple[list[Section], list[Target]]:
    bare = make_upstream(root, 100)
    config = Config.model_validate({
        "data_dir": str(root / "data"),
        "sources": {"big": {"type": "local", "path": str(bare), "branch": "main"}},
    })
    rv = Revisor(config, env={}).start()
    ids = build(rv, plan, console)
    first = run_job(rv, "sync")
    assert first.outcome is JobOutcome.SUCCEEDED and first.changed == len(ids), first.counts()

    unchanged = Section("unchanged", "sync when nothing changed",
                        f"one run of the sync job over {len(ids)} candidates x "
                        f"{plan.workspaces} workspaces", "run_job sync (incremental)")
    runs = []

    def one(_: int) -> None:
        run = run_job(rv, "sync")
        assert run.changed == 0 and run.outcome is JobOutcome.SUCCEEDED
        runs.append(run)

    unchanged.timings.append(Timing("run_job sync (incremental)",
                                    measure(one, plan.unchanged_reps, warmup=2)))
    c = rv.source("big").candidates

    def everything(_: int) -> None:
        for cid in ids:
            c.sync_workspaces(cid)

    unchanged.timings.append(Timing("sync_workspaces of every candidate (not incremental)",
                                    measure(everything, plan.full_reps, warmup=1)))
    unchanged.notes.append(
        "Every timed run was checked: outcome succeeded, 0 targets changed (all "
        f"{len(ids)} recorded as up to date).")

    moved = Section("moved", "sync after the target moved",
                    f"one run of the sync job after a commit on the target: {len(ids)} "
                    f"rebases and {len(ids) * plan.workspaces} workspace syncs",
                    "run_job sync (target moved)")
    samples = []
    for n in range(plan.moved_reps):
        target = move_target(bare, n)
        t0 = time.perf_counter()
        run = run_job(rv, "sync")
        samples.append(time.perf_counter() - t0)
        assert run.outcome is JobOutcome.SUCCEEDED and run.changed == len(ids), run.counts()
        check_all_synced(rv, ids, target)
    moved.timings.append(Timing("run_job sync (target moved)", tuple(samples)))
    moved.notes.append("Checked after every run: each candidate contains the new target "
                       "commit and every workspace is at its candidate's head.")
    rv.close()
    targets: list[Target] = [
        SecondsTarget(f"sync, nothing changed, {len(ids)} x {plan.workspaces}",
                      unchanged.timings[0].median, GOAL_UNCHANGED, at_least=False),
        SecondsTarget("sync after the target moved", moved.timings[0].median, None,
                      at_least=False),
    ]
    return [unchanged, moved], targets


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="20 candidates x 5 workspaces")
    p.add_argument("--output", type=Path, help="where to write the Markdown results")
    p.add_argument("--scratch", type=Path, help="where to make the repository and database")
    args = p.parse_args(argv)
    os.environ.update({"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    started, load_at_start = time.perf_counter(), load_average()
    console = Console() if Console().is_terminal else Console(width=150)
    with tempfile.TemporaryDirectory(prefix="revisor-bench-jobs-", dir=args.scratch) as tmp:
        sections, targets = bench(Path(tmp), plan, console)
    elapsed = time.perf_counter() - started
    env = {**machine(load_at_start), "run time": f"{elapsed:.0f} s"}
    render_terminal(console, sections, targets)
    intro = [
        f"Written by `benchmarks/bench_jobs.py{' --quick' if args.quick else ''}`; its "
        "docstring says what each figure means (`benchmarks/README.md` has the method). "
        "Medians and 90th percentiles of individually timed runs of the sync job, SQLite and "
        "the repository on the scratch disk, a local source (no fetch timed).",
    ]
    text = render_markdown("Jobs benchmark", intro, env,
                           [("bench", "a local bare repository, 100 files of 30 lines")],
                           sections, targets)
    text += ("\n## Backup of 10,000 refs\n\n*Measured by the backup work "
             "(`benchmarks/bench_jobs.py` does not cover it yet).*\n")
    output = args.output or RESULTS_DIR / f"jobs{'-quick' if args.quick else ''}.md"
    RESULTS_DIR.mkdir(exist_ok=True)
    output.write_text(text)
    print(f"results written to {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
