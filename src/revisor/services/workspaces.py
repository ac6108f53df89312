"""One user's workspace in one candidate: read and save files with ETags, publish, sync, resolve.

Why this module exists: seed 001 gives every user their own repository per version candidate;
here a workspace is one ref, ``refs/revisor/workspaces/<id>/<user>``, made on first use at the
candidate's head (DESIGN principle 1). A user reads files with an ETag (the blob id) and saves
them with ``If-Match``; every save is one commit authored by the user and moved by compare-and-
swap, so two saves of one file at the same moment end with one winner and one
:class:`~revisor.errors.PreconditionFailed` — never a lost update.

- :meth:`Workspace.publish` merges the workspace's changes since it last synced into the
  candidate (``merge(candidate, workspace, base=its base)``): clean, the candidate moves by one
  commit authored by the user, then the workspace follows; conflicting, nothing moves and the
  answer names the paths and the users whose candidate commits they collide with. The candidate
  moves first, in one atomic step; a crash before the workspace follows leaves a workspace whose
  changes the candidate already has, which the next publish or sync finds (the merge adds
  nothing) and puts right.
- :meth:`Workspace.sync` is seed 001's synchronisation flow, in ``revisor.services.workspace_sync``.
- :meth:`Workspace.conflicts` / :meth:`Workspace.resolve` show the three versions of each
  conflicting path and record the user's decisions (Amp's ``mark_conflicted``/``mark_resolved``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace

from revisor import faults
from revisor.db.audit import actor_of
from revisor.db.candidates import Candidate, CandidateStatus, WorkspaceRecord
from revisor.db.models import utcnow
from revisor.errors import (
    InvalidInput,
    PathConflict,
    PathNotFound,
    PreconditionFailed,
    PreconditionRequired,
    RefConflict,
    Unavailable,
)
from revisor.services import workspace_sync
from revisor.services.candidate_git import put_file, user_trailer
from revisor.services.candidate_support import CandidateContext
from revisor.services.candidate_types import (
    ANY,
    ConflictVersions,
    PublishResult,
    ResolveResult,
    SyncResult,
)
from revisor.vcs import ChangeBuilder, FileMode, ObjectId, Signature, TreeEntry, VersionedFile
from revisor.vcs import create_commit as _create_commit

__all__ = ["MAX_ATTEMPTS", "Workspace"]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 50
"""How many lost compare-and-swap races one save or publish retries before answering busy."""


def _norm_etag(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':  # as HTTP quotes it
        value = value[1:-1]
    return value.lower()


def check_precondition(path: str, if_match: str | None, current: ObjectId | None) -> None:
    """``if_match``: an ETag (the version changed), :data:`ANY` (any existing version), or None
    (the file must not exist). A file that exists needs one: PreconditionRequired; a mismatch is
    PreconditionFailed carrying the current ETag."""
    if if_match is None:
        if current is not None:
            raise PreconditionRequired(path, current)
        return
    if if_match.strip() == ANY:
        if current is None:
            raise PreconditionFailed(path, ANY, None)
        return
    if current is None or _norm_etag(if_match) != current:
        raise PreconditionFailed(path, if_match, current)


class Workspace:
    """``user``'s workspace in candidate ``candidate_id`` (get one from
    :meth:`Candidates.workspace <revisor.services.candidates.Candidates.workspace>`).

    A handle: it keeps no state of its own, every call reads the refs and rows it needs.
    ``actor``: who acts through this handle when it is not the owner (an admin writing
    someone's workspace): it authors the saves, publishes and resolutions made through the
    handle, while the row keeps the owner's identity for commits made on the owner's behalf
    (background syncs).
    """

    def __init__(
        self, ctx: CandidateContext, candidate_id: int, user: str, ref: str,
        actor: Signature | None = None,
    ) -> None:
        self.ctx = ctx
        self.candidate_id = candidate_id
        self.user = user
        self.ref = ref
        self.actor = actor

    def __repr__(self) -> str:
        return f"Workspace({self.candidate_id}, {self.user!r})"

    # -- state ------------------------------------------------------------------------------------
    def candidate(self) -> Candidate:
        return self.ctx.candidate(self.candidate_id)

    def _record(self) -> WorkspaceRecord:
        return self.ctx.store.get_workspace(self.candidate_id, self.user)

    def record(self) -> WorkspaceRecord:
        """The workspace as stored, with ``head_commit`` read from its ref."""
        rec = self._record()
        head = self.head(rec)
        return rec if head == rec.head_commit else replace(rec, head_commit=head)

    def head(self, rec: WorkspaceRecord | None = None) -> ObjectId:
        """The workspace ref's value. In an open candidate, a ref removed by hand is put back
        where the row says; a closed candidate's may have been cleaned up: the row answers."""
        head = self.ctx.repo.ref(self.ref)
        if head is not None:
            return head
        rec = rec or self._record()
        if self.candidate().status is not CandidateStatus.OPEN:
            return rec.head_commit
        log.warning("workspace ref %s is missing; recreating it at %s", self.ref, rec.head_commit)
        with contextlib.suppress(RefConflict):  # recreated meanwhile by another caller
            self.ctx.repo.set_ref(self.ref, rec.head_commit, expected=None)
        return self.ctx.repo.ref(self.ref) or rec.head_commit

    def _author(self, rec: WorkspaceRecord) -> Signature:
        """The author of a change made through this handle: the acting caller, else the
        owner's remembered identity."""
        if self.actor is not None:
            return Signature.now(self.actor.name, self.actor.email)
        return Signature.now(rec.author_name, rec.author_email)

    def _version(self, commit: ObjectId, path: str) -> VersionedFile | None:
        try:
            return self.ctx.repo.file(commit, path)
        except PathNotFound:
            return None

    def _etag_at(self, commit: ObjectId, path: str) -> ObjectId | None:
        version = self._version(commit, path)
        return version.id if version is not None else None

    def unpublished(self) -> list[str]:
        """The paths the workspace changed since it last synced, sorted."""
        rec = self._record()
        diffs = self.ctx.repo.diff(rec.merge_base, self.head(rec))
        return sorted({p for d in diffs for p in (d.change.path, d.change.old_path) if p})

    # -- reading ----------------------------------------------------------------------------------
    def etag(self, path: str) -> ObjectId | None:
        """The ETag of ``path`` now (None: no such file)."""
        return self._etag_at(self.head(), path)

    def read(self, path: str) -> tuple[bytes, ObjectId]:
        """The content of ``path`` and its ETag (the blob id); PathNotFound if it is absent."""
        head = self.head()
        f = self.ctx.repo.file(head, path)
        return f.data, f.id

    def exists(self, path: str) -> bool:
        return self.ctx.repo.exists(self.head(), path)

    def tree(self, path: str = "") -> list[TreeEntry]:
        """The entries of directory ``path`` in the workspace (their ids are their ETags)."""
        return self.ctx.repo.tree(self.head(), path)

    # -- saving -----------------------------------------------------------------------------------
    def _save(
        self,
        message: str,
        action: str,
        apply: Callable[[ChangeBuilder, ObjectId], None],
        details: Mapping[str, object],
    ) -> ObjectId:
        """One commit on the workspace: ``apply(builder, head)`` (which checks preconditions
        against ``head``) on the current head, moved by CAS; a lost race is retried from a fresh
        read. Returns the new head (the old one when nothing changed)."""
        cand = self.candidate()
        self.ctx.require_open(cand, "change")
        rec = self._record()
        author = self._author(rec)
        for _ in range(MAX_ATTEMPTS):
            head = self.head(rec)
            builder = self.ctx.repo.builder(head)
            apply(builder, head)
            new = builder.commit(message, author, self.ctx.committer())
            if new is None:
                return head
            faults.checkpoint("workspace.before_ref")
            try:
                self.ctx.repo.set_ref(self.ref, new, expected=head)
            except RefConflict:
                continue
            faults.checkpoint("workspace.after_ref")  # a kill here: reconcile mends the row
            self._bookkeep(rec, action, head, new, details)
            return new
        raise Unavailable(f"{self!r}: too many concurrent saves", retry_after=0.5)

    def _bookkeep(
        self, rec: WorkspaceRecord, action: str, before: ObjectId, after: ObjectId,
        details: Mapping[str, object], *, strict: bool = False, **fields: object,
    ) -> None:
        """Record the new head (and ``fields``) in the row and audit the action. The ref has
        moved already: unless ``strict``, a database failure here is logged, not reported as a
        failed save (the state heals: the next sync or publish finds the changes merged)."""
        try:
            with self.ctx.db.session() as s:
                self.ctx.store.update_workspace(
                    self.candidate_id, self.user, head_commit=after, session=s, **fields
                )
                self.ctx.audit.record(
                    actor_of(self._author(rec)), action, self.ctx.source.name, self.ref,
                    before=before,
                    after=after, details={"candidate": self.candidate_id, **details},
                    session=s,
                )
        except Exception as exc:
            if strict:
                raise
            log.error("%r: recording %s failed: %s", self, action, exc)

    def write(
        self,
        path: str,
        content: bytes,
        *,
        if_match: str | None,
        executable: bool | None = None,
        message: str | None = None,
    ) -> ObjectId:
        """Save ``content`` at ``path``; return its new ETag. ``if_match``: the ETag read
        (:data:`~revisor.services.candidate_types.ANY`: any version; None: a new file)."""
        if not isinstance(content, bytes | bytearray | memoryview):
            raise InvalidInput(f"content for {path!r} must be bytes")
        data = bytes(content)

        def apply(b: ChangeBuilder, head: ObjectId) -> None:
            check_precondition(path, if_match, self._etag_at(head, path))
            b.write(path, data, executable=executable)

        self._save(message or f"Update {path}", "workspace.write", apply,
                   {"path": path, "size": len(data)})
        return self.ctx.repo.hash_bytes(data)

    def delete(self, path: str, *, if_match: str | None, message: str | None = None) -> None:
        """Delete the file at ``path``; PathNotFound if absent (PreconditionFailed when an ETag
        was given: the version named is gone)."""

        def apply(b: ChangeBuilder, head: ObjectId) -> None:
            current = self._etag_at(head, path)
            if current is None and if_match is None:
                raise PathNotFound(path)
            check_precondition(path, if_match, current)
            b.delete(path)

        self._save(message or f"Delete {path}", "workspace.delete", apply, {"path": path})

    def move(
        self, src: str, dst: str, *, if_match: str | None, message: str | None = None
    ) -> ObjectId:
        """Rename the file ``src`` (at the version ``if_match`` names) to ``dst``, which must
        not exist; return ``dst``'s ETag."""
        moved: list[ObjectId] = []

        def apply(b: ChangeBuilder, head: ObjectId) -> None:
            current = self._etag_at(head, src)
            if current is None and if_match is None:
                raise PathNotFound(src)
            check_precondition(src, if_match, current)
            b.move(src, dst)
            assert current is not None
            moved[:] = [current]

        self._save(message or f"Move {src} to {dst}", "workspace.move", apply,
                   {"path": src, "to": dst})
        return moved[0]

    def rollback(self, path: str) -> ObjectId | None:
        """Put back the candidate's base version of the file ``path`` (the target commit the
        candidate is based on), or delete it if the base has no such file. Returns the ETag
        (None: deleted). Unconditional: it discards whatever the workspace has at ``path``."""
        base = self.candidate().base_commit
        version = self._version(base, path)
        if version is None and self.ctx.repo.exists(base, path):
            raise PathConflict(path, "is a directory in the base: roll back its files")

        def apply(b: ChangeBuilder, head: ObjectId) -> None:
            if version is None and b.mode(path) == FileMode.DIRECTORY:
                raise PathConflict(path, "is a directory: roll back its files")
            put_file(b, path, version)

        self._save(f"Roll back {path}", "workspace.rollback", apply,
                   {"path": path, "base": base, "restored": version is not None})
        return version.id if version is not None else None

    # -- publishing -------------------------------------------------------------------------------
    def publish(self, message: str | None = None) -> PublishResult:
        """Merge the workspace's unpublished changes into the candidate (see the module
        docstring). InvalidState if the candidate is not open."""
        with self.ctx.locks.workspace(self.candidate_id, self.user):
            for _ in range(MAX_ATTEMPTS):
                result = self._publish_once(message)
                if result is not None:
                    return result
        raise Unavailable(f"{self!r}: the candidate kept moving; publish again", retry_after=0.5)

    def _publish_once(self, message: str | None) -> PublishResult | None:
        repo = self.ctx.repo
        cand = self.candidate()
        self.ctx.require_open(cand, "publish to")
        rec = self._record()
        cand_head, ws_head = cand.head_commit, self.head(rec)
        base = rec.merge_base
        if repo.changeset(ws_head).tree == repo.changeset(base).tree:
            return PublishResult(self.user, False)  # nothing to publish
        merged = repo.merge(cand_head, ws_head, base=base)
        if not merged.clean:
            conflicts = workspace_sync.attribute(self, cand, rec, cand_head, merged.conflicts)
            self.ctx.store.update_workspace(self.candidate_id, self.user, conflicts=conflicts)
            self.ctx.audit.record(
                actor_of(self._author(rec)), "workspace.publish", self.ctx.source.name, cand.ref,
                before=cand_head, details={"candidate": cand.id, "moved": False,
                                           "conflicts": [c.to_json() for c in conflicts]},
            )
            return PublishResult(self.user, False, None, conflicts)
        if merged.tree == repo.changeset(cand_head).tree:
            # The candidate has every change already (a publish that crashed before the
            # workspace followed, or the same edits published by someone else).
            self._follow(cand, rec, ws_head, cand_head, "workspace.repair")
            return PublishResult(self.user, False)
        diffs = repo.diff(base, ws_head)
        paths = sorted({p for d in diffs for p in (d.change.path, d.change.old_path) if p})
        author = self._author(rec)
        text = (message or f"Publish changes by {author.name}").strip()
        listed = ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
        text += f"\n\nChanged: {listed}\n\n{user_trailer(self.user)}\n"
        commit = _create_commit(repo, merged.tree, [cand_head], text, author, self.ctx.committer())
        with self.ctx.locks.candidate(cand.id):
            self.ctx.require_open(self.candidate(), "publish to")
            try:
                repo.set_ref(cand.ref, commit, expected=cand_head)
            except RefConflict:
                return None  # another publish landed first: merge again on top of it
            with self.ctx.db.session() as s:
                self.ctx.store.update(cand.source, cand.id, head_commit=commit, session=s)
                self.ctx.audit.record(
                    actor_of(author), "candidate.publish", cand.source, cand.ref,
                    before=cand_head,
                    after=commit, details={"candidate": cand.id, "workspace": ws_head,
                                           "paths": paths[:100]},
                    session=s,
                )
        faults.checkpoint("publish.after_candidate")
        self._follow(cand, rec, ws_head, commit, "workspace.publish")
        return PublishResult(self.user, True, commit)

    def _follow(
        self, cand: Candidate, rec: WorkspaceRecord, ws_head: ObjectId, commit: ObjectId,
        action: str,
    ) -> None:
        """The candidate at ``commit`` has every change of ``ws_head``: put the workspace there
        (or, if the user saved meanwhile, keep their newer saves as its unpublished changes)."""
        try:
            self.ctx.repo.set_ref(self.ref, commit, expected=ws_head)
            head, changes_base = commit, None
        except RefConflict:
            head, changes_base = self.head(rec), ws_head
        self._bookkeep(
            rec, action, ws_head, head, {"synced_to": commit},
            base_commit=commit, changes_base=changes_base, conflicts=(), resolutions={},
            last_synced_at=utcnow(),
        )

    # -- syncing and resolving --------------------------------------------------------------------
    def sync(self) -> SyncResult:
        """Bring the workspace up to date with its candidate, as far as it merges cleanly (seed
        001's synchronisation flow; see ``revisor.services.workspace_sync``)."""
        with self.ctx.locks.workspace(self.candidate_id, self.user):
            return workspace_sync.sync(self)

    def conflicts(self) -> list[ConflictVersions]:
        """Each conflicting path with its base, theirs (the candidate's) and ours versions."""
        return workspace_sync.conflict_versions(self)

    def resolve(self, choices: Mapping[str, bytes | str]) -> ResolveResult:
        """Resolve conflicting paths: content (bytes), ``"ours"`` or ``"theirs"`` for each.
        When none is left, the workspace records its merge with the candidate's head."""
        with self.ctx.locks.workspace(self.candidate_id, self.user):
            return workspace_sync.resolve(self, choices)
