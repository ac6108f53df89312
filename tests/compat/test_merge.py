"""Merges, checked against git's own merge-ort on real histories.

Every scenario builds a history with the git CLI, merges through :class:`Repository` (one
long-lived ``git merge-tree --stdin`` process) and compares the verdict, the conflicted paths and
the merged tree with a separate ``git merge-tree --write-tree --name-only -z`` run.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pygit2
import pytest

from revisor.errors import GitFailure, InvalidRevision, RevisionNotFound
from revisor.vcs import FileMode, MergeResult, ObjectId, Repository
from revisor.vcs.merge import (
    SYNTHETIC_EMAIL,
    SYNTHETIC_MESSAGES,
    SYNTHETIC_NAME,
    MergeEngine,
    synthetic_commits,
)
from tests.gitutil import GitRepo, git_merge_tree


@dataclass(frozen=True)
class Exe:
    """An executable file's content."""

    data: str


@dataclass(frozen=True)
class Link:
    """A symbolic link's target."""

    target: str


Content = str | bytes | Exe | Link | None  # None: delete
Files = Mapping[str, Content]


def apply(g: GitRepo, files: Files) -> None:
    for rel, content in sorted(files.items(), key=lambda kv: kv[1] is not None):
        if content is None:
            g.remove(rel)
        elif isinstance(content, Exe):
            g.write(rel, content.data, executable=True)
        elif isinstance(content, Link):
            g.symlink(rel, content.target)
        else:
            g.write(rel, content)


def diverge(g: GitRepo, base: Files, ours: Files, theirs: Files) -> tuple[str, str]:
    """A base commit on main, then ``theirs`` on branch 'theirs' and ``ours`` on main."""
    apply(g, base)
    g.commit("base", allow_empty=True)
    g.git("checkout", "-q", "-b", "theirs")
    apply(g, theirs)
    t = g.commit("theirs", allow_empty=True)
    g.checkout("main")
    apply(g, ours)
    o = g.commit("ours", allow_empty=True)
    return o, t


@pytest.fixture
def repo(git_repo: GitRepo) -> Iterator[Repository]:
    r = Repository.open(git_repo.path)
    yield r
    r.close()


def check(
    g: GitRepo, repo: Repository, ours: str, theirs: str, *, unrelated: bool = False
) -> MergeResult:
    """Merge through Revisor and assert the result is exactly git's."""
    got = repo.merge(ours, theirs)
    clean, tree, conflicts = git_merge_tree(g, ours, theirs, allow_unrelated=unrelated)
    assert got == MergeResult(clean, ObjectId(tree), conflicts)
    return got


def blob(repo: Repository, tree: str, path: str) -> bytes:
    obj = repo.pg[tree].peel(pygit2.Tree)[path]
    assert isinstance(obj, pygit2.Blob)
    return obj.data


def mode(repo: Repository, tree: str, path: str) -> int:
    return int(repo.pg[tree].peel(pygit2.Tree)[path].filemode)


TEXT = "".join(f"line {i}\n" for i in range(1, 21))


