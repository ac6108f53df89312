"""Turning Revisor's typed values into text for people and JSON for programs."""

from __future__ import annotations

import dataclasses
import enum
import json
from datetime import datetime
from typing import Any

from revisor.vcs import Change, Changeset, TreeEntry

__all__ = [
    "changeset_dict",
    "dumps",
    "format_change",
    "format_entry",
    "format_log_line",
    "to_plain",
]


def to_plain(value: Any) -> Any:
    """Dataclasses, enums and datetimes as JSON-ready values (private fields left out)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.name.startswith("_")
        }
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_plain(value), ensure_ascii=False, indent=2)


def changeset_dict(cs: Changeset, *, with_changes: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = to_plain(cs)
    if with_changes:
        out["changes"] = to_plain(cs.changes())
    return out


def format_entry(e: TreeEntry) -> str:
    size = "-" if e.size is None else str(e.size)
    name = e.name + ("/" if e.kind.value == "dir" else "")
    return f"{e.mode:06o} {e.kind.value:<9} {e.id[:12]} {size:>10}  {name}"


def format_log_line(cs: Changeset) -> str:
    when = cs.author.time.strftime("%Y-%m-%d %H:%M %z")
    return f"{cs.id[:12]}  {when}  {cs.author.name:<20.20}  {cs.summary}"


def format_change(c: Change) -> str:
    letter = {
        "added": "A", "modified": "M", "deleted": "D", "renamed": "R", "copied": "C",
        "type-changed": "T",
    }[c.kind.value]
    if c.old_path and c.old_path != c.path:
        return f"{letter}  {c.old_path} -> {c.path}"
    return f"{letter}  {c.path}"
