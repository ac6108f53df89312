"""Where candidates and workspaces live in a repository, and how a user name becomes a ref part.

Why this module exists: a candidate is the ref ``refs/revisor/candidates/<id>`` and one user's
workspace in it is ``refs/revisor/workspaces/<id>/<user>`` (DESIGN, "Ref layout inside a mirror").
A user name is arbitrary Unicode — ``Alice``, ``alice``, ``o'brien``, ``..``, ``x.lock``,
``Łukasz``, ``@{u}`` — while a ref component must pass ``git check-ref-format`` *and* stay distinct
on the file system that holds loose refs, which may fold case (macOS, Windows) or normalise
Unicode. So the name is encoded into ONE component, reversibly and unambiguously:

- the name's UTF-8 bytes are read one by one;
- ``a`` to ``z``, ``0`` to ``9``, ``_`` and ``-`` are kept as they are;
- every other byte — upper-case letters included — becomes ``%XX`` with upper-case hex digits.

The result contains only ``[a-z0-9_%A-F-]``: no ``.`` (so no ``..``, ``.lock`` or leading dot),
no ``@{``, no ``/``, no control character, and no two names that differ only in case map to
components that differ only in case (``Alice`` → ``%41lice``, ``alice`` → ``alice``). Decoding is
strict: a component that is not exactly the encoding of some name (``%4a``, ``%61``, a stray
``%``, bytes that are not UTF-8) is refused, so the mapping is a bijection between valid names and
valid components.

A component is kept within :data:`MAX_COMPONENT` characters so that a loose ref file, plus git's
``.lock`` suffix, fits in any file system's 255-byte limit. Names are 1 to
:data:`MAX_USER_LENGTH` characters, with no NUL and no lone surrogate.
"""

from __future__ import annotations

import re

from revisor.errors import InvalidInput

__all__ = [
    "CANDIDATES_PREFIX",
    "MAX_COMPONENT",
    "MAX_USER_LENGTH",
    "WORKSPACES_PREFIX",
    "candidate_ref",
    "decode_component",
    "encode_component",
    "parse_workspace_ref",
    "workspace_prefix",
    "workspace_ref",
]

CANDIDATES_PREFIX = "refs/revisor/candidates/"
WORKSPACES_PREFIX = "refs/revisor/workspaces/"
MAX_COMPONENT = 240
"""Longest encoded component: a loose ref ``<component>.lock`` stays under 255 bytes."""
MAX_USER_LENGTH = 200
"""Longest user name, in characters (its encoding must also fit :data:`MAX_COMPONENT`)."""

_KEPT = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_-")
_ENCODED = re.compile(r"(?:[a-z0-9_-]|%[0-9A-F]{2})+")


def encode_component(name: str) -> str:
    """The ref component for user ``name`` (see the module docstring); InvalidInput if the name
    is empty, too long, or not encodable as UTF-8."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("a user name must be a non-empty string")
    if len(name) > MAX_USER_LENGTH:
        raise InvalidInput(f"a user name is at most {MAX_USER_LENGTH} characters")
    if "\x00" in name:
        raise InvalidInput("a user name must not contain NUL")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("a user name must be valid Unicode text (no lone surrogates)") from exc
    out = "".join(chr(b) if b in _KEPT else f"%{b:02X}" for b in raw)
    if len(out) > MAX_COMPONENT:
        raise InvalidInput(
            f"user name {name[:40]!r}... is too long once encoded for a ref",
            hint="use a shorter user name (non-ASCII characters take up to 12 places)",
        )
    return out


def decode_component(component: str) -> str:
    """The user name whose encoding is exactly ``component``; InvalidInput otherwise."""
    if not isinstance(component, str) or not _ENCODED.fullmatch(component):
        raise InvalidInput(f"{component!r} is not an encoded user name")
    raw = bytearray()
    i = 0
    while i < len(component):
        if component[i] == "%":
            byte = int(component[i + 1 : i + 3], 16)
            if byte in _KEPT:  # would have been kept as is: not canonical
                raise InvalidInput(f"{component!r} is not an encoded user name")
            raw.append(byte)
            i += 3
        else:
            raw.append(ord(component[i]))
            i += 1
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{component!r} does not encode UTF-8 text") from exc
    if encode_component(name) != component:  # NUL, length: refused both ways
        raise InvalidInput(f"{component!r} is not an encoded user name")
    return name


def _id(candidate_id: int) -> str:
    if isinstance(candidate_id, bool) or not isinstance(candidate_id, int) or candidate_id < 1:
        raise InvalidInput(f"invalid candidate id {candidate_id!r}")
    return str(candidate_id)


def candidate_ref(candidate_id: int) -> str:
    """``refs/revisor/candidates/<id>``."""
    return CANDIDATES_PREFIX + _id(candidate_id)


def workspace_prefix(candidate_id: int) -> str:
    """``refs/revisor/workspaces/<id>/``: every workspace of one candidate is below it."""
    return f"{WORKSPACES_PREFIX}{_id(candidate_id)}/"


def workspace_ref(candidate_id: int, user: str) -> str:
    """``refs/revisor/workspaces/<id>/<encoded user>``."""
    return workspace_prefix(candidate_id) + encode_component(user)


def parse_workspace_ref(ref: str) -> tuple[int, str]:
    """(candidate id, user name) of a workspace ref; InvalidInput for anything else."""
    rest = ref.removeprefix(WORKSPACES_PREFIX)
    number, sep, component = rest.partition("/")
    if rest == ref or not sep or not number.isascii() or not number.isdigit():
        raise InvalidInput(f"{ref!r} is not a workspace ref")
    if number.startswith("0") or "/" in component:
        raise InvalidInput(f"{ref!r} is not a workspace ref")
    return int(number), decode_component(component)
