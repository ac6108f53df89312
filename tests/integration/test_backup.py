"""Backups: refs/revisor/* and the metadata commit pushed to a real backup remote (smart HTTP on
loopback, or a bare repository on disk), verified, confirmed, incremental; a remote that is
down; a backup killed half-way and run again."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from revisor.errors import RemoteUnavailable
from revisor.services.backup import META_REF
from revisor.vcs import ObjectId
from tests.integration.test_backup_support import (
    ALICE,
    World,
    backup_refs,
    bworld,
    confirmed,
    init_backup,
    populate,
    records,
    revisor_refs,
    run_backup,
    run_child_backup,
)
from tests.integration.test_candidates_support import git
from tests.support.githttp import GitHttpServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def served(http_git: GitHttpServer, http_git_root: Path, tmp_path: Path) -> Iterator[
    tuple[World, Path, GitHttpServer]
]:
    bare = init_backup(http_git_root / "backup.git")
    w = bworld(tmp_path, http_git.url_for("backup.git"))
    try:
        yield w, bare, http_git
    finally:
        w.close()


def test_backup_pushes_every_revisor_ref_and_the_records_then_confirms(
    served: tuple[World, Path, GitHttpServer],
) -> None:
    w, bare, http = served
    populate(w)
    progress: list[tuple[str, int, int]] = []
    result = run_backup(w, progress=lambda *p: progress.append(p))

    held = backup_refs(bare)
    local = revisor_refs(w)
    assert held == local  # every refs/revisor/* ref, the metadata ref included, nothing else
    assert held[META_REF] == result.meta_commit
    listed = git("ls-remote", http.url_for("backup.git"))  # over HTTP, as git sees it
    assert {line.split("\t")[1] for line in listed.splitlines()} == set(local)
    # the metadata commit holds exactly the rows, one JSON file per record
    rows = records(w)
    files = git(f"--git-dir={bare}", "ls-tree", "-r", "--name-only", result.meta_commit).split()
    assert sorted(files) == sorted(rows)
    for path, data in rows.items():
        shown = git(f"--git-dir={bare}", "cat-file", "blob", f"{result.meta_commit}:{path}")
        assert shown.encode() == data
        assert json.loads(data)["id"] > 0
    # what was confirmed is what the remote holds
    conf = confirmed(w)
    assert dict(conf.refs) == held
    assert set(conf.records) == set(rows)
    assert conf.status is not None and conf.status.last_error is None
    assert result.pushed == len(held) and result.records == len(rows) == 7
    assert ("push", len(held), len(held)) in progress and progress[-1][0] == "verify"


def test_incremental_backup_pushes_only_what_changed(
    served: tuple[World, Path, GitHttpServer],
) -> None:
    w, bare, http = served
    made = populate(w)
    run_backup(w)
    http.clear_requests()
    again = run_backup(w)
    assert again.pushed == 0 and again.records_changed == 0
    assert not any(r.service == "git-receive-pack" for r in http.requests)  # no push at all

    ws = w.source.candidates.workspace(made.open.id, "bob")
    _, etag = ws.read("b.txt")
    ws.write("b.txt", b"bob again\n", if_match=etag)
    http.clear_requests()
    third = run_backup(w)
    # the moved workspace ref and the metadata (its row changed with it); nothing else
    assert third.pushed == 2 and third.records_changed == 1
    assert backup_refs(bare) == revisor_refs(w)
    assert confirmed(w).refs[ws.ref] == revisor_refs(w)[ws.ref]
    pushes = [r for r in http.requests
              if r.service == "git-receive-pack" and r.method == "POST"]
    assert len(pushes) == 1  # one push process

    w.source.candidates.workspace(made.open.id, "carol")  # a new workspace: a ref and a row
    fourth = run_backup(w)
    assert fourth.pushed == 2 and fourth.records_changed == 1
    assert backup_refs(bare) == revisor_refs(w)


def test_a_push_failing_once_is_retried(served: tuple[World, Path, GitHttpServer]) -> None:
    w, bare, http = served
    populate(w)
    http.fail_next(1, status=503, service="git-receive-pack")
    result = run_backup(w)
    assert backup_refs(bare) == revisor_refs(w)
    assert result.pushed == len(backup_refs(bare))
    assert http.pending_faults() == 0


def test_a_down_backup_remote_is_retried_reported_and_nothing_is_confirmed(
    served: tuple[World, Path, GitHttpServer],
) -> None:
    w, bare, http = served
    made = populate(w)
    run_backup(w)
    before = confirmed(w)
    ws = w.source.candidates.workspace(made.open.id, "bob")
    _, etag = ws.read("b.txt")
    ws.write("b.txt", b"after the backup went down\n", if_match=etag)
    http.stop()
    try:
        with pytest.raises(RemoteUnavailable) as err:
            run_backup(w)
    finally:
        http.start()
    assert "backup.git" in str(err.value)
    after = confirmed(w)
    assert dict(after.refs) == dict(before.refs) and dict(after.records) == dict(before.records)
    assert after.status is not None and after.status.last_error
    assert backup_refs(bare)[ws.ref] != revisor_refs(w)[ws.ref]
    # once it is back, the next run saves the change and clears the error
    run_backup(w)
    assert backup_refs(bare) == revisor_refs(w)
    status = confirmed(w).status
    assert status is not None and status.last_error is None


def test_a_backup_killed_after_its_push_is_completed_by_the_next_run(
    tmp_path: Path,
) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        populate(w)
        child = run_child_backup(w, "backup.after_push")
        assert child.returncode == -signal.SIGKILL, child.stderr
        # pushed, not confirmed: the remote holds everything, the database nothing
        assert backup_refs(bare) == revisor_refs(w)
        assert dict(confirmed(w).refs) == {}
        result = run_backup(w)
        assert result.pushed == 0  # the remote already holds it all: no duplicate, nothing lost
        assert backup_refs(bare) == revisor_refs(w)
        assert dict(confirmed(w).refs) == backup_refs(bare)
        assert set(confirmed(w).records) == set(records(w))
    finally:
        w.close()


def test_a_killed_backup_then_a_change_loses_the_lease_and_plans_again(tmp_path: Path) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        made = populate(w)
        assert run_child_backup(w, "backup.after_push").returncode == -signal.SIGKILL
        ws = w.source.candidates.workspace(made.open.id, "bob")
        _, etag = ws.read("b.txt")
        ws.write("b.txt", b"changed after the crash\n", if_match=etag)
        # the backup holds the old value, the database confirms nothing: the lease ("absent")
        # is lost, the remote is listed, and only the difference is pushed
        result = run_backup(w)
        assert result.replanned and result.pushed == 2  # the workspace and the metadata
        assert backup_refs(bare) == revisor_refs(w)
        assert dict(confirmed(w).refs) == backup_refs(bare)
    finally:
        w.close()


def test_a_backup_killed_before_its_push_leaves_the_remote_untouched(tmp_path: Path) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        populate(w)
        child = run_child_backup(w, "backup.before_push")
        assert child.returncode == -signal.SIGKILL, child.stderr
        assert backup_refs(bare) == {}
        # the metadata ref was made locally by the killed run; the next run reuses it
        meta = revisor_refs(w)[META_REF]
        result = run_backup(w)
        assert result.meta_commit == meta and not result.replanned
        assert backup_refs(bare) == revisor_refs(w)
    finally:
        w.close()


def test_backup_with_credentials_keeps_the_secret_out_of_errors(
    http_git: GitHttpServer, http_git_root: Path, tmp_path: Path,
) -> None:
    bare = init_backup(http_git_root / "secret.git")
    http_git.set_auth(("backup-bot", "s3cr3t-pw"))
    url = http_git.url_for("secret.git")
    w = bworld(tmp_path, url)
    try:
        populate(w)
        with pytest.raises(RemoteUnavailable) as err:  # no credentials configured: refused
            run_backup(w)
        w.close()
        cfg = {"type": "git", "url": w.url, "branch": "main", "refresh": "1h",
               "backup": {"url": url, "credentials": {"username": "backup-bot",
                                                      "password_env": "BACKUP_PW"}}}
        from revisor.bootstrap import Revisor
        from revisor.config import Config
        from revisor.services.backup import backup_source
        from tests.integration.test_transactions_support import FAST, REVISOR

        config = Config.model_validate({"data_dir": str(w.data_dir), "sources": {"proj": cfg}})
        rv = Revisor(config, policy=FAST, identity=REVISOR, env={}).start()
        try:
            wrong = {"BACKUP_PW": "not-the-password"}
            with pytest.raises(RemoteUnavailable) as err2:
                backup_source(rv.store.source("proj"), rv.db, config, env=wrong)
            assert "not-the-password" not in str(err2.value) + err2.value.stderr
            result = backup_source(rv.store.source("proj"), rv.db, config,
                                   env={"BACKUP_PW": "s3cr3t-pw"})
            assert "s3cr3t-pw" not in result.url
            assert backup_refs(bare) == revisor_refs(w)
        finally:
            rv.close()
        assert "s3cr3t" not in str(err.value)
    finally:
        w.close()


def test_leases_too_many_for_one_command_line_are_split_with_the_metadata_last(
    served: tuple[World, Path, GitHttpServer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import revisor.services.backup as backup

    w, bare, http = served
    populate(w)
    run_backup(w)
    repo = w.source.stored.repository
    moved = sorted(r for r in revisor_refs(w) if r.startswith("refs/revisor/workspaces/"))
    for ref in moved:  # every workspace moves: each needs a lease on its confirmed value
        old = revisor_refs(w)[ref]
        builder = repo.builder(old)
        builder.write("moved.txt", ref.encode())
        new = builder.commit("moved", ALICE)
        assert new is not None
        repo.set_ref(ref, new, expected=old)
    monkeypatch.setattr(backup, "ARGV_BUDGET", 150)  # one lease per push
    http.clear_requests()
    result = run_backup(w)
    pushes = [r for r in http.requests if r.service == "git-receive-pack" and r.method == "POST"]
    assert len(pushes) == len(moved) == result.pushed == 4
    assert backup_refs(bare) == revisor_refs(w)
    assert dict(confirmed(w).refs) == backup_refs(bare)
    batches = backup._batches(
        [backup.BackupUpdate(r, None, None if r.startswith("refs/revisor/c") else
                             ObjectId("a" * 40)) for r in sorted(revisor_refs(w), reverse=True)]
    )
    assert batches[-1][-1].ref == META_REF  # the metadata goes last, with every new ref
    assert all(META_REF not in {u.ref for u in b} for b in batches[:-1])
    assert all(u.expected is not None for b in batches[:-1] for u in b)


def test_no_staging_ref_is_left_in_the_mirror(tmp_path: Path) -> None:
    bare = init_backup(tmp_path / "backup.git")
    w = bworld(tmp_path / "w", f"file://{bare}")
    try:
        populate(w)
        run_backup(w)
        assert not [r for r in w.mirror_refs("refs/") if r.startswith("refs/revisor-backup/")]
        assert not [r for r in backup_refs(bare) if not r.startswith("refs/revisor/")]
    finally:
        w.close()
