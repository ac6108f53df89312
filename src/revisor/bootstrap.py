"""Wiring: one place that builds the object graph from a configuration (``revisor.open``).

Constructors elsewhere do no I/O; this module is where the database is migrated, leftovers of
crashed processes are cleaned up, and the store, journal, audit log and sources are connected.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from revisor.config import Config, load_config
from revisor.db.audit import AuditLog
from revisor.db.database import Database
from revisor.db.journal import Journal
from revisor.errors import RevisorError
from revisor.services.sources import Source
from revisor.store.store import Store
from revisor.store.transport import NetworkPolicy
from revisor.vcs import Signature
from revisor.vcs.materialize import remove_tree

__all__ = ["DEFAULT_IDENTITY", "Revisor", "open_revisor"]

DEFAULT_IDENTITY = Signature.now("Revisor", "revisor@localhost")

log = logging.getLogger(__name__)


class Revisor:
    """An opened Revisor: sources to view and update, over one store and one database."""

    def __init__(
        self,
        config: Config,
        *,
        env: Mapping[str, str] | None = None,
        identity: Signature | None = None,
        policy: NetworkPolicy | None = None,
        database: Database | None = None,
    ) -> None:
        self.config = config
        self.store = Store(config, env=env, policy=policy)
        self.db = database or Database.for_data_dir(config.data_dir)
        self.journal = Journal(self.db)
        self.audit = AuditLog(self.db)
        self.identity = identity or DEFAULT_IDENTITY
        self.tmp_dir = config.data_dir / "tmp"
        self._sources: dict[str, Source] = {}

    def start(self, *, recover: bool = True) -> Revisor:
        """Migrate the database and clean up after crashed processes."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.db.migrate()
        self._clean_tmp()
        if recover:
            for source in self.sources():
                try:
                    source.recover()
                except RevisorError as exc:  # one broken source must not stop the others
                    log.warning("%s: recovery postponed: %s", source.name, exc)
        return self

    def _clean_tmp(self) -> None:
        if not self.tmp_dir.is_dir():
            return
        for leftover in self.tmp_dir.glob("revisor-tx-*"):
            pid = leftover.name.split("-")[3] if leftover.name.count("-") >= 4 else ""
            if pid.isdigit() and _alive(int(pid)):
                continue
            remove_tree(leftover)

    def source(self, name: str) -> Source:
        if name not in self._sources:
            self._sources[name] = Source(self, self.store.source(name))
        return self._sources[name]

    def sources(self) -> list[Source]:
        return [self.source(n) for n in self.store.names()]

    def close(self) -> None:
        self.db.engine.dispose()

    def __enter__(self) -> Revisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_revisor(
    config: Config | str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    identity: Signature | None = None,
    recover: bool = True,
) -> Revisor:
    """Open Revisor on a configuration (a Config, a path to revisor.yaml, or None for
    ``$REVISOR_CONFIG`` / the defaults): migrate, recover, and return it ready to use."""
    if not isinstance(config, Config):
        config = load_config(Path(config) if config is not None else None)
    return Revisor(config, env=env, identity=identity).start(recover=recover)
