"""The transaction: the one object through which every change to a source's files is made.

Modelled on Mercurial's transaction and the Unit of Work: a :class:`Transaction` pins its base
commit when it begins, stages edits in memory (or in a private work directory), and on
:meth:`~Transaction.commit` writes one commit, pushes a branch with a lease, opens a proposal and
records an audit entry. Each step is written to the journal before the next one starts. If any step
fails, what was done is undone — a branch pushed before its proposal failed is deleted with a lease
— and the error propagates; a process killed half-way leaves a journal entry that
:func:`recover` completes or compensates on the next start. Nothing moves a ref except through a
compare-and-swap (locally) or a lease (remotely).

States in the journal::

    started → committed → pushed → proposed → done
       │           │          │
       └→ empty    └──────────┴→ failed | compensated        (direct commits: pushed → done)
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from revisor import faults
from revisor.core.changes import FileChange, apply_changes
from revisor.core.workdir import Workdir
from revisor.db.audit import AuditLog
from revisor.db.journal import Journal, JournalEntry, TxState
from revisor.errors import (
    InvalidInput,
    NotAllowed,
    RemoteRefConflict,
    RemoteUnavailable,
    RevisorError,
    StaleBase,
    TransactionInProgress,
)
from revisor.providers.base import ProposalRequest, Provider
from revisor.store.mirror import PushUpdate
from revisor.store.store import StoreSource
from revisor.vcs import ChangeBuilder, ObjectId, Signature, check_ref_name

__all__ = ["ProposalRef", "Transaction", "TransactionResult", "recover"]

log = logging.getLogger(__name__)

FINAL_STATES = frozenset({TxState.DONE, TxState.EMPTY, TxState.FAILED, TxState.COMPENSATED})


@dataclass(frozen=True)
class ProposalRef:
    provider: str
    number: int
    url: str | None


@dataclass(frozen=True)
class TransactionResult:
    """What a transaction did. ``empty``: nothing changed, so nothing was committed or pushed."""

    id: str
    source: str
    empty: bool
    base: ObjectId
    commit: ObjectId | None = None
    branch: str | None = None
    direct: bool = False
    proposal: ProposalRef | None = None
    replayed: bool = False  # returned from an earlier run with the same idempotency key

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str, *, replayed: bool = False) -> TransactionResult:
        raw = json.loads(text)
        proposal = raw.pop("proposal")
        raw["replayed"] = replayed
        return cls(**raw, proposal=ProposalRef(**proposal) if proposal else None)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Transaction:
    """One atomic change to one source. Use :meth:`commit` (or a ``with`` block) to finish it.

    Constructing it resolves and pins the base; it never moves a ref until :meth:`commit`.
    """

    def __init__(
        self,
        *,
        source: StoreSource,
        journal: Journal,
        audit: AuditLog,
        provider: Provider | None,
        committer: Signature,
        tmp_dir: Path,
        base: str | None,
        message: str,
        author: Signature,
        branch: str | None = None,
        propose: bool = True,
        expected: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        if not message.strip():
            raise InvalidInput("a transaction needs a message")
        self.source = source
        self._journal = journal
        self._audit = audit
        self._provider = provider
        self._committer = committer
        self._tmp_dir = tmp_dir
        self.message = message
        self.author = author
        self.propose = propose
        self.id = uuid.uuid4().hex
        self.base_ref = base or source.target_branch
        self.branch = self._branch_name(branch)
        self.direct = not propose and self.branch == self.base_ref
        if self.direct and not source.config.allow_direct:
            raise NotAllowed(
                f"source {source.name!r} does not allow direct commits to {self.base_ref!r}",
                hint="propose the change instead, or set allow_direct: true for the source",
            )
        self.result: TransactionResult | None = None
        self._workdir: Workdir | None = None
        self._closed = False

        began = journal.begin(
            tx_id=self.id, source=source.name, idempotency_key=idempotency_key,
            actor=author, message=message, base_ref=self.base_ref, branch=self.branch,
            direct=self.direct, owner=_owner(),
        )
        if not began.created:
            self._replay(began.entry)
            return
        try:
            self.base = self._pin_base(expected)
            self._journal.advance(self.id, TxState.STARTED, base_commit=self.base)
            self._builder: ChangeBuilder = source.repository.builder(self.base)
        except BaseException as exc:
            self._journal.finish(self.id, TxState.FAILED, error=str(exc))
            raise

    # -- setup ----------------------------------------------------------------------------------
    def _branch_name(self, branch: str | None) -> str:
        name = branch if branch is not None else f"revisor/{self.id[:12]}"
        check_ref_name(f"refs/heads/{name}")
        return name

    def _pin_base(self, expected: str | None) -> ObjectId:
        base = self.source.resolve(self.base_ref, fresh=True)
        if expected is None or base == expected:
            return base
        if self.source.is_mirrored:  # maybe only our mirror is behind
            self.source.refresh()
            base = self.source.resolve(self.base_ref)
        if base != expected:
            raise StaleBase(self.base_ref, expected, base)
        return base

    def _replay(self, entry: JournalEntry) -> None:
        if entry.state not in FINAL_STATES or entry.result_json is None:
            if entry.state in FINAL_STATES:  # failed earlier: the key may be used again only
                raise TransactionInProgress(  # after that failure is acknowledged
                    f"the earlier transaction with this idempotency key failed: {entry.error}"
                )
            raise TransactionInProgress(
                f"a transaction with this idempotency key is still running ({entry.id})"
            )
        self.result = TransactionResult.from_json(entry.result_json, replayed=True)
        self.base = self.result.base
        self._closed = True

    @property
    def replayed(self) -> bool:
        return self.result is not None and self.result.replayed

    # -- staging --------------------------------------------------------------------------------
    def _staging(self) -> ChangeBuilder:
        if self._closed:
            raise InvalidInput("the transaction is already finished")
        return self._builder

    def write(
        self, path: str, content: bytes | BinaryIO, *, executable: bool | None = None
    ) -> None:
        self._staging().write(path, content, executable=executable)

    def delete(self, path: str) -> None:
        self._staging().delete(path)

    def move(self, src: str, dst: str) -> None:
        self._staging().move(src, dst)

    def chmod(self, path: str, *, executable: bool) -> None:
        self._staging().chmod(path, executable=executable)

    def read(self, path: str) -> bytes:
        """The staged content of ``path`` (the base's if this transaction has not changed it)."""
        return self._staging().read(path)

    def exists(self, path: str) -> bool:
        return self._staging().exists(path)

    def apply(self, changes: Sequence[FileChange]) -> None:
        apply_changes(self._staging(), changes)

    def workdir(self) -> Path:
        """A private directory holding the base tree; what is changed there is committed."""
        self._staging()
        if self._workdir is None:
            self._workdir = Workdir(
                self.source.repository, self.base, self._tmp_dir, tag=self.id[:12]
            )
        return self._workdir.path

    # -- finishing ------------------------------------------------------------------------------
    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort(exc)

    def abort(self, reason: BaseException | None = None) -> None:
        """Give up before committing: only the journal and the work directory change."""
        if self._closed:
            return
        self._closed = True
        self._cleanup()
        self._journal.finish(self.id, TxState.FAILED, error=str(reason or "aborted"))
        self._audit.record(
            actor=self.author.email, action="transaction.abort", source=self.source.name,
            target=self.branch, before=self.base, details={"tx": self.id, "error": str(reason)},
        )

    def _cleanup(self) -> None:
        if self._workdir is not None:
            self._workdir.remove()
            self._workdir = None

    def commit(self) -> TransactionResult:
        """Commit, push and propose; or undo everything and raise."""
        if self.result is not None:
            return self.result
        self._staging()
        self._closed = True
        try:
            if self._workdir is not None:
                self._workdir.read_back(self._builder)
            faults.checkpoint("tx.before_commit")
            committer = Signature.now(self._committer.name, self._committer.email)
            commit = self._builder.commit(self.message, self.author, committer)
        except BaseException as exc:
            self._cleanup()
            self._journal.finish(self.id, TxState.FAILED, error=str(exc))
            raise
        self._cleanup()
        if commit is None:
            return self._finish_empty()
        self._journal.advance(self.id, TxState.COMMITTED, commit=commit)
        try:
            self._push(commit)
        except BaseException as exc:
            self._compensate(commit, exc)
            raise
        proposal = None
        if self.propose:
            try:
                proposal = self._open_proposal(commit)
            except BaseException as exc:
                self._compensate(commit, exc)
                raise
        result = TransactionResult(
            self.id, self.source.name, False, self.base, commit, self.branch, self.direct,
            proposal,
        )
        self._journal.finish(self.id, TxState.DONE, result_json=result.to_json())
        self._audit.record(
            actor=self.author.email, action="transaction.commit", source=self.source.name,
            target=f"refs/heads/{self.branch}", before=self.base if self.direct else None,
            after=commit,
            details={"tx": self.id, "message": self.message.split("\n", 1)[0],
                     "proposal": proposal.number if proposal else None},
        )
        self.result = result
        return result

    def _finish_empty(self) -> TransactionResult:
        result = TransactionResult(self.id, self.source.name, True, self.base)
        self._journal.finish(self.id, TxState.EMPTY, result_json=result.to_json())
        self._audit.record(
            actor=self.author.email, action="transaction.empty", source=self.source.name,
            target=self.base_ref, before=self.base, details={"tx": self.id},
        )
        self.result = result
        return result

    def _push(self, commit: ObjectId) -> None:
        ref = f"refs/heads/{self.branch}"
        expected = self.base if self.direct else None
        faults.checkpoint("tx.before_push")
        try:
            self.source.push([PushUpdate(ref, commit, expected)])
        except RemoteRefConflict as exc:
            if self.direct:
                raise StaleBase(self.base_ref, self.base, exc.actual) from exc
            raise
        self._journal.advance(self.id, TxState.PUSHED)
        faults.checkpoint("tx.after_push")

    def _open_proposal(self, commit: ObjectId) -> ProposalRef:
        if self._provider is None:
            raise NotAllowed(f"source {self.source.name!r} has no provider for proposals")
        title, _, body = self.message.strip().partition("\n")
        proposal = self._provider.open(
            ProposalRequest(
                title=title.strip(),
                description=body.strip(),
                author=self.author,
                source_branch=self.branch,
                source_commit=commit,
                target_branch=self.base_ref,
            )
        )
        ref = ProposalRef(proposal.provider, proposal.number, proposal.url)
        self._journal.advance(self.id, TxState.PROPOSED, proposal_number=proposal.number)
        faults.checkpoint("tx.after_proposal")
        return ref

    def _compensate(self, commit: ObjectId, cause: BaseException) -> None:
        """Undo a push whose transaction cannot complete (the branch is deleted with a lease)."""
        try:
            undone = undo_push(self.source, self.branch, commit, direct=self.direct)
        except RevisorError as exc:
            log.error("tx %s: could not undo the push of %s (%s); recovery will retry",
                      self.id, self.branch, exc)
            self._journal.advance(self.id, TxState.COMMITTED, error=f"{cause}; undo: {exc}")
            return
        state = TxState.COMPENSATED if undone else TxState.FAILED
        self._journal.finish(self.id, state, error=str(cause))
        self._audit.record(
            actor=self.author.email, action="transaction.compensate", source=self.source.name,
            target=f"refs/heads/{self.branch}", before=commit, after=None,
            details={"tx": self.id, "error": str(cause), "branch_deleted": undone},
        )


def undo_push(source: StoreSource, branch: str, commit: ObjectId, *, direct: bool) -> bool:
    """Delete ``branch`` on the remote if it still holds ``commit``; True if something was undone.

    A direct commit is never undone (its push *was* the whole transaction and others may already
    build on it); a branch that moved since is someone else's now and is left alone.
    """
    if direct:
        return False
    ref = f"refs/heads/{branch}"
    try:
        source.push([PushUpdate(ref, None, commit)])
        return True
    except RemoteRefConflict:
        return False  # absent (never pushed) or moved by someone else


def recover(
    source: StoreSource, journal: Journal, audit: AuditLog, provider: Provider | None
) -> list[str]:
    """Finish or undo the journal entries of transactions whose process died; return their ids.

    An entry of a process that is still alive on this host is left alone.
    """
    handled = []
    for entry in journal.unfinished(source.name):
        if not _owner_dead(entry.owner):
            continue
        handled.append(entry.id)
        try:
            _recover_one(source, journal, audit, provider, entry)
        except RemoteUnavailable as exc:
            log.warning("recovery of transaction %s postponed: %s", entry.id, exc)
            handled.pop()
    return handled


def _owner_dead(owner: str | None) -> bool:
    if not owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return False  # another node's; it recovers its own
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False  # alive


def _remote_value(source: StoreSource, ref: str) -> ObjectId | None:
    if source.mirror is not None:
        return source.mirror.ls_remote([ref]).get(ref)
    return source.repository.ref(ref)


def _recover_one(
    source: StoreSource,
    journal: Journal,
    audit: AuditLog,
    provider: Provider | None,
    entry: JournalEntry,
) -> None:
    state = TxState.FAILED
    if entry.commit is not None and entry.branch is not None:
        if entry.direct:
            landed = _remote_value(source, f"refs/heads/{entry.branch}") == entry.commit
            state = TxState.DONE if landed else TxState.FAILED
        else:
            existing = provider.find_by_branch(entry.branch) if provider is not None else None
            if existing is not None and existing.source_commit == entry.commit:
                state = TxState.DONE
            elif undo_push(source, entry.branch, entry.commit, direct=False):
                state = TxState.COMPENSATED
    result = None
    if state is TxState.DONE:
        assert entry.commit is not None and entry.base_commit is not None
        proposal = provider.find_by_branch(entry.branch) if provider and entry.branch else None
        result = TransactionResult(
            entry.id, source.name, False, entry.base_commit, entry.commit, entry.branch,
            entry.direct,
            ProposalRef(proposal.provider, proposal.number, proposal.url) if proposal else None,
        ).to_json()
    journal.finish(entry.id, state, result_json=result, error="recovered after a crash")
    audit.record(actor="revisor", action="transaction.recover", source=source.name,
                 target=entry.branch, before=entry.base_commit, after=entry.commit,
                 details={"tx": entry.id, "outcome": state.value})
