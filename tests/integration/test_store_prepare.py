"""``prepare``: a read-only checkout laid out by Zuul's schemes, equal to ``git archive``, and
never one repository inside another."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from revisor.errors import InvalidInput, LayoutCollision
from revisor.store.store import StoreSource
from tests.integration.test_store_support import Upstream, git, make_store
from tests.support.fixtures import MakeRemote
from tests.support.githttp import GitHttpServer

pytestmark = pytest.mark.timeout(60)

FILES: dict[str, str | bytes | tuple[str, str | bytes]] = {
    "README.md": "# comp\n",
    "bin/run.sh": ("100755", "#!/bin/sh\necho run\n"),
    "docs/link.md": ("120000", "../README.md"),
    "src/pkg/deep/a.py": "a = 1\n",
    "data/blob.bin": bytes(range(256)),
}


def snapshot(root: Path) -> dict[str, tuple[str, bytes | str, bool]]:
    """Every entry under ``root``: (kind, content or link target, executable)."""
    out: dict[str, tuple[str, bytes | str, bool]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p), False)
            elif p.is_dir():
                out[rel] = ("dir", b"", False)
            else:
                out[rel] = ("file", p.read_bytes(), bool(p.stat().st_mode & stat.S_IXUSR))
    return out


def archive(bare: Path, commit: str, dest: Path) -> dict[str, tuple[str, bytes | str, bool]]:
    data = git(f"--git-dir={bare}", "archive", "--format=tar", commit).stdout
    dest.mkdir()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="tar")
    return snapshot(dest)


def assert_read_only(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) & 0o222 == 0, dirpath
        for name in filenames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                assert stat.S_IMODE(p.stat().st_mode) & 0o222 == 0, p


@pytest.fixture
def comp(make_remote: MakeRemote) -> tuple[Upstream, str]:
    bare, url = make_remote(name="x/comp.git")
    up = Upstream(bare)
    up.commit("refs/heads/main", FILES)
    return up, url


def test_prepare_golang_and_flat_equal_git_archive(
    tmp_path: Path, http_git: GitHttpServer, comp: tuple[Upstream, str]
) -> None:
    up, url = comp
    src = make_store(tmp_path / "data", {"comp": {"type": "git", "url": url}}).source("comp")
    expected = archive(up.path, up.ref("refs/heads/main") or "", tmp_path / "archive")
    n_files = sum(1 for kind, _, _ in expected.values() if kind != "dir")

    golang = src.prepare("main", tmp_path / "go", "golang")
    assert golang.path == tmp_path / "go" / f"127.0.0.1:{http_git.port}" / "x" / "comp"
    assert golang.commit == up.ref("refs/heads/main") and golang.files == n_files
    assert snapshot(golang.path) == expected
    assert_read_only(golang.path)

    flat = src.prepare("main", tmp_path / "flat", "flat")
    assert flat.path == tmp_path / "flat" / "comp"
    assert snapshot(flat.path) == expected
    assert_read_only(flat.path)

    with pytest.raises(InvalidInput):
        src.prepare("main", tmp_path / "u", "unique")


def test_preparing_again_replaces_the_checkout(
    tmp_path: Path, comp: tuple[Upstream, str]
) -> None:
    up, url = comp
    src = make_store(tmp_path / "data", {"comp": {"type": "git", "url": url, "refresh": "0s"}}
                     ).source("comp")
    first = src.prepare("main", tmp_path / "ws", "golang")
    second_commit = up.commit("refs/heads/main", {"src/pkg/deep/a.py": None, "new.txt": "new\n"})
    second = src.prepare("main", tmp_path / "ws", "golang")  # fresh: it fetches first
    assert second.path == first.path and second.commit == second_commit
    assert snapshot(second.path) == archive(up.path, second_commit, tmp_path / "archive")
    assert not (second.path / "src" / "pkg").exists()
    assert_read_only(second.path)
    # An older revision can be prepared over it too.
    third = src.prepare(first.commit, tmp_path / "ws", "golang")
    assert (third.path / "src" / "pkg" / "deep" / "a.py").read_text() == "a = 1\n"


@pytest.mark.parametrize("order", ["outer-first", "inner-first"])
def test_nested_sources_collide_in_either_order(
    tmp_path: Path, make_remote: MakeRemote, comp: tuple[Upstream, str], order: str
) -> None:
    _up, outer_url = comp
    _bare, inner_url = make_remote(name="x/comp/sub.git")
    store = make_store(
        tmp_path / "data",
        {"outer": {"type": "git", "url": outer_url}, "inner": {"type": "git", "url": inner_url}},
    )
    first, second = ("outer", "inner") if order == "outer-first" else ("inner", "outer")
    root = tmp_path / "ws"
    placed = store.source(first).prepare("main", root, "golang")
    before = snapshot(placed.path)
    with pytest.raises(LayoutCollision) as info:
        store.source(second).prepare("main", root, "golang")
    message = str(info.value)
    assert f"'{first}'" in message and f"'{second}'" in message, message
    assert "x/comp" in message
    assert snapshot(placed.path) == before  # the first checkout is untouched
    # Under flat the two do not nest (comp, sub): both fit side by side.
    flat_a = store.source("outer").prepare("main", tmp_path / "flat", "flat")
    flat_b = store.source("inner").prepare("main", tmp_path / "flat", "flat")
    assert (flat_a.path.name, flat_b.path.name) == ("comp", "sub")


def test_two_sources_with_one_flat_name_collide(
    tmp_path: Path, make_remote: MakeRemote, comp: tuple[Upstream, str]
) -> None:
    _up, url_a = comp
    _bare, url_b = make_remote(name="y/comp.git")
    store = make_store(
        tmp_path / "data",
        {"a": {"type": "git", "url": url_a}, "b": {"type": "git", "url": url_b}},
    )
    store.source("a").prepare("main", tmp_path / "flat", "flat")
    with pytest.raises(LayoutCollision) as info:
        store.source("b").prepare("main", tmp_path / "flat", "flat")
    assert "'a'" in str(info.value) and "'b'" in str(info.value)


def test_prepare_a_local_source(tmp_path: Path) -> None:
    up = Upstream.init(tmp_path / "repos" / "notes.git")
    commit = up.commit("refs/heads/main", {"n.md": "note\n"})
    src: StoreSource = make_store(
        tmp_path / "data", {"notes": {"type": "local", "path": str(up.path)}}
    ).source("notes")
    prepared = src.prepare("main", tmp_path / "ws", "flat")
    assert prepared.path == tmp_path / "ws" / "notes" and prepared.commit == commit
    assert (prepared.path / "n.md").read_text() == "note\n"
    assert not (tmp_path / "data").exists()
