"""The history questions candidates and workspaces ask of git, answered in one place.

Why this module exists: a sync needs the candidate's first-parent commits since a workspace's
base, and for a conflicting path the candidate commits (and users) that changed it; a rebase
replays a candidate's commits onto its moved target and remembers which old commit became which;
a submit needs the co-authors of a candidate and the squashed commit's message. Every merge here
is ``Repository.merge`` — git's merge-ort — and nothing here moves a ref.

Commits written through a workspace's publish carry a ``Revisor-User:`` trailer holding the
publisher's encoded user name, so conflicts name *users* (``alice``), not display names; other
commits are attributed to their author's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from revisor.core.refnames import decode_component, encode_component
from revisor.errors import InvalidInput
from revisor.vcs import (
    ChangeBuilder,
    EntryKind,
    FileMode,
    ObjectId,
    Repository,
    Signature,
    VersionedFile,
    commits_to_replay,
    create_commit,
)

__all__ = [
    "USER_TRAILER",
    "Replayed",
    "co_authors",
    "compose_rewrites",
    "first_parent_chain",
    "follow_rewrites",
    "put_file",
    "replay",
    "squash_message",
    "touched",
    "user_of",
    "user_trailer",
]

USER_TRAILER = "Revisor-User"
_USER_LINE = re.compile(rf"^{USER_TRAILER}: ([a-z0-9_%A-F-]+)\s*$", re.MULTILINE)


def user_trailer(user: str) -> str:
    return f"{USER_TRAILER}: {encode_component(user)}"


def user_of(repo: Repository, commit: ObjectId) -> str:
    """Who made ``commit``: the user its ``Revisor-User:`` trailer names, else its author."""
    c = repo.changeset(commit)
    found = _USER_LINE.findall(c.message)
    if found:
        try:
            return decode_component(found[-1])
        except InvalidInput:
            pass
    return c.author.name


def touched(repo: Repository, commit: ObjectId) -> set[str]:
    """The paths ``commit`` changes against its first parent (both sides of a rename)."""
    out: set[str] = set()
    for change in repo.changeset(commit).changes():
        out.add(change.path)
        if change.old_path:
            out.add(change.old_path)
    return out


def first_parent_chain(
    repo: Repository, head: ObjectId, stop: ObjectId
) -> tuple[list[ObjectId], bool]:
    """The first-parent commits from ``head`` back to ``stop`` (excluded), newest first, and
    whether ``stop`` was reached.

    The walk never leaves the commits that ``stop`` does not already contain: when ``stop`` is
    not on ``head``'s first-parent line (the candidate was rewritten), it ends where the two
    histories meet.
    """
    if head == stop:
        return [], True
    own = set(commits_to_replay(repo, stop, head, merges=True))
    chain: list[ObjectId] = []
    current: ObjectId | None = head
    while current is not None and current != stop and current in own:
        chain.append(current)
        parents = repo.changeset(current).parents
        current = parents[0] if parents else None
    return chain, current == stop


def follow_rewrites(rewrites: Mapping[str, str], commit: ObjectId) -> ObjectId:
    """What ``commit`` became after the candidate's rebases (itself if never rewritten)."""
    seen = {commit}
    current = commit
    while current in rewrites:
        current = ObjectId(rewrites[current])
        if current in seen:  # a cycle cannot come from rebases; stop rather than spin
            break
        seen.add(current)
    return current


def compose_rewrites(
    old: Mapping[str, str], new: Mapping[ObjectId, ObjectId], keep: Iterable[str]
) -> dict[str, str]:
    """``old`` followed by ``new``, flattened (each key maps straight to its final commit) and
    limited to the commits in ``keep`` (the bases workspaces still remember)."""
    merged: dict[str, str] = {k: new.get(ObjectId(v), v) for k, v in old.items()}
    for k, v in new.items():
        merged.setdefault(k, v)
    wanted = set(keep)
    return {k: v for k, v in merged.items() if k in wanted and k != v}


