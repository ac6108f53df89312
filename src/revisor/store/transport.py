"""Talking to remotes: credentials without leaks, timeouts, and retries with backoff.

Every git process that touches the network is started through :func:`run_remote`. It:

- hands credentials to git through a one-shot credential helper configured in the *environment*
  (``GIT_CONFIG_COUNT``), reading the secret from an environment variable of that process only —
  nothing is written into the mirror's config, nothing appears in argv;
- refuses dangerous transports (``ext::``, ``fd::``) at the protocol level too, never prompts, and
  turns off auto-gc (maintenance is the store's, on its own schedule);
- bounds every operation: a stall below ``low_speed_limit`` bytes/s for ``stall_seconds`` aborts it,
  and the process has a hard deadline, at which its whole process group (git and its transport
  helpers) is killed;
- redacts every URL and secret from the errors it raises.

:func:`retry` retries a network operation with exponential backoff and full jitter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from revisor.errors import GitFailure, RemoteUnavailable
from revisor.store.urls import redact
from revisor.vcs.gitcli import GIT, git_env

__all__ = ["GitAuth", "NetworkPolicy", "Progress", "retry", "run_remote"]

Progress = Callable[[str, int, int], None]
"""Called with (phase, done, total) as git reports progress, e.g. ("Receiving objects", 45, 100)."""

_PROGRESS = re.compile(rb"([A-Za-z][A-Za-z ]+):\s+\d+% \((\d+)/(\d+)\)")

log = logging.getLogger(__name__)

# The credential helper git runs for this process only; it prints what the environment holds.
_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    'printf "username=%s\\npassword=%s\\n" "$REVISOR_GIT_USERNAME" "$REVISOR_GIT_PASSWORD"; }; f'
)


@dataclass(frozen=True)
class GitAuth:
    """Credentials for one remote. ``password`` never appears in repr."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssh_key_file: Path | None = None


@dataclass(frozen=True)
class NetworkPolicy:
    """Limits for network operations."""

    timeout: float = 600.0  # hard deadline of one git process, seconds
    stall_seconds: int = 30  # abort when slower than low_speed_limit for this long
    low_speed_limit: int = 1000  # bytes per second
    connect_timeout: int = 15  # seconds, for SSH
    attempts: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 10.0


def remote_env(auth: GitAuth | None, policy: NetworkPolicy) -> dict[str, str]:
    """The environment that configures git for one network operation."""
    config: list[tuple[str, str]] = [
        ("protocol.ext.allow", "never"),
        ("protocol.fd.allow", "never"),
        ("gc.auto", "0"),
        ("maintenance.auto", "false"),
        ("http.lowSpeedLimit", str(policy.low_speed_limit)),
        ("http.lowSpeedTime", str(policy.stall_seconds)),
        ("credential.helper", ""),  # forget any helper from other configuration
        ("core.askPass", ""),
    ]
    env: dict[str, str] = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
    if auth is not None and auth.password is not None:
        config.append(("credential.helper", _HELPER))
        env["REVISOR_GIT_USERNAME"] = auth.username or "x-access-token"
        env["REVISOR_GIT_PASSWORD"] = auth.password
    ssh = [
        "ssh",
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={policy.connect_timeout}",
        "-o", f"ServerAliveInterval={max(1, policy.stall_seconds // 3)}",
        "-o", "ServerAliveCountMax=3",
        "-o", "StrictHostKeyChecking=accept-new",
    ]
    if auth is not None and auth.ssh_key_file is not None:
        ssh += ["-o", "IdentitiesOnly=yes", "-i", str(auth.ssh_key_file)]
    env["GIT_SSH_COMMAND"] = shlex.join(ssh)
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def run_remote(
    git_dir: Path,
    args: Sequence[str],
    *,
    auth: GitAuth | None,
    policy: NetworkPolicy,
    what: str,
    check: bool = True,
    progress: Progress | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run one network git command; failures become RemoteUnavailable with redacted details.

    git runs in a process group of its own, and at the hard deadline (``policy.timeout``) the
    whole group is killed: git's transport helpers (``git remote-http``, ``ssh``) hold the
    connection, and killing ``git`` alone would leave them running. With ``progress``, git's
    progress meter is parsed as it runs and reported to the callback.
    """
    secrets = (auth.password,) if auth is not None and auth.password else ()
    env = remote_env(auth, policy)
    proc = _run_bounded(git_dir, args, env, policy.timeout, progress, what)
    if check and proc.returncode != 0:
        stderr = redact(proc.stderr.decode("utf-8", "replace").strip(), secrets)
        raise RemoteUnavailable(f"{what}: {_summary(stderr, proc.returncode)}", stderr=stderr)
    return proc


def _summary(stderr: str, returncode: int) -> str:
    """The line of git's stderr that says what went wrong: the first ``fatal:`` or ``error:``
    (later lines are often advice), else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    return lines[-1] if lines else f"exit {returncode}"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _run_bounded(
    git_dir: Path,
    args: Sequence[str],
    env: dict[str, str],
    timeout: float,
    progress: Progress | None,
    what: str,
) -> subprocess.CompletedProcess[bytes]:
    cmd = [GIT, f"--git-dir={os.fspath(git_dir)}", *args]
    wants_meter = args and args[0] in ("fetch", "push", "clone") and "--progress" not in args
    if progress is not None and wants_meter:
        cmd.insert(3, "--progress")
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=git_env(env), start_new_session=True,
        )
    except OSError as exc:
        raise GitFailure(f"could not run git: {exc}", hint="is git (>= 2.38) installed?") from exc
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        _kill_group(proc)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    out_chunks: list[bytes] = []
    assert proc.stdout is not None and proc.stderr is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: out_chunks.append(stdout.read()), daemon=True)
    reader.start()
    err = bytearray()
    try:
        pending = b""
        while block := os.read(proc.stderr.fileno(), 65536):
            err += block
            if progress is None:
                continue
            pending += block
            *lines, pending = re.split(rb"[\r\n]", pending)
            for line in lines:
                m = _PROGRESS.search(line)
                if m:
                    progress(m.group(1).decode().strip(), int(m.group(2)), int(m.group(3)))
        proc.wait()
    except BaseException:
        _kill_group(proc)  # a failing callback, KeyboardInterrupt: leave nothing running
        proc.wait()
        raise
    finally:
        timer.cancel()
        reader.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
    if timed_out.is_set():
        raise RemoteUnavailable(f"{what}: timed out after {timeout:g}s")
    return subprocess.CompletedProcess(cmd, proc.returncode, b"".join(out_chunks), bytes(err))


T = TypeVar("T")


def retry(
    fn: Callable[[], T],
    policy: NetworkPolicy,
    *,
    retry_on: tuple[type[BaseException], ...] = (RemoteUnavailable,),
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Call ``fn``; on ``retry_on`` errors try again with exponential backoff and full jitter."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except retry_on as exc:
            if attempt == policy.attempts:
                raise
            delay = rng.uniform(0, min(policy.backoff_cap, policy.backoff_base * 2 ** attempt))
            log.warning("attempt %d failed (%s); retrying in %.2fs", attempt, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")
