"""Submitting a candidate through Gerrit (the protocol-faithful fake of
``tests/support/fake_gerrit.py``): the squashed commit is uploaded to ``refs/for/main`` as one
change whose Change-Id is derived once per candidate (a second attempt is a new patch set of the
same change), submitted by Gerrit, and lands on main as exactly one commit with the co-authors'
trailers and the Change-Id footer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import revisor.providers.factory as factory
from revisor.bootstrap import Revisor
from revisor.config import Config
from revisor.db import AuditLog, Database
from revisor.db.candidates import CandidateStatus
from revisor.errors import StaleBase
from revisor.providers.base import Provider
from revisor.providers.gerrit import GerritProvider, change_id_for
from revisor.store.store import StoreSource
from revisor.vcs import Signature
from tests.integration.test_provider_gerrit import (
    FAST,
    GIT_POLICY,
    PROJECT,
    REVISOR,
    _git,
    _make_world,
)
from tests.integration.test_provider_gerrit import World as GerritWorld

ALICE = Signature.now("Alice", "alice@example.com")
BOB = Signature.now("Bob", "bob@example.com")


@pytest.fixture
def gerrit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GerritWorld]:
    migrated = tmp_path / "migrated.db"
    db = Database(f"sqlite:///{migrated}")
    db.migrate()
    db.engine.dispose()

    def make_provider(source: StoreSource, db: Database, audit: AuditLog,
                      committer: Signature) -> Provider:
        return GerritProvider(source, db, audit, committer, policy=FAST)

    monkeypatch.setattr(factory, "make_provider", make_provider)
    yield from _make_world(tmp_path, migrated)


def test_submit_through_gerrit(gerrit: GerritWorld) -> None:
    config = Config.model_validate({**gerrit.config, "data_dir": str(gerrit.tmp / "app")})
    with Revisor(config, env=gerrit.env, identity=REVISOR, policy=GIT_POLICY).start() as app:
        c = app.source("reg").candidates
        cand = c.create("registry-v2", "Registry v2", ALICE, description="New forms.")
        before = gerrit.remote("refs/heads/main")
        for user, who, path in [("alice", ALICE, "forms/a.json"), ("bob", BOB, "forms/b.json")]:
            ws = c.workspace(cand.id, user, identity=who)
            ws.sync()
            ws.write(path, f"{user}\n".encode(), if_match=None)
            assert ws.publish().published
        # the target moves between reading it and landing: no forcing, a conflict
        moved = gerrit.move_main({"other.txt": "o\n"})
        gerrit.source.refresh()
        app.source("reg").stored.refresh()
        real_resolve = StoreSource.resolve
        calls = {"n": 0}

        def stale_once(self: StoreSource, rev: str, *, fresh: bool = False) -> str:
            found = real_resolve(self, rev, fresh=fresh)
            if rev == "refs/heads/main" and fresh and calls["n"] == 0:
                calls["n"] += 1
                return before or found  # as if main were read just before it moved
            return found

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(StoreSource, "resolve", stale_once)
            with pytest.raises(StaleBase):
                c.submit(cand.id, ALICE)
        assert gerrit.remote("refs/heads/main") == moved
        (change,) = gerrit.fake.changes.values()
        assert change.status == "NEW" and len(change.patch_sets) == 1
        # submitting again: a new patch set of the same change, then it lands
        done = c.submit(cand.id, ALICE)
        assert len(gerrit.fake.changes) == 1 and len(change.patch_sets) == 2
        assert change.status == "MERGED"
        assert done.status is CandidateStatus.SUBMITTED
        assert done.change_id == change.change_id == change_id_for(
            PROJECT, f"revisor/candidate-{cand.id}")
        main = gerrit.remote("refs/heads/main")
        assert done.submitted_commit == main
        assert _git(gerrit.bare, "rev-list", "--parents", "-n1", str(main)).split()[1:] == [moved]
        message = _git(gerrit.bare, "log", "-1", "--format=%B", str(main))
        assert message.splitlines() == [
            "Registry v2", "", "New forms.", "",
            "Co-authored-by: Bob <bob@example.com>", f"Change-Id: {change.change_id}",
        ]
        assert _git(gerrit.bare, "log", "-1", "--format=%an", str(main)) == "Alice"
        assert _git(gerrit.bare, "show", f"{main}:forms/b.json") == "bob"
        assert _git(gerrit.bare, "for-each-ref", "refs/heads/revisor/") == ""  # no branch pushed