@dataclass(frozen=True)
class Replayed:
    """A replay's outcome: the new head and old → new commit, or the paths that stopped it."""

    head: ObjectId
    rewrites: dict[ObjectId, ObjectId]
    conflicts: tuple[str, ...] = ()
    failed_at: ObjectId | None = None

    @property
    def clean(self) -> bool:
        return self.failed_at is None


def replay(
    repo: Repository, onto: ObjectId, head: ObjectId, committer: Signature
) -> Replayed:
    """Replay the commits ``git rebase onto`` would take from ``head`` (merges left out) onto
    ``onto``, each with ``merge(current, commit, base=its parent)``, keeping author and message;
    a commit that becomes empty is dropped, as git drops it.

    ``rewrites`` maps every commit of ``head``'s first-parent line that ``onto`` lacks — merge
    commits too, and the commit where that line meets ``onto``'s history — to the new commit
    holding the same changes.
    """
    current = onto
    current_tree = repo.changeset(onto).tree
    done: dict[ObjectId, ObjectId] = {}
    for oid in commits_to_replay(repo, onto, head):
        c = repo.changeset(oid)
        parent = c.parents[0] if c.parents else None
        if parent is None:
            raise InvalidInput(f"cannot replay {oid[:12]}: it has no parent")
        result = repo.merge(current, oid, base=parent)
        if not result.clean:
            return Replayed(current, done, result.conflicts, oid)
        if result.tree != current_tree:
            current = create_commit(repo, result.tree, [current], c.message, c.author, committer)
            current_tree = result.tree
        done[oid] = current
    chain, _ = first_parent_chain(repo, head, onto)
    rewrites: dict[ObjectId, ObjectId] = {}
    if chain:
        last = repo.changeset(chain[-1]).parents
        if last:
            rewrites[last[0]] = onto  # where the old line met the target's history
    previous = onto
    for oid in reversed(chain):
        previous = done.get(oid, previous)
        rewrites[oid] = previous
    return Replayed(current, rewrites)


def co_authors(
    repo: Repository, upstream: ObjectId, head: ObjectId, exclude: Iterable[str]
) -> list[tuple[str, str]]:
    """(name, email) of every author of the non-merge commits in ``upstream..head``, oldest
    first, once per email (case-insensitive), leaving out the emails in ``exclude``."""
    seen = {e.lower() for e in exclude}
    out: list[tuple[str, str]] = []
    for oid in commits_to_replay(repo, upstream, head):
        author = repo.changeset(oid).author
        key = author.email.lower()
        if key in seen:
            continue
        seen.add(key)
        out.append((author.name, author.email))
    return out


def squash_message(title: str, description: str, authors: Sequence[tuple[str, str]]) -> str:
    """The candidate's squashed commit message: title, blank line, description, and one
    ``Co-authored-by: Name <email>`` trailer per co-author (GitHub's and GitLab's form)."""
    parts = [title.strip()]
    if description.strip():
        parts.append(description.strip())
    if authors:
        parts.append("\n".join(f"Co-authored-by: {n} <{e}>" for n, e in authors))
    return "\n\n".join(parts) + "\n"


def put_file(builder: ChangeBuilder, path: str, version: VersionedFile | None) -> None:
    """Make ``path`` in ``builder`` what ``version`` is (None: absent), whatever is there now."""
    if version is None:
        if builder.exists(path):
            builder.delete(path)
        return
    if builder.mode(path) == FileMode.DIRECTORY:
        builder.delete(path)
    if version.kind is EntryKind.SYMLINK:
        builder.symlink(path, version.data.decode("utf-8", "surrogateescape"))
    elif version.kind is EntryKind.SUBMODULE:
        raise InvalidInput(f"{path!r} is a submodule: workspaces do not change submodules")
    else:
        builder.write(path, version.data, executable=version.executable)
