"""How ``revisor serve`` runs: address, limits, budgets. Typed, with defaults a laptop can use.

``to_env``/``from_env`` carry the settings to uvicorn worker processes (``--workers N``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

__all__ = ["ServeSettings"]

ENV_PREFIX = "REVISOR_SERVE_"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 64 * 1024 * 1024  # request bodies over this get 413
    max_file_bytes: int = 32 * 1024 * 1024  # one file of a transaction over this gets 413
    last_commit_budget_s: float = 2.0  # tree?last_commits=true answers partial after this
    page_size: int = 100  # default list page
    max_page_size: int = 1000
    scheduler: bool = True  # run the job schedule in-process
    ui: bool = True  # serve the web UI at /

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK

    def to_env(self) -> dict[str, str]:
        """These settings as ``REVISOR_SERVE_*`` environment variables (see :meth:`from_env`)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[ENV_PREFIX + f.name.upper()] = str(int(value) if isinstance(value, bool)
                                                   else value)
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServeSettings:
        """The settings :meth:`to_env` wrote (absent variables keep their defaults)."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            kind = type(getattr(cls(), f.name))
            values[f.name] = bool(int(raw)) if kind is bool else kind(raw)
        return cls(**values)  # type: ignore[arg-type]
