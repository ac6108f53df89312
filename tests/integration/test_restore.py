"""Restore from the backup alone into an empty data directory: every candidate and workspace
identical afterwards (rows, refs, file content read through the services); idempotent; refusing
to overwrite different records without --force; the CLI command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from revisor.bootstrap import Revisor
from revisor.config import Config
from revisor.db.backups import BackupStore, export_records
from revisor.db.candidates import CandidateStore
from revisor.errors import Conflict, NotFound
from revisor.services.restore import RestoreResult, restore_source
from tests.integration.test_backup_support import (
    ALICE,
    World,
    backup_refs,
    bworld,
    init_backup,
    populate,
    records,
    revisor_refs,
    run_backup,
)
from tests.integration.test_transactions_support import FAST, REVISOR, Upstream
from tests.support.githttp import GitHttpServer

pytestmark = pytest.mark.timeout(120)


def _fresh(w: World, data_dir: Path) -> Revisor:
    """A Revisor on the same configuration with an empty data directory."""
    config = Config.model_validate(
        {"data_dir": str(data_dir), "sources": {"proj": w.source_config}}
    )
    return Revisor(config, policy=FAST, identity=REVISOR, env={}).start()


def _restore(rv: Revisor, *, force: bool = False) -> RestoreResult:
    return restore_source(rv.config, "proj", store=rv.store, db=rv.db, env={}, force=force)


def test_restore_into_an_empty_data_directory_rebuilds_every_candidate_and_workspace(
    http_git: GitHttpServer, http_git_root: Path, tmp_path: Path,
) -> None:
    bare = init_backup(http_git_root / "backup.git")
    w = bworld(tmp_path / "w", http_git.url_for("backup.git"))
    try:
        made = populate(w)
        run_backup(w)
        before_rows = records(w)
        before_refs = revisor_refs(w)
        old = CandidateStore(w.rv.db)
        before_candidates = old.list("proj")
        before_ws = {c.id: old.list_workspaces(c.id) for c in before_candidates}
    finally:
        w.close()

    empty = tmp_path / "empty-data"
    assert not empty.exists()
    rv = _fresh(w, empty)
    try:
        progress: list[str] = []
        result = restore_source(rv.config, "proj", store=rv.store, db=rv.db, env={},
                                progress=lambda phase, d, t: progress.append(phase))
        assert result.rows_written and result.candidates == 3 and result.workspaces == 4
        assert "fetch" in progress and "records" in progress
        # rows: byte for byte the same records (ids, names, statuses, heads, bases, conflicts)
        assert export_records(rv.db, "proj") == before_rows
        new = CandidateStore(rv.db)
        assert new.list("proj") == before_candidates
        assert {c.id: new.list_workspaces(c.id) for c in before_candidates} == before_ws
        # refs: the new mirror holds every refs/revisor/* ref at the same commit
        mirror = rv.source("proj").stored.mirror
        assert mirror is not None and mirror.path.is_relative_to(empty)
        assert Upstream(mirror.path).refs("refs/revisor/") == before_refs
        assert backup_refs(bare) == before_refs
        Upstream(mirror.path).fsck()
        # content, through the services
        cands = rv.source("proj").candidates
        ws = cands.workspace(made.open.id, "bob", create=False)
        assert ws.read("b.txt")[0] == b"bob was here in open-one\n"
        assert cands.workspace(made.abandoned.id, "bob", create=False).read("README.md")[0] == (
            b"bob was here in gone-three\n")
        assert cands.get(made.open.id).head_commit == before_refs[made.open.ref]
        # and Revisor works on: a new candidate gets a new id, the restored ones stay
        fresh = cands.create("after-restore", "After", ALICE)
        assert fresh.id > max(c.id for c in before_candidates)
        # the backup holds what was restored: it is confirmed, so cleanup can proceed
        assert dict(BackupStore(rv.db).confirmed("proj").refs) == before_refs
    finally:
        rv.close()


def test_restore_is_idempotent_and_refuses_other_records_without_force(tmp_path: Path) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        populate(w)
        run_backup(w)
        saved = records(w)
    finally:
        w.close()
    rv = _fresh(w, tmp_path / "data2")
    try:
        first = _restore(rv)
        again = _restore(rv)
        assert first.rows_written is True
        assert again.rows_written is False and again.refs_changed == 0
        assert export_records(rv.db, "proj") == saved

        CandidateStore(rv.db).update("proj", 1, title="changed here")
        with pytest.raises(Conflict) as err:
            _restore(rv)
        assert err.value.hint and "--force" in err.value.hint
        assert CandidateStore(rv.db).get("proj", 1).title == "changed here"  # untouched
        forced = _restore(rv, force=True)
        assert forced.replaced is True
        assert export_records(rv.db, "proj") == saved
    finally:
        rv.close()


def test_restore_without_a_backup_says_so(tmp_path: Path) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    w.close()
    rv = _fresh(w, tmp_path / "data2")
    try:
        with pytest.raises(NotFound):
            _restore(rv)
        assert CandidateStore(rv.db).list("proj") == []
        mirror = rv.source("proj").stored.mirror
        assert mirror is not None
        left = Upstream(mirror.path).refs("refs/")
        assert not [r for r in left if r.startswith("refs/revisor")]  # no staging ref left
    finally:
        rv.close()


def test_cli_restore_from_backup(tmp_path: Path) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        populate(w)
        run_backup(w)
        saved = records(w)
    finally:
        w.close()
    config = tmp_path / "revisor.yaml"
    config.write_text(yaml.safe_dump(
        {"data_dir": str(tmp_path / "cli-data"), "sources": {"proj": w.source_config}}))
    env = {**os.environ, "REVISOR_CONFIG": str(config)}
    env.pop("REVISOR_FAULT", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "revisor", *args], env=env, text=True,
                              capture_output=True, timeout=120, check=False)

    refused = cli("restore", "proj")
    assert refused.returncode == 2 and "--from-backup" in refused.stderr
    done = cli("restore", "proj", "--from-backup", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["candidates"] == 3 and out["workspaces"] == 4 and out["rows_written"] is True
    text = cli("restore", "proj", "--from-backup")
    assert text.returncode == 0 and "already restored" in text.stdout
    rv = Revisor(Config.model_validate(
        {"data_dir": str(tmp_path / "cli-data"), "sources": {"proj": w.source_config}}),
        policy=FAST, identity=REVISOR, env={}).start()
    try:
        assert export_records(rv.db, "proj") == saved
    finally:
        rv.close()


def test_restore_a_local_source_in_place(tmp_path: Path) -> None:
    from tests.integration.test_candidates_support import BASE_FILES, git
    from tests.integration.test_transactions_support import make_world

    bare = init_backup(tmp_path / "backup.git")
    w = make_world("local", tmp_path / "w", BASE_FILES, backup={"url": f"file://{bare}"})
    try:
        populate(w)
        run_backup(w)
        saved, refs = records(w), w.upstream.refs("refs/revisor/")
    finally:
        w.close()
    for ref in refs:  # the repository lost Revisor's refs, and the database is gone too
        git(f"--git-dir={w.upstream.path}", "update-ref", "-d", ref)
    assert w.upstream.refs("refs/revisor/") == {}
    rv = _fresh(w, tmp_path / "new-data")
    try:
        result = _restore(rv)
        assert result.refs_changed == len(refs)
        assert w.upstream.refs("refs/revisor/") == refs
        assert export_records(rv.db, "proj") == saved
    finally:
        rv.close()
