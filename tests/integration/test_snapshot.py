"""Snapshots (cup's ``View``) on real repositories: pinned to one commit whatever happens upstream,
read and streamed, listed and walked exactly as ``git ls-tree`` lists them, and materialized
read-only (in place, or under the golang/flat schemes). Sources: a bare repository served over
smart HTTP, and the same kind of repository used in place (``type: local``).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from revisor.core.snapshot import Snapshot
from revisor.errors import InvalidPath, PathNotFound
from revisor.vcs import EMPTY_TREE, EntryKind
from tests.integration.test_transactions_support import (
    Upstream,
    World,
    make_world,
    served_world,
)

pytestmark = pytest.mark.timeout(120)

FILES: dict[str, Any] = {
    "README.md": "hello\n",
    "bin/run.sh": ("100755", "#!/bin/sh\necho run\n"),
    "docs/guide/intro.md": "intro\n",
    "docs/guide/deep/nested.txt": "nested\n",
    "docs/link": ("120000", "guide/intro.md"),
    "dir with space/naïve %2F file.txt": "unicode, space and percent\n",
    "日本語.md": "こんにちは\n",
    "z-last.txt": "z\n",
    "A-upper.txt": "A\n",
    "_under.txt": "_\n",
    "empty.txt": "",
}


@pytest.fixture(params=["http", "local"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[World]:
    if request.param == "http":
        http_git = request.getfixturevalue("http_git")
        root = request.getfixturevalue("http_git_root")
        w = served_world(http_git, root, tmp_path, FILES)
    else:
        w = make_world("local", tmp_path, FILES)
    try:
        yield w
    finally:
        w.close()


def _walk_files(snap: Snapshot, top: str = "") -> set[str]:
    found = set()
    for dirpath, _dirs, files in snap.walk(top):
        for name in files:
            found.add(f"{dirpath}/{name}" if dirpath else name)
    return found


# -- pinned ------------------------------------------------------------------------------------
def test_view_at_main_returns_exactly_the_seeded_files(world: World) -> None:
    snap = world.source.view("main")
    assert snap.commit_id == world.upstream.ref("refs/heads/main")
    assert _walk_files(snap) == set(world.upstream.ls_tree("main")) == set(FILES)
    for path, spec in FILES.items():
        content = spec[1] if isinstance(spec, tuple) else spec
        assert snap.read(path) == content.encode()


def test_a_snapshot_keeps_answering_from_its_commit_after_the_branch_moves(world: World) -> None:
    snap = world.source.view("main")
    pinned = snap.commit_id
    moved = world.upstream.commit(
        "refs/heads/main", {"README.md": "changed upstream\n", "z-last.txt": None,
                            "new.txt": "new\n"}
    )
    world.source.stored.refresh()  # the mirror follows the remote (a no-op for a local source)
    assert world.mirror_refs("refs/heads/")["refs/heads/main"] == moved

    assert snap.commit_id == pinned
    assert snap.read("README.md") == b"hello\n"
    assert snap.exists("z-last.txt") and not snap.exists("new.txt")
    assert "z-last.txt" in snap.listdir()
    with snap.open("README.md") as fh:
        assert fh.read() == b"hello\n"

    fresh = world.source.view("main")
    assert fresh.commit_id == moved
    assert fresh.read("README.md") == b"changed upstream\n"
    assert not fresh.exists("z-last.txt") and fresh.exists("new.txt")

    # Even a history rewritten upstream (the pinned commit unreachable, its refs pruned) does
    # not take the snapshot's objects away.
    world.upstream.commit("refs/heads/main", {"other.txt": "x\n"}, parent=None)
    world.source.stored.refresh()
    assert snap.read("docs/guide/deep/nested.txt") == b"nested\n"
    assert _walk_files(snap) == set(FILES)


def test_a_view_of_a_commit_id_or_a_tag_is_pinned_to_it(world: World) -> None:
    first = world.upstream.ref("refs/heads/main")
    assert first is not None
    world.upstream.git("tag", "v1", first)
    world.upstream.commit("refs/heads/main", {"README.md": "two\n"})
    world.source.stored.refresh()
    assert world.source.view(first).read("README.md") == b"hello\n"
    assert world.source.view("v1").commit_id == first
    assert world.source.view("main").read("README.md") == b"two\n"


# -- reading -----------------------------------------------------------------------------------
def test_read_exists_stat_and_listdir_agree_with_git(world: World) -> None:
    snap = world.source.view()
    tree = world.upstream.ls_tree("main")
    for path, (mode, oid) in tree.items():
        st = snap.stat(path)
        assert (st.path, f"{st.mode:o}", st.id) == (path, mode, oid)
        size = int(world.upstream.git("cat-file", "-s", oid).strip())
        assert st.size == size
        assert snap.exists(path)
    assert snap.stat("bin/run.sh").kind is EntryKind.FILE and snap.stat("bin/run.sh").mode == (
        0o100755
    )
    assert snap.stat("docs/link").kind is EntryKind.SYMLINK
    assert snap.read("docs/link") == b"guide/intro.md"  # the target, never followed
    assert snap.stat("docs").kind is EntryKind.DIR
    assert snap.stat("").kind is EntryKind.DIR and snap.stat("").id != EMPTY_TREE
    assert snap.read("empty.txt") == b""
    assert snap.exists("") and snap.exists("docs/guide") and not snap.exists("nope")

    # Listing is sorted, whatever git's tree order.
    assert snap.listdir() == sorted(
        ["README.md", "bin", "docs", "dir with space", "日本語.md", "z-last.txt",
         "A-upper.txt", "_under.txt", "empty.txt"]
    )
    assert snap.listdir("docs") == ["guide", "link"]
    assert snap.listdir("dir with space") == ["naïve %2F file.txt"]
    assert snap.read("dir with space/naïve %2F file.txt") == b"unicode, space and percent\n"
    assert snap.read("日本語.md") == "こんにちは\n".encode()


def test_reading_what_is_not_there_or_not_a_file(world: World) -> None:
    snap = world.source.view()
    with pytest.raises(PathNotFound):
        snap.read("missing.txt")
    with pytest.raises(PathNotFound):
        snap.read("docs")  # a directory is not a file
    with pytest.raises(PathNotFound):
        snap.open("docs/guide/missing")
    with pytest.raises(PathNotFound):
        snap.listdir("README.md")
    with pytest.raises(PathNotFound):
        snap.stat("docs/nope")
    for bad in ("../etc/passwd", "/etc/passwd", "docs/../README.md", ".git/config", "a\0b"):
        with pytest.raises(InvalidPath):
            snap.read(bad)
    with pytest.raises(InvalidPath):
        snap.listdir("..")
    with pytest.raises(InvalidPath):
        snap.exists("../x")


def test_walk_is_top_down_and_matches_git_ls_tree(world: World) -> None:
    snap = world.source.view()
    walked = list(snap.walk())
    seen: set[str] = set()
    for dirpath, dirs, files in walked:
        if dirpath:
            parent = dirpath.rpartition("/")[0]
            assert parent in seen  # its parent came first
        seen.add(dirpath)
        assert dirs == sorted(dirs) and files == sorted(files)
    assert _walk_files(snap) == set(world.upstream.ls_tree("main"))
    assert ("docs", ["guide"], ["link"]) in walked  # a symlink is listed, never followed
    dirs_from_git = {
        line for line in world.upstream.git("ls-tree", "-r", "-d", "--name-only", "main")
        .splitlines()
    }
    assert {d for d, _, _ in walked} == dirs_from_git | {""}
    assert _walk_files(snap, "docs") == {p for p in FILES if p.startswith("docs/")}


def test_open_streams_a_file(world: World) -> None:
    snap = world.source.view()
    with snap.open("docs/guide/intro.md") as fh:
        assert fh.read(3) == b"int"
        assert fh.read() == b"ro\n"
        assert fh.read() == b""
    fh = snap.open("README.md")
    fh.close()
    assert fh.closed


def test_callback_and_context_manager_forms(world: World) -> None:
    head = world.upstream.ref("refs/heads/main")
    assert world.source.view("main", lambda s: (s.commit_id, s.read("README.md"))) == (
        head, b"hello\n"
    )

    class Boom(Exception):
        pass

    def fails(s: Snapshot) -> None:
        s.read("README.md")
        raise Boom("from the callback")

    with pytest.raises(Boom, match="from the callback"):
        world.source.view("main", fails)
    with world.source.view("main") as snap:
        assert snap.read("z-last.txt") == b"z\n"


# -- materializing -----------------------------------------------------------------------------
def _assert_read_only_copy(root: Path) -> None:
    for path, spec in FILES.items():
        target = root / path
        if isinstance(spec, tuple) and spec[0] == "120000":
            assert target.is_symlink() and os.readlink(target) == spec[1]
            continue
        content = spec[1] if isinstance(spec, tuple) else spec
        assert target.read_bytes() == content.encode()
        mode = stat.S_IMODE(target.stat().st_mode)
        assert mode & 0o222 == 0, path
        assert bool(mode & 0o100) == (isinstance(spec, tuple) and spec[0] == "100755")
    assert stat.S_IMODE(root.stat().st_mode) & 0o222 == 0
    if os.geteuid() == 0:
        return  # root writes through any mode
    with pytest.raises(PermissionError):
        (root / "README.md").write_text("changed")
    with pytest.raises(PermissionError):
        (root / "new-file").write_text("x")


def _writable(root: Path) -> None:
    # so that pytest can remove tmp_path afterwards
    for dirpath, dirnames, _ in os.walk(root):
        os.chmod(dirpath, 0o755)  # noqa: S103
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)  # noqa: S103


def test_materialize_read_only(world: World, tmp_path: Path) -> None:
    snap = world.source.view()
    dest = snap.materialize(tmp_path / "out")
    try:
        assert dest == tmp_path / "out"
        _assert_read_only_copy(dest)
        files = {str(p.relative_to(dest)) for p in dest.rglob("*") if not p.is_dir()
                 or p.is_symlink()}
        assert files == set(FILES)
    finally:
        _writable(tmp_path / "out")

    sub = snap.materialize(tmp_path / "sub", path="docs/guide")
    try:
        assert sorted(str(p.relative_to(sub)) for p in sub.rglob("*")) == [
            "deep", "deep/nested.txt", "intro.md"]
    finally:
        _writable(sub)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        snap.materialize(tmp_path / "busy")
    with pytest.raises(InvalidPath):
        snap.materialize(tmp_path / "bad", path="../x")


@pytest.mark.parametrize("scheme", ["golang", "flat"])
def test_materialize_with_a_scheme(world: World, tmp_path: Path, scheme: str) -> None:
    snap = world.source.view()
    root = tmp_path / "prepared"
    dest = snap.materialize(root, scheme=scheme)
    try:
        rel = dest.relative_to(root).as_posix()
        if world.kind == "http":
            port = world.url.split(":")[2].split("/")[0] if world.url else ""
            assert rel == {"golang": f"127.0.0.1:{port}/proj", "flat": "proj"}[scheme]
        else:
            project = str(world.upstream.path).lstrip("/").removesuffix(".git")
            assert rel == {"golang": f"localhost/{project}", "flat": "upstream"}[scheme]
        _assert_read_only_copy(dest)
    finally:
        _writable(root)


# -- a big file --------------------------------------------------------------------------------
_MB = 1 << 20
_PATTERN = bytes(range(256)) * 4096  # 1 MiB


def _chunk(i: int) -> bytes:
    k = (i * 7) % 256
    return _PATTERN[k:] + _PATTERN[:k]


def _git_children() -> list[int]:
    """Live (not zombie) git processes whose parent is this process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and cmd[0].endswith(b"git"):
            found.append(int(entry))
    return sorted(found)


