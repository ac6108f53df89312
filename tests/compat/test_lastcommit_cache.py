"""``core.lastcommits.LastCommitCache`` checked against ``git log -1`` per entry.

Every listing the cache gives — filled from scratch, filled from stored listings of ancestors
(incrementally, commit after commit, or out of order), or with so few commits compared that it
must walk history — must name, for every entry, the commit that
``git --literal-pathspecs log -1 --format=%H <commit> -- <dir>/<entry>`` prints. The hand-built
histories pin down renames, deletions and re-additions, merges where one side changed the entry
(or both, or neither), octopus merges, equal dates and empty subtrees; the seeded random histories
(``test_history.RandomHistory``) check every directory at every commit.

The rest checks the cache's promises: a child's listing reuses its parent's stored listing with
no history walk (counted, not timed); under a time budget the answer is partial and nothing
partial is stored, while the complete answer is stored for the next call; a failed fill stores
nothing; a new cache over the same database answers from it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from revisor.core.lastcommits import LastCommitCache, LastCommitListing, cache_for, close_caches
from revisor.db import Database
from revisor.db.lastcommits import LastCommitStore
from revisor.errors import (
    GitFailure,
    InvalidPath,
    PathNotFound,
    RevisionNotFound,
    SourceNotFound,
)
from revisor.vcs import Changeset, Repository
from tests.compat.test_history import T0, RandomHistory, git_last_commits
from tests.gitutil import GitRepo, fast_import, merge_resolving
from tests.integration.test_transactions_support import make_world

SOURCE = "proj"


# -- fixtures and the reference --------------------------------------------------------------------
@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'data' / 'revisor.db'}")
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


class Caches:
    """Opens caches (and their repositories) and closes them all at the end."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.opened: list[LastCommitCache] = []

    def new(
        self, repo: GitRepo | Repository, source: str = SOURCE, **options: int
    ) -> LastCommitCache:
        opened = repo if isinstance(repo, Repository) else Repository.open(repo.path)
        cache = LastCommitCache(self.db, source, opened, **options)
        self.opened.append(cache)
        return cache

    def close(self) -> None:
        for cache in self.opened:
            cache.close()
            cache.repo.close()


@pytest.fixture
def caches(db: Database) -> Iterator[Caches]:
    made = Caches(db)
    try:
        yield made
    finally:
        made.close()


class Reference:
    """git's answers, asked once per (commit, directory).

    With ``oracle`` (a repository opened on the same history), only ``git_share`` of the
    (commit, directory) pairs are asked of git: the others are compared with
    ``Repository.last_commits``, itself checked against git on random histories by
    ``test_history.py`` (one ``git log`` process per entry is what makes these tests slow).
    """

    def __init__(
        self, repo: GitRepo, oracle: Repository | None = None, git_share: float = 1.0
    ) -> None:
        self.repo = repo
        self.oracle = oracle
        self.git_share = git_share
        self.asked_git = 0
        self._rng = random.Random(repo.path.name)
        self._answers: dict[tuple[str, str], dict[str, str]] = {}
        self._names: dict[tuple[str, str], list[str]] = {}

    def names(self, commit: str, directory: str) -> list[str]:
        key = (commit, directory)
        if key not in self._names:
            spec = f"{commit}:{directory}" if directory else f"{commit}^{{tree}}"
            listed = self.repo.git("ls-tree", "-z", "--name-only", spec).split("\0")
            self._names[key] = [n for n in listed if n]
        return self._names[key]

    def answers(self, commit: str, directory: str) -> dict[str, str]:
        key = (commit, directory)
        if key not in self._answers:
            if self.oracle is None or self._rng.random() < self.git_share:
                self.asked_git += 1
                self._answers[key] = git_last_commits(self.repo, commit, directory)
                if self.oracle is not None:  # the oracle must agree wherever git is asked
                    assert self._oracle(commit, directory) == self._answers[key]
            else:
                self._answers[key] = self._oracle(commit, directory)
        return self._answers[key]

    def _oracle(self, commit: str, directory: str) -> dict[str, str]:
        assert self.oracle is not None
        return {n: c.id for n, c in self.oracle.last_commits(commit, directory).items()}

    def check(self, listing: LastCommitListing, commit: str, directory: str) -> None:
        assert not listing.partial
        assert (listing.commit, listing.path) == (commit, directory)
        assert list(listing.entries) == self.names(commit, directory), (commit, directory)
        got = {name: c.id for name, c in listing.entries.items() if c is not None}
        assert got == self.answers(commit, directory), (commit, directory)


