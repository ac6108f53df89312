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

**Bulk sync.** After the candidate moves, :func:`sync_all` applies the same rule to every
workspace of the candidate in one pass (:meth:`Candidates.sync_workspaces
<revisor.services.candidates.Candidates.sync_workspaces>`). Every workspace's lock is taken
without waiting (a busy one — a publish, sync or resolve of its own under way — is synced on its
own afterwards, when the pass holds no lock); then the rows are read in one query and the refs in
one listing; a workspace already at the candidate's head needs nothing more (nothing is written
for it). The history answers (the pending chain per remembered base, trees, touched paths,
users) are computed once for all of them; a workspace with nothing unpublished needs no merge (it
fast-forwards to the candidate's head), the others' merges go through the repository's one merge
process. Then every ref move — fast-forwards and merge commits alike — is ONE
``Repository.update_refs`` call of compare-and-swaps, and every row and audit entry is written in
ONE database transaction (executemany). A save that lands on a workspace during the pass makes
its compare-and-swap, and so the whole ref transaction, fail: that workspace is dropped from the
pass and synced on its own, the rest are applied again. Per workspace, the outcome is exactly
what :func:`sync` gives.

**Merging without synthetic commits.** A merge with an explicit base costs three synthetic
commits (see ``revisor.vcs.merge``). When the graph shows that the workspace's base is the only
common ancestor git would find anyway — the base is an ancestor of the workspace's head and of the
pending candidate commits, and nothing the head reaches beyond the base is reached by the
candidate — ``merge(head, ci)`` gives the same tree and the same conflicting paths without them
(:meth:`History.natural_base`); a sync and a bulk sync both use it.

**Resolve.** A user's decisions (content, ``ours``, ``theirs``) are saved into the workspace as
one commit and remembered with the candidate version they were made against. When every
conflicting path has a decision that still stands (the candidate has not changed that path
since), the workspace records a merge with the candidate's head whose tree is git's merge with
the decided paths taken from the workspace; otherwise the rest stay listed. Nothing is resolved
silently: a path that starts conflicting meanwhile is listed too.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from revisor.core.refnames import workspace_prefix, workspace_ref
from revisor.db.audit import actor_of
from revisor.db.candidates import (
    AuditRecord,
    Candidate,
    Resolution,
    WorkspaceConflict,
    WorkspaceRecord,
)
from revisor.db.models import utcnow
from revisor.errors import RefConflict, Unavailable, ValidationFailed
from revisor.services.candidate_git import (
    first_parent_chain,
    follow_rewrites,
    put_file,
    touched,
    user_of,
)
from revisor.services.candidate_support import CandidateContext
from revisor.services.candidate_types import (
    ConflictVersions,
    FileVersion,
    ResolveResult,
    SyncResult,
)
from revisor.vcs import (
    ChangeBuilder,
    FileMode,
    ObjectId,
    RefUpdate,
    Repository,
    Signature,
    commits_to_replay,
    create_commit,
)

if TYPE_CHECKING:
    from revisor.services.workspaces import Workspace

__all__ = [
    "History",
    "SyncPlan",
    "attribute",
    "conflict_versions",
    "pending_commits",
    "plan_sync",
    "resolve",
    "sync",
    "sync_all",
]

_ATTEMPTS = 50


class History:
    """What a sync asks of one candidate's history, each answer computed once: the pending
    first-parent chain for each base a workspace remembers, commit trees, the paths each commit
    touched and its user. One per sync (or per bulk pass over every workspace of a candidate, where
    the workspaces share most of the answers)."""

    def __init__(self, repo: Repository, cand: Candidate) -> None:
        self.repo = repo
        self.cand = cand
        self._chains: dict[ObjectId, tuple[ObjectId, ...]] = {}
        self._trees: dict[ObjectId, ObjectId] = {}
        self._touched: dict[ObjectId, set[str]] = {}
        self._users: dict[ObjectId, str] = {}
        self._diffs: dict[tuple[ObjectId, ObjectId], set[str]] = {}
        self._target_moves: dict[ObjectId, dict[ObjectId, set[str]]] = {}
        self._reached: dict[ObjectId, bool] = {}
        self._beyond_base: dict[tuple[ObjectId, ObjectId], set[ObjectId]] = {}

    def natural_base(
        self, rec: WorkspaceRecord, ws_head: ObjectId, cand_head: ObjectId,
        mapped: ObjectId | None,
    ) -> bool:
        """Whether the workspace's base is the ONE common ancestor git finds for its head and
        any pending candidate commit, so that ``merge(head, ci)`` is exactly ``merge(head, ci,
        base=base)`` (same tree, same conflicting paths) without the three synthetic commits an
        explicit base costs. Checked on the graph: the base was not replaced by a rebase and is
        an ancestor of the head and of every pending commit, and no commit the head reaches
        beyond the base is one the candidate reaches beyond it — so every common ancestor is an
        ancestor of the base."""
        base = rec.base_commit
        if mapped is not None or rec.changes_base is not None:
            return False
        if not self._reached.get(base, False) or not self.repo.is_ancestor(base, ws_head):
            return False
        own = commits_to_replay(self.repo, base, ws_head, merges=True)
        return self._beyond(base, cand_head).isdisjoint(own)

    def _beyond(self, base: ObjectId, cand_head: ObjectId) -> set[ObjectId]:
        """The commits the candidate's head reaches and ``base`` does not (``base..head``)."""
        found = self._beyond_base.get((base, cand_head))
        if found is None:
            found = set(commits_to_replay(self.repo, base, cand_head, merges=True))
            self._beyond_base[(base, cand_head)] = found
        return found

    def tree(self, commit: ObjectId) -> ObjectId:
        tree = self._trees.get(commit)
        if tree is None:
            tree = self._trees[commit] = self.repo.changeset(commit).tree
        return tree

    def pending(
        self, rec: WorkspaceRecord, cand_head: ObjectId
    ) -> tuple[list[ObjectId], ObjectId | None]:
        """See :func:`pending_commits`."""
        stop = follow_rewrites(self.cand.rewrites, rec.base_commit)
        chain = self._chains.get(stop)
        if chain is None:
            found, reached = first_parent_chain(self.repo, cand_head, stop)
            chain = self._chains[stop] = tuple(found)
            self._reached[stop] = reached
        if stop != rec.base_commit:
            return [*chain, stop], stop
        return list(chain), None

    def touched(self, commit: ObjectId) -> set[str]:
        paths = self._touched.get(commit)
        if paths is None:
            paths = self._touched[commit] = touched(self.repo, commit)
        return paths

    def changed(self, a: ObjectId, b: ObjectId) -> set[str]:
        """The paths that differ from ``a`` to ``b`` (both sides of a rename)."""
        paths = self._diffs.get((a, b))
        if paths is None:
            diffs = self.repo.diff(a, b)
            paths = {p for d in diffs for p in (d.change.path, d.change.old_path) if p}
            self._diffs[(a, b)] = paths
        return paths

    def user(self, commit: ObjectId) -> str:
        name = self._users.get(commit)
        if name is None:
            name = self._users[commit] = user_of(self.repo, commit)
        return name

    def target_moves(self, old_base: ObjectId) -> dict[ObjectId, set[str]]:
        """The target's own commits a rebase brought in since ``old_base``, with their paths."""
        moves = self._target_moves.get(old_base)
        if moves is None:
            moves = self._target_moves[old_base] = {
                t: self.touched(t)
                for t in commits_to_replay(self.repo, old_base, self.cand.base_commit)
            }
        return moves

    def attribute(
        self,
        rec: WorkspaceRecord,
        paths: Iterable[str],
        chain: list[ObjectId],
        mapped: ObjectId | None,
    ) -> tuple[WorkspaceConflict, ...]:
        """See :func:`attribute`."""
        changed: dict[ObjectId, set[str]] = {}
        for c in chain:
            # a rebased base: what changed from the old base to its replacement
            changed[c] = self.changed(rec.base_commit, c) if c == mapped else self.touched(c)
        # What the replacement brought is the target's movement: its own commits say who did it.
        target_moves = self.target_moves(rec.base_commit) if mapped is not None else {}
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
                name = self.user(c)
                if name not in names:
                    names.append(name)
            out.append(WorkspaceConflict(path, tuple(commits), tuple(names)))
        return tuple(out)


def pending_commits(
    ws: Workspace, cand: Candidate, rec: WorkspaceRecord, cand_head: ObjectId
) -> tuple[list[ObjectId], ObjectId | None]:
    """The candidate commits the workspace has not taken, newest first, and — when a rebase
    replaced the workspace's base — the commit that replaced it (the last of the list)."""
    return History(ws.ctx.repo, cand).pending(rec, cand_head)


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
    history = History(ws.ctx.repo, cand)
    if chain is None:
        chain, mapped = history.pending(rec, cand_head)
    return history.attribute(rec, paths, chain, mapped)


@dataclass(frozen=True)
class SyncPlan:
    """What seed 001's rule decided for one workspace, before anything is written: the head it
    moves to (a candidate commit, or a merge commit already written), the candidate commit it is
    then in sync with (None: not even the oldest pending one merges cleanly), and the conflicts
    left with the candidate commits after that one."""

    rec: WorkspaceRecord
    ws_head: ObjectId
    cand_head: ObjectId
    chain: tuple[ObjectId, ...]  # pending candidate commits, newest first
    new_head: ObjectId
    target: ObjectId | None
    conflicts: tuple[WorkspaceConflict, ...] = ()
    newer: tuple[ObjectId, ...] = ()  # pending commits not taken, newest first

    @property
    def current(self) -> bool:
        """Nothing was pending: the workspace is in sync with the candidate's head already."""
        return not self.chain

    @property
    def moves(self) -> bool:
        return self.new_head != self.ws_head

    def fields(self) -> dict[str, object]:
        """The workspace row's new values (its head apart)."""
        listed = {c.path for c in self.conflicts}
        fields: dict[str, object] = {
            "conflicts": self.conflicts,
            "last_synced_at": utcnow(),
            "resolutions": {p: r for p, r in self.rec.resolutions.items() if p in listed},
        }
        if self.target is not None:
            fields.update(base_commit=self.target, changes_base=None)
        return fields

    def details(self) -> dict[str, object]:
        """The audit entry's details."""
        return {"synced_to": self.target, "candidate_head": self.cand_head,
                "conflicts": sorted(c.path for c in self.conflicts), "pending": len(self.newer)}

    def result(self) -> SyncResult:
        if self.current:
            return SyncResult(self.rec.user, self.ws_head, self.rec.base_commit, True, False)
        synced_to = self.target if self.target is not None else self.rec.base_commit
        return SyncResult(self.rec.user, self.new_head, synced_to, self.target == self.chain[0],
                          self.moves, self.conflicts, tuple(reversed(self.newer)))


def plan_sync(
    history: History,
    rec: WorkspaceRecord,
    ws_head: ObjectId,
    cand_head: ObjectId,
    committer: Signature,
) -> SyncPlan:
    """Seed 001's rule for one workspace (see the module docstring), computed against the
    candidate at ``cand_head``. Writes at most one object, the workspace's merge commit; moves
    nothing."""
    repo, cand = history.repo, history.cand
    chain, mapped = history.pending(rec, cand_head)
    if not chain:
        return SyncPlan(rec, ws_head, cand_head, (), ws_head, None)
    base = rec.merge_base
    tree = history.tree
    target: ObjectId | None = None
    new_head = ws_head
    first_conflicts: tuple[str, ...] = ()
    if tree(ws_head) == tree(base):
        target = new_head = chain[0]  # no unpublished changes: take everything
    else:
        natural = history.natural_base(rec, ws_head, cand_head, mapped)
        for i, ci in enumerate(chain):
            merged = repo.merge(ws_head, ci) if natural else repo.merge(ws_head, ci, base=base)
            if i == 0:
                first_conflicts = merged.conflicts
            if merged.clean:
                target = ci
                if merged.tree == tree(ci):
                    new_head = ci
                else:
                    author = Signature.now(rec.author_name, rec.author_email)
                    message = f"Sync with candidate {cand.name} at {ci[:12]}\n"
                    new_head = create_commit(repo, merged.tree, [ws_head, ci], message, author,
                                             committer)
                break
    if target is None:
        newer, remaining = chain, first_conflicts
    else:
        newer = chain[: chain.index(target)]
        remaining = repo.merge(new_head, chain[0], base=target).conflicts if newer else ()
    conflicts = history.attribute(rec, remaining, newer, mapped) if newer else ()
    return SyncPlan(rec, ws_head, cand_head, tuple(chain), new_head, target, conflicts,
                    tuple(newer))


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
    plan = plan_sync(History(repo, cand), rec, ws.head(rec), cand.head_commit, ctx.committer())
    if plan.current:
        if rec.conflicts or rec.resolutions:
            ctx.store.update_workspace(ws.candidate_id, ws.user, conflicts=(), resolutions={})
        return plan.result()
    if plan.moves:
        try:
            repo.set_ref(ws.ref, plan.new_head, expected=plan.ws_head)
        except RefConflict:
            return None  # the user saved meanwhile: sync again from their new head
    ws._bookkeep(rec, "workspace.sync", plan.ws_head, plan.new_head, plan.details(),
                 strict=True, **plan.fields())
    return plan.result()


# -- every workspace of a candidate at once -------------------------------------------------------
def sync_all(ctx: CandidateContext, candidate_id: int) -> list[SyncResult]:
    """Sync every workspace of the candidate (see "Bulk sync" in the module docstring); the
    results in the order of :meth:`Candidates.workspaces`."""
    cand = ctx.candidate(candidate_id)
    ctx.require_open(cand, "sync the workspaces of")
    history = History(ctx.repo, cand)
    users = ctx.store.workspace_users(candidate_id)
    with ctx.locks.try_workspaces(candidate_id, users) as held:
        # Under a workspace's lock only a save changes it (its ref, by compare-and-swap): the
        # rows are read once, now.
        records = ctx.store.list_workspaces(candidate_id)
        results, one_by_one = _sync_held(ctx, history, records, held)
    # Workspaces busy with a publish, sync or resolve of their own, made during the pass, or
    # saved during it: each on its own (it waits for its lock), with none of the pass's locks
    # held, so the pass can never be part of a deadlock.
    from revisor.services.workspaces import Workspace  # here: that module imports this one

    for user in one_by_one:
        results[user] = Workspace(ctx, candidate_id, user,
                                  workspace_ref(candidate_id, user)).sync()
    return [results[rec.user] for rec in records]


def _sync_held(
    ctx: CandidateContext, history: History, records: Sequence[WorkspaceRecord],
    held: Collection[str],
) -> tuple[dict[str, SyncResult], list[str]]:
    """Plan and apply the sync of the workspaces whose locks are ``held``: one ref transaction
    of compare-and-swaps, then one database transaction. Returns the results, and the users to
    sync one by one (not held, a ref missing, or a save that moved the ref during the pass)."""
    repo, candidate_id = ctx.repo, history.cand.id
    cand_head = history.cand.head_commit
    committer = ctx.committer()
    heads = repo.refs(workspace_prefix(candidate_id))
    lost: list[str] = []
    plans: dict[str, SyncPlan] = {}
    for rec in records:
        head = heads.get(rec.ref)
        if rec.user not in held or head is None:  # a missing ref: sync() puts it back first
            lost.append(rec.user)
            continue
        plans[rec.user] = plan_sync(history, rec, head, cand_head, committer)
    moves = {p.rec.ref: p for p in plans.values() if p.moves}
    while moves:
        try:
            repo.update_refs(
                [RefUpdate(ref, p.new_head, p.ws_head) for ref, p in moves.items()],
                "revisor: sync workspaces",
            )
            break
        except RefConflict as exc:  # saves landed: those workspaces sync on their own
            if exc.ref not in moves:
                raise
            now = repo.refs(workspace_prefix(candidate_id))
            for ref in [r for r, p in moves.items() if r == exc.ref or now.get(r) != p.ws_head]:
                plan = moves.pop(ref)
                del plans[plan.rec.user]
                lost.append(plan.rec.user)
    writes: list[tuple[WorkspaceRecord, ObjectId, Mapping[str, object]]] = [
        (p.rec, p.new_head, p.fields()) for p in plans.values() if not p.current
    ]
    cleared: list[tuple[WorkspaceRecord, ObjectId, Mapping[str, object]]] = [
        (p.rec, p.ws_head, {"conflicts": (), "resolutions": {}})
        for p in plans.values()
        if p.current and (p.rec.conflicts or p.rec.resolutions)
    ]
    audits = [
        AuditRecord(
            actor_of(Signature.now(p.rec.author_name, p.rec.author_email)), "workspace.sync",
            ctx.source.name, p.rec.ref, p.ws_head, p.new_head,
            {"candidate": candidate_id, **p.details()},
        )
        for p in plans.values()
        if not p.current
    ]
    if writes or cleared:
        with ctx.db.session() as s:
            ctx.store.update_workspaces(candidate_id, [*writes, *cleared], session=s)
            ctx.store.record_audit(audits, session=s)
    return {u: p.result() for u, p in plans.items()}, lost


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
