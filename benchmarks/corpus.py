"""A synthetic repository of realistic size, built once and cached, for the benchmarks.

Why it exists: the figures in LESSONS.md come from repositories of a few thousand files and tens of
thousands of commits. Benchmarking ``revisor.vcs`` on a toy repository would hide exactly the costs
that matter (history walks, tree depth, pack lookups), and downloading a real one makes runs depend
on the network. So this module streams a deterministic history into ``git fast-import``:

- a directory tree of a few thousand files under ~60 top-level entries (nested directories, mostly
  small text files, a few large text files and a few binary ones);
- tens of thousands of commits with increasing dates, each touching a few files (edits, additions,
  deletions) in a few "hot" areas, while some entries are never touched after the first commit
  (so that "last commit per entry" has to walk the whole history, as on a real project);
- feature branches merged into ``main`` with ``--no-ff``-like merge commits, a few still open, and
  unmerged ``topic/*`` branches forked near the tip (about half of them conflict with ``main`` on
  ``CHANGELOG.md``), for the merge benchmark.

The result is a bare repository with one repacked pack and packed refs, and no commit-graph (measure
like a plain clone). It is cached under ``benchmarks/.cache/`` in a directory whose name carries a
hash of the parameters and of :data:`GENERATOR_VERSION`, so changing either rebuilds it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "CACHE_DIR",
    "FULL",
    "GENERATOR_VERSION",
    "QUICK",
    "SMALL",
    "Corpus",
    "CorpusSpec",
    "ensure_corpus",
    "git_env",
]

# Bump when the generator changes in a way that changes the repository it produces.
GENERATOR_VERSION = 2
CACHE_DIR = Path(__file__).resolve().parent / ".cache"

_START_TIME = 1_420_070_400  # 2015-01-01T00:00:00Z
_NULL_OID = "0" * 40


@dataclass(frozen=True)
class CorpusSpec:
    """The parameters of a corpus. Equal parameters give a byte-identical repository."""

    name: str
    files: int = 5_200  # files in the first commit (additions and deletions follow)
    top_entries: int = 60  # entries of the root directory: directories and files
    root_files: int = 12  # how many of those are files
    commits: int = 20_000  # commits on main and merged/open feature branches, merges included
    topics: int = 40  # unmerged topic branches forked near the tip of main
    big_files: int = 10  # text files of 100 KB - 1.5 MB
    binary_files: int = 6  # random-byte files of 20-200 KB, never changed
    max_open_features: int = 4
    seed: int = 20_260_101

    def key(self) -> str:
        """A short hash of every parameter and of the generator's version."""
        blob = json.dumps([GENERATOR_VERSION, dataclasses.asdict(self)], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def scaled(self, factor: float, name: str | None = None) -> CorpusSpec:
        """The same shape with ``factor`` times the files, commits and branches."""

        def s(n: int, floor: int) -> int:
            return max(floor, round(n * factor))

        files = s(self.files, 40)
        top = min(self.top_entries, max(8, files // 10))  # keep a wide root while files allow
        return dataclasses.replace(
            self,
            name=name or f"{self.name}-x{factor:g}",
            files=files,
            top_entries=top,
            root_files=min(self.root_files, max(4, top // 5)),
            commits=s(self.commits, 50),
            topics=s(self.topics, 4),
            big_files=s(self.big_files, 1),
            binary_files=s(self.binary_files, 1),
        )


FULL = CorpusSpec("full")
QUICK = FULL.scaled(0.12, name="quick")
SMALL = FULL.scaled(0.02, name="small")


@dataclass(frozen=True)
class Corpus:
    """A built corpus: where its bare repository is and what it holds."""

    spec: CorpusSpec
    path: Path  # the bare repository
    stats: dict[str, Any]

    @property
    def topics(self) -> list[str]:
        return list(self.stats["topics"])

    def describe(self) -> str:
        s = self.stats
        return (
            f"{s['files_at_main']:,} files in {s['root_entries']} root entries, "
            f"{s['commits']:,} commits ({s['merges']:,} merges), {s['branches']} branches, "
            f"pack {s['pack_bytes'] / 1e6:.0f} MB"
        )


# -- git -------------------------------------------------------------------------------------------
def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment for git: no user or system configuration, fixed identity, C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Bench Author",
            "GIT_AUTHOR_EMAIL": "author@bench.invalid",
            "GIT_COMMITTER_NAME": "Bench Committer",
            "GIT_COMMITTER_EMAIL": "committer@bench.invalid",
            "LC_ALL": "C",
            "TZ": "UTC",
        }
    )
    if extra:
        env.update(extra)
    return env


def _git(git_dir: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", *args],
        capture_output=True,
        env=git_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


# -- content ---------------------------------------------------------------------------------------
_WORD_TEXT = """
alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega node edge graph tree leaf
root branch commit merge index cache store queue worker job task event signal handler client
server request response session token user group role policy rule scope config option value
parser lexer token render view model schema record field column table query filter sort page
limit offset cursor batch stream buffer chunk block frame packet socket channel route path file
folder archive backup restore sync lock lease retry timeout deadline budget metric gauge counter
trace span log audit report export import loader writer reader codec format encode decode hash
digest sign verify key secret vault mirror remote origin upstream fetch push pull
"""
_WORDS = tuple(_WORD_TEXT.split())
_TEXT_EXT = (".py", ".py", ".py", ".md", ".txt", ".json", ".yaml", ".js", ".html", ".cfg", ".sh")
_ROOT_FILES = (
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "NOTICE",
    "AUTHORS",
    "CONTRIBUTING.md",
    "pyproject.toml",
    "setup.cfg",
    "Makefile",
    "tox.ini",
    ".gitignore",
    ".editorconfig",
    "MANIFEST.in",
    "SECURITY.md",
    "CODE_OF_CONDUCT.md",
    ".pre-commit-config.yaml",
)
_TOP_DIRS = (
    "src",
    "tests",
    "docs",
    "tools",
    "scripts",
    "examples",
    "benchmarks",
    "ci",
    "deploy",
    "config",
    "locale",
    "static",
    "templates",
    "migrations",
    "plugins",
    "vendor",
    "assets",
    "data",
    "schemas",
    "contrib",
    "packaging",
    "fixtures",
    "api",
    "cli",
    "web",
    "jobs",
    "proto",
    "i18n",
    "samples",
)


def _line(rng: random.Random) -> str:
    a, b, c = rng.choice(_WORDS), rng.choice(_WORDS), rng.choice(_WORDS)
    n = rng.randrange(10_000)
    match rng.randrange(6):
        case 0:
            return f"def {a}_{b}({c}, limit={n}):"
        case 1:
            return f"    {a} = {b}.{c}({n})"
        case 2:
            return f"    # {a} {b} {c}: see #{n}"
        case 3:
            return f"    if {a}.{b} > {n}: return {c}"
        case 4:
            return f"{a.upper()}_{b.upper()} = {n}"
        case _:
            return ""


def _text(rng: random.Random, lines: int) -> bytes:
    return ("\n".join(_line(rng) for _ in range(lines)) + "\n").encode()


def _edit(rng: random.Random, data: bytes) -> bytes:
    """Change 1-4 lines of a text file: replace, insert or delete a line."""
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(lines))
        op = rng.random()
        if op < 0.5:
            lines[i] = _line(rng).encode()
        elif op < 0.85 or len(lines) < 3:
            lines.insert(i, _line(rng).encode())
        else:
            del lines[i]
    return b"\n".join(lines)


# -- layout ----------------------------------------------------------------------------------------
@dataclass
class _Layout:
    """The first commit's files, and which parts of the tree see activity afterwards."""

    files: dict[str, bytes] = field(default_factory=dict)
    big: list[str] = field(default_factory=list)
    dirs: dict[str, list[str]] = field(default_factory=dict)  # top dir -> its directories
    weights: dict[str, float] = field(default_factory=dict)  # top dir -> activity (0: frozen)


def _unique(rng: random.Random, taken: set[str], make: Iterator[str]) -> str:
    for name in make:
        if name not in taken:
            taken.add(name)
            return name
    raise AssertionError("unreachable")


def _names(rng: random.Random, ext: str) -> Iterator[str]:
    while True:
        yield f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}{ext}"
        yield f"{rng.choice(_WORDS)}_{rng.randrange(1000)}{ext}"


def _fill(lay: _Layout, rng: random.Random, top: str, d: str, budget: int, depth: int) -> None:
    """Put ``budget`` files under directory ``d``: some here, the rest in a few subdirectories."""
    lay.dirs[top].append(d)
    here = budget if budget <= 12 or depth >= 5 else rng.randint(2, 10)
    taken: set[str] = set()
    for _ in range(here):
        name = _unique(rng, taken, _names(rng, rng.choice(_TEXT_EXT)))
        lay.files[f"{d}/{name}"] = _text(rng, rng.randint(5, 120))
    rest = budget - here
    if rest <= 0:
        return
    k = max(1, min(rest // 4, rng.randint(2, 6)))
    cuts = sorted(rng.sample(range(1, rest), k - 1)) if k > 1 else []
    for lo, hi in zip([0, *cuts], [*cuts, rest], strict=True):
        sub = _unique(rng, taken, (f"{rng.choice(_WORDS)}{'' if i == 0 else i}" for i in range(99)))
        _fill(lay, rng, top, f"{d}/{sub}", hi - lo, depth + 1)


def _layout(spec: CorpusSpec, rng: random.Random) -> _Layout:
    lay = _Layout()
    for name in _ROOT_FILES[: spec.root_files]:
        lay.files[name] = _text(rng, rng.randint(10, 200))
    n_dirs = spec.top_entries - spec.root_files
    tops = [*_TOP_DIRS[:n_dirs]]
    tops += [f"{rng.choice(_WORDS)}-{i}" for i in range(n_dirs - len(tops))]
    extra = spec.big_files + spec.binary_files
    sizes = [rng.paretovariate(1.2) for _ in tops]
    budget = spec.files - spec.root_files - extra
    shares = [max(1, int(budget * s / sum(sizes))) for s in sizes]
    shares[0] += budget - sum(shares)  # the first, "src", takes the rounding
    for rank, (top, share) in enumerate(zip(tops, shares, strict=True)):
        lay.dirs[top] = []
        _fill(lay, rng, top, top, share, 1)
        frozen = rank > 0 and rng.random() < 0.15
        lay.weights[top] = 0.0 if frozen else 1.0 / (1 + rank) ** 1.1
    for i in range(spec.big_files):
        path = f"{tops[i % len(tops)]}/generated_{i}.json"
        lay.files[path] = _text(rng, rng.randint(2_000, 30_000))
        lay.big.append(path)
    for i in range(spec.binary_files):
        path = f"{tops[(i + 1) % len(tops)]}/image_{i}.png"
        lay.files[path] = rng.randbytes(rng.randint(20_000, 200_000))
    return lay


# -- history ---------------------------------------------------------------------------------------
class _Pool:
    """A set of paths with O(1) add, remove and uniform random choice."""

    __slots__ = ("_at", "_items")

    def __init__(self) -> None:
        self._items: list[str] = []
        self._at: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: str) -> None:
        if item not in self._at:
            self._at[item] = len(self._items)
            self._items.append(item)

    def remove(self, item: str) -> None:
        i = self._at.pop(item, None)
        if i is None:
            return
        last = self._items.pop()
        if i < len(self._items):
            self._items[i] = last
            self._at[last] = i

    def choice(self, rng: random.Random) -> str:
        return self._items[rng.randrange(len(self._items))]


_Blob = tuple[int, bytes]  # (fast-import mark, content)


@dataclass
class _Branch:
    ref: str
    files: dict[str, _Blob]
    tip: int = 0  # mark of the last commit
    fork: int = 0  # mark of the commit it started from (features and topics)
    touched: set[str] = field(default_factory=set)
    length: int = 0
    target: int = 0


class _Writer:
    """Streams commands into ``git fast-import`` and numbers marks."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._buf = bytearray()
        self.mark = 0

    def _emit(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > 1 << 20:
            self.flush()

    def flush(self) -> None:
        self._out.write(self._buf)
        self._buf.clear()

    def blob(self, data: bytes) -> int:
        self.mark += 1
        self._emit(b"blob\nmark :%d\ndata %d\n%s\n" % (self.mark, len(data), data))
        return self.mark

    def commit(
        self,
        ref: str,
        who: tuple[str, int],
        message: str,
        parents: list[int],
        changes: list[tuple[str, int | None]],
    ) -> int:
        self.mark += 1
        ident, when = who
        msg = message.encode()
        head = [
            f"commit {ref}",
            f"mark :{self.mark}",
            f"author {ident} {when} +0000",
            f"committer {ident} {when} +0000",
            f"data {len(msg)}",
        ]
        out = bytearray("\n".join(head).encode() + b"\n" + msg + b"\n")
        if parents:
            out += b"from :%d\n" % parents[0]
        for p in parents[1:]:
            out += b"merge :%d\n" % p
        for path, mark in changes:
            if mark is None:
                out += f"D {path}\n".encode()
            else:
                mode = "100755" if path.endswith(".sh") else "100644"
                out += f"M {mode} :{mark} {path}\n".encode()
        self._emit(bytes(out) + b"\n")
        return self.mark

    def delete_ref(self, ref: str) -> None:
        self._emit(f"reset {ref}\nfrom {_NULL_OID}\n\n".encode())

    def done(self) -> None:
        """End the stream (``--done``: fast-import fails if the stream is cut before this)."""
        self._emit(b"done\n")
        self.flush()


class _History:
    """Generates the commits: main, feature branches merged with merge commits, topics."""

    def __init__(self, spec: CorpusSpec, rng: random.Random, writer: _Writer) -> None:
        self.spec, self.rng, self.w = spec, rng, writer
        self.lay = _layout(spec, rng)
        self.main = _Branch("refs/heads/main", {})
        self.pools: dict[str, _Pool] = {top: _Pool() for top in self.lay.dirs}
        self.tops = list(self.lay.weights)
        self.top_weights = [self.lay.weights[t] for t in self.tops]
        self.authors = [
            f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS).title()} <dev{i}@example.com>"
            for i in range(30)
        ]
        self.when = _START_TIME
        self.features: list[_Branch] = []
        self.next_id = 1
        self.count = 0
        self.merges = 0
        self.topics: list[str] = []

    # -- helpers
    def _who(self, ident: str | None = None) -> tuple[str, int]:
        self.when += self.rng.randint(120, 14_400)
        return ident or self.rng.choice(self.authors), self.when

    def _message(self) -> str:
        r = self.rng
        subject = (
            f"{r.choice(self.tops)}: {r.choice(_WORDS)} the {r.choice(_WORDS)} {r.choice(_WORDS)}"
        )
        if r.random() < 0.3:
            return subject + "\n\n" + _text(r, r.randint(1, 6)).decode()
        return subject + "\n"

    def _top_of(self, path: str) -> str:
        return path.split("/", 1)[0]

    # -- the first commit
    def initial(self) -> None:
        changes: list[tuple[str, int | None]] = []
        for path, data in self.lay.files.items():
            mark = self.w.blob(data)
            self.main.files[path] = (mark, data)
            changes.append((path, mark))
            top = self._top_of(path)
            if "/" in path and path not in self.lay.big and not path.endswith(".png"):
                self.pools[top].add(path)
        self.main.tip = self.w.commit(self.main.ref, self._who(), "Initial import\n", [], changes)
        self.count += 1

    # -- one commit's changes on a branch
    def _change_one(self, b: _Branch, top: str, out: dict[str, int | None]) -> None:
        r, pool = self.rng, self.pools[top]
        op = r.random()
        if op < 0.06 or len(pool) < 4:
            d = r.choice(self.lay.dirs[top])
            path = f"{d}/{r.choice(_WORDS)}_{self.w.mark}{r.choice(_TEXT_EXT)}"
            data = _text(r, r.randint(5, 80))
        else:
            path = pool.choice(r)
            if path not in b.files or path in out:
                return
            if op < 0.10:
                out[path] = None
                return
            data = _edit(r, b.files[path][1])
        out[path] = self.w.blob(data)
        b.files[path] = (out[path] or 0, data)

    def _apply(self, b: _Branch, changes: dict[str, int | None]) -> None:
        for path, mark in changes.items():
            b.touched.add(path)
            if mark is None:
                b.files.pop(path, None)
            if b is self.main:
                self._track(path, mark)

    def _track(self, path: str, mark: int | None) -> None:
        pool = self.pools.get(self._top_of(path))
        if pool is None or "/" not in path:  # a root file: never picked at random
            return
        if mark is None:
            pool.remove(path)
        elif path not in self.lay.big:
            pool.add(path)

    def _changes(self, b: _Branch) -> dict[str, int | None]:
        r = self.rng
        focus = r.choices(self.tops, self.top_weights)[0]
        out: dict[str, int | None] = {}
        for _ in range(r.choice((1, 1, 1, 2, 2, 3, 4, 5, 8))):
            top = focus if r.random() < 0.8 else r.choices(self.tops, self.top_weights)[0]
            self._change_one(b, top, out)
        if self.lay.big and r.random() < 0.004:
            path = r.choice(self.lay.big)
            if path in b.files:
                data = _edit(r, b.files[path][1])
                out[path] = self.w.blob(data)
                b.files[path] = (out[path] or 0, data)
        if b is self.main and r.random() < 0.08:
            self._changelog(b, out)
        if r.random() < 0.003 and "README.md" in b.files:
            data = _edit(r, b.files["README.md"][1])
            out["README.md"] = self.w.blob(data)
            b.files["README.md"] = (out["README.md"] or 0, data)
        return out

    def _changelog(self, b: _Branch, out: dict[str, int | None]) -> None:
        if "CHANGELOG.md" not in b.files:
            return
        entry = f"- {self.rng.choice(_WORDS)}: {self.rng.choice(_WORDS)} (#{self.w.mark})\n"
        data = entry.encode() + b.files["CHANGELOG.md"][1]
        out["CHANGELOG.md"] = self.w.blob(data)
        b.files["CHANGELOG.md"] = (out["CHANGELOG.md"] or 0, data)

    def commit_on(self, b: _Branch) -> bool:
        changes = self._changes(b)
        if not changes:
            return False
        parents = [b.fork] if b.length == 0 and b is not self.main else []
        b.tip = self.w.commit(b.ref, self._who(), self._message(), parents, list(changes.items()))
        self._apply(b, changes)
        b.length += 1
        self.count += 1
        return True

    # -- branches
    def open_feature(self) -> None:
        ref = f"refs/heads/feature/{self.next_id}"
        self.next_id += 1
        fork = self.main.tip
        target = self.rng.randint(1, 12)
        self.features.append(_Branch(ref, dict(self.main.files), fork=fork, target=target))

    def merge_feature(self, f: _Branch) -> None:
        """A --no-ff merge of ``f`` into main; where both changed a file, the feature wins."""
        changes: dict[str, int | None] = {}
        for path in sorted(f.touched):
            theirs = f.files.get(path)
            ours = self.main.files.get(path)
            if theirs is None and ours is not None:
                changes[path] = None
                del self.main.files[path]
            elif theirs is not None and (ours is None or theirs[0] != ours[0]):
                changes[path] = theirs[0]
                self.main.files[path] = theirs
        name = f.ref.removeprefix("refs/heads/")
        self.main.tip = self.w.commit(
            self.main.ref,
            self._who(),
            f"Merge branch '{name}'\n",
            [self.main.tip, f.tip],
            list(changes.items()),
        )
        for path, mark in changes.items():
            self._track(path, mark)
        self.w.delete_ref(f.ref)
        self.features.remove(f)
        self.count += 1
        self.merges += 1

    def topic(self, n: int) -> None:
        """An unmerged branch from the current tip of main; every other one edits CHANGELOG.md."""
        t = _Branch(f"refs/heads/topic/{n:03d}", dict(self.main.files), fork=self.main.tip)
        target = self.rng.randint(1, 4)
        while t.length < target:
            if self.commit_on(t):
                self.count -= 1  # topics come on top of the requested number of commits
        if n % 2 == 0:
            out: dict[str, int | None] = {}
            self._changelog(t, out)
            parents = [t.fork] if t.length == 0 else []
            t.tip = self.w.commit(
                t.ref, self._who(), "Update the changelog\n", parents, list(out.items())
            )
            t.length += 1
        self.topics.append(t.ref.removeprefix("refs/heads/"))

    def run(self) -> None:
        spec, r = self.spec, self.rng
        self.initial()
        topic_window = max(spec.topics * 3, min(600, spec.commits // 4))
        topic_at = sorted(r.sample(range(spec.commits - topic_window, spec.commits), spec.topics))
        while self.count < spec.commits:
            while topic_at and self.count >= topic_at[0]:
                topic_at.pop(0)
                self.topic(len(self.topics))
            if len(self.features) < spec.max_open_features and r.random() < 0.08:
                self.open_feature()
            if self.features and r.random() < 0.45:
                f = r.choice(self.features)
                self.commit_on(f)
                if f.length >= f.target and self.count < spec.commits:
                    self.merge_feature(f)
            else:
                self.commit_on(self.main)
        while topic_at:
            topic_at.pop(0)
            self.topic(len(self.topics))


# -- building and caching --------------------------------------------------------------------------
def _build(spec: CorpusSpec, dest: Path) -> dict[str, Any]:
    started = time.perf_counter()
    subprocess.run(
        ["git", "init", "-q", "--bare", "-b", "main", str(dest)], check=True, env=git_env()
    )
    proc = subprocess.Popen(
        ["git", f"--git-dir={dest}", "fast-import", "--quiet", "--done", "--active-branches=64"],
        stdin=subprocess.PIPE,
        env=git_env(),
    )
    assert proc.stdin is not None
    writer = _Writer(proc.stdin)
    history = _History(spec, random.Random(spec.seed), writer)
    history.run()
    writer.done()
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("git fast-import failed")
    imported = time.perf_counter()
    # -f recomputes deltas, as the pack a server sends would have them; no bitmap, as in a clone.
    _git(dest, "-c", "repack.writeBitmaps=false", "repack", "-adfq")
    _git(dest, "pack-refs", "--all")
    _git(dest, "config", "gc.auto", "0")
    return _stats(spec, dest, history, imported - started, time.perf_counter() - imported)


def _stats(
    spec: CorpusSpec, repo: Path, history: _History, import_s: float, repack_s: float
) -> dict[str, Any]:
    pack_bytes = sum(p.stat().st_size for p in (repo / "objects" / "pack").glob("*.pack"))
    root = _git(repo, "ls-tree", "main").splitlines()
    return {
        "name": spec.name,
        "key": spec.key(),
        "spec": dataclasses.asdict(spec),
        "files_at_main": int(_git(repo, "ls-tree", "-r", "--name-only", "main").count("\n")),
        "root_entries": len(root),
        "commits": int(_git(repo, "rev-list", "--count", "--all")),
        "commits_on_main": int(_git(repo, "rev-list", "--count", "main")),
        "merges": int(_git(repo, "rev-list", "--count", "--merges", "--all")),
        "branches": len(_git(repo, "for-each-ref", "refs/heads/").splitlines()),
        "topics": history.topics,
        "pack_bytes": pack_bytes,
        "import_seconds": round(import_s, 1),
        "repack_seconds": round(repack_s, 1),
    }


def ensure_corpus(spec: CorpusSpec, cache_dir: Path = CACHE_DIR, *, quiet: bool = False) -> Corpus:
    """The corpus for ``spec``, built now if the cache does not hold it yet."""
    final = cache_dir / f"corpus-{spec.name}-{spec.key()}"
    meta = final / "corpus.json"
    if not meta.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        for stale in cache_dir.glob(f"corpus-{spec.name}-*"):
            if stale != final:
                shutil.rmtree(stale, ignore_errors=True)
        if not quiet:
            print(
                f"building corpus {spec.name!r} ({spec.files:,} files, {spec.commits:,} "
                f"commits) under {final} ...",
                file=sys.stderr,
                flush=True,
            )
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{spec.name}-", dir=cache_dir))
        try:
            stats = _build(spec, tmp / "repo.git")
            (tmp / "corpus.json").write_text(json.dumps(stats, indent=2) + "\n")
            with contextlib.suppress(OSError):  # built concurrently by another run: keep theirs
                tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not quiet:
            print(
                f"  built in {stats['import_seconds'] + stats['repack_seconds']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    stats = json.loads(meta.read_text())
    return Corpus(spec, final / "repo.git", stats)


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/corpus.py [full|quick|small ...]``: build (or find) corpora."""
    specs = {s.name: s for s in (FULL, QUICK, SMALL)}
    for name in argv or sys.argv[1:] or ["full"]:
        corpus = ensure_corpus(specs[name])
        print(f"{name}: {corpus.path}\n  {corpus.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