def commits(repo: GitRepo) -> list[str]:
    """Every commit, parents before children."""
    return repo.git("rev-list", "--all", "--topo-order", "--reverse").split()


def directories(repo: GitRepo, commit: str) -> list[str]:
    listing = repo.git("ls-tree", "-r", "-d", "-z", "--name-only", commit).split("\0")
    return ["", *filter(None, listing)]


def check_everything(
    repo: GitRepo, caches: Caches, *, seed: int = 0, oracle: Repository | None = None,
    git_share: float = 1.0,
) -> None:
    """Every directory of every commit, in three ways: one cache filled parents first (each
    listing from its parents' stored ones), fresh caches children first (nothing stored below:
    walks), and one cache in random order comparing at most one commit per fill."""
    ref = Reference(repo, oracle, git_share)
    every = [(c, d) for c in commits(repo) for d in directories(repo, c)]
    incremental = caches.new(repo)
    for commit, directory in every:
        ref.check(incremental.listing(commit, directory), commit, directory)
    assert incremental.stats.reused > 0
    for commit, directory in reversed(every[-12:]):
        ref.check(caches.new(repo).listing(commit, directory), commit, directory)
    shuffled = every[:]
    random.Random(seed).shuffle(shuffled)
    mixed = caches.new(repo, "mixed", max_visits=1)
    for commit, directory in shuffled:
        ref.check(mixed.listing(commit, directory), commit, directory)


# -- hand-built histories --------------------------------------------------------------------------
def test_renames_deletions_and_readditions(git_repo: GitRepo, caches: Caches) -> None:
    git_repo.write("a", "1")
    git_repo.write("b", "1")
    git_repo.write("d/x", "1")
    git_repo.write("d/y", "1")
    git_repo.commit("base")
    git_repo.git("mv", "a", "c")
    git_repo.commit("rename a to c")
    git_repo.remove("b")
    git_repo.commit("delete b")
    git_repo.write("b", "1")  # the same content again: the re-addition is b's last commit
    git_repo.commit("re-add b")
    git_repo.git("mv", "d/x", "d/z")
    git_repo.commit("rename d/x to d/z")
    git_repo.write("d/y", "1", executable=True)
    git_repo.commit("chmod d/y")
    git_repo.remove("d")
    git_repo.commit("delete d")
    git_repo.write("d/x", "1")
    git_repo.commit("d again, as it was at first")
    check_everything(git_repo, caches)


def test_equal_timestamps(git_repo: GitRepo, caches: Caches) -> None:
    git_repo.write("a", "0")
    git_repo.write("b", "0")
    git_repo.commit("base", date=T0)
    git_repo.checkout("-b", "side")
    git_repo.write("a", "side")
    git_repo.commit("side a", date=T0 + 5)
    git_repo.checkout("main")
    git_repo.write("b", "main")
    git_repo.commit("main b", date=T0 + 5)
    git_repo.write("b", "main2")
    git_repo.commit("main b again", date=T0 + 5)
    git_repo.merge("side", date=T0 + 5)
    check_everything(git_repo, caches)


