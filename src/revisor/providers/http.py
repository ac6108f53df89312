"""A small typed HTTP client for the SCMs' REST APIs: timeouts, retries, rate limits, errors.

Why this module exists: Gitea and Gerrit have no well-kept Python client, and every call to them
needs the same care — a bounded wait, retries with backoff and jitter when the server or the
network fails, ``429``/``Retry-After`` honoured, answers mapped to Revisor's error tree with the
SCM's own message kept, and credentials kept out of every error and log line. Doing that once,
here, keeps the providers about their SCM's protocol.

Retrying is only safe when the request can be repeated without doing the thing twice:

- ``GET``, ``PUT``, ``PATCH``, ``DELETE`` (``retry=True`` by default) are retried on 5xx, 408 and
  connection failures;
- ``POST`` (``retry=False`` by default) is sent again only when it provably never reached the
  server (the connection could not be opened) or the server refused it without acting (``429``).
  A ``POST`` that failed otherwise (5xx, a timeout after sending) may have been applied:
  :func:`at_most_once` looks the result up before trying again, so a pull request or a comment is
  never created twice.

Errors, as :func:`error_for_status` maps them::

    401, 403, 423        → NotAllowed          (the SCM's message kept)
    404                  → NotFound            (providers turn it into ProposalNotFound)
    405, 409             → Conflict            (providers refine it: MergeConflict, …)
    400, 422, other 4xx  → InvalidInput
    408, 429, 5xx, timeouts, connection failures → RemoteUnavailable (with retry_after)
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from revisor.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    NotAllowed,
    NotFound,
    RemoteUnavailable,
    RevisorError,
)
from revisor.store.urls import redact

__all__ = [
    "Auth",
    "BasicAuth",
    "HttpClient",
    "HttpPolicy",
    "TokenAuth",
    "at_most_once",
    "error_for_status",
    "json_message",
    "read_secret",
    "text_message",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MESSAGE_LIMIT = 500
_USER_AGENT = "revisor (+https://github.com/revisor)"


@dataclass(frozen=True)
class TokenAuth:
    """A token sent in a header: ``Authorization: token <t>`` (Gitea), ``Bearer <t>``, or a bare
    value in a custom header (``PRIVATE-TOKEN``) when ``scheme`` is empty."""

    token: str = field(repr=False)
    scheme: str = "token"
    header: str = "Authorization"

    def headers(self) -> dict[str, str]:
        return {self.header: f"{self.scheme} {self.token}" if self.scheme else self.token}

    def secrets(self) -> tuple[str, ...]:
        return (self.token,)


@dataclass(frozen=True)
class BasicAuth:
    """HTTP basic authentication (Gerrit's HTTP password)."""

    username: str
    password: str = field(repr=False)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Basic {self._encoded()}"}

    def _encoded(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")

    def secrets(self) -> tuple[str, ...]:
        return (self.password, self._encoded())


Auth = TokenAuth | BasicAuth


@dataclass(frozen=True)
class HttpPolicy:
    """Limits for one SCM's API calls."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    attempts: int = 4  # tries per call, the first included
    backoff_base: float = 0.5  # full jitter: a random wait in [0, min(cap, base * 2**attempt)]
    backoff_cap: float = 10.0
    max_retry_after: float = 120.0  # a longer Retry-After is not waited for: RemoteUnavailable

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    @classmethod
    def with_read_timeout(cls, timeout: float | None) -> HttpPolicy:
        """The default policy, with the read timeout a provider's settings ask for (if any)."""
        policy = cls()
        return policy if timeout is None else replace(policy, read_timeout=timeout)


def json_message(response: httpx.Response) -> str:
    """The message of a JSON error body (``{"message": …}``, Gitea's and GitHub's shape), else
    the body's text."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(data, Mapping):
        for key in ("message", "error", "error_description"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return response.text.strip()


def text_message(response: httpx.Response) -> str:
    """A plain-text error body (Gerrit answers errors in ``text/plain``)."""
    return response.text.strip()


def read_secret(env: Mapping[str, str], var: str, field: str) -> str:
    """The secret in environment variable ``var``, read now; :class:`ConfigError` naming
    ``field`` (the configuration key that names the variable) if it is unset or empty."""
    value = env.get(var)
    if not value:
        state = "is not set" if value is None else "is empty"
        raise ConfigError(
            f"the environment variable {var} {state}",
            field=field,
            hint=f"export {var} before starting Revisor",
        )
    return value


def _retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date), else from an exhausted
    ``X-RateLimit-Remaining``/``X-RateLimit-Reset`` pair; None when neither says."""
    value = response.headers.get("Retry-After")
    now = time.time() if now is None else now
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(0.0, when.timestamp() - now)
    if response.headers.get("X-RateLimit-Remaining", "").strip() == "0":
        reset = response.headers.get("X-RateLimit-Reset", "").strip()
        if reset.isdigit():
            return max(0.0, float(reset) - now)
    return None


def error_for_status(
    service: str, what: str, status: int, message: str, *, retry_after: float | None = None
) -> RevisorError:
    """The Revisor error for an HTTP error answer; ``message`` (the SCM's, already redacted) is
    kept in the error's text."""
    text = f"{service}: {what}: {status} {message}".rstrip() if message else (
        f"{service}: {what}: HTTP {status}"
    )
    if status in (401, 403, 423):
        hint = (
            "check the token or password and that the account may do this"
            if status != 423 else "the repository is archived or locked"
        )
        return NotAllowed(text, hint=hint)
    if status == 404:
        return NotFound(text)
    if status in (405, 409):
        return Conflict(text, hint="read the proposal again; its state changed")
    if status == 408 or status == 429 or status >= 500:
        return RemoteUnavailable(text, retry_after=retry_after)
    return InvalidInput(text)


class HttpClient:
    """Calls one SCM's REST API at ``base_url``. Constructing it does no I/O; the HTTP
    connection pool is made on first use and shared by threads.

    ``auth`` is called for every request (so a rotated secret takes effect at once and a missing
    one raises the provider's :class:`~revisor.errors.ConfigError` only when used).
    ``message_of`` extracts the SCM's message from an error answer; ``json_prefix`` is stripped
    from JSON answers (Gerrit's ``)]}'``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        service: str,
        auth: Callable[[], Auth | None] = lambda: None,
        policy: HttpPolicy | None = None,
        message_of: Callable[[httpx.Response], str] = json_message,
        json_prefix: bytes = b"",
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.policy = policy or HttpPolicy()
        self.sleep = sleep
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._auth = auth
        self._message_of = message_of
        self._json_prefix = json_prefix
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        origin = urlsplit(self.base_url)
        self._origin = (origin.scheme, origin.netloc)

    def __repr__(self) -> str:
        return f"HttpClient({redact(self.base_url)!r})"

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                p = self.policy
                self._client = httpx.Client(
                    timeout=httpx.Timeout(p.read_timeout, connect=p.connect_timeout),
                    transport=self._transport,
                    follow_redirects=False,
                    headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` (a path below ``base_url``, or an absolute URL on the
        same origin — anything else is refused so credentials never go to another host)."""
        if path.startswith(("http://", "https://")):
            parts = urlsplit(path)
            if (parts.scheme, parts.netloc) != self._origin:
                raise RemoteUnavailable(
                    f"{self.service}: refusing to follow a link to another host: "
                    f"{redact(path)}"
                )
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    # -- requests ---------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        retry: bool | None = None,
    ) -> httpx.Response:
        """Send one request and return its (2xx/3xx) answer, or raise the mapped error.

        ``retry``: retry 5xx and broken connections (default: for idempotent methods only).
        ``429`` is always waited out (up to ``policy.max_retry_after``) and tried again.
        """
        method = method.upper()
        if retry is None:
            retry = method in _IDEMPOTENT
        auth = self._auth()
        secrets = auth.secrets() if auth is not None else ()
        headers = auth.headers() if auth is not None else {}
        url = self.url(path)
        what = f"{method} {redact(urlsplit(url).path, secrets)}"
        attempts = max(1, self.policy.attempts)
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            try:
                response = self._http().request(
                    method, url, params=params, json=json_body, headers=headers
                )
            except httpx.TransportError as exc:
                # Never sent (no connection): safe to repeat whatever the method.
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                error = RemoteUnavailable(
                    f"{self.service}: {what}: {_describe(exc, secrets)}",
                    hint="the server did not answer in time or the connection failed",
                )
                if (retry or unsent) and attempt < attempts:
                    self._pause(attempt, error)
                    continue
                raise error from None
            elapsed = time.monotonic() - started
            log.debug("%s %s -> %d (%.3fs)", self.service, what, response.status_code, elapsed)
            if response.status_code < 400:
                return response
            message = self._message(response, secrets)
            wait = _retry_after(response)
            limited = response.status_code == 429 or (
                response.status_code == 403 and wait is not None
                and response.headers.get("X-RateLimit-Remaining", "").strip() == "0"
            )
            if limited:
                wait = 1.0 if wait is None else wait
                if wait > self.policy.max_retry_after or attempt == attempts:
                    raise RemoteUnavailable(
                        f"{self.service}: {what}: rate limited ({response.status_code}"
                        f"{': ' + message if message else ''}); retry after {wait:g}s",
                        retry_after=wait,
                    )
                log.info("%s: %s rate limited; waiting %.2fs as asked", self.service, what, wait)
                self.sleep(wait)
                continue
            status = response.status_code
            if retry and (status >= 500 or status == 408) and attempt < attempts:
                self._pause(attempt, error_for_status(self.service, what, status, message))
                continue
            raise error_for_status(self.service, what, status, message, retry_after=wait)
        raise AssertionError("unreachable")

    def _pause(self, attempt: int, error: RevisorError) -> None:
        delay = self.policy.backoff(attempt, self.rng)
        log.warning("%s (attempt %d); retrying in %.2fs", error, attempt, delay)
        self.sleep(delay)

    def _message(self, response: httpx.Response, secrets: tuple[str, ...]) -> str:
        try:
            text = self._message_of(response)
        except (ValueError, UnicodeDecodeError):
            text = ""
        text = " ".join(text.split())
        if len(text) > _MESSAGE_LIMIT:
            text = text[:_MESSAGE_LIMIT] + "…"
        return redact(text, secrets)

    # -- JSON -------------------------------------------------------------------------------------
    def decode(self, response: httpx.Response) -> Any:
        """The JSON value of an answer (with ``json_prefix`` removed)."""
        body = response.content
        if self._json_prefix and body.startswith(self._json_prefix):
            body = body[len(self._json_prefix):]
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except ValueError:
            raise RemoteUnavailable(
                f"{self.service}: {response.request.method} {urlsplit(str(response.url)).path}: "
                "the answer is not JSON",
                hint="is the API URL right (not the web UI or a proxy's page)?",
            ) from None

    def get_json(
        self, path: str, params: Mapping[str, Any] | list[tuple[str, Any]] | None = None
    ) -> Any:
        return self.decode(self.request("GET", path, params=params))

    def send_json(self, method: str, path: str, body: Any, *, retry: bool | None = None) -> Any:
        return self.decode(self.request(method, path, json_body=body, retry=retry))

    def paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        per_page: int = 50,
        page_param: str = "page",
        limit_param: str = "limit",
        max_pages: int = 200,
    ) -> Iterator[Any]:
        """Every item of a paged list: follows ``Link: <…>; rel="next"`` when the server sends
        Link headers, else asks for the next page while pages come back full."""
        query: dict[str, Any] = {**(params or {}), page_param: 1, limit_param: per_page}
        url: str = path
        follow = False  # following a Link: its URL carries the query (httpx would replace it)
        for _ in range(max_pages):
            response = self.request("GET", url, params=None if follow else query)
            items = self.decode(response)
            if not isinstance(items, list):
                raise RemoteUnavailable(f"{self.service}: GET {path}: expected a list")
            yield from items
            if "link" in response.headers:
                nxt = response.links.get("next", {}).get("url")
                if not nxt:
                    return
                url, follow = self.url(nxt), True
            elif len(items) < per_page or follow:
                return
            else:
                query[page_param] += 1
        raise RemoteUnavailable(f"{self.service}: GET {path}: more than {max_pages} pages")


