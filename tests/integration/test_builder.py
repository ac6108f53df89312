"""Writing commits without a worktree, checked with git itself (fsck, ls-tree, show)."""

from __future__ import annotations

import io
import os
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from revisor.errors import InvalidInput, InvalidPath, PathConflict, PathNotFound
from revisor.vcs import EMPTY_TREE, FileMode, Repository, Signature
from tests.gitutil import GitRepo

ALICE = Signature("Alice Ädmin", "alice@example.com",
                  datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))))
BOT = Signature("Revisor", "revisor@example.com",
                datetime(2026, 1, 2, 4, 0, 0, tzinfo=UTC))


def ls_tree(repo: Repository, rev: str) -> dict[str, tuple[str, str]]:
    out = subprocess.run(
        ["git", f"--git-dir={repo.git_dir}", "ls-tree", "-r", "-z", rev],
        capture_output=True, check=True,
    ).stdout.decode()
    result = {}
    for rec in out.split("\0"):
        if rec:
            meta, path = rec.split("\t", 1)
            mode, _t, oid = meta.split()
            result[path] = (mode, oid)
    return result


def fsck(repo: Repository) -> None:
    subprocess.run(["git", f"--git-dir={repo.git_dir}", "fsck", "--strict", "--no-dangling"],
                   check=True, capture_output=True)


def blob(repo: Repository, rev: str, path: str) -> bytes:
    return repo.file(rev, path).data


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    r = Repository.init(tmp_path / "repo.git")
    b = r.builder(None)
    b.write("README.md", b"hello\n")
    b.write("src/app.py", b"print('hi')\n")
    b.write("src/pkg/mod.py", b"x = 1\n")
    b.write("scripts/run.sh", b"#!/bin/sh\n", executable=True)
    c = b.commit("initial", ALICE, BOT)
    assert c is not None
    r.set_ref("refs/heads/main", c, expected=None)
    return r


def commit(repo: Repository, build, message: str = "change") -> str | None:  # type: ignore[no-untyped-def]
    b = repo.builder("main")
    build(b)
    c = b.commit(message, ALICE, BOT)
    if c is not None:
        repo.set_ref("refs/heads/main", c, expected=repo.resolve("main"))
    return c


def test_first_commit_is_well_formed(repo: Repository) -> None:
    fsck(repo)
    tree = ls_tree(repo, "main")
    assert set(tree) == {"README.md", "src/app.py", "src/pkg/mod.py", "scripts/run.sh"}
    assert tree["scripts/run.sh"][0] == "100755"
    assert tree["README.md"][0] == "100644"
    cs = repo.changeset("main")
    assert cs.parents == ()
    assert cs.message == "initial\n"
    assert (cs.author.name, cs.author.email) == (ALICE.name, ALICE.email)
    assert cs.author.time == ALICE.time
    assert cs.author.offset_minutes == 120
    assert (cs.committer.name, cs.committer.email) == (BOT.name, BOT.email)


def test_write_modify_delete_in_one_commit(repo: Repository) -> None:
    before = repo.resolve("main")

    def build(b):  # type: ignore[no-untyped-def]
        b.write("README.md", b"changed\n")
        b.write("docs/new/guide.md", b"guide\n")
        b.delete("src/pkg/mod.py")

    c = commit(repo, build)
    assert c is not None
    fsck(repo)
    assert repo.changeset(c).parents == (before,)
    assert set(ls_tree(repo, "main")) == {"README.md", "src/app.py", "scripts/run.sh",
                                          "docs/new/guide.md"}
    assert blob(repo, "main", "README.md") == b"changed\n"
    # 'src/pkg' became empty and disappeared; untouched subtrees keep their ids
    assert not repo.exists("main", "src/pkg")
    assert ls_tree(repo, "main")["scripts/run.sh"] == ls_tree(repo, before)["scripts/run.sh"]


