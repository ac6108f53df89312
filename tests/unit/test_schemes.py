"""Zuul's workspace schemes, and a layout that never lets two repositories nest."""

from __future__ import annotations

import json
import multiprocessing
import posixpath
import threading
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revisor.errors import InvalidInput, InvalidPath, LayoutCollision, StoreCorrupt
from revisor.store.schemes import (
    LOCAL_HOST,
    REGISTRY_FILE,
    Layout,
    Scheme,
    host_and_project,
    project_path,
    unique_project_name,
)
from revisor.store.urls import parse_remote


# Zuul's zuul/lib/strings.py (seed 003), transcribed to check against.
def zuul_workspace_project_path(hostname: str, project_name: str, scheme: str) -> str:
    if scheme == "unique":
        prefix, name = project_name.split("/")[0], quote_plus(project_name)
        return posixpath.join(hostname, prefix, name)
    if scheme == "golang":
        return posixpath.join(hostname, project_name)
    return posixpath.join(project_name.split("/")[-1])


# -- the schemes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scheme", "host", "project", "expected"),
    [
        ("golang", "example.com", "component", "example.com/component"),
        ("golang", "example.com", "component/subcomponent", "example.com/component/subcomponent"),
        ("flat", "example.com", "component", "component"),
        ("flat", "example.com", "component/subcomponent", "subcomponent"),
        ("unique", "example.com", "component", "example.com/component/component"),
        (
            "unique",
            "example.com",
            "component/subcomponent",
            "example.com/component/component%2Fsubcomponent",
        ),
        ("golang", "review.example.com", "org/project", "review.example.com/org/project"),
        ("unique", "h", "org/my project+x", "h/org/org%2Fmy+project%2Bx"),
        ("unique", "h", "ünï/cødé", "h/ünï/%C3%BCn%C3%AF%2Fc%C3%B8d%C3%A9"),
        ("golang", LOCAL_HOST, "srv/notes", "localhost/srv/notes"),
    ],
)
def test_scheme_paths(scheme: str, host: str, project: str, expected: str) -> None:
    assert project_path(scheme, host, project) == PurePosixPath(expected)
    assert str(project_path(Scheme(scheme), host, project)) == zuul_workspace_project_path(
        host, project, scheme
    )


def test_issue_example() -> None:
    host, project = host_and_project(parse_remote("https://h/org/component.git"))
    assert (host, project) == ("h", "org/component")
    assert project_path(Scheme.GOLANG, host, project) == PurePosixPath("h/org/component")
    assert project_path(Scheme.FLAT, host, project) == PurePosixPath("component")
    assert project_path(Scheme.UNIQUE, host, project) == PurePosixPath("h/org/org%2Fcomponent")


def test_unique_project_name_is_zuuls() -> None:
    assert unique_project_name("org/project") == ("org", "org%2Fproject")
    assert unique_project_name("project") == ("project", "project")