def test_merges_where_one_side_changed_the_entry(git_repo: GitRepo, caches: Caches) -> None:
    for name in ("a", "b", "c", "d/x", "d/y"):
        git_repo.write(name, "0")
    git_repo.commit("base")
    git_repo.checkout("-b", "feature")
    git_repo.write("a", "feature")
    git_repo.write("d/x", "feature")
    git_repo.commit("feature a, d/x")
    git_repo.write("e", "new on the feature")
    git_repo.commit("feature adds e")
    git_repo.checkout("main")
    git_repo.write("b", "main")
    git_repo.commit("main b")
    git_repo.merge("feature")  # a, d, e come from the second parent
    git_repo.checkout("-b", "other", "main~1")
    git_repo.write("c", "other")
    git_repo.commit("other c")
    git_repo.checkout("main")
    # Only the other side changed c: the merge takes it, and changes b itself.
    merge_resolving(git_repo, "other", files={"b": "merged"})
    git_repo.checkout("-b", "both", "main~1")
    git_repo.write("a", "both")
    git_repo.commit("both a")
    git_repo.checkout("main")
    merge_resolving(git_repo, "both", files={"a": "feature"})  # main's a kept: TREESAME to P1
    git_repo.checkout("-b", "again", "main~1")
    git_repo.write("a", "again")
    git_repo.commit("again a")
    git_repo.checkout("main")
    merge_resolving(git_repo, "again", files={"a": "neither"})  # a changed by the merge itself
    check_everything(git_repo, caches)


def test_octopus_merge_and_a_side_that_did_not_change(git_repo: GitRepo, caches: Caches) -> None:
    git_repo.write("a", "0")
    git_repo.write("b", "0")
    git_repo.write("c", "0")
    git_repo.commit("base")
    for branch, name in (("one", "a"), ("two", "b"), ("idle", None)):
        git_repo.checkout("-b", branch, "main")
        if name is not None:
            git_repo.write(name, branch)
            git_repo.commit(f"{branch} {name}")
        else:
            git_repo.commit("nothing", allow_empty=True)
    git_repo.checkout("main")
    git_repo.write("c", "main")
    git_repo.commit("main c")
    merge_resolving(git_repo, "one", "two", "idle")
    check_everything(git_repo, caches)


def test_empty_subtree_and_a_directory_that_becomes_a_file(
    git_repo: GitRepo, caches: Caches
) -> None:
    empty = git_repo.git("hash-object", "-t", "tree", "-w", "--stdin", input=b"").strip()
    blob = git_repo.git("hash-object", "-w", "--stdin", input=b"x").strip()
    blob2 = git_repo.git("hash-object", "-w", "--stdin", input=b"y").strip()
    sub = git_repo.git("mktree", input=f"100644 blob {blob}\tf\n".encode()).strip()
    parent: list[str] = []
    for i, entries in enumerate(
        [
            [f"100644 blob {blob}\tf", f"040000 tree {sub}\te"],
            [f"100644 blob {blob}\tf", f"040000 tree {empty}\te"],
            [f"100644 blob {blob2}\tf", f"040000 tree {empty}\te", f"100644 blob {blob}\tg"],
            [f"100644 blob {blob2}\tf", f"040000 tree {sub}\tg"],
            [f"100644 blob {blob2}\tf", f"100644 blob {blob}\tg"],
        ]
    ):
        tree = git_repo.git("mktree", input="\n".join(entries).encode() + b"\n").strip()
        stamp = {"GIT_COMMITTER_DATE": f"{T0 + i} +0000", "GIT_AUTHOR_DATE": f"{T0 + i} +0000"}
        commit = git_repo.git("commit-tree", tree, *parent, "-m", f"c{i}", env=stamp).strip()
        parent = ["-p", commit]
    git_repo.git("update-ref", "refs/heads/main", commit)
    check_everything(git_repo, caches)


def test_unicode_and_odd_names(git_repo: GitRepo, caches: Caches) -> None:
    for name in ("ünï", "sp ace", "st*r", "q?", "-dash", "a%2Fb"):
        git_repo.write(f"dir/{name}", "0")
        git_repo.commit(f"add {name}")
    git_repo.write("dir/st*r", "1")
    git_repo.commit("star again")
    check_everything(git_repo, caches)


