"""What a CLI command needs beyond its arguments: the configuration, the store, and a way to
open "SOURCE" arguments that are either a configured source's name or a repository path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import typer

from revisor.config import Config, load_config
from revisor.store.store import Store, StoreSource
from revisor.vcs import ObjectId, Repository

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

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

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
