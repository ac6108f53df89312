"""Measuring and reporting, shared by the benchmarks.

Why it exists: a figure is only worth quoting when it was measured side by side with its anchor in
the same run, repeated, and summarised robustly: the median and the 90th percentile of many timed
operations, after warm-up runs, with the garbage collector paused, rather than one run or a mean
that a single page-cache miss skews. This module holds that method in one place (the timing loop,
the statistics, the description of the machine) and renders the results both as a terminal table
and as Markdown for ``benchmarks/results/``.
"""

from __future__ import annotations

import gc
import importlib.metadata
import math
import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pygit2
from rich.console import Console
from rich.table import Table

__all__ = [
    "Section",
    "Target",
    "Timing",
    "file_creation_cost",
    "fmt_duration",
    "load_average",
    "machine",
    "measure",
    "measure_interleaved",
    "render_markdown",
    "render_terminal",
]


# -- measuring -------------------------------------------------------------------------------------
def measure(op: Callable[[int], object], reps: int, warmup: int = 3) -> tuple[float, ...]:
    """Time ``reps`` calls of ``op`` one by one (in seconds), after ``warmup`` untimed calls.

    ``op`` receives a running index (warm-up calls included) so that it can cycle through inputs.
    The garbage collector is paused while timing, as ``timeit`` does.
    """
    for i in range(warmup):
        op(i)
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    samples: list[float] = []
    clock = time.perf_counter
    try:
        for i in range(warmup, warmup + reps):
            t0 = clock()
            op(i)
            samples.append(clock() - t0)
    finally:
        if enabled:
            gc.enable()
    return tuple(samples)


def measure_interleaved(
    ops: Sequence[Callable[[int], object]],
    reps: Sequence[int],
    warmup: int = 3,
    rounds: int = 5,
) -> list[tuple[float, ...]]:
    """Like :func:`measure` for several ways of doing one job, timed in alternating blocks.

    Way 1 runs a block, then way 2, ..., ``rounds`` times over, so that slow drift in the machine
    (page cache, CPU frequency, disk write-back, other processes) affects every way alike instead of
    whichever happened to run last. ``reps[k]`` operations of way ``k`` are timed in all.
    """
    for op in ops:
        for i in range(warmup):
            op(i)
    samples: list[list[float]] = [[] for _ in ops]
    done = [0] * len(ops)
    clock = time.perf_counter
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            for k, op in enumerate(ops):
                upto = reps[k] * (r + 1) // rounds
                while done[k] < upto:
                    i = warmup + done[k]
                    t0 = clock()
                    op(i)
                    samples[k].append(clock() - t0)
                    done[k] += 1
    finally:
        if enabled:
            gc.enable()
    return [tuple(s) for s in samples]


@dataclass(frozen=True)
class Timing:
    """The timed operations of one way of doing a job."""

    way: str
    samples: tuple[float, ...]
    note: str = ""

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        """Nearest-rank 90th percentile."""
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


@dataclass
class Section:
    """One job, measured several ways; ratios are relative to the ``reference`` way."""

    key: str
    title: str
    what: str  # what one timed operation is
    reference: str
    timings: list[Timing] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str = ""  # why the section could not be measured, if it could not

    def get(self, way: str) -> Timing:
        for t in self.timings:
            if t.way == way:
                return t
        raise KeyError(way)

    def ratio(self, t: Timing) -> float | None:
        try:
            ref = self.get(self.reference)
        except KeyError:
            return None
        return t.median / ref.median if ref.median > 0 else None


@dataclass(frozen=True)
class Target:
    """A goal from the issue: ``value`` must be at least (or at most) ``bound``."""

    what: str
    value: float | None  # None: not measured
    bound: float | None  # None: no goal set, the ratio is shown for information
    at_least: bool

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "not measured"
        if self.bound is None:
            return "(no goal)"
        ok = self.value >= self.bound if self.at_least else self.value <= self.bound
        return "met" if ok else "MISSED"

    @property
    def goal(self) -> str:
        if self.bound is None:
            return "—"
        return f"{'≥' if self.at_least else '≤'} {self.bound:g}x"

    @property
    def measured(self) -> str:
        return "—" if self.value is None else f"{self.value:.2f}x"


# -- describing the machine ------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return m.group(1).strip() if m else platform.processor() or "unknown"


def _memory() -> str:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return "unknown"
    m = re.search(r"^MemTotal:\s*(\d+) kB", text, re.MULTILINE)
    return f"{int(m.group(1)) / 1024 / 1024:.0f} GiB" if m else "unknown"


