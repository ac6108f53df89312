"""A sync's merges are git's merges: each result is checked against ``git merge`` run in a
scratch clone of the source's repository (workspace and candidate refs fetched into it) — the
merged tree, which commits merge cleanly, and so which one a stopped sync advanced to."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from revisor.vcs import Signature
from tests.integration.test_candidates_support import (
    ALICE,
    BOB,
    CAROL,
    World,
    candidates,
    git,
    lines,
    scratch_clone,
    world,
)


class Scratch:
    """A non-bare clone where ``git merge`` gives the reference answer."""

    def __init__(self, w: World, path: Path) -> None:
        self.w = w
        self.path = scratch_clone(w, path)

    def refresh(self) -> None:
        git("-C", str(self.path), "fetch", "-q", "origin", "+refs/revisor/*:refs/revisor/*")

    def merge(self, ours: str, theirs: str) -> tuple[bool, str | None]:
        """``git merge --no-ff theirs`` on a detached ``ours``: (clean, merged tree or None)."""
        git("-C", str(self.path), "checkout", "-q", "--detach", "--force", ours)
        proc = subprocess.run(
            ["git", "-C", str(self.path), "merge", "-q", "--no-ff", "--no-edit", theirs],
            capture_output=True, check=False, timeout=60,
        )
        if proc.returncode != 0:
            git("-C", str(self.path), "merge", "--abort")
            return False, None
        return True, git("-C", str(self.path), "rev-parse", "HEAD^{tree}").strip()

    def tree(self, rev: str) -> str:
        return git("-C", str(self.path), "rev-parse", f"{rev}^{{tree}}").strip()


@pytest.fixture(params=["local", "git"])
def w(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    wo = world(request.param, tmp_path)
    try:
        yield wo
    finally:
        wo.close()


def test_clean_sync_tree_is_git_merge(w: World, tmp_path: Path) -> None:
    c = candidates(w)
    cand = c.create("compat-1", "Compat", ALICE)
    alice = c.workspace(cand.id, "alice", identity=ALICE)
    bob = c.workspace(cand.id, "bob", identity=BOB)
    # bob: a line far from alice's in the same file, and a rename of a file alice edits
    bob.write("a.txt", lines("a", l15="bob"), if_match=bob.etag("a.txt"))
    bob.move("docs/guide.md", "docs/handbook.md", if_match=bob.etag("docs/guide.md"))
    bob_head = bob.head()
    alice.write("a.txt", lines("a", l2="alice"), if_match=alice.etag("a.txt"))
    guide, etag = alice.read("docs/guide.md")
    alice.write("docs/guide.md", guide.replace(b"guide 5\n", b"alice's guide 5\n"),
                if_match=etag)
    alice.write("new.txt", b"alice's new file\n", if_match=None)
    assert alice.publish().published
    result = bob.sync()
    assert result.up_to_date and result.moved
    scratch = Scratch(w, tmp_path / "scratch")
    clean, tree = scratch.merge(bob_head, result.synced_to)
    assert clean and tree == scratch.tree(bob.head())
    assert bob.read("docs/handbook.md")[0].count(b"alice's guide 5") == 1


def test_stopped_sync_is_the_newest_commit_git_merges_cleanly(w: World, tmp_path: Path) -> None:
    c = candidates(w)
    cand = c.create("compat-2", "Compat", ALICE)
    alice = c.workspace(cand.id, "alice", identity=ALICE)
    carol = c.workspace(cand.id, "carol", identity=CAROL)
    bob = c.workspace(cand.id, "bob", identity=BOB)
    bob.write("b.txt", lines("b", l8="bob"), if_match=bob.etag("b.txt"))
    bob.write("c.txt", lines("c", l1="bob"), if_match=bob.etag("c.txt"))
    bob_head = bob.head()
    chain = []
    for ws, path, content in [
        (alice, "a.txt", lines("a", l1="alice")),
        (carol, "c.txt", lines("c", l12="carol")),   # same file as bob, other lines: clean
        (alice, "b.txt", lines("b", l8="alice")),    # bob's line: conflicts
        (carol, "README.md", b"carol\n"),
    ]:
        ws.sync()
        ws.write(path, content, if_match=ws.etag(path))
        published = ws.publish()
        assert published.commit is not None
        chain.append(published.commit)
    result = bob.sync()
    scratch = Scratch(w, tmp_path / "scratch")
    verdicts = [scratch.merge(bob_head, ci) for ci in chain]
    assert [ok for ok, _ in verdicts] == [True, True, False, False]
    assert result.synced_to == chain[1] and result.pending == tuple(chain[2:])
    assert verdicts[1][1] == scratch.tree(bob.head())
    assert [x.path for x in result.conflicts] == ["b.txt"]


def test_random_histories_sync_like_git(tmp_path: Path) -> None:
    """Users edit random lines of a few files, publish (or not) and sync; every merge a sync
    makes is compared with ``git merge`` of the same two commits."""
    rnd = random.Random(20261129)
    files = {f"{name}.txt": "".join(f"{name} line {i}\n" for i in range(80)) for name in "abc"}
    w = world("local", tmp_path / "w", files)
    try:
        c = candidates(w)
        cand = c.create("random-1", "Random", ALICE)
        users = {u: c.workspace(cand.id, u, identity=Signature.now(u, f"{u}@example.com"))
                 for u in ("ann", "ben", "cat")}
        scratch = Scratch(w, tmp_path / "scratch")
        compared = stopped = 0
        for _ in range(30):
            u = rnd.choice(sorted(users))
            ws = users[u]
            for _ in range(rnd.randint(1, 3)):
                path = rnd.choice(["a.txt", "b.txt", "c.txt"])
                data = bytearray(ws.read(path)[0]) if ws.exists(path) else bytearray()
                text = data.decode().splitlines(keepends=True) or ["\n"]
                i = rnd.randrange(len(text))
                text[i] = f"{u} {rnd.randint(0, 9)}\n"
                ws.write(path, "".join(text).encode(), if_match=ws.etag(path) or None)
            if rnd.random() < 0.5:
                ws.publish()
            other = users[rnd.choice(sorted(users))]
            before = other.head()
            result = other.sync()
            if result.moved and len(scratch_parents := _parents(w, other.head())) == 2:
                scratch.refresh()
                assert scratch_parents[0] == before
                clean, tree = scratch.merge(before, result.synced_to)
                assert clean and tree == scratch.tree(other.head())
                compared += 1
            if result.conflicts:  # git agrees the next commit does not merge; take theirs
                scratch.refresh()
                assert not scratch.merge(other.head(), result.pending[0])[0]
                stopped += 1
                assert other.resolve({x.path: "theirs" for x in result.conflicts}).done
        assert compared >= 5 and stopped >= 1, (compared, stopped)
    finally:
        w.close()


def _parents(w: World, rev: str) -> list[str]:
    return git(f"--git-dir={w.upstream.path}", "rev-list", "--parents", "-n", "1", rev).split()[1:]
