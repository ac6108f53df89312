"""User names as ref components: any Unicode name round-trips, never collides with another, and
always makes a ref that ``git check-ref-format`` accepts — checked against git itself."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revisor.core.refnames import (
    MAX_COMPONENT,
    candidate_ref,
    decode_component,
    encode_component,
    parse_workspace_ref,
    workspace_prefix,
    workspace_ref,
)
from revisor.errors import InvalidInput
from revisor.vcs.names import check_ref_name

# Any Unicode text hypothesis can make (no lone surrogates: those are not text), up to 20 code
# points: 20 four-byte characters encode to exactly MAX_COMPONENT places.
names = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=20,
)


def _git_accepts(refs: list[str]) -> list[bool]:
    """``git check-ref-format`` on each ref (one process each: it takes one name)."""
    return [
        subprocess.run(["git", "check-ref-format", r], capture_output=True, check=False)
        .returncode == 0
        for r in refs
    ]


@given(names)
def test_any_name_round_trips(name: str) -> None:
    component = encode_component(name)
    assert decode_component(component) == name
    assert parse_workspace_ref(workspace_ref(7, name)) == (7, name)


@given(names, names)
def test_distinct_names_never_collide_even_case_folded(a: str, b: str) -> None:
    if a == b:
        return
    ea, eb = encode_component(a), encode_component(b)
    assert ea != eb
    # a case-folding file system must not merge them either
    assert ea.lower() != eb.lower()


@given(names)
def test_component_alphabet_and_length(name: str) -> None:
    component = encode_component(name)
    assert set(component) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-%ABCDEF")
    assert len(component) <= MAX_COMPONENT
    assert check_ref_name(workspace_ref(1, name)) == workspace_ref(1, name)


@settings(max_examples=60, deadline=None)
@given(st.lists(names, min_size=1, max_size=10))
def test_git_accepts_every_encoded_ref(batch: list[str]) -> None:
    refs = [workspace_ref(3, n) for n in batch]
    assert all(_git_accepts(refs))


@pytest.mark.parametrize(
    ("name", "component"),
    [
        ("alice", "alice"),
        ("Alice", "%41lice"),
        ("a.b", "a%2Eb"),
        ("..", "%2E%2E"),
        ("x.lock", "x%2Elock"),
        ("@{u}", "%40%7Bu%7D"),
        ("a/b", "a%2Fb"),
        ("o'brien smith", "o%27brien%20smith"),
        ("Łukasz", "%C5%81ukasz"),
        ("50%", "50%25"),
        ("-rf", "-rf"),
        ("user_1-2", "user_1-2"),
    ],
)
def test_known_encodings(name: str, component: str) -> None:
    assert encode_component(name) == component
    assert decode_component(component) == name
    assert all(_git_accepts([workspace_ref(1, name)]))


@pytest.mark.parametrize("name", ["", "a\x00b", "\ud800", "x" * 201, "\U0001f600" * 21])
def test_unencodable_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        encode_component(name)


@pytest.mark.parametrize(
    "component",
    ["", "A", "%4a", "%61", "%", "%4", "a%ZZ", "a.b", "%C5", "%FF", "%00", "a/b", "%2" * 3],
)
def test_non_canonical_components_are_refused(component: str) -> None:
    with pytest.raises(InvalidInput):
        decode_component(component)


def test_candidate_and_workspace_refs() -> None:
    assert candidate_ref(12) == "refs/revisor/candidates/12"
    assert workspace_prefix(12) == "refs/revisor/workspaces/12/"
    assert workspace_ref(12, "Bob") == "refs/revisor/workspaces/12/%42ob"
    for bad in (0, -1, True):
        with pytest.raises(InvalidInput):
            candidate_ref(bad)
    for ref in ("refs/revisor/workspaces/x/alice", "refs/revisor/workspaces/01/alice",
                "refs/revisor/candidates/1", "refs/revisor/workspaces/1/a/b",
                "refs/revisor/workspaces/1"):
        with pytest.raises(InvalidInput):
            parse_workspace_ref(ref)
