"""What the proposal providers share: the hidden author marker, settings checks, audit entries.

Why this module exists: the providers were written side by side and each grew its own copy of the
same few rules — the marker that records, in a body written by the SCM's service account, on
whose behalf Revisor wrote it; the checks of a source's ``provider`` block that name the
offending field; the shape of the audit entries a proposal's life leaves behind; reading the
merge from the source's mirror; fetching quietly after a merge. Keeping one copy here means a
fix lands in every provider at once. What only looks alike stays in its provider: Gitea's
marker, for one, has its own format (a kind and a nonce) and is not this one.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from revisor.config import parse_duration
from revisor.db.audit import AuditLog, actor_of
from revisor.errors import ConfigError, InvalidInput, ProposalNotFound, RevisorError
from revisor.providers.base import ProposalRequest
from revisor.store.schemes import host_and_project
from revisor.store.store import StoreSource
from revisor.vcs import MergeResult, ObjectId, Signature, check_ref_name

__all__ = [
    "check_branches",
    "check_type",
    "local_merge",
    "mark",
    "parse_timeout",
    "proposal_not_found",
    "provider_block",
    "record_proposal",
    "refresh_quietly",
    "reject_unknown",
    "remote_project",
    "required_strings",
    "unmark",
]

# -- the hidden marker (GitHub, GitLab) ------------------------------------------------------------
# Appended to a body or comment Revisor writes; names the person on whose behalf it was written
# (the SCM sees only the token's account). Markdown renders HTML comments invisibly.
_MARKER = re.compile(r"\s*<!-- revisor:(\{[^\n]*?\}) -->\s*\Z")


def mark(text: str, who: Signature | tuple[str, str]) -> str:
    """``text`` with Revisor's marker naming ``who`` (a signature, or a (name, email) pair)."""
    name, email = (who.name, who.email) if isinstance(who, Signature) else who
    data = json.dumps({"name": name, "email": email}, ensure_ascii=True)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e")  # never ends the comment
    return f"{text.rstrip()}\n\n<!-- revisor:{data} -->" if text.strip() else \
        f"<!-- revisor:{data} -->"


def unmark(text: str | None) -> tuple[str, tuple[str, str] | None]:
    """The text without Revisor's marker, and the (name, email) the marker names."""
    text = text or ""
    m = _MARKER.search(text)
    if m is None:
        return text, None
    try:
        data = json.loads(m.group(1))
        who = (str(data["name"]), str(data["email"]))
    except (ValueError, KeyError, TypeError):
        return text, None
    return text[: m.start()], who


# -- settings --------------------------------------------------------------------------------------
def provider_block(source: StoreSource) -> tuple[dict[str, Any], str]:
    """The source's ``provider`` block beyond ``type``, and its place in the configuration (the
    prefix of every field an error names)."""
    return dict(source.config.provider.model_extra or {}), f"sources.{source.name}.provider"


def reject_unknown(keys: Iterable[str], known: Iterable[str], where: str) -> None:
    """:class:`ConfigError` naming the first of ``keys`` that is not ``known``."""
    allowed = set(known)
    for key in keys:
        if key not in allowed:
            raise ConfigError("unknown field (misspelt?)", field=f"{where}.{key}")


def required_strings(extra: Mapping[str, Any], keys: Iterable[str], where: str) -> dict[str, str]:
    """The non-empty strings ``extra`` has for ``keys``, stripped; else :class:`ConfigError`."""
    values: dict[str, str] = {}
    for key in keys:
        value = extra.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError("field required (a string)", field=f"{where}.{key}")
        values[key] = value.strip()
    return values


def check_type(value: object, kind: str, field: str) -> None:
    """:class:`ConfigError` naming ``field`` unless ``value`` is of the settings' ``kind``
    (``str``: non-empty; ``bool``; ``int``/``float``: non-negative)."""
    if kind == "str":
        ok, want = isinstance(value, str) and value != "", "a non-empty string"
    elif kind == "bool":
        ok, want = isinstance(value, bool), "true or false"
    else:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        ok = number and value >= 0 and (kind == "float" or isinstance(value, int))  # type: ignore[operator]
        want = "a non-negative integer" if kind == "int" else "a non-negative number"
    if not ok:
        raise ConfigError(f"expected {want}", field=field)


def parse_timeout(extra: Mapping[str, Any], where: str) -> float | None:
    """The block's ``timeout`` (a duration such as ``30s``) in seconds; None when absent."""
    if "timeout" not in extra:
        return None
    try:
        return parse_duration(extra["timeout"]).total_seconds()
    except ValueError as exc:
        raise ConfigError(str(exc), field=f"{where}.timeout") from None


def remote_project(source: StoreSource) -> str:
    """The path of the source's remote URL (``owner/name``, ``group/sub/name``), or ``""``."""
    remote = getattr(source.config, "remote", None)
    return host_and_project(remote)[1] if remote is not None else ""


# -- requests and answers --------------------------------------------------------------------------
def check_branches(request: ProposalRequest, hint: str | None = None) -> None:
    """Refuse a request whose branches are not valid names, or that merges a branch into itself."""
    check_ref_name(f"refs/heads/{request.source_branch}")
    check_ref_name(f"refs/heads/{request.target_branch}")
    if request.source_branch == request.target_branch:
        raise InvalidInput(f"a proposal cannot merge {request.source_branch!r} into itself",
                           hint=hint)


def proposal_not_found(source: str, number: int, detail: str) -> ProposalNotFound:
    """:class:`ProposalNotFound`, with what the SCM said about it."""
    err = ProposalNotFound(source, number)
    err.message = f"{err.message} ({detail})"
    err.args = (err.message,)
    return err


# -- audit -----------------------------------------------------------------------------------------
def record_proposal(
    audit: AuditLog,
    who: Signature,
    action: str,
    source: str,
    number: int,
    *,
    before: str | None = None,
    after: str | None = None,
    details: Mapping[str, object] | None = None,
    session: Session | None = None,
) -> None:
    """Record ``action`` (``proposal.open``, ``.update``, ``.close``, ``.comment``, ``.merge``)
    on proposal ``number`` of ``source``, done by ``who``."""
    audit.record(actor_of(who), action, source, f"proposals/{number}", before=before,
                 after=after, details=details, session=session)


# -- the source's mirror ---------------------------------------------------------------------------
def local_merge(source: StoreSource, target: ObjectId, head: ObjectId,
                log: logging.Logger) -> MergeResult | None:
    """The merge of ``head`` into ``target`` computed from the source's mirror (fetched if it
    lacks a commit); None, logged, when the mirror cannot tell."""
    try:
        return source.repository.merge(source.resolve(target), source.resolve(head))
    except RevisorError as exc:
        log.info("%s: cannot compute the merge locally: %s", source.name, exc)
        return None


def refresh_quietly(
    source: StoreSource, log: logging.Logger, after: str,
    errors: tuple[type[RevisorError], ...] = (RevisorError,),
) -> None:
    """Fetch, so that reads through the source see a change at once; a failure of ``errors`` is
    only logged (``after``: what happened, for the log line)."""
    try:
        source.refresh()
    except errors as exc:
        log.warning("%s: could not fetch after %s: %s", source.name, after, exc)