def test_names_that_are_not_utf8(git_repo: GitRepo, caches: Caches) -> None:
    """Entry names are bytes to git: one that is not UTF-8 survives the stored form."""
    blob = git_repo.git("hash-object", "-w", "--stdin", input=b"x").strip()
    blob2 = git_repo.git("hash-object", "-w", "--stdin", input=b"y").strip()
    parent: list[str] = []
    for i, content in enumerate((blob, blob2)):
        entries = f"100644 blob {blob}\tplain\n".encode() + (
            f"100644 blob {content}\t".encode() + b"n\xffx\n")
        tree = git_repo.git("mktree", input=entries).strip()
        stamp = {"GIT_COMMITTER_DATE": f"{T0 + i} +0000", "GIT_AUTHOR_DATE": f"{T0 + i} +0000"}
        commit = git_repo.git("commit-tree", tree, *parent, "-m", f"c{i}", env=stamp).strip()
        parent = ["-p", commit]
    git_repo.git("update-ref", "refs/heads/main", commit)
    ref = Reference(git_repo)
    computed = caches.new(git_repo).listing(commit)
    ref.check(computed, commit, "")
    stored = caches.new(git_repo).listing(commit)
    assert stored.from_cache and stored == replace(computed, from_cache=True)
    assert "n\udcffx" in stored.entries


def test_a_shallow_clone(git_repo: GitRepo, caches: Caches, tmp_path: Path) -> None:
    """Parents beyond a shallow clone's boundary are missing: git treats the boundary commits as
    roots, and so does the cache."""
    linear(git_repo, commits=6)
    shallow = GitRepo(tmp_path / "shallow")
    git_repo.git("clone", "-q", "--depth", "3", f"file://{git_repo.path}", str(shallow.path))
    check_everything(shallow, caches)


# -- random histories ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_random_histories(git_repo: GitRepo, caches: Caches, seed: int) -> None:
    history = RandomHistory(random.Random(seed))
    fast_import(git_repo, history.build(30))
    git_repo.git("symbolic-ref", "HEAD", "refs/heads/main")
    with Repository.open(git_repo.path) as oracle:
        check_everything(git_repo, caches, seed=seed, oracle=oracle, git_share=0.2)


# -- what the cache promises -----------------------------------------------------------------------
def linear(repo: GitRepo, files: int = 6, commits: int = 24) -> None:
    """``files`` files, then ``commits`` commits each changing only ``f0``: most entries' last
    commit is far below the tip."""
    for i in range(files):
        repo.write(f"f{i}", "0")
        repo.write(f"sub/s{i}", "0")
    repo.commit("base")
    for i in range(commits):
        repo.write("f0", str(i + 1))
        repo.commit(f"f0 #{i + 1}")


def test_a_child_reuses_its_parents_listing_without_walking(
    git_repo: GitRepo, caches: Caches
) -> None:
    linear(git_repo)
    ref = Reference(git_repo)
    cache = caches.new(git_repo)
    parent = git_repo.head()
    ref.check(cache.listing(parent), parent, "")
    assert cache.stats.walks == 1  # nothing stored yet: one walk
    git_repo.write("f1", "changed")
    child = git_repo.commit("child")
    fresh = caches.new(git_repo)  # another cache: the parent's listing comes from SQL
    listing = fresh.listing(child)
    ref.check(listing, child, "")
    assert not listing.from_cache
    assert (fresh.stats.walks, fresh.stats.visits, fresh.stats.reused) == (0, 1, 1)
    assert listing.entries["f1"] is not None and listing.entries["f1"].summary == "child"
    # Ten commits later, still no walk: the chain reaches the stored listing.
    for i in range(10):
        git_repo.write("sub/s1", f"v{i}")
        git_repo.commit(f"s1 #{i}")
    tip = git_repo.head()
    ref.check(fresh.listing(tip), tip, "")
    assert fresh.stats.walks == 0 and fresh.stats.visits == 11


