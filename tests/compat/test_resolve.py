"""``Repository.resolve`` against ``git rev-parse --verify <rev>^{commit}`` on real repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from revisor.errors import InvalidRevision, RepositoryNotFound, RevisionNotFound
from revisor.vcs import Repository
from tests.gitutil import GitRepo


@pytest.fixture
def history(git_repo: GitRepo) -> GitRepo:
    g = git_repo
    g.write("a.txt", "one\n")
    g.commit("c1")
    g.write("a.txt", "two\n")
    g.commit("c2")
    g.git("checkout", "-q", "-b", "side")
    g.write("b.txt", "side\n")
    g.commit("s1")
    g.checkout("main")
    g.write("c.txt", "main\n")
    g.commit("c3")
    g.merge("side")
    g.git("tag", "light")
    g.git("tag", "-a", "-m", "annotated", "v1.0", "HEAD~1")
    g.git("tag", "-a", "-m", "tag of tag", "v1.0-outer", "v1.0")
    g.git("branch", "feature/x@host", "HEAD~2")
    g.git("branch", "user@example.com", "HEAD^2")
    # a branch and a tag with the same name: git prefers the tag
    g.git("branch", "same", "HEAD~1")
    g.git("tag", "same", "HEAD^2")
    g.git("update-ref", "refs/remotes/origin/main", "HEAD~2")
    g.git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    return g


def git_resolve(g: GitRepo, rev: str) -> str | None:
    proc = subprocess.run(
        ["git", "-C", str(g.path), "rev-parse", "-q", "--verify", "--end-of-options",
         f"{rev}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


REVS = [
    "HEAD",
    "@",
    "main",
    "refs/heads/main",
    "heads/main",
    "side",
    "HEAD~1",
    "HEAD~2",
    "HEAD^",
    "HEAD^1",
    "HEAD^2",
    "HEAD^2~1",
    "HEAD^0",
    "main~3",
    "light",
    "v1.0",
    "tags/v1.0",
    "refs/tags/v1.0",
    "v1.0-outer",
    "v1.0~1",
    "feature/x@host",
    "user@example.com",
    "same",
    "refs/heads/same",
    "origin/main",
    "origin",
    "remotes/origin/main",
]


@pytest.mark.parametrize("rev", REVS)
def test_resolve_agrees_with_git(history: GitRepo, rev: str) -> None:
    repo = Repository.open(history.path)
    expected = git_resolve(history, rev)
    assert expected is not None, rev
    assert repo.resolve(rev) == expected


def test_full_and_short_ids(history: GitRepo) -> None:
    repo = Repository.open(history.path)
    for full in history.git("rev-list", "--all").split():
        assert repo.resolve(full) == full
        assert repo.resolve(full[:12]) == full
        assert repo.resolve(full.upper()) == full
        assert repo.resolve(full[:7] + "~0") == full


@pytest.mark.parametrize(
    "rev", ["nope", "HEAD~10", "HEAD^3", "main~100", "refs/heads/nope", "deadbeef", "0" * 40]
)
def test_unknown_revisions(history: GitRepo, rev: str) -> None:
    repo = Repository.open(history.path)
    assert git_resolve(history, rev) is None
    with pytest.raises(RevisionNotFound):
        repo.resolve(rev)


def test_option_like_revisions_never_reach_git(history: GitRepo, tmp_path: Path) -> None:
    repo = Repository.open(history.path)
    target = tmp_path / "x"
    for rev in ("--output=" + str(target), "-n", "--all", "main..side", "main...side",
                "HEAD:a.txt", "main@{0}", "a\x00b", "HEAD^{tree}"):
        with pytest.raises(InvalidRevision):
            repo.resolve(rev)
    assert not target.exists()


def test_non_commit_objects_are_invalid(history: GitRepo) -> None:
    repo = Repository.open(history.path)
    blob = history.git("rev-parse", "HEAD:a.txt").strip()
    with pytest.raises(InvalidRevision):
        repo.resolve(blob)


def test_unborn_head(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "empty.git")
    assert repo.bare
    assert repo.head_ref == "refs/heads/main"
    with pytest.raises(RevisionNotFound):
        repo.resolve("HEAD")


def test_open_missing(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound):
        Repository.open(tmp_path / "nothing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(RepositoryNotFound):
        Repository.open(tmp_path / "plain")


def test_bare_clone_resolves_the_same(history: GitRepo, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--mirror", str(history.path), str(bare)], check=True)
    repo = Repository.open(bare)
    assert repo.bare
    for rev in ("main", "v1.0", "HEAD~1", "same"):
        assert repo.resolve(rev) == git_resolve(history, rev)
