"""Helpers shared by the store's integration tests (``test_store_*.py``); no tests of its own.

Upstream repositories are real bare repositories changed with git's own plumbing (``fast-import``,
``update-ref``, ``tag``); the mirror is inspected with git too (``for-each-ref``, ``fsck``,
``ls-remote``), never through the code under test. Every git process has a timeout.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from revisor.config import Config
from revisor.store import store as store_module
from revisor.store.transport import NetworkPolicy
from revisor.vcs import ObjectId, Repository, Signature

__all__ = [
    "FAST",
    "GIT_TIMEOUT",
    "Upstream",
    "discoveries",
    "fsck",
    "git",
    "make_store",
    "mirror_commit",
    "mirror_refs",
    "remote_refs",
]

GIT_TIMEOUT = 60.0
#: Short limits so that no test waits long: a stall of 2 s aborts, three quick attempts.
FAST = NetworkPolicy(timeout=30, stall_seconds=2, attempts=3, backoff_base=0.05)

_clock = itertools.count(1_700_000_000, 60)


def git(
    *args: str,
    input: bytes | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float = GIT_TIMEOUT,
) -> subprocess.CompletedProcess[bytes]:
    """Run git (never prompting); raise with its stderr when ``check`` and it fails."""
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
    full_env.update(env or {})
    proc = subprocess.run(
        ["git", *args], input=input, capture_output=True, env=full_env, timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
    return proc


def mirror_refs(path: Path, prefix: str = "refs/") -> dict[str, str]:
    """Every ref under ``prefix`` in the repository at ``path``, read by ``git for-each-ref``."""
    out = git(f"--git-dir={path}", "for-each-ref", "--format=%(objectname) %(refname)", prefix)
    lines = out.stdout.decode().splitlines()
    return {name: oid for oid, name in (line.split(" ", 1) for line in lines)}


def remote_refs(location: str | Path) -> dict[str, str]:
    """The remote's branches and tags as ``git ls-remote`` lists them (peeled lines left out)."""
    out = git("ls-remote", "--end-of-options", str(location)).stdout.decode()
    refs = {}
    for line in out.splitlines():
        oid, name = line.split("\t", 1)
        if name.startswith(("refs/heads/", "refs/tags/")) and not name.endswith("^{}"):
            refs[name] = oid
    return refs


def fsck(path: Path) -> subprocess.CompletedProcess[bytes]:
    """``git fsck --full --strict`` of the repository at ``path``; it must be clean."""
    proc = git(f"--git-dir={path}", "fsck", "--full", "--no-progress", "--no-dangling",
               check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


def discoveries(requests: list[Any], service: str = "git-upload-pack") -> int:
    """How many ref discoveries (one per fetch, ls-remote or push) a GitHttpServer served."""
    return sum(1 for r in requests if r.endpoint == "info/refs" and r.service == service)


class Upstream:
    """A bare repository standing for the remote, changed with git plumbing."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def init(cls, path: Path, *, branch: str = "main") -> Upstream:
        git("init", "-q", "--bare", "-b", branch, str(path))
        return cls(path)

    def git(self, *args: str, input: bytes | None = None) -> str:
        return git(f"--git-dir={self.path}", *args, input=input).stdout.decode()

    def ref(self, name: str) -> ObjectId | None:
        proc = git(f"--git-dir={self.path}", "rev-parse", "--verify", "-q", "--end-of-options",
                   name, check=False)
        out = proc.stdout.decode().strip()
        return ObjectId(out) if out else None

    def commit(
        self,
        ref: str,
        files: Mapping[str, str | bytes | tuple[str, str | bytes] | None],
        *,
        parent: str | None = "current",
        message: str | None = None,
    ) -> ObjectId:
        """Commit ``files`` on top of ``parent`` ("current": the ref's value, None: no parent)
        and point ``ref`` at the commit (forced). A value ``(mode, content)`` sets the mode
        ("100755", "120000"); None deletes the path."""
        when = next(_clock)
        if parent == "current":
            parent = self.ref(ref)
        message = message or f"commit at {when}"
        msg = message.encode()
        stream = bytearray()
        stream += f"commit {ref}\nmark :1\n".encode()
        stream += f"committer Up Stream <up@example.com> {when} +0000\n".encode()
        stream += b"data %d\n%s\n" % (len(msg), msg)
        if parent is not None:
            stream += f"from {parent}\n".encode()
        for path, value in files.items():
            if value is None:
                stream += f"D {path}\n".encode()
                continue
            mode, content = value if isinstance(value, tuple) else ("100644", value)
            data = content.encode() if isinstance(content, str) else content
            stream += f"M {mode} inline {path}\n".encode()
            stream += b"data %d\n%s\n" % (len(data), data)
        marks = self.path / "test-marks"
        self.git("fast-import", "--quiet", "--force", f"--export-marks={marks}",
                 input=bytes(stream))
        oid = marks.read_text().split()[1]
        marks.unlink()
        return ObjectId(oid)

    def set(self, ref: str, oid: str) -> None:
        self.git("update-ref", ref, oid)

    def delete(self, ref: str) -> None:
        self.git("update-ref", "-d", ref)

    def tag(self, name: str, target: str, *, annotated: bool = False) -> ObjectId:
        args = ["tag", "-f"]
        if annotated:
            args += ["-a", "-m", f"tag {name}"]
        self.git(*args, "--", name, target)
        oid = self.ref(f"refs/tags/{name}")
        assert oid is not None
        return oid

    def head(self) -> str:
        return self.git("symbolic-ref", "HEAD").strip()


def make_store(
    data_dir: Path,
    sources: Mapping[str, Mapping[str, Any]],
    *,
    env: Mapping[str, str] | None = None,
    policy: NetworkPolicy = FAST,
) -> store_module.Store:
    """A Store over ``sources`` (plain mappings, validated as the YAML file would be)."""
    config = Config.model_validate({"data_dir": str(data_dir), "sources": dict(sources)})
    return store_module.Store(config, env=env if env is not None else {}, policy=policy)


_SIG = Signature.now("Revisor", "revisor@example.com")


def mirror_commit(
    repo: Repository, ref: str | None, files: Mapping[str, str], *, parent: str | None = None
) -> ObjectId:
    """Commit ``files`` in the mirror itself (loose objects, as the layers above write them) and
    point ``ref`` (e.g. ``refs/revisor/...``; None: no ref) at it."""
    builder = repo.builder(parent)
    for path, content in files.items():
        builder.write(path, content.encode())
    oid = builder.commit(f"revisor commit {sorted(files)} on {parent}", _SIG)
    assert oid is not None
    if ref is not None:
        repo.set_ref(ref, oid, expected=repo.ref(ref))
    return oid
