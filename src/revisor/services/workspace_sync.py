"""Seed 001's synchronisation flow for one workspace, and resolving what it could not take.

Why this module exists: it is the heart of the per-user design, kept apart from file saving.

**Sync.** The candidate's first-parent commits the workspace has not taken are c1..cn (oldest to
newest), found by walking back from the candidate's head to the workspace's base. Then:

1. no unpublished changes in the workspace → it moves to cn (nothing of the user's is in it);
2. else ``merge(workspace, cn, base)`` clean → a merge commit on the workspace (parents: the
   workspace's head, cn), authored by the user; the workspace is in sync with cn;
3. else the workspace advances to the **newest** ci that still merges cleanly with the user's
   changes (trying cn-1, cn-2, … in turn) and records the remaining conflicts: the paths of
   ``merge(new head, cn, base=ci)`` and, for each, the candidate commits after ci that changed it
   and their users. If not even c1 merges cleanly, the workspace stays where it is.

Every merge is git's (``Repository.merge`` with an explicit base: the commit the workspace's
changes are relative to). The user's commits are never rewritten; a merge whose result is the
candidate commit itself (every change of the user's is in it already — a publish that crashed
before the workspace followed) moves the workspace to that commit.

After the candidate was rebased (its commits replaced), a workspace still remembers an old base;
the candidate's ``rewrites`` say which new commit replaced it, and that commit — which also
carries the target's movement — is the oldest one the workspace can take. A conflict it causes
is attributed to the target's own commits that changed the path, and their authors.

**Resolve.** A user's decisions (content, ``ours``, ``theirs``) are saved into the workspace as
one commit and remembered with the candidate version they were made against. When every
conflicting path has a decision that still stands (the candidate has not changed that path
since), the workspace records a merge with the candidate's head whose tree is git's merge with
the decided paths taken from the workspace; otherwise the rest stay listed. Nothing is resolved
silently: a path that starts conflicting meanwhile is listed too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from revisor.db.candidates import Candidate, Resolution, WorkspaceConflict, WorkspaceRecord
from revisor.db.models import utcnow
from revisor.errors import RefConflict, Unavailable, ValidationFailed
from revisor.services.candidate_git import (
    first_parent_chain,
    follow_rewrites,
    put_file,
    touched,
    user_of,
)
from revisor.services.candidate_types import (
    ConflictVersions,
    FileVersion,
    ResolveResult,
    SyncResult,
)
from revisor.vcs import ChangeBuilder, FileMode, ObjectId, commits_to_replay, create_commit

if TYPE_CHECKING:
    from revisor.services.workspaces import Workspace

__all__ = ["attribute", "conflict_versions", "pending_commits", "resolve", "sync"]

_ATTEMPTS = 50


def pending_commits(
    ws: Workspace, cand: Candidate, rec: WorkspaceRecord, cand_head: ObjectId
) -> tuple[list[ObjectId], ObjectId | None]:
    """The candidate commits the workspace has not taken, newest first, and — when a rebase
    replaced the workspace's base — the commit that replaced it (the last of the list)."""
    stop = follow_rewrites(cand.rewrites, rec.base_commit)
    chain, _ = first_parent_chain(ws.ctx.repo, cand_head, stop)
    if stop != rec.base_commit:
        chain.append(stop)
        return chain, stop
    return chain, None


def attribute(
    ws: Workspace,
    cand: Candidate,
    rec: WorkspaceRecord,
    cand_head: ObjectId,
    paths: Iterable[str],
    chain: list[ObjectId] | None = None,
    mapped: ObjectId | None = None,
) -> tuple[WorkspaceConflict, ...]:
    """For each path, the candidate commits (oldest first) among ``chain`` (default: those the
    workspace has not taken) that changed it, and their users. ``mapped``: the commit of the
    chain that replaced the workspace's base in a rebase (see :func:`pending_commits`)."""
    repo = ws.ctx.repo
    if chain is None:
        chain, mapped = pending_commits(ws, cand, rec, cand_head)
    changed: dict[ObjectId, set[str]] = {}
    for c in chain:
        if c == mapped:  # a rebased base: what changed from the old base to its replacement
            diffs = repo.diff(rec.base_commit, c)
            changed[c] = {p for d in diffs for p in (d.change.path, d.change.old_path) if p}
        else:
            changed[c] = touched(repo, c)
    # What the replacement brought is the target's movement: its own commits say who did it.
    target_moves: dict[ObjectId, set[str]] = {}
    if mapped is not None:
        for t in commits_to_replay(repo, rec.base_commit, cand.base_commit):
            target_moves[t] = touched(repo, t)
    users: dict[ObjectId, str] = {}
    out = []
    for path in sorted(set(paths)):
        commits: list[ObjectId] = []
        for c in reversed(chain):
            if path not in changed[c]:
                continue
            if c == mapped:
                commits += [t for t, p in target_moves.items() if path in p] or [c]
            else:
                commits.append(c)
        names: list[str] = []
        for c in commits:
            if c not in users:
                users[c] = user_of(repo, c)
            if users[c] not in names:
                names.append(users[c])
        out.append(WorkspaceConflict(path, tuple(commits), tuple(names)))
    return tuple(out)