def _describe(exc: httpx.TransportError, secrets: tuple[str, ...]) -> str:
    kind = {
        httpx.ConnectTimeout: "connection timed out",
        httpx.ReadTimeout: "no answer in time",
        httpx.WriteTimeout: "sending timed out",
        httpx.PoolTimeout: "no free connection in time",
        httpx.ConnectError: "cannot connect",
        httpx.RemoteProtocolError: "the connection broke",
    }.get(type(exc), type(exc).__name__)
    detail = str(exc).strip()
    return redact(f"{kind} ({detail})" if detail else kind, secrets)


def at_most_once(
    action: Callable[[], T],
    lookup: Callable[[], T | None],
    *,
    policy: HttpPolicy,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Do a non-idempotent ``action`` (create a pull request, post a comment) without ever doing
    it twice: when it fails in a way that may have been applied (5xx, a timeout), ``lookup``
    checks whether it was; only if it finds nothing is the action tried again (with backoff).

    If ``lookup`` itself cannot answer, the action's error is raised: not knowing is never a
    reason to try again.
    """
    rng = rng or random.Random()  # noqa: S311 - jitter
    attempts = max(1, policy.attempts)
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except RemoteUnavailable as exc:
            try:
                found = lookup()
            except RemoteUnavailable:
                raise exc from None
            if found is not None:
                log.info("%s: applied although the answer was lost (%s)", what, exc)
                return found
            if attempt == attempts:
                raise
            delay = policy.backoff(attempt, rng)
            log.warning("%s failed (%s) and was not applied; retrying in %.2fs", what, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")
