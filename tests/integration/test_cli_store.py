"""The store's CLI commands as a real process: sources, fetch, doctor, prepare, and reading a
configured source by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gitutil import GitRepo


def run(config: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if config is not None:
        env["REVISOR_CONFIG"] = str(config)
    return subprocess.run([sys.executable, "-m", "revisor", *args], capture_output=True,
                          text=True, check=False, env=env, timeout=120)


@pytest.fixture
def setup(git_repo: GitRepo, tmp_path: Path) -> tuple[Path, GitRepo, Path]:
    g = git_repo
    g.write("README.md", "hello\n")
    g.write("docs/guide.md", "guide\n")
    g.commit("first")
    g.git("tag", "v1")
    remote = tmp_path / "remotes" / "org" / "comp.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(g.path), str(remote)], check=True)
    config = tmp_path / "revisor.yaml"
    config.write_text(
        "data_dir: ./data\n"
        "sources:\n"
        "  comp:\n"
        "    type: git\n"
        f"    url: file://{remote}\n"
        "  here:\n"
        "    type: local\n"
        f"    path: {g.path}\n"
    )
    return config, g, remote


def test_fetch_then_read_by_source_name(setup: tuple[Path, GitRepo, Path]) -> None:
    config, _g, _remote = setup
    out = run(config, "fetch", "--json")
    assert out.returncode == 0, out.stderr
    results = {r["source"]: r for r in json.loads(out.stdout)}
    assert results["comp"]["ok"] and results["here"]["ok"]
    refs = {c["ref"] for c in results["comp"]["changes"]}
    assert refs == {"refs/heads/main", "refs/tags/v1"}
    assert run(config, "cat", "comp", "main", "README.md").stdout == "hello\n"
    assert run(config, "cat", "here", "v1", "docs/guide.md").stdout == "guide\n"
    listing = json.loads(run(config, "ls", "comp", "v1", "--json").stdout)
    assert [e["name"] for e in listing] == ["README.md", "docs"]
    sources = {s["name"]: s for s in json.loads(run(config, "sources", "--json").stdout)}
    assert sources["comp"]["type"] == "git" and sources["comp"]["last_fetch"] is not None
    assert sources["here"]["mirror"] is None
    assert Path(sources["comp"]["mirror"]).is_relative_to(config.parent / "data" / "mirrors")


def test_prepare_and_doctor(setup: tuple[Path, GitRepo, Path], tmp_path: Path) -> None:
    config, _g, _remote = setup
    assert run(config, "fetch", "comp").returncode == 0
    dest = tmp_path / "prepared"
    out = run(config, "prepare", "comp", "main", str(dest), "--scheme", "flat", "--json")
    assert out.returncode == 0, out.stderr
    prepared = json.loads(out.stdout)
    assert Path(prepared["path"]) == dest / "comp"
    assert (dest / "comp" / "docs" / "guide.md").read_text() == "guide\n"
    mirror = Path(json.loads(run(config, "sources", "--json").stdout)[0]["mirror"])
    (mirror / "HEAD").write_text("")
    out = run(config, "doctor", "comp")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "HEAD" in out.stdout and "repaired" in out.stdout
    assert run(config, "doctor", "comp").stdout.strip() == "comp: healthy"


def test_configuration_errors_name_the_field(tmp_path: Path) -> None:
    config = tmp_path / "revisor.yaml"
    config.write_text("sources:\n  Bad Name:\n    type: git\n")
    out = run(config, "sources")
    assert out.returncode == 2
    assert "sources" in out.stderr and "Traceback" not in out.stderr
    config.write_text("sources:\n  ok:\n    type: git\n")
    out = run(config, "sources")
    assert out.returncode == 2 and "sources.ok.url" in out.stderr


def test_unknown_source_and_unreachable_remote(setup: tuple[Path, GitRepo, Path]) -> None:
    config, _g, remote = setup
    out = run(config, "fetch", "nope")
    assert out.returncode == 3 and "nope" in out.stderr
    subprocess.run(["mv", str(remote), str(remote) + ".gone"], check=True)
    out = run(config, "fetch", "comp")
    assert out.returncode == 5, out.stderr
    assert "comp" in out.stderr
