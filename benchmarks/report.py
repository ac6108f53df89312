"""One command for every benchmark: the corpora once, each area beside its anchor, one report.

Why it exists: each issue brought its own benchmark (``bench_vcs.py``, ``bench_store.py``,
``bench_transactions.py``, ``bench_candidates.py``, and the jobs, backup, last-commit cache and API
ones as they land), each writing its own detailed file under ``results/``. A reader wants one page
that says, area by area, how Revisor compares with what people use today, measured in the same run
on the same machine. This module:

1. builds (or finds, cached) the synthetic corpora and checks that the full one has the size the
   issue asks for (≥ 5,000 files, ≥ 20,000 commits, with merges);
2. runs every benchmark present as a child process (``benchmarks/run`` → this module), each
   with ``--output`` to its usual detailed file, and captures the sections and targets it renders
   through ``harness.render_markdown`` (the child wraps that function before importing the
   benchmark, so the benchmarks themselves need no change);
3. writes ``benchmarks/RESULTS.md`` (``RESULTS-quick.md`` with ``--quick``): the machine, the
   corpora, and one table per area with Revisor's median, the anchor's median and the ratio.

``--repo PATH`` adds a real repository: every benchmark that accepts ``--repo`` runs once more on
it. A benchmark that fails is reported as failed (with the end of its error output) and the others
still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_DIR = HERE / "results"

#: The issue's minimum size for the synthetic corpus.
MIN_FILES = 5_000
MIN_COMMITS = 20_000


@dataclass(frozen=True)
class Area:
    """One area of the report: a benchmark module and the anchor the issue names for it."""

    key: str
    title: str
    module: str
    anchor: str  # what the issue compares against, in words


AREAS: tuple[Area, ...] = (
    Area("reads", "Reads, commits, merges, last commits (revisor.vcs)", "bench_vcs",
         "raw pygit2; `git` processes (`show`, `cat-file --batch`, `merge-tree`, `log -1` per "
         "entry); cup's temporary worktree and Gitea's `clone --shared` for commits"),
    Area("store", "Store: refresh and first clone", "bench_store",
         "`git fetch` in a full clone and in a `--mirror` clone; `git clone`"),
    Area("transactions", "Transactions: a change to a proposal", "bench_transactions",
         "cup's worktree-commit-push flow; Gitea's `clone --shared` flow"),
    Area("workspaces", "Candidates and workspaces, conflict detection", "bench_candidates",
         "one clone per user (`clone --shared` and a full clone); the seed's `_merge`-repository "
         "sync (fetch + `merge --no-commit` + reset in a clone)"),
    Area("lastcommits", "Last-commit listings (cache)", "bench_lastcommits",
         "`git ls-tree` + one `git log -1` per entry (Allura, GitLab)"),
    Area("jobs", "Jobs: the sync job over many candidates", "bench_jobs",
         "recomputing every candidate's workspaces (a non-incremental job)"),
    Area("backup", "Backup of many refs", "bench_backup",
         "a plain `git push` of `refs/revisor/*` (what `git push --mirror` does for them)"),
    Area("api", "HTTP API (`revisor serve`)", "bench_api",
         "a `git show` / `git ls-tree` process per request; `git log -1` per entry"),
)


# -- what a child captures ---------------------------------------------------------------------
@dataclass
class WayResult:
    way: str
    n: int
    median: float
    p90: float
    note: str
    tags: list[str] = field(default_factory=list)  # conditions to pair by ("clients=1")


@dataclass
class SectionResult:
    key: str
    title: str
    what: str
    reference: str
    ways: list[WayResult]
    notes: list[str]
    skipped: str


@dataclass
class TargetResult:
    what: str
    goal: str
    measured: str
    verdict: str


@dataclass
class Captured:
    title: str
    env: dict[str, str]
    corpora: list[tuple[str, str]]
    sections: list[SectionResult]
    targets: list[TargetResult]


@dataclass
class Outcome:
    """One benchmark run: what it captured, or why it failed."""

    area: Area
    label: str  # "corpus" or the --repo name
    command: list[str]
    output: Path
    seconds: float
    captured: list[Captured] = field(default_factory=list)
    error: str = ""


def _capture_hook(dest: Path) -> None:
    """In the child: make ``harness.render_markdown`` also save what it renders to ``dest``."""
    import harness  # benchmarks/ is on sys.path in the child

    original = harness.render_markdown

    def recording(title: str, intro: Sequence[str], env: dict[str, str],
                  corpora: Sequence[tuple[str, str]], sections: Sequence[Any],
                  targets: Sequence[Any]) -> str:
        got = Captured(
            title, dict(env), [(a, b) for a, b in corpora],
            [SectionResult(s.key, s.title, s.what, s.reference,
                           [WayResult(t.way, t.n, t.median, t.p90, t.note) for t in s.timings],
                           list(s.notes), s.skipped) for s in sections],
            [TargetResult(t.what, t.goal, t.measured, t.verdict) for t in targets],
        )
        previous = json.loads(dest.read_text()) if dest.exists() else []
        dest.write_text(json.dumps([*previous, asdict(got)]))
        return original(title, intro, env, corpora, sections, targets)

    harness.render_markdown = recording


def child_main(module: str, dest: Path, argv: list[str]) -> int:
    """``report.py --child MODULE DEST -- ARGS``: run one benchmark, capturing its tables."""
    sys.path.insert(0, str(HERE))
    _capture_hook(dest)
    mod = __import__(module)
    sys.argv = [str(HERE / f"{module}.py"), *argv]  # for a main() that reads sys.argv itself
    takes_argv = bool(inspect.signature(mod.main).parameters)
    return int((mod.main(argv) if takes_argv else mod.main()) or 0)


def _load_captured(path: Path) -> list[Captured]:
    if not path.exists():
        return []
    out = []
    for raw in json.loads(path.read_text()):
        out.append(Captured(
            raw["title"], raw["env"], [tuple(c) for c in raw["corpora"]],
            [SectionResult(**{**s, "ways": [WayResult(**w) for w in s["ways"]]})
             for s in raw["sections"]],
            [TargetResult(**t) for t in raw["targets"]],
        ))
    return out


# -- benchmarks that write their own Markdown ---------------------------------------------------
_UNITS = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}


def parse_duration(text: str) -> float | None:
    """``"1.23 ms"`` → 0.00123 seconds (the way ``harness.fmt_duration`` writes them)."""
    parts = text.replace(",", "").split()
    if len(parts) != 2 or parts[1] not in _UNITS:
        return None
    try:
        return float(parts[0]) * _UNITS[parts[1]]
    except ValueError:
        return None


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in line.strip().strip("|").split(" | ")]


def parse_markdown(text: str, title: str) -> Captured | None:
    """Sections and targets from a benchmark's own Markdown, for benchmarks that do not render
    through ``harness.render_markdown``: every table with a ``way`` column and a ``median`` (or
    ``p50``) column gives one section per value of its first column (or per heading), and a
    table with ``target`` and ``verdict`` columns gives the targets."""
    sections: dict[str, SectionResult] = {}
    targets: list[TargetResult] = []
    heading = title
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if not (line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|-")):
            i += 1
            continue
        headers = [h.lower() for h in _cells(line)]
        rows = []
        i += 2
        while i < len(lines) and lines[i].startswith("|"):
            rows.append(_cells(lines[i]))
            i += 1
        if "target" in headers and "verdict" in headers:
            col = {h: headers.index(h) for h in headers}
            for r in rows:
                if len(r) == len(headers):
                    targets.append(TargetResult(r[col["target"]], r[col.get("goal", 0)],
                                                r[col.get("measured", 0)], r[col["verdict"]]))
            continue
        med = next((headers.index(h) for h in ("median", "p50") if h in headers), None)
        if "way" not in headers or med is None:
            continue
        way = headers.index("way")
        n = next((headers.index(h) for h in ("n", "requests") if h in headers), None)
        p90 = next((headers.index(h) for h in ("p90", "p99") if h in headers), med)
        note = headers.index("note") if "note" in headers else None
        clients = headers.index("clients") if "clients" in headers else None
        for r in rows:
            if len(r) != len(headers) or (median := parse_duration(r[med])) is None:
                continue
            group = r[0] if way != 0 else heading
            sec = sections.setdefault(group, SectionResult(group, group, group, "", [], [], ""))
            count = int(r[n].replace(",", "")) if n is not None and r[n].replace(
                ",", "").isdigit() else 0
            sec.ways.append(WayResult(
                r[way], count, median, parse_duration(r[p90]) or median,
                r[note] if note is not None else "",
                [f"clients={r[clients]}"] if clients is not None else []))
    for sec in sections.values():
        sec.reference = next((w.way for w in sec.ways if is_revisor(w.way)), "")
    if not sections and not targets:
        return None
    return Captured(title, {}, [], list(sections.values()), targets)


# -- running -----------------------------------------------------------------------------------
def _python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _accepts(module: str, flag: str) -> bool:
    """Whether the benchmark's command line has ``flag`` (asked through its ``--help``)."""
    proc = subprocess.run([_python(), str(HERE / f"{module}.py"), "--help"], capture_output=True,
                          text=True, check=False, timeout=120, cwd=ROOT, env=_child_env())
    return proc.returncode == 0 and flag in proc.stdout


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), str(ROOT),
                                                    env.get("PYTHONPATH", "")) if p)
    return env


