"""Validation of paths, ref names and revisions: the edge where untrusted text arrives."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revisor.errors import InvalidInput, InvalidPath, InvalidRefName, InvalidRevision
from revisor.vcs.names import check_ref_name, parse_revision, validate_dir, validate_path

GOOD_PATHS = [
    "a",
    "a/b/c.txt",
    "ünïcødé/файл.md",
    "with space/and %20 percent.txt",
    "hash#and?question",
    "dot.file/.hidden",
    "...",
    ".gitignore",
    ".github/workflows/ci.yml",
    "a/.gitattributes",
    "trailing.dot.",
]

BAD_PATHS = [
    ("", "empty"),
    ("/etc/passwd", "absolute"),
    ("../x", "'..'"),
    ("a/../../x", "'..'"),
    ("a/./b", "'.'"),
    ("a//b", "empty component"),
    ("a/", "empty component"),
    (".git/config", ".git"),
    ("sub/.git/hooks/pre-commit", ".git"),
    (".GIT/config", ".git"),
    (".git./config", ".git"),
    ("git~1/config", ".git"),
    ("a\x00b", "NUL"),
    ("x" * 256, "longer"),
    ("a/" * 2100 + "b", "longer"),
]


@pytest.mark.parametrize("path", GOOD_PATHS)
def test_good_paths_pass_unchanged(path: str) -> None:
    assert validate_path(path) == path


@pytest.mark.parametrize(("path", "reason"), BAD_PATHS)
def test_bad_paths_are_refused_with_a_reason(path: str, reason: str) -> None:
    with pytest.raises(InvalidPath) as info:
        validate_path(path)
    assert reason in str(info.value)
    assert isinstance(info.value, InvalidInput)
    assert isinstance(info.value, ValueError)


def test_root_is_a_directory_but_not_a_file() -> None:
    assert validate_dir("") == ""
    with pytest.raises(InvalidPath):
        validate_path("")


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(InvalidPath, match="UTF-8"):
        validate_path("bad\udcff")


_segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1,
    max_size=20,
)


@given(st.lists(_segment, min_size=1, max_size=6))
def test_accepted_paths_never_escape(parts: list[str]) -> None:
    path = "/".join(parts)
    try:
        validate_path(path)
    except InvalidPath:
        return
    segments = path.split("/")
    assert ".." not in segments and "." not in segments and "" not in segments
    assert not path.startswith("/")
    assert all(s.lower().rstrip(". ") != ".git" for s in segments)


GOOD_REFS = ["refs/heads/main", "refs/heads/feature/x-1", "refs/tags/v1.0", "refs/heads/user@host"]
BAD_REFS = [
    "refs/heads/a..b",
    "refs/heads/a b",
    "refs/heads/a~1",
    "refs/heads/a^",
    "refs/heads/a:b",
    "refs/heads/a?",
    "refs/heads/a*",
    "refs/heads/a[",
    "refs/heads/a\\b",
    "refs/heads/.hidden",
    "refs/heads/x.lock",
    "refs/heads/x.",
    "refs/heads//x",
    "refs/heads/x/",
    "/refs/heads/x",
    "refs/heads/a@{1}",
    "@",
    "-refs/heads/x",
    "refs/heads/\x7f",
    "main",
]


@pytest.mark.parametrize("name", GOOD_REFS)
def test_good_ref_names(name: str) -> None:
    assert check_ref_name(name) == name


@pytest.mark.parametrize("name", BAD_REFS)
def test_bad_ref_names(name: str) -> None:
    with pytest.raises(InvalidRefName):
        check_ref_name(name)


@given(st.text(min_size=1, max_size=30).map(lambda s: "refs/heads/" + s))
def test_ref_names_agree_with_git_check_ref_format(name: str) -> None:
    if "\x00" in name:
        return  # cannot even be passed to git as an argument
    try:
        check_ref_name(name)
        ours = True
    except InvalidRefName:
        ours = False
    theirs = (
        subprocess.run(
            ["git", "check-ref-format", name], capture_output=True, check=False
        ).returncode
        == 0
    )
    # git accepts a few exotic names we refuse (none that we accept does git refuse).
    assert not ours or theirs, name


@pytest.mark.parametrize(
    ("rev", "base", "steps"),
    [
        ("main", "main", ()),
        ("HEAD", "HEAD", ()),
        ("@", "HEAD", ()),
        ("main~3", "main", (("~", 3),)),
        ("main~", "main", (("~", 1),)),
        ("main^2", "main", (("^", 2),)),
        ("main^", "main", (("^", 1),)),
        ("main^0", "main", (("^", 0),)),
        ("v1.0~2^2~1", "v1.0", (("~", 2), ("^", 2), ("~", 1))),
        ("feature/x@host", "feature/x@host", ()),
        ("refs/heads/main", "refs/heads/main", ()),
        ("a1b2c3d", "a1b2c3d", ()),
    ],
)
def test_revision_grammar(rev: str, base: str, steps: tuple[tuple[str, int], ...]) -> None:
    parsed = parse_revision(rev)
    assert parsed.base == base
    assert parsed.steps == steps


@pytest.mark.parametrize(
    ("rev", "reason"),
    [
        ("--output=/tmp/x", "option"),
        ("-n", "option"),
        ("-", "option"),
        ("main..dev", "ranges"),
        ("main...dev", "ranges"),
        ("a\x00b", "NUL"),
        ("HEAD:README", "rev:path"),
        ("main@{1}", "reflog"),
        ("main^{tree}", "~N and ^N"),
        ("main~x", "~N and ^N"),
        ("~1", "base name"),
        ("", "empty"),
        ("refs/../heads", "ranges"),
        ("a b", "space"),
        ("x" * 2000, "too long"),
        ("main*", "space"),
    ],
)
def test_bad_revisions_never_reach_git(rev: str, reason: str) -> None:
    with pytest.raises(InvalidRevision) as info:
        parse_revision(rev)
    assert reason in str(info.value)


@given(st.text(max_size=40))
def test_revision_parser_never_accepts_option_like_or_range(rev: str) -> None:
    try:
        parsed = parse_revision(rev)
    except InvalidRevision:
        return
    assert not rev.startswith("-")
    assert ".." not in rev and ":" not in rev and "\x00" not in rev
    assert parsed.base and not parsed.base.startswith("-")
