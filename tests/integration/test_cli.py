"""The ``revisor`` command as a real process: output, JSON, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.gitutil import GitRepo


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "revisor", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture
def repo(git_repo: GitRepo) -> GitRepo:
    g = git_repo
    g.write("README.md", "# title\n")
    g.write("docs/ünï code.md", "unicode\n")
    g.commit("first commit")
    g.write("README.md", "# title\nmore\n")
    g.write("bin.dat", b"\x00\xff\x00binary")
    g.commit("second commit\n\nwith a body")
    return g


def test_ls_text_and_json(repo: GitRepo) -> None:
    out = run("ls", str(repo.path))
    assert out.returncode == 0, out.stderr
    names = [line.split()[-1] for line in out.stdout.splitlines()]
    assert names == ["README.md", "bin.dat", "docs/"]
    js = json.loads(run("ls", str(repo.path), "HEAD", "docs", "--json").stdout)
    assert [(e["name"], e["path"], e["kind"]) for e in js] == [
        ("ünï code.md", "docs/ünï code.md", "file")
    ]


def test_ls_with_last_commits(repo: GitRepo) -> None:
    js = json.loads(run("ls", str(repo.path), "--json", "--last-commits").stdout)
    last = {e["name"]: e["last_commit"]["id"] for e in js}
    head, first = repo.rev_parse("HEAD"), repo.rev_parse("HEAD~1")
    assert last == {"README.md": head, "bin.dat": head, "docs": first}


def test_cat_is_binary_safe(repo: GitRepo) -> None:
    out = subprocess.run([sys.executable, "-m", "revisor", "cat", str(repo.path), "HEAD",
                          "bin.dat"], capture_output=True, check=False)
    assert out.returncode == 0
    assert out.stdout == b"\x00\xff\x00binary"
    assert run("cat", str(repo.path), "HEAD~1", "docs/ünï code.md").stdout == "unicode\n"


def test_log_and_show(repo: GitRepo) -> None:
    lines = run("log", str(repo.path)).stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == [repo.rev_parse("HEAD")[:12],
                                                repo.rev_parse("HEAD~1")[:12]]
    js = json.loads(run("log", str(repo.path), "--path", "docs", "--json").stdout)
    assert [c["id"] for c in js] == [repo.rev_parse("HEAD~1")]
    assert json.loads(run("log", str(repo.path), "-n", "1", "--json").stdout)[0]["message"] == (
        "second commit\n\nwith a body\n"
    )
    show = json.loads(run("show", str(repo.path), "HEAD", "--json", "--patch").stdout)
    assert {c["path"]: c["kind"] for c in show["changes"]} == {
        "README.md": "modified", "bin.dat": "added"
    }
    assert any(d["binary"] for d in show["diff"])
    text = run("show", str(repo.path), "HEAD").stdout
    assert "M  README.md" in text and "A  bin.dat" in text and "with a body" in text


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("cat", "{repo}", "HEAD", "../etc/passwd"), 2, "invalid path"),
        (("cat", "{repo}", "HEAD", ".git/config"), 2, "invalid path"),
        (("ls", "{repo}", "--", "--output=/tmp/revisor-x"), 2, "invalid revision"),
        (("ls", "{repo}", "main..HEAD"), 2, "invalid revision"),
        (("cat", "{repo}", "HEAD", "missing.txt"), 3, "no such path"),
        (("ls", "{repo}", "no-such-branch"), 3, "unknown revision"),
        (("ls", "/nonexistent/repo"), 3, "no git repository"),
    ],
)
def test_errors_are_one_line_with_exit_codes(
    repo: GitRepo, args: tuple[str, ...], code: int, fragment: str
) -> None:
    out = run(*(a.format(repo=repo.path) for a in args))
    assert out.returncode == code
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert lines[0].startswith("revisor: error: ") and fragment in lines[0]
    assert all(ln.startswith("revisor: ") for ln in lines)
    assert "Traceback" not in out.stderr


def test_version() -> None:
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("revisor ")