def run_one(area: Area, args: argparse.Namespace, repo: Path | None, work: Path) -> Outcome:
    """Run ``area``'s benchmark once (on the corpus, or on ``repo``) and capture its tables."""
    label = "corpus" if repo is None else repo.name
    stem = area.module.removeprefix("bench_") + ("" if repo is None else f"-{repo.name}")
    output = args.details / f"{stem}{'-quick' if args.quick else ''}.md"
    dest = work / f"{stem}.json"
    flags: list[str] = []
    if args.quick:
        flags.append("--quick")
    if repo is not None:
        flags += ["--repo", str(repo)]
    if args.scratch is not None and _accepts(area.module, "--scratch"):
        flags += ["--scratch", str(args.scratch)]
    flags += ["--output", str(output)]
    command = [_python(), str(Path(__file__).resolve()), "--child", area.module, str(dest), "--",
               *flags]
    print(f"== {area.module} {' '.join(flags)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=_child_env(), check=False, text=True,
                          stdout=None, stderr=subprocess.PIPE, timeout=args.timeout)
    seconds = time.perf_counter() - started
    sys.stderr.write(proc.stderr[-4000:])
    outcome = Outcome(area, label, command, output, seconds, _load_captured(dest))
    if proc.returncode == 0 and not outcome.captured and output.exists():
        parsed = parse_markdown(output.read_text(), area.title)
        outcome.captured = [parsed] if parsed is not None else []
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-6:]
        outcome.error = f"exit status {proc.returncode}: " + " / ".join(tail)
    elif not outcome.captured:
        outcome.error = "it ran, but no table with a way and a median was found in its output"
    return outcome


