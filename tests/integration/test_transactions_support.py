"""Helpers shared by the snapshot and transaction tests (``test_snapshot.py``,
``test_transactions*.py``); no tests of its own.

A *world* is one Revisor over one source whose upstream is a real repository: a bare repository
served over smart HTTP on loopback (``http``), the same on disk behind a ``file://`` URL (``git``),
or a bare repository used in place (``local``). Everything the tests assert is read back without
the code under test: refs with ``git for-each-ref`` / ``git ls-remote``, trees with ``git ls-tree``,
integrity with ``git fsck``, the journal and audit rows from the database, temporary directories
from the file system. Every git process has a timeout.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from revisor.bootstrap import Revisor
from revisor.config import Config
from revisor.core.changes import Write
from revisor.db.journal import JournalEntry
from revisor.db.models import TransactionRow
from revisor.errors import TransactionInProgress
from revisor.services.sources import Source
from revisor.store.transport import NetworkPolicy
from revisor.vcs import ObjectId, Signature

__all__ = [
    "ALICE",
    "BOB",
    "FAST",
    "GIT_TIMEOUT",
    "REVISOR",
    "BlobId",
    "Upstream",
    "World",
    "concurrent_changes",
    "git",
    "make_world",
    "run_in_child",
    "same_key_child",
    "served_world",
]

GIT_TIMEOUT = 60.0
#: Short limits so that no test waits long on a remote that is down.
FAST = NetworkPolicy(timeout=30, stall_seconds=5, attempts=2, backoff_base=0.05, backoff_cap=0.2)
ALICE = Signature.now("Alice Liddell", "alice@example.com")
BOB = Signature.now("Bob", "bob@example.com")
REVISOR = Signature.now("Revisor Test", "revisor@example.com")

_clock = itertools.count(1_700_000_000, 60)



class BlobId(str):
    """The id of a blob already written into the upstream (see :meth:`Upstream.write_blob`)."""


FileSpec = str | bytes | tuple[str, str | bytes] | None


def git(
    *args: str,
    input: bytes | None = None,
    check: bool = True,
    cwd: Path | None = None,
    timeout: float = GIT_TIMEOUT,
) -> str:
    """Run git (never prompting) and return its stdout; raise with its stderr when it fails."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
    proc = subprocess.run(
        ["git", *args], input=input, capture_output=True, env=env, timeout=timeout, check=False,
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
    return proc.stdout.decode("utf-8", "surrogateescape")


class Upstream:
    """A bare repository standing for the remote (or a local source), changed with plumbing."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def init(cls, path: Path, files: Mapping[str, FileSpec], *, branch: str = "main") -> Upstream:
        git("init", "-q", "--bare", "-b", branch, str(path))
        up = cls(path)
        if files:
            up.commit(f"refs/heads/{branch}", files, message="initial commit")
        return up

    def git(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        return git(f"--git-dir={self.path}", *args, input=input, check=check)

    def ref(self, name: str) -> ObjectId | None:
        out = self.git("rev-parse", "--verify", "-q", "--end-of-options", name, check=False)
        return ObjectId(out.strip()) if out.strip() else None

    def refs(self, prefix: str = "refs/") -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(objectname) %(refname)", prefix)
        return {name: oid for oid, name in (line.split(" ", 1) for line in out.splitlines())}

    def branches(self) -> dict[str, str]:
        return {k.removeprefix("refs/heads/"): v for k, v in self.refs("refs/heads/").items()}

    def revisor_branches(self) -> dict[str, str]:
        return {k: v for k, v in self.branches().items() if k.startswith("revisor/")}

    def commit(
        self,
        ref: str,
        files: Mapping[str, FileSpec],
        *,
        parent: str | None = "current",
        message: str | None = None,
    ) -> ObjectId:
        """Commit ``files`` on ``parent`` ("current": the ref's value) and point ``ref`` at it.
        ``(mode, content)`` sets the mode ("100755", "120000"); None deletes the path."""
        when = next(_clock)
        if parent == "current":
            parent = self.ref(ref)
        msg = (message or f"commit at {when}").encode()
        stream = bytearray(f"commit {ref}\nmark :1\n".encode())
        stream += f"committer Up Stream <up@example.com> {when} +0000\n".encode()
        stream += b"data %d\n%s\n" % (len(msg), msg)
        if parent is not None:
            stream += f"from {parent}\n".encode()
        for path, value in files.items():
            quoted = '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'
            if value is None:
                stream += f"D {quoted}\n".encode()
                continue
            mode, content = value if isinstance(value, tuple) else ("100644", value)
            if isinstance(content, BlobId):  # already in the repository
                stream += f"M {mode} {content} {quoted}\n".encode()
                continue
            data = content.encode() if isinstance(content, str) else content
            stream += f"M {mode} inline {quoted}\n".encode()
            stream += b"data %d\n%s\n" % (len(data), data)
        marks = self.path / "test-marks"
        self.git("fast-import", "--quiet", "--force", f"--export-marks={marks}",
                 input=bytes(stream))
        oid = marks.read_text().split()[1]
        marks.unlink()
        return ObjectId(oid)

    def write_blob(self, path: Path) -> BlobId:
        """Write the file at ``path`` as a blob (git streams it) and return its id."""
        return BlobId(self.git("hash-object", "-w", "--no-filters", "--", str(path)).strip())

    def ls_tree(self, rev: str) -> dict[str, tuple[str, str]]:
        """path → (mode, object id) of every file of ``rev``, recursively."""
        out = self.git("ls-tree", "-r", "-z", "--full-tree", "--end-of-options", rev)
        found = {}
        for item in out.split("\0"):
            if not item:
                continue
            meta, path = item.split("\t", 1)
            mode, _kind, oid = meta.split()
            found[path] = (mode, oid)
        return found

    def show(self, rev: str, path: str) -> bytes:
        proc = subprocess.run(
            ["git", f"--git-dir={self.path}", "cat-file", "blob", f"{rev}:{path}"],
            capture_output=True, timeout=GIT_TIMEOUT, check=True,
        )
        return proc.stdout

    def changed(self, a: str, b: str) -> dict[str, str]:
        """path → status letter of ``git diff --name-status a b`` (renames not detected)."""
        out = self.git("diff", "--no-renames", "--name-status", "-z", a, b)
        parts = [p for p in out.split("\0") if p]
        return dict(zip(parts[1::2], parts[0::2], strict=True))

    def parents(self, rev: str) -> list[str]:
        return self.git("rev-list", "--parents", "-n", "1", rev).split()[1:]

    def fsck(self) -> None:
        proc = subprocess.run(
            ["git", f"--git-dir={self.path}", "fsck", "--full", "--no-progress", "--no-dangling"],
            capture_output=True, timeout=GIT_TIMEOUT, check=False,
        )
        assert proc.returncode == 0, proc.stderr.decode()


@dataclass
class World:
    """One Revisor over one source ``proj`` whose upstream is ``upstream``."""

    kind: str  # "http", "git" (file://) or "local"
    tmp: Path
    upstream: Upstream
    url: str | None
    source_config: dict[str, Any]
    rv: Revisor
    others: list[Revisor] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    @property
    def config(self) -> Config:
        return Config.model_validate(
            {"data_dir": str(self.data_dir), "sources": {"proj": self.source_config}}
        )

    @property
    def source(self) -> Source:
        return self.rv.source("proj")

    def reopen(self, *, start: bool = True) -> Revisor:
        """Another Revisor on the same data directory (a restart), started unless told not to."""
        rv = Revisor(self.config, policy=FAST, identity=REVISOR, env={})
        self.others.append(rv)
        return rv.start() if start else rv

    def close(self) -> None:
        for rv in [self.rv, *self.others]:
            rv.close()

    # -- what the tests check ---------------------------------------------------------------
    @property
    def mirror_path(self) -> Path | None:
        mirror = self.source.stored.mirror
        return mirror.path if mirror is not None else None

    def mirror_refs(self, prefix: str = "refs/") -> dict[str, str]:
        path = self.mirror_path or self.upstream.path
        return Upstream(path).refs(prefix)

    def remote_refs(self) -> dict[str, str]:
        """The upstream's branches as ``git ls-remote`` lists them (over HTTP for ``http``)."""
        where = self.url if self.kind == "http" and self.url else str(self.upstream.path)
        out = git("ls-remote", "--heads", "--end-of-options", where)
        return {
            name: oid
            for oid, name in (line.split("\t", 1) for line in out.splitlines())
        }

    def journal_rows(self) -> list[JournalEntry]:
        """Every journal entry of the source, oldest first."""
        from revisor.db.journal import _entry

        with self.rv.db.session(write=False) as s:
            rows = s.execute(
                select(TransactionRow)
                .where(TransactionRow.source == "proj")
                .order_by(TransactionRow.created_at, TransactionRow.id)
            ).scalars()
            return [_entry(r) for r in rows]

    def tmp_leftovers(self) -> list[Path]:
        tmp = self.data_dir / "tmp"
        return sorted(tmp.iterdir()) if tmp.is_dir() else []

    def audit_actions(self, tx_id: str | None = None) -> list[str]:
        """Audit actions of the source, oldest first (of one transaction when ``tx_id``)."""
        entries = list(reversed(self.rv.audit.query(source="proj", limit=1000)))
        if tx_id is not None:
            entries = [e for e in entries if e.details.get("tx") == tx_id]
        return [e.action for e in entries]

    def assert_clean(self) -> None:
        """No temporary directory left, every journal entry final, repositories sound."""
        assert self.tmp_leftovers() == []
        unfinished = [(e.id, e.state) for e in self.journal_rows() if not e.finished]
        assert unfinished == []
        self.upstream.fsck()
        if self.mirror_path is not None:
            Upstream(self.mirror_path).fsck()


def make_world(
    kind: str,
    tmp: Path,
    files: Mapping[str, FileSpec] | None = None,
    *,
    url: str | None = None,
    upstream: Path | None = None,
    **source: Any,
) -> World:
    """A started Revisor over one source. ``http``: pass the served ``upstream`` (already seeded,
    e.g. by ``make_remote``) and its ``url``; ``git`` and ``local``: ``upstream`` if given, else
    a new bare repository seeded with ``files``. ``source`` adds configuration
    (``allow_direct=True``, ``refresh="0s"``, …)."""
    if upstream is not None:
        assert (url is not None) == (kind == "http")
        up = Upstream(upstream)
        url = url if kind == "http" else f"file://{up.path}" if kind == "git" else None
    else:
        assert kind != "http", "an http world needs a served upstream and its url"
        up = Upstream.init(tmp / "upstream.git", files if files is not None else {
            "README.md": "hello\n"})
        url = f"file://{up.path}" if kind == "git" else None
    if kind == "local":
        cfg: dict[str, Any] = {"type": "local", "path": str(up.path), "branch": "main"}
    else:
        cfg = {"type": "git", "url": url, "branch": "main", "refresh": "1h"}
    cfg.update(source)
    config = Config.model_validate({"data_dir": str(tmp / "data"), "sources": {"proj": cfg}})
    rv = Revisor(config, policy=FAST, identity=REVISOR, env={}).start()
    return World(kind, tmp, up, url, cfg, rv)


def served_world(
    http_git: Any, http_git_root: Path, tmp: Path, files: Mapping[str, FileSpec] | None = None,
    *, name: str = "proj.git", **source: Any,
) -> World:
    """A world whose upstream is a bare repository served by ``http_git`` (seeded with
    ``files``, modes and symlinks included)."""
    up = Upstream.init(http_git_root / name, files if files is not None else {
        "README.md": "hello\n"})
    return make_world("http", tmp, upstream=up.path, url=http_git.url_for(name), **source)


# -- child processes (here, so that a spawned child imports neither pytest nor a test module) --
def concurrent_changes(i: int) -> list[Write]:
    """Transaction ``i`` of the concurrency tests: its own file, and the shared one rewritten."""
    return [Write(f"tx/{i:02d}.txt", f"transaction {i}\n".encode()),
            Write("shared.txt", f"shared by {i}\n".encode())]


def run_in_child(config: dict[str, Any], i: int, ready: Any, go: Any, out: Any) -> None:
    """A child process of the concurrency tests: start a Revisor on ``config``, say ready, wait
    for ``go``, run transaction ``i`` and put its outcome on ``out``."""
    try:
        rv = Revisor(Config.model_validate(config), policy=FAST, identity=REVISOR, env={})
        rv.start()
        ready.put(i)
        if not go.wait(60):
            raise TimeoutError("never told to go")
        result = rv.source("proj").update(
            "main" if i % 2 == 0 else "other", f"change {i}", ALICE, changes=concurrent_changes(i))
        out.put((i, "ok", result.to_json()))
    except BaseException as exc:  # reported to the parent, which fails the test
        out.put((i, "error", f"{type(exc).__name__}: {exc}"))


def same_key_child(config: dict[str, Any], ready: Any, go: Any, out: Any) -> None:
    """A child process that runs the transaction with idempotency key ``same-key``, holding it
    for a while before its push so that another process can try the key meanwhile."""
    os.environ["REVISOR_FAULT"] = "tx.before_push=sleep:1.5"
    try:
        rv = Revisor(Config.model_validate(config), policy=FAST, identity=REVISOR, env={})
        rv.start()
        ready.put(os.getpid())
        if not go.wait(60):
            raise TimeoutError("never told to go")
        try:
            result = rv.source("proj").update("main", "once", ALICE,
                                              changes=[Write("once.txt", b"once")],
                                              idempotency_key="same-key")
            out.put(("ok", result.to_json()))
        except TransactionInProgress as exc:
            out.put(("in-progress", str(exc)))
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))