_component = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/\x00"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))
_project = st.lists(_component, min_size=1, max_size=4).map("/".join)
_hostname = st.from_regex(r"[a-z0-9][a-z0-9.\-]{0,20}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)


@given(scheme=st.sampled_from(list(Scheme)), host=_hostname, project=_project)
def test_schemes_agree_with_zuul(scheme: Scheme, host: str, project: str) -> None:
    if len(quote_plus(project).encode()) > 255:  # quote_plus can outgrow NAME_MAX
        return
    ours = project_path(scheme, host, project)
    assert str(ours) == zuul_workspace_project_path(host, project, scheme.value)
    assert not ours.is_absolute() and ".." not in ours.parts


@given(host=_hostname, a=_project, b=_project)
def test_unique_never_nests(host: str, a: str, b: str) -> None:
    try:
        pa, pb = project_path("unique", host, a), project_path("unique", host, b)
    except InvalidPath:
        return
    if a != b:
        assert pa != pb
        assert pa.parts[: len(pb.parts)] != pb.parts
        assert pb.parts[: len(pa.parts)] != pa.parts


def test_scheme_is_a_str_enum() -> None:
    assert Scheme("golang") is Scheme.GOLANG
    assert f"{Scheme.FLAT}" == "flat"
    assert [s.value for s in Scheme] == ["golang", "flat", "unique"]
    with pytest.raises(ValueError):
        project_path("nested", "h", "x")


@pytest.mark.parametrize("scheme", list(Scheme))
@pytest.mark.parametrize(
    ("host", "project", "reason"),
    [
        ("h", "", "empty"),
        ("h", "/abs/x", "empty component"),
        ("h", "a//b", "empty component"),
        ("h", "a/", "empty component"),
        ("h", "..", "'..'"),
        ("h", "../x", "'..'"),
        ("h", "a/../../x", "'..'"),
        ("h", "a/./b", "'.'"),
        ("h", "a\x00b", "NUL"),
        ("", "x", "empty"),
        ("..", "x", "'..'"),
        (".", "x", "'.'"),
        ("h/i", "x", "'/'"),
        ("h", "x" * 256, "longer than"),
    ],
)
def test_invalid_components_refused(scheme: Scheme, host: str, project: str, reason: str) -> None:
    with pytest.raises(InvalidPath) as info:
        project_path(scheme, host, project)
    assert isinstance(info.value, InvalidInput)
    assert reason in info.value.reason


def test_unique_refuses_names_too_long_once_quoted() -> None:
    project = "org/" + "é" * 60  # 120 bytes raw, 370 once percent-encoded
    assert project_path("golang", "h", project)
    with pytest.raises(InvalidPath, match="longer than 255"):
        project_path("unique", "h", project)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://h/org/component.git", ("h", "org/component")),
        ("https://H.example/org/x/", ("h.example", "org/x")),
        ("https://h:443/org/x", ("h", "org/x")),
        ("https://h:8443/org/x", ("h:8443", "org/x")),
        ("http://h:80/x", ("h", "x")),
        ("https://[::1]:8443/x.git", ("[::1]:8443", "x")),
        ("ssh://git@h:2222/org/x.git", ("h:2222", "org/x")),
        ("ssh://git@h:22/org/x.git", ("h", "org/x")),
        ("git@github.com:org/repo.git", ("github.com", "org/repo")),
        ("git://h/org/x", ("h", "org/x")),
        ("/srv/notes", (LOCAL_HOST, "srv/notes")),
        ("/srv/repos/x.git", (LOCAL_HOST, "srv/repos/x")),
        ("/srv/notes/.git", (LOCAL_HOST, "srv/notes")),
        ("file:///srv/x.git", (LOCAL_HOST, "srv/x")),
    ],
)
def test_host_and_project(url: str, expected: tuple[str, str]) -> None:
    assert host_and_project(parse_remote(url)) == expected


# -- the layout -----------------------------------------------------------------------------------
def test_place_returns_the_path_and_creates_nothing_there(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "root")
    path = layout.place("flipt", PurePosixPath("h/flipt-io/flipt"))
    assert path == tmp_path / "root" / "h" / "flipt-io" / "flipt"
    assert not path.exists()
    assert layout.placed() == {"flipt": PurePosixPath("h/flipt-io/flipt")}
    assert layout.path_of("flipt") == path
    assert layout.path_of("other") is None


def test_constructor_and_reads_do_no_io(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "root")
    assert layout.placed() == {}
    assert not (tmp_path / "root").exists()


def test_placing_the_same_key_at_the_same_path_again_is_fine(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    first = layout.place("a", "h/a")
    first.mkdir(parents=True)  # the repository was cloned there
    assert layout.place("a", PurePosixPath("h/a")) == first
    assert Layout(tmp_path).place("a", "h/a") == first


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        # Zuul's collision scenarios, in both orders.
        ("example.com/component", "example.com/component/subcomponent", "inside 'first'"),
        ("example.com/component/subcomponent", "example.com/component", "contain 'first'"),
        ("a", "a/b", "inside 'first'"),
        ("a/b", "a", "contain 'first'"),
        ("a", "a/b/c/d", "inside 'first'"),
        ("a/b/c/d", "a", "contain 'first'"),
        ("h/x", "h/x", "already 'first''s place"),
    ],
)
def test_collisions_in_either_order(tmp_path: Path, first: str, second: str, reason: str) -> None:
    layout = Layout(tmp_path)
    layout.place("first", first)
    with pytest.raises(LayoutCollision) as info:
        layout.place("second", second)
    err = info.value
    assert reason in err.reason
    # The error names both places and both keys.
    assert second in str(err) and first in str(err)
    assert "'second'" in str(err) and "'first'" in str(err)
    assert err.other == first
    assert isinstance(err, InvalidInput)
    # Nothing was recorded for the refused key, and the first is untouched.
    assert layout.placed() == {"first": PurePosixPath(first)}


