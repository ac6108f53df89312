"""Broken mirrors found and repaired by ``doctor``, without stampedes and without losing
Revisor's own refs; and maintenance that keeps everything ``refs/revisor/*`` needs.

Each corruption is made by hand the way a killed process or a bad disk leaves it (a deleted or
empty HEAD, old ``*.lock`` files, a truncated object or pack); the repaired mirror is checked with
``git fsck`` and ``for-each-ref`` against the remote.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from revisor.errors import RemoteUnavailable
from revisor.store.maintenance import maintain
from revisor.store.mirror import Mirror
from revisor.store.recovery import DoctorReport, Finding
from revisor.store.store import StoreSource
from tests.integration.test_store_support import (
    Upstream,
    fsck,
    git,
    make_store,
    mirror_commit,
    mirror_refs,
    remote_refs,
)
from tests.support.fixtures import MakeRemote
from tests.support.githttp import GitHttpServer

pytestmark = pytest.mark.timeout(60)

OLD = time.time() - 3600  # an hour ago: a lock this old was left by a killed process


class Case:
    """A mirror fetched from an HTTP remote whose HEAD is ``trunk``, with Revisor's refs in it."""

    def __init__(self, tmp_path: Path, url: str, up: Upstream) -> None:
        self.url = url
        self.up = up
        self.data = tmp_path / "data"
        self.src = make_store(self.data, {"app": {"type": "git", "url": url}}).source("app")
        self.src.refresh()  # the first refresh clones: its objects arrive in one pack
        # a later, small fetch leaves its objects loose (the loose-object damage needs some)
        up.commit("refs/heads/trunk", {"src/c.py": "c = 3\n"})
        self.src.refresh()
        assert self.src.mirror is not None
        self.mirror: Mirror = self.src.mirror
        self.path = self.mirror.path
        repo = self.src.repository
        self.revisor = {
            # A commit made only here (loose objects), and a pin on upstream history.
            "refs/revisor/keep": mirror_commit(repo, "refs/revisor/keep", {"keep.txt": "mine\n"}),
            "refs/revisor/base": up.ref("refs/heads/trunk") or "",
            # A proposal on top of upstream history, as the layers above make them.
            "refs/revisor/proposal": mirror_commit(
                repo, "refs/revisor/proposal", {"README.md": "proposed\n"},
                parent=up.ref("refs/heads/trunk"),
            ),
        }
        repo.set_ref("refs/revisor/base", self.revisor["refs/revisor/base"], expected=None)

    def loose_object(self, oid: str) -> Path:
        return self.path / "objects" / oid[:2] / oid[2:]

    def asides(self) -> list[Path]:
        return sorted(self.path.parent.glob(self.path.name + ".corrupt-*"))

    def assert_sound(self) -> None:
        fsck(self.path)
        assert mirror_refs(self.path, "refs/heads/") | mirror_refs(self.path, "refs/tags/") == (
            remote_refs(self.url)
        )
        assert mirror_refs(self.path, "refs/revisor/") == self.revisor
        head = git(f"--git-dir={self.path}", "symbolic-ref", "HEAD").stdout.decode().strip()
        assert head == "refs/heads/trunk"
        assert self.src.resolve("HEAD") == self.up.ref("refs/heads/trunk")


@pytest.fixture
def case(tmp_path: Path, make_remote: MakeRemote) -> Case:
    bare, url = make_remote({"README.md": "hello\n", "src/a.py": "a = 1\n"}, branch="trunk")
    up = Upstream(bare)
    c = up.commit("refs/heads/trunk", {"src/b.py": "b = 2\n"})
    up.tag("v1", c, annotated=True)
    up.commit("refs/heads/dev", {"dev.txt": "dev\n"})
    return Case(tmp_path, url, up)


def by_check(report: DoctorReport) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in report.findings:
        out.setdefault(f.check, []).append(f)
    return out


# -- 8. corruption and recovery ------------------------------------------------------------------
def test_a_healthy_mirror_has_no_findings(case: Case) -> None:
    report = case.src.doctor()
    assert report.findings == [] and report.healthy
    assert case.asides() == []


@pytest.mark.parametrize("damage", ["deleted", "empty", "garbage"])
def test_a_missing_or_empty_head_is_rewritten(case: Case, damage: str) -> None:
    head = case.path / "HEAD"
    if damage == "deleted":
        head.unlink()
    else:
        head.write_text("" if damage == "empty" else "not a ref\n")
    report = case.src.doctor()
    checks = by_check(report)
    assert list(checks) == ["HEAD"] and report.healthy
    assert checks["HEAD"][0].repaired
    case.assert_sound()  # HEAD names the remote's HEAD branch again, not a guess
    assert case.asides() == []  # repaired in place, no rebuild