def edit(text: str, line: int, new: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[line - 1] = new + "\n"
    return "".join(lines)


# -- scenarios --------------------------------------------------------------------------------
def test_disjoint_edits(git_repo: GitRepo, repo: Repository) -> None:
    o, t = diverge(
        git_repo, {"f": TEXT, "g": "g\n"}, {"f": edit(TEXT, 2, "ours")}, {"f": edit(TEXT, 18, "x")}
    )
    res = check(git_repo, repo, o, t)
    assert res.clean
    assert blob(repo, res.tree, "f") == edit(edit(TEXT, 2, "ours"), 18, "x").encode()


def test_same_line_edited_both_sides(git_repo: GitRepo, repo: Repository) -> None:
    o, t = diverge(git_repo, {"f": TEXT}, {"f": edit(TEXT, 5, "A")}, {"f": edit(TEXT, 5, "B")})
    res = check(git_repo, repo, o, t)
    assert (res.clean, res.conflicts) == (False, ("f",))
    merged = blob(repo, res.tree, "f").decode()
    assert f"<<<<<<< {o}\nA\n=======\nB\n>>>>>>> {t}\n" in merged


@pytest.mark.parametrize(("theirs", "clean"), [("same\n", True), ("different\n", False)])
def test_add_add(git_repo: GitRepo, repo: Repository, theirs: str, clean: bool) -> None:
    o, t = diverge(git_repo, {"x": "x\n"}, {"new": "same\n"}, {"new": theirs})
    res = check(git_repo, repo, o, t)
    assert res.clean is clean
    assert res.conflicts == (() if clean else ("new",))


@pytest.mark.parametrize("deleting_side", ["ours", "theirs"])
def test_modify_delete(git_repo: GitRepo, repo: Repository, deleting_side: str) -> None:
    delete: Files = {"f": None}
    modify: Files = {"f": edit(TEXT, 3, "changed")}
    ours, theirs = (delete, modify) if deleting_side == "ours" else (modify, delete)
    o, t = diverge(git_repo, {"f": TEXT, "keep": "k\n"}, ours, theirs)
    res = check(git_repo, repo, o, t)
    assert (res.clean, res.conflicts) == (False, ("f",))


def test_rename_delete(git_repo: GitRepo, repo: Repository) -> None:
    o, t = diverge(git_repo, {"f": TEXT}, {"f": None, "g": TEXT}, {"f": None})
    res = check(git_repo, repo, o, t)
    assert not res.clean
    assert "g" in res.conflicts


def test_rename_rename_to_different_names(git_repo: GitRepo, repo: Repository) -> None:
    o, t = diverge(git_repo, {"f": TEXT}, {"f": None, "g": TEXT}, {"f": None, "h": TEXT})
    res = check(git_repo, repo, o, t)
    assert not res.clean
    assert {"g", "h"} <= set(res.conflicts)


def test_rename_one_side_edit_other(git_repo: GitRepo, repo: Repository) -> None:
    o, t = diverge(
        git_repo, {"f": TEXT}, {"f": None, "sub/g": TEXT}, {"f": edit(TEXT, 10, "edited")}
    )
    res = check(git_repo, repo, o, t)
    assert res.clean
    assert blob(repo, res.tree, "sub/g") == edit(TEXT, 10, "edited").encode()
    assert "f" not in repo.pg[res.tree].peel(pygit2.Tree)


def test_mode_change_vs_content_change(git_repo: GitRepo, repo: Repository) -> None:
    o, t = diverge(git_repo, {"f": TEXT}, {"f": Exe(TEXT)}, {"f": edit(TEXT, 1, "top")})
    res = check(git_repo, repo, o, t)
    assert res.clean
    assert mode(repo, res.tree, "f") == FileMode.EXECUTABLE
    assert blob(repo, res.tree, "f") == edit(TEXT, 1, "top").encode()


def test_mode_changes_conflicting_both_sides(git_repo: GitRepo, repo: Repository) -> None:
    # base has no 'x'; both add it with the same content but different modes; and both make 'f'
    # executable while changing the same line differently.
    o, t = diverge(
        git_repo,
        {"f": TEXT},
        {"f": Exe(edit(TEXT, 4, "ours")), "x": "same\n"},
        {"f": Exe(edit(TEXT, 4, "theirs")), "x": Exe("same\n")},
    )
    res = check(git_repo, repo, o, t)
    assert not res.clean
    assert "f" in res.conflicts


def test_binary_changed_both_sides(git_repo: GitRepo, repo: Repository) -> None:
    base = bytes(range(256)) * 8
    o, t = diverge(git_repo, {"bin": base}, {"bin": b"\0ours" + base}, {"bin": base + b"\0theirs"})
    res = check(git_repo, repo, o, t)
    assert (res.clean, res.conflicts) == (False, ("bin",))


def test_directory_file_conflict(git_repo: GitRepo, repo: Repository) -> None:
    o, t = diverge(
        git_repo,
        {"a": "file\n", "z": "z\n"},
        {"a": None, "a/b": "nested\n"},
        {"a": "changed file\n"},
    )
    res = check(git_repo, repo, o, t)
    assert not res.clean


def test_directory_file_added_both_sides(git_repo: GitRepo, repo: Repository) -> None:
    o, t = diverge(git_repo, {"z": "z\n"}, {"a": "file\n"}, {"a/b": "nested\n"})
    check(git_repo, repo, o, t)


def test_symlink_vs_file(git_repo: GitRepo, repo: Repository) -> None:
    o, t = diverge(git_repo, {"f": TEXT}, {"f": Link("elsewhere")}, {"f": edit(TEXT, 2, "x")})
    res = check(git_repo, repo, o, t)
    # git keeps the symlink at 'f' and moves the other side's file aside, named after its label
    assert (res.clean, res.conflicts) == (False, ("f", f"f~{t}"))
    assert mode(repo, res.tree, "f") == FileMode.SYMLINK


def test_literal_conflict_markers_merge_cleanly(git_repo: GitRepo, repo: Repository) -> None:
    markers = "<<<<<<< HEAD\nmine\n=======\nyours\n>>>>>>> branch\n"
    base = "top\n" + "\n".join(f"pad {i}" for i in range(10)) + "\n" + markers + TEXT
    o, t = diverge(
        git_repo, {"doc.md": base}, {"doc.md": "TOP\n" + base[4:]}, {"doc.md": base + "end\n"}
    )
    res = check(git_repo, repo, o, t)
    assert (res.clean, res.conflicts) == (True, ())
    assert blob(repo, res.tree, "doc.md").decode() == "TOP\n" + base[4:] + "end\n"


def test_criss_cross_merge(git_repo: GitRepo, repo: Repository) -> None:
    g = git_repo
    g.write("f", TEXT)
    g.write("g", TEXT)
    g.commit("base")
    g.git("checkout", "-q", "-b", "b")
    g.write("f", edit(TEXT, 1, "b1"))
    g.commit("b1")
    g.checkout("main")
    g.write("f", edit(TEXT, 20, "a1"))
    g.commit("a1")
    a1, b1 = g.rev_parse("main"), g.rev_parse("b")
    g.merge("b")  # main: merge of a1 and b1
    g.write("g", edit(TEXT, 5, "main after criss-cross"))
    g.commit("a2")
    g.checkout("b")
    g.git("merge", "-q", "--no-ff", "-m", "merge a1", a1)  # b: merge of b1 and a1
    g.write("g", edit(TEXT, 15, "b after criss-cross"))
    g.write("f", edit(edit(TEXT, 1, "b1"), 10, "b2"))
    g.commit("b2")
    o, t = g.rev_parse("main"), g.rev_parse("b")
    assert len(g.git("merge-base", "--all", o, t).split()) == 2
    assert b1 != a1
    res = check(g, repo, o, t)
    assert res.clean
    # a conflicting criss-cross: both sides change the same line after the cross
    g.write("g", edit(TEXT, 5, "b wants this"))
    t2 = g.commit("b3")
    check(g, repo, o, t2)


def test_fast_forward_pair(git_repo: GitRepo, repo: Repository) -> None:
    g = git_repo
    g.write("f", TEXT)
    old = g.commit("one")
    g.write("f", edit(TEXT, 1, "two"))
    g.write("new", "new\n")
    new = g.commit("two")
    res = check(g, repo, old, new)
    assert res == MergeResult(True, ObjectId(repo.changeset(new).tree))
    assert check(g, repo, new, old) == res


def test_identical_commits(git_repo: GitRepo, repo: Repository) -> None:
    git_repo.write("f", TEXT)
    c = git_repo.commit("one")
    assert check(git_repo, repo, c, c) == MergeResult(True, repo.changeset(c).tree)


@pytest.mark.parametrize("overlap", [False, True])
def test_unrelated_histories(git_repo: GitRepo, repo: Repository, overlap: bool) -> None:
    g = git_repo
    g.write("f", TEXT)
    g.write("same", "same\n")
    o = g.commit("root one")
    g.git("checkout", "-q", "--orphan", "other")
    g.git("rm", "-q", "-r", "-f", ".")
    g.write("g", "other root\n")
    g.write("same", "same\n")
    if overlap:
        g.write("f", "not the same\n")
    t = g.commit("root two")
    res = check(g, repo, o, t, unrelated=True)
    assert res.clean is not overlap
    assert res.conflicts == (("f",) if overlap else ())


def test_special_file_names(git_repo: GitRepo, repo: Repository) -> None:
    names = [
        "ünïcødé.txt",
        "with space/dir name.md",
        "100% done.txt",
        "a\\b",
        "tab\there",
        'quote"d',
        "new\nline",
    ]
    o, t = diverge(
        git_repo,
        {n: TEXT for n in names},
        {n: edit(TEXT, 3, "ours") for n in names},
        {n: edit(TEXT, 3, "theirs") for n in names},
    )
    res = check(git_repo, repo, o, t)
    assert res.conflicts == tuple(sorted(names, key=lambda n: n.encode()))


def test_conflicts_in_subdirectories_sorted_by_bytes(git_repo: GitRepo, repo: Repository) -> None:
    names = ["a/b/c.txt", "a/d.txt", "a-b/x", "a.b", "z/y/x/w.txt", "A/upper", "a/b.c"]
    o, t = diverge(
        git_repo,
        {n: TEXT for n in names} | {"a/clean.txt": TEXT},
        {n: edit(TEXT, 7, "ours") for n in names} | {"a/clean.txt": edit(TEXT, 1, "c")},
        {n: edit(TEXT, 7, "theirs") for n in names},
    )
    res = check(git_repo, repo, o, t)
    assert res.conflicts == tuple(sorted(names))
    assert len(set(res.conflicts)) == len(res.conflicts)


# -- random histories -------------------------------------------------------------------------
class _History:
    """A random small history written with one ``git fast-import`` run."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.stream: list[bytes] = []
        self.marks = 0
        self.states: dict[int, dict[str, tuple[str, str]]] = {}  # mark -> path -> (mode, text)

    def commit(self, parents: list[int], files: dict[str, tuple[str, str]]) -> int:
        self.marks += 1
        mark = self.marks
        msg = f"c{mark}".encode()
        out = [
            b"commit refs/heads/h%d\n" % mark,
            b"mark :%d\n" % mark,
            b"committer C <c@example.com> %d +0000\n" % (1_700_000_000 + mark),
            b"data %d\n%s\n" % (len(msg), msg),
        ]
        if parents:
            out.append(b"from :%d\n" % parents[0])
            out.extend(b"merge :%d\n" % p for p in parents[1:])
        out.append(b"deleteall\n")
        for path, (fmode, text) in sorted(files.items()):
            data = text.encode()
            out.append(
                b"M %s inline %s\ndata %d\n%s\n" % (fmode.encode(), path.encode(), len(data), data)
            )
        self.stream.append(b"".join(out))
        self.states[mark] = files
        return mark

    def mutate(self, files: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        files = dict(files)
        for _ in range(self.rnd.randint(1, 3)):
            op = self.rnd.choice(["edit", "edit", "edit", "add", "delete", "rename", "chmod"])
            paths = sorted(files)
            if op == "add" or not paths:
                name = self.rnd.choice(["n1", "n2", "d/n3", "d/e/n4", "f0/x"])
                files[name] = ("100644", self.rnd.choice(["new\n", "other\n"]) + TEXT)
                continue
            path = self.rnd.choice(paths)
            fmode, text = files[path]
            if op == "edit":
                line = self.rnd.choice([1, 2, 3, 10])  # few lines: overlapping edits
                files[path] = (fmode, edit(text, line, self.rnd.choice(["x", "y", "z"])))
            elif op == "delete":
                del files[path]
            elif op == "rename":
                del files[path]
                files[self.rnd.choice(["r1", "r2", "d/r3", path + ".moved"])] = (fmode, text)
            else:
                files[path] = ("100755" if fmode == "100644" else "100644", text)
        return files

    def build(self) -> list[int]:
        root = self.commit([], {f"f{i}": ("100644", TEXT) for i in range(3)})
        tips = [root, root]
        for _ in range(self.rnd.randint(4, 6)):
            side = self.rnd.randrange(2)
            roll = self.rnd.random()
            if roll < 0.2 and tips[0] != tips[1]:
                # a criss-cross: each tip merges the other, "resolving" differently
                a, b = tips
                tips = [
                    self.commit([a, b], self.mutate(self.states[a])),
                    self.commit([b, a], self.mutate(self.states[b])),
                ]
            elif roll < 0.35 and tips[0] != tips[1]:
                mine, other = tips[side], tips[1 - side]
                tips[side] = self.commit([mine, other], self.mutate(self.states[mine]))
            else:
                tips[side] = self.commit([tips[side]], self.mutate(self.states[tips[side]]))
        return list(self.states)


def _fast_import(g: GitRepo, stream: bytes, marks_file: Path) -> dict[int, str]:
    g.git("fast-import", "--quiet", f"--export-marks={marks_file}", input=stream)
    marks = {}
    for line in marks_file.read_text().splitlines():
        mark, sha = line.split()
        marks[int(mark[1:])] = sha
    return marks


def test_random_histories_agree_with_git(tmp_path: Path) -> None:
    rnd = random.Random(20240611)
    verdicts: list[bool] = []
    for n in range(30):
        path = tmp_path / f"h{n}"
        subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
        g = GitRepo(path)
        history = _History(rnd)
        history.build()
        marks = _fast_import(g, b"".join(history.stream), tmp_path / f"marks{n}")
        commits = sorted(marks.values())
        with Repository.open(path) as repo:
            for ours in commits:
                for theirs in commits:
                    if ours != theirs:
                        verdicts.append(check(g, repo, ours, theirs).clean)
    assert len(verdicts) > 500
    # most pairs are ancestor and descendant; still, dozens conflict (content, modify/delete,
    # rename/rename, rename/delete, file/directory, directory renames, criss-crosses)
    assert verdicts.count(False) >= 50


# -- the engine itself ------------------------------------------------------------------------
def _pairs_repo(g: GitRepo) -> list[tuple[str, str]]:
    """A few branches whose pairwise merges are a mix of clean and conflicted."""
    g.write("f", TEXT)
    base = g.commit("base")
    tips = []
    for i in range(4):
        g.git("checkout", "-q", "-b", f"b{i}", base)
        g.write("f", edit(TEXT, 1 + (i % 2) * 10, f"b{i}"))
        g.write(f"own{i}", f"{i}\n")
        tips.append(g.commit(f"b{i}"))
    return [(a, b) for a in tips for b in tips if a != b]


def test_threads_agree_with_serial(git_repo: GitRepo, repo: Repository) -> None:
    pairs = _pairs_repo(git_repo)
    serial = {p: check(git_repo, repo, *p) for p in pairs}
    assert {r.clean for r in serial.values()} == {True, False}
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            for _ in range(20):
                p = rnd.choice(pairs)
                assert repo.merge(*p) == serial[p]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_objects_written_after_start_are_seen(git_repo: GitRepo, repo: Repository) -> None:
    g = git_repo
    g.write("f", TEXT)
    base = g.commit("base")
    check(g, repo, base, base)  # the process is running now
    # loose objects written by pygit2 in this process
    pg = repo.pg
    tb = pg.TreeBuilder(pg[base].peel(pygit2.Tree))
    tb.insert("f", pg.create_blob(edit(TEXT, 1, "pygit2").encode()), pygit2.GIT_FILEMODE_BLOB)
    sig = pygit2.Signature("A", "a@example.com", 1_700_000_000, 0)
    loose = str(pg.create_commit(None, sig, sig, "loose\n", tb.write(), [pygit2.Oid(hex=base)]))
    # objects in a new pack (and old packs deleted) written by git
    g.git("checkout", "-q", "-b", "packed", base)
    g.write("f", edit(TEXT, 20, "packed"))
    packed = g.commit("packed")
    g.git("repack", "-a", "-d", "-q")
    g.git("prune-packed")
    assert not (g.path / ".git" / "objects" / packed[:2] / packed[2:]).exists()  # packed only
    assert check(g, repo, loose, packed).clean
    g.write("f", edit(TEXT, 10, "after repack"))
    later = g.commit("later")
    check(g, repo, loose, later)


def test_close_then_merge_restarts(git_repo: GitRepo, repo: Repository) -> None:
    pairs = _pairs_repo(git_repo)
    check(git_repo, repo, *pairs[0])
    engine = repo._merge_engine
    assert engine is not None
    first = engine._proc
    assert first is not None
    repo.close()
    assert first._popen.poll() is not None  # stopped and reaped
    check(git_repo, repo, *pairs[1])
    engine.close()
    engine.close()  # idempotent


def test_killed_process_is_restarted(git_repo: GitRepo, repo: Repository) -> None:
    pairs = _pairs_repo(git_repo)
    check(git_repo, repo, *pairs[0])
    engine = repo._merge_engine
    assert engine is not None and engine._proc is not None
    proc = engine._proc._popen
    proc.kill()
    proc.wait()
    check(git_repo, repo, *pairs[1])
    assert engine._proc is not None and engine._proc._popen is not proc


def test_invalid_ids_are_refused(git_repo: GitRepo, tmp_path: Path) -> None:
    git_repo.write("f", TEXT)
    c = ObjectId(git_repo.commit("one"))
    pg = pygit2.Repository(str(git_repo.path))
    engine = MergeEngine(git_repo.path / ".git")
    try:
        with pytest.raises(RevisionNotFound):
            engine.merge(pg, c, ObjectId("0" * 40))
        with pytest.raises(InvalidRevision):
            engine.merge(pg, c, ObjectId(f"{c} {c}"))
        tree = ObjectId(str(pg[c].peel(pygit2.Commit).tree_id))
        with pytest.raises(RevisionNotFound):
            engine.merge(pg, c, tree)
        assert engine.merge(pg, c, c).clean
    finally:
        engine.close()


def test_persistent_failure_is_a_git_failure(git_repo: GitRepo, tmp_path: Path) -> None:
    git_repo.write("f", TEXT)
    c = ObjectId(git_repo.commit("one"))
    pg = pygit2.Repository(str(git_repo.path))
    engine = MergeEngine(tmp_path / "not-a-repository")  # git dies at once, twice
    with pytest.raises(GitFailure) as info:
        engine.merge(pg, c, c)
    assert "not a git repository" in info.value.stderr
    assert engine._proc is None
    slow = MergeEngine(git_repo.path / ".git", timeout=0.0)  # every answer is too late
    with pytest.raises(GitFailure, match="in time"):
        slow.merge(pg, c, c)
    slow.timeout = 30.0
    assert slow.merge(pg, c, c).clean  # a fresh process after the timed-out one was killed
    slow.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_uses_its_own_process(git_repo: GitRepo, repo: Repository) -> None:
    pairs = _pairs_repo(git_repo)
    expected = [check(git_repo, repo, *p) for p in pairs[:2]]
    engine = repo._merge_engine
    assert engine is not None and engine._proc is not None
    parent_git = engine._proc._popen.pid
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_end)
            ok = repo.merge(*pairs[1]) == expected[1]
            proc = engine._proc
            own = proc is not None and proc._popen.pid != parent_git
            code = 0 if ok and own else 2
        finally:
            os.write(write_end, bytes([code]))
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        answer = f.read()
    os.waitpid(pid, 0)
    assert answer == b"\0"
    # the parent's process survived the child and still answers
    assert engine._proc is not None and engine._proc._popen.pid == parent_git
    assert repo.merge(*pairs[0]) == expected[0]


# -- explicit merge base ----------------------------------------------------------------------
def _commit_tree(g: GitRepo, tree: str, parents: list[str], message: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": SYNTHETIC_NAME,
        "GIT_AUTHOR_EMAIL": SYNTHETIC_EMAIL,
        "GIT_AUTHOR_DATE": "@0 +0000",
        "GIT_COMMITTER_NAME": SYNTHETIC_NAME,
        "GIT_COMMITTER_EMAIL": SYNTHETIC_EMAIL,
        "GIT_COMMITTER_DATE": "@0 +0000",
    }
    args = ["commit-tree", tree]
    for p in parents:
        args += ["-p", p]
    return g.git(*args, input=message.encode(), env=env).strip()


def _git_with_base(g: GitRepo, base: str, ours: str, theirs: str) -> tuple[str, str, MergeResult]:
    """git's answer for merging with an explicit base, via commits built by ``git commit-tree``."""
    tree = {c: g.git("rev-parse", f"{c}^{{tree}}").strip() for c in (base, ours, theirs)}
    b_msg, o_msg, t_msg = SYNTHETIC_MESSAGES
    b = _commit_tree(g, tree[base], [], b_msg)
    o = _commit_tree(g, tree[ours], [b], o_msg)
    t = _commit_tree(g, tree[theirs], [b], t_msg)
    clean, merged, conflicts = git_merge_tree(g, o, t)
    return o, t, MergeResult(clean, ObjectId(merged), conflicts)


def test_explicit_base_matches_git_on_synthetic_commits(
    git_repo: GitRepo, repo: Repository
) -> None:
    g = git_repo
    g.write("f", TEXT)
    g.write("g", TEXT)
    base = g.commit("base")
    g.write("f", edit(TEXT, 1, "one"))
    one = g.commit("one")
    g.write("f", edit(edit(TEXT, 1, "one"), 20, "two"))
    g.write("g", edit(TEXT, 5, "two"))
    two = g.commit("two")
    g.git("checkout", "-q", "-b", "side", base)
    g.write("g", edit(TEXT, 5, "side"))
    g.write("h", "side\n")
    side = g.commit("side")
    for b, o, t in [(one, side, two), (base, side, two), (side, base, one), (two, one, base)]:
        git_o, git_t, expected = _git_with_base(g, b, o, t)
        assert synthetic_commits(repo.pg, ObjectId(b), ObjectId(o), ObjectId(t)) == (git_o, git_t)
        assert repo.merge(o, t, base=b) == expected
    # with the real merge base as explicit base, the clean result is the ordinary merge's
    assert repo.merge(one, side, base=base) == repo.merge(one, side)


def _cherry_pick_in_clone(
    g: GitRepo, tmp: Path, onto: str, pick: str
) -> tuple[bool, str, set[str]]:
    clone = tmp / "clone"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(g.path), str(clone)], check=True)
    c = GitRepo(clone)
    c.git("checkout", "-q", "--detach", onto)
    proc = subprocess.run(
        ["git", "-C", str(clone), "cherry-pick", "--no-commit", pick],
        capture_output=True,
        check=False,
    )
    conflicted = {n for n in c.git("diff", "--name-only", "-z", "--diff-filter=U").split("\0") if n}
    tree = c.git("write-tree").strip() if proc.returncode == 0 else ""
    return proc.returncode == 0, tree, conflicted


@pytest.mark.parametrize("conflicting", [False, True])
def test_explicit_base_is_a_cherry_pick(
    git_repo: GitRepo, repo: Repository, tmp_path: Path, conflicting: bool
) -> None:
    g = git_repo
    g.write("f", TEXT)
    g.write("g", TEXT)
    g.commit("base")
    g.git("checkout", "-q", "-b", "topic")
    g.write("f", edit(TEXT, 2, "topic first"))
    g.commit("topic first")
    g.write("g", edit(TEXT, 18, "picked"))
    g.write("f", edit(edit(TEXT, 2, "topic first"), 12, "picked too"))
    pick = g.commit("to pick")
    g.checkout("main")
    g.write("g", edit(TEXT, 18 if conflicting else 3, "main"))
    g.write("new", "main only\n")
    onto = g.commit("main moves on")
    clean, tree, conflicted = _cherry_pick_in_clone(g, tmp_path, onto, pick)
    res = repo.merge(onto, pick, base=f"{pick}~1")
    assert res.clean is clean is (not conflicting)
    assert set(res.conflicts) == conflicted
    if clean:
        assert res.tree == tree
