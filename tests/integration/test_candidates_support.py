"""Helpers shared by the candidate and workspace tests (``test_candidates*.py``); no tests here.

A world is one Revisor over one source (``local``: a bare repository used in place; ``git``: a
mirror of a bare remote on disk behind ``file://``), from ``test_transactions_support``. Changes
to the target branch are made in the upstream with git plumbing, as another person would push
them, and the mirror is fetched so that Revisor sees them. What the tests assert about git is read
back with the git CLI. The child-process functions live here so that a spawned child imports
neither pytest nor a test module with tests.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from revisor.bootstrap import Revisor
from revisor.config import Config
from revisor.services.candidates import Candidates
from revisor.vcs import ObjectId, Signature
from tests.integration.test_transactions_support import (
    ALICE,
    BOB,
    FAST,
    REVISOR,
    FileSpec,
    World,
    git,
    make_world,
)

__all__ = [
    "ALICE",
    "BASE_FILES",
    "BOB",
    "CAROL",
    "World",
    "candidates",
    "git",
    "lines",
    "move_target",
    "race_child",
    "scratch_clone",
    "world",
]

CAROL = Signature.now("Carol", "carol@example.com")

BASE_FILES: dict[str, FileSpec] = {
    "README.md": "hello\n",
    "a.txt": "".join(f"a line {i}\n" for i in range(20)),
    "b.txt": "".join(f"b line {i}\n" for i in range(20)),
    "c.txt": "".join(f"c line {i}\n" for i in range(20)),
    "docs/guide.md": "".join(f"guide {i}\n" for i in range(20)),
    "logo.bin": bytes(range(256)) * 4,
}


def lines(prefix: str, n: int = 20, **changed: str) -> bytes:
    """``<prefix> line <i>`` for i < n, with line ``i`` replaced where ``changed`` says
    (``l3="x"`` replaces line 3)."""
    out = []
    for i in range(n):
        out.append(changed.get(f"l{i}", f"{prefix} line {i}") + "\n")
    return "".join(out).encode()


def world(kind: str, tmp: Path, files: Mapping[str, FileSpec] | None = None) -> World:
    return make_world(kind, tmp, files if files is not None else BASE_FILES)


def candidates(w: World) -> Candidates:
    return w.source.candidates


def move_target(
    w: World, files: Mapping[str, FileSpec], message: str = "target moves",
    branch: str = "main",
) -> ObjectId:
    """Commit ``files`` on the upstream's ``branch`` (as someone else's push) and fetch it."""
    commit = w.upstream.commit(f"refs/heads/{branch}", files, message=message)
    w.source.stored.refresh()
    return commit


def scratch_clone(w: World, dest: Path) -> Path:
    """A non-bare clone of the source's repository with every ``refs/revisor/*`` ref fetched."""
    origin = w.mirror_path or w.upstream.path
    git("clone", "-q", "--no-checkout", str(origin), str(dest))
    git("-C", str(dest), "fetch", "-q", "origin", "+refs/revisor/*:refs/revisor/*")
    return dest


def race_child(
    config: dict[str, Any], candidate_id: int, user: str, path: str, etag: str, content: bytes,
    ready: Any, go: Any, out: Any,
) -> None:
    """A child process of the ETag race: open Revisor, say ready, wait for ``go``, save
    ``content`` at ``path`` with ``If-Match: etag`` and report the outcome. A checkpoint holds
    each save between reading the head and moving the ref, so both saves read the same head."""
    os.environ["REVISOR_FAULT"] = "workspace.before_ref=sleep:0.3"
    try:
        rv = Revisor(Config.model_validate(config), policy=FAST, identity=REVISOR, env={})
        rv.start(recover=False)
        ws = rv.source("proj").candidates.workspace(candidate_id, user)
        ready.put(user)
        if not go.wait(60):
            raise TimeoutError("never told to go")
        try:
            new = ws.write(path, content, if_match=etag)
            out.put((user, "ok", new))
        except Exception as exc:
            out.put((user, type(exc).__name__, getattr(exc, "current", None)))
    except BaseException as exc:
        out.put((user, "error", f"{type(exc).__name__}: {exc}"))


def publish_child(config: dict[str, Any], candidate_id: int, user: str, out: Any) -> None:
    """A child process that publishes ``user``'s workspace and is killed right after the
    candidate moved, before the workspace follows (``publish.after_candidate=kill``)."""
    os.environ["REVISOR_FAULT"] = "publish.after_candidate=kill"
    try:
        rv = Revisor(Config.model_validate(config), policy=FAST, identity=REVISOR, env={})
        rv.start(recover=False)
        rv.source("proj").candidates.workspace(candidate_id, user).publish()
        out.put("published without dying")
    except BaseException as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def remote_log(w: World, rev: str = "main") -> list[tuple[str, str, list[str]]]:
    """(id, author, message lines) of ``rev`` on the upstream, newest first, with ``git log``."""
    out = w.upstream.git("log", "--format=%H%x00%an <%ae>%x00%B%x01", rev)
    entries = []
    for record in out.split("\x01"):
        record = record.strip("\n")
        if not record:
            continue
        oid, author, body = record.split("\x00", 2)
        entries.append((oid, author, body.rstrip("\n").split("\n")))
    return entries


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, check=False)
