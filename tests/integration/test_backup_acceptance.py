"""Gaps found by the acceptance review of issue #7, each shown on real repositories:

- a backup run from a lost data directory (or a database that lost its rows) before the
  restore must not replace the backup's metadata by an empty one: it is refused, and the
  restore still finds every record;
- a restore holds the source's backup lease (no backup or cleanup meanwhile) and is refused
  while someone else holds it;
- a ref deleted here by anything but cleanup stays on the backup, but without its record it does
  not come back on restore;
- cleanup narrowed to one candidate (``--candidate``), and a whole candidate's squashed form
  (``refs/revisor/proposals/<id>``) deleted with it, here and on the backup, and what sync and
  squash remembered about it (their memos) forgotten.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete

from revisor.bootstrap import Revisor
from revisor.config import Config
from revisor.db.backups import BackupRecordRow, BackupRefRow, BackupStatusRow, export_records
from revisor.db.candidates import CandidateStore
from revisor.db.jobs import JobOutcome
from revisor.db.models import CandidateRow, WorkspaceRow, utcnow
from revisor.errors import Conflict
from revisor.jobs.backup import backup_key, restore_under_lease
from revisor.jobs.leases import Leases, candidate_key
from revisor.jobs.memo import Memos
from revisor.jobs.runner import run_job
from revisor.services.backup import META_REF, backup_source
from revisor.services.retention import PROPOSALS_PREFIX
from revisor.vcs import RefUpdate
from tests.integration.test_backup_support import (
    World,
    age,
    backup_refs,
    bworld,
    init_backup,
    populate,
    records,
    revisor_refs,
    run_backup,
    run_cleanup,
)
from tests.integration.test_candidates_support import git
from tests.integration.test_transactions_support import FAST, REVISOR

pytestmark = pytest.mark.timeout(120)


def _fresh(w: World, data_dir: Path) -> Revisor:
    """A Revisor on the same configuration with an empty data directory."""
    config = Config.model_validate(
        {"data_dir": str(data_dir), "sources": {"proj": w.source_config}}
    )
    return Revisor(config, policy=FAST, identity=REVISOR, env={}).start()


def _meta_files(bare: Path) -> set[str]:
    out = git(f"--git-dir={bare}", "ls-tree", "-r", "--name-only", META_REF)
    return set(out.split())


def test_a_backup_from_a_lost_data_directory_keeps_the_records_restore_needs(
    tmp_path: Path,
) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        populate(w)
        run_backup(w)
        saved = records(w)
        before = backup_refs(bare)
    finally:
        w.close()
    assert _meta_files(bare) == set(saved)

    rv = _fresh(w, tmp_path / "lost")  # the disk was lost; the scheduler runs a backup first
    try:
        with pytest.raises(Conflict) as err:
            backup_source(rv.store.source("proj"), rv.db, rv.config, env={})
        assert "7 candidate and workspace records" in str(err.value)
        assert err.value.hint and "revisor restore" in err.value.hint
        assert backup_refs(bare) == before  # nothing on the backup moved
        run = run_job(rv, "backup")  # as a job: recorded as failed, with the reason
        assert run.outcome is JobOutcome.FAILED
        assert "lacks" in (run.results[0].error or "")
        assert backup_refs(bare) == before

        restored = restore_under_lease(rv, "proj")
        assert restored.rows_written and restored.candidates == 3 and restored.workspaces == 4
        assert export_records(rv.db, "proj") == saved
        after = backup_source(rv.store.source("proj"), rv.db, rv.config, env={})
        assert after.pushed == 0 and after.records_changed == 0
        assert backup_refs(bare) == before
    finally:
        rv.close()


def test_a_backup_after_the_database_lost_its_rows_is_refused(tmp_path: Path) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        populate(w)
        run_backup(w)
        before = backup_refs(bare)
        with w.rv.db.session() as s:  # a database reset under a store that was kept
            for table in (BackupRefRow, BackupRecordRow, BackupStatusRow, WorkspaceRow,
                          CandidateRow):
                s.execute(delete(table))
        with pytest.raises(Conflict):
            run_backup(w)
        assert backup_refs(bare) == before
        assert len(_meta_files(bare)) == 7
    finally:
        w.close()


def test_a_restore_holds_the_backup_lease_and_waits_for_no_running_backup(
    tmp_path: Path,
) -> None:
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
        leases = Leases(rv.db)
        running = leases.acquire(backup_key("proj"), "a-running-backup", 300)
        assert running is not None
        with pytest.raises(Conflict) as err:
            restore_under_lease(rv, "proj")
        assert "a-running-backup" in str(err.value)
        assert export_records(rv.db, "proj") == {}  # nothing was restored
        leases.release(running)

        token = leases.token(backup_key("proj"))
        assert restore_under_lease(rv, "proj").rows_written
        assert export_records(rv.db, "proj") == saved
        # it took the lease (a higher token) and gave it back
        assert (leases.token(backup_key("proj")) or 0) > (token or 0)
        assert leases.held(backup_key("proj")) is None
    finally:
        rv.close()


def test_a_ref_deleted_here_outside_cleanup_does_not_come_back_on_restore(
    tmp_path: Path,
) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        made = populate(w)
        run_backup(w)
        # bob's workspace goes, ref and row, by something other than cleanup
        gone = f"refs/revisor/workspaces/{made.open.id}/bob"
        repo = w.source.stored.repository
        repo.update_refs([RefUpdate(gone, None, repo.ref(gone))])
        with w.rv.db.session() as s:
            s.execute(delete(WorkspaceRow).where(WorkspaceRow.candidate_id == made.open.id,
                                                 WorkspaceRow.user_name == "bob"))
        assert run_backup(w).records_changed == 1  # the workspace record is gone there
        assert gone in backup_refs(bare)  # the backup never deletes a ref on its own
        saved, refs = records(w), revisor_refs(w)
        assert gone not in refs
    finally:
        w.close()
    rv = _fresh(w, tmp_path / "data2")
    try:
        result = restore_under_lease(rv, "proj")
        assert result.orphans == 1
        assert export_records(rv.db, "proj") == saved
        assert rv.source("proj").stored.repository.refs("refs/revisor/") == refs
    finally:
        rv.close()


def test_cleanup_of_one_candidate_leaves_the_others(tmp_path: Path) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        made = populate(w)
        age(w, made.abandoned.id, 40)
        age(w, made.submitted.id, 10)
        assert run_job(w.rv, "backup").outcome is JobOutcome.SUCCEEDED
        run = run_job(w.rv, "cleanup", source="proj", candidate=made.submitted.id)
        assert run.outcome is JobOutcome.SUCCEEDED and run.changed == 1
        assert [r.target for r in run.results] == [f"proj#{made.submitted.id}"]
        store = CandidateStore(w.rv.db)
        assert store.list_workspaces(made.submitted.id) == []
        assert len(store.list_workspaces(made.abandoned.id)) == 1  # not named: untouched
        assert made.abandoned.ref in revisor_refs(w)
        assert made.abandoned.ref in backup_refs(bare)
        memos = Memos(w.rv.db)
        key = candidate_key("proj", made.abandoned.id)
        with w.rv.db.session() as s:  # what sync remembered while it was open
            memos.put("sync", key, "a fingerprint", s)
        assert run_job(w.rv, "cleanup", source="proj").changed == 1  # now the rest
        assert made.abandoned.ref not in revisor_refs(w)
        assert memos.get("sync", key) is None  # forgotten with the candidate
    finally:
        w.close()


def test_cleanup_of_a_whole_candidate_deletes_its_squashed_form_too(tmp_path: Path) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        made = populate(w)
        repo = w.source.stored.repository
        squashed = f"{PROPOSALS_PREFIX}{made.abandoned.id}"
        head = repo.ref(made.abandoned.ref)
        assert head is not None
        repo.update_refs([RefUpdate(squashed, head, None)])
        run_backup(w)
        assert squashed in backup_refs(bare)
        result = run_cleanup(w, utcnow().replace(year=utcnow().year + 1))
        assert result.deleted == 2
        assert squashed not in revisor_refs(w)
        assert squashed not in backup_refs(bare)
        assert made.abandoned.ref not in backup_refs(bare)
        assert run_backup(w).pushed == 0
    finally:
        w.close()
