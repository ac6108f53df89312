"""The builtin provider: proposals hosted by Revisor itself, in its SQL database.

Why this module exists: sources with no external SCM still need proposals, and every test needs a
provider that is real yet needs no network. A builtin proposal is a row (``revisor.db.proposals``)
naming a pushed branch and the commit it proposes; merging it is done here with git's own merge
(``Repository.merge``, merge-ort) and lands on the target branch through the source's push with a
lease, exactly as any other ref move: if the target moved since it was read, the push fails with
a conflict and nothing changes (the proposal stays open).

The commit merged is the proposal's recorded ``source_commit`` (what was proposed and reviewed;
:meth:`BuiltinProvider.update` records a newer one). Merge methods, as GitHub and GitLab have them:

- ``merge``: a fast-forward when the target is an ancestor of the commit, else a merge commit
  (parents: target, commit) with git's merged tree, authored by whoever merges;
- ``squash``: one commit on the target with the merged tree, titled by the proposal, authored by
  the proposal's author;
- ``rebase``: a fast-forward when possible, else each commit ``git rebase`` would replay, replayed
  onto the target with ``merge(current, commit, base=parent)``, keeping its author and message
  (commits that become empty are dropped, as ``git rebase`` drops them).

Merges are committed by Revisor's identity (``committer``). A proposal whose commit is already in
the target is marked merged without moving anything. Each action is recorded in the audit log in
the same database transaction as the proposal's change.
"""

from __future__ import annotations

import builtins
import logging
from typing import Any

from revisor.db.audit import AuditLog, actor_of
from revisor.db.database import Database
from revisor.db.proposals import ProposalStore
from revisor.errors import (
    InvalidInput,
    InvalidState,
    RefConflict,
    RemoteRefConflict,
    RemoteUnavailable,
)
from revisor.providers import common
from revisor.providers.base import (
    Comment,
    Mergeability,
    MergeConflict,
    MergeMethod,
    Proposal,
    ProposalRequest,
    ProposalStatus,
    Provider,
)
from revisor.store.mirror import PushUpdate
from revisor.store.store import StoreSource
from revisor.vcs import (
    ObjectId,
    Signature,
    commits_to_replay,
    create_commit,
)

__all__ = ["BuiltinProvider"]

log = logging.getLogger(__name__)

PROVIDER = "builtin"


def proposal_url(source: str, number: int) -> str:
    return f"revisor://{source}/proposals/{number}"


