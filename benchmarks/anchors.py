"""The anchors: how the systems before Revisor do each job with the git command line.

Why it exists: ``revisor.vcs`` is only fast or slow *compared with something*. These functions
reproduce, as faithfully as a benchmark can, what LESSONS.md describes: reading a file by spawning
``git show`` (or through a ``git cat-file --batch`` process), committing through a temporary
worktree (cup) or a ``clone --shared`` (Gitea, seed 001's per-user repositories), checking
mergeability with one ``git merge-tree --write-tree`` process per pair, and finding the last commit
of each directory entry with ``git ls-tree`` plus one ``git log -1`` per entry (Allura, GitLab).

Every git process runs with a blank configuration (no global or system config) and a fixed identity
(``corpus.git_env``), so nothing from the machine's settings changes what is measured. They also
return their answers, so the benchmark can check that every way it times gives the same result.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from corpus import git_env

__all__ = [
    "CatFileBatch",
    "Git",
    "MergeOutcome",
    "clone_commit",
    "last_commits_by_log",
    "merge_tree",
    "worktree_commit",
]

COMMIT_MESSAGE = "Update files\n"


class Git:
    """Runs git on one repository (``--git-dir``) or in one working directory (``-C``)."""

    def __init__(self, git_dir: Path | None = None, cwd: Path | None = None) -> None:
        self._prefix = ["git"]
        if git_dir is not None:
            self._prefix.append(f"--git-dir={git_dir}")
        if cwd is not None:
            self._prefix += ["-C", str(cwd)]
        self._env = git_env()

    def run(self, *args: str, ok: Sequence[int] = (0,)) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            [*self._prefix, *args], capture_output=True, env=self._env, check=False
        )
        if proc.returncode not in ok:
            err = proc.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}): {err}")
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.decode().strip()


# -- reading ---------------------------------------------------------------------------------------
def git_show(git: Git, rev: str, path: str) -> bytes:
    """One ``git show rev:path`` process per read."""
    return git.run("show", f"{rev}:{path}").stdout


class CatFileBatch:
    """One long-running ``git cat-file --batch`` process answering ``rev:path`` lines."""

    def __init__(self, git_dir: Path) -> None:
        self._proc = subprocess.Popen(
            ["git", f"--git-dir={git_dir}", "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=git_env(),
        )

    def read(self, rev: str, path: str) -> bytes:
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None and stdout is not None
        stdin.write(f"{rev}:{path}\n".encode())
        stdin.flush()
        header = stdout.readline().split()
        if len(header) != 3:
            raise RuntimeError(f"cat-file: {rev}:{path}: {b' '.join(header)!r}")
        data = stdout.read(int(header[2]) + 1)
        return data[:-1]

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait()


# -- committing ------------------------------------------------------------------------------------
def _write_files(root: Path, changes: Mapping[str, bytes]) -> None:
    for path, data in changes.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def worktree_commit(
    repo: Git, base: str, branch: str, changes: Mapping[str, bytes], scratch: Path
) -> str:
    """cup's way: a temporary worktree on a new branch, write, ``add``, ``commit``, remove it."""
    wt = scratch / branch.replace("/", "-")
    repo.run("worktree", "add", "-q", "-b", branch, str(wt), base)
    work = Git(cwd=wt)
    _write_files(wt, changes)
    work.run("add", "--", *changes)
    work.run("commit", "-q", "-m", COMMIT_MESSAGE)
    head = work.out("rev-parse", "HEAD")
    repo.run("worktree", "remove", "--force", str(wt))
    return head


def clone_commit(
    origin: Path, base: str, branch: str, changes: Mapping[str, bytes], scratch: Path
) -> str:
    """Gitea's way: ``clone --shared --no-checkout``, check out, write, add, commit, push back,
    and delete the clone."""
    clone = scratch / branch.replace("/", "-")
    Git().run("clone", "-q", "--shared", "--no-checkout", str(origin), str(clone))
    work = Git(cwd=clone)
    work.run("checkout", "-q", "-f", "-b", branch, base)
    _write_files(clone, changes)
    work.run("add", "--", *changes)
    work.run("commit", "-q", "-m", COMMIT_MESSAGE)
    head = work.out("rev-parse", "HEAD")
    work.run("push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    shutil.rmtree(clone)
    return head


# -- merging ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MergeOutcome:
    clean: bool
    tree: str
    conflicts: tuple[str, ...]


def merge_tree(git: Git, ours: str, theirs: str) -> MergeOutcome:
    """One ``git merge-tree --write-tree`` process per pair (exit 1: conflicts)."""
    proc = git.run(
        "merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", ours, theirs, ok=(0, 1)
    )
    fields = proc.stdout.decode().split("\0")
    tree, paths = fields[0], [f for f in fields[1:] if f]
    return MergeOutcome(proc.returncode == 0, tree, tuple(sorted(paths)))


# -- history ---------------------------------------------------------------------------------------
def last_commits_by_log(git: Git, rev: str, directory: str = "") -> dict[str, str]:
    """``git ls-tree`` for the entries, then one ``git log -1`` per entry."""
    treeish = f"{rev}:{directory}" if directory else rev
    names = [n for n in git.out("ls-tree", "-z", "--name-only", treeish).split("\0") if n]
    prefix = f"{directory}/" if directory else ""
    return {
        name: git.out("--literal-pathspecs", "log", "-1", "--format=%H", rev, "--", prefix + name)
        for name in names
    }