def test_collision_is_seen_by_another_layout_object(tmp_path: Path) -> None:
    Layout(tmp_path).place("first", "a/b")
    with pytest.raises(LayoutCollision):
        Layout(tmp_path).place("second", "a")


def test_siblings_and_string_prefixes_do_not_collide(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.place("ab", "h/ab")
    layout.place("a", "h/a")  # 'h/a' is a string prefix of 'h/ab', not a path prefix
    layout.place("ac", "h/a-c")
    layout.place("x", "i/ab")
    assert len(layout.placed()) == 4


def test_zuuls_motivating_example(tmp_path: Path) -> None:
    """golang nests component/subcomponent; unique does not; flat separates them too."""
    host = "example.com"
    for scheme, collides in ((Scheme.GOLANG, True), (Scheme.UNIQUE, False), (Scheme.FLAT, False)):
        layout = Layout(tmp_path / scheme.value)
        layout.place("component", project_path(scheme, host, "component"))
        sub = project_path(scheme, host, "component/subcomponent")
        if collides:
            with pytest.raises(LayoutCollision):
                layout.place("sub", sub)
        else:
            layout.place("sub", sub)


def test_flat_collides_on_equal_last_components(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.place("one", project_path(Scheme.FLAT, "h", "org1/component"))
    with pytest.raises(LayoutCollision, match="already 'one''s place"):
        layout.place("two", project_path(Scheme.FLAT, "h", "org2/component"))


def test_a_key_has_one_place(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.place("k", "h/x")
    with pytest.raises(LayoutCollision, match="already placed at h/x"):
        layout.place("k", "h/y")


def test_release_frees_the_place(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.place("a", "h/a")
    assert layout.release("a") == PurePosixPath("h/a")
    assert layout.release("a") is None
    layout.place("b", "h/a/b")
    assert layout.placed() == {"b": PurePosixPath("h/a/b")}


@pytest.mark.parametrize(
    "rel", ["", "/abs", "a//b", "a/../b", "..", "./a", "a/.", ".revisor-layout.json", "a\x00b"]
)
def test_invalid_relative_paths_refused(tmp_path: Path, rel: str) -> None:
    with pytest.raises(InvalidPath):
        Layout(tmp_path).place("k", rel)


@pytest.mark.parametrize("key", ["", "a\x00b"])
def test_invalid_keys_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidPath):
        Layout(tmp_path).place(key, "h/x")


# -- someone else's files -------------------------------------------------------------------------
def test_foreign_directory_at_the_target(tmp_path: Path) -> None:
    (tmp_path / "h" / "x").mkdir(parents=True)
    with pytest.raises(LayoutCollision, match="does not know"):
        Layout(tmp_path).place("k", "h/x")


def test_foreign_files_below_the_target(tmp_path: Path) -> None:
    (tmp_path / "h" / "x" / "deep").mkdir(parents=True)
    (tmp_path / "h" / "x" / "deep" / "file").write_text("theirs")
    with pytest.raises(LayoutCollision) as info:
        Layout(tmp_path).place("k", "h/x")
    assert info.value.other == "h/x"


def test_foreign_file_at_the_target(tmp_path: Path) -> None:
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "x").write_text("theirs")
    with pytest.raises(LayoutCollision):
        Layout(tmp_path).place("k", "h/x")


def test_foreign_file_above_the_target(tmp_path: Path) -> None:
    (tmp_path / "h").write_text("theirs")
    with pytest.raises(LayoutCollision, match="h is a file") as info:
        Layout(tmp_path).place("k", "h/org/x")
    assert info.value.other == "h"


def test_symlink_above_the_target(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "h").symlink_to(outside)
    with pytest.raises(LayoutCollision, match="symbolic link"):
        Layout(root).place("k", "h/x")
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(LayoutCollision, match="symbolic link"):
        Layout(root).place("k", "dangling")


@pytest.mark.parametrize("kind", ["bare", "worktree"])
def test_foreign_repository_above_the_target(tmp_path: Path, kind: str) -> None:
    repo = tmp_path / "h" / "org"
    repo.mkdir(parents=True)
    if kind == "bare":
        (repo / "HEAD").write_text("ref: refs/heads/main\n")
        (repo / "objects").mkdir()
    else:
        (repo / ".git").mkdir()
    with pytest.raises(LayoutCollision, match="inside a repository at h/org"):
        Layout(tmp_path).place("k", "h/org/x")


def test_existing_plain_directories_above_are_fine(tmp_path: Path) -> None:
    (tmp_path / "h" / "org" / "sibling").mkdir(parents=True)
    path = Layout(tmp_path).place("k", "h/org/x")
    assert path == tmp_path / "h" / "org" / "x"


# -- the registry on disk -------------------------------------------------------------------------
def test_registry_is_json_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.place("b", "h/b")
    layout.place("a", "h/a")
    data = json.loads((tmp_path / REGISTRY_FILE).read_text())
    assert data == {"version": 1, "placed": {"a": "h/a", "b": "h/b"}}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"version": 2, "placed": {}}',
        '{"version": 1, "placed": []}',
        '{"version": 1, "placed": {"a": 3}}',
        '{"version": 1, "placed": {"a": "../x"}}',
        b"\xff\xfe".decode("latin-1"),
    ],
)
def test_damaged_registry_is_reported(tmp_path: Path, content: str) -> None:
    (tmp_path / REGISTRY_FILE).write_text(content, encoding="latin-1")
    with pytest.raises(StoreCorrupt) as info:
        Layout(tmp_path).place("k", "h/x")
    assert REGISTRY_FILE in str(info.value)


