"""Differences between two trees: per-path changes and unified patches.

Rename detection follows git's defaults (``diff.renames``: exact and similar renames at 50%), and
a file that becomes a symlink or a submodule is a *type change*, as ``git diff-tree`` reports it.
"""

from __future__ import annotations

import pygit2
from pygit2.enums import DeltaStatus, DiffFind, DiffOption

from revisor.vcs.types import Change, ChangeKind, FileDiff, ObjectId

__all__ = ["changes", "diff"]

_KIND = {
    DeltaStatus.ADDED: ChangeKind.ADDED,
    DeltaStatus.DELETED: ChangeKind.DELETED,
    DeltaStatus.MODIFIED: ChangeKind.MODIFIED,
    DeltaStatus.RENAMED: ChangeKind.RENAMED,
    DeltaStatus.COPIED: ChangeKind.COPIED,
    DeltaStatus.TYPECHANGE: ChangeKind.TYPE_CHANGED,
}
_NULL = "0" * 40


def _tree(pg: pygit2.Repository, commit: ObjectId | None) -> pygit2.Tree | None:
    if commit is None:
        return None
    tree: pygit2.Tree = pg[commit].peel(pygit2.Tree)
    return tree


def _diff(pg: pygit2.Repository, old: ObjectId | None, new: ObjectId) -> pygit2.Diff:
    flags = DiffOption.INCLUDE_TYPECHANGE
    new_tree = _tree(pg, new)
    old_tree = _tree(pg, old)
    assert new_tree is not None
    d = (
        old_tree.diff_to_tree(new_tree, flags=flags)
        if old_tree is not None
        else new_tree.diff_to_tree(flags=flags, swap=True)
    )
    d.find_similar(flags=DiffFind.FIND_RENAMES)
    return d


def _change(delta: pygit2.DiffDelta) -> Change:
    kind = _KIND.get(delta.status, ChangeKind.MODIFIED)
    old_id = str(delta.old_file.id)
    new_id = str(delta.new_file.id)
    return Change(
        kind=kind,
        path=delta.new_file.path if kind is not ChangeKind.DELETED else delta.old_file.path,
        old_path=delta.old_file.path if kind is not ChangeKind.ADDED else None,
        old_mode=int(delta.old_file.mode) or None,
        new_mode=int(delta.new_file.mode) or None,
        old_id=ObjectId(old_id) if old_id != _NULL else None,
        new_id=ObjectId(new_id) if new_id != _NULL else None,
    )


def changes(pg: pygit2.Repository, old: ObjectId | None, new: ObjectId) -> tuple[Change, ...]:
    """What changed from commit ``old`` (None: nothing) to commit ``new``, per path, sorted."""
    d = _diff(pg, old, new)
    return tuple(sorted((_change(delta) for delta in d.deltas), key=lambda c: c.path))


def _wanted(change: Change, paths: list[str] | None) -> bool:
    if not paths:
        return True
    for p in paths:
        for candidate in (change.path, change.old_path):
            if candidate is not None and (
                p == "" or candidate == p or candidate.startswith(p + "/")
            ):
                return True
    return False


def diff(
    pg: pygit2.Repository, old: ObjectId | None, new: ObjectId, paths: list[str] | None = None
) -> list[FileDiff]:
    """Per-file diffs from commit ``old`` to commit ``new``, limited to ``paths`` if given."""
    out = []
    for patch in _diff(pg, old, new):
        if patch is None:
            continue
        change = _change(patch.delta)
        if not _wanted(change, paths):
            continue
        _, additions, deletions = patch.line_stats
        out.append(
            FileDiff(
                change=change,
                binary=bool(patch.delta.is_binary),
                patch=patch.text or "",
                additions=additions,
                deletions=deletions,
            )
        )
    return out
