"""What a CLI command needs beyond its arguments: the configuration, the store, and a way to
open "SOURCE" arguments that are either a configured source's name or a repository path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from revisor.config import Config, adhoc_source, load_config
from revisor.store.store import Store, StoreSource
from revisor.vcs import ObjectId, Repository

if TYPE_CHECKING:
    from revisor.bootstrap import Revisor

__all__ = ["CliContext", "Target", "cli_context"]


@dataclass
class Target:
    """A repository to read, and the configured source it belongs to (None for a plain path)."""

    repo: Repository
    source: StoreSource | None

    def resolve(self, rev: str) -> ObjectId:
        """Resolve with the source's freshness rules (fetch when due), or plainly for a path."""
        if self.source is not None:
            return self.source.resolve(rev, fresh=True)
        return self.repo.resolve(rev)


class CliContext:
    """Loads the configuration and the store lazily: commands on a plain path need neither."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None
        self._store: Store | None = None
        self._app: Revisor | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def app_for(self, source_or_path: str) -> tuple[Revisor, str]:
        """An opened Revisor that knows ``source_or_path``, and the source's name in it.

        A repository path that is not a configured source is added as an ad-hoc local source.
        """
        from revisor.bootstrap import Revisor

        config = self.config
        name = source_or_path
        if name not in config.sources:
            name, source = adhoc_source(source_or_path)
            config = config.with_source(name, source)
        if self._app is None or self._app.config is not config:
            self._app = Revisor(config).start()
        return self._app, name

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.config)
        return self._store

    def has_config(self) -> bool:
        return self.config_path is not None or bool(os.environ.get("REVISOR_CONFIG"))

    def open(self, source_or_path: str) -> Target:
        """A configured source by name, else a repository at that path."""
        if self.has_config() and source_or_path in self.config.sources:
            src = self.store.source(source_or_path)
            return Target(src.repository, src)
        return Target(Repository.open(source_or_path), None)


def cli_context(ctx: typer.Context) -> CliContext:
    obj = ctx.find_object(CliContext)
    if obj is None:  # called without the root callback (tests invoking a command directly)
        obj = CliContext(None)
    return obj
