"""The transaction: the one object through which every change to a source's files is made.

Modelled on Mercurial's transaction and the Unit of Work: a :class:`Transaction` pins its base
commit when it begins, stages edits in memory (or in a private work directory), and on
:meth:`~Transaction.commit` writes one commit, pushes a branch with a lease, opens a proposal and
records an audit entry. Each step is written to the journal before the next one starts. If any step
fails, what was done is undone — a proposal opened for the commit is closed and a branch pushed
before the transaction failed is deleted with a lease — and the error propagates. When the undoing
itself fails (the remote is down at that moment), or a process is killed half-way, the journal
entry stays unfinished and :func:`recover` completes or compensates it later: on the next start,
or in the same process once the transaction has given up. Nothing moves a ref except through a
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
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from revisor import faults
from revisor.core.changes import FileChange, apply_changes
from revisor.core.workdir import Workdir
from revisor.db.audit import AuditLog, actor_of
from revisor.db.journal import Journal, JournalEntry, TxState
from revisor.errors import (
    InvalidInput,
    InvalidRefName,
    InvalidState,
    NotAllowed,
    RefConflict,
    RemoteRefConflict,
    RevisionNotFound,
    RevisorError,
    StaleBase,
    TransactionInProgress,
    Unavailable,
)
from revisor.providers.base import ProposalRequest, ProposalStatus, Provider
from revisor.store.mirror import PushUpdate
from revisor.store.store import StoreSource
from revisor.vcs import ChangeBuilder, ObjectId, Signature, check_ref_name

__all__ = ["ProposalRef", "Transaction", "TransactionResult", "recover"]

log = logging.getLogger(__name__)

FINAL_STATES = frozenset({TxState.DONE, TxState.EMPTY, TxState.FAILED, TxState.COMPENSATED})

# The transactions this process is running now. Recovery leaves an entry owned by a live process
# alone, except an entry of this very process that is not running any more: a transaction whose
# undoing failed hands its entry over to recovery (in this process, or after it dies).
_RUNNING: set[str] = set()
_RUNNING_LOCK = threading.Lock()


def _running(tx_id: str, running: bool) -> None:
    with _RUNNING_LOCK:
        if running:
            _RUNNING.add(tx_id)
        else:
            _RUNNING.discard(tx_id)


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
    proposal_queued: bool = False  # the provider was unreachable: the proposal is opened later

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


def _quietly(what: str, fn: Callable[[], object]) -> None:
    """Run a bookkeeping step on a failure path: its own failure is logged, never raised over
    the error being reported (an unfinished journal entry is recovery's to finish)."""
    try:
        fn()
    except Exception as exc:
        log.error("%s failed: %s", what, exc)


class Transaction:
    """One atomic change to one source. Use :meth:`commit` (or a ``with`` block) to finish it.

    Constructing it resolves and pins the base; it never moves a ref until :meth:`commit`. With
    an ``idempotency_key`` used before on the source (Stripe's rules): if that transaction
    succeeded, its result is :attr:`result` (``replayed``), edits are accepted and discarded, and
    :meth:`commit` returns that result; if it is still running, or did not finish and awaits
    recovery, :class:`TransactionInProgress`; if it failed without effect (nothing of it is
    left), this one runs anew under the key (audited as ``transaction.retry``).
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
        names_base = self.base_ref in (self.branch, f"refs/heads/{self.branch}")
        if propose and names_base:
            raise InvalidInput(
                f"a proposal cannot merge {self.branch!r} into itself",
                hint="leave the branch out (a new one is made), or commit directly with "
                "propose=False",
            )
        self.direct = not propose and names_base
        if self.direct and not source.config.allow_direct:
            raise NotAllowed(
                f"source {source.name!r} does not allow direct commits to {self.base_ref!r}",
                hint="propose the change instead, or set allow_direct: true for the source",
            )
        self.result: TransactionResult | None = None
        self._builder: ChangeBuilder | None = None
        self._workdir: Workdir | None = None
        self._closed = False

        _running(self.id, True)  # before the entry exists, so recovery never takes it
        try:
            began = journal.begin(
                tx_id=self.id, source=source.name, idempotency_key=idempotency_key,
                actor=author, message=message, base_ref=self.base_ref, branch=self.branch,
                direct=self.direct, owner=_owner(),
            )
        except BaseException:
            _running(self.id, False)
            raise
        if not began.created:
            _running(self.id, False)
            self._replay(began.entry)
            return
        if began.retried is not None:
            _quietly(
                f"auditing transaction {self.id}",
                lambda: self._audit.record(
                    actor=actor_of(author), action="transaction.retry", source=source.name,
                    target=self.branch,
                    details={"tx": self.id, "retried": began.retried, "key": idempotency_key},
                ),
            )
        try:
            self.base = self._pin_base(expected)
            self._journal.advance(self.id, TxState.STARTED, base_commit=self.base)
            self._builder = source.repository.builder(self.base)
        except BaseException as exc:
            self._closed = True
            self._fail(exc)
            raise

    # -- setup ----------------------------------------------------------------------------------
    def _branch_name(self, branch: str | None) -> str:
        name = branch if branch is not None else f"revisor/{self.id[:12]}"
        if name.startswith("-"):  # as ``git check-ref-format --branch``: never an option
            raise InvalidRefName(name, "a branch name must not start with '-'")
        check_ref_name(f"refs/heads/{name}")
        return name

    def _pin_base(self, expected: str | None) -> ObjectId:
        if expected is None:
            return self.source.resolve(self.base_ref, fresh=True)
        if self.source.mirror is not None:
            # An expectation is checked against the remote as it is now: the mirror may be
            # behind until its next fetch, so fetch (or join a fetch begun after this point).
            self.source.mirror.fetch(started_after=time.time())
        base = self.source.resolve(self.base_ref)
        if base != expected.strip().lower():
            raise StaleBase(self.base_ref, expected, base)
        return base

    def _replay(self, entry: JournalEntry) -> None:
        """Answer with the earlier attempt under the same key: its result if it succeeded (a
        key whose transaction failed without effect never gets here: the journal lets it run
        again), else TransactionInProgress — it is running, or awaits recovery."""
        if entry.result_json is None:
            if _abandoned(entry):
                raise TransactionInProgress(
                    f"the transaction with this idempotency key ({entry.id}) did not finish "
                    f"and awaits recovery{f' ({entry.error})' if entry.error else ''}",
                    hint="retry with the same key later: once recovery has finished it, the "
                    "retry gets its result (or, if it was undone, runs again)",
                )
            raise TransactionInProgress(
                f"a transaction with this idempotency key is still running ({entry.id})",
                hint="retry with the same key when it has finished: the retry gets its result",
            )
        self.result = TransactionResult.from_json(entry.result_json, replayed=True)
        self.id = self.result.id
        self.base = self.result.base
        self.branch = self.result.branch or self.branch

    @property
    def replayed(self) -> bool:
        return self.result is not None and self.result.replayed

    # -- staging --------------------------------------------------------------------------------
    def _staging(self) -> ChangeBuilder:
        if self._closed:
            raise InvalidInput("the transaction is already finished")
        if self._builder is None:  # a replay: edits go to a scratch builder and are discarded
            self._builder = self.source.repository.builder(self.base)
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
        """A private directory holding the base tree; what is changed there is committed.

        Changes staged through the transaction itself are not in it; what is changed in the
        directory is applied on top of them when the transaction commits.
        """
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
        if self.result is not None:  # a replay: the earlier transaction stands
            return
        self._fail(reason, what="aborted")

    def _fail(self, reason: BaseException | None, *, what: str = "failed") -> None:
        """End the journal entry as failed (nothing reached the remote) and record why."""
        error = str(reason) if reason is not None else what
        try:
            _quietly(
                f"journaling transaction {self.id} as failed",
                lambda: self._journal.finish(self.id, TxState.FAILED, error=error),
            )
            _quietly(
                f"auditing transaction {self.id}",
                lambda: self._audit.record(
                    actor=actor_of(self.author), action="transaction.abort",
                    source=self.source.name, target=self.branch,
                    before=getattr(self, "base", None),
                    details={"tx": self.id, "error": error},
                ),
            )
        finally:
            _running(self.id, False)

    def _cleanup(self) -> None:
        if self._workdir is not None:
            self._workdir.remove()
            self._workdir = None

    def commit(self) -> TransactionResult:
        """Commit, push and propose; or undo everything and raise."""
        if self.result is not None:
            self._closed = True
            self._cleanup()
            return self.result
        builder = self._staging()
        self._closed = True
        try:
            if self._workdir is not None:
                self._workdir.read_back(builder)
            faults.checkpoint("tx.before_commit")
            committer = Signature.now(self._committer.name, self._committer.email)
            commit = builder.commit(self.message, self.author, committer)
        except BaseException as exc:
            self._cleanup()
            self._fail(exc)
            raise
        self._cleanup()
        try:
            if commit is None:
                return self._finish_empty()
            return self._publish(commit)
        finally:
            _running(self.id, False)

    def _publish(self, commit: ObjectId) -> TransactionResult:
        self._journal.advance(self.id, TxState.COMMITTED, commit=commit)
        unreachable: Unavailable | None = None
        proposal = None
        try:
            self._push(commit)
            if self.propose:
                try:
                    proposal = self._open_proposal(commit)
                except Unavailable as exc:  # the SCM is down: keep the branch, open it later
                    unreachable = exc
        except BaseException as exc:
            self._compensate(commit, exc)
            raise
        result = TransactionResult(
            self.id, self.source.name, False, self.base, commit, self.branch, self.direct,
            proposal, proposal_queued=unreachable is not None,
        )
        if unreachable is not None:
            self._journal.advance(
                self.id, TxState.QUEUED, result_json=result.to_json(), error=str(unreachable)
            )
        else:
            self._journal.finish(self.id, TxState.DONE, result_json=result.to_json())
        self._audit_commit(result)
        self.result = result
        return result

    def _audit_commit(self, result: TransactionResult) -> None:
        assert result.commit is not None
        self._audit.record(
            actor=actor_of(self.author), action="transaction.commit", source=self.source.name,
            target=f"refs/heads/{self.branch}", before=self.base if self.direct else None,
            after=result.commit,
            details={"tx": self.id, "message": self.message.split("\n", 1)[0],
                     "proposal": result.proposal.number if result.proposal else None},
        )

    def _finish_empty(self) -> TransactionResult:
        result = TransactionResult(self.id, self.source.name, True, self.base)
        self._journal.finish(self.id, TxState.EMPTY, result_json=result.to_json())
        self._audit.record(
            actor=actor_of(self.author), action="transaction.empty", source=self.source.name,
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
        except (RefConflict, RemoteRefConflict) as exc:  # local sources: RefConflict
            if self.direct:
                raise StaleBase(self.base_ref, self.base, exc.actual) from exc
            raise
        self._journal.advance(self.id, TxState.PUSHED)
        faults.checkpoint("tx.after_push")

    def _proposal_target(self) -> str:
        """The branch a proposal targets: the base when it names a branch, else the source's
        target branch (a base given as a commit id or a tag)."""
        name = self.base_ref.removeprefix("refs/heads/")
        if name != self.base_ref:
            return name
        try:
            if self.source.repository.ref(f"refs/heads/{name}") is not None:
                return name
        except InvalidInput:  # not a valid branch name: a commit id, ``main~2``, …
            pass
        return self.source.target_branch

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
                target_branch=self._proposal_target(),
            )
        )
        ref = ProposalRef(proposal.provider, proposal.number, proposal.url)
        self._journal.advance(self.id, TxState.PROPOSED, proposal_number=proposal.number)
        faults.checkpoint("tx.after_proposal")
        return ref

    def _compensate(self, commit: ObjectId, cause: BaseException) -> None:
        """Undo what reached the remote of a transaction that cannot complete: a proposal opened
        for the commit is closed, the pushed branch is deleted with a lease. A direct commit is
        never undone; if it landed, the entry ends ``done``. When the remote (or the provider)
        cannot be reached, the entry is left unfinished for :func:`recover`."""
        ref = f"refs/heads/{self.branch}"
        try:
            if self.direct:
                landed = _landed(self.source, ref, commit)
                undone = False
            else:
                landed = False
                self._close_proposal_of(commit)
                undone = undo_push(self.source, self.branch, commit, direct=False)
        except RevisorError as exc:
            undo_error = str(exc)
            log.error("tx %s: could not undo the push of %s (%s); recovery will retry",
                      self.id, self.branch, undo_error)
            _quietly(
                f"journaling transaction {self.id} for recovery",
                lambda: self._journal.advance(
                    self.id, TxState.COMMITTED, error=f"{cause}; undo: {undo_error}"
                ),
            )
            _quietly(
                f"auditing transaction {self.id}",
                lambda: self._audit.record(
                    actor=actor_of(self.author), action="transaction.abort",
                    source=self.source.name, target=ref, before=None, after=commit,
                    details={"tx": self.id, "error": str(cause), "undo_error": undo_error,
                             "pending_recovery": True},
                ),
            )
            return
        if landed:  # the push was the whole transaction, and it happened
            result = TransactionResult(
                self.id, self.source.name, False, self.base, commit, self.branch, True
            )
            _quietly(
                f"journaling transaction {self.id} as done",
                lambda: self._journal.finish(
                    self.id, TxState.DONE, result_json=result.to_json(), error=str(cause)
                ),
            )
            _quietly(f"auditing transaction {self.id}", lambda: self._audit_commit(result))
            return
        state = TxState.COMPENSATED if undone else TxState.FAILED
        _quietly(
            f"journaling transaction {self.id} as {state}",
            lambda: self._journal.finish(self.id, state, error=str(cause)),
        )
        _quietly(
            f"auditing transaction {self.id}",
            lambda: self._audit.record(
                actor=actor_of(self.author),
                action="transaction.compensate" if undone else "transaction.abort",
                source=self.source.name, target=ref, before=commit if undone else None,
                after=None, details={"tx": self.id, "error": str(cause), "branch_deleted": undone},
            ),
        )

    def _close_proposal_of(self, commit: ObjectId) -> None:
        """Close the proposal opened for ``commit`` when the provider did open it but the
        transaction failed afterwards (before the journal recorded it, say)."""
        if not self.propose or self._provider is None:
            return
        found = self._provider.find_by_branch(self.branch)
        if found is not None and self._provider.proposes(found, commit) and (
            found.status is ProposalStatus.OPEN
        ):
            self._provider.close(found.number, self._committer)


def _remote_value(source: StoreSource, ref: str) -> ObjectId | None:
    """What ``ref`` holds on the remote now (a local source is its own remote)."""
    if source.mirror is not None:
        return source.mirror.ls_remote([ref]).get(ref)
    return source.repository.ref(ref)


def _landed(source: StoreSource, ref: str, commit: ObjectId) -> bool:
    """True if the remote ``ref`` holds ``commit`` or a descendant of it."""
    value = _remote_value(source, ref)
    if value is None:
        return False
    if value == commit:
        return True
    try:
        return source.repository.is_ancestor(commit, value)
    except RevisionNotFound:
        source.refresh()
        return source.repository.is_ancestor(commit, value)


def undo_push(source: StoreSource, branch: str, commit: ObjectId, *, direct: bool) -> bool:
    """Delete ``branch`` on the remote if it holds ``commit``; True if something was undone.

    A direct commit is never undone (its push *was* the whole transaction and others may already
    build on it); a branch that is absent (never pushed) or moved since (someone else's now) is
    left alone. The deletion carries a lease, so a branch moved meanwhile is never deleted.
    """
    if direct:
        return False
    ref = f"refs/heads/{branch}"
    if _remote_value(source, ref) != commit:
        return False
    try:
        source.push([PushUpdate(ref, None, commit)])
    except (RefConflict, RemoteRefConflict):
        return False  # moved by someone else since it was read
    return True


def recover(
    source: StoreSource, journal: Journal, audit: AuditLog, provider: Provider | None
) -> list[str]:
    """Finish or undo the unfinished journal entries of transactions that no longer run; return
    their ids.

    An entry belongs to recovery when the process that began it on this host is dead, or when it
    is this process and the transaction has given up on it (its undoing failed). Entries of live
    processes, and of other hosts, are left alone; an entry whose remote cannot be reached now is
    left for a later call.
    """
    handled = []
    for entry in journal.unfinished(source.name):
        queued = entry.state is TxState.QUEUED
        if not queued and not _abandoned(entry):
            continue
        try:
            if queued:
                _open_queued(source, journal, audit, provider, entry)
            else:
                _recover_one(source, journal, audit, provider, entry)
        except InvalidState:
            continue  # finished meanwhile by another recovery
        except RevisorError as exc:
            log.warning("recovery of transaction %s postponed: %s", entry.id, exc)
            continue
        handled.append(entry.id)
    return handled


def _abandoned(entry: JournalEntry) -> bool:
    if entry.owner == _owner():
        with _RUNNING_LOCK:
            return entry.id not in _RUNNING
    return _owner_dead(entry.owner)


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


def _open_queued(
    source: StoreSource,
    journal: Journal,
    audit: AuditLog,
    provider: Provider | None,
    entry: JournalEntry,
) -> None:
    """Open the proposal of a pushed transaction whose provider was unreachable. The branch is
    looked up first, so a proposal the SCM created before failing is never opened twice."""
    if provider is None or entry.commit is None or entry.branch is None:
        return
    existing = provider.find_by_branch(entry.branch)
    if existing is None or not provider.proposes(existing, entry.commit):
        title, _, body = entry.message.strip().partition("\n")
        target = entry.base_ref.removeprefix("refs/heads/")
        if source.repository.ref(f"refs/heads/{target}") is None:
            target = source.target_branch
        existing = provider.open(
            ProposalRequest(
                title=title.strip(), description=body.strip(),
                author=Signature.now(entry.actor_name, entry.actor_email),
                source_branch=entry.branch, source_commit=entry.commit, target_branch=target,
            )
        )
    assert entry.base_commit is not None
    result = TransactionResult(
        entry.id, source.name, False, entry.base_commit, entry.commit, entry.branch, False,
        ProposalRef(existing.provider, existing.number, existing.url),
    )
    journal.finish(entry.id, TxState.DONE, result_json=result.to_json(), expected=entry.state,
                   proposal_number=existing.number)
    audit.record(actor="revisor", action="transaction.proposal_opened", source=source.name,
                 target=f"proposals/{existing.number}", after=entry.commit,
                 details={"tx": entry.id, "queued_error": entry.error})


def _recover_one(
    source: StoreSource,
    journal: Journal,
    audit: AuditLog,
    provider: Provider | None,
    entry: JournalEntry,
) -> None:
    state = TxState.FAILED
    proposal = None
    if entry.commit is not None and entry.branch is not None:
        ref = f"refs/heads/{entry.branch}"
        if entry.direct:
            state = TxState.DONE if _landed(source, ref, entry.commit) else TxState.FAILED
        else:
            existing = provider.find_by_branch(entry.branch) if provider is not None else None
            if (
                existing is not None
                and provider is not None
                and provider.proposes(existing, entry.commit)
                and existing.status is not ProposalStatus.CLOSED
            ):
                state, proposal = TxState.DONE, existing  # complete: its branch and proposal
            elif undo_push(source, entry.branch, entry.commit, direct=False):
                state = TxState.COMPENSATED
    result = None
    if state is TxState.DONE:
        assert entry.commit is not None and entry.base_commit is not None
        result = TransactionResult(
            entry.id, source.name, False, entry.base_commit, entry.commit, entry.branch,
            entry.direct,
            ProposalRef(proposal.provider, proposal.number, proposal.url) if proposal else None,
        ).to_json()
    error = None if state is TxState.DONE else (entry.error or "its process died; recovered")
    journal.finish(entry.id, state, result_json=result, error=error, expected=entry.state)
    audit.record(actor="revisor", action="transaction.recover", source=source.name,
                 target=entry.branch, before=entry.base_commit, after=entry.commit,
                 details={"tx": entry.id, "outcome": state.value})
