"""Hostile input, as properties (Hypothesis): paths, user names as refs, revisions.

The unit tests (``tests/unit/test_names.py``, ``test_refnames.py``) check the validators alone.
These check the promise at the level a caller meets it, on real repositories:

- **paths**: any string is either refused with InvalidPath or is a normalized relative path that
  stays inside the tree; an accepted path written through a ChangeBuilder comes back from
  ``git ls-tree`` exactly as given, and ``git fsck`` stays clean; a refused one never reaches
  git (a snapshot, a transaction and a workspace all refuse it);
- **user names**: any Unicode name becomes a workspace ref that ``git check-ref-format`` and
  pygit2 accept, that ``git for-each-ref`` lists back, that decodes to the same name, and no two
  distinct names share a ref — made through the real service (``Candidates.workspace``);
- **revisions**: option-like strings, ranges, ``rev:path``, reflog and peel syntax are refused
  before any git process starts (``gitcli.run_git`` and ``subprocess.Popen`` are watched), through
  ``Repository.resolve`` and ``Source.view``; a ``--output=<file>`` revision never creates its
  file.

Bounded examples in CI; ``REVISOR_LONG=1`` runs many more.
"""

from __future__ import annotations

import posixpath
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pygit2
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from revisor.core.changes import Write
from revisor.core.refnames import WORKSPACES_PREFIX, parse_workspace_ref, workspace_ref
from revisor.errors import InvalidInput, InvalidPath, InvalidRevision, RevisorError
from revisor.vcs import Repository, Signature
from revisor.vcs import gitcli as gitcli_module
from revisor.vcs.names import validate_path
from tests.integration.test_candidates_support import ALICE, BASE_FILES
from tests.integration.test_transactions_support import World, make_world
from tests.reliability.common import examples

pytestmark = pytest.mark.timeout(600)

SIG = Signature.now("Hostile Tester", "hostile@example.com")

# -- strategies ------------------------------------------------------------------------------
_FRAGMENTS = [
    "..", ".", "/", "//", ".git", ".GIT", ".Git.", "git~1", "GIT~1", "\x00", "\\", "~", "a",
    "b.txt", "dir", "-", "--", "-rf", " ", "\t", "\n", "é", "\u202e", "\ufeff", "%2e%2e", ":",
    "*", "?", "[", "@{", "^", ".lock", "HEAD", "\x7f", "\U0001f600", "..\\..", "./",
]
hostile_text = st.lists(
    st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=8)), max_size=10
).map("".join)
any_text = st.one_of(st.text(max_size=60), hostile_text)


def _inside(root: Path, rel: str) -> bool:
    full = (root / rel).resolve()
    return full == root or root in full.parents


# -- paths -----------------------------------------------------------------------------------
@examples(400, 20_000)
@given(any_text)
def test_any_path_is_refused_or_normalized_inside_the_tree(path: str) -> None:
    root = Path("/nonexistent-root/tree")
    try:
        accepted = validate_path(path)
    except InvalidPath:
        return
    assert accepted == path
    assert not path.startswith("/") and "\x00" not in path
    assert posixpath.normpath(path) == path  # nothing to normalize: no '.', '..', '//', '/'
    parts = PurePosixPath(path).parts
    assert ".." not in parts and "." not in parts
    assert all(p.lower().rstrip(". ") not in (".git", "git~1") for p in parts)
    assert _inside(root, path)


@pytest.fixture(scope="module")
def scratch_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repository]:
    path = tmp_path_factory.mktemp("hostile") / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    repo = Repository.open(path)
    b = repo.builder(None)
    b.write("README.md", b"hello\n")
    first = b.commit("first", SIG)
    assert first is not None
    repo.set_ref("refs/heads/main", first, expected=None)
    try:
        yield repo
    finally:
        repo.close()


def _ls_tree(git_dir: Path, rev: str) -> list[str]:
    out = subprocess.run(
        ["git", f"--git-dir={git_dir}", "ls-tree", "-r", "-z", "--name-only", rev],
        capture_output=True, check=True, timeout=60,
    ).stdout
    return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]