class BuiltinProvider(Provider):
    """Proposals of one source, kept in ``db``. Constructing it does no I/O."""

    name = PROVIDER

    def __init__(
        self, source: StoreSource, db: Database, audit: AuditLog, committer: Signature
    ) -> None:
        self.source = source
        self.db = db
        self.audit = audit
        self.committer = committer
        self.store = ProposalStore(db, provider=PROVIDER, url_for=proposal_url)

    def __repr__(self) -> str:
        return f"BuiltinProvider({self.source.name!r})"

    # -- opening and reading ----------------------------------------------------------------------
    def open(self, request: ProposalRequest) -> Proposal:
        """Open a proposal; if one is open for the branch already, return it (recording the
        branch's new commit if it moved)."""
        common.check_branches(request, hint="push the change to its own branch first")
        self.source.resolve(request.source_commit)  # it must exist here (fetched if needed)
        with self.db.session() as s:
            opened = self.store.create(self.source.name, request, session=s)
            p = opened.proposal
            if opened.created:
                common.record_proposal(
                    self.audit, request.author, "proposal.open", self.source.name, p.number,
                    after=p.source_commit,
                    details={"branch": p.source_branch, "target": p.target_branch,
                             "title": p.title},
                    session=s,
                )
            elif p.source_commit != request.source_commit:
                before = p.source_commit
                p = self.store.update(
                    self.source.name, p.number, source_commit=request.source_commit, session=s
                )
                common.record_proposal(
                    self.audit, request.author, "proposal.update", self.source.name, p.number,
                    before=before, after=p.source_commit, session=s,
                )
            return p

    def get(self, number: int) -> Proposal:
        return self.store.get(self.source.name, number)

    def find_by_branch(self, source_branch: str) -> Proposal | None:
        """The newest proposal from this branch, any status."""
        return self.store.find_by_branch(self.source.name, source_branch)

    def comments(self, number: int) -> builtins.list[Comment]:
        return self.store.comments(self.source.name, number)

    # -- changing ---------------------------------------------------------------------------------
    def update(
        self,
        number: int,
        *,
        title: str | None = None,
        description: str | None = None,
        source_commit: ObjectId | None = None,
        actor: Signature | None = None,
    ) -> Proposal:
        """Change an open proposal's text or record its branch's new commit."""
        fields: dict[str, Any] = {}
        if title is not None:
            if not title.strip():
                raise InvalidInput("a proposal needs a title")
            fields["title"] = title
        if description is not None:
            fields["description"] = description
        if source_commit is not None:
            fields["source_commit"] = self.source.resolve(source_commit)
        with self.db.session() as s:
            before = self.store.get(self.source.name, number, for_update=True, session=s)
            if not fields:
                return before
            after = self.store.update(
                self.source.name, number, require={ProposalStatus.OPEN}, session=s, **fields
            )
            common.record_proposal(
                self.audit, actor if actor is not None else self.committer,
                "proposal.update", self.source.name, number,
                before=before.source_commit, after=after.source_commit,
                details={"fields": sorted(fields)}, session=s,
            )
            return after

    def close(self, number: int, actor: Signature) -> Proposal:
        """Close an open proposal; closing a closed one again returns it unchanged."""
        with self.db.session() as s:
            current = self.store.get(self.source.name, number, for_update=True, session=s)
            if current.status is ProposalStatus.CLOSED:
                return current
            p = self.store.update(
                self.source.name, number, require={ProposalStatus.OPEN}, action="close",
                status=ProposalStatus.CLOSED, session=s,
            )
            common.record_proposal(
                self.audit, actor, "proposal.close", self.source.name, number,
                before=ProposalStatus.OPEN, after=ProposalStatus.CLOSED, session=s,
            )
            return p

    def comment(self, number: int, text: str, actor: Signature) -> None:
        with self.db.session() as s:
            c = self.store.add_comment(self.source.name, number, actor, text, session=s)
            common.record_proposal(
                self.audit, actor, "proposal.comment", self.source.name, number,
                details={"comment": c.id, "length": len(text)}, session=s,
            )

    # -- merging ----------------------------------------------------------------------------------
    def _target_head(self, branch: str) -> ObjectId:
        return self.source.resolve(f"refs/heads/{branch}", fresh=True)

    def mergeability(self, number: int) -> Mergeability:
        """Whether the proposal's commit merges cleanly into its target's current head."""
        p = self.get(number)
        target = self._target_head(p.target_branch)
        commit = self.source.resolve(p.source_commit)
        result = self.source.repository.merge(target, commit)
        return Mergeability(result.clean, result.conflicts, target)

    def merge(self, number: int, method: MergeMethod, actor: Signature) -> Proposal:
        """Merge an open proposal into its target with ``method`` and move the target with a
        lease. :class:`MergeConflict` (nothing moved) if git cannot merge it cleanly; the
        push's :class:`~revisor.errors.Conflict` if the target moved meanwhile (the proposal
        stays open; merge again); :class:`InvalidState` if it is not open."""
        method = MergeMethod(method)
        p = self.get(number)
        if p.status is not ProposalStatus.OPEN:
            raise InvalidState(f"proposal #{number}", p.status, "merge")
        target_ref = f"refs/heads/{p.target_branch}"
        target = self._target_head(p.target_branch)
        commit = self.source.resolve(p.source_commit)
        new = self._merge_commit(p, method, target, commit, actor)
        if new != target:
            try:
                self.source.push([PushUpdate(target_ref, new, expected=target)])
            except (RefConflict, RemoteRefConflict):
                # so that merging again sees the target as it is
                common.refresh_quietly(self.source, log, "a lost lease", (RemoteUnavailable,))
                raise
        with self.db.session() as s:
            # Marked merged even if closed meanwhile: the target has it now, whatever happened.
            merged = self.store.update(
                self.source.name, number, status=ProposalStatus.MERGED, merged_commit=new,
                merge_method=method, session=s,
            )
            common.record_proposal(
                self.audit, actor, "proposal.merge", self.source.name, number,
                before=target, after=new,
                details={"method": method.value, "source_commit": commit,
                         "branch": p.source_branch, "target": p.target_branch,
                         "moved": new != target},
                session=s,
            )
            if new != target:
                self.audit.record(
                    actor_of(actor), "ref.move", self.source.name, target_ref,
                    before=target, after=new,
                    details={"proposal": number, "method": method.value}, session=s,
                )
            return merged

    def _merge_commit(
        self, p: Proposal, method: MergeMethod, target: ObjectId, commit: ObjectId,
        actor: Signature,
    ) -> ObjectId:
        """The commit the target should point to after merging (``target`` itself when the
        proposal's commit is already in it). Makes objects; moves no ref."""
        repo = self.source.repository
        if repo.is_ancestor(commit, target):
            return target
        committer = Signature.now(self.committer.name, self.committer.email)
        if method is MergeMethod.SQUASH:
            tree = self._merged_tree(target, commit)
            if tree == repo.changeset(target).tree:
                return target
            author = Signature.now(p.author_name, p.author_email)
            message = p.title.strip() + "\n"
            if p.description.strip():
                message += "\n" + p.description.strip() + "\n"
            message += f"\nProposal: #{p.number} ({p.source_branch})\n"
            return create_commit(repo, tree, [target], message, author, committer)
        if repo.is_ancestor(target, commit) and (
            method is MergeMethod.MERGE or self._linear(target, commit)
        ):
            return commit  # fast-forward
        if method is MergeMethod.MERGE:
            tree = self._merged_tree(target, commit)
            message = f"Merge proposal #{p.number} from {p.source_branch}\n\n{p.title.strip()}\n"
            author = Signature.now(actor.name, actor.email)
            return create_commit(repo, tree, [target, commit], message, author, committer)
        return self._rebase(target, commit, committer)

    def _merged_tree(self, target: ObjectId, commit: ObjectId) -> ObjectId:
        result = self.source.repository.merge(target, commit)
        if not result.clean:
            raise MergeConflict(f"cannot merge {commit[:12]} into the target", result.conflicts)
        return result.tree

    def _linear(self, upstream: ObjectId, head: ObjectId) -> bool:
        repo = self.source.repository
        return all(
            len(repo.changeset(c).parents) == 1
            for c in commits_to_replay(repo, upstream, head, merges=True)
        )

    def _rebase(self, target: ObjectId, commit: ObjectId, committer: Signature) -> ObjectId:
        repo = self.source.repository
        current = target
        current_tree = repo.changeset(target).tree
        for oid in commits_to_replay(repo, target, commit):
            c = repo.changeset(oid)
            parent = c.parents[0] if c.parents else None
            result = repo.merge(current, oid, base=parent)
            if not result.clean:
                raise MergeConflict(f"commit {oid[:12]} does not apply", result.conflicts)
            if result.tree == current_tree:
                continue  # became empty: dropped, as git rebase does
            current = create_commit(repo, result.tree, [current], c.message, c.author, committer)
            current_tree = result.tree
        return current

    # ``list`` last: inside the class body its name would shadow the builtin in annotations.
    def list(self, status: ProposalStatus | None = None) -> builtins.list[Proposal]:
        """This source's proposals, newest first."""
        return self.store.list(self.source.name, status)
