"""The benchmark for the store (issue 3): refreshing a mirror with 50,000 refs, and the first clone.

Why it exists: every read that asks for freshness may refresh a source's mirror, so a refresh that
finds nothing new must cost next to nothing even on a remote with tens of thousands of branches and
tags (the issue's target: under 0.5 s, and faster than ``git fetch`` in a full clone, side by side).
And a source's first use clones it: that must cost no more than ``git clone --mirror``. This script
measures both on the synthetic corpus, next to the git command-line ways, over ``file://`` URLs (so
git packs objects as a server would instead of hard-linking them), and checks that every way ends
with the same refs as the remote before quoting how fast it is.

    .venv/bin/python benchmarks/bench_store.py            # full corpus, 50,000 refs: ~5 minutes
    .venv/bin/python benchmarks/bench_store.py --quick    # scaled down (6,000 refs): ~30 seconds
    .venv/bin/python benchmarks/bench_store.py --profile  # also results/profile-store-refresh.txt

Results go to the terminal and, as Markdown, to ``benchmarks/results/store.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import io
import os
import pstats
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from rich.console import Console

import anchors
from corpus import FULL, QUICK, Corpus, ensure_corpus, git_env
from harness import (
    Section,
    Target,
    Timing,
    file_creation_cost,
    fmt_duration,
    load_average,
    machine,
    measure,
    measure_interleaved,
    render_markdown,
    render_terminal,
)
from revisor.config import Config, GitSource
from revisor.store.mirror import FETCH_REFSPECS, FetchResult, Mirror, RefChange
from revisor.store.store import Store, StoreSource
from revisor.vcs import ObjectId

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SOURCE = "big"
REFRESH_BOUND = 0.5  # seconds: the target for a refresh that finds nothing new

Op = Callable[[int], object]

# The ways the targets compare (the names shown in the tables).
REVISOR_REFRESH = "Revisor StoreSource.refresh()"
MAINTAINED_REFRESH = "Revisor StoreSource.refresh(), mirror maintained"
FULL_FETCH = "git fetch in a full clone"
MIRROR_FETCH = "git fetch --prune in a --mirror clone"
FLOOR_FETCH = "git fetch as Revisor runs it, alone"
LS_REMOTE = "git ls-remote --heads --tags --refs"
REVISOR_CLONE = "Revisor first refresh() (creates the mirror)"
MIRROR_CLONE = "git clone --mirror"
FULL_CLONE = "git clone (full, with checkout)"


@dataclass(frozen=True)
class Plan:
    """How big the remote is and how many operations each way is timed for."""

    extra_refs: int = 50_000
    fetch_reps: int = 15
    fetch_warmup: int = 2
    clone_reps: int = 3
    profile_reps: int = 3
    parts_reps: int = 7


FULL_PLAN = Plan()
QUICK_PLAN = Plan(
    extra_refs=6_000, fetch_reps=5, fetch_warmup=1, clone_reps=1, profile_reps=2, parts_reps=5
)


@dataclass
class Context:
    corpus: Corpus
    scratch: Path
    plan: Plan
    profile: bool
    seed: int = 11
    profiles: dict[str, str] = field(default_factory=dict)
    corpora: list[tuple[str, str]] = field(default_factory=list)

    def rng(self, salt: str) -> random.Random:
        return random.Random(f"{self.seed}:{salt}")

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class SecondsTarget(Target):
    """A target on an absolute duration (the harness's targets are ratios)."""

    @property
    def goal(self) -> str:
        if self.bound is None:
            return "—"
        return f"{'≥' if self.at_least else '≤'} {fmt_duration(self.bound)}"

    @property
    def measured(self) -> str:
        return "—" if self.value is None else fmt_duration(self.value)


# -- git helpers -----------------------------------------------------------------------------------
def refs_of(git_dir: Path, *prefixes: str) -> dict[str, str]:
    """``{ref: object id}`` of the refs under ``prefixes`` (all refs if none), as git sees them."""
    out = anchors.Git(git_dir=git_dir).out(
        "for-each-ref", "--format=%(objectname) %(refname)", *prefixes
    )
    refs = {}
    for line in out.splitlines():
        oid, _, name = line.partition(" ")
        refs[name] = oid
    return refs


def loose_refs(git_dir: Path) -> int:
    """How many refs are loose files (each one is opened by every git process that lists refs)."""
    return sum(1 for p in (git_dir / "refs").rglob("*") if p.is_file())


def heads_and_tags(git_dir: Path) -> dict[str, str]:
    return refs_of(git_dir, "refs/heads/", "refs/tags/")


def scratch_remote(src: Path, dest: Path) -> Path:
    """A writable copy (``clone --mirror --local``: packs hard-linked, or copied to another
    file system), with auto-gc off."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    same_fs = os.stat(src).st_dev == os.stat(dest.parent).st_dev
    links = [] if same_fs else ["--no-hardlinks"]
    anchors.Git().run("clone", "-q", "--mirror", "--local", *links, str(src), str(dest))
    anchors.Git(git_dir=dest).run("config", "gc.auto", "0")
    return dest


# -- a remote with many refs -----------------------------------------------------------------------
_OBJ_TAG = 4


def write_pack(git_dir: Path, objects: Sequence[tuple[int, bytes]]) -> list[str]:
    """Store ``(type, content)`` objects in ``git_dir`` as one new pack; return their ids.

    Writing thousands of loose objects (or refs) costs ~0.5 ms of file creation each on this disk;
    a pack of whole (undeltified) objects is a few lines to write and one ``index-pack``.
    """
    body = bytearray(b"PACK" + struct.pack(">II", 2, len(objects)))
    ids = []
    names = {_OBJ_TAG: b"tag"}
    for kind, data in objects:
        size = len(data)
        byte = (kind << 4) | (size & 0x0F)
        size >>= 4
        header = bytearray()
        while size:
            header.append(byte | 0x80)
            byte = size & 0x7F
            size >>= 7
        header.append(byte)
        body += header + zlib.compress(data)
        ids.append(hashlib.sha1(b"%s %d\0%s" % (names[kind], len(data), data)).hexdigest())  # noqa: S324
    body += hashlib.sha1(body).digest()  # noqa: S324 - git's pack checksum
    subprocess.run(
        ["git", f"--git-dir={git_dir}", "index-pack", "--stdin"],
        input=bytes(body),
        capture_output=True,
        env=git_env(),
        check=True,
    )
    return ids


def read_packed_refs(git_dir: Path) -> dict[str, tuple[str, str | None]]:
    """``{ref: (object id, peeled id or None)}`` from ``packed-refs``."""
    refs: dict[str, tuple[str, str | None]] = {}
    path = git_dir / "packed-refs"
    last = ""
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith("#") or not line:
            continue
        if line.startswith("^"):
            refs[last] = (refs[last][0], line[1:])
            continue
        oid, _, name = line.partition(" ")
        refs[name] = (oid, None)
        last = name
    return refs


def write_packed_refs(git_dir: Path, refs: dict[str, tuple[str, str | None]]) -> None:
    lines = ["# pack-refs with: peeled fully-peeled sorted "]
    for name in sorted(refs, key=str.encode):
        oid, peeled = refs[name]
        lines.append(f"{oid} {name}")
        if peeled is not None:
            lines.append(f"^{peeled}")
    tmp = git_dir / "packed-refs.new"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, git_dir / "packed-refs")


@dataclass(frozen=True)
class ExtraRefs:
    branches: int
    lightweight_tags: int
    annotated_tags: int

    @property
    def total(self) -> int:
        return self.branches + self.lightweight_tags + self.annotated_tags

    def describe(self) -> str:
        return (
            f"{self.branches:,} branches `refs/heads/feature/NNNNN`, {self.lightweight_tags:,} "
            f"lightweight tags `refs/tags/build/NNNNN` and {self.annotated_tags:,} annotated tags "
            "`refs/tags/release/NNNNN`, pointing at commits spread over the whole history"
        )


def add_refs(remote: Path, count: int, rng: random.Random) -> ExtraRefs:
    """Add ``count`` refs to ``remote``: 80 % branches, 10 % lightweight and 10 % annotated tags,
    all written straight into ``packed-refs`` (50,000 loose refs would take minutes to create on
    this disk, and a server's refs are packed anyway)."""
    if any(p.is_file() for p in (remote / "refs").rglob("*")):
        raise RuntimeError(f"{remote} has loose refs; expected every ref packed")
    commits = anchors.Git(git_dir=remote).out("rev-list", "--all").split()
    branches = count * 8 // 10
    tags = count - branches
    annotated = tags // 2
    refs = read_packed_refs(remote)
    for n in range(branches):
        refs[f"refs/heads/feature/{n:05d}"] = (rng.choice(commits), None)
    for n in range(tags - annotated):
        refs[f"refs/tags/build/{n:05d}"] = (rng.choice(commits), None)
    targets = [rng.choice(commits) for _ in range(annotated)]
    tag_objects = [
        (
            _OBJ_TAG,
            (
                f"object {target}\ntype commit\ntag release/{n:05d}\n"
                f"tagger Bench Tagger <tagger@bench.invalid> {1_700_000_000 + n} +0000\n\n"
                f"Release {n}\n"
            ).encode(),
        )
        for n, target in enumerate(targets)
    ]
    ids = write_pack(remote, tag_objects) if tag_objects else []
    for n, (tag_id, target) in enumerate(zip(ids, targets, strict=True)):
        refs[f"refs/tags/release/{n:05d}"] = (tag_id, target)
    write_packed_refs(remote, refs)
    extra = ExtraRefs(branches, tags - annotated, annotated)
    # Checked: git reads every ref, and peels every annotated tag to the commit it was made for.
    listed = anchors.Git(git_dir=remote).out(
        "for-each-ref", "--format=%(refname) %(objecttype) %(*objectname)", "refs/tags/release/"
    )
    peeled = {
        name: target
        for name, kind, target in (line.split(" ") for line in listed.splitlines())
        if kind == "tag"
    }
    assert peeled == {f"refs/tags/release/{n:05d}": t for n, t in enumerate(targets)}
    assert len(refs_of(remote)) == len(refs), "git does not see every ref written"
    return extra


# -- 1. refreshing a mirror that is up to date -----------------------------------------------------
def make_store(data_dir: Path, url: str) -> Store:
    """A store with one git source; ``refresh: 1h`` so nothing fetches behind the benchmark."""
    config = Config(
        data_dir=data_dir, sources={SOURCE: GitSource(url=url, refresh=timedelta(hours=1))}
    )
    return Store(config)


def revisor_refs(src: StoreSource) -> dict[str, str]:
    return heads_and_tags(mirror_of(src).path)


def mirror_of(src: StoreSource) -> Mirror:
    assert src.mirror is not None
    return src.mirror


def unchanged(result: FetchResult | None) -> None:
    assert result is not None and result.fetched, "the refresh did not fetch"
    assert not result.changes, f"nothing changed upstream, yet {len(result.changes)} changes"


def check_same_refs(remote: Path, sources: Sequence[StoreSource], full: Path, mirror: Path) -> int:
    """Every copy holds exactly the remote's refs (each in its own namespace); returns how many."""
    want = heads_and_tags(remote)
    for src in sources:
        assert revisor_refs(src) == want, f"Revisor's mirror {mirror_of(src).path} differs"
    assert refs_of(mirror) == refs_of(remote), "the --mirror clone differs from the remote"
    tracking = {
        "refs/heads/" + name.removeprefix("refs/remotes/origin/"): oid
        for name, oid in refs_of(full / ".git", "refs/remotes/origin/").items()
        if name != "refs/remotes/origin/HEAD"
    }
    tags = refs_of(full / ".git", "refs/tags/")
    assert tracking | tags == want, "the full clone's remote-tracking refs and tags differ"
    return len(want)


def bench_refresh(ctx: Context) -> tuple[Section, StoreSource]:
    plan = ctx.plan
    remote = scratch_remote(ctx.corpus.path, ctx.scratch / "remote.git")
    ctx.log(f"refresh: adding {plan.extra_refs:,} refs to a copy of the corpus")
    extra = add_refs(remote, plan.extra_refs, ctx.rng("refs"))
    n_refs = len(heads_and_tags(remote))
    ctx.corpora.append(
        (
            "remote with many refs",
            f"a copy of {ctx.corpus.spec.name} plus {extra.describe()}: {n_refs:,} branches "
            "and tags in all, every ref packed",
        )
    )
    url = remote.resolve().as_uri()

    ctx.log("refresh: creating Revisor's mirror, a full clone and a --mirror clone (untimed)")
    src = make_store(ctx.scratch / "revisor", url).source(SOURCE)
    first_s = timed_once(lambda: created_all(src.refresh(), n_refs))
    ctx.log("refresh: a second Revisor mirror, then StoreSource.maintain() on it (untimed)")
    kept = make_store(ctx.scratch / "revisor-maintained", url).source(SOURCE)
    created_all(kept.refresh(), n_refs)
    maintenance = kept.maintain()
    assert maintenance is not None
    loose = loose_refs(mirror_of(src).path), loose_refs(mirror_of(kept).path)
    full, mirror = ctx.scratch / "full", ctx.scratch / "mirror.git"
    full_s = timed_once(lambda: anchors.Git().run("clone", "-q", url, str(full)))
    mirror_s = timed_once(lambda: anchors.Git().run("clone", "-q", "--mirror", url, str(mirror)))
    for d in (full / ".git", mirror):
        anchors.Git(git_dir=d).run("config", "gc.auto", "0")
    checked = check_same_refs(remote, [src, kept], full, mirror)

    fetch_args = [
        "fetch", "--prune", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head",
        "--quiet", "--end-of-options", url, *FETCH_REFSPECS,
    ]  # fmt: skip
    shown_args = " ".join(fetch_args[:-3]) + " URL refs/heads/* refs/tags/*"
    ls_args = ["ls-remote", "--heads", "--tags", "--refs", "--end-of-options", url]
    loose_git, kept_git = (anchors.Git(git_dir=mirror_of(s).path) for s in (src, kept))
    full_git, mirror_clone_git = anchors.Git(cwd=full), anchors.Git(git_dir=mirror)
    remote_git = anchors.Git()

    def revisor_op(_: int) -> None:
        unchanged(src.refresh())

    def maintained_op(_: int) -> None:
        unchanged(kept.refresh())

    def ls_remote(_: int) -> None:
        assert remote_git.run(*ls_args).stdout.count(b"\n") == n_refs

    ways = [
        (REVISOR_REFRESH, revisor_op, f"the mirror as its first refresh left it: {loose[0]:,} "
         "loose refs"),
        (MAINTAINED_REFRESH, maintained_op, f"after `StoreSource.maintain()`: {loose[1]:,} loose "
         "refs, packed refs, a commit-graph"),
        (FULL_FETCH, lambda _: full_git.run("fetch", "origin"), "writes FETCH_HEAD"),
        (MIRROR_FETCH, lambda _: mirror_clone_git.run("fetch", "--prune", "origin"), ""),
        (FLOOR_FETCH, lambda _: loose_git.run(*fetch_args), f"`{shown_args}`, on the first "
         "mirror: what a refresh costs if it fetches"),
        (LS_REMOTE, ls_remote, "the ref advertisement alone: what checking for changes costs"),
    ]  # fmt: skip
    section = Section(
        "refresh",
        f"Refresh a mirror of a remote with {n_refs:,} refs when nothing changed",
        "bring an up-to-date copy up to date again (the remote did not change)",
        reference=REVISOR_REFRESH,
    )
    for name, _, _ in ways:
        ctx.log(f"refresh: {name} x {plan.fetch_reps}")
    samples = measure_interleaved(
        [w[1] for w in ways],
        [plan.fetch_reps] * len(ways),
        warmup=plan.fetch_warmup,
        rounds=min(5, plan.fetch_reps),
    )
    section.timings += [Timing(n, s, note) for (n, _, note), s in zip(ways, samples, strict=True)]
    check_same_refs(remote, [src, kept], full, mirror)

    ctx.log("refresh: timing the parts of one refresh, on each Revisor mirror")
    parts = [
        refresh_parts(ctx, s, g, fetch_args, ls_args)
        for s, g in ((src, loose_git), (kept, kept_git))
    ]
    if ctx.profile or section.get(REVISOR_REFRESH).median > REFRESH_BOUND:
        ctx.log("refresh: profiling Revisor's refresh")
        ctx.profiles["store-refresh"] = profile(lambda: revisor_op(0), plan.profile_reps)
    if ctx.profile or section.get(MAINTAINED_REFRESH).median > REFRESH_BOUND:
        ctx.profiles["store-refresh-maintained"] = profile(
            lambda: maintained_op(0), plan.profile_reps
        )
    changed_s, changed = check_follows_changes(remote, [src, kept], full, mirror)
    section.notes += [
        f"Checked before and after timing: both Revisor mirrors, the full clone (remote-tracking "
        f"refs and tags) and the --mirror clone hold exactly the remote's {checked:,} branches "
        "and tags; every timed Revisor refresh reported no change.",
        f"Then {len(changed)} refs were changed upstream (one branch moved, one added, one tag "
        f"deleted): the next refresh of each Revisor mirror reported exactly those "
        f"{len(changed)} changes (it took {fmt_duration(changed_s[0])} as first left, "
        f"{fmt_duration(changed_s[1])} maintained); the git clones followed too.",
        f"Untimed set-up: Revisor's first refresh of this remote (creating the mirror, "
        f"{n_refs:,} refs) took {fmt_duration(first_s)} and left {loose[0]:,} refs loose (`git "
        f"fetch` writes one file per new ref, a clone writes them packed); `git clone --mirror` "
        f"of the same remote took {fmt_duration(mirror_s)} and `git clone` "
        f"{fmt_duration(full_s)}. `StoreSource.maintain()` (pack-refs, gc, commit-graph) took "
        f"{fmt_duration(maintenance.seconds)} on the second mirror.",
        "The parts a refresh can be made of, each timed alone (medians) — on the first mirror: "
        f"{parts[0]} On the maintained mirror: {parts[1]}",
    ]
    return section, src


def timed_once(op: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    op()
    return time.perf_counter() - t0


def created_all(result: FetchResult | None, n_refs: int) -> None:
    assert result is not None and result.fetched and len(result.changes) == n_refs


def refresh_parts(
    ctx: Context,
    src: StoreSource,
    mirror_git: anchors.Git,
    fetch_args: list[str],
    ls_args: list[str],
) -> str:
    """Time the parts a refresh can be made of on their own, to say where its time goes."""
    mirror, reps = mirror_of(src), ctx.plan.parts_reps
    repo = mirror.repo

    def lock(_: int) -> None:
        with mirror.locked():
            pass

    def state(_: int) -> None:
        mirror._write_state(mirror.read_state())  # the refresh writes it twice

    def one_pass(_: int) -> None:
        repo.refs("refs/")

    remote_git = anchors.Git(git_dir=mirror.path)
    timed = {
        "ls-remote": measure(lambda _: remote_git.run(*ls_args), reps, warmup=1),
        "git fetch": measure(lambda _: mirror_git.run(*fetch_args), reps, warmup=1),
        "one pass": measure(one_pass, reps, warmup=1),
        "state": measure(state, reps, warmup=1),
        "lock": measure(lock, reps, warmup=1),
    }
    med = {k: statistics.median(v) for k, v in timed.items()}
    return (
        f"`git ls-remote` of the remote's heads and tags {fmt_duration(med['ls-remote'])}; "
        f"the `git fetch` {fmt_duration(med['git fetch'])}; one pass over the mirror's refs "
        f"with pygit2 (`Repository.refs`) {fmt_duration(med['one pass'])}; reading and writing "
        f"the state file {fmt_duration(med['state'])}; the mirror's lock "
        f"{fmt_duration(med['lock'])}."
    )


def check_follows_changes(
    remote: Path, sources: Sequence[StoreSource], full: Path, mirror: Path
) -> tuple[list[float], list[RefChange]]:
    """Move, add and delete a ref upstream: the refresh must report exactly those changes."""
    git = anchors.Git(git_dir=remote)
    before = heads_and_tags(remote)
    moved, deleted, added = "refs/heads/feature/00000", "refs/tags/build/00000", "refs/heads/new"
    main = ObjectId(before["refs/heads/main"])
    git.run("update-ref", moved, main)
    git.run("update-ref", "-d", deleted)
    git.run("update-ref", added, main)
    want = [
        RefChange(added, None, main),
        RefChange(moved, ObjectId(before[moved]), main),
        RefChange(deleted, ObjectId(before[deleted]), None),
    ]
    seconds = []
    for src in sources:
        t0 = time.perf_counter()
        result = src.refresh()
        seconds.append(time.perf_counter() - t0)
        assert result is not None
        got = sorted(result.changes, key=lambda c: c.ref)
        assert got == sorted(want, key=lambda c: c.ref), got
    anchors.Git(cwd=full).run("fetch", "--prune", "--prune-tags", "origin")
    anchors.Git(git_dir=mirror).run("fetch", "--prune", "origin")
    check_same_refs(remote, sources, full, mirror)
    return seconds, want


def profile(op: Callable[[], object], reps: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(reps):
        op()
    prof.disable()
    buf = io.StringIO()
    buf.write(f"{reps} calls profiled\n")
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(15)
    return buf.getvalue()


# -- 2. the first clone ----------------------------------------------------------------------------
def bench_first_clone(ctx: Context) -> Section:
    plan = ctx.plan
    origin = ctx.corpus.path
    url = origin.resolve().as_uri()
    want = heads_and_tags(origin)
    reps = plan.clone_reps
    root = ctx.scratch / "clones"
    root.mkdir()
    stores = [make_store(root / f"revisor-{i}", url) for i in range(reps)]
    made: dict[str, list[Path]] = {}

    def revisor_op(i: int) -> None:
        src = stores[i].source(SOURCE)
        result = src.refresh()
        assert result is not None and result.fetched and len(result.changes) == len(want)
        made.setdefault(REVISOR_CLONE, []).append(mirror_of(src).path)

    def git_op(way: str, *flags: str) -> Op:
        def op(i: int) -> None:
            dest = root / f"{'-'.join(way.split()[:3])}-{i}"
            anchors.Git().run("clone", "-q", *flags, url, str(dest))
            made.setdefault(way, []).append(dest)

        return op

    ways = [
        (REVISOR_CLONE, revisor_op, "a bare clone beside the mirror, moved into place"),
        (MIRROR_CLONE, git_op(MIRROR_CLONE, "--mirror"), ""),
        (FULL_CLONE, git_op(FULL_CLONE), f"checks out {ctx.corpus.stats['files_at_main']:,} files"),
    ]
    for name, _, _ in ways:
        ctx.log(f"first clone: {name} x {reps}")
    samples = measure_interleaved([w[1] for w in ways], [reps] * len(ways), warmup=0, rounds=reps)
    section = Section(
        "clone",
        "First clone of the large repository",
        f"copy the corpus from a `file://` URL ({ctx.corpus.stats['pack_bytes'] / 1e6:.0f} MB "
        "pack to send) into a new repository",
        reference=REVISOR_CLONE,
    )
    section.timings += [Timing(n, s, note) for (n, _, note), s in zip(ways, samples, strict=True)]

    ctx.log("first clone: checking every copy's refs, and Revisor's objects (git fsck)")
    for path in made[REVISOR_CLONE]:
        assert heads_and_tags(path) == want
        head = (path / "HEAD").read_text().strip()
        assert head == "ref: refs/heads/main", head
    anchors.Git(git_dir=made[REVISOR_CLONE][0]).run("fsck", "--connectivity-only", "--no-progress")
    for path in made[MIRROR_CLONE]:
        assert refs_of(path) == refs_of(origin)
    for path in made[FULL_CLONE]:
        tracking = refs_of(path / ".git", "refs/remotes/origin/")
        tracking.pop("refs/remotes/origin/HEAD", None)
        heads = {
            k.replace("refs/remotes/origin/", "refs/heads/", 1): v for k, v in tracking.items()
        }
        assert heads | refs_of(path / ".git", "refs/tags/") == want
    section.notes += [
        f"{reps} clone(s) per way, in alternating rounds, each into a new directory; medians.",
        f"Checked: every copy holds the remote's {len(want)} branches and tags; Revisor's mirror "
        "has HEAD on `main` and passes `git fsck --connectivity-only`.",
        "The source has no bitmap index (as built by `corpus.py`), so git counts and compresses "
        "objects for every clone, as a server without bitmaps would; Revisor's first refresh is "
        "a `git clone --bare` into a directory beside the mirror (refs written packed, the "
        "remote's HEAD learnt from the clone), moved into place once complete.",
    ]
    return section


# -- targets and main ------------------------------------------------------------------------------
def targets(sections: dict[str, Section]) -> list[Target]:
    def median(key: str, way: str) -> float | None:
        with contextlib.suppress(KeyError):
            return sections[key].get(way).median
        return None

    def ratio(key: str, num: str, den: str) -> float | None:
        a, b = median(key, num), median(key, den)
        return None if a is None or b is None or b <= 0 else a / b

    return [
        SecondsTarget(
            "refresh, nothing changed: Revisor's time", median("refresh", REVISOR_REFRESH),
            REFRESH_BOUND, at_least=False,
        ),
        Target(
            "refresh: git fetch in a full clone / Revisor",
            ratio("refresh", FULL_FETCH, REVISOR_REFRESH), 1, at_least=True,
        ),
        SecondsTarget(
            "refresh, nothing changed, mirror maintained: Revisor's time",
            median("refresh", MAINTAINED_REFRESH), REFRESH_BOUND, at_least=False,
        ),
        Target(
            "refresh: git fetch in a full clone / Revisor, mirror maintained",
            ratio("refresh", FULL_FETCH, MAINTAINED_REFRESH), 1, at_least=True,
        ),
        Target(
            "refresh: git fetch --prune in a --mirror clone / Revisor",
            ratio("refresh", MIRROR_FETCH, REVISOR_REFRESH), None, at_least=True,
        ),
        Target(
            "first clone: git clone --mirror / Revisor",
            ratio("clone", MIRROR_CLONE, REVISOR_CLONE), None, at_least=True,
        ),
        Target(
            "first clone: git clone (full) / Revisor",
            ratio("clone", FULL_CLONE, REVISOR_CLONE), None, at_least=True,
        ),
    ]  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="scaled-down corpus and refs, few reps")
    p.add_argument("--only", nargs="+", choices=["refresh", "clone"], help="only these sections")
    p.add_argument("--output", type=Path, help="where to write the Markdown results")
    p.add_argument(
        "--scratch", type=Path, help="where the remote and the copies go (default: the temp dir)"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="profile Revisor's refresh (results/profile-store-refresh.txt; done anyway when "
        "the refresh misses its target)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Revisor's git processes inherit this environment: give them the blank configuration the
    # anchors run with (corpus.git_env), so that no setting of this machine favours either side.
    os.environ.update({"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    started = time.perf_counter()
    load_at_start = load_average()
    corpus = ensure_corpus(QUICK if args.quick else FULL)
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    sections: dict[str, Section] = {}
    conditions: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="revisor-bench-store-", dir=args.scratch) as tmp:
        scratch = Path(tmp)
        cost = file_creation_cost(scratch)
        conditions["scratch directory"] = (
            f"{scratch.parent} (creating a 4 KB file there: {fmt_duration(cost)} median)"
        )
        ctx = Context(corpus, scratch, plan, args.profile)
        ctx.corpora.append((corpus.spec.name, corpus.describe()))
        only = args.only or ["refresh", "clone"]
        if "refresh" in only:
            sections["refresh"], _ = bench_refresh(ctx)
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(exist_ok=True)
        if "clone" in only:
            sections["clone"] = bench_first_clone(ctx)
    elapsed = time.perf_counter() - started
    conditions = {**machine(load_at_start), **conditions, "run time": f"{elapsed:.0f} s"}
    goals = targets(sections)
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    render_terminal(console, list(sections.values()), goals)
    console.print(f"[dim]total {elapsed:.0f} s[/]")
    output = args.output or RESULTS_DIR / f"store{'-quick' if args.quick else ''}.md"
    command = "benchmarks/bench_store.py" + (" --quick" if args.quick else "")
    intro = [
        f"Written by `{command}`; `benchmarks/README.md` says what each figure means. Medians and "
        "90th percentiles of individually timed operations; ways of doing the same job are timed "
        "in alternating rounds. Ratios are medians divided by the section's reference way's "
        "median.",
    ]
    RESULTS_DIR.mkdir(exist_ok=True)
    output.write_text(
        render_markdown(
            "Store benchmark", intro, conditions, ctx.corpora, list(sections.values()), goals
        )
    )
    print(f"results written to {output}", file=sys.stderr)
    for key, text in ctx.profiles.items():
        path = RESULTS_DIR / f"profile-{key}{'-quick' if args.quick else ''}.txt"
        path.write_text(text)
        print(f"profile written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
