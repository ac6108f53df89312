"""Reading files, trees, changesets and diffs, checked against the git CLI."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest

from revisor.errors import InvalidPath, PathNotFound
from revisor.vcs import ChangeKind, EntryKind, FileMode, Repository
from tests.gitutil import GitRepo

NAMES = ["ünïcødé.txt", "with space.md", "100% done.txt", "hash#q?.txt", "файл/вложенный.txt"]


@pytest.fixture
def repo_with_kinds(git_repo: GitRepo) -> GitRepo:
    g = git_repo
    g.write("README.md", "# hello\n")
    g.write("bin/run.sh", "#!/bin/sh\necho hi\n", executable=True)
    g.symlink("link", "README.md")
    g.write("dir/sub/deep.txt", "deep\n")
    g.write("big.bin", bytes(range(256)) * 64)
    for name in NAMES:
        g.write(name, f"content of {name}\n")
    g.commit("initial")
    # a submodule entry (gitlink), added without cloning anything
    sha = g.head()
    g.git("update-index", "--add", "--cacheinfo", f"160000,{sha},vendor/lib")
    g.git("commit", "-q", "-m", "add submodule")
    return g


def test_tree_matches_ls_tree(repo_with_kinds: GitRepo) -> None:
    g = repo_with_kinds
    repo = Repository.open(g.path)
    for path in ("", "dir", "dir/sub", "bin", "файл", "vendor"):
        args = ["ls-tree", "-z", "--long", "HEAD"] + ([f"{path}/"] if path else [])
        expected = []
        for rec in g.git(*args).split("\0"):
            if not rec:
                continue
            meta, name = rec.split("\t", 1)
            mode, _type, oid, size = meta.split()
            expected.append((name, int(mode, 8), oid, None if size == "-" else int(size)))
        ours = [(e.path, e.mode, e.id, e.size) for e in repo.tree("HEAD", path)]
        # directories and submodules carry no size
        assert ours == [
            (n, m, o, s if m not in (FileMode.SUBMODULE,) else None) for n, m, o, s in expected
        ]


def test_entry_kinds(repo_with_kinds: GitRepo) -> None:
    repo = Repository.open(repo_with_kinds.path)
    kinds = {e.name: e.kind for e in repo.tree("HEAD")}
    assert kinds["README.md"] is EntryKind.FILE
    assert kinds["link"] is EntryKind.SYMLINK
    assert kinds["dir"] is EntryKind.DIR
    assert {e.name: e.kind for e in repo.tree("HEAD", "vendor")}["lib"] is EntryKind.SUBMODULE


def test_files_read_like_cat_file(repo_with_kinds: GitRepo) -> None:
    g = repo_with_kinds
    repo = Repository.open(g.path)
    for path in ["README.md", "bin/run.sh", "dir/sub/deep.txt", "big.bin", *NAMES]:
        f = repo.file("HEAD", path)
        raw = subprocess.run(
            ["git", "-C", str(g.path), "cat-file", "blob", f"HEAD:{path}"],
            capture_output=True,
            check=True,
        ).stdout
        assert f.data == raw
        assert f.size == len(raw)
        assert b"".join(f.stream(100)) == raw
        assert f.kind is EntryKind.FILE
    assert repo.file("HEAD", "bin/run.sh").executable
    assert not repo.file("HEAD", "README.md").executable


def test_symlinks_and_submodules_are_not_followed(repo_with_kinds: GitRepo) -> None:
    repo = Repository.open(repo_with_kinds.path)
    link = repo.file("HEAD", "link")
    assert link.kind is EntryKind.SYMLINK
    assert link.data == b"README.md"
    sub = repo.file("HEAD", "vendor/lib")
    assert sub.kind is EntryKind.SUBMODULE
    assert sub.id == repo.resolve("HEAD~1")
    assert sub.data == b""


def test_missing_and_invalid_paths(repo_with_kinds: GitRepo) -> None:
    repo = Repository.open(repo_with_kinds.path)
    with pytest.raises(PathNotFound):
        repo.file("HEAD", "nope.txt")
    with pytest.raises(PathNotFound):
        repo.file("HEAD", "dir")  # a directory is not a file
    with pytest.raises(PathNotFound):
        repo.tree("HEAD", "README.md")  # a file is not a directory
    for bad in ("../etc/passwd", "/abs", ".git/config", "a//b", "x\x00y"):
        with pytest.raises(InvalidPath):
            repo.file("HEAD", bad)
    assert repo.exists("HEAD", "dir/sub")
    assert not repo.exists("HEAD", "dir/nope")


def test_large_blob_streams_through_git(git_repo: GitRepo) -> None:
    from revisor.vcs import repository as repository_module

    data = bytes(range(256)) * (40 * 1024)  # 10 MiB, above the streaming threshold
    git_repo.write("huge.bin", data)
    git_repo.commit("huge")
    repo = Repository.open(git_repo.path)
    f = repo.file("HEAD", "huge.bin")
    assert f.size == len(data) > repository_module.STREAM_THRESHOLD
    chunks = list(f.stream(1 << 20))
    assert max(len(c) for c in chunks) <= 1 << 20
    assert b"".join(chunks) == data


def test_changeset_fields(git_repo: GitRepo) -> None:
    g = git_repo
    g.write("a.txt", "x\n")
    g.commit("first line\n\nbody text")
    env = {
        "GIT_AUTHOR_DATE": "1700000000 +0530",
        "GIT_COMMITTER_DATE": "1700000100 -0200",
        "GIT_AUTHOR_NAME": "Ünïcode Áuthor",
    }
    g.write("a.txt", "y\n")
    g.git("commit", "-q", "-am", "second", env=env)
    repo = Repository.open(g.path)
    cs = repo.changeset("HEAD")
    assert cs.id == g.head()
    assert cs.parents == (repo.resolve("HEAD~1"),)
    assert cs.author.name == "Ünïcode Áuthor"
    assert cs.author.email == "author@example.com"
    assert cs.author.timestamp == 1700000000
    assert cs.author.time.utcoffset() == timedelta(hours=5, minutes=30)
    assert cs.committer.name == "Test Committer"
    assert cs.committer.time.utcoffset() == timedelta(hours=-2)
    assert cs.message == "second\n"
    first = repo.changeset("HEAD~1")
    assert first.parents == ()
    assert first.summary == "first line"
    assert first.message == g.git("log", "-1", "--format=%B", "HEAD~1")[:-1]


def _git_name_status(g: GitRepo, rev: str) -> list[tuple[str, ...]]:
    out = g.git("diff-tree", "-r", "-M", "--root", "--no-commit-id", "--name-status", "-z", rev)
    fields = out.split("\0")
    rows: list[tuple[str, ...]] = []
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i]
        if status[0] in "RC":
            rows.append((status[0], fields[i + 2], fields[i + 1]))
            i += 3
        else:
            rows.append((status[0], fields[i + 1]))
            i += 2
    return sorted(rows, key=lambda r: r[1])


_LETTER = {
    ChangeKind.ADDED: "A",
    ChangeKind.MODIFIED: "M",
    ChangeKind.DELETED: "D",
    ChangeKind.RENAMED: "R",
    ChangeKind.COPIED: "C",
    ChangeKind.TYPE_CHANGED: "T",
}


def test_changes_match_diff_tree(git_repo: GitRepo) -> None:
    g = git_repo
    body = "".join(f"line {i}\n" for i in range(40))
    g.write("keep.txt", body)
    g.write("gone.txt", "bye\n")
    g.write("mod.txt", "v1\n")
    g.write("type.txt", "was a file\n")
    g.write("mode.sh", "echo\n")
    g.write("ünï/ço de.txt", body + "unicode\n")
    g.commit("root")
    (g.path / "moved").mkdir()
    g.git("mv", "keep.txt", "moved/renamed.txt")
    g.write("moved/renamed.txt", body + "one more\n")
    g.remove("gone.txt")
    g.write("mod.txt", "v2\n")
    g.git("rm", "-q", "type.txt")
    g.symlink("type.txt", "mod.txt")
    g.write("mode.sh", "echo\n", executable=True)
    g.write("new dir/new file.txt", "new\n")
    g.git("mv", "ünï/ço de.txt", "ünï/renamed ço de.txt")
    g.commit("many changes")
    repo = Repository.open(g.path)
    for rev in ("HEAD~1", "HEAD"):
        ours = [
            (_LETTER[c.kind], c.path, c.old_path)
            if c.kind in (ChangeKind.RENAMED, ChangeKind.COPIED)
            else (_LETTER[c.kind], c.path)
            for c in repo.changeset(rev).changes()
        ]
        assert ours == _git_name_status(g, rev), rev


def test_deleting_everything_is_a_change(git_repo: GitRepo) -> None:
    g = git_repo
    g.write("only.txt", "x\n")
    g.commit("one")
    g.remove("only.txt")
    g.commit("empty the repository")
    repo = Repository.open(g.path)
    changes = repo.changeset("HEAD").changes()
    assert [(c.kind, c.path) for c in changes] == [(ChangeKind.DELETED, "only.txt")]
    assert repo.tree("HEAD") == []


def test_diff_patches_match_git(git_repo: GitRepo) -> None:
    g = git_repo
    g.write("text.txt", "a\nb\nc\n")
    g.write("bin.dat", b"\x00\x01\x02binary")
    g.write("other/x.txt", "x\n")
    g.commit("one")
    g.write("text.txt", "a\nB\nc\nd\n")
    g.write("bin.dat", b"\x00\x01\x03binary!")
    g.write("other/x.txt", "y\n")
    g.commit("two")
    repo = Repository.open(g.path)
    diffs = {d.change.path: d for d in repo.diff("HEAD~1", "HEAD")}
    assert set(diffs) == {"text.txt", "bin.dat", "other/x.txt"}
    text = diffs["text.txt"]
    assert not text.binary
    assert (text.additions, text.deletions) == (2, 1)
    git_patch = g.git("diff", "HEAD~1", "HEAD", "--", "text.txt")
    assert [ln for ln in text.patch.splitlines() if ln[:1] in "+-@"] == [
        ln for ln in git_patch.splitlines() if ln[:1] in "+-@"
    ]
    assert diffs["bin.dat"].binary
    assert "Binary files" in diffs["bin.dat"].patch
    only = repo.diff("HEAD~1", "HEAD", paths=["other"])
    assert [d.change.path for d in only] == ["other/x.txt"]
    from_nothing = repo.diff(None, "HEAD~1")
    assert {d.change.kind for d in from_nothing} == {ChangeKind.ADDED}
