"""The web UI's parts without a server: session cookies and CSRF tokens, links for any file name,
and diffs parsed from git's patches (checked against git's own counts)."""

from __future__ import annotations

import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from revisor.services.auth import Principal, Role
from revisor.vcs import Repository
from revisor.web.content import FileKind, RowKind, classify, parse_patch, side_by_side
from revisor.web.render import age, breadcrumbs, href
from revisor.web.session import Session, SessionCodec, load_secret
from tests.gitutil import GitRepo

ALICE = Principal("alice", Role.EDITOR, email="alice@example.com", display_name="Alice",
                  source_roles={"proj": Role.ADMIN}, token_id=7)


def test_a_session_round_trips_and_keeps_no_token() -> None:
    codec = SessionCodec(b"k" * 32)
    session = codec.new(ALICE)
    value = codec.encode(session)
    back = codec.decode(value)
    assert back == session
    assert back is not None and back.principal == ALICE
    assert "rvs_" not in value


def test_forged_or_expired_sessions_are_refused() -> None:
    codec = SessionCodec(b"k" * 32)
    value = codec.encode(codec.new(ALICE))
    payload, _, sig = value.partition(".")
    assert SessionCodec(b"o" * 32).decode(value) is None  # another secret
    assert codec.decode(payload + "." + sig[:-2] + "AA") is None
    assert codec.decode("garbage") is None and codec.decode("") is None
    admin = codec.encode(codec.new(ALICE)).replace(payload[:10], payload[:10][::-1])
    assert codec.decode(admin) is None
    old = Session("sid", int(time.time()) - 1, ALICE)
    assert codec.decode(codec.encode(old)) is None


def test_csrf_tokens_belong_to_their_session() -> None:
    codec = SessionCodec(b"k" * 32)
    one, two = codec.new(), codec.new()
    assert codec.check_csrf(one, codec.csrf_token(one))
    assert not codec.check_csrf(two, codec.csrf_token(one))
    assert not codec.check_csrf(one, None) and not codec.check_csrf(None, "x")


def test_the_secret_is_made_once_and_private(tmp_path: Path) -> None:
    first = load_secret(tmp_path / "data")
    assert load_secret(tmp_path / "data") == first and len(first) == 32
    mode = stat.S_IMODE(os.stat(tmp_path / "data" / "web-secret").st_mode)
    assert mode == 0o600


@pytest.mark.parametrize("path", ["a b/c#d%e?f&g=h+i.txt", "docs/ünïcödé 文件.md", "x/y"])
def test_links_carry_any_path(path: str) -> None:
    link = href("/s/proj/blob", rev="feature/x", path=path)
    query = parse_qs(urlsplit(link).query, keep_blank_values=True)
    assert query == {"rev": ["feature/x"], "path": [path]}
    assert "#" not in link and " " not in link


def test_breadcrumbs_and_ages() -> None:
    assert breadcrumbs("a/b/c") == [("a", "a"), ("b", "a/b"), ("c", "a/b/c")]
    now = datetime(2026, 1, 10, tzinfo=UTC)
    assert age(now - timedelta(hours=3), now=now) == "3 hours ago"
    assert age(now - timedelta(days=1), now=now) == "1 day ago"
    assert age(now - timedelta(seconds=5), now=now) == "just now"


def test_what_a_file_shows_as() -> None:
    assert classify("a.png", 10, b"\x89PNG") is FileKind.IMAGE
    assert classify("a.md", 10, b"# x") is FileKind.MARKDOWN
    assert classify("a.bin", 10, b"\x00\x01") is FileKind.BINARY
    assert classify("a.txt", 10, "é".encode("latin-1")) is FileKind.BINARY
    assert classify("a.txt", 10**9, b"x") is FileKind.TOO_LARGE


def test_parsed_patches_match_git(git_repo: GitRepo) -> None:
    lines = [f"line {i}\n" for i in range(40)]
    (git_repo.path / "f.txt").write_text("".join(lines))
    git_repo.git("add", "-A")
    git_repo.git("commit", "-qm", "one")
    lines[3] = "changed 3\n"
    del lines[20:23]
    lines.insert(30, "inserted\n")
    (git_repo.path / "f.txt").write_text("".join(lines) + "no newline")
    git_repo.git("commit", "-qam", "two")
    repo = Repository.open(git_repo.path)
    (d,) = repo.diff("HEAD~1", "HEAD")
    hunks = parse_patch(d.patch)
    added = sum(r.kind is RowKind.ADDED for h in hunks for r in h.rows)
    deleted = sum(r.kind is RowKind.DELETED for h in hunks for r in h.rows)
    numstat = git_repo.git("diff", "--numstat", "HEAD~1", "HEAD").split()
    assert (added, deleted) == (int(numstat[0]), int(numstat[1]))
    # line numbers are the files' own: each row's text is that line of the old or new file
    old = git_repo.git("show", "HEAD~1:f.txt").splitlines()
    new = git_repo.git("show", "HEAD:f.txt").splitlines()
    for h in hunks:
        for r in h.rows:
            if r.old is not None:
                assert old[r.old - 1] == r.text
            if r.new is not None:
                assert new[r.new - 1] == r.text
        for left, right in side_by_side(h):
            assert left is None or left.kind is not RowKind.ADDED
            assert right is None or right.kind is not RowKind.DELETED
    repo.close()
