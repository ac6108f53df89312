"""The one exception tree of Revisor.

Every failure a caller can see is a :class:`RevisorError`. Lower-level errors (pygit2's, a git
process's exit status) are converted exactly once, where they happen, with ``raise ... from exc``.
The entry points map the tree to exit codes and HTTP statuses in one place each, by class, never by
matching a message's text. Each error carries an optional *hint*: what the user can do about it.

::

    RevisorError
    ├── InvalidInput (ValueError)                 the caller's mistake      → exit 2,  HTTP 400
    │   ├── InvalidPath                           '..', absolute, NUL, inside .git, empty part
    │   ├── InvalidRevision                       option-like, ranges, bad syntax
    │   ├── InvalidRefName                        not a valid git ref name
    │   └── PathConflict                          e.g. writing 'a/b' where 'a' is a file
    ├── NotFound (LookupError)                    something named does not exist → exit 3, HTTP 404
    │   ├── RepositoryNotFound
    │   ├── RevisionNotFound
    │   └── PathNotFound
    ├── Conflict                                  the world moved under the caller → exit 4, 409
    │   └── RefConflict                           a compare-and-swap lost: carries the actual value
    └── GitFailure                                git itself failed unexpectedly → exit 1, HTTP 500
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "GitFailure",
    "InvalidInput",
    "InvalidPath",
    "InvalidRefName",
    "InvalidRevision",
    "NotFound",
    "PathConflict",
    "PathNotFound",
    "RefConflict",
    "RepositoryNotFound",
    "RevisionNotFound",
    "RevisorError",
]


class RevisorError(Exception):
    """Root of every error Revisor raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidInput(RevisorError, ValueError):
    """The caller gave something Revisor refuses before doing any work."""


class InvalidPath(InvalidInput):
    """A repository path that is absolute, escapes, points into ``.git`` or is malformed."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"invalid path {path!r}: {reason}",
            hint="paths are relative, '/'-separated, without '.', '..' or empty parts",
        )
        self.path = path
        self.reason = reason


class InvalidRevision(InvalidInput):
    """A revision that could be read as an option, is a range, or is not valid syntax."""

    def __init__(self, rev: str, reason: str) -> None:
        super().__init__(
            f"invalid revision {rev!r}: {reason}",
            hint="use a commit id, a branch or tag name, HEAD, optionally followed by ~N or ^N",
        )
        self.rev = rev
        self.reason = reason


class InvalidRefName(InvalidInput):
    """A ref name that git would refuse (see ``git check-ref-format``)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid ref name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class PathConflict(InvalidInput):
    """A change that contradicts the tree's shape, e.g. a file where a directory is needed."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot change {path!r}: {reason}")
        self.path = path
        self.reason = reason


class NotFound(RevisorError, LookupError):
    """Something the caller named does not exist."""


class RepositoryNotFound(NotFound):
    def __init__(self, path: str) -> None:
        super().__init__(f"no git repository at {path!r}")
        self.path = path


class RevisionNotFound(NotFound):
    def __init__(self, rev: str) -> None:
        super().__init__(
            f"unknown revision {rev!r}",
            hint="fetch the source, or check the branch, tag or commit id",
        )
        self.rev = rev


class PathNotFound(NotFound):
    def __init__(self, path: str, rev: str | None = None) -> None:
        where = f" at {rev}" if rev else ""
        super().__init__(f"no such path {path!r}{where}")
        self.path = path
        self.rev = rev


class Conflict(RevisorError):
    """The state changed under the caller; retrying with fresh state may succeed."""


class RefConflict(Conflict):
    """A compare-and-swap on a ref lost: the ref does not hold the expected value."""

    def __init__(self, ref: str, expected: str | None, actual: str | None) -> None:
        want = expected if expected is not None else "(absent)"
        have = actual if actual is not None else "(absent)"
        super().__init__(
            f"ref {ref} moved: expected {want}, found {have}",
            hint="read the ref again and retry against its current value",
        )
        self.ref = ref
        self.expected = expected
        self.actual = actual


class GitFailure(RevisorError):
    """git (or libgit2) failed in a way that is not the caller's fault."""

    def __init__(self, message: str, *, stderr: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.stderr = stderr
