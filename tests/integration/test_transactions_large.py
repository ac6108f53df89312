"""Large and binary files: a 100 MB file written through ``Write(path, open(file, "rb"))`` is
streamed into the repository (the process's peak memory stays far below the file's size), pushed,
proposed, and read back identical — through a snapshot stream and with git on the remote.

The memory is measured in a fresh child process (``ru_maxrss`` before and after), since libgit2's
allocations are invisible to ``tracemalloc``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from revisor import Write
from revisor.db.models import TxState
from tests.integration.test_snapshot import write_big_file
from tests.integration.test_transactions_support import ALICE, GIT_TIMEOUT, make_world

pytestmark = pytest.mark.timeout(180)

MB = 1 << 20

CHILD = textwrap.dedent(
    """
    import hashlib, json, resource, sys
    from revisor.bootstrap import Revisor
    from revisor.config import Config
    from revisor.core.changes import Write
    from tests.integration.test_transactions_support import ALICE, FAST, REVISOR

    spec = json.loads(sys.argv[1])
    rv = Revisor(Config.model_validate(spec["config"]), policy=FAST, identity=REVISOR, env={})
    rv.start()
    source = rv.source("proj")
    source.view()  # the mirror exists: what is measured is the transaction alone
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(spec["file"], "rb") as fh:
        result = source.update("main", "a big file", ALICE, changes=[Write("big/data.bin", fh)])
    after_write = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    digest = hashlib.sha256()
    with source.view(result.commit).open("big/data.bin") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    after_read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"result": result.to_json(), "before_kb": before,
                      "after_write_kb": after_write, "after_read_kb": after_read,
                      "sha256": digest.hexdigest()}))
    """
)


@pytest.mark.slow
def test_a_100mb_file_is_written_streamed_and_read_back_identical(tmp_path: Path) -> None:
    world = make_world("git", tmp_path, {"README.md": "hello\n"})
    try:
        big = tmp_path / "big.bin"
        want = write_big_file(big, 100)
        spec = {"config": {"data_dir": str(world.data_dir),
                           "sources": {"proj": world.source_config}},
                "file": str(big)}
        env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
        env.pop("REVISOR_FAULT", None)
        proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env,
                              capture_output=True, text=True, timeout=150, check=False)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        grew_write = (report["after_write_kb"] - report["before_kb"]) * 1024
        grew_read = (report["after_read_kb"] - report["before_kb"]) * 1024
        assert grew_write < 40 * MB, f"writing 100 MiB raised the peak by {grew_write / MB:.0f}"
        assert grew_read < 40 * MB, f"reading 100 MiB raised the peak by {grew_read / MB:.0f}"
        assert report["sha256"] == want

        result = json.loads(report["result"])
        commit, branch = result["commit"], result["branch"]
        assert world.remote_refs()[f"refs/heads/{branch}"] == commit
        # read back on the remote with git, streamed through a pipe
        digest = hashlib.sha256()
        with subprocess.Popen(
            ["git", f"--git-dir={world.upstream.path}", "cat-file", "blob",
             f"{commit}:big/data.bin"], stdout=subprocess.PIPE,
        ) as cat:
            assert cat.stdout is not None
            while block := cat.stdout.read(MB):
                digest.update(block)
            assert cat.wait(timeout=GIT_TIMEOUT) == 0
        assert digest.hexdigest() == want
        assert world.upstream.changed(result["base"], commit) == {"big/data.bin": "A"}
        (proposal,) = world.source.provider.list()
        assert proposal.source_commit == commit
        assert world.rv.journal.get(result["id"]).state is TxState.DONE
        world.assert_clean()
    finally:
        world.close()


def test_binary_content_round_trips_exactly(tmp_path: Path) -> None:
    world = make_world("local", tmp_path, {"README.md": "hello\n"})
    try:
        blobs = {
            "bin/all-bytes": bytes(range(256)) * 1024,
            "bin/nul-and-crlf": b"\x00\r\n\r\n\x00\xff\xfe",
            "bin/random": os.urandom(2 * MB),
            "bin/empty": b"",
        }
        src = tmp_path / "from-disk.bin"
        src.write_bytes(os.urandom(3 * MB + 17))
        with open(src, "rb") as fh:
            result = world.source.update(
                "main", "binary", ALICE,
                changes=[*(Write(p, d) for p, d in blobs.items()), Write("bin/streamed", fh)],
            )
        assert result.commit is not None
        blobs["bin/streamed"] = src.read_bytes()
        snap = world.source.view(result.commit)
        for path, data in blobs.items():
            assert world.upstream.show(result.commit, path) == data
            assert snap.read(path) == data
            with snap.open(path) as stream:
                assert hashlib.sha256(stream.read()).digest() == hashlib.sha256(data).digest()
            assert snap.stat(path).size == len(data)
        world.assert_clean()
    finally:
        world.close()
