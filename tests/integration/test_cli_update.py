"""``revisor update`` and ``revisor proposals`` as real processes on a configured git source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gitutil import GitRepo

AUTHOR = "Alice Example <alice@example.com>"


def run(config: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "REVISOR_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "revisor", *args], input=stdin,
                          capture_output=True, check=False, env=env, timeout=120)


def remote_refs(remote: Path) -> dict[str, str]:
    out = subprocess.run(["git", f"--git-dir={remote}", "for-each-ref",
                          "--format=%(refname) %(objectname)"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return dict(line.split() for line in out.splitlines())


@pytest.fixture
def config(git_repo: GitRepo, tmp_path: Path) -> tuple[Path, Path]:
    git_repo.write("README.md", "hello\n")
    git_repo.write("old.txt", "old\n")
    git_repo.commit("first")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(git_repo.path), str(remote)], check=True,
                   timeout=30)
    cfg = tmp_path / "revisor.yaml"
    cfg.write_text(f"data_dir: ./data\nsources:\n  demo:\n    type: git\n    url: {remote}\n"
                   "    allow_direct: true\n")
    return cfg, remote


def test_update_pushes_a_branch_and_opens_a_proposal(config: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    cfg, remote = config
    src_file = tmp_path / "payload.bin"
    src_file.write_bytes(b"\x00\x01binary")
    out = run(cfg, "update", "demo", "-m", "Add things\n\nWith a body", "--put",
              f"data/payload.bin=@{src_file}", "--put", "notes.txt=-", "--delete", "old.txt",
              "--move", "README.md=docs/README.md", "--author", AUTHOR, "--json",
              stdin=b"from stdin\n")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert not result["empty"] and result["proposal"]["number"] == 1
    refs = remote_refs(remote)
    assert refs[f"refs/heads/{result['branch']}"] == result["commit"]
    tree = subprocess.run(["git", f"--git-dir={remote}", "ls-tree", "-r", "--name-only",
                           result["commit"]], capture_output=True, text=True, check=True,
                          timeout=30).stdout.split()
    assert sorted(tree) == ["data/payload.bin", "docs/README.md", "notes.txt"]
    author = subprocess.run(["git", f"--git-dir={remote}", "log", "-1", "--format=%an <%ae>|%cn",
                             result["commit"]], capture_output=True, text=True, check=True,
                            timeout=30).stdout.strip()
    assert author == f"{AUTHOR}|Revisor"

    listed = json.loads(run(cfg, "proposals", "list", "demo", "--json").stdout)
    assert [(p["number"], p["status"]) for p in listed] == [(1, "open")]
    shown = json.loads(run(cfg, "proposals", "show", "demo", "1", "--json").stdout)
    assert shown["mergeability"]["clean"] is True
    merged = run(cfg, "proposals", "merge", "demo", "1", "--method", "squash", "--author", AUTHOR,
                 "--json")
    assert merged.returncode == 0, merged.stderr
    assert remote_refs(remote)["refs/heads/main"] == json.loads(merged.stdout)["merged_commit"]
    assert run(cfg, "cat", "demo", "main", "notes.txt").stdout == b"from stdin\n"
    again = run(cfg, "proposals", "close", "demo", "1", "--author", AUTHOR)
    assert again.returncode == 4 and b"merged" in again.stderr


def test_empty_direct_stale_and_invalid(config: tuple[Path, Path]) -> None:
    cfg, remote = config
    before = remote_refs(remote)
    empty = run(cfg, "update", "demo", "-m", "nothing", "--put", "README.md=hello\n",
                "--author", AUTHOR)
    assert empty.returncode == 0 and b"no change" in empty.stdout
    assert remote_refs(remote) == before
    bad = run(cfg, "update", "demo", "-m", "x", "--put", "../escape=1", "--author", AUTHOR)
    assert bad.returncode == 2 and b"invalid path" in bad.stderr
    stale = run(cfg, "update", "demo", "-m", "x", "--put", "a=1", "--expect", "1" * 40,
                "--author", AUTHOR)
    assert stale.returncode == 4
    assert remote_refs(remote) == before
    head = before["refs/heads/main"]
    direct = run(cfg, "update", "demo", "-m", "direct", "--put", "a=1", "--branch", "main",
                 "--no-propose", "--expect", head, "--author", AUTHOR, "--json")
    assert direct.returncode == 0, direct.stderr
    result = json.loads(direct.stdout)
    assert result["direct"] and result["proposal"] is None
    assert remote_refs(remote)["refs/heads/main"] == result["commit"]
    no_author = run(cfg, "update", "demo", "-m", "x", "--put", "a=2", "--author", "nobody")
    assert no_author.returncode == 2 and b"author" in no_author.stderr