def test_answers_come_from_memory_then_sql_after_a_restart(
    git_repo: GitRepo, caches: Caches, db: Database
) -> None:
    linear(git_repo)
    ref = Reference(git_repo)
    head = git_repo.head()
    first = caches.new(git_repo)
    ref.check(first.listing(head, "sub"), head, "sub")
    again = first.listing(head, "sub")
    assert again.from_cache and first.stats.memory_hits == 1
    # A new process: another Database object and another cache over the same file.
    restarted_db = Database(db.url)
    try:
        restarted = LastCommitCache(restarted_db, SOURCE, Repository.open(git_repo.path))
        listing = restarted.listing(head, "sub")
        ref.check(listing, head, "sub")
        assert listing.from_cache
        assert (restarted.stats.db_hits, restarted.stats.visits, restarted.stats.walks) == (1, 0, 0)
        restarted.repo.close()
    finally:
        restarted_db.dispose()
    # Sources do not share listings.
    other = LastCommitCache(db, "other-source", first.repo)
    assert not other.listing(head, "sub").from_cache
    assert other.stats.db_hits == 0


def test_commit_metadata_matches_git(git_repo: GitRepo, caches: Caches) -> None:
    git_repo.write("a", "0")
    git_repo.commit("first")
    git_repo.write("b", "0")
    git_repo.git("add", "-A")
    git_repo.git(
        "commit", "-q", "-m", "Summary line\n\nbody",
        env={"GIT_AUTHOR_NAME": "Zoë Ü", "GIT_AUTHOR_EMAIL": "zoe@example.com",
             "GIT_AUTHOR_DATE": "1700000000 +0530", "GIT_COMMITTER_DATE": "1700000100 -0200"},
    )
    head = git_repo.head()
    for cache in (caches.new(git_repo), caches.new(git_repo)):  # computed, then from SQL
        info = cache.listing(head).entries["b"]
        assert info is not None
        fields = git_repo.git("log", "-1", "--format=%H%x00%an%x00%ae%x00%at%x00%ct%x00%s%x00%aI",
                              head, "--", "b").rstrip("\n").split("\0")
        assert [info.id, info.author.name, info.author.email, str(info.author.timestamp),
                str(info.committer.timestamp), info.summary] == fields[:6]
        assert info.author.time.isoformat() == fields[6]
    assert caches.opened[1].stats.db_hits == 1


def test_invalid_requests(git_repo: GitRepo, caches: Caches) -> None:
    linear(git_repo, commits=1)
    cache = caches.new(git_repo)
    head = git_repo.head()
    with pytest.raises(InvalidPath):
        cache.listing(head, "../x")
    with pytest.raises(PathNotFound):
        cache.listing(head, "f0")  # a file
    with pytest.raises(PathNotFound):
        cache.listing(head, "nothing/here")
    with pytest.raises(RevisionNotFound):
        cache.listing("0" * 40)
    by_name = cache.listing("main", "sub")  # a revision is resolved first
    assert by_name.commit == head
    assert LastCommitStore(caches.db).count() == 1


class GatedRepository(Repository):
    """A real repository whose history walks wait for the test to open a gate (or fail)."""

    gate: threading.Event
    walking: threading.Event
    fail: bool = False

    def last_commits(
        self, rev: str, path: str = "", *, names: Collection[str] | None = None
    ) -> dict[str, Changeset]:
        self.walking.set()
        assert self.gate.wait(30)
        if self.fail:
            raise GitFailure("the walk failed")
        return super().last_commits(rev, path, names=names)


def gated(repo: GitRepo) -> GatedRepository:
    opened = GatedRepository.open(repo.path)
    assert isinstance(opened, GatedRepository)
    opened.gate, opened.walking = threading.Event(), threading.Event()
    return opened