# -- concurrency ----------------------------------------------------------------------------------
def _place_worker(base: str, key: str, rel: str, rounds: int, barrier: Any, results: Any) -> None:
    for i in range(rounds):
        layout = Layout(Path(base) / f"round-{i}")
        barrier.wait()
        try:
            layout.place(key, rel)
            results.put((i, key, "placed"))
        except LayoutCollision:
            results.put((i, key, "collision"))
        except Exception as exc:  # pragma: no cover - reported to the test
            results.put((i, key, f"error: {exc!r}"))


def _run_processes(
    base: Path, jobs: list[tuple[str, str]], rounds: int
) -> list[tuple[int, str, str]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(jobs))
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_place_worker, args=(str(base), key, rel, rounds, barrier, results))
        for key, rel in jobs
    ]
    for p in procs:
        p.start()
    out = [results.get(timeout=60) for _ in range(rounds * len(jobs))]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return out


def test_two_processes_placing_nested_paths_at_once(tmp_path: Path) -> None:
    rounds = 25
    out = _run_processes(tmp_path, [("outer", "h/a"), ("inner", "h/a/b")], rounds)
    assert not [r for r in out if r[2].startswith("error")], out
    winners: dict[int, list[str]] = {}
    for i, key, result in out:
        if result == "placed":
            winners.setdefault(i, []).append(key)
    for i in range(rounds):
        assert len(winners.get(i, [])) == 1, (i, out)
        placed = Layout(tmp_path / f"round-{i}").placed()
        assert list(placed) == winners[i]


def test_processes_placing_the_same_path_at_once(tmp_path: Path) -> None:
    rounds = 10
    jobs = [(f"k{n}", "h/same") for n in range(4)]
    out = _run_processes(tmp_path, jobs, rounds)
    for i in range(rounds):
        won = [key for j, key, result in out if j == i and result == "placed"]
        assert len(won) == 1, (i, out)
        assert Layout(tmp_path / f"round-{i}").placed() == {won[0]: PurePosixPath("h/same")}


def test_threads_placing_colliding_paths_at_once(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def worker(n: int) -> None:
        barrier.wait()
        try:
            Layout(tmp_path).place(f"k{n}", "/".join(["h"] + ["d"] * (n + 1)))
            outcomes.append("placed")
        except LayoutCollision:
            outcomes.append("collision")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("placed") == 1
    assert len(layout.placed()) == 1
