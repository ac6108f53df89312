"""Remote URLs: what git would do with them, decided before git ever sees one.

A remote URL is untrusted text that git interprets richly: ``ext::sh -c …`` runs a command, a
leading ``-`` becomes an option, an unknown ``foo://`` runs a ``git-remote-foo`` helper, and a
password inside ``https://user:secret@host/`` ends up in every log line that prints the URL.
:func:`parse_remote` accepts exactly the transports Revisor supports — a local path, ``file://``,
``http(s)://``, ``ssh://``, scp-like ``user@host:path`` and ``git://`` — and classifies them the way
git does, so the store never guesses. :func:`redact` is the one function that removes credentials
from any text (a URL, a log line, git's stderr) before it leaves the process.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from revisor.errors import InvalidRemote

__all__ = [
    "REDACTED",
    "RemoteUrl",
    "Transport",
    "parse_remote",
    "redact",
    "strip_userinfo",
]

REDACTED = "***"


class Transport(enum.StrEnum):
    """How git reaches a remote."""

    LOCAL = "local"  # a plain path
    FILE = "file"  # file:///path
    HTTP = "http"
    HTTPS = "https"
    SSH = "ssh"  # ssh://… and scp-like user@host:path
    GIT = "git"  # git://, unauthenticated

    @property
    def is_network(self) -> bool:
        return self not in (Transport.LOCAL, Transport.FILE)


# git's spellings of the schemes it handles itself (they are case-sensitive in git).
_SCHEMES: dict[str, Transport] = {
    "http": Transport.HTTP,
    "https": Transport.HTTPS,
    "ssh": Transport.SSH,
    "git+ssh": Transport.SSH,
    "ssh+git": Transport.SSH,
    "git": Transport.GIT,
    "file": Transport.FILE,
}

_DEFAULT_PORTS: dict[Transport, int] = {
    Transport.HTTP: 80,
    Transport.HTTPS: 443,
    Transport.SSH: 22,
    Transport.GIT: 9418,
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# git's transport_get(): a run of [A-Za-z0-9+.-] followed by '::' names a remote helper.
_HELPER = re.compile(r"[A-Za-z0-9+.\-]*::")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_DOS_DRIVE = re.compile(r"[A-Za-z]:[/\\]")
# What may appear in a host name or address (brackets are removed before this check): letters
# (IDN too), digits, '.', '-', '_', '~', '%' (zone ids) and ':' (IPv6).
_HOST = re.compile(r"[\w.~%:\-]+")
# RFC 3986 userinfo characters, without ':' (the password separator).
_USER = re.compile(r"[A-Za-z0-9._~%!$&'()*+,;=\-]+")


@dataclass(frozen=True, slots=True)
class RemoteUrl:
    """A parsed remote URL.

    ``host`` is lower-cased, without brackets for IPv6 and ``""`` for local transports. ``path`` is
    the path as git sees it (for scp-like URLs, what follows the colon; never percent-decoded).
    ``project`` is ``path`` without the leading ``/`` and the trailing ``.git`` or ``/``.
    ``user`` is as written (still percent-encoded); ``password`` is percent-decoded, as git would
    send it. ``raw`` and ``password`` are left out of ``repr``; ``str()`` is the redacted URL.
    """

    raw: str = field(repr=False)
    transport: Transport
    host: str
    port: int | None
    user: str | None
    path: str
    project: str
    has_password: bool
    password: str | None = field(default=None, repr=False, compare=False)

    @property
    def redacted(self) -> str:
        return redact(self.raw)

    @property
    def default_port(self) -> bool:
        """True when no port is given or it is the transport's usual one."""
        return self.port is None or self.port == _DEFAULT_PORTS.get(self.transport)

    def __str__(self) -> str:
        return self.redacted


def _refuse(url: str, reason: str) -> InvalidRemote:
    return InvalidRemote(redact(url), reason)


def _project(path: str) -> str:
    project = path.lstrip("/").rstrip("/")
    project = project.removesuffix(".git")
    return project.rstrip("/")


def _check_host(url: str, host: str, transport: Transport) -> str:
    if host == "":
        raise _refuse(url, f"a {transport.value} URL needs a host")
    if host.startswith("-"):
        raise _refuse(url, "the host must not start with '-'")
    if not _HOST.fullmatch(host):
        raise _refuse(url, "the host contains characters that are not allowed")
    return host.lower()


