"""Version candidates (seed 001): named change sets against a source's target branch.

Why this module exists: it is the use case behind ``/versions/candidates`` of the platform seed
001 was written for, built the way DESIGN.md maps it. A candidate is the ref
``refs/revisor/candidates/<id>`` in the source's repository (its mirror, for a ``git`` source),
created at the target's current commit — a ref, no copy — with its metadata in SQL. Users change
it through their own workspaces (``revisor.services.workspaces``); this module creates, lists and
describes candidates, compares them with their target, brings them onto a moved target
(``revisor.services.candidate_rebase``), abandons and submits them
(``revisor.services.candidate_submit``), and syncs all of a candidate's workspaces in one pass
after it moved (``revisor.services.workspace_sync.sync_all``).

Comparisons with the target are against the target branch's *current* head, freshly resolved:
:meth:`Candidates.files` lists what the candidate changes (since it forked from the target,
git's three-dot view), each file's status being how the candidate's version differs from the
target's current one, flagged ``conflicted`` when git cannot merge it into the target now.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from revisor.core.refnames import candidate_ref, encode_component, workspace_prefix, workspace_ref
from revisor.db.audit import AuditLog, actor_of
from revisor.db.candidates import Candidate, CandidateStatus, CandidateStrategy, WorkspaceRecord
from revisor.db.database import Database
from revisor.errors import (
    InvalidInput,
    RevisionNotFound,
    ValidationFailed,
    WorkspaceNotFound,
)
from revisor.providers.base import Provider
from revisor.services import candidate_rebase, candidate_submit, workspace_sync
from revisor.services.candidate_support import CandidateContext, default_email
from revisor.services.candidate_types import (
    NAME_PATTERN,
    CandidateFile,
    FileStatus,
    RebaseResult,
    SyncResult,
)
from revisor.services.workspaces import Workspace
from revisor.store.store import StoreSource
from revisor.vcs import FileDiff, ObjectId, Signature, check_ref_name

__all__ = ["MAX_DESCRIPTION", "MAX_TITLE", "Candidates"]

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 512
MAX_TITLE = 200


def _signature_problem(sig: object) -> str | None:
    if not isinstance(sig, Signature):
        return "must be a Signature (name, email, time)"
    for value in (sig.name, sig.email):
        if not value.strip() or any(c in value for c in "<>\n\x00"):
            return "name and email must be non-empty, without '<', '>' or line breaks"
    return None


class Candidates:
    """The version candidates of one source (``source.candidates``). Constructing does no I/O."""

    def __init__(self, ctx: CandidateContext) -> None:
        self.ctx = ctx

    @classmethod
    def build(
        cls,
        source: StoreSource,
        db: Database,
        audit: AuditLog,
        identity: Signature,
        provider: Callable[[], Provider],
        data_dir: Path,
    ) -> Candidates:
        return cls(CandidateContext.build(source, db, audit, identity, provider, data_dir))

    def __repr__(self) -> str:
        return f"Candidates({self.ctx.source.name!r})"

    @property
    def source(self) -> str:
        return self.ctx.source.name

    # -- creating ---------------------------------------------------------------------------------
    def create(
        self,
        name: str,
        title: str,
        author: Signature,
        *,
        description: str = "",
        target: str | None = None,
        strategy: CandidateStrategy | str = CandidateStrategy.REBASE,
    ) -> Candidate:
        """A new candidate at the target branch's current commit (default: the source's target
        branch). Every refused field is named in one :class:`ValidationFailed`; a name taken on
        this source is :class:`~revisor.errors.AlreadyExists`."""
        problems: list[tuple[str, str]] = []
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            problems.append(("name", "must be 3 to 32 characters of a-z, 0-9 and '-', "
                                     "not starting with '-'"))
        if not isinstance(title, str) or not title.strip():
            problems.append(("title", "must not be empty"))
        elif len(title) > MAX_TITLE or "\n" in title.strip():
            problems.append(("title", f"must be one line of at most {MAX_TITLE} characters"))
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            problems.append(("description", f"must be at most {MAX_DESCRIPTION} characters"))
        why = _signature_problem(author)
        if why:
            problems.append(("author", why))
        try:
            strategy = CandidateStrategy(strategy)
        except ValueError:
            problems.append(("strategy", "must be 'rebase' or 'merge'"))
        branch = target if target is not None else self.ctx.source.target_branch
        try:
            if not isinstance(branch, str) or branch.startswith("-"):
                raise InvalidInput("a branch name")
            check_ref_name(f"refs/heads/{branch}")
        except InvalidInput:
            problems.append(("target", "must be a valid branch name"))
        if problems:
            raise ValidationFailed(problems)
        assert isinstance(strategy, CandidateStrategy)
        try:
            base = self.ctx.source.resolve(f"refs/heads/{branch}", fresh=True)
        except RevisionNotFound:
            raise ValidationFailed([("target", f"no branch {branch!r} on the source")]) from None
        return self._insert(name, title.strip(), description, author, branch, base, strategy)

    def _insert(
        self, name: str, title: str, description: str, author: Signature, branch: str,
        base: ObjectId, strategy: CandidateStrategy,
    ) -> Candidate:
        repo = self.ctx.repo
        created_ref: str | None = None
        try:
            with self.ctx.db.session() as s:
                cand = self.ctx.store.create(
                    self.source, name=name, title=title, description=description, author=author,
                    target_branch=branch, base_commit=base, strategy=strategy, session=s,
                )
                ref = cand.ref
                leftover = repo.ref(ref)
                if leftover is not None:  # a creation that died before its row was committed
                    log.warning("replacing the leftover ref %s (%s)", ref, leftover)
                repo.set_ref(ref, base, expected=leftover)
                created_ref = ref
                self.ctx.audit.record(
                    actor_of(author), "candidate.create", self.source, ref, after=base,
                    details={"candidate": cand.id, "name": name, "target": branch,
                             "strategy": strategy.value},
                    session=s,
                )
        except BaseException:
            if created_ref is not None:  # the row was not committed: take the ref back
                try:
                    repo.delete_ref(created_ref, expected=base)
                except Exception as exc:
                    log.warning("could not remove %s: %s", created_ref, exc)
            raise
        return cand

    def edit(
        self,
        candidate_id: int,
        actor: Signature,
        *,
        title: str | None = None,
        description: str | None = None,
    ) -> Candidate:
        """Change an open candidate's title and/or description (None: keep), refused fields
        named in one :class:`ValidationFailed`, as :meth:`create` names them; audited."""
        problems: list[tuple[str, str]] = []
        fields: dict[str, str] = {}
        if title is not None:
            if not isinstance(title, str) or not title.strip():
                problems.append(("title", "must not be empty"))
            elif len(title) > MAX_TITLE or "\n" in title.strip():
                problems.append(("title", f"must be one line of at most {MAX_TITLE} characters"))
            else:
                fields["title"] = title.strip()
        if description is not None:
            if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
                problems.append(("description", f"must be at most {MAX_DESCRIPTION} characters"))
            else:
                fields["description"] = description
        if problems:
            raise ValidationFailed(problems)
        cand = self.get(candidate_id)
        if not fields:
            return cand
        with self.ctx.db.session() as s:
            self.ctx.store.update(self.source, candidate_id, require=(CandidateStatus.OPEN,),
                                  action="edit", session=s, **fields)
            self.ctx.audit.record(
                actor_of(actor), "candidate.edit", self.source, cand.ref,
                details={"candidate": candidate_id, "fields": sorted(fields)}, session=s,
            )
        return self.get(candidate_id)

    # -- reading ----------------------------------------------------------------------------------
    def get(self, candidate_id: int) -> Candidate:
        """The candidate (CandidateNotFound if no such id on this source), head read from its
        ref."""
        return self.ctx.candidate(candidate_id)

    def by_name(self, name: str) -> Candidate:
        return self.get(self.ctx.store.by_name(self.source, name).id)

    def list(
        self, *, status: CandidateStatus | str | None = None, author: str | None = None
    ) -> builtins.list[Candidate]:
        """Candidates on this source, newest first; ``author`` matches a name or an email."""
        try:
            wanted = CandidateStatus(status) if status is not None else None
        except ValueError:
            raise ValidationFailed(
                [("status", "must be one of " + ", ".join(s.value for s in CandidateStatus))]
            ) from None
        heads = self.ctx.repo.refs("refs/revisor/candidates/")
        out = []
        for c in self.ctx.store.list(self.source, status=wanted, author=author):
            head = heads.get(c.ref, c.head_commit)
            out.append(c if head == c.head_commit else replace(c, head_commit=head))
        return out

    def _target_head(self, cand: Candidate) -> ObjectId:
        return self.ctx.source.resolve(f"refs/heads/{cand.target_branch}", fresh=True)

    def files(
        self, candidate_id: int, *, include_unchanged: bool = False
    ) -> builtins.list[CandidateFile]:
        """The files the candidate changes, each NEW / CHANGED / DELETED against the target's
        current version (UNCHANGED when the target has the same), with ``conflicted`` when git
        cannot merge that path into the target now. ``include_unchanged``: every other file of
        the candidate too, as UNCHANGED."""
        repo = self.ctx.repo
        cand = self.get(candidate_id)
        target, head = self._target_head(cand), cand.head_commit
        fork = repo.merge_base(target, head)
        mine, theirs = repo.files(head), repo.files(target)
        before = repo.files(fork) if fork is not None else {}
        changed = {p for p in mine.keys() | before.keys() if mine.get(p) != before.get(p)}
        conflicted = set(repo.merge(target, head).conflicts)
        paths = changed | conflicted | (set(mine) if include_unchanged else set())
        out = []
        for path in sorted(paths):
            m, t = mine.get(path), theirs.get(path)
            if m == t:
                status = FileStatus.UNCHANGED
            elif m is None:
                status = FileStatus.DELETED
            elif t is None:
                status = FileStatus.NEW
            else:
                status = FileStatus.CHANGED
            if status is FileStatus.UNCHANGED and not include_unchanged and path not in conflicted:
                continue
            out.append(CandidateFile(path, status, path in conflicted, m[1] if m else None))
        return out

    def diff(
        self, candidate_id: int, paths: Sequence[str] | None = None
    ) -> builtins.list[FileDiff]:
        """What the candidate changes against the target (git's three-dot diff: from where it
        forked from the target's current head), with patches."""
        repo = self.ctx.repo
        cand = self.get(candidate_id)
        fork = repo.merge_base(self._target_head(cand), cand.head_commit)
        return repo.diff(fork, cand.head_commit, paths)

    # -- following the target, ending -------------------------------------------------------------
    def check(self, candidate_id: int) -> Candidate:
        """Compute whether the candidate merges into its target's current head and record it
        (``has_conflicts``, ``conflicts``, ``target_checked``); nothing moves."""
        return candidate_rebase.check(self.ctx, candidate_id)

    def rebase(self, candidate_id: int, *, actor: Signature | None = None) -> RebaseResult:
        """Bring the candidate onto its target's current head by its strategy (see
        ``revisor.services.candidate_rebase``). Conflicting: nothing moves, ``has_conflicts``."""
        return candidate_rebase.rebase(self.ctx, candidate_id, actor or self.ctx.identity)

    update = rebase

    def abandon(self, candidate_id: int, actor: Signature) -> Candidate:
        """Give the candidate up (its open proposal, if any, is closed). Abandoning it again
        changes nothing; a submitted one cannot be abandoned (InvalidState)."""
        return candidate_submit.abandon(self.ctx, candidate_id, actor)

    def submit(self, candidate_id: int, actor: Signature) -> Candidate:
        """Squash the candidate into one commit on its target, through the source's provider
        (see ``revisor.services.candidate_submit``)."""
        return candidate_submit.submit(self.ctx, candidate_id, actor)

    # -- workspaces -------------------------------------------------------------------------------
    def workspace(
        self,
        candidate_id: int,
        user: str,
        *,
        identity: Signature | None = None,
        create: bool = True,
        actor: Signature | None = None,
    ) -> Workspace:
        """``user``'s workspace in the candidate, made on first use at the candidate's head
        (``create`` False: WorkspaceNotFound instead). ``identity`` (name and email) authors the
        user's commits; it is remembered, and defaults to the user name at an address that
        never resolves. ``actor``: someone else acting on the workspace (an admin): authors
        the changes made through the returned handle, and is not remembered."""
        cand = self.get(candidate_id)
        ref = workspace_ref(candidate_id, user)  # validates the user name
        for label, who in (("identity", identity), ("actor", actor)):
            why = _signature_problem(who) if who is not None else None
            if why:
                raise ValidationFailed([(label, why)])
        try:
            rec = self.ctx.store.get_workspace(candidate_id, user)
        except WorkspaceNotFound:
            if not create:
                raise
            self.ctx.require_open(cand, "open a workspace in")
            rec = self._new_workspace(cand, user, ref, identity, actor)
        if identity is not None and (identity.name, identity.email) != (
            rec.author_name, rec.author_email
        ):
            self.ctx.store.update_workspace(
                candidate_id, user, author_name=identity.name, author_email=identity.email
            )
        return Workspace(self.ctx, candidate_id, user, ref, actor=actor)

    def _new_workspace(
        self, cand: Candidate, user: str, ref: str, identity: Signature | None,
        actor: Signature | None = None,
    ) -> WorkspaceRecord:
        if identity is None:
            plain = not any(c in user for c in "<>\n\x00") and user.strip() == user
            identity = Signature.now(user if plain else encode_component(user),
                                     default_email(user))
        repo = self.ctx.repo
        with self.ctx.db.session() as s:
            rec, created = self.ctx.store.create_workspace(
                cand.id, user, author=identity, base_commit=cand.head_commit, session=s
            )
            if created:
                leftover = repo.ref(ref)  # a first use that died before its row was committed
                repo.set_ref(ref, cand.head_commit, expected=leftover)
                self.ctx.audit.record(
                    actor_of(actor or identity), "workspace.create", self.source, ref,
                    after=cand.head_commit, details={"candidate": cand.id, "user": user},
                    session=s,
                )
        if created:
            try:
                self.ctx.locks.prepare_workspace(cand.id, user)
            except OSError as exc:  # made on first use instead
                log.warning("could not create the lock file of %s: %s", ref, exc)
        return rec

    def workspaces(self, candidate_id: int) -> builtins.list[WorkspaceRecord]:
        """The candidate's workspaces, oldest first, heads read from their refs (one pass)."""
        self.get(candidate_id)
        heads = self.ctx.repo.refs(workspace_prefix(candidate_id))
        out = []
        for rec in self.ctx.store.list_workspaces(candidate_id):
            head = heads.get(rec.ref, rec.head_commit)
            out.append(rec if head == rec.head_commit else replace(rec, head_commit=head))
        return out

    def sync_workspaces(self, candidate_id: int) -> builtins.list[SyncResult]:
        """Sync every workspace of the candidate after it moved, in one pass: each by seed 001's
        rule exactly as :meth:`Workspace.sync <revisor.services.workspaces.Workspace.sync>` does,
        with the history read once, every ref move in one compare-and-swap transaction and every
        row in one database transaction (see ``revisor.services.workspace_sync``). Results in
        the order of :meth:`workspaces`. InvalidState if the candidate is not open."""
        return workspace_sync.sync_all(self.ctx, candidate_id)

    def ref(self, candidate_id: int) -> str:
        return candidate_ref(candidate_id)
