"""Remote URLs: git's classification, what is refused, and redaction that never leaks."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from revisor.errors import InvalidInput, InvalidRemote
from revisor.store.urls import (
    REDACTED,
    RemoteUrl,
    Transport,
    parse_remote,
    redact,
    strip_userinfo,
)

# (url, transport, host, port, user, project, has_password)
ACCEPTED = [
    (
        "https://example.com/flipt-io/flipt.git",
        Transport.HTTPS,
        "example.com",
        None,
        None,
        "flipt-io/flipt",
        False,
    ),
    ("http://h/a/b/", Transport.HTTP, "h", None, None, "a/b", False),
    ("https://Example.COM:8443/org/x", Transport.HTTPS, "example.com", 8443, None, "org/x", False),
    ("https://bot:s3cret@h/org/x.git", Transport.HTTPS, "h", None, "bot", "org/x", True),
    ("https://TOKEN@h/org/x.git", Transport.HTTPS, "h", None, "TOKEN", "org/x", False),
    ("https://u:@h/x", Transport.HTTPS, "h", None, "u", "x", True),
    ("https://[::1]:8080/org/x.git", Transport.HTTPS, "::1", 8080, None, "org/x", False),
    ("https://h", Transport.HTTPS, "h", None, None, "", False),
    ("ssh://git@h/org/x.git", Transport.SSH, "h", None, "git", "org/x", False),
    ("ssh://h:2222/~user/x", Transport.SSH, "h", 2222, None, "~user/x", False),
    ("git+ssh://git@h/x.git", Transport.SSH, "h", None, "git", "x", False),
    ("ssh+git://h/x", Transport.SSH, "h", None, None, "x", False),
    ("git@github.com:org/repo.git", Transport.SSH, "github.com", None, "git", "org/repo", False),
    ("github.com:org/repo", Transport.SSH, "github.com", None, None, "org/repo", False),
    ("hh:/abs/path.git", Transport.SSH, "hh", None, None, "abs/path", False),
    ("me@host:~/r.git", Transport.SSH, "host", None, "me", "~/r", False),
    ("[::1]:repo.git", Transport.SSH, "::1", None, None, "repo", False),
    ("user@[fe80::1]:org/x", Transport.SSH, "fe80::1", None, "user", "org/x", False),
    ("[git@host:2222]:org/x", Transport.SSH, "host", 2222, "git", "org/x", False),
    ("git://h/org/x.git", Transport.GIT, "h", None, None, "org/x", False),
    ("git://h:9418/x", Transport.GIT, "h", 9418, None, "x", False),
    ("file:///srv/repos/x.git", Transport.FILE, "", None, None, "srv/repos/x", False),
    ("file://localhost/srv/x", Transport.FILE, "", None, None, "srv/x", False),
    ("/srv/notes", Transport.LOCAL, "", None, None, "srv/notes", False),
    ("/srv/notes/.git", Transport.LOCAL, "", None, None, "srv/notes", False),
    ("/srv/x.git/", Transport.LOCAL, "", None, None, "srv/x", False),
    ("relative/dir", Transport.LOCAL, "", None, None, "relative/dir", False),
    ("./a:b", Transport.LOCAL, "", None, None, "./a:b", False),
    ("/srv/x://y", Transport.LOCAL, "", None, None, "srv/x://y", False),
    ("repo", Transport.LOCAL, "", None, None, "repo", False),
]


@pytest.mark.parametrize(
    ("url", "transport", "host", "port", "user", "project", "has_password"), ACCEPTED
)
def test_accepted(
    url: str,
    transport: Transport,
    host: str,
    port: int | None,
    user: str | None,
    project: str,
    has_password: bool,
) -> None:
    remote = parse_remote(url)
    assert remote.raw == url
    assert (remote.transport, remote.host, remote.port, remote.user) == (
        transport,
        host,
        port,
        user,
    )
    assert remote.project == project
    assert remote.has_password is has_password


REFUSED = [
    ("", "empty"),
    ("-oProxyCommand=x", "option"),
    ("--upload-pack=touch /tmp/pwned", "option"),
    ("ext::sh -c touch% /tmp/pwned", "remote-helper"),
    ("ext::ssh -oProxyCommand=x h %S", "remote-helper"),
    ("fd::7", "remote-helper"),
    ("fd::7,8", "remote-helper"),
    ("git-remote-foo::x", "remote-helper"),
    ("C++::x", "remote-helper"),
    ("::x", "remote-helper"),
    ("https://h/x\n", "control"),
    ("https://h/x\x00y", "control"),
    ("https://h/\rx", "control"),
    ("/srv/x\ty", "control"),
    ("foo://h/x", "unknown scheme"),
    ("ftp://h/x", "unknown scheme"),
    ("ftps://h/x", "unknown scheme"),
    ("svn+ssh://h/x", "unknown scheme"),
    ("HTTPS://h/x", "lower-case"),
    ("https:///x", "needs a host"),
    ("ssh:///x", "needs a host"),
    ("git:///x", "needs a host"),
    ("ssh://-oProxyCommand=x/y", "'-'"),
    ("ssh://-oProxyCommand=x@h/y", "'-'"),
    ("-oProxyCommand=x:y", "option"),
    ("h:-x", "'-'"),
    (":path", "needs a host"),
    ("host:", "empty"),
    ("https://h:http/x", "not a number"),
    ("https://h:0/x", "out of range"),
    ("https://h:70000/x", "out of range"),
    ("https://::1/x", "brackets"),
    ("https://[::1/x", "']'"),
    ("https://a@b:pw@h/x", "%40"),
    ("file://server/share/x", "file:///"),
    ("file://u@localhost/x", "file:///"),
    ("file://", "empty"),
    ("https://h h/x", "not allowed"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused(url: str, reason: str) -> None:
    with pytest.raises(InvalidRemote) as info:
        parse_remote(url)
    assert isinstance(info.value, InvalidInput)
    assert reason in info.value.reason


def test_windows_drive_is_not_an_scp_host() -> None:
    with pytest.raises(InvalidRemote, match="Windows drive"):
        parse_remote("C:/repos/x")
    with pytest.raises(InvalidRemote, match="Windows drive"):
        parse_remote("c:\\repos\\x")
    # A longer "host" is scp-like, as git reads it.
    assert parse_remote("cc:/repos/x").transport is Transport.SSH


def test_non_string_refused() -> None:
    with pytest.raises(InvalidRemote):
        parse_remote(None)  # type: ignore[arg-type]


def test_refusal_never_echoes_the_password() -> None:
    with pytest.raises(InvalidRemote) as info:
        parse_remote("foo://bot:hunter2@h/x")
    assert "hunter2" not in str(info.value)
    assert "***@h" in str(info.value)


def test_password_is_kept_out_of_repr_and_str() -> None:
    remote = parse_remote("https://bot:hunter2@h/org/x.git")
    assert remote.password == "hunter2"  # noqa: S105
    assert "hunter2" not in repr(remote)
    assert "hunter2" not in str(remote)
    assert str(remote) == "https://***@h/org/x.git"
    assert remote.redacted == "https://***@h/org/x.git"


def test_password_is_percent_decoded() -> None:
    remote = parse_remote("https://bot:p%40ss%2Fw%20rd@h/x")
    assert remote.password == "p@ss/w rd"  # noqa: S105
    assert remote.user == "bot"


@pytest.mark.parametrize("url", ["https://b\"ot@h/x", "ssh://a`b@h/x", "https://h'x/y", "a$(b):x"])
def test_odd_characters_in_users_and_hosts_are_refused(url: str) -> None:
    with pytest.raises(InvalidRemote, match="not allowed"):
        parse_remote(url)


def test_international_host_names() -> None:
    assert parse_remote("https://bücher.example/x").host == "bücher.example"


def test_remote_url_is_frozen() -> None:
    remote = parse_remote("https://h/x")
    with pytest.raises(AttributeError):
        remote.host = "other"  # type: ignore[misc]
    assert isinstance(remote, RemoteUrl)


def test_default_port() -> None:
    assert parse_remote("https://h/x").default_port
    assert parse_remote("https://h:443/x").default_port
    assert not parse_remote("https://h:8443/x").default_port
    assert parse_remote("ssh://h:22/x").default_port
    assert not parse_remote("ssh://h:2222/x").default_port


def test_transport_is_network() -> None:
    assert Transport.HTTPS.is_network and Transport.SSH.is_network
    assert not Transport.LOCAL.is_network and not Transport.FILE.is_network


# -- strip_userinfo -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "stripped"),
    [
        ("https://bot:pw@h/org/x.git", "https://h/org/x.git"),
        ("https://TOKEN@h/x", "https://h/x"),
        ("http://u:p@h:8080/x", "http://h:8080/x"),
        ("https://h/x", "https://h/x"),
        ("https://h/a@b", "https://h/a@b"),
        ("ssh://git:pw@h/x", "ssh://git@h/x"),
        ("ssh://git@h/x", "ssh://git@h/x"),
        ("ssh://:pw@h/x", "ssh://h/x"),
        ("git://u@h/x", "git://h/x"),
        ("git@github.com:org/x.git", "git@github.com:org/x.git"),
        ("/srv/x", "/srv/x"),
        ("https://u:p@h", "https://h"),
    ],
)
def test_strip_userinfo(url: str, stripped: str) -> None:
    assert strip_userinfo(url) == stripped


def test_strip_userinfo_never_raises() -> None:
    assert strip_userinfo("ext::sh -c x") == "ext::sh -c x"
    assert strip_userinfo("") == ""


# -- redact ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://bot:pw@h/org/x.git", "https://***@h/org/x.git"),
        ("https://TOKEN@h/x", "https://***@h/x"),
        (
            "fatal: unable to access 'https://u:p@h/x/': The requested URL returned error: 403",
            "fatal: unable to access 'https://***@h/x/': The requested URL returned error: 403",
        ),
        (
            "from ssh://git@h/x and http://a:b@c:80/d",
            "from ssh://***@h/x and http://***@c:80/d",
        ),
        ("https://h/path?email=a", "https://h/path?email=a"),
        ("no urls here, user@example.com", "no urls here, user@example.com"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
        ("authorization: bearer abc.def", "authorization: bearer ***"),
        (
            "=> Send header: Authorization: token ghp_123\nnext line",
            "=> Send header: Authorization: token ***\nnext line",
        ),
        ("Proxy-Authorization: Basic Zm9v", "Proxy-Authorization: Basic ***"),
        ("Authorization: rawsecret", "Authorization: ***"),
        (
            "protocol=https\nhost=h\nusername=bot\npassword=pa ss\n",
            "protocol=https\nhost=h\nusername=bot\npassword=***\n",
        ),
        ("oauth_refresh_token=xyz", "oauth_refresh_token=***"),
        ("FLIPT_TOKEN=abc", "FLIPT_TOKEN=***"),
        ("password_expiry_utc=17", "password_expiry_utc=17"),
        ("credential.helper=store", "credential.helper=store"),
        ("https://***@h/x", "https://***@h/x"),
    ],
)
def test_redact_examples(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_known_secrets_and_their_encoded_form() -> None:
    secret = "p@ss/w rd"  # noqa: S105
    text = f"token {secret} and {quote(secret, safe='')}"
    assert secret not in redact(text, secrets=[secret])
    assert quote(secret, safe="") not in redact(text, secrets=[secret])
    assert redact("nothing", secrets=["", "***"]) == "nothing"


def test_redact_handles_a_url_inside_another_urls_authority() -> None:
    text = "https://u:p1@x://v:p2@h/"
    out = redact(text)
    assert "p1" not in out and "p2" not in out


# Passwords as they can appear in a URL: raw userinfo characters (RFC 3986 unreserved,
# sub-delims, ':', '%') or any text percent-encoded.
_USERINFO_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:%"
# A raw '@' in a password is ambiguous for git, but redaction must still hide what precedes it.
_raw_secret = st.text(alphabet=_USERINFO_CHARS + "@", min_size=1, max_size=24)
_any_secret = st.text(min_size=1, max_size=24).map(lambda s: quote(s, safe=""))
_user = st.text(alphabet=_USERINFO_CHARS.replace(":", ""), min_size=0, max_size=12)
_noise = st.text(max_size=40)
_scheme = st.sampled_from(["https", "http", "ssh", "git", "git+ssh", "foo"])
_host = st.from_regex(r"[a-z0-9.\-]{1,20}(:[0-9]{1,5})?", fullmatch=True)
_path = st.from_regex(r"(/[A-Za-z0-9._~\-]{0,10}){0,3}", fullmatch=True)


def _marker_free(secret: str) -> bool:
    # A secret equal to text the redaction leaves behind cannot be told apart from it.
    return secret.strip("*") != "" and secret not in ("https", "http", "ssh", "git", "foo")


@settings(max_examples=400)
@given(
    before=_noise,
    after=_noise,
    scheme=_scheme,
    user=_user,
    password=st.one_of(_raw_secret, _any_secret),
    host=_host,
    path=_path,
)
@example(before="", after="", scheme="https", user="u", password="p", host="h", path="/x")  # noqa: S106
@example(before="x", after="@y", scheme="https", user="", password="a'b#c?d", host="h", path="")  # noqa: S106
def test_password_never_survives_redact(
    before: str, after: str, scheme: str, user: str, password: str, host: str, path: str
) -> None:
    url = f"{scheme}://{user}:{password}@{host}{path}"
    text = f"{before} {url} {after}"
    out = redact(text)
    # The URL's own userinfo is gone: the scheme is directly followed by the redaction.
    assert f"{scheme}://{REDACTED}@{host}{path}" in out
    # And the password appears no more often than it does in the surrounding noise.
    if _marker_free(password) and len(password) >= 3:
        assert out.count(password) <= (before + " " + after).count(password)
    assert redact(out) == out


@settings(max_examples=300)
@given(
    lines=st.lists(
        st.one_of(
            _noise,
            st.builds(lambda s: f"password={s}", _raw_secret),
            st.builds(lambda s: f"Authorization: Basic {s}", _raw_secret),
            st.builds(lambda u, p, h: f"fatal: 'https://{u}:{p}@{h}/x'", _user, _raw_secret, _host),
        ),
        max_size=6,
    )
)
def test_redact_is_idempotent(lines: list[str]) -> None:
    text = "\n".join(lines)
    once = redact(text)
    assert redact(once) == once


@given(text=st.text(max_size=200))
def test_redact_is_idempotent_on_any_text(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@given(secret=st.text(min_size=1, max_size=16), text=st.text(max_size=60))
def test_redact_with_secrets_removes_them(secret: str, text: str) -> None:
    out = redact(f"{text}{secret}{text}", secrets=[secret])
    if secret.strip("*"):
        assert secret not in out
    assert redact(out, secrets=[secret]) == out


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "Fetching origin\nFrom https://example.com/org/x\n * [new branch] main -> main\n"
    assert redact(text) == text
    assert re.search(r"\*\*\*", redact(text)) is None