def _check_user(url: str, user: str) -> str:
    if user.startswith("-"):
        raise _refuse(url, "the user name must not start with '-'")
    if not _USER.fullmatch(user):
        raise _refuse(url, "the user name contains characters that are not allowed")
    return user


def _split_host_port(url: str, hostport: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` → (host without brackets, port)."""
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise _refuse(url, "an IPv6 address is missing its ']'")
        host, rest = hostport[1:close], hostport[close + 1 :]
        if rest and not rest.startswith(":"):
            raise _refuse(url, "unexpected text after the IPv6 address")
        port_text = rest[1:] if rest else ""
    else:
        host, sep, port_text = hostport.partition(":")
        if sep and ":" in port_text:
            raise _refuse(url, "an IPv6 address must be written in brackets")
    port: int | None = None
    if port_text:
        if not port_text.isascii() or not port_text.isdigit():
            raise _refuse(url, f"the port {port_text!r} is not a number")
        port = int(port_text)
        if not 0 < port < 65536:
            raise _refuse(url, f"the port {port} is out of range")
    return host, port


def _parse_scheme_url(url: str, scheme: str, rest: str) -> RemoteUrl:
    transport = _SCHEMES.get(scheme)
    if transport is None:
        if scheme.lower() in _SCHEMES:
            raise _refuse(url, f"git's schemes are lower-case: use {scheme.lower()}://")
        raise _refuse(url, f"unknown scheme {scheme!r} (git would run a remote helper)")
    slash = rest.find("/")
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    userinfo, at, hostport = authority.rpartition("@")
    user: str | None = None
    password: str | None = None
    if at:
        if "@" in userinfo:
            raise _refuse(url, "write '@' inside a user name or password as %40")
        name, colon, secret = userinfo.partition(":")
        if colon:
            password = unquote(secret)
        if name:
            user = _check_user(url, name)
    host, port = _split_host_port(url, hostport)
    if transport is Transport.FILE:
        if host not in ("", "localhost") or port is not None or at:
            raise _refuse(url, "a file:// URL names a local path: file:///path/to/repo")
        if path == "":
            raise _refuse(url, "the path is empty")
        return RemoteUrl(url, transport, "", None, None, path, _project(path), False)
    host = _check_host(url, host, transport)
    return RemoteUrl(
        url, transport, host, port, user, path, _project(path), password is not None, password
    )


def _parse_scp(url: str, colon: int) -> RemoteUrl:
    # git's rule: the host part ends at the first ':' (brackets may protect an IPv6 address).
    hostpart, path = url[:colon], url[colon + 1 :]
    at = hostpart.rfind("@")
    if hostpart.startswith("[") or (at >= 0 and hostpart[at + 1 :].startswith("[")):
        close = url.find("]")
        if close < 0 or url[close + 1 : close + 2] != ":":
            raise _refuse(url, "a bracketed host must be followed by ':' and a path")
        hostpart, path = url[: close + 1], url[close + 2 :]
        at = hostpart.rfind("@", 0, hostpart.find("["))
    user_text, hostport = (hostpart[:at], hostpart[at + 1 :]) if at >= 0 else ("", hostpart)
    if hostport.startswith("[") and hostport.endswith("]"):
        inner = hostport[1:-1]
        if "@" in inner:  # [user@host]:path, git's old spelling
            user_text, _, inner = inner.rpartition("@")
        host, port = (inner, None) if inner.count(":") != 1 else _split_host_port(url, inner)
    else:
        host, port = hostport, None
    user = _check_user(url, user_text) if user_text else None
    host = _check_host(url, host, Transport.SSH)
    if path == "":
        raise _refuse(url, "the path after ':' is empty")
    if path.startswith("-"):
        raise _refuse(url, "the path must not start with '-'")
    return RemoteUrl(url, Transport.SSH, host, port, user, path, _project(path), False)


def parse_remote(url: str) -> RemoteUrl:
    """Classify ``url`` as git would, refusing everything Revisor does not hand to git.

    Refused with :class:`InvalidRemote`: an empty string, a leading ``-``, control characters
    (NUL, newline…), remote-helper syntax ``<transport>::<address>`` (``ext::`` runs commands,
    ``fd::`` uses file descriptors), schemes git would hand to a helper, hosts that are empty or
    start with ``-``. A password inside the URL is accepted and flagged (``has_password``): the
    store strips it (:func:`strip_userinfo`) and uses it as a credential.
    """
    if not isinstance(url, str) or url == "":
        raise InvalidRemote(repr(url), "the URL is empty")
    if _CONTROL.search(url):
        raise _refuse(url, "contains a control character (NUL, newline, …)")
    if url.startswith("-"):
        raise _refuse(url, "looks like a command-line option")
    if _HELPER.match(url):
        raise _refuse(url, "remote-helper syntax ('<transport>::…', e.g. ext::) is not allowed")
    scheme = _SCHEME.match(url)
    if scheme is not None:
        return _parse_scheme_url(url, scheme.group(1), url[scheme.end() :])
    colon, slash = url.find(":"), url.find("/")
    is_scp = colon >= 0 and (slash < 0 or colon < slash)
    if is_scp and _DOS_DRIVE.match(url):
        if os.name != "nt":
            raise _refuse(url, "a Windows drive path; give a POSIX path or a file:// URL")
        is_scp = False
    if is_scp:
        return _parse_scp(url, colon)
    return RemoteUrl(url, Transport.LOCAL, "", None, None, url, _project(url), False)


def strip_userinfo(url: str) -> str:
    """``url`` without the credentials in it; a purely textual operation that never raises.

    For ``http(s)://``, ``git://`` and other ``scheme://`` URLs the whole userinfo goes (a token
    is often written as the user name). For ``ssh://`` only the password goes: the user name is
    what ssh logs in as, and ssh never reads a password from a URL. Scp-like ``user@host:path``
    and local paths have no credentials and come back unchanged.
    """
    m = _SCHEME.match(url)
    if m is None:
        return url
    start = m.end()
    end = len(url)
    for i in range(start, len(url)):
        if url[i] == "/" or url[i].isspace():
            end = i
            break
    at = url.rfind("@", start, end)
    if at < 0:
        return url
    if _SCHEMES.get(m.group(1)) is Transport.SSH:
        user = url[start:at].partition(":")[0]
        return url[:start] + (f"{user}@" if user else "") + url[at + 1 :]
    return url[:start] + url[at + 1 :]


# Header values: everything after the auth scheme up to the end of the line.
_AUTH_HEADER = re.compile(
    r"(?im)(\b(?:proxy-)?authorization[ \t]*:[ \t]*)"
    r"(?:(basic|bearer|token|digest|negotiate|ntlm|oauth)[ \t]+)?([^\r\n]*)"
)
# key=value secrets, as git's credential protocol (and many tools) print them.
_SECRET_ASSIGNMENT = re.compile(
    r"(?im)((?<![A-Za-z0-9])(?:password|passwd|oauth_refresh_token|credential|access_token|token)"
    r"[ \t]*=[ \t]*)([^\r\n]*)"
)


def _redact_urls(text: str) -> str:
    """Replace the userinfo after every ``://`` by ``***``.

    The authority runs from ``://`` to the first ``/`` or whitespace; its userinfo is everything
    up to the *last* ``@`` in it. Quotes, ``?`` and ``#`` do not end it: a password may contain
    them, and redacting too much is better than too little.
    """
    out: list[str] = []
    pos = 0
    search_from = 0
    while True:
        sep = text.find("://", search_from)
        if sep < 0:
            break
        start = sep + 3
        end = start
        while end < len(text) and text[end] != "/" and not text[end].isspace():
            end += 1
        at = text.rfind("@", start, end)
        if at > start and text[start:at] != REDACTED:
            out.append(text[pos:start])
            out.append(REDACTED)
            pos = at
        search_from = sep + 1
    out.append(text[pos:])
    return "".join(out)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every credential replaced by ``***``; idempotent.

    Removes the userinfo of every URL in the text (``https://***@host/path``), the value of
    ``Authorization:``/``Proxy-Authorization:`` headers (``Authorization: Basic ***``), and the
    value of ``password=``, ``token=``, ``oauth_refresh_token=`` and ``credential=`` assignments as
    git's credential protocol prints them. ``secrets`` are values known to be secret (a resolved
    token): each, and its percent-encoded form, is replaced wherever it appears.
    """
    for secret in sorted({s for s in secrets if s and s.strip("*")}, key=len, reverse=True):
        for form in {secret, quote(secret, safe="")}:
            while form in text:  # a replacement can join the text around it into a new match
                text = text.replace(form, REDACTED)
    text = _redact_urls(text)
    text = _AUTH_HEADER.sub(
        lambda m: m.group(1) + (f"{m.group(2)} " if m.group(2) else "") + REDACTED, text
    )
    text = _SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + REDACTED, text)
    return text