def sync(ws: Workspace) -> SyncResult:
    """See the module docstring. The caller holds the workspace lock."""
    for _ in range(_ATTEMPTS):
        result = _sync_once(ws)
        if result is not None:
            return result
    raise Unavailable(f"{ws!r}: the workspace kept moving during the sync", retry_after=0.5)


def _sync_once(ws: Workspace) -> SyncResult | None:
    repo, ctx = ws.ctx.repo, ws.ctx
    cand = ws.candidate()
    ctx.require_open(cand, "sync a workspace of")
    rec = ctx.store.get_workspace(ws.candidate_id, ws.user)
    ws_head, cand_head = ws.head(rec), cand.head_commit
    chain, mapped = pending_commits(ws, cand, rec, cand_head)
    if not chain:
        if rec.conflicts or rec.resolutions:
            ctx.store.update_workspace(ws.candidate_id, ws.user, conflicts=(), resolutions={})
        return SyncResult(ws.user, ws_head, rec.base_commit, True, False)
    base = rec.merge_base
    tree = repo.changeset
    target: ObjectId | None = None
    new_head = ws_head
    first_conflicts: tuple[str, ...] = ()
    if tree(ws_head).tree == tree(base).tree:
        target = new_head = chain[0]  # no unpublished changes: take everything
    else:
        for i, ci in enumerate(chain):
            merged = repo.merge(ws_head, ci, base=base)
            if i == 0:
                first_conflicts = merged.conflicts
            if merged.clean:
                target = ci
                if merged.tree == tree(ci).tree:
                    new_head = ci
                else:
                    author = ws._author(rec)
                    message = f"Sync with candidate {cand.name} at {ci[:12]}\n"
                    new_head = create_commit(repo, merged.tree, [ws_head, ci], message, author,
                                             ctx.committer())
                break
    if target is None:
        newer, remaining = chain, first_conflicts
    else:
        newer = chain[: chain.index(target)]
        remaining = repo.merge(new_head, chain[0], base=target).conflicts if newer else ()
    conflicts = (
        attribute(ws, cand, rec, cand_head, remaining, chain=newer, mapped=mapped)
        if newer else ()
    )
    if new_head != ws_head:
        try:
            repo.set_ref(ws.ref, new_head, expected=ws_head)
        except RefConflict:
            return None  # the user saved meanwhile: sync again from their new head
    fields: dict[str, object] = {"conflicts": conflicts, "last_synced_at": utcnow()}
    listed = {c.path for c in conflicts}
    fields["resolutions"] = {p: r for p, r in rec.resolutions.items() if p in listed}
    if target is not None:
        fields.update(base_commit=target, changes_base=None)
    ws._bookkeep(
        rec, "workspace.sync", ws_head, new_head,
        {"synced_to": target, "candidate_head": cand_head,
         "conflicts": sorted(listed), "pending": len(newer)},
        strict=True, **fields,
    )
    synced_to = target if target is not None else rec.base_commit
    return SyncResult(ws.user, new_head, synced_to, target == chain[0], new_head != ws_head,
                      conflicts, tuple(reversed(newer)))


def _version(ws: Workspace, commit: ObjectId, path: str) -> FileVersion | None:
    f = ws._version(commit, path)
    if f is None:
        return None
    return FileVersion(f.id, f.mode, f.data)


def conflict_versions(ws: Workspace) -> list[ConflictVersions]:
    """See :meth:`Workspace.conflicts`."""
    rec = ws.record()
    cand = ws.candidate()
    out = []
    for c in rec.conflicts:
        theirs = _version(ws, cand.head_commit, c.path)
        decided = rec.resolutions.get(c.path)
        resolved = decided is not None and decided.theirs == (theirs.etag if theirs else None)
        out.append(ConflictVersions(
            c.path, _version(ws, rec.merge_base, c.path), theirs,
            _version(ws, rec.head_commit, c.path), c.candidate_commits, c.users, resolved,
        ))
    return out


