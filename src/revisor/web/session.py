"""Web sessions: a signed cookie, a CSRF token per session, and who the visitor is.

Why this module exists: browsers cannot send a bearer token, so a person signs in once with their
API token and gets a session cookie. The cookie is ``<payload>.<signature>``: the payload (base64
JSON) holds a random session id, the signed-in user's name, role, email and token id, and an
expiry — never the token itself; the signature is an HMAC-SHA256 with a secret kept in the data
directory (``web-secret``, created on first start, mode 0600). The cookie is HttpOnly and
SameSite=Lax (Secure over https).

Every visitor gets a session (an anonymous one until they sign in, and in single-user mode), so
every form can carry a CSRF token: an HMAC of the session id, checked on every POST together with
the Origin header when the browser sends one.

**UI and API.** The pages call the services directly, not the API. For the API, a session counts
only for safe requests (GET/HEAD) without an ``Authorization`` header — so that links from the UI
(the archive download, blobs) work for a signed-in person — by setting
``request.state.principal``; API writes always need a bearer token, so a forged cross-site POST
to the API never rides on the cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import anyio.to_thread

from revisor.db.auth import TokenState
from revisor.errors import NotFound
from revisor.services.auth import AuthService, Principal, Role

__all__ = [
    "COOKIE",
    "SESSION_SECONDS",
    "Session",
    "SessionCheck",
    "SessionCodec",
    "WebSessionMiddleware",
    "load_secret",
]

COOKIE = "revisor_session"
SESSION_SECONDS = 8 * 3600
RECHECK_SECONDS = 30.0  # a revoked token or a disabled user ends sessions within this time
SECRET_FILE = "web-secret"  # noqa: S105 - a file name, not a secret

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def load_secret(data_dir: Path) -> bytes:
    """The data directory's signing secret, created (0600) on first use; shared by every worker
    and kept across restarts so sessions survive them."""
    path = data_dir / SECRET_FILE
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_bytes(32)
    tmp = path.with_name(f"{SECRET_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(fresh)
    try:
        os.link(tmp, path)  # the first writer wins; a concurrent starter reads its secret
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


@dataclass(frozen=True)
class Session:
    """One browser's session: an id, who signed in (None: nobody), when it ends."""

    sid: str
    expires: int
    principal: Principal | None = None

    @property
    def signed_in(self) -> bool:
        return self.principal is not None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Signs and checks session cookies and CSRF tokens with one secret."""

    def __init__(self, secret: bytes, *, lifetime: int = SESSION_SECONDS) -> None:
        self._secret = secret
        self.lifetime = lifetime

    def _sign(self, purpose: str, data: bytes) -> bytes:
        return hmac.new(self._secret, purpose.encode() + b"\0" + data, hashlib.sha256).digest()

    def new(self, principal: Principal | None = None) -> Session:
        return Session(secrets.token_urlsafe(18), int(time.time()) + self.lifetime, principal)

    def encode(self, session: Session) -> str:
        body: dict[str, Any] = {"sid": session.sid, "exp": session.expires}
        p = session.principal
        if p is not None:
            body["p"] = {
                "user": p.user, "role": p.role.value, "email": p.email, "name": p.display_name,
                "roles": {k: v.value for k, v in p.source_roles.items()}, "tok": p.token_id,
            }
        payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{_b64(self._sign('session', payload))}"

    def decode(self, value: str, *, now: float | None = None) -> Session | None:
        """The session a cookie holds; None when it is forged, damaged or expired."""
        try:
            payload_text, _, sig_text = value.partition(".")
            payload = _unb64(payload_text)
            if not hmac.compare_digest(_unb64(sig_text), self._sign("session", payload)):
                return None
            body = json.loads(payload)
            expires = int(body["exp"])
            if expires < (now if now is not None else time.time()):
                return None
            principal = None
            if body.get("p"):
                p = body["p"]
                principal = Principal(
                    str(p["user"]), Role(p["role"]), email=str(p.get("email") or ""),
                    display_name=str(p.get("name") or ""),
                    source_roles={str(k): Role(v) for k, v in (p.get("roles") or {}).items()},
                    token_id=int(p["tok"]) if p.get("tok") is not None else None,
                )
            return Session(str(body["sid"]), expires, principal)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def csrf_token(self, session: Session) -> str:
        return _b64(self._sign("csrf", session.sid.encode()))[:32]

    def check_csrf(self, session: Session | None, token: str | None) -> bool:
        if session is None or not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())


class SessionCheck:
    """Whether a signed-in session still stands: its token active, its user enabled — and the
    user's current roles. Answers are kept for :data:`RECHECK_SECONDS` per token."""

    def __init__(self, auth: AuthService, *, ttl: float = RECHECK_SECONDS) -> None:
        self.auth = auth
        self.ttl = ttl
        self._lock = threading.Lock()
        self._known: dict[tuple[str, int | None], tuple[float, Principal | None]] = {}

    def current(self, principal: Principal) -> Principal | None:
        key = (principal.user, principal.token_id)
        now = time.monotonic()
        with self._lock:
            hit = self._known.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
        fresh = self._lookup(principal)
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[key] = (now, fresh)
        return fresh

    def _lookup(self, principal: Principal) -> Principal | None:
        if principal.token_id is None:
            return None
        store = self.auth.store
        try:
            token = store.get_token(principal.token_id)
            user = store.get_user(principal.user)
        except NotFound:
            return None
        if token.user != user.name or user.disabled:
            return None
        if token.state(self.auth.clock()) is not TokenState.ACTIVE:
            return None
        return self.auth.principal_for(user, token_id=token.id)


