"""Finding and repairing broken mirrors, without stampedes and without losing Revisor's refs.

Zuul's lessons: a stale ``index.lock``, a truncated object, an empty or deleted HEAD must each be
detected and repaired, not crash every later request; and re-cloning on every failure made a dozen
workers re-clone a 2 GB repository at once. So:

- small problems are repaired in place: a missing or empty HEAD is rewritten (to the configured
  branch, or the remote's HEAD as the mirror last learnt it), ``*.lock`` files older than
  ``stale_after`` (left by killed processes) are removed;
- a mirror whose objects are damaged is *rebuilt*: fetched afresh beside the old one, Revisor's own
  refs (``refs/revisor/*``) carried over wherever their objects are intact (read through the old
  objects as an alternate, never by asking the damaged repository to serve a fetch), then swapped
  in. The old directory is kept as ``<mirror>.corrupt-<time>``, never deleted, so nothing is lost;
- rebuilds back off exponentially (with jitter) per mirror, across processes, whether the last one
  worked or not: a rebuild attempted too soon raises :class:`~revisor.errors.RemoteUnavailable`
  with the time to wait. Doctors run under the mirror's lock, so two processes finding the same
  damage rebuild once: the second finds the mirror repaired.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from revisor.errors import GitFailure, RemoteUnavailable, RepositoryNotFound
from revisor.store.mirror import STALE_LOCK_SECONDS, Mirror
from revisor.vcs import Repository
from revisor.vcs.gitcli import run_git

__all__ = ["STALE_LOCK_SECONDS", "DoctorReport", "Finding", "doctor", "rebuild"]

log = logging.getLogger(__name__)

REBUILD_BACKOFF_BASE = 30.0
REBUILD_BACKOFF_CAP = 3600.0
_HEX40 = re.compile(r"[0-9a-f]{40}")


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
        action = "fetched from the remote" if repair else "needs a fetch (run with repair)"
        report.findings.append(Finding("exists", "mirror is missing", action, repair))
        if repair:
            mirror.fetch()
        return report
    head_ok = mirror.head_ok()
    if not head_ok:
        # The configured branch, or the remote's HEAD as the mirror learnt it.
        branch = mirror.repair_head() if repair else mirror.head_branch()
        report.findings.append(
            Finding("HEAD", "HEAD is missing, empty or invalid", f"HEAD set to {branch}", repair)
        )
    for lock in mirror.stale_locks(stale_after):
        if repair:
            lock.unlink(missing_ok=True)
        report.findings.append(
            Finding("locks", f"stale lock {lock.relative_to(path)}", "removed", repair)
        )
    if not head_ok and not repair:
        return report  # git does not read a repository without HEAD: objects not checked
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


def _read_backoff(mirror: Mirror) -> tuple[int, float, float]:
    """(attempts in the current series, time of the last one, its jitter factor)."""
    try:
        info = json.loads(_backoff_file(mirror).read_text())
        return int(info["attempts"]), float(info["last"]), float(info.get("jitter", 1.0))
    except (OSError, ValueError, KeyError, TypeError):
        return 0, 0.0, 1.0


def _wait_after(attempts: int, jitter: float) -> float:
    wait: float = REBUILD_BACKOFF_BASE * 2.0 ** max(0, attempts - 1)
    return min(REBUILD_BACKOFF_CAP, wait) * jitter


def _check_backoff(mirror: Mirror, now: float) -> None:
    attempts, last, jitter = _read_backoff(mirror)
    if attempts == 0:
        return
    ready_at = last + _wait_after(attempts, jitter)
    if now < ready_at:
        raise RemoteUnavailable(
            f"rebuild of {mirror.display_url} backed off for {ready_at - now:.0f}s more",
            retry_after=ready_at - now,
        )


def _record_attempt(mirror: Mirror, now: float) -> None:
    """Count a rebuild, whether it worked or not: a mirror that needs rebuilding again right
    after a rebuild must wait too (that is the stampede). A series ends after a quiet spell."""
    attempts, last, _ = _read_backoff(mirror)
    if now - last > 2 * REBUILD_BACKOFF_CAP:
        attempts = 0
    data = {"attempts": attempts + 1, "last": now, "jitter": random.uniform(0.5, 1.5)}  # noqa: S311
    f = _backoff_file(mirror)
    tmp = f.with_name(f"{f.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, f)


def _revisor_refs(old: Path) -> dict[str, str]:
    """``refs/revisor/*`` of a damaged repository, read from its files (no HEAD needed)."""
    refs: dict[str, str] = {}
    try:
        packed = (old / "packed-refs").read_text(encoding="utf-8", errors="replace")
    except OSError:
        packed = ""
    for line in packed.splitlines():
        oid, _, name = line.partition(" ")
        if name.startswith("refs/revisor/") and _HEX40.fullmatch(oid):
            refs[name] = oid
    loose_root = old / "refs" / "revisor"
    for dirpath, _dirs, files in os.walk(loose_root):
        for fname in files:
            if fname.endswith(".lock"):
                continue
            f = Path(dirpath) / fname
            try:
                oid = f.read_text(encoding="ascii", errors="replace").strip()
            except OSError:
                continue
            if _HEX40.fullmatch(oid):  # loose refs win over packed ones
                refs[f.relative_to(old).as_posix()] = oid
    return refs


def _copy_closure(new: Path, shas: list[str]) -> bool:
    """Copy into ``new`` every object reachable from ``shas`` but not from its refs (reading
    through the alternate), verifying each by reading it. False if any is missing or damaged."""
    no_graph = ["-c", "core.commitGraph=false"]  # the damaged mirror's graph is not trusted
    listing = run_git(
        new, [*no_graph, "rev-list", "--objects", "--stdin", "--not", "--all"],
        input="".join(f"{sha}\n" for sha in shas).encode(), check=False,
    )
    if listing.returncode != 0:
        return False
    objects = b"".join(line.split()[0] + b"\n" for line in listing.stdout.splitlines() if line)
    if not objects:
        return True
    packed = run_git(
        new,
        [*no_graph, "pack-objects", "--quiet", "--no-reuse-object", str(new / "objects/pack/pack")],
        input=objects, check=False,
    )
    return packed.returncode == 0


def _carry_over(old: Path, new: Repository) -> list[str]:
    """Copy refs/revisor/* from the damaged mirror; return the refs that could not be saved.

    A ref is saved when every object it reaches is readable, in the new mirror or in the old
    one. The old mirror is not asked to serve a fetch (upload-pack would read the damaged
    objects while negotiating); instead it lends its objects to the new one as an alternate for
    the time of the copy, and the new one's sound copies are read first.
    """
    refs = _revisor_refs(old)
    if not refs:
        return []
    git_dir = new.git_dir
    alternates = git_dir / "objects" / "info" / "alternates"
    alternates.parent.mkdir(parents=True, exist_ok=True)
    alternates.write_text(str((old / "objects").absolute()) + "\n")
    saved: dict[str, str] = {}
    lost: list[str] = []
    try:
        wanted = sorted(set(refs.values()))
        if _copy_closure(git_dir, wanted):
            saved = dict(refs)
        else:
            for name, oid in sorted(refs.items()):
                if _copy_closure(git_dir, [oid]):
                    saved[name] = oid
                else:
                    lost.append(name)
    finally:
        alternates.unlink(missing_ok=True)
    if saved:
        script = "".join(f"create {name} {oid}\n" for name, oid in sorted(saved.items()))
        run_git(git_dir, ["update-ref", "--stdin"], input=script.encode())
    return lost


def rebuild(mirror: Mirror) -> list[str]:
    """Fetch the mirror afresh and swap it in; return refs/revisor/* refs that could not be saved.

    Backs off between attempts, successful or not (per mirror, across processes). The damaged
    mirror is kept aside as ``<mirror>.corrupt-<time>``.
    """
    now = time.time()
    _check_backoff(mirror, now)
    _record_attempt(mirror, now)
    fresh_path = mirror.path.parent / f".{mirror.path.name}.rebuild-{os.getpid()}"
    shutil.rmtree(fresh_path, ignore_errors=True)
    fresh = Mirror(fresh_path, mirror.url, auth=mirror._auth, policy=mirror.policy,
                   default_branch=mirror.default_branch)
    try:
        try:
            fresh.fetch()
            lost = _carry_over(mirror.path, fresh.repo)
        except BaseException:
            shutil.rmtree(fresh_path, ignore_errors=True)
            raise
        fresh.repo.close()
        aside = mirror.path.parent / f"{mirror.path.name}.corrupt-{int(now)}"
        n = 1
        while aside.exists():
            n += 1
            aside = mirror.path.parent / f"{mirror.path.name}.corrupt-{int(now)}-{n}"
        os.replace(mirror.path, aside)
        os.replace(fresh_path, mirror.path)
    finally:
        Path(str(fresh_path) + ".fetch.lock").unlink(missing_ok=True)
    if mirror._repo is not None:
        mirror._repo.close()
    mirror._repo = None
    log.warning("rebuilt %s; damaged copy kept at %s", mirror.display_url, aside)
    return lost
