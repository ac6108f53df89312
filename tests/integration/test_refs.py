"""Refs: one-pass listing, and compare-and-swap that holds across threads and processes."""

from __future__ import annotations

import multiprocessing
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from revisor.errors import GitFailure, InvalidRefName, RefConflict
from revisor.vcs import RefUpdate, Repository, Signature

SIG = Signature.now("Test", "test@example.com")


def make_commits(repo: Repository, n: int) -> list[str]:
    out = []
    parent = None
    for i in range(n):
        b = repo.builder(parent)
        b.write("f.txt", f"{i}\n".encode())
        c = b.commit(f"c{i}", SIG)
        assert c is not None
        out.append(c)
        parent = c
    return out


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(tmp_path / "refs.git")


def git_refs(repo: Repository, prefix: str = "refs/") -> dict[str, str]:
    out = subprocess.run(
        ["git", f"--git-dir={repo.git_dir}", "for-each-ref", "--format=%(objectname) %(refname)",
         prefix],
        capture_output=True, check=True,
    ).stdout.decode()
    return {name: oid for oid, name in (line.split(" ", 1) for line in out.splitlines())}


def test_create_update_delete_with_cas(repo: Repository) -> None:
    a, b = make_commits(repo, 2)
    repo.set_ref("refs/heads/main", a, expected=None)
    assert repo.ref("refs/heads/main") == a
    with pytest.raises(RefConflict) as info:
        repo.set_ref("refs/heads/main", b, expected=None)  # must not exist, but does
    assert info.value.actual == a and info.value.expected is None
    repo.set_ref("refs/heads/main", b, expected=a)
    with pytest.raises(RefConflict) as info:
        repo.set_ref("refs/heads/main", a, expected=a)  # stale expectation
    assert info.value.actual == b
    with pytest.raises(RefConflict):
        repo.delete_ref("refs/heads/main", expected=a)
    repo.delete_ref("refs/heads/main", expected=b)
    assert repo.ref("refs/heads/main") is None
    with pytest.raises(RefConflict) as info:
        repo.delete_ref("refs/heads/main", expected=b)
    assert info.value.actual is None
    assert git_refs(repo) == {}


def test_multi_ref_update_is_all_or_nothing(repo: Repository) -> None:
    a, b = make_commits(repo, 2)
    repo.set_ref("refs/revisor/one", a, expected=None)
    repo.set_ref("refs/revisor/two", a, expected=None)
    with pytest.raises(RefConflict) as info:
        repo.update_refs([
            RefUpdate("refs/revisor/one", b, a),       # would succeed
            RefUpdate("refs/revisor/two", b, b),       # stale
            RefUpdate("refs/revisor/three", b, None),  # would succeed
        ])
    assert info.value.ref == "refs/revisor/two"
    assert git_refs(repo) == {"refs/revisor/one": a, "refs/revisor/two": a}
    repo.update_refs([
        RefUpdate("refs/revisor/one", b, a),
        RefUpdate("refs/revisor/two", None, a),
        RefUpdate("refs/revisor/three", b, None),
    ])
    assert git_refs(repo) == {"refs/revisor/one": b, "refs/revisor/three": b}


def test_invalid_ref_names_and_objects(repo: Repository) -> None:
    (a,) = make_commits(repo, 1)
    for bad in ("refs/heads/a..b", "refs/heads/x.lock", "--upload-pack=x", "refs/heads/a b",
                "HEAD", "main"):
        with pytest.raises((InvalidRefName, ValueError)):
            repo.set_ref(bad, a, expected=None)
    with pytest.raises(GitFailure):
        repo.set_ref("refs/heads/x", "1" * 40, expected=None)  # no such object
    assert git_refs(repo) == {}


def test_refs_written_are_what_git_sees_and_packed_refs_are_read(repo: Repository) -> None:
    commits = make_commits(repo, 3)
    for i, c in enumerate(commits):
        repo.set_ref(f"refs/heads/b{i}", c, expected=None)
    subprocess.run(["git", f"--git-dir={repo.git_dir}", "pack-refs", "--all"], check=True)
    assert repo.refs("refs/heads/") == git_refs(repo, "refs/heads/")
    # CAS still works on a packed ref, and deleting it removes it from packed-refs
    repo.set_ref("refs/heads/b0", commits[2], expected=commits[0])
    repo.delete_ref("refs/heads/b1", expected=commits[1])
    assert repo.refs() == git_refs(repo)


