"""Finding and repairing broken mirrors, without stampedes and without losing Revisor's refs.

Zuul's lessons: a stale ``index.lock``, a truncated object, an empty or deleted HEAD must each be
detected and repaired, not crash every later request; and re-cloning on every failure made a dozen
workers re-clone a 2 GB repository at once. So:

- small problems are repaired in place: a missing or empty HEAD is rewritten, ``*.lock`` files
  older than ``stale_after`` (left by killed processes) are removed;
- a mirror whose objects are damaged is *rebuilt*: fetched afresh beside the old one, Revisor's own
  refs (``refs/revisor/*``) carried over wherever their objects are intact, then swapped in. The old
  directory is kept as ``<mirror>.corrupt-<time>``, never deleted, so nothing is lost;
- rebuilds back off exponentially (with jitter) per mirror, across processes: a rebuild attempted
  too soon raises :class:`~revisor.errors.RemoteUnavailable` with the time to wait.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from revisor.errors import GitFailure, RemoteUnavailable, RepositoryNotFound
from revisor.store.mirror import Mirror
from revisor.vcs import Repository
from revisor.vcs.gitcli import run_git

__all__ = ["DoctorReport", "Finding", "doctor", "rebuild"]

log = logging.getLogger(__name__)

STALE_LOCK_SECONDS = 60.0
REBUILD_BACKOFF_BASE = 30.0
REBUILD_BACKOFF_CAP = 3600.0


@dataclass(frozen=True)
class Finding:
    check: str
    problem: str
    action: str
    repaired: bool


@dataclass
class DoctorReport:
    path: Path
    findings: list[Finding] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """True when nothing was wrong, or everything wrong was repaired."""
        return all(f.repaired for f in self.findings)


def _head_ok(path: Path) -> bool:
    try:
        text = (path / "HEAD").read_text().strip()
    except OSError:
        return False
    if text.startswith("ref: refs/"):
        return True
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text)


def _stale_locks(path: Path, stale_after: float) -> list[Path]:
    now = time.time()
    found = []
    for lock in path.rglob("*.lock"):
        try:
            if lock.is_file() and now - lock.stat().st_mtime >= stale_after:
                found.append(lock)
        except OSError:
            continue
    return found


def _objects_ok(path: Path, *, full: bool) -> tuple[bool, str]:
    args = ["fsck", "--no-dangling", "--no-progress"]
    if not full:
        args.append("--connectivity-only")
    proc = run_git(path, args, check=False)
    return proc.returncode == 0, proc.stderr.decode("utf-8", "replace").strip()


def doctor(
    mirror: Mirror,
    *,
    repair: bool = True,
    full: bool = True,
    stale_after: float = STALE_LOCK_SECONDS,
) -> DoctorReport:
    """Check a mirror; with ``repair``, fix what is found (rebuilding it if its objects are bad)."""
    with mirror.locked():
        return _doctor_locked(mirror, repair=repair, full=full, stale_after=stale_after)


def _doctor_locked(mirror: Mirror, *, repair: bool, full: bool, stale_after: float) -> DoctorReport:
    report = DoctorReport(mirror.path)
    path = mirror.path
    if not mirror.exists:
        report.findings.append(Finding("exists", "mirror is missing", "fetched", repair))
        if repair:
            mirror.fetch()
        return report
    if not _head_ok(path):
        branch = mirror.default_branch or "main"
        if repair:
            (path / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
        report.findings.append(
            Finding("HEAD", "HEAD is missing, empty or invalid",
                    f"HEAD set to refs/heads/{branch}", repair)
        )
    for lock in _stale_locks(path, stale_after):
        if repair:
            lock.unlink(missing_ok=True)
        report.findings.append(
            Finding("locks", f"stale lock {lock.relative_to(path)}", "removed", repair)
        )
    try:
        Repository.open(path)
        ok, detail = _objects_ok(path, full=full)
    except (RepositoryNotFound, GitFailure) as exc:
        ok, detail = False, str(exc)
    if not ok:
        last = detail.splitlines()[-1] if detail else "fsck failed"
        if repair:
            lost = rebuild(mirror)
            action = "rebuilt from the remote" + (
                f"; refs whose objects were damaged: {', '.join(lost)}" if lost else ""
            )
        else:
            action = "needs a rebuild (run with repair)"
        report.findings.append(Finding("objects", f"damaged objects: {last}", action, repair))
    return report


# -- rebuilding ---------------------------------------------------------------------------------
def _backoff_file(mirror: Mirror) -> Path:
    return mirror.path.parent / (mirror.path.name + ".rebuild.json")


def _check_backoff(mirror: Mirror, now: float) -> None:
    try:
        info = json.loads(_backoff_file(mirror).read_text())
    except (OSError, ValueError):
        return
    wait = min(REBUILD_BACKOFF_CAP, REBUILD_BACKOFF_BASE * 2 ** max(0, info["attempts"] - 1))
    ready_at = info["last"] + wait * info.get("jitter", 1.0)
    if now < ready_at:
        raise RemoteUnavailable(
            f"rebuild of {mirror.display_url} backed off for {ready_at - now:.0f}s more",
            retry_after=ready_at - now,
        )


def _record_attempt(mirror: Mirror, now: float, *, success: bool) -> None:
    f = _backoff_file(mirror)
    try:
        attempts = json.loads(f.read_text())["attempts"]
    except (OSError, ValueError, KeyError):
        attempts = 0
    if success:
        f.unlink(missing_ok=True)
        return
    data = {"attempts": attempts + 1, "last": now, "jitter": random.uniform(0.5, 1.5)}  # noqa: S311
    f.write_text(json.dumps(data))


def _carry_over(old: Path, new: Repository) -> list[str]:
    """Copy refs/revisor/* from the damaged mirror; return the refs that could not be saved."""
    try:
        refs = Repository.open(old).refs("refs/revisor/")
    except (RepositoryNotFound, GitFailure):
        return ["refs/revisor/* (unreadable)"]
    if not refs:
        return []
    bulk = run_git(new.git_dir, ["fetch", "--no-tags", "--quiet", "--end-of-options", str(old),
                                 "+refs/revisor/*:refs/revisor/*"], check=False)
    if bulk.returncode == 0:
        return []
    lost = []
    for ref in sorted(refs):
        one = run_git(new.git_dir, ["fetch", "--no-tags", "--quiet", "--end-of-options",
                                    str(old), f"+{ref}:{ref}"], check=False)
        if one.returncode != 0:
            lost.append(ref)
    return lost


def rebuild(mirror: Mirror) -> list[str]:
    """Fetch the mirror afresh and swap it in; return refs/revisor/* refs that could not be saved.

    Backs off between attempts (per mirror, across processes). The damaged mirror is kept aside.
    """
    now = time.time()
    _check_backoff(mirror, now)
    fresh_path = mirror.path.parent / f".{mirror.path.name}.rebuild-{os.getpid()}"
    shutil.rmtree(fresh_path, ignore_errors=True)
    fresh = Mirror(fresh_path, mirror.url, auth=mirror._auth, policy=mirror.policy,
                   default_branch=mirror.default_branch)
    try:
        fresh.fetch()
    except RemoteUnavailable:
        _record_attempt(mirror, now, success=False)
        shutil.rmtree(fresh_path, ignore_errors=True)
        raise
    lost = _carry_over(mirror.path, fresh.repo)
    aside = mirror.path.parent / f"{mirror.path.name}.corrupt-{int(now)}"
    os.replace(mirror.path, aside)
    os.replace(fresh_path, mirror.path)
    mirror._repo = None
    _record_attempt(mirror, now, success=True)
    log.warning("rebuilt %s; damaged copy kept at %s", mirror.display_url, aside)
    return lost
