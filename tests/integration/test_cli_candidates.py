"""``revisor candidates`` and ``revisor ws`` as real processes on a configured git source with a
bare remote: two users through a whole candidate (create, both edit, publish, a conflict, sync,
the three versions, resolve, publish, submit → one squashed commit on the remote's main), ETag
preconditions and their exit codes, and refused input named by its field."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.gitutil import GitRepo

ALICE = "Alice Example <alice@example.com>"
BOB = "Bob Builder <bob@example.com>"
LINES = "".join(f"line {i}\n" for i in range(10))


def run(config: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "REVISOR_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "revisor", *args], input=stdin,
                          capture_output=True, check=False, env=env, timeout=120)


def ok(config: Path, *args: str, stdin: bytes | None = None) -> bytes:
    out = run(config, *args, stdin=stdin)
    assert out.returncode == 0, (args, out.stderr.decode())
    return out.stdout


def js(config: Path, *args: str, stdin: bytes | None = None) -> Any:
    return json.loads(ok(config, *args, "--json", stdin=stdin))


def ws(user: str, *args: str, author: str | None = None) -> tuple[str, ...]:
    who = ("--author", author) if author else ()
    return ("ws", "demo", "rel-1", "--as", user, *who, *args)


def remote_git(remote: Path, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={remote}", *args], capture_output=True, text=True,
                          check=True, timeout=30).stdout


def edited(**changed: str) -> bytes:
    return "".join(changed.get(f"l{i}", f"line {i}") + "\n" for i in range(10)).encode()


@pytest.fixture
def config(git_repo: GitRepo, tmp_path: Path) -> tuple[Path, Path]:
    git_repo.write("README.md", "hello\n")
    git_repo.write("a.txt", LINES)
    git_repo.write("old.txt", "old\n")
    git_repo.commit("first")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(git_repo.path), str(remote)], check=True,
                   timeout=30)
    cfg = tmp_path / "revisor.yaml"
    cfg.write_text(f"data_dir: ./data\nsources:\n  demo:\n    type: git\n    url: {remote}\n"
                   "    refresh: 0s\n")
    return cfg, remote


def test_two_users_through_a_whole_candidate(config: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, remote = config
    main_before = remote_git(remote, "rev-parse", "main").strip()
    cand = js(cfg, "candidates", "demo", "create", "rel-1", "--title", "Release 1",
              "--description", "Forms and processes.", "--author", ALICE)
    assert (cand["name"], cand["status"], cand["base_commit"]) == ("rel-1", "open", main_before)
    # both edit line 3 of a.txt (alice also deletes old.txt; bob adds a file)
    shown_etag = run(cfg, *ws("alice", "cat", "a.txt", "--etag"))
    assert shown_etag.returncode == 0 and shown_etag.stdout == LINES.encode()
    etag = shown_etag.stderr.decode().strip()
    assert ok(cfg, *ws("alice", "put", "a.txt", "-", "--if-match", etag, author=ALICE),
              stdin=edited(l3="alice's line")).strip()
    ok(cfg, *ws("alice", "rm", "old.txt", "--if-match",
                js(cfg, *ws("alice", "cat", "old.txt"))["etag"]))
    shown = js(cfg, *ws("bob", "cat", "a.txt"))
    assert shown["etag"] == etag and shown["content"] == LINES
    bob_file = tmp_path / "bob.txt"
    bob_file.write_bytes(edited(l3="bob's line"))
    ok(cfg, *ws("bob", "put", "a.txt", "--from", str(bob_file), "--if-match", etag, author=BOB))
    ok(cfg, *ws("bob", "put", "notes/bob.md", "-", "--create"), stdin=b"bob's notes\n")
    # alice publishes; bob's publish conflicts with her change, and nothing moves
    published = js(cfg, *ws("alice", "publish", "-m", "Alice's edits"))
    assert published["published"] and published["commit"]
    refused = run(cfg, *ws("bob", "publish", "--json"))
    assert refused.returncode == 4, refused.stderr
    answer = json.loads(refused.stdout)
    assert not answer["published"]
    assert [(c["path"], c["users"]) for c in answer["conflicts"]] == [("a.txt", ["alice"])]
    assert js(cfg, "candidates", "demo", "show", "rel-1")["head_commit"] == published["commit"]
    # bob syncs: the only candidate commit conflicts, so he stays and the conflict is recorded
    synced = js(cfg, *ws("bob", "sync"))
    assert not synced["up_to_date"] and not synced["moved"]
    assert [c["path"] for c in synced["conflicts"]] == ["a.txt"]
    status = js(cfg, *ws("bob", "status"))
    assert not status["in_sync"] and status["unpublished"] == ["a.txt", "notes/bob.md"]
    assert status["author"] == {"name": "Bob Builder", "email": "bob@example.com"}
    versions = js(cfg, *ws("bob", "conflicts"))
    assert len(versions) == 1
    v = versions[0]
    assert (v["path"], v["users"], v["resolved"]) == ("a.txt", ["alice"], False)
    assert v["base"]["content"] == LINES and v["base"]["encoding"] == "utf-8"
    assert v["theirs"]["content"] == edited(l3="alice's line").decode()
    assert v["ours"]["content"] == edited(l3="bob's line").decode()
    text = ok(cfg, *ws("bob", "conflicts")).decode()
    assert "CONFLICT a.txt  (with alice" in text and "--- theirs:" in text
    # bob resolves with content of his own, and is in sync again; then publishes
    merged = edited(l3="alice's and bob's line")
    resolved = js(cfg, *ws("bob", "resolve", "a.txt", "--from", "-"), stdin=merged)
    assert resolved["done"] and resolved["synced_to"] == published["commit"]
    status = js(cfg, *ws("bob", "status"))
    assert status["in_sync"] and status["conflicts"] == []
    bob_published = js(cfg, *ws("bob", "publish"))
    assert bob_published["published"]
    # every workspace follows the candidate in one pass: alice's fast-forwards, bob's is there
    everyone = {r["user"]: r for r in js(cfg, "candidates", "demo", "sync-workspaces", "rel-1")}
    assert set(everyone) == {"alice", "bob"}
    assert everyone["alice"]["moved"] and everyone["alice"]["head"] == bob_published["commit"]
    assert everyone["bob"]["up_to_date"] and not everyone["bob"]["moved"]
    # the candidate against its target
    files = {f["path"]: (f["status"], f["conflicted"])
             for f in js(cfg, "candidates", "demo", "files", "rel-1")}
    assert files == {"a.txt": ("CHANGED", False), "notes/bob.md": ("NEW", False),
                     "old.txt": ("DELETED", False)}
    assert "UNCHANGED" in ok(cfg, "candidates", "demo", "files", "rel-1", "--all").decode()
    patch = ok(cfg, "candidates", "demo", "diff", "rel-1", "--path", "a.txt").decode()
    assert "+alice's and bob's line" in patch and "old.txt" not in patch
    assert b"merges cleanly into main" in ok(cfg, "candidates", "demo", "check", "rel-1")
    assert b"up to date with main" in ok(cfg, "candidates", "demo", "rebase", "rel-1")
    # submit: one squashed commit on the remote's main, with bob as co-author
    done = js(cfg, "candidates", "demo", "submit", "rel-1", "--author", ALICE)
    assert done["status"] == "submitted"
    main_after = remote_git(remote, "rev-parse", "main").strip()
    assert done["submitted_commit"] == main_after
    assert remote_git(remote, "rev-list", f"{main_before}..main").split() == [main_after]
    assert remote_git(remote, "log", "-1", "--format=%an <%ae>%n%B", "main").strip().split(
        "\n") == [ALICE, "Release 1", "", "Forms and processes.", "",
                  f"Co-authored-by: {BOB}"]
    assert remote_git(remote, "show", "main:a.txt").encode() == merged
    assert remote_git(remote, "ls-tree", "-r", "--name-only", "main").split() == [
        "README.md", "a.txt", "notes/bob.md"]
    listed = js(cfg, "candidates", "demo", "list", "--status", "submitted")
    assert [c["name"] for c in listed] == ["rel-1"]
    assert js(cfg, "candidates", "demo", "list", "--status", "open") == []
    # a submitted candidate takes no more changes: a state error, exit 4
    late = run(cfg, *ws("alice", "put", "a.txt", "-", "--if-match", "*"), stdin=b"late\n")
    assert late.returncode == 4 and b"submitted" in late.stderr.splitlines()[0]


def test_etags_and_preconditions(config: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, _ = config
    ok(cfg, "candidates", "demo", "create", "rel-1", "--title", "T", "--author", ALICE)
    etag = js(cfg, *ws("Łukasz", "cat", "a.txt"))["etag"]
    stale = "0" * 40
    # a stale ETag: 412, the Conflict exit code, with the current ETag in the message
    out = run(cfg, *ws("Łukasz", "put", "a.txt", "-", "--if-match", stale), stdin=b"x\n")
    assert out.returncode == 4
    first = out.stderr.decode().splitlines()[0]
    assert first.startswith("revisor: error:") and etag in first and stale in first
    # no ETag for a file that exists: 428, exit 2; --create on it: 412, exit 4
    out = run(cfg, *ws("Łukasz", "put", "a.txt", "-"), stdin=b"x\n")
    assert out.returncode == 2 and b"If-Match" in out.stderr
    out = run(cfg, *ws("Łukasz", "put", "a.txt", "-", "--create"), stdin=b"x\n")
    assert out.returncode == 4 and etag.encode() in out.stderr
    for args in (("rm", "a.txt"), ("mv", "a.txt", "b.txt")):
        assert run(cfg, *ws("Łukasz", *args)).returncode == 2
        stale_run = run(cfg, *ws("Łukasz", *args, "--if-match", stale))
        assert stale_run.returncode == 4 and etag.encode() in stale_run.stderr
    # '*' takes any version; the new ETag is the blob id; binary content round-trips
    payload = bytes(range(256)) * 3
    binary = tmp_path / "payload.bin"
    binary.write_bytes(payload)
    new = ok(cfg, *ws("Łukasz", "put", "data/payload.bin", "--from", str(binary))).strip()
    assert new.decode() == subprocess.run(["git", "hash-object", str(binary)], check=True,
                                          capture_output=True, text=True).stdout.strip()
    assert ok(cfg, *ws("Łukasz", "cat", "data/payload.bin")) == payload
    shown = js(cfg, *ws("Łukasz", "cat", "data/payload.bin"))
    assert shown["encoding"] == "base64" and base64.b64decode(shown["content"]) == payload
    moved = js(cfg, *ws("Łukasz", "mv", "data/payload.bin", "data/moved.bin",
                        "--if-match", new.decode()))
    assert moved["etag"] == new.decode()
    listing = {e["name"]: e["id"] for e in js(cfg, *ws("Łukasz", "ls", "data"))}
    assert listing == {"moved.bin": new.decode()}
    assert ok(cfg, *ws("Łukasz", "put", "a.txt", "-", "--if-match", "*"), stdin=b"any\n")
    # rollback puts back the base version (and deletes what the base lacks)
    assert ok(cfg, *ws("Łukasz", "rollback", "a.txt")).strip().decode() == etag
    assert b"deleted" in ok(cfg, *ws("Łukasz", "rollback", "data/moved.bin"))
    # the default identity: the user's name at localhost (encoded where it must be)
    status = js(cfg, *ws("Łukasz", "status"))
    assert status["author"] == {"name": "Łukasz", "email": "Łukasz@localhost"}
    assert status["unpublished"] == []
    spaced = js(cfg, *ws("Jane Doe", "status"))
    assert spaced["author"] == {"name": "Jane Doe", "email": "%4Aane%20%44oe@localhost"}


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("create", "X", "--title", "T"), 2, "name:"),
        (("create", "good-name"), 2, "title:"),
        (("create", "good-name", "--title", "T", "--description", "d" * 513), 2, "description:"),
        (("create", "good-name", "--title", "T", "--strategy", "squash"), 2, "strategy:"),
        (("create", "good-name", "--title", "T", "--target", "no/such..branch"), 2, "target:"),
        (("create", "good-name", "--title", "T", "--author", "nobody"), 2, "author"),
        (("list", "--status", "merged"), 2, "status:"),
        (("show", "404"), 3, "no candidate"),
        (("show", "no-such-name"), 3, "no candidate"),
    ],
)
def test_refused_input_names_the_field(config: tuple[Path, Path], args: tuple[str, ...],
                                       code: int, needle: str) -> None:
    cfg, _ = config
    base = () if "--author" in args or args[0] != "create" else ("--author", ALICE)
    out = run(cfg, "candidates", "demo", *args, *base)
    assert out.returncode == code, out.stderr
    lines = out.stderr.decode().splitlines()
    assert lines[0].startswith("revisor: error:") and needle in lines[0]
    assert out.stdout == b""


def test_workspace_errors(config: tuple[Path, Path]) -> None:
    cfg, _ = config
    ok(cfg, "candidates", "demo", "create", "rel-1", "--title", "T", "--author", ALICE)
    cases = [
        (ws("alice", "cat", "../escape"), 2, "invalid path"),
        (ws("alice", "cat", "missing.txt"), 3, "no such path"),
        (("ws", "demo", "rel-9", "--as", "alice", "status"), 3, "no candidate"),
        (ws("", "status"), 2, "user name"),
        (ws("alice", "resolve", "a.txt"), 2, "exactly one"),
        (ws("alice", "resolve", "a.txt", "--ours"), 2, "not a conflicting path"),
        (ws("alice", "put", "x.txt"), 2, "--from"),
    ]
    helped = run(cfg, *ws("alice", "put", "--help"))  # the command's help, not the group's
    assert helped.returncode == 0 and b"--create" in helped.stdout
    for args, code, needle in cases:
        out = run(cfg, *args)
        assert out.returncode == code, (args, out.stderr)
        assert needle in out.stderr.decode().splitlines()[0], (args, out.stderr)
    # an abandoned candidate: reading a workspace still works, writing is a state error
    etag = js(cfg, *ws("alice", "cat", "a.txt"))["etag"]
    assert js(cfg, "candidates", "demo", "abandon", "rel-1", "--author", ALICE)["status"] == (
        "abandoned")
    assert ok(cfg, *ws("alice", "cat", "a.txt")) == LINES.encode()
    out = run(cfg, *ws("alice", "put", "a.txt", "-", "--if-match", etag), stdin=b"x\n")
    assert out.returncode == 4 and b"abandoned" in out.stderr
    out = run(cfg, "candidates", "demo", "submit", "rel-1", "--author", ALICE)
    assert out.returncode == 4 and b"abandoned" in out.stderr
