"""Validation of everything a caller names: repository paths, ref names and revisions.

This is the edge where untrusted text becomes something git will see. Nothing here touches a
repository: a bad name is refused before any work is done, and nothing that could be read as a git
option (a leading ``-``) or as a range (``a..b``) ever passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from revisor.errors import InvalidPath, InvalidRefName, InvalidRevision

__all__ = [
    "ParsedRevision",
    "check_ref_name",
    "parse_revision",
    "validate_dir",
    "validate_path",
]

MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255
MAX_REVISION_LENGTH = 1024

_FORBIDDEN_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def _is_dotgit(component: str) -> bool:
    # git refuses '.git' in any case, and the forms that NTFS/HFS+ fold into it.
    folded = component.lower().rstrip(". ")
    return folded in (".git", "git~1")


def validate_path(path: str) -> str:
    """Return ``path`` if it is a safe path to a file inside a repository, else raise InvalidPath.

    Safe means: relative, ``/``-separated, no empty, ``.`` or ``..`` part, nothing inside ``.git``,
    no NUL, valid UTF-8, within git's usual length limits.
    """
    if not isinstance(path, str):
        raise InvalidPath(repr(path), "a path must be a string")
    if path == "":
        raise InvalidPath(path, "the path is empty")
    if "\x00" in path:
        raise InvalidPath(path, "contains a NUL character")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPath(path, "is not valid UTF-8") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise InvalidPath(path, f"longer than {MAX_PATH_BYTES} bytes")
    if path.startswith("/"):
        raise InvalidPath(path, "absolute paths are not allowed")
    for part in path.split("/"):
        if part == "":
            raise InvalidPath(path, "has an empty component ('//' or a trailing '/')")
        if part in (".", ".."):
            raise InvalidPath(path, f"'{part}' components are not allowed")
        if _is_dotgit(part):
            raise InvalidPath(path, "nothing inside .git can be read or written")
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise InvalidPath(path, f"a component is longer than {MAX_COMPONENT_BYTES} bytes")
    return path


def validate_dir(path: str) -> str:
    """Like :func:`validate_path`, but the root directory (``""``) is allowed too."""
    if path == "":
        return path
    return validate_path(path)


def check_ref_name(name: str, *, allow_onelevel: bool = False) -> str:
    """Return ``name`` if git would accept it as a ref name (``git check-ref-format``)."""
    if not isinstance(name, str) or name == "":
        raise InvalidRefName(str(name), "a ref name must be a non-empty string")
    if name.startswith("-"):
        raise InvalidRefName(name, "must not start with '-'")
    if name == "@":
        raise InvalidRefName(name, "'@' alone is not a ref name")
    if _FORBIDDEN_REF_CHARS.search(name):
        raise InvalidRefName(name, "contains a space, a control character or one of ~^:?*[\\")
    if ".." in name:
        raise InvalidRefName(name, "contains '..'")
    if "@{" in name:
        raise InvalidRefName(name, "contains '@{'")
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise InvalidRefName(name, "has an empty component")
    if name.endswith("."):
        raise InvalidRefName(name, "ends with '.'")
    for part in name.split("/"):
        if part.startswith("."):
            raise InvalidRefName(name, "a component starts with '.'")
        if part.endswith(".lock"):
            raise InvalidRefName(name, "a component ends with '.lock'")
    if not allow_onelevel and "/" not in name and name != "HEAD":
        raise InvalidRefName(name, "a full ref name has at least one '/' (e.g. refs/heads/main)")
    if len(name.encode("utf-8")) > MAX_PATH_BYTES:
        raise InvalidRefName(name, "too long")
    return name


@dataclass(frozen=True, slots=True)
class ParsedRevision:
    """A revision split into its base name and its navigation steps.

    ``steps`` is a sequence of ``("~", n)`` (n-th first-parent ancestor) and ``("^", n)``
    (n-th parent; ``^0`` is the commit itself).
    """

    base: str
    steps: tuple[tuple[str, int], ...]


_STEP = re.compile(r"([~^])(\d*)")


def parse_revision(rev: str) -> ParsedRevision:
    """Parse the revision grammar Revisor accepts, refusing everything else.

    Accepted: a full or abbreviated commit id, ``HEAD`` (or ``@``), a branch, tag or full ref
    name, each optionally followed by ``~N``, ``~``, ``^N`` or ``^``. Refused: anything starting
    with ``-``, ranges (``..``, ``...``), ``rev:path``, reflog syntax (``@{...}``), ``^{type}``
    peeling, whitespace, control characters and glob characters.
    """
    if not isinstance(rev, str) or rev == "":
        raise InvalidRevision(str(rev), "the revision is empty")
    if len(rev) > MAX_REVISION_LENGTH:
        raise InvalidRevision(rev[:64] + "...", "too long")
    if rev.startswith("-"):
        raise InvalidRevision(rev, "looks like a command-line option")
    if "\x00" in rev:
        raise InvalidRevision(rev, "contains a NUL character")
    if ".." in rev:
        raise InvalidRevision(rev, "ranges are not revisions")
    if ":" in rev:
        raise InvalidRevision(rev, "'rev:path' is not accepted; give the path separately")
    if "@{" in rev:
        raise InvalidRevision(rev, "reflog expressions are not supported")
    cut = min((i for i in (rev.find("~"), rev.find("^")) if i >= 0), default=len(rev))
    base, suffix = rev[:cut], rev[cut:]
    if base == "":
        raise InvalidRevision(rev, "has no base name before '~' or '^'")
    steps: list[tuple[str, int]] = []
    pos = 0
    while pos < len(suffix):
        m = _STEP.match(suffix, pos)
        if m is None:
            raise InvalidRevision(rev, "only ~N and ^N may follow the name")
        kind, digits = m.group(1), m.group(2)
        if len(digits) > 6:
            raise InvalidRevision(rev, "ancestor number too large")
        steps.append((kind, int(digits) if digits else 1))
        pos = m.end()
    if base == "@":
        base = "HEAD"
    try:
        check_ref_name(base, allow_onelevel=True)
    except InvalidRefName as exc:
        raise InvalidRevision(rev, exc.reason) from None
    return ParsedRevision(base, tuple(steps))
