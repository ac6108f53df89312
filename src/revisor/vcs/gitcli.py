"""Running the git CLI, safely, for the few things git itself must answer.

pygit2 does the object work. The git CLI is used where git is the reference (merge-ort) or where
its on-disk protocol is the point (ref transactions with lock files that other git processes
honour). Every invocation goes through :func:`run_git`, which:

- names the repository explicitly (``--git-dir``) and clears ``GIT_DIR``-style variables that would
  redirect git elsewhere;
- never prompts (``GIT_TERMINAL_PROMPT=0``) and reads no per-user configuration unless asked;
- takes arguments as a list built by Revisor; user-supplied values travel on stdin or after
  validation, never where git could read them as options;
- converts a failure into :class:`~revisor.errors.GitFailure` once, keeping stderr for diagnosis.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from revisor.errors import GitFailure

__all__ = ["GIT", "git_env", "run_git"]

GIT = "git"

# Variables that would make a git process act on another repository or index than the one named.
_REDIRECTING = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_QUARANTINE_PATH",
)


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTING}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    env.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    if extra:
        env.update(extra)
    return env


def run_git(
    git_dir: str | Path,
    args: Sequence[str],
    *,
    input: bytes | None = None,
    timeout: float | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git --git-dir=<git_dir> <args>`` and return the completed process.

    With ``check`` (the default) a non-zero exit raises GitFailure; without it the caller reads
    ``returncode`` itself and decides from state, never from the text of stderr.
    """
    cmd = [GIT, f"--git-dir={os.fspath(git_dir)}", *args]
    try:
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            timeout=timeout,
            env=git_env(env),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GitFailure(f"git {args[0]} timed out after {timeout}s") from exc
    except OSError as exc:
        raise GitFailure(f"could not run git: {exc}", hint="is git (>= 2.38) installed?") from exc
    if check and proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        raise GitFailure(f"git {args[0]} failed (exit {proc.returncode})", stderr=stderr)
    return proc