def write_big_file(path: Path, megabytes: int) -> str:
    """A binary file of ``megabytes`` MiB written in 1 MiB chunks; returns its sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for i in range(megabytes):
            block = _chunk(i)
            digest.update(block)
            fh.write(block)
    return digest.hexdigest()


@pytest.mark.slow
def test_a_100mb_file_is_streamed_in_chunks(tmp_path: Path) -> None:
    up = Upstream.init(tmp_path / "upstream.git", {})
    big = tmp_path / "big.bin"
    want = write_big_file(big, 100)
    blob = up.write_blob(big)
    big.unlink()
    up.commit("refs/heads/main", {"big.bin": blob, "README.md": "hi\n"}, parent=None)
    world = make_world("local", tmp_path, upstream=up.path)
    try:
        snap = world.source.view()
        assert snap.stat("big.bin").size == 100 * _MB
        digest = hashlib.sha256()
        total = 0
        tracemalloc.start()
        try:
            with snap.open("big.bin") as fh:
                while block := fh.read(_MB):
                    digest.update(block)
                    total += len(block)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert total == 100 * _MB
        assert digest.hexdigest() == want
        assert peak < 8 * _MB, f"peak {peak / _MB:.1f} MiB while streaming 100 MiB"

        # closing a stream half-way stops the process streaming it, without an error
        before = _git_children()
        with snap.open("big.bin") as fh:
            assert fh.read(10) == _chunk(0)[:10]
            assert len(_git_children()) == len(before) + 1
        assert _git_children() == before
    finally:
        world.close()