def test_budget_gives_partial_answers_that_are_never_stored(
    git_repo: GitRepo, caches: Caches
) -> None:
    linear(git_repo)  # f0 changed at the tip; everything else 24 commits down: walks
    ref = Reference(git_repo)
    head = git_repo.head()
    store = LastCommitStore(caches.db)
    repo = gated(git_repo)
    cache = caches.new(repo)
    first = cache.listing(head, budget=0.05)
    assert first.partial and not first.from_cache
    assert list(first.entries) == ref.names(head, "")
    assert {n: c.id for n, c in first.entries.items() if c is not None}.items() <= {
        "f0": head}.items()
    assert repo.walking.wait(30)  # the commits compared; the walk for the rest is under way
    # Asked again while the walk still runs: partial again, the same fill (not a second one).
    listing = cache.listing(head, budget=0)
    assert listing.partial and list(listing.entries) == ref.names(head, "")
    known = {n: c.id for n, c in listing.entries.items() if c is not None}
    assert known == {"f0": head}  # found before the walk: changed by the commit itself
    assert store.get(SOURCE, head, "") is None  # nothing partial was stored
    assert cache.stats.partial == 2 and cache.stats.fills == 0
    repo.gate.set()
    assert cache.wait_idle(30)
    assert cache.stats.walks == 1 and cache.stats.stored == 1
    assert store.get(SOURCE, head, "") is not None
    complete = cache.listing(head, budget=0)
    ref.check(complete, head, "")
    assert complete.from_cache
    # With no budget the caller waits for the whole answer.
    waited = cache.listing(head, "sub")
    ref.check(waited, head, "sub")


def test_a_failed_fill_stores_nothing_and_the_next_call_completes(
    git_repo: GitRepo, caches: Caches
) -> None:
    linear(git_repo)
    ref = Reference(git_repo)
    head = git_repo.head()
    repo = gated(git_repo)
    repo.fail = True
    repo.gate.set()
    cache = caches.new(repo)
    with pytest.raises(GitFailure):
        cache.listing(head)
    with pytest.raises(GitFailure):  # in a worker, within the budget: the caller gets the error
        cache.listing(head, budget=10)
    assert cache.stats.errors == 2 and cache.stats.walks == 2
    assert LastCommitStore(caches.db).count() == 0
    repo.fail = False
    listing = cache.listing(head, budget=10)
    ref.check(listing, head, "")
    assert LastCommitStore(caches.db).count() == 1


def test_concurrent_callers_share_one_fill(git_repo: GitRepo, caches: Caches) -> None:
    linear(git_repo)
    ref = Reference(git_repo)
    head = git_repo.head()
    repo = gated(git_repo)
    cache = caches.new(repo)
    results: list[LastCommitListing] = []
    threads = [threading.Thread(target=lambda: results.append(cache.listing(head)))
               for _ in range(4)]
    for t in threads:
        t.start()
    assert repo.walking.wait(30)
    repo.gate.set()
    for t in threads:
        t.join(30)
    assert len(results) == 4
    for listing in results:
        ref.check(listing, head, "")
    assert cache.stats.walks == 1 and cache.stats.fills == 1


def test_a_merge_reuses_the_listings_of_both_parents(git_repo: GitRepo, caches: Caches) -> None:
    """Entries a merge took from its second parent follow that parent's chain: with both
    parents' listings stored, the merge's listing needs no history walk."""
    linear(git_repo, commits=3)
    git_repo.checkout("-b", "feature")
    git_repo.write("f3", "feature")
    git_repo.write("sub/s3", "feature")
    git_repo.commit("feature")
    git_repo.checkout("main")
    git_repo.write("f4", "main")
    git_repo.commit("main")
    ref = Reference(git_repo)
    filler = caches.new(git_repo)
    for rev in ("main", "feature"):
        for directory in ("", "sub"):
            ref.check(filler.listing(rev, directory), git_repo.rev_parse(rev), directory)
    merge = git_repo.merge("feature")
    cache = caches.new(git_repo)
    for directory in ("", "sub"):
        listing = cache.listing(merge, directory)
        ref.check(listing, merge, directory)
    assert cache.stats.walks == 0 and cache.stats.reused == 2
    assert cache.listing(merge).entries["f3"].summary == "feature"  # type: ignore[union-attr]