@examples(25, 400)
@given(any_text)
def test_accepted_paths_reach_git_exactly_and_refused_ones_never(
    scratch_repo: Repository, path: str
) -> None:
    repo = scratch_repo
    b = repo.builder("main")
    try:
        validate_path(path)
    except InvalidPath:
        with pytest.raises(InvalidPath):
            b.write(path, b"x")
        with pytest.raises(InvalidPath):
            repo.file("main", path)
        return
    assume(path != "README.md" and not path.startswith("README.md/"))
    b.write(path, b"content\n")
    commit = b.commit("hostile path", SIG)
    assert commit is not None
    listed = _ls_tree(repo.git_dir, commit)
    assert sorted(listed) == sorted(["README.md", path])
    assert repo.file(commit, path).data == b"content\n"


def test_hostile_paths_are_refused_by_every_service(tmp_path: Path) -> None:
    """Each refused path is refused by a snapshot, a transaction and a workspace, and nothing
    is committed, pushed or written outside."""
    w = make_world("local", tmp_path, BASE_FILES)
    try:
        before = w.upstream.refs()
        snap = w.source.view("main")
        cand = w.source.candidates.create("hostile", "Hostile", ALICE)
        ws = w.source.candidates.workspace(cand.id, "mallory")
        bad = ["../outside.txt", "/etc/passwd", ".git/config", "a/../../b", "a//b", "a/./b",
               "x\x00y", ".GIT/hooks/post-checkout", "git~1/config", "dir/", ""]
        for path in bad:
            with pytest.raises(InvalidInput):
                snap.read(path)
            with pytest.raises(InvalidInput):
                w.source.update("main", "bad", ALICE, changes=[Write(path, b"x")])
            with pytest.raises(InvalidInput):
                ws.write(path, b"x", if_match=None)
        assert w.upstream.refs("refs/heads/") == {
            k: v for k, v in before.items() if k.startswith("refs/heads/")}
        assert ws.unpublished() == []
        assert not (tmp_path / "outside.txt").exists()
        w.upstream.fsck()
    finally:
        w.close()


# -- user names as refs ----------------------------------------------------------------------
names = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1, max_size=20,
)
hostile_names = st.one_of(
    names,
    st.sampled_from(["..", ".", "x.lock", "@{u}", "@", "HEAD", "-rf", "--all", "a/b", "A", "a",
                     "Alice", "alice", "ALICE", "o'brien", " ", "~", "^", ":", "*", "?", "[",
                     "\\", "%41", "%", "é", "é", "ﬁ", "İ", "ß", "SS"]),
)


@pytest.fixture(scope="module")
def name_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, int]]:
    w = make_world("local", tmp_path_factory.mktemp("names"), BASE_FILES)
    cand = w.source.candidates.create("names", "Names", ALICE)
    try:
        yield w, cand.id
    finally:
        w.close()


def _check_ref_format(refs: list[str]) -> list[str]:
    """The refs ``git check-ref-format`` refuses (one process per ref: it takes one name)."""
    return [r for r in refs if subprocess.run(["git", "check-ref-format", r],
                                              capture_output=True, check=False).returncode != 0]


@examples(15, 300)
@given(st.lists(hostile_names, min_size=1, max_size=6, unique=True))
def test_any_user_names_become_distinct_valid_refs_through_the_service(
    name_world: tuple[World, int], users: list[str]
) -> None:
    w, cid = name_world
    for user in users:
        w.source.candidates.workspace(cid, user)
    refs = [workspace_ref(cid, u) for u in users]
    assert len(set(refs)) == len(users)  # no two names share a ref
    assert len({r.lower() for r in refs}) == len(users)  # not even on a case-folding disk
    assert _check_ref_format(refs) == []
    for r in refs:
        assert pygit2.reference_is_valid_name(r)
    listed = subprocess.run(
        ["git", f"--git-dir={w.upstream.path}", "for-each-ref", "--format=%(refname)",
         f"{WORKSPACES_PREFIX}{cid}/"], capture_output=True, text=True, check=True,
    ).stdout.split()
    assert set(refs) <= set(listed)
    decoded = {parse_workspace_ref(r) for r in listed}
    assert {(cid, u) for u in users} <= decoded
    assert len(decoded) == len(listed)  # every ref there decodes to one distinct user
    records = {r.user for r in w.source.candidates.workspaces(cid)}
    assert set(users) <= records


