"""A configured source as the library's users see it: ``view`` to read, ``update`` to change.

This is seed 000's ``FilesystemStore`` done properly. ``view(rev)`` resolves the revision once
(honouring the source's freshness) and returns a pinned :class:`Snapshot`; ``update(...)`` runs one
:class:`Transaction` from start to end — changes given as values, made by a callback, or edited in
a work directory — and returns its result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, overload

from revisor.core.changes import FileChange
from revisor.core.snapshot import Snapshot
from revisor.core.transaction import Transaction, TransactionResult, recover
from revisor.providers.base import Provider
from revisor.store.store import StoreSource
from revisor.vcs import Signature

if TYPE_CHECKING:
    from revisor.bootstrap import Revisor
    from revisor.services.candidates import Candidates
    from revisor.services.reconcile import Reconciled

__all__ = ["Source"]

T = TypeVar("T")

log = logging.getLogger(__name__)


class Source:
    """One source of an opened :class:`~revisor.bootstrap.Revisor`."""

    def __init__(self, app: Revisor, stored: StoreSource) -> None:
        self._app = app
        self.stored = stored
        self.name = stored.name
        self._provider: Provider | None = None

    def __repr__(self) -> str:
        return f"Source({self.name!r})"

    @property
    def provider(self) -> Provider:
        """Who hosts this source's proposals (the builtin provider unless configured)."""
        if self._provider is None:
            from revisor.providers.factory import make_provider

            self._provider = make_provider(
                self.stored, self._app.db, self._app.audit, self._app.identity
            )
        return self._provider

    @property
    def candidates(self) -> Candidates:
        """This source's version candidates and their per-user workspaces."""
        from revisor.services.candidates import Candidates

        app = self._app
        return Candidates.build(self.stored, app.db, app.audit, app.identity,
                                lambda: self.provider, app.config.data_dir)

    # -- reading ------------------------------------------------------------------------------
    @overload
    def view(self, rev: str | None = None) -> Snapshot: ...

    @overload
    def view(self, rev: str | None, fn: Callable[[Snapshot], T]) -> T: ...

    def view(
        self, rev: str | None = None, fn: Callable[[Snapshot], T] | None = None
    ) -> Snapshot | T:
        """A read-only snapshot of ``rev`` (default: the target branch), pinned to one commit.

        With ``fn``, call it with the snapshot and return its result (its errors propagate).
        """
        commit = self.stored.resolve(rev or self.stored.target_branch, fresh=True)
        snapshot = Snapshot(self.stored.repository, commit, source=self.stored)
        if fn is None:
            return snapshot
        with snapshot:
            return fn(snapshot)

    # -- changing -----------------------------------------------------------------------------
    def transaction(
        self,
        message: str,
        author: Signature,
        *,
        base: str | None = None,
        branch: str | None = None,
        propose: bool = True,
        expected: str | None = None,
        idempotency_key: str | None = None,
    ) -> Transaction:
        """Begin a transaction; finish it with ``commit()`` or use it as a context manager."""
        return Transaction(
            source=self.stored,
            journal=self._app.journal,
            audit=self._app.audit,
            provider=self.provider if propose else None,
            committer=self._app.identity,
            tmp_dir=self._app.tmp_dir,
            base=base,
            message=message,
            author=author,
            branch=branch,
            propose=propose,
            expected=expected,
            idempotency_key=idempotency_key,
        )

    def update(
        self,
        base: str | None,
        message: str,
        author: Signature,
        fn: Callable[[Transaction], object] | None = None,
        changes: Sequence[FileChange] | None = None,
        *,
        branch: str | None = None,
        propose: bool = True,
        expected: str | None = None,
        idempotency_key: str | None = None,
    ) -> TransactionResult:
        """Make one atomic change: apply ``changes``, then call ``fn(tx)``; commit, push, propose.

        Nothing changed → an empty result (no commit, branch, push or proposal). Any failure
        leaves nothing behind and propagates; if what reached the remote cannot be undone at
        that moment (the remote is down), :meth:`recover` undoes it later. ``expected`` is
        checked against the remote as it is now (the mirror is fetched first). The same
        ``idempotency_key`` again returns the first result (``replayed``) and does nothing.
        """
        tx = self.transaction(
            message, author, base=base, branch=branch, propose=propose, expected=expected,
            idempotency_key=idempotency_key,
        )
        if tx.result is not None:  # the same idempotency key ran before
            return tx.result
        try:
            if changes:
                tx.apply(changes)
            if fn is not None:
                fn(tx)
        except BaseException as exc:
            tx.abort(exc)
            raise
        return tx.commit()

    def recover(self) -> list[str]:
        """Complete or undo the transactions that no longer run — of processes that died, or of
        this one when undoing a failed transaction was impossible — and return their ids; then
        bring candidate and workspace rows that lag their refs (a kill between a ref move and
        its row's write) to their refs (:meth:`reconcile`)."""
        recovered = recover(self.stored, self._app.journal, self._app.audit, self.provider)
        try:
            self.reconcile()
        except Exception:  # a repair of metadata must never stop a start; the next one retries
            log.exception("%s: reconciling rows with their refs failed", self.name)
        return recovered

    def reconcile(self) -> list[Reconciled]:
        """Bring every candidate and workspace row of this source to its ref, with the fields
        that follow from the move; return what was repaired (see ``revisor.services.reconcile``)."""
        from revisor.services.reconcile import reconcile

        return reconcile(self.candidates.ctx)

    def materialize(self, rev: str, directory: Path) -> Path:
        return self.view(rev).materialize(directory)
