"""Commits made from a tree someone else computed, and the list of commits a rebase replays.

Why this module exists: :class:`~revisor.vcs.ChangeBuilder` makes a commit from *changes* staged
on one parent. Merging a proposal needs commits whose tree was computed elsewhere (by
``Repository.merge``, i.e. git's merge-ort): a merge commit with two parents, a squash commit, each
step of a rebase. Those are written here, and only here outside the builder, so pygit2 stays inside
``revisor.vcs``. Nothing moves a ref: the caller does, with a compare-and-swap.
"""

from __future__ import annotations

from collections.abc import Sequence

import pygit2

from revisor.errors import InvalidInput, RevisionNotFound
from revisor.vcs.builder import to_pygit2_signature
from revisor.vcs.repository import Repository
from revisor.vcs.types import ObjectId, Signature

__all__ = ["commits_to_replay", "create_commit"]


def create_commit(
    repo: Repository,
    tree: ObjectId,
    parents: Sequence[ObjectId],
    message: str,
    author: Signature,
    committer: Signature,
) -> ObjectId:
    """Write a commit with exactly this tree and these parents (in order); move no ref.

    The tree and the parents must already exist in ``repo`` (RevisionNotFound otherwise). A
    message is given a final newline, as git does.
    """
    pg = repo.pg
    if pg.get(tree) is None or not isinstance(pg.get(tree), pygit2.Tree):
        raise RevisionNotFound(tree)
    for parent in parents:
        if not isinstance(pg.get(parent), pygit2.Commit):
            raise RevisionNotFound(parent)
    if len(set(parents)) != len(parents):
        raise InvalidInput("a commit cannot name the same parent twice")
    if not message.endswith("\n"):
        message += "\n"
    oid = pg.create_commit(
        None,
        to_pygit2_signature(author),
        to_pygit2_signature(committer),
        message,
        pygit2.Oid(hex=tree),
        [pygit2.Oid(hex=p) for p in parents],
    )
    return ObjectId(str(oid))


def commits_to_replay(
    repo: Repository, upstream: ObjectId, head: ObjectId, *, merges: bool = False
) -> list[ObjectId]:
    """The commits ``git rebase upstream`` would replay from ``head``, oldest first.

    That is ``git rev-list --reverse --topo-order --no-merges upstream..head``: the commits
    reachable from ``head`` and not from ``upstream``, merge commits left out (a rebase
    linearizes; the merged side's own commits are in the list). ``merges``: keep them too.
    """
    pg = repo.pg
    walker = pg.walk(
        pygit2.Oid(hex=head),
        pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE,
    )
    walker.hide(pygit2.Oid(hex=upstream))
    return [ObjectId(str(c.id)) for c in walker if merges or len(c.parent_ids) <= 1]