# -- revisions -------------------------------------------------------------------------------
refused_revisions = st.one_of(
    st.builds(lambda s: "-" + s, st.text(max_size=20)),
    st.builds(lambda a, b: f"{a}..{b}", st.text(max_size=8), st.text(max_size=8)),
    st.builds(lambda a, b: f"{a}...{b}", st.text(max_size=8), st.text(max_size=8)),
    st.builds(lambda a, b: f"{a}:{b}", st.text(max_size=8), st.text(max_size=8)),
    st.builds(lambda a, b: f"{a}@{{{b}}}", st.text(max_size=8), st.text(max_size=8)),
    st.builds(lambda a: f"{a}^{{tree}}", st.text(max_size=8)),
    st.sampled_from(["--output=/tmp/x", "--all", "-p", "main..HEAD", "HEAD:README.md", ":/msg",
                     "main@{1}", "@{-1}", "main^{}", "main~x", "HEAD main", "*", "", "\x00",
                     "--upload-pack=touch /tmp/pwned", "main\nHEAD"]),
)


class _Watch:
    """Counts git processes started while installed (``run_git`` and any ``Popen``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[object] = []
        real_run_git = gitcli_module.run_git
        real_popen = subprocess.Popen.__init__

        def run_git(*a: object, **k: object) -> object:
            self.calls.append(("run_git", a))
            return real_run_git(*a, **k)  # type: ignore[arg-type]

        def popen(obj: subprocess.Popen[bytes], args: object, *a: object, **k: object) -> None:
            self.calls.append(("popen", args))
            real_popen(obj, args, *a, **k)  # type: ignore[arg-type]

        monkeypatch.setattr(gitcli_module, "run_git", run_git)
        monkeypatch.setattr(subprocess.Popen, "__init__", popen)


@pytest.fixture(scope="module")
def rev_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = make_world("local", tmp_path_factory.mktemp("revs"), BASE_FILES)
    try:
        w.source.view("main")  # warm: anything lazy happens now, not under watch
        yield w
    finally:
        w.close()


@examples(150, 5_000)
@given(refused_revisions)
def test_hostile_revisions_are_refused_before_git_runs(rev_world: World, rev: str) -> None:
    w = rev_world
    repo = Repository.open(w.upstream.path)
    try:
        with pytest.MonkeyPatch.context() as mp:
            watch = _Watch(mp)
            with pytest.raises(InvalidRevision):
                repo.resolve(rev)
            with pytest.raises((InvalidRevision, InvalidInput)):
                repo.file(rev, "README.md")
            if rev:  # Source.view("") means the default branch, as None does
                with pytest.raises(RevisorError):
                    w.source.view(rev)
        assert watch.calls == []
    finally:
        repo.close()


def test_option_like_revision_never_writes_its_file(rev_world: World, tmp_path: Path) -> None:
    """A revision git would read as ``--output=<file>`` is refused by every reading call, and the
    file is never created."""
    target = tmp_path / "written-by-git"
    repo = Repository.open(rev_world.upstream.path)
    try:
        for rev in (f"--output={target}", f"-o{target}", f"--output={target} main"):
            with pytest.raises(InvalidRevision):
                rev_world.source.view(rev)
            with pytest.raises(InvalidRevision):
                repo.log(rev)
            with pytest.raises(InvalidRevision):
                repo.last_commits(rev)
            with pytest.raises(InvalidRevision):
                repo.diff("main", rev)
            with pytest.raises(InvalidRevision):
                repo.merge("main", rev)
    finally:
        repo.close()
    assert not target.exists()
