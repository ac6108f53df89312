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
    │   ├── PathConflict                          e.g. writing 'a/b' where 'a' is a file
    │   ├── ConfigError                           revisor.yaml or its environment; names the field
    │   ├── InvalidRemote                         a remote URL refused: '-x', ext::, unknown scheme
    │   ├── LayoutCollision                       two repositories, or foreign files, would overlap
    │   ├── ValidationFailed                      fields of a request refused, each named → HTTP 422
    │   ├── TooLarge                              a request body or file over its limit → HTTP 413
    │   └── PreconditionRequired                  a write without If-Match on a file that exists
    │                                             → HTTP 428
    ├── NotFound (LookupError)                    something named does not exist → exit 3, HTTP 404
    │   ├── RepositoryNotFound
    │   ├── RevisionNotFound
    │   ├── PathNotFound
    │   ├── SourceNotFound                        no configured source by that name
    │   ├── ProposalNotFound                      no proposal with that number on that source
    │   ├── TransactionNotFound                   no journal entry with that transaction id
    │   ├── JobRunNotFound                        no recorded job run with that id
    │   ├── CandidateNotFound                     no version candidate with that id or name
    │   ├── WorkspaceNotFound                     that user has no workspace in that candidate
    │   ├── UserNotFound                          no user (of the API) by that name
    │   └── TokenNotFound                         no API token with that id
    ├── Conflict                                  the world moved under the caller → exit 4, 409
    │   ├── RefConflict                           a compare-and-swap lost: carries the actual value
    │   ├── RemoteRefConflict                     a push's lease lost: the remote ref moved
    │   ├── InvalidState                          not allowed in its current state (merge a closed
    │   │                                         proposal, advance a finished transaction)
    │   ├── StaleBase                             the base branch is not at the expected commit
    │   ├── TransactionInProgress                 the same idempotency key is running elsewhere
    │   ├── PreconditionFailed                    If-Match names a version that is not the current
    │   │                                         one: carries the current ETag → HTTP 412
    │   ├── AlreadyExists                         the name is taken (a candidate's, per source)
    │   └── LeaseLost                             a job's lease expired or was taken over: its
    │                                             fencing token is stale, its result is dropped
    ├── NotAllowed                                refused by policy or role  → exit 6, HTTP 403
    │   └── Unauthenticated                       no valid credentials (missing, unknown, expired
    │                                             or revoked token)               → HTTP 401
    ├── Unavailable                               try again later          → exit 5, HTTP 503
    │   ├── RemoteUnavailable                     a remote is down, slow or refusing; retry_after
    │   └── DatabaseUnavailable                   the database is locked past its timeout or down
    ├── GitFailure                                git itself failed unexpectedly → exit 1, HTTP 500
    └── StoreCorrupt                              a file the store keeps is damaged → exit 1, 500

``LayoutCollision`` is an *InvalidInput*, not a *Conflict*: retrying never helps. Two sources whose
directories nest, or someone else's files where a repository would go, are fixed by an operator
(rename or move a source, pick another scheme or data directory, remove the files), and the store
refuses before it clones anything.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "CandidateNotFound",
    "ConfigError",
    "Conflict",
    "DatabaseUnavailable",
    "GitFailure",
    "InvalidInput",
    "InvalidPath",
    "InvalidRefName",
    "InvalidRemote",
    "InvalidRevision",
    "InvalidState",
    "JobRunNotFound",
    "LayoutCollision",
    "LeaseLost",
    "NotAllowed",
    "NotFound",
    "PathConflict",
    "PathNotFound",
    "PreconditionFailed",
    "PreconditionRequired",
    "ProposalNotFound",
    "RefConflict",
    "RemoteRefConflict",
    "RemoteUnavailable",
    "RepositoryNotFound",
    "RevisionNotFound",
    "RevisorError",
    "SourceNotFound",
    "StaleBase",
    "StoreCorrupt",
    "TokenNotFound",
    "TooLarge",
    "TransactionInProgress",
    "TransactionNotFound",
    "Unauthenticated",
    "Unavailable",
    "UserNotFound",
    "ValidationFailed",
    "WorkspaceNotFound",
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


class ConfigError(InvalidInput):
    """The configuration (``revisor.yaml`` or the environment it names) is refused.

    ``file`` is the configuration file (None: no file, e.g. a ``--source`` option), ``field`` the
    dotted path of the offending field (``sources.flipt.url``), ``reason`` what is wrong with it.
    ``problems`` holds every ``(field, reason)`` found, the first one also in ``field``/``reason``.
    """

    def __init__(
        self,
        reason: str,
        *,
        field: str | None = None,
        file: str | None = None,
        problems: tuple[tuple[str | None, str], ...] = (),
        hint: str | None = None,
    ) -> None:
        self.file = file
        self.field = field
        self.reason = reason
        self.problems = problems or ((field, reason),)
        lines = [": ".join(p for p in (file, where, why) if p) for where, why in self.problems]
        super().__init__("\n".join(lines), hint=hint)


class InvalidRemote(InvalidInput):
    """A remote URL Revisor refuses to hand to git. ``url`` is already redacted."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"invalid remote {url!r}: {reason}",
            hint="use https://, http://, ssh://, user@host:path, git://, file:// or a local path",
        )
        self.url = url
        self.reason = reason


class LayoutCollision(InvalidInput):
    """Placing a repository at ``path`` would overlap ``other`` (a placed repository or foreign
    files): one path equals or contains the other."""

    def __init__(self, path: str, other: str, reason: str) -> None:
        super().__init__(
            f"cannot place {path}: {reason}",
            hint="rename or move one of the sources, choose another scheme or data directory, "
            "or remove the files that are in the way",
        )
        self.path = path
        self.other = other
        self.reason = reason


class ValidationFailed(InvalidInput):
    """Fields of a request are refused (HTTP 422): ``problems`` holds every ``(field, reason)``
    found, the first one also in ``field``/``reason``."""

    def __init__(
        self, problems: tuple[tuple[str, str], ...] | list[tuple[str, str]], *,
        hint: str | None = None,
    ) -> None:
        self.problems = tuple(problems)
        if not self.problems:
            raise ValueError("ValidationFailed needs at least one problem")
        self.field, self.reason = self.problems[0]
        super().__init__("; ".join(f"{f}: {r}" for f, r in self.problems), hint=hint)


class PreconditionRequired(InvalidInput):
    """A change to an existing file came without the ETag it was made against (HTTP 428).
    ``current`` is the file's ETag now."""

    def __init__(self, path: str, current: str | None) -> None:
        super().__init__(
            f"{path!r} exists: say which version you changed (If-Match)",
            hint="read the file, and send its ETag as If-Match (or '*' for any version)",
        )
        self.path = path
        self.current = current


class TooLarge(InvalidInput):
    """A request body or a file is over its configured limit (HTTP 413)."""

    def __init__(self, what: str, size: int | None, limit: int) -> None:
        got = f"{size} bytes" if size is not None else "more"
        super().__init__(
            f"{what} is too large: {got}, the limit is {limit} bytes",
            hint="send less at once, or ask an operator to raise the limit",
        )
        self.size = size
        self.limit = limit


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


class SourceNotFound(NotFound):
    def __init__(self, name: str, known: tuple[str, ...] = ()) -> None:
        listed = ", ".join(known) if known else "none are configured"
        super().__init__(
            f"no source named {name!r}",
            hint=f"configured sources: {listed}",
        )
        self.name = name
        self.known = known


class ProposalNotFound(NotFound):
    def __init__(self, source: str, number: int) -> None:
        super().__init__(
            f"no proposal #{number} on source {source!r}",
            hint="list the source's proposals to find its number",
        )
        self.source = source
        self.number = number


class TransactionNotFound(NotFound):
    def __init__(self, tx_id: str) -> None:
        super().__init__(f"no transaction {tx_id!r}")
        self.tx_id = tx_id


class JobRunNotFound(NotFound):
    """No recorded job run with that id."""

    def __init__(self, run_id: int) -> None:
        super().__init__(f"no job run {run_id}", hint="list the runs with 'revisor jobs list'")
        self.run_id = run_id


class CandidateNotFound(NotFound):
    def __init__(self, source: str, candidate: int | str) -> None:
        super().__init__(
            f"no candidate {candidate!r} on source {source!r}",
            hint="list the source's candidates to find its id",
        )
        self.source = source
        self.candidate = candidate


class WorkspaceNotFound(NotFound):
    def __init__(self, candidate: int, user: str) -> None:
        super().__init__(f"user {user!r} has no workspace in candidate {candidate}")
        self.candidate = candidate
        self.user = user


class UserNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no user {name!r}", hint="list the users with: revisor users list")
        self.name = name


class TokenNotFound(NotFound):
    def __init__(self, token_id: int) -> None:
        super().__init__(f"no token {token_id}", hint="list the tokens with: revisor tokens list")
        self.token_id = token_id


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


class RemoteRefConflict(Conflict):
    """A push with a lease lost: the remote ref no longer holds the expected value."""

    def __init__(self, ref: str, expected: str | None, actual: str | None) -> None:
        want = expected if expected is not None else "(absent)"
        have = actual if actual is not None else "(absent)"
        super().__init__(
            f"remote ref {ref} moved: expected {want}, found {have}",
            hint="fetch the source and retry against the remote's current value",
        )
        self.ref = ref
        self.expected = expected
        self.actual = actual


class InvalidState(Conflict):
    """The thing exists but its state forbids the operation: merging a closed proposal, changing
    a finished transaction. ``state`` is the state it was found in."""

    def __init__(self, what: str, state: str, action: str, *, hint: str | None = None) -> None:
        super().__init__(f"cannot {action} {what}: it is {state}", hint=hint)
        self.what = what
        self.state = state
        self.action = action


class StaleBase(Conflict):
    """A change expected its base branch at one commit, and the branch is elsewhere now."""

    def __init__(self, ref: str, expected: str | None, actual: str | None) -> None:
        super().__init__(
            f"{ref} is at {actual or '(absent)'}, not at the expected {expected or '(absent)'}",
            hint="read the current state, reapply the change on it, and retry",
        )
        self.ref = ref
        self.expected = expected
        self.actual = actual


class TransactionInProgress(Conflict):
    """A transaction with the same idempotency key is running, or did not finish and awaits
    recovery (a key whose transaction failed without effect may be used again)."""


class PreconditionFailed(Conflict):
    """A conditional change named a version (an ETag, If-Match) that is not the current one
    (HTTP 412). ``current`` is the current ETag (None: the file does not exist)."""

    def __init__(self, path: str, expected: str | None, current: str | None) -> None:
        want = expected if expected is not None else "(absent)"
        have = current if current is not None else "(absent)"
        super().__init__(
            f"{path!r} is not the version you changed: expected {want}, found {have}",
            hint="read the file again, reapply your change to it, and retry with its ETag",
        )
        self.path = path
        self.expected = expected
        self.current = current


class AlreadyExists(Conflict):
    """Something with that name exists already (a candidate name, per source)."""

    def __init__(self, what: str, name: str, *, hint: str | None = None) -> None:
        super().__init__(f"{what} {name!r} already exists", hint=hint)
        self.what = what
        self.name = name


class LeaseLost(Conflict):
    """A job's lease on what it works on expired or was taken over by another owner: its fencing
    token is no longer the current one, so its result must not be written."""

    def __init__(self, key: str, token: int, *, current: int | None = None) -> None:
        now = f" (current token {current})" if current is not None else ""
        super().__init__(
            f"lease {key!r} with token {token} is no longer held{now}",
            hint="the work will be picked up again by whoever holds the lease now",
        )
        self.key = key
        self.token = token
        self.current = current


class NotAllowed(RevisorError):
    """Refused by the source's policy or the caller's role."""


class Unauthenticated(NotAllowed):
    """No valid credentials: the token is missing, unknown, expired or revoked (HTTP 401)."""


class Unavailable(RevisorError):
    """Something Revisor depends on cannot answer now; retrying later may succeed."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class RemoteUnavailable(Unavailable):
    """A remote is down, too slow, or refused the operation. ``stderr`` is already redacted."""

    def __init__(
        self,
        message: str,
        *,
        stderr: str = "",
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, hint=hint)
        self.stderr = stderr


class DatabaseUnavailable(Unavailable):
    """The metadata database is locked past its busy timeout, unreachable, or lost a deadlock."""


class GitFailure(RevisorError):
    """git (or libgit2) failed in a way that is not the caller's fault."""

    def __init__(self, message: str, *, stderr: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.stderr = stderr


class StoreCorrupt(RevisorError):
    """A file the store keeps for itself (a registry, a state file) is damaged."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"damaged store file {path}: {reason}",
            hint="restore or remove the file; Revisor rebuilds what it can",
        )
        self.path = path
        self.reason = reason
