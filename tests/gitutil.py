"""A small driver for building test histories with the real git CLI.

Commits get strictly increasing, deterministic dates (one minute apart) unless a test sets them,
so histories are reproducible; tests about equal timestamps pass ``date=`` explicitly.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["GitRepo"]


class GitRepo:
    """A non-bare repository driven through ``git``; the reference every compat test checks."""

    _clock = 1_700_000_000

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        proc = subprocess.run(
            ["git", "-C", str(self.path), *args],
            input=input,
            capture_output=True,
            check=False,
            env=full_env,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode()}"
            )
        return proc.stdout.decode("utf-8", "surrogateescape")

    def write(self, rel: str, content: bytes | str, *, executable: bool = False) -> None:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink():
            p.unlink()
        p.write_bytes(content.encode() if isinstance(content, str) else content)
        p.chmod(0o755 if executable else 0o644)

    def symlink(self, rel: str, target: str) -> None:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.exists() or p.is_symlink():
            p.unlink()
        os.symlink(target, p)

    def remove(self, rel: str) -> None:
        self.git("rm", "-q", "-r", "--", rel)

    def commit(self, message: str, *, date: int | None = None, allow_empty: bool = False) -> str:
        if date is None:
            GitRepo._clock += 60
            date = GitRepo._clock
        stamp = f"{date} +0000"
        self.git("add", "-A")
        args = ["commit", "-q", "-m", message]
        if allow_empty:
            args.append("--allow-empty")
        self.git(*args, env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def rev_parse(self, rev: str) -> str:
        return self.git("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}").strip()

    def checkout(self, *args: str) -> None:
        self.git("checkout", "-q", *args)

    def merge(self, branch: str, *, date: int | None = None, message: str | None = None) -> str:
        """Merge ``branch`` (no fast-forward); on conflict, resolve by taking ours and commit."""
        if date is None:
            GitRepo._clock += 60
            date = GitRepo._clock
        stamp = f"{date} +0000"
        env = {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
        msg = message or f"merge {branch}"
        proc = subprocess.run(
            ["git", "-C", str(self.path), "merge", "-q", "--no-ff", "-m", msg, branch],
            capture_output=True,
            env={**os.environ, **env},
            check=False,
        )
        if proc.returncode != 0:
            self.git("checkout", "--ours", "--", ".")
            self.git("add", "-A")
            self.git("commit", "-q", "--no-edit", env=env)
        return self.head()


def fast_import(repo: GitRepo, stream: bytes) -> dict[int, str]:
    """Feed ``stream`` to ``git fast-import`` (one process for a whole history); return the commit
    id of each mark, by mark number."""
    git_dir = Path(repo.git("rev-parse", "--absolute-git-dir").strip())
    marks = git_dir / "fast-import-marks"
    repo.git("fast-import", "--quiet", "--force", f"--export-marks={marks}", input=stream)
    ids: dict[int, str] = {}
    for line in marks.read_text().splitlines():
        mark, oid = line.split()
        ids[int(mark.lstrip(":"))] = oid
    return ids


def merge_resolving(
    repo: GitRepo,
    *branches: str,
    files: dict[str, str | None] | None = None,
    date: int | None = None,
    message: str | None = None,
) -> str:
    """Merge ``branches`` into the current branch (no fast-forward) and commit, after writing
    ``files`` (None: remove) over whatever the merge left, conflicts included."""
    if date is None:
        GitRepo._clock += 60
        date = GitRepo._clock
    stamp = f"{date} +0000"
    env = {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
    subprocess.run(
        ["git", "-C", str(repo.path), "merge", "-q", "--no-ff", "--no-commit", *branches],
        capture_output=True,
        env={**os.environ, **env},
        check=False,
    )
    for rel, content in (files or {}).items():
        if content is None:
            repo.git("rm", "-q", "-r", "--cached", "--ignore-unmatch", "--", rel)
            target = repo.path / rel
            if target.exists():
                target.unlink()
        else:
            repo.write(rel, content)
    repo.git("add", "-A")
    msg = message or f"merge {' '.join(branches)}"
    repo.git("commit", "-q", "--allow-empty", "-m", msg, env=env)
    return repo.head()


def git_merge_tree(
    repo: GitRepo, ours: str, theirs: str, *, allow_unrelated: bool = False
) -> tuple[bool, str, tuple[str, ...]]:
    """git's own answer for merging ``theirs`` into ``ours``: (clean, tree, conflicted paths).

    Runs ``git merge-tree --write-tree --name-only -z`` as a separate process and reads the exit
    code (0 clean, 1 conflicts). Pass full commit ids: git labels conflict markers with the
    arguments exactly as given.
    """
    args = ["merge-tree", "--write-tree", "--name-only", "-z", "--no-messages"]
    if allow_unrelated:
        args.append("--allow-unrelated-histories")
    proc = subprocess.run(
        ["git", "-C", str(repo.path), *args, ours, theirs], capture_output=True, check=False
    )
    if proc.returncode not in (0, 1):
        raise AssertionError(f"git merge-tree failed ({proc.returncode}): {proc.stderr.decode()}")
    tree, *names = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    return proc.returncode == 0, tree, tuple(n for n in names if n)