def check_corpora(quick: bool) -> list[tuple[str, str]]:
    """Build (once) and describe the corpora; refuse a full corpus below the issue's size."""
    sys.path.insert(0, str(HERE))
    import corpus

    described = []
    for spec in (corpus.FULL, corpus.QUICK, corpus.SMALL):
        if quick and spec is corpus.FULL:
            continue
        c = corpus.ensure_corpus(spec)
        described.append((spec.name, c.describe()))
        if spec is corpus.FULL:
            s = c.stats
            if s["files_at_main"] < MIN_FILES or s["commits"] < MIN_COMMITS or s["merges"] < 1:
                raise SystemExit(f"the full corpus is too small for the issue: {c.describe()}")
    return described


# -- the report --------------------------------------------------------------------------------
def _fmt(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            value = seconds / scale
            digits = 0 if value >= 100 else 1 if value >= 10 else 2
            return f"{value:.{digits}f} {unit}"
    raise AssertionError("unreachable")


def _ratio(num: float, den: float) -> str:
    if den <= 0:
        return "—"
    r = num / den
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


#: How the benchmarks name the anchors' ways: git processes, raw pygit2, the seed's clones,
#: cup's and Gitea's flows, a non-incremental recomputation, or "anchor: …".
_ANCHOR_WORDS = ("git ", "pygit2", "anchor", "seed", "(cup)", "cup's", "(gitea)", "gitea's",
                 "not incremental", "clone --", "worktree add")


def is_revisor(way: str) -> bool:
    """Revisor's own ways are named after it (``Revisor …``, ``revisor.vcs …``), are worker
    configurations of Revisor's throughput run, or are anything not named like an anchor (the
    last-commit cache's "cache, cold"); the anchors name a git command, pygit2, the seed, cup,
    Gitea, a non-incremental recomputation, or say "anchor"."""
    w = way.lower()
    if re.search(r"(?<![/\w])revisor\b", w) or "worker process" in w:  # not refs/revisor/*
        return True
    return not any(w.startswith(word) or f" {word}" in w or f"({word}" in w
                   for word in _ANCHOR_WORDS)


def _qualifiers(w: WayResult) -> set[str]:
    """The parts of a way's name after its first comma ("commit id", "small repository"), and
    its tags (the conditions a table gives in columns, such as the number of clients)."""
    return {q.strip() for q in w.way.split(",")[1:] if q.strip()} | set(w.tags)


def comparison_rows(section: SectionResult) -> list[tuple[str, ...]]:
    """Rows ``(measure, Revisor's way, its median, anchor, its median, anchor ÷ Revisor)``.

    Every Revisor way is set beside the anchor measured in the most similar conditions: the one
    whose name shares most qualifiers with it ("…, branch name", "…, small repository",
    "…, commit-graph + Bloom filters", a table's client count), else the section's first
    anchor; an anchor no Revisor way was set beside gets a row of its own beside the section's
    reference way. A way marked ``…`` continues the way above it (same side).
    """
    kinds: list[bool] = []
    for w in section.ways:
        if w.way.startswith("…") and kinds:
            kinds.append(kinds[-1])
        else:
            kinds.append(is_revisor(w.way))
    mine = [w for w, k in zip(section.ways, kinds, strict=True) if k]
    anchors = [w for w, k in zip(section.ways, kinds, strict=True) if not k]
    ref = next((w for w in mine if w.way == section.reference), mine[0] if mine else None)
    if ref is None:
        return [(section.title, "—", "—", a.way, _fmt(a.median), "—") for a in anchors]
    ordered = [ref, *(w for w in mine if w is not ref)]

    def row(r: WayResult, a: WayResult | None) -> tuple[str, ...]:
        if a is None:
            return (section.title, r.way, _fmt(r.median), "—", "—", "—")
        return (section.title, r.way, _fmt(r.median), a.way, _fmt(a.median),
                _ratio(a.median, r.median))

    def closest(w: WayResult, among: Sequence[WayResult]) -> WayResult | None:
        if not among:
            return None
        wanted = _qualifiers(w)
        best = max(among, key=lambda o: len(wanted & _qualifiers(o)))
        return best if wanted & _qualifiers(best) else None

    rows: list[tuple[str, ...]] = []
    used: set[str] = set()
    for r in ordered:
        a = closest(r, anchors) or (anchors[0] if anchors else None)
        if a is not None:
            used.add(a.way)
        rows.append(row(r, a))
    for a in anchors:
        if a.way not in used:
            rows.append(row(closest(a, ordered) or ref, a))
    return rows


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return out + ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]


