"""How ``revisor serve`` runs: address, limits, budgets. Typed, with defaults a laptop can use."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServeSettings"]

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 64 * 1024 * 1024  # request bodies over this get 413
    last_commit_budget_s: float = 2.0  # tree?last_commits=true answers partial after this
    page_size: int = 100  # default list page
    max_page_size: int = 1000
    scheduler: bool = True  # run the job schedule in-process
    ui: bool = True  # serve the web UI at /

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK
