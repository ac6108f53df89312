"""The store over SSH: a real sshd on loopback, key-only authentication, fetch and push."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from revisor.config import Config, Credentials, GitSource
from revisor.errors import RemoteRefConflict, RemoteUnavailable
from revisor.store.mirror import PushUpdate
from revisor.store.store import Store
from revisor.store.transport import NetworkPolicy
from revisor.vcs import ObjectId
from tests.gitutil import GitRepo
from tests.support import sshd

pytestmark = pytest.mark.skipif(not sshd.available(), reason="sshd is installed by scripts/install")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[sshd.SshServer]:
    s = sshd.SshServer(tmp_path / "sshd").start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def remote(git_repo: GitRepo, tmp_path: Path) -> Path:
    git_repo.write("README.md", "over ssh\n")
    git_repo.commit("first")
    bare = tmp_path / "srv" / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(git_repo.path), str(bare)], check=True,
                   timeout=30)
    return bare


def store_for(url: str, key: Path | None, data: Path) -> Store:
    creds = Credentials(ssh_key_file=key) if key is not None else None
    config = Config(data_dir=data, sources={"s": GitSource(url=url, credentials=creds)})
    return Store(config, policy=NetworkPolicy(timeout=60, stall_seconds=10, attempts=1))


def test_fetch_and_push_over_ssh(server: sshd.SshServer, remote: Path, tmp_path: Path) -> None:
    src = store_for(server.url_for(remote), server.client_key, tmp_path / "data").source("s")
    src.refresh()
    head = src.resolve("main")
    assert src.repository.file(head, "README.md").data == b"over ssh\n"
    b = src.repository.builder(head)
    b.write("new.txt", b"pushed over ssh\n")
    from revisor.vcs import Signature

    commit = b.commit("via ssh", Signature.now("A", "a@example.com"))
    assert commit is not None
    src.push([PushUpdate("refs/heads/feature", commit, None)])
    out = subprocess.run(["git", f"--git-dir={remote}", "rev-parse", "refs/heads/feature"],
                         capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    assert out == commit
    with pytest.raises(RemoteRefConflict) as info:
        src.push([PushUpdate("refs/heads/feature", ObjectId(head), None)])
    assert info.value.actual == commit


def test_ssh_without_the_key_is_refused(server: sshd.SshServer, remote: Path,
                                        tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True,
                   timeout=30)
    src = store_for(server.url_for(remote), other, tmp_path / "data").source("s")
    with pytest.raises(RemoteUnavailable):
        src.refresh()
    assert src.freshness().last_error is not None
