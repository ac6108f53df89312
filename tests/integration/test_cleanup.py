"""Cleanup: the retention policy over real candidates (ages through an injected clock), what it
deletes (refs, rows, backup-remote refs and records, lock files), and what it never deletes:
open candidates, target branches, and anything whose latest state the backup has not confirmed
(a change after the last backup, a backup that is down)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from revisor.config import RetentionConfig
from revisor.db.candidates import CandidateStatus, CandidateStore
from revisor.db.models import utcnow
from revisor.errors import CandidateNotFound
from revisor.services.backup import META_REF
from revisor.services.retention import ItemKind, Verdict, due_items
from tests.integration.test_backup_support import (
    ALICE,
    World,
    age,
    backup_refs,
    bworld,
    confirmed,
    init_backup,
    populate,
    records,
    revisor_refs,
    run_backup,
    run_cleanup,
)
from tests.integration.test_candidates_support import git, world
from tests.support.githttp import GitHttpServer

pytestmark = pytest.mark.timeout(120)

DAY = timedelta(days=1)


def _items(w: World, now_offset: timedelta, policy: RetentionConfig | None = None) -> dict[
    int, ItemKind
]:
    store = CandidateStore(w.rv.db)
    cands = store.list("proj")
    ws = {c.id: store.list_workspaces(c.id) for c in cands}
    found = due_items(cands, ws, w.source.stored.repository.refs("refs/revisor/"),
                      policy or w.rv.config.retention, utcnow() + now_offset)
    return {i.candidate_id: i.kind for i in found}


def test_the_policy_by_age_never_an_open_candidate(tmp_path: Path) -> None:
    w = world("git", tmp_path)
    try:
        made = populate(w)
        for cand in (made.open, made.submitted, made.abandoned):
            age(w, cand.id, 0)
        assert _items(w, 6 * DAY) == {}
        assert _items(w, 7 * DAY + timedelta(minutes=1)) == {
            made.submitted.id: ItemKind.WORKSPACES}
        assert _items(w, 31 * DAY) == {made.submitted.id: ItemKind.WORKSPACES,
                                       made.abandoned.id: ItemKind.CANDIDATE}
        # an open candidate, however old and whatever the policy, is never due
        age(w, made.open.id, 10_000)
        zero = RetentionConfig(submitted_workspaces=timedelta(0),
                               submitted_candidates=timedelta(0),
                               abandoned_candidates=timedelta(0))
        assert made.open.id not in _items(w, 0 * DAY, zero)
        assert _items(w, 0 * DAY, zero)[made.submitted.id] is ItemKind.CANDIDATE
        # a configured null keeps forever
        keep = RetentionConfig(submitted_workspaces=None, abandoned_candidates=None)
        assert _items(w, 10_000 * DAY, keep) == {}
    finally:
        w.close()


def test_cleanup_without_a_backup_deletes_refs_rows_and_lock_files(tmp_path: Path) -> None:
    w = world("git", tmp_path)
    try:
        made = populate(w)
        target = w.mirror_refs("refs/heads/")
        locks = w.data_dir / "locks" / "workspaces" / str(made.abandoned.id)
        assert list(locks.glob("*.lock"))
        result = run_cleanup(w, utcnow() + 31 * DAY)
        assert result.deleted == 2 and result.held_back == 0
        refs = revisor_refs(w)
        # the abandoned candidate is gone entirely; the submitted one lost its workspaces only
        assert made.abandoned.ref not in refs
        assert not [r for r in refs
                    if r.startswith(f"refs/revisor/workspaces/{made.abandoned.id}/")]
        assert made.submitted.ref in refs
        assert not [r for r in refs
                    if r.startswith(f"refs/revisor/workspaces/{made.submitted.id}/")]
        assert len([r for r in refs
                    if r.startswith(f"refs/revisor/workspaces/{made.open.id}/")]) == 2
        store = CandidateStore(w.rv.db)
        with pytest.raises(CandidateNotFound):
            store.get("proj", made.abandoned.id)
        assert store.list_workspaces(made.submitted.id) == []
        assert store.get("proj", made.submitted.id).status is CandidateStatus.SUBMITTED
        assert len(store.list_workspaces(made.open.id)) == 2
        assert not locks.exists()
        assert w.mirror_refs("refs/heads/") == target  # the target branch never moves
        actions = w.audit_actions()
        assert "cleanup.candidate" in actions and "cleanup.workspaces" in actions
        # run again: nothing more is due, nothing breaks
        assert run_cleanup(w, utcnow() + 31 * DAY).deleted == 0
    finally:
        w.close()


def test_cleanup_holds_back_what_the_backup_has_not_confirmed_then_deletes_it_there_too(
    http_git: GitHttpServer, http_git_root: Path, tmp_path: Path,
) -> None:
    bare = init_backup(http_git_root / "backup.git")
    w = bworld(tmp_path, http_git.url_for("backup.git"))
    try:
        made = populate(w)
        later = utcnow() + 31 * DAY
        never = run_cleanup(w, later)  # never backed up: everything held back
        assert never.deleted == 0 and never.held_back == 2
        assert {i.verdict for i in never.items} == {Verdict.NOT_BACKED_UP}
        assert len(revisor_refs(w)) == 7 and len(records(w)) == 7

        run_backup(w)
        result = run_cleanup(w, later)
        assert result.deleted == 2
        held = backup_refs(bare)
        assert held == revisor_refs(w)  # deleted on the backup exactly as here
        assert made.abandoned.ref not in held
        # the backup's metadata no longer holds the deleted records, and says so confirmed
        meta = held[META_REF]
        files = set(git(f"--git-dir={bare}", "ls-tree", "-r", "--name-only", meta).split())
        assert files == set(records(w))
        conf = confirmed(w)
        assert dict(conf.refs) == held and set(conf.records) == files
        assert conf.status is not None and conf.status.meta_commit == meta
        # and the next backup agrees with it: nothing to push
        assert run_backup(w).pushed == 0
    finally:
        w.close()


def test_cleanup_racing_a_change_after_the_backup_holds_it_back_until_the_next_backup(
    tmp_path: Path,
) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        made = populate(w)
        run_backup(w)
        # the abandoned candidate's workspace moves after the backup (a late save)
        ref = f"refs/revisor/workspaces/{made.abandoned.id}/bob"
        repo = w.source.stored.repository
        builder = repo.builder(revisor_refs(w)[ref])
        builder.write("late.txt", b"saved after the backup\n")
        new = builder.commit("late save", ALICE)
        assert new is not None
        repo.set_ref(ref, new, expected=revisor_refs(w)[ref])

        result = run_cleanup(w, utcnow() + 31 * DAY)
        verdicts = {i.candidate_id: i.verdict for i in result.items}
        assert verdicts[made.abandoned.id] is Verdict.NOT_BACKED_UP
        assert "not confirmed" in next(i.detail for i in result.items
                                       if i.candidate_id == made.abandoned.id)
        assert revisor_refs(w)[ref] == new  # nothing unbacked deleted, here or there
        assert backup_refs(bare)[ref] != new
        assert CandidateStore(w.rv.db).get("proj", made.abandoned.id).status is (
            CandidateStatus.ABANDONED)

        run_backup(w)  # the backup confirms the late save
        assert backup_refs(bare)[ref] == new
        again = run_cleanup(w, utcnow() + 31 * DAY)
        assert {i.candidate_id: i.verdict for i in again.items}[made.abandoned.id] is (
            Verdict.DELETED)
        assert ref not in revisor_refs(w) and ref not in backup_refs(bare)
    finally:
        w.close()


def test_a_down_backup_makes_cleanup_hold_back(
    http_git: GitHttpServer, http_git_root: Path, tmp_path: Path,
) -> None:
    bare = init_backup(http_git_root / "backup.git")
    w = bworld(tmp_path, http_git.url_for("backup.git"))
    try:
        made = populate(w)
        run_backup(w)
        before = revisor_refs(w)
        http_git.stop()
        try:
            result = run_cleanup(w, utcnow() + 31 * DAY)
        finally:
            http_git.start()
        assert result.deleted == 0
        assert {i.verdict for i in result.items} == {Verdict.BACKUP_DOWN}
        assert revisor_refs(w) == before and backup_refs(bare) == before
        assert CandidateStore(w.rv.db).get("proj", made.abandoned.id).id == made.abandoned.id
        # back up again: the next cleanup proceeds
        assert run_cleanup(w, utcnow() + 31 * DAY).deleted == 2
        assert backup_refs(bare) == revisor_refs(w)
    finally:
        w.close()


def test_the_retention_configuration() -> None:
    from pydantic import ValidationError

    from revisor.config import Config

    default = Config.model_validate({}).retention
    assert default.submitted_workspaces == 7 * DAY and default.abandoned_candidates == 30 * DAY
    assert default.submitted_candidates is None
    cfg = Config.model_validate({"retention": {"submitted_workspaces": "36h",
                                               "abandoned_candidates": None}}).retention
    assert cfg.submitted_workspaces == timedelta(hours=36) and cfg.abandoned_candidates is None
    for wrong in ({"abandoned_candidates": "-1d"}, {"open_candidates": "1d"},
                  {"submitted_workspaces": "soon"}):
        with pytest.raises(ValidationError):
            Config.model_validate({"retention": wrong})
