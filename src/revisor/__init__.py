"""Revisor: read and change files in git repositories without managing clones.

``revisor.open(config)`` is the library's entry point::

    import revisor
    from revisor.vcs import Signature

    with revisor.open("revisor.yaml") as rv:
        src = rv.source("flipt")
        print(src.view("main").read("README.md"))
        result = src.update("main", "Fix typo", Signature.now("Alice", "alice@example.com"),
                            changes=[revisor.Write("README.md", b"...")])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Chmod", "Delete", "Move", "Write", "__version__", "open"]

if TYPE_CHECKING:
    from revisor.bootstrap import open_revisor as open
    from revisor.core.changes import Chmod, Delete, Move, Write


def __getattr__(name: str) -> Any:
    # Imported lazily so that `revisor ls` on a path does not load the database layer.
    if name == "open":
        from revisor.bootstrap import open_revisor

        return open_revisor
    if name in ("Chmod", "Delete", "Move", "Write"):
        from revisor.core import changes

        return getattr(changes, name)
    raise AttributeError(f"module 'revisor' has no attribute {name!r}")