def render(outcomes: Sequence[Outcome], corpora: Sequence[tuple[str, str]], env: dict[str, str],
           args: argparse.Namespace, missing: Sequence[Area]) -> str:
    command = "benchmarks/run" + (" --quick" if args.quick else "") + "".join(
        f" --repo {r}" for r in args.repo)
    lines = [
        "# Revisor against its anchors", "",
        f"Written by `{command}`. Every area's benchmark ran in this one run, on this machine, "
        "each way of doing a job timed in alternating rounds with its anchor; `benchmarks/"
        "README.md` says what every figure means. Medians of individually timed operations; "
        "**anchor ÷ Revisor** above 1 means the anchor is slower than Revisor. The detailed "
        "tables (90th percentiles, notes, checks) are in the file linked under each area.", "",
        "## Machine", "",
    ]
    lines += _md_table(("", ""), list(env.items()))
    lines += ["", "## Repositories", ""]
    lines += [f"- **{name}**: {desc}" for name, desc in corpora]
    lines += ["", "## Summary", ""]
    summary = []
    for o in outcomes:
        met = sum(t.verdict == "met" for c in o.captured for t in c.targets)
        missed = sum(t.verdict == "MISSED" for c in o.captured for t in c.targets)
        status = f"FAILED ({o.error})" if o.error else f"{met} targets met, {missed} missed"
        summary.append((o.area.title, o.label, f"{o.seconds:.0f} s", status))
    summary += [(a.title, "—", "—", f"not run: `benchmarks/{a.module}.py` is not there")
                for a in missing]
    lines += _md_table(("area", "repository", "run time", "outcome"), summary)
    for o in outcomes:
        where = "" if o.label == "corpus" else f" — on `{o.label}`"
        out_dir = (args.output or HERE / "RESULTS.md").resolve().parent
        rel = Path(os.path.relpath(o.output.resolve(), out_dir))
        lines += ["", f"## {o.area.title}{where}", "",
                  f"Anchor: {o.area.anchor}. Details: [`{rel}`]({rel}).", ""]
        if o.error:
            lines += [f"**The benchmark failed**: {o.error}", ""]
        for c in o.captured:
            rows = [r for s in c.sections for r in comparison_rows(s)]
            skipped = [f"- *{s.title}: not measured: {s.skipped}.*" for s in c.sections
                       if s.skipped]
            if rows:
                lines += _md_table(("measure", "Revisor", "Revisor median", "anchor",
                                    "anchor median", "anchor ÷ Revisor"), rows)
                lines.append("")
            lines += skipped
            if c.targets:
                lines += ["", f"Targets ({c.title}):", ""]
                lines += _md_table(("target", "goal", "measured", "verdict"),
                                   [(t.what, t.goal, t.measured, t.verdict) for t in c.targets])
    return "\n".join(lines).rstrip() + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true",
                   help="the quick corpus and few repetitions in every benchmark")
    p.add_argument("--repo", type=Path, action="append", default=[],
                   help="also benchmark this local repository (repeatable)")
    p.add_argument("--only", nargs="+", choices=[a.key for a in AREAS],
                   help="only these areas")
    p.add_argument("--scratch", type=Path, help="where the benchmarks' copies and clones go")
    p.add_argument("--output", type=Path, help="the report (default: benchmarks/RESULTS.md)")
    p.add_argument("--details", type=Path, default=RESULTS_DIR,
                   help="where each benchmark's detailed tables go (default: benchmarks/results)")
    p.add_argument("--timeout", type=float, default=3600.0,
                   help="seconds one benchmark may take before it counts as failed")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["--child"]:
        _, module, dest, *rest = raw
        return child_main(module, Path(dest), rest[1:] if rest[:1] == ["--"] else rest)
    args = parse_args(raw)
    sys.path.insert(0, str(HERE))
    import harness

    os.environ.update({"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    load_at_start = harness.load_average()
    started = time.perf_counter()
    corpora = check_corpora(args.quick)
    for repo in args.repo:
        if not repo.exists():
            raise SystemExit(f"--repo {repo}: no such repository")
    chosen = [a for a in AREAS if not args.only or a.key in args.only]
    present = [a for a in chosen if (HERE / f"{a.module}.py").exists()]
    missing = [a for a in chosen if a not in present]
    outcomes: list[Outcome] = []
    args.details.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="revisor-report-") as tmp:
        work = Path(tmp)
        for area in present:
            outcomes.append(run_one(area, args, None, work))
            for repo in args.repo:
                if _accepts(area.module, "--repo"):
                    outcomes.append(run_one(area, args, repo.resolve(), work))
    for o in outcomes:
        for c in o.captured:
            for name, desc in c.corpora:
                if (name, desc) not in corpora and not any(n == name for n, _ in corpora):
                    corpora.append((name, desc))
    env = harness.machine(load_at_start)
    env["run time"] = f"{time.perf_counter() - started:.0f} s"
    output = args.output or HERE / f"RESULTS{'-quick' if args.quick else ''}.md"
    output.write_text(render(outcomes, corpora, env, args, missing))
    print(f"report written to {output}", file=sys.stderr)
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
