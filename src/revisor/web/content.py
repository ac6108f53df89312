"""How a file or a diff is shown: highlighted code, rendered Markdown, an image, or a download.

Why this module exists: the file view and the diff views decide from the bytes what a person can
read. Text is highlighted with Pygments (line numbers linking to ``#L-<n>`` anchors); Markdown is
rendered by markdown-it-py with raw HTML disabled (a file's own HTML is shown as text, and
``javascript:`` links are refused by markdown-it's link validation); images are shown from the raw
endpoint; binary or very large files are offered for download. Diffs are parsed from git's
unified patch text into rows, for a unified table and a side-by-side one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import PurePosixPath

from markdown_it import MarkdownIt
from markupsafe import Markup
from pygments import highlight  # type: ignore[import-untyped]
from pygments.formatters import HtmlFormatter  # type: ignore[import-untyped]
from pygments.lexers import TextLexer, guess_lexer_for_filename  # type: ignore[import-untyped]
from pygments.util import ClassNotFound  # type: ignore[import-untyped]

__all__ = [
    "MAX_SHOWN",
    "DiffRow",
    "FileKind",
    "Hunk",
    "classify",
    "code_html",
    "markdown_html",
    "parse_patch",
    "side_by_side",
]

MAX_SHOWN = 512 * 1024  # bytes: larger files are offered for download
IMAGE_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp", ".bmp": "image/bmp", ".ico": "image/x-icon", ".svg": "image/svg+xml",
}
MARKDOWN = {".md", ".markdown", ".mdown"}

_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_formatter = HtmlFormatter(linenos="table", lineanchors="L", anchorlinenos=True, wrapcode=True)


class FileKind(enum.StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    IMAGE = "image"
    BINARY = "binary"
    TOO_LARGE = "too-large"


def image_type(path: str) -> str | None:
    return IMAGE_TYPES.get(PurePosixPath(path).suffix.lower())


def is_binary(data: bytes) -> bool:
    if b"\0" in data[:8000]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def classify(path: str, size: int, head: bytes) -> FileKind:
    """What to do with a file of ``size`` bytes starting with ``head``."""
    if image_type(path):
        return FileKind.IMAGE
    if size > MAX_SHOWN:
        return FileKind.TOO_LARGE
    if is_binary(head):
        return FileKind.BINARY
    if PurePosixPath(path).suffix.lower() in MARKDOWN:
        return FileKind.MARKDOWN
    return FileKind.TEXT


def code_html(path: str, text: str) -> Markup:
    """Highlighted source with line numbers; line ``n`` is the anchor ``L-n``."""
    try:
        lexer = guess_lexer_for_filename(path, text[:4096])
    except ClassNotFound:
        lexer = TextLexer()
    return Markup(highlight(text, lexer, _formatter))  # noqa: S704 - Pygments escapes the text


def markdown_html(text: str) -> Markup:
    """Markdown as HTML; the file's raw HTML is escaped, unsafe link schemes refused."""
    return Markup(_md.render(text))  # noqa: S704 - markdown-it escapes (html disabled)


def pygments_css() -> str:
    return str(_formatter.get_style_defs(".highlight"))


class RowKind(enum.StrEnum):
    CONTEXT = "context"
    ADDED = "added"
    DELETED = "deleted"
    HUNK = "hunk"


@dataclass(frozen=True)
class DiffRow:
    kind: RowKind
    old: int | None
    new: int | None
    text: str


@dataclass(frozen=True)
class Hunk:
    header: str
    rows: tuple[DiffRow, ...]


def _start(spec: str) -> int:
    return int(spec.lstrip("-+").split(",", 1)[0] or 0)


def parse_patch(patch: str) -> list[Hunk]:
    """The hunks of one file's unified patch (its ``diff --git`` header lines are skipped)."""
    hunks: list[Hunk] = []
    rows: list[DiffRow] = []
    header = ""
    old = new = 0
    in_hunk = False
    for line in patch.splitlines():
        if line.startswith("@@"):
            if in_hunk:
                hunks.append(Hunk(header, tuple(rows)))
            parts = line.split(" ")
            old, new = _start(parts[1]), _start(parts[2]) if len(parts) > 2 else 0
            header, rows, in_hunk = line, [], True
            continue
        if not in_hunk:
            continue
        if line.startswith("+"):
            rows.append(DiffRow(RowKind.ADDED, None, new, line[1:]))
            new += 1
        elif line.startswith("-"):
            rows.append(DiffRow(RowKind.DELETED, old, None, line[1:]))
            old += 1
        elif line.startswith("\\"):
            continue  # "\ No newline at end of file"
        else:
            rows.append(DiffRow(RowKind.CONTEXT, old, new, line[1:]))
            old += 1
            new += 1
    if in_hunk:
        hunks.append(Hunk(header, tuple(rows)))
    return hunks


def side_by_side(hunk: Hunk) -> list[tuple[DiffRow | None, DiffRow | None]]:
    """Rows paired left (old) and right (new): a run of deletions faces the additions after it."""
    out: list[tuple[DiffRow | None, DiffRow | None]] = []
    deleted: list[DiffRow] = []
    added: list[DiffRow] = []

    def flush() -> None:
        for i in range(max(len(deleted), len(added))):
            out.append((deleted[i] if i < len(deleted) else None,
                        added[i] if i < len(added) else None))
        deleted.clear()
        added.clear()

    for row in hunk.rows:
        if row.kind is RowKind.DELETED:
            if added:
                flush()
            deleted.append(row)
        elif row.kind is RowKind.ADDED:
            added.append(row)
        else:
            flush()
            out.append((row, row))
    flush()
    return out
