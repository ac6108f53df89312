"""Turning Revisor's typed values into text for people and JSON for programs."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import PurePath
from typing import Any

from revisor.vcs import Change, Changeset, TreeEntry

__all__ = [
    "changeset_dict",
    "dumps",
    "format_change",
    "format_entries",
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
    if isinstance(value, PurePath):
        return str(value)
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


def format_entries(entries: list[TreeEntry], last: Mapping[str, Changeset]) -> Iterator[str]:
    """Directory lines, with the last commit of each entry in aligned columns when given."""
    width = max((len(e.name) + (e.kind.value == "dir") for e in entries), default=0)
    for e in entries:
        line = format_entry(e)
        cs = last.get(e.name)
        if cs is not None:
            pad = " " * (width - len(e.name) - (e.kind.value == "dir"))
            when = cs.author.time.strftime("%Y-%m-%d")
            line += f"{pad}  {cs.id[:12]}  {when}  {cs.summary}"
        yield line