def test_stale_lock_files_are_removed_and_fresh_ones_kept(case: Case) -> None:
    stale = [case.path / "index.lock", case.path / "packed-refs.lock",
             case.path / "refs" / "heads" / "x.lock"]
    for lock in stale:
        lock.write_text("")
        os.utime(lock, (OLD, OLD))
    young = case.path / "refs" / "heads" / "busy.lock"
    young.write_text("")  # a writer holding this right now
    report = case.src.doctor()
    found = {f.problem for f in by_check(report)["locks"]}
    assert found == {f"stale lock {p.relative_to(case.path)}" for p in stale}
    assert report.healthy and list(by_check(report)) == ["locks"]
    assert not any(p.exists() for p in stale) and young.exists()
    young.unlink()
    case.assert_sound()
    # With the stale locks gone, git can write refs again.
    git(f"--git-dir={case.path}", "pack-refs", "--all")


@pytest.mark.parametrize("damage", ["HEAD", "locks"])
def test_what_a_killed_process_leaves_does_not_stop_the_next_refresh(
    case: Case, damage: str
) -> None:
    if damage == "HEAD":
        (case.path / "HEAD").unlink()
    else:
        for rel in ("packed-refs.lock", "refs/heads/dev.lock", "refs/heads/trunk.lock"):
            lock = case.path / rel
            lock.write_text("")
            os.utime(lock, (OLD, OLD))
    moved = case.up.commit("refs/heads/trunk", {"moved.txt": "m\n"})
    case.up.delete("refs/heads/dev")
    result = case.src.refresh()
    assert result is not None and result.fetched
    assert {c.ref for c in result.changes} == {"refs/heads/trunk", "refs/heads/dev"}
    assert case.src.resolve("trunk") == moved
    assert not list(case.path.rglob("*.lock"))
    case.assert_sound()
    assert case.src.doctor().findings == []


def _truncate(path: Path) -> None:
    os.chmod(path, 0o644)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def damage_loose_object(case: Case) -> tuple[Path, list[str]]:
    # The commit refs/revisor/proposal sits on: the proposal's own objects are intact, and the
    # remote has a sound copy of the rest, so it is saved.
    oid = case.up.ref("refs/heads/trunk") or ""
    obj = case.loose_object(oid)
    assert obj.is_file(), "the fetch should have left loose objects"
    _truncate(obj)
    return obj.relative_to(case.path), []


def damage_pack(case: Case) -> tuple[Path, list[str]]:
    git(f"--git-dir={case.path}", "repack", "-a", "-d", "-q")
    # The only copies of refs/revisor/keep's and .../proposal's own objects are now in the pack
    # about to be damaged: they are lost (and reported). A commit made after the repack is loose
    # and intact: it is kept, and so is refs/revisor/base, whose objects the remote has.
    del case.revisor["refs/revisor/keep"], case.revisor["refs/revisor/proposal"]
    case.revisor["refs/revisor/later"] = mirror_commit(
        case.src.repository, "refs/revisor/later", {"later.txt": "later\n"}
    )
    packs = list((case.path / "objects" / "pack").glob("*.pack"))
    assert len(packs) == 1
    _truncate(packs[0])
    return packs[0].relative_to(case.path), ["refs/revisor/keep", "refs/revisor/proposal"]


@pytest.mark.parametrize("damage", [damage_loose_object, damage_pack],
                         ids=["loose-object", "pack"])
def test_damaged_objects_rebuild_the_mirror_keeping_revisor_refs(
    case: Case, damage: Callable[[Case], tuple[Path, list[str]]]
) -> None:
    damaged, lost = damage(case)
    before = (case.path / damaged).read_bytes()
    report = case.src.doctor()
    checks = by_check(report)
    assert list(checks) == ["objects"] and report.healthy
    finding = checks["objects"][0]
    assert finding.repaired and "rebuilt" in finding.action
    for ref in lost:
        assert ref in finding.action
    case.assert_sound()
    # The damaged copy is kept aside, untouched.
    (aside,) = case.asides()
    assert (aside / damaged).read_bytes() == before
    assert mirror_refs(aside, "refs/revisor/").keys() >= set(case.revisor) | set(lost)
    # The store keeps working on the rebuilt mirror.
    new = case.up.commit("refs/heads/trunk", {"after.txt": "after\n"})
    case.src.refresh()
    assert case.src.resolve("trunk") == new


def test_a_second_rebuild_right_away_is_refused(case: Case) -> None:
    damage_loose_object(case)
    case.src.doctor()
    assert len(case.asides()) == 1
    # Damaged again at once: rebuilding again now would be a stampede on the remote.
    oid = case.up.ref("refs/heads/dev") or ""
    obj = case.loose_object(oid)
    if not obj.exists():  # the rebuild's fetch may have packed it
        obj = next((case.path / "objects" / "pack").glob("*.pack"))
    _truncate(obj)
    with pytest.raises(RemoteUnavailable) as info:
        case.src.doctor()
    assert info.value.retry_after is not None and info.value.retry_after > 0
    assert len(case.asides()) == 1  # nothing was moved
    report = case.src.doctor(repair=False)
    assert not report.healthy and by_check(report)["objects"][0].repaired is False