def resolve(ws: Workspace, choices: Mapping[str, bytes | str]) -> ResolveResult:
    """See :meth:`Workspace.resolve`. The caller holds the workspace lock."""
    ctx = ws.ctx
    cand = ws.candidate()
    ctx.require_open(cand, "resolve conflicts in")
    rec = ctx.store.get_workspace(ws.candidate_id, ws.user)
    listed = {c.path for c in rec.conflicts}
    problems = []
    for path, choice in choices.items():
        if path not in listed:
            problems.append((f"resolutions[{path!r}]", "is not a conflicting path"))
        elif not isinstance(choice, bytes) and choice not in ("ours", "theirs"):
            problems.append((f"resolutions[{path!r}]", "must be content (bytes), 'ours' or "
                                                       "'theirs'"))
    if problems:
        raise ValidationFailed(problems, hint="list the workspace's conflicts; sync first")
    if not listed:
        return ResolveResult(ws.user, True, ws.head(rec), rec.base_commit)
    resolutions = dict(rec.resolutions)
    if choices:
        theirs = {p: ws._version(cand.head_commit, p) for p in choices}

        def apply(b: ChangeBuilder, head: ObjectId) -> None:
            for path, choice in choices.items():
                if choice == "theirs":
                    put_file(b, path, theirs[path])
                elif isinstance(choice, bytes):
                    if b.mode(path) == FileMode.DIRECTORY:
                        b.delete(path)
                    b.write(path, choice)

        names = ", ".join(sorted(choices))
        head = ws._save(f"Resolve conflicts in {names}", "workspace.resolve", apply,
                        {"paths": sorted(choices)})
        for path in choices:
            mine, their = ws._version(head, path), theirs[path]
            resolutions[path] = Resolution(
                path, mine.id if mine else None, mine.mode if mine else None,
                their.id if their else None,
            )
        ctx.store.update_workspace(ws.candidate_id, ws.user, resolutions=resolutions)
    for _ in range(_ATTEMPTS):
        result = _finish(ws, resolutions)
        if result is not None:
            return result
    raise Unavailable(f"{ws!r}: the workspace kept moving during the resolution", retry_after=0.5)


def _finish(ws: Workspace, resolutions: Mapping[str, Resolution]) -> ResolveResult | None:
    """Record the merge with the candidate's head if every conflict has a standing decision;
    else list what is left. None: lost a race with a save, try again."""
    repo, ctx = ws.ctx.repo, ws.ctx
    cand = ws.candidate()
    rec = ctx.store.get_workspace(ws.candidate_id, ws.user)
    ws_head, cand_head = ws.head(rec), cand.head_commit
    merged = repo.merge(ws_head, cand_head, base=rec.merge_base)
    need = {c.path for c in rec.conflicts} | set(merged.conflicts)
    standing = {p for p, r in resolutions.items() if r.theirs == ws._etag_at(cand_head, p)}
    remaining = tuple(sorted(need - standing))
    if remaining:
        conflicts = attribute(ws, cand, rec, cand_head, need)
        ctx.store.update_workspace(
            ws.candidate_id, ws.user, conflicts=conflicts,
            resolutions={p: r for p, r in resolutions.items() if p in need},
        )
        return ResolveResult(ws.user, False, ws_head, None, remaining)
    committer = ctx.committer()
    scratch = create_commit(repo, merged.tree, [], "revisor: merge being resolved\n", committer,
                            committer)
    builder = repo.builder(scratch)
    for path in sorted(need):
        put_file(builder, path, ws._version(ws_head, path))
    message = f"Resolve conflicts with candidate {cand.name} at {cand_head[:12]}\n"
    commit = create_commit(repo, builder.tree(), [ws_head, cand_head], message, ws._author(rec),
                           committer)
    try:
        repo.set_ref(ws.ref, commit, expected=ws_head)
    except RefConflict:
        return None
    ws._bookkeep(
        rec, "workspace.resolve", ws_head, commit,
        {"synced_to": cand_head, "paths": sorted(need)}, strict=True,
        base_commit=cand_head, changes_base=None, conflicts=(), resolutions={},
        last_synced_at=utcnow(),
    )
    return ResolveResult(ws.user, True, commit, cand_head)