def test_symbolic_refs_are_listed_by_target(repo: Repository) -> None:
    (a,) = make_commits(repo, 1)
    repo.set_ref("refs/remotes/origin/main", a, expected=None)
    subprocess.run(["git", f"--git-dir={repo.git_dir}", "symbolic-ref",
                    "refs/remotes/origin/HEAD", "refs/remotes/origin/main"], check=True)
    assert repo.refs("refs/remotes/") == {"refs/remotes/origin/HEAD": a,
                                          "refs/remotes/origin/main": a}


def test_thread_race_exactly_one_winner(repo: Repository) -> None:
    base, *rest = make_commits(repo, 9)
    repo.set_ref("refs/heads/main", base, expected=None)

    def attempt(c: str) -> bool:
        try:
            repo.set_ref("refs/heads/main", c, expected=base)
            return True
        except RefConflict:
            return False

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, rest))
    assert results.count(True) == 1
    assert repo.ref("refs/heads/main") == rest[results.index(True)]


def _increment(git_dir: str, commits: list[str], rounds: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Advance refs/heads/counter along ``commits`` with CAS; report each successful step."""
    repo = Repository.open(git_dir)
    won = []
    for _ in range(rounds):
        while True:
            current = repo.ref("refs/heads/counter")
            assert current is not None
            idx = commits.index(current)
            if idx + 1 >= len(commits):
                queue.put(won)
                return
            try:
                repo.set_ref("refs/heads/counter", commits[idx + 1], expected=current)
                won.append(idx + 1)
                break
            except RefConflict:
                continue
    queue.put(won)


def test_process_race_no_lost_update(repo: Repository) -> None:
    """Two processes advancing one ref by CAS: every step is taken exactly once."""
    commits = make_commits(repo, 81)
    repo.set_ref("refs/heads/counter", commits[0], expected=None)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_increment, args=(str(repo.git_dir), commits, 40, queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    wins = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    steps = sorted(wins[0] + wins[1])
    assert steps == list(range(1, 81))
    assert repo.ref("refs/heads/counter") == commits[80]


def test_a_held_lock_is_waited_for_then_reported(repo: Repository, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from revisor.vcs import refs as refs_module

    a, b = make_commits(repo, 2)
    repo.set_ref("refs/heads/main", a, expected=None)
    lock = repo.git_dir / "refs" / "heads" / "main.lock"
    lock.write_text(b + "\n")
    monkeypatch.setattr(refs_module, "LOCK_WAIT_SECONDS", 0.2)
    with pytest.raises(GitFailure) as info:
        repo.set_ref("refs/heads/main", b, expected=a)
    assert "locked" in str(info.value)
    assert repo.ref("refs/heads/main") == a
    lock.unlink()
    repo.set_ref("refs/heads/main", b, expected=a)
    assert repo.ref("refs/heads/main") == b


def test_fifty_thousand_refs_in_one_pass(repo: Repository) -> None:
    (a,) = make_commits(repo, 1)
    # write packed-refs directly, as `git pack-refs` would (50k loose refs cost minutes of fs time)
    names = sorted(f"refs/revisor/workspaces/{i // 100}/user{i}" for i in range(50_000))
    packed = "# pack-refs with: peeled fully-peeled sorted \n" + "".join(
        f"{a} {n}\n" for n in names
    )
    (repo.git_dir / "packed-refs").write_text(packed)
    assert len(git_refs(repo, "refs/revisor/")) == 50_000
    repo.set_ref("refs/heads/main", a, expected=None)  # one loose ref beside the packed ones
    listed = repo.refs("refs/revisor/")
    assert len(listed) == 50_000
    assert listed["refs/revisor/workspaces/499/user49999"] == a
    assert "refs/heads/main" not in listed
    assert repo.refs("refs/revisor/workspaces/7/") == {
        f"refs/revisor/workspaces/7/user{i}": a for i in range(700, 800)
    }
    # CAS on one packed ref among 50k
    repo.set_ref("refs/revisor/workspaces/7/user700", repo.resolve("main"), expected=a)