def _doctor_in_child(data_dir: str, url: str, go: Any, out: Any) -> None:
    src = make_store(Path(data_dir), {"app": {"type": "git", "url": url}}).source("app")
    out.put(("ready", os.getpid()))
    if not go.wait(30):
        out.put(("error", "never started"))
        return
    try:
        report = src.doctor()
        out.put(("ok", sorted(f.check for f in report.findings), report.healthy))
    except Exception as exc:  # reported to the parent, which fails the test
        out.put(("error", repr(exc)))


def test_two_processes_doctoring_a_broken_mirror_rebuild_it_once(
    case: Case, http_git: GitHttpServer
) -> None:
    damage_loose_object(case)
    http_git.clear_requests()
    http_git.delay_next(1, 1.0, service="info/refs")  # a slow rebuild: both are waiting
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_doctor_in_child, args=(str(case.data), case.url, go, out))
             for _ in range(2)]
    for p in procs:
        p.start()
    try:
        assert [out.get(timeout=30)[0] for _ in procs] == ["ready", "ready"]
        go.set()
        results = sorted(out.get(timeout=40) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert results == [("ok", [], True), ("ok", ["objects"], True)], results
    assert len(case.asides()) == 1
    case.assert_sound()


def test_a_missing_mirror_is_fetched_by_doctor(tmp_path: Path, make_remote: MakeRemote) -> None:
    _bare, url = make_remote(branch="trunk")
    src: StoreSource = make_store(tmp_path / "data", {"app": {"type": "git", "url": url}}).source(
        "app"
    )
    report = src.doctor()
    assert [f.check for f in report.findings] == ["exists"] and report.healthy
    assert src.mirror is not None and mirror_refs(src.mirror.path) == remote_refs(url)


# -- 9. maintenance ------------------------------------------------------------------------------
def _commit_graph_chunks(path: Path) -> bytes:
    info = path / "objects" / "info"
    single = info / "commit-graph"
    if single.exists():
        return single.read_bytes()
    chain = info / "commit-graphs"
    return b"".join(p.read_bytes() for p in sorted(chain.glob("*.graph")))


def test_maintain_packs_refs_and_writes_a_commit_graph_with_bloom_filters(case: Case) -> None:
    for i in range(5):
        case.up.commit(f"refs/heads/topic/{i}", {f"t{i}.txt": f"{i}\n"})
    case.src.refresh()
    loose_refs = list((case.path / "refs" / "heads").rglob("*"))
    assert any(p.is_file() for p in loose_refs)
    result = case.src.maintain()
    assert result is not None
    assert "commit-graph --changed-paths" in result.steps
    assert result.loose_objects_after == 0 and result.packs_after >= 1
    graph = _commit_graph_chunks(case.path)
    assert graph[:4] == b"CGPH" and b"BIDX" in graph and b"BDAT" in graph
    assert not any(p.is_file() for p in (case.path / "refs").rglob("*"))  # all packed
    packed = (case.path / "packed-refs").read_text()
    assert "refs/revisor/keep" in packed and "refs/heads/topic/4" in packed
    case.assert_sound()
    verify = git(f"--git-dir={case.path}", "commit-graph", "verify", check=False)
    assert verify.returncode == 0, verify.stderr


def test_maintain_never_prunes_what_only_revisor_refs_reach(case: Case) -> None:
    # A branch pinned by Revisor, then deleted upstream: only refs/revisor/pin reaches it.
    gone = case.up.commit("refs/heads/short-lived", {"s.txt": "s\n"})
    case.src.refresh()
    case.src.repository.set_ref("refs/revisor/pin", gone, expected=None)
    case.revisor["refs/revisor/pin"] = gone
    case.up.delete("refs/heads/short-lived")
    case.src.refresh()
    assert "refs/heads/short-lived" not in mirror_refs(case.path)
    # Truly unreachable: a blob nobody refers to.
    junk = git(f"--git-dir={case.path}", "hash-object", "-w", "--stdin",
               input=b"junk nobody needs\n").stdout.decode().strip()

    result = maintain(case.mirror, prune_after="now")
    assert "gc --prune=now" in result.steps

    assert git(f"--git-dir={case.path}", "cat-file", "-e", junk, check=False).returncode != 0
    for ref, oid in case.revisor.items():
        assert git(f"--git-dir={case.path}", "rev-parse", ref).stdout.decode().strip() == oid
        listing = git(f"--git-dir={case.path}", "ls-tree", "-r", oid).stdout.decode()
        for line in listing.splitlines():
            blob = line.split()[2]
            git(f"--git-dir={case.path}", "cat-file", "-e", blob)
    assert git(f"--git-dir={case.path}", "show", f"{gone}:s.txt").stdout == b"s\n"
    case.assert_sound()
