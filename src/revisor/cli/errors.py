"""The one place where Revisor's errors become exit codes and one-line messages.

Entry points never decide by an error's text: the class decides the exit code.
"""

from __future__ import annotations

import enum
import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from revisor.errors import (
    Conflict,
    GitFailure,
    InvalidInput,
    NotAllowed,
    NotFound,
    RevisorError,
    Unavailable,
)

__all__ = ["ExitCode", "exit_code_for", "handle_errors"]


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1  # git or the system failed; not the caller's fault
    INVALID = 2  # the caller's input was refused (also click's usage errors)
    NOT_FOUND = 3
    CONFLICT = 4
    UNAVAILABLE = 5  # a remote or service is down; retry later
    NOT_ALLOWED = 6  # refused by policy or role


def exit_code_for(exc: RevisorError) -> ExitCode:
    if isinstance(exc, InvalidInput):
        return ExitCode.INVALID
    if isinstance(exc, NotFound):
        return ExitCode.NOT_FOUND
    if isinstance(exc, Conflict):
        return ExitCode.CONFLICT
    if isinstance(exc, NotAllowed):
        return ExitCode.NOT_ALLOWED
    if isinstance(exc, Unavailable):
        return ExitCode.UNAVAILABLE
    if isinstance(exc, GitFailure):
        return ExitCode.FAILURE
    return ExitCode.FAILURE


P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a command; on a RevisorError print one line (and its hint) to stderr and exit."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except RevisorError as exc:
            print(f"revisor: error: {exc}", file=sys.stderr)
            if exc.hint:
                print(f"revisor: hint: {exc.hint}", file=sys.stderr)
            raise typer.Exit(exit_code_for(exc)) from None
        except BrokenPipeError:
            raise typer.Exit(ExitCode.OK) from None

    return wrapper