def test_no_change_is_not_a_commit(repo: Repository) -> None:
    head = repo.resolve("main")
    assert commit(repo, lambda b: None) is None
    assert commit(repo, lambda b: b.write("README.md", b"hello\n")) is None

    def back_and_forth(b):  # type: ignore[no-untyped-def]
        b.write("README.md", b"other\n")
        b.write("README.md", b"hello\n")
        b.write("tmp.txt", b"x")
        b.delete("tmp.txt")

    assert commit(repo, back_and_forth) is None
    assert repo.resolve("main") == head


def test_deleting_the_last_file_is_a_real_commit(tmp_path: Path) -> None:
    r = Repository.init(tmp_path / "one.git")
    b = r.builder(None)
    b.write("only.txt", b"x")
    first = b.commit("one", ALICE)
    assert first is not None
    b = r.builder(first)
    b.delete("only.txt")
    second = b.commit("empty it", ALICE)
    assert second is not None
    assert r.changeset(second).tree == EMPTY_TREE
    assert r.tree(second) == []
    fsck(r)


def test_move_copy_chmod_symlink(repo: Repository) -> None:
    def build(b):  # type: ignore[no-untyped-def]
        b.move("src", "lib")
        b.copy("README.md", "docs/README copy.md")
        b.chmod("README.md", executable=True)
        b.symlink("latest", "lib/app.py")

    commit(repo, build)
    fsck(repo)
    tree = ls_tree(repo, "main")
    assert "lib/pkg/mod.py" in tree and "src/app.py" not in tree
    assert tree["README.md"][0] == "100755"
    assert tree["docs/README copy.md"][1] == tree["README.md"][1]
    assert tree["latest"][0] == "120000"
    assert blob(repo, "main", "latest") == b"lib/app.py"
    # the move kept the subtree object as it was
    assert tree["lib/pkg/mod.py"] == ls_tree(repo, "main~1")["src/pkg/mod.py"]


def test_write_keeps_the_executable_bit_unless_told(repo: Repository) -> None:
    commit(repo, lambda b: b.write("scripts/run.sh", b"#!/bin/sh\necho 2\n"))
    assert ls_tree(repo, "main")["scripts/run.sh"][0] == "100755"
    commit(repo, lambda b: b.write("scripts/run.sh", b"x", executable=False))
    assert ls_tree(repo, "main")["scripts/run.sh"][0] == "100644"


def test_shape_conflicts_and_missing_paths(repo: Repository) -> None:
    b = repo.builder("main")
    with pytest.raises(PathConflict):
        b.write("README.md/inner", b"x")  # README.md is a file
    with pytest.raises(PathConflict):
        b.write("src", b"x")  # src is a directory
    with pytest.raises(PathNotFound):
        b.delete("nope")
    with pytest.raises(PathNotFound):
        b.move("nope", "other")
    with pytest.raises(PathConflict):
        b.move("README.md", "src/app.py")  # target exists
    with pytest.raises(PathConflict):
        b.move("src", "src/inner")
    with pytest.raises(PathConflict):
        b.chmod("src", executable=True)
    # replacing a file by a directory works when the file is deleted first
    b.delete("README.md")
    b.write("README.md/inner", b"now a dir\n")
    c = b.commit("file to dir", ALICE)
    assert c is not None
    assert repo.file(c, "README.md/inner").data == b"now a dir\n"


@pytest.mark.parametrize("bad", ["../x", "/abs", ".git/config", "a//b", "a/./b", "x\x00"])
def test_invalid_paths_write_nothing(repo: Repository, bad: str) -> None:
    objects_before = subprocess.run(
        ["git", f"--git-dir={repo.git_dir}", "count-objects", "-v"], capture_output=True,
        check=True,
    ).stdout
    b = repo.builder("main")
    with pytest.raises(InvalidPath):
        b.write(bad, b"evil")
    with pytest.raises(InvalidPath):
        b.delete(bad)
    with pytest.raises(InvalidPath):
        b.move("README.md", bad)
    assert b.commit("nothing", ALICE) is None
    objects_after = subprocess.run(
        ["git", f"--git-dir={repo.git_dir}", "count-objects", "-v"], capture_output=True,
        check=True,
    ).stdout
    assert objects_before == objects_after


