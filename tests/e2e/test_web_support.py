"""Helpers shared by the web UI's tests (``tests/e2e/test_web*.py``, ``tests/browser/``); no tests.

A web world is a World (one Revisor over source ``proj`` with a bare upstream, from
``test_transactions_support``) served with the UI on by ``create_app`` under uvicorn on
loopback. Users and tokens, when a test wants multi-user mode, are made before the server starts.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from revisor.api.app import create_app
from revisor.api.settings import ServeSettings
from revisor.services.auth import AuthService
from revisor.services.candidates import Candidates
from tests.integration.test_transactions_support import FileSpec, World, make_world
from tests.support.server import serve_app

__all__ = [
    "FILES",
    "ODD",
    "UNICODE",
    "WebWorld",
    "csrf_of",
    "output_dir",
    "web_world",
]

UNICODE = "docs/ünïcödé 文件.md"
ODD = "odd dir/a b#c%d?e&f=g+h.txt"
FILES: dict[str, FileSpec] = {
    "README.md": "# Registry forms\n\nThe forms of the registry.\n\n<script>alert(1)</script>\n",
    "forms/a.json": '{"name": "a", "fields": []}\n',
    "forms/b.json": '{"name": "b", "fields": []}\n',
    "src/tool.py": "def main():\n    return 'tool'\n",
    UNICODE: "# Ünïcödé\n\nText in *Markdown*.\n",
    ODD: "odd name\n",
    "logo.png": bytes.fromhex("89504e470d0a1a0a") + bytes(range(64)),
    "data.bin": bytes(range(256)) * 8,
}


def output_dir() -> Path:
    """Where tests leave screenshots: ``$REVISOR_TEST_OUTPUT`` or ``<repo>/test-output``."""
    root = os.environ.get("REVISOR_TEST_OUTPUT") or str(
        Path(__file__).resolve().parents[2] / "test-output")
    path = Path(root) / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def csrf_of(page: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return html.unescape(found.group(1))


@dataclass
class WebWorld:
    world: World
    url: str
    app: FastAPI
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def candidates(self) -> Candidates:
        return self.world.source.candidates


@contextmanager
def web_world(
    tmp: Path,
    files: Mapping[str, FileSpec] | None = None,
    *,
    users: Mapping[str, str] | None = None,
    settings: ServeSettings | None = None,
    **source: Any,
) -> Iterator[WebWorld]:
    """Serve a new world with the UI (no scheduler). ``users``: name → role, each given a token
    (multi-user mode); none: single-user mode."""
    world = make_world("git", tmp, files if files is not None else FILES, **source)
    tokens: dict[str, str] = {}
    try:
        if users:
            auth = AuthService(world.rv.db)
            for name, role in users.items():
                made = auth.issue_token(name, role, email=f"{name}@example.com",
                                        display_name=name.capitalize())
                tokens[name] = made.secret
        app = create_app(world.rv, settings or ServeSettings(scheduler=False, ui=True))
        with serve_app(app) as url:
            yield WebWorld(world, url, app, tokens)
    finally:
        world.close()
