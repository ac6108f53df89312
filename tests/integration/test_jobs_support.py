"""Helpers shared by the jobs tests (``test_jobs*.py``); no tests here.

A jobs world is the candidates' world (one Revisor over a source ``proj`` mirrored from a bare
upstream on disk behind ``file://``) plus a ``jobs:`` section in its configuration, and a few
candidates with workspaces. The child-process functions live here so that a spawned child
imports neither pytest nor a test module with tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from revisor.bootstrap import Revisor
from revisor.config import Config
from revisor.db.jobs import LeaseRow
from revisor.services.candidates import Candidates
from revisor.vcs import Signature
from tests.integration.test_candidates_support import ALICE, BASE_FILES, BOB, lines, world
from tests.integration.test_transactions_support import FAST, REVISOR, World

__all__ = [
    "ALICE",
    "BOB",
    "jobs_config",
    "jobs_world",
    "lease_rows",
    "make_candidates",
    "open_revisor",
    "sync_child",
]

NO_BACKUP = {"backup": {"enabled": False}, "cleanup": {"enabled": False}}


def jobs_config(w: World, jobs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The world's configuration as a dict, with a ``jobs:`` section."""
    return {"data_dir": str(w.data_dir), "sources": {"proj": w.source_config},
            "jobs": dict(jobs or {})}


def open_revisor(config: Mapping[str, Any]) -> Revisor:
    rv = Revisor(Config.model_validate(dict(config)), policy=FAST, identity=REVISOR, env={})
    return rv.start(recover=False)


def jobs_world(tmp: Path, jobs: Mapping[str, Any] | None = None) -> tuple[World, Revisor]:
    """A git world and a second Revisor on it whose configuration has ``jobs``."""
    w = world("git", tmp, BASE_FILES)
    rv = open_revisor(jobs_config(w, jobs))
    w.others.append(rv)
    return w, rv


def make_candidates(
    c: Candidates, n: int, users: tuple[str, ...] = ("alice", "bob"), *, edit: bool = True,
) -> list[int]:
    """``n`` candidates, each with a workspace per user; with ``edit``, the first user of each
    changes ``c.txt`` line <i> in their workspace and publishes it, so the candidate has a
    commit of its own and the other workspaces are behind."""
    ids = []
    for i in range(n):
        cand = c.create(f"cand-{i:03d}", f"Candidate {i}", ALICE)
        for user in users:
            c.workspace(cand.id, user, identity=Signature.now(user.title(),
                                                               f"{user}@example.com"))
        if edit:
            ws = c.workspace(cand.id, users[0])
            _, etag = ws.read("c.txt")
            ws.write("c.txt", lines("c", l5=f"candidate {i} was here"), if_match=etag)
            ws.publish()
        ids.append(cand.id)
    return ids


def lease_rows(rv: Revisor) -> dict[str, tuple[str, int]]:
    """key → (owner, token) of every lease row."""
    with rv.db.session(write=False) as s:
        return {r.key: (r.owner, r.token) for r in s.scalars(select(LeaseRow))}


def sync_child(config: dict[str, Any], fault: str, out: Any) -> None:
    """A child process that runs ``sync`` with ``REVISOR_FAULT=fault`` (e.g. killed after the
    first candidate's workspaces were synced, before its memo)."""
    os.environ["REVISOR_FAULT"] = fault
    try:
        from revisor.jobs.runner import run_job

        rv = open_revisor(config)
        run = run_job(rv, "sync")
        out.put(("finished", run.id))
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))