def test_unicode_space_percent_names(repo: Repository) -> None:
    names = ["ünïcødé/файл.txt", "with space/a b.md", "100% sure.txt", "q?#&.txt"]

    def build(b):  # type: ignore[no-untyped-def]
        for n in names:
            b.write(n, n.encode())

    commit(repo, build)
    tree = ls_tree(repo, "main")
    for n in names:
        assert n in tree
        assert blob(repo, "main", n) == n.encode()
    fsck(repo)


def test_streamed_content(repo: Repository) -> None:
    data = b"0123456789abcdef" * 65536  # 1 MiB
    commit(repo, lambda b: b.write("big.bin", io.BytesIO(data)))
    assert blob(repo, "main", "big.bin") == data


def test_bad_signatures_and_content(repo: Repository) -> None:
    b = repo.builder("main")
    b.write("x", b"y")
    with pytest.raises(InvalidInput):
        b.commit("m", Signature("Evil <x>", "e@x", ALICE.time))
    with pytest.raises(InvalidInput):
        b.write("y", "text not bytes")  # type: ignore[arg-type]


def test_builder_reads_staged_state(repo: Repository) -> None:
    b = repo.builder("main")
    b.write("new.txt", b"staged")
    assert b.exists("new.txt")
    assert b.read("new.txt") == b"staged"
    assert b.mode("scripts/run.sh") == FileMode.EXECUTABLE
    assert b.mode("src") == FileMode.DIRECTORY
    b.delete("src")
    assert not b.exists("src/app.py")
    assert b.changed


def test_commit_is_what_git_would_make(git_repo: GitRepo) -> None:
    """The same change through git's index and through the builder gives the same tree."""
    g = git_repo
    g.write("a/b/c.txt", "c\n")
    g.write("a/d.txt", "d\n")
    g.write("e.txt", "e\n")
    g.commit("base")
    repo = Repository.open(g.path)
    b = repo.builder("HEAD")
    b.write("a/b/c.txt", b"C\n")
    b.delete("a/d.txt")
    b.write("f/g.txt", b"g\n")
    ours = b.commit("change", ALICE)
    assert ours is not None
    g.write("a/b/c.txt", "C\n")
    g.remove("a/d.txt")
    g.write("f/g.txt", "g\n")
    g.commit("change")
    assert repo.changeset(ours).tree == g.git("rev-parse", "HEAD^{tree}").strip()


def test_materialize_writes_the_tree_read_only(repo: Repository, tmp_path: Path) -> None:
    def build(b):  # type: ignore[no-untyped-def]
        b.symlink("link", "../../outside")
        b.write("ünï code/file %.txt", b"u")

    commit(repo, build)
    dest = tmp_path / "out"
    count = repo.materialize("main", dest, read_only=True)
    assert count == 6
    assert (dest / "README.md").read_bytes() == b"hello\n"
    assert os.access(dest / "scripts/run.sh", os.X_OK)
    assert (dest / "link").is_symlink() and os.readlink(dest / "link") == "../../outside"
    assert (dest / "ünï code/file %.txt").read_bytes() == b"u"
    assert not os.access(dest / "README.md", os.W_OK) or os.geteuid() == 0
    assert (os.stat(dest / "README.md").st_mode & 0o222) == 0
    sub = tmp_path / "sub"
    assert repo.materialize("main", sub, path="src") == 2
    assert sorted(p.name for p in sub.iterdir()) == ["app.py", "pkg"]
    with pytest.raises(FileExistsError):
        repo.materialize("main", dest)
    from revisor.vcs.materialize import make_writable

    make_writable(dest)
    assert os.stat(dest / "README.md").st_mode & 0o200


def test_directory_emptied_then_replaced_by_a_file(repo: Repository) -> None:
    def build(b):  # type: ignore[no-untyped-def]
        b.delete("src/app.py")
        b.delete("src/pkg/mod.py")
        b.write("src", b"now a file\n")

    c = commit(repo, build)
    assert c is not None
    assert repo.file("main", "src").data == b"now a file\n"
    fsck(repo)
