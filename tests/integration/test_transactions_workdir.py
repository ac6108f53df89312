"""``tx.workdir()``: a private directory holding the base tree that a tool edits freely; what it
changed is read back into one commit. Every kind of change a tool can make is checked against
``git ls-tree`` of the commit that lands on the remote, and the directory must be gone afterwards,
whether the transaction succeeded or failed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from revisor.core.transaction import Transaction
from revisor.db.models import TxState
from revisor.errors import InvalidPath
from revisor.vcs import Repository
from tests.integration.test_transactions_support import (
    ALICE,
    World,
    make_world,
    served_world,
)

pytestmark = pytest.mark.timeout(120)

BIG = bytes(range(256)) * 8192 * 2  # 4 MiB of binary
SEED = {
    "README.md": "hello\n",
    "keep.txt": "unchanged\n",
    "modify.txt": "before\n",
    "delete.txt": "to delete\n",
    "rename-me.txt": "renamed content\n",
    "make-exec.sh": "#!/bin/sh\n",
    "drop-exec.sh": ("100755", "#!/bin/sh\nexit 0\n"),
    "link": ("120000", "keep.txt"),
    "retarget": ("120000", "keep.txt"),
    "file-becomes-dir": "I am a file\n",
    "dir-becomes-file/inner.txt": "inner\n",
    "dir-becomes-file/deeper/x.txt": "x\n",
    "link-becomes-file": ("120000", "keep.txt"),
    "file-becomes-link": "keep.txt",
    "big-unchanged.bin": BIG,
    "big-changed.bin": BIG,
    "sub/dir/deep.txt": "deep\n",
}


@pytest.fixture(params=["http", "local"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "http":
        w = served_world(request.getfixturevalue("http_git"),
                         request.getfixturevalue("http_git_root"), tmp_path, SEED)
    else:
        w = make_world("local", tmp_path, SEED)
    try:
        yield w
    finally:
        w.close()


def _blob(data: bytes) -> str:
    return Repository.hash_bytes(data)


def test_every_kind_of_change_made_in_the_workdir_is_committed(world: World) -> None:
    seen: dict[str, Path] = {}
    new_big = os.urandom(3 << 20)

    def tool(tx: Transaction) -> None:
        wd = tx.workdir()
        seen["wd"] = wd
        assert wd.parent == world.data_dir / "tmp"
        assert (wd / "keep.txt").read_text() == "unchanged\n"
        assert os.readlink(wd / "link") == "keep.txt"
        assert os.access(wd / "drop-exec.sh", os.X_OK)
        (wd / "added.txt").write_text("added\n")
        (wd / "new" / "nested").mkdir(parents=True)
        (wd / "new" / "nested" / "file.txt").write_text("nested\n")
        (wd / "modify.txt").write_text("after\n")
        (wd / "delete.txt").unlink()
        (wd / "rename-me.txt").rename(wd / "renamed.txt")
        (wd / "make-exec.sh").chmod(0o755)
        (wd / "drop-exec.sh").chmod(0o644)
        os.symlink("modify.txt", wd / "new-link")
        (wd / "retarget").unlink()
        os.symlink("README.md", wd / "retarget")
        (wd / "file-becomes-dir").unlink()
        (wd / "file-becomes-dir").mkdir()
        (wd / "file-becomes-dir" / "now.txt").write_text("now a dir\n")
        shutil.rmtree(wd / "dir-becomes-file")
        (wd / "dir-becomes-file").write_text("now a file\n")
        (wd / "link-becomes-file").unlink()
        (wd / "link-becomes-file").write_text("keep.txt")  # same bytes as the link's target
        (wd / "file-becomes-link").unlink()
        os.symlink("keep.txt", wd / "file-becomes-link")
        (wd / "big-changed.bin").write_bytes(new_big)
        (wd / "big-added.bin").write_bytes(new_big[::-1])
        (wd / "empty-dir").mkdir()  # git has no empty directories: nothing to commit
        shutil.rmtree(wd / "sub")

    result = world.source.update("main", "a tool's changes", ALICE, tool)
    assert result.commit is not None
    assert not seen["wd"].exists()
    assert world.tmp_leftovers() == []

    tree = world.upstream.ls_tree(result.commit)
    expected = {
        "README.md": ("100644", _blob(b"hello\n")),
        "keep.txt": ("100644", _blob(b"unchanged\n")),
        "modify.txt": ("100644", _blob(b"after\n")),
        "renamed.txt": ("100644", _blob(b"renamed content\n")),
        "make-exec.sh": ("100755", _blob(b"#!/bin/sh\n")),
        "drop-exec.sh": ("100644", _blob(b"#!/bin/sh\nexit 0\n")),
        "link": ("120000", _blob(b"keep.txt")),
        "retarget": ("120000", _blob(b"README.md")),
        "new-link": ("120000", _blob(b"modify.txt")),
        "added.txt": ("100644", _blob(b"added\n")),
        "new/nested/file.txt": ("100644", _blob(b"nested\n")),
        "file-becomes-dir/now.txt": ("100644", _blob(b"now a dir\n")),
        "dir-becomes-file": ("100644", _blob(b"now a file\n")),
        "link-becomes-file": ("100644", _blob(b"keep.txt")),
        "file-becomes-link": ("120000", _blob(b"keep.txt")),
        "big-unchanged.bin": ("100644", _blob(BIG)),
        "big-changed.bin": ("100644", _blob(new_big)),
        "big-added.bin": ("100644", _blob(new_big[::-1])),
    }
    assert tree == expected
    assert world.upstream.parents(result.commit) == [result.base]
    data = world.upstream.show(result.commit, "big-changed.bin")
    assert hashlib.sha256(data).digest() == hashlib.sha256(new_big).digest()
    # git sees the rename as a rename
    renames = world.upstream.git("diff", "-M", "--name-status", result.base, result.commit)
    assert "R100\trename-me.txt\trenamed.txt" in renames
    world.assert_clean()


def test_workdir_and_staged_edits_combine(world: World) -> None:
    def edit(tx: Transaction) -> None:
        tx.write("staged.txt", b"staged\n")
        tx.delete("delete.txt")
        wd = tx.workdir()
        (wd / "from-tool.txt").write_text("tool\n")

    result = world.source.update("main", "both", ALICE, edit)
    assert result.commit is not None
    changed = world.upstream.changed(result.base, result.commit)
    assert changed == {"staged.txt": "A", "delete.txt": "D", "from-tool.txt": "A"}


def test_an_untouched_workdir_is_an_empty_transaction(world: World) -> None:
    before = world.remote_refs()
    result = world.source.update("main", "nothing", ALICE, lambda tx: tx.workdir())
    assert result.empty
    assert world.remote_refs() == before
    assert world.tmp_leftovers() == []


@pytest.mark.parametrize("where", [".git/config", "sub/.git/HEAD", ".git"])
def test_a_git_directory_made_by_a_tool_is_refused(world: World, where: str) -> None:
    before = world.remote_refs()

    def tool(tx: Transaction) -> None:
        wd = tx.workdir()
        (wd / "fine.txt").write_text("fine\n")
        target = wd / where
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("gitdir: /elsewhere\n" if where == ".git" else "[core]\n")

    with pytest.raises(InvalidPath):
        world.source.update("main", "sneaky", ALICE, tool)
    assert world.remote_refs() == before
    assert world.source.provider.list() == []
    (row,) = world.journal_rows()
    assert row.state is TxState.FAILED and row.commit is None
    assert world.tmp_leftovers() == []


def test_special_files_are_refused(world: World) -> None:
    def tool(tx: Transaction) -> None:
        os.mkfifo(tx.workdir() / "a-fifo")

    with pytest.raises(InvalidPath, match="a-fifo"):
        world.source.update("main", "fifo", ALICE, tool)
    assert world.tmp_leftovers() == []


def test_the_workdir_is_removed_after_a_failure_even_if_made_read_only(
    world: World, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("precious\n")
    outside.chmod(0o750)

    def tool(tx: Transaction) -> None:
        wd = tx.workdir()
        os.symlink(str(outside), wd / "escape")  # a link to a directory outside
        (wd / "locked" / "deeper").mkdir(parents=True)
        (wd / "locked" / "deeper" / "f.txt").write_text("f\n")
        for d in (wd / "locked" / "deeper", wd / "locked", wd / "sub" / "dir", wd):
            d.chmod(0o500)
        raise RuntimeError("the tool crashed")

    with pytest.raises(RuntimeError, match="the tool crashed"):
        world.source.update("main", "crash", ALICE, tool)
    assert world.tmp_leftovers() == []
    # the link was removed, never followed
    assert stat.S_IMODE(outside.stat().st_mode) == 0o750
    assert (outside / "precious.txt").read_text() == "precious\n"
    (row,) = world.journal_rows()
    assert row.state is TxState.FAILED and "the tool crashed" in (row.error or "")


def test_a_symlink_to_a_directory_is_committed_as_a_link(world: World) -> None:
    def tool(tx: Transaction) -> None:
        os.symlink("sub/dir", tx.workdir() / "dirlink")

    result = world.source.update("main", "dir link", ALICE, tool)
    assert result.commit is not None
    tree = world.upstream.ls_tree(result.commit)
    assert tree["dirlink"] == ("120000", _blob(b"sub/dir"))
    assert "dirlink/deep.txt" not in tree