def test_cache_for_shares_one_cache_per_source(tmp_path: Path) -> None:
    world = make_world("local", tmp_path, {"a.txt": "1\n", "d/b.txt": "2\n"})
    try:
        rv = world.rv
        with ThreadPoolExecutor(4) as pool:
            found = set(pool.map(lambda _: id(cache_for(rv, "proj")), range(8)))
        assert len(found) == 1
        cache = cache_for(rv, "proj")
        head = world.source.stored.repository.resolve("main")
        listing = cache.listing(head, "d", budget=30)
        assert not listing.partial and listing.entries["b.txt"] is not None
        assert listing.entries["b.txt"].id == head
        with pytest.raises(SourceNotFound):
            cache_for(rv, "nope")
        assert cache.wait_idle(30)  # the answer is stored just after it is handed out
        close_caches(rv)
        assert cache_for(rv, "proj") is not cache  # a new one after closing
        assert cache_for(rv, "proj").listing(head, "d").from_cache  # from SQL
        close_caches(rv)
    finally:
        world.close()


# -- the fallback walk covers only the entries still missing ---------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_last_commits_of_some_names_match_git(git_repo: GitRepo, seed: int) -> None:
    """``Repository.last_commits(names=…)``: for each asked entry the commit git names, the
    others (and names the directory lacks) left out."""
    history = RandomHistory(random.Random(1000 + seed))
    fast_import(git_repo, history.build(20))
    git_repo.git("symbolic-ref", "HEAD", "refs/heads/main")
    rng = random.Random(seed)
    ref = Reference(git_repo)
    with Repository.open(git_repo.path) as repo:
        for commit in commits(git_repo)[-4:]:
            for directory in directories(git_repo, commit):
                listed = ref.names(commit, directory)
                asked = set(rng.sample(listed, rng.randint(0, len(listed)))) | {"not-there"}
                got = repo.last_commits(commit, directory, names=asked)
                want = ref.answers(commit, directory)
                assert {n: c.id for n, c in got.items()} == \
                    {n: want[n] for n in asked if n in want}, (commit, directory, asked)
                assert repo.last_commits(commit, directory, names=()) == {}


def test_the_walk_asks_only_for_the_entries_still_missing(
    git_repo: GitRepo, caches: Caches, monkeypatch: pytest.MonkeyPatch
) -> None:
    linear(git_repo)  # f0 changes in every commit; the other entries only in the first
    tip = git_repo.head()
    cache = caches.new(git_repo, max_visits=1)
    asked: list[frozenset[str] | None] = []
    original = cache.repo.last_commits

    def spy(
        rev: str, path: str = "", *, names: frozenset[str] | None = None
    ) -> dict[str, Changeset]:
        asked.append(None if names is None else frozenset(names))
        return original(rev, path, names=names)

    monkeypatch.setattr(cache.repo, "last_commits", spy)
    listing = cache.listing(tip)
    Reference(git_repo).check(listing, tip, "")
    # the tip's own comparison answered f0; the one walk was asked for the rest only
    assert cache.stats.walks == 1
    assert asked == [frozenset(Reference(git_repo).names(tip, "")) - {"f0"}]


def test_an_answer_found_whole_as_the_budget_ends_is_not_partial(
    git_repo: GitRepo, caches: Caches, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fill has every entry but has not finished (it is being remembered and stored): an
    answer under a budget then is complete, and says so (``partial`` means entries missing)."""
    linear(git_repo)
    head = git_repo.head()
    cache = caches.new(git_repo)
    computed, release = threading.Event(), threading.Event()
    remember = cache._remember

    def held(key: tuple[str, str], result: LastCommitListing) -> None:
        computed.set()
        assert release.wait(30)
        remember(key, result)

    monkeypatch.setattr(cache, "_remember", held)
    cache.listing(head, budget=0)  # starts the fill in the background
    assert computed.wait(30)
    try:
        listing = cache.listing(head, budget=0)  # joins the unfinished fill
        Reference(git_repo).check(listing, head, "")  # complete: not partial, equal to git
        assert not listing.from_cache
    finally:
        release.set()
    assert cache.wait_idle(30)
