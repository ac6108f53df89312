from tests.gitutil import GitRepo


def test_git_repo_fixture_commits(git_repo: GitRepo) -> None:
    git_repo.write("a.txt", "x")
    sha = git_repo.commit("first")
    assert len(sha) == 40
    assert git_repo.git("log", "--format=%an").strip() == "Test Author"