def _cookies(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: S112 - a malformed cookie header: ignore that header
                continue
            out.update({k: m.value for k, m in jar.items()})
    return out


def cookie_header(value: str, *, secure: bool, max_age: int) -> bytes:
    parts = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Lax", f"Max-Age={max_age}"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")


class WebSessionMiddleware:
    """Reads the session cookie into ``scope["state"]["web_session"]``; gives pages that have
    none a new anonymous session (the cookie is set on the response); lets a signed-in session
    authenticate safe API requests (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, codec: SessionCodec, check: SessionCheck, api_prefix: str
    ) -> None:
        self.app = app
        self.codec = codec
        self.check = check
        self.auth = check.auth
        self.api_prefix = api_prefix

    def _standing(self, session: Session) -> Session:
        """The session with its principal as it stands now (None: signed out)."""
        if session.principal is None:
            return session
        if not self.auth.has_users():
            return replace(session, principal=None)  # single-user: nobody signs in
        return replace(session, principal=self.check.current(session.principal))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        raw = _cookies(scope).get(COOKIE)
        session = self.codec.decode(raw) if raw else None
        ended = False  # signed in, but the token or the user no longer stands
        if session is not None and session.principal is not None:
            session = await anyio.to_thread.run_sync(self._standing, session)
            ended = session.principal is None
        state = scope.setdefault("state", {})
        if path.startswith(self.api_prefix + "/") or path == self.api_prefix:
            headers = dict(scope.get("headers") or ())
            if (
                session is not None
                and session.principal is not None
                and scope.get("method") in ("GET", "HEAD")
                and b"authorization" not in headers
            ):
                state["principal"] = session.principal
            await self.app(scope, receive, send)
            return
        # a page: every visitor has a session (anonymous until signing in), for CSRF tokens
        created = session is None or ended
        if session is None:
            session = self.codec.new()
        state["web_session"] = session
        secure = scope.get("scheme") == "https"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                replaced = state.get("web_session_set")
                if isinstance(replaced, Session) or created:
                    chosen = replaced if isinstance(replaced, Session) else session
                    value = self.codec.encode(chosen)
                    headers = list(message.get("headers") or [])
                    headers.append((b"set-cookie", cookie_header(
                        value, secure=secure, max_age=self.codec.lifetime)))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)