def load_average() -> str:
    """The 1, 5 and 15-minute load averages: other work on the machine skews every figure."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def file_creation_cost(directory: Path, count: int = 300, size: int = 4096) -> float:
    """Median seconds to create one small file in ``directory``.

    Checking out a worktree or a clone creates one file per tracked file, so this single figure
    explains most of what the worktree and clone anchors cost on a given disk.
    """
    scratch = directory / ".file-creation-probe"
    scratch.mkdir(parents=True, exist_ok=True)
    payload = b"x" * size
    samples = []
    try:
        for i in range(count):
            t0 = time.perf_counter()
            (scratch / f"f{i}").write_bytes(payload)
            samples.append(time.perf_counter() - t0)
    finally:
        for f in scratch.iterdir():
            f.unlink()
        scratch.rmdir()
    return statistics.median(samples)


def machine(load_at_start: str = "") -> dict[str, str]:
    """What the figures were measured on, for the report."""
    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": _cpu_model(),
        "cores": f"{usable} usable ({os.cpu_count()} online)",
        "memory": _memory(),
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "git": git.stdout.strip().removeprefix("git version "),
        "pygit2": importlib.metadata.version("pygit2"),
        "libgit2": pygit2.LIBGIT2_VERSION,
        "load average (1/5/15 min)": f"{load_at_start} at start, {load_average()} at end",
    }


# -- rendering -------------------------------------------------------------------------------------
def fmt_duration(seconds: float) -> str:
    """A duration with three significant figures, in µs, ms or s."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            value = seconds / scale
            digits = 0 if value >= 100 else 1 if value >= 10 else 2
            return f"{value:.{digits}f} {unit}"
    raise AssertionError("unreachable")


def _ratio_text(section: Section, t: Timing) -> str:
    r = section.ratio(t)
    if t.way == section.reference:
        return "1 (reference)"
    return "—" if r is None else f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def _rows(section: Section) -> list[tuple[str, str, str, str, str, str]]:
    return [
        (
            t.way,
            f"{t.n:,}",
            fmt_duration(t.median),
            fmt_duration(t.p90),
            _ratio_text(section, t),
            t.note,
        )
        for t in section.timings
    ]


_HEADERS = ("way", "n", "median", "p90", "÷ reference", "note")


def render_terminal(
    console: Console, sections: Sequence[Section], targets: Sequence[Target]
) -> None:
    for s in sections:
        table = Table(title=f"{s.title} — one op: {s.what}", title_justify="left")
        for h in _HEADERS:
            table.add_column(h, justify="right" if h in ("n", "median", "p90") else "left")
        if s.skipped:
            table.add_row(f"[yellow]skipped: {s.skipped}[/]", "", "", "", "", "")
        for row in _rows(s):
            table.add_row(*row)
        console.print(table)
        for note in s.notes:
            console.print(f"  [dim]{note}[/]")
    table = Table(title="Targets", title_justify="left")
    for h in ("target", "goal", "measured", "verdict"):
        table.add_column(h)
    for t in targets:
        colour = {"met": "green", "MISSED": "red"}.get(t.verdict, "yellow")
        table.add_row(t.what, t.goal, t.measured, f"[{colour}]{t.verdict}[/]")
    console.print(table)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return out


def render_markdown(
    title: str,
    intro: Sequence[str],
    env: dict[str, str],
    corpora: Sequence[tuple[str, str]],
    sections: Sequence[Section],
    targets: Sequence[Target],
) -> str:
    lines = [f"# {title}", "", *intro, "", "## Machine", ""]
    lines += _md_table(("", ""), [(k, v) for k, v in env.items()])
    lines += ["", "## Repositories", ""]
    lines += [f"- **{name}**: {desc}" for name, desc in corpora]
    lines += ["", "## Targets", ""]
    lines += _md_table(
        ("target", "goal", "measured", "verdict"),
        [(t.what, t.goal, t.measured, t.verdict) for t in targets],
    )
    for s in sections:
        lines += ["", f"## {s.title}", "", f"One operation: {s.what}.", ""]
        if s.skipped:
            lines += [f"*Not measured: {s.skipped}.*", ""]
        if s.timings:
            lines += _md_table(_HEADERS, _rows(s))
            lines.append("")
        lines += [f"- {note}" for note in s.notes]
    return "\n".join(lines).rstrip() + "\n"
