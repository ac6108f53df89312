"""Named points where crash tests can kill, stall or fail a running process.

Crash safety is a promise that can only be checked by crashing: the transaction and the jobs call
:func:`checkpoint` at the moments that matter ("after the push, before the proposal"), and a test
sets ``REVISOR_FAULT`` in the environment of a child process to make it die there. Unset (always, in
production) a checkpoint costs one dictionary lookup.

``REVISOR_FAULT`` holds ``<point>=<action>`` pairs separated by commas; actions: ``kill`` (SIGKILL
the process), ``sleep:<seconds>``, ``raise`` (raise :class:`InjectedFault`).
"""

from __future__ import annotations

import os
import signal
import time

from revisor.errors import RevisorError

__all__ = ["InjectedFault", "checkpoint"]

ENV = "REVISOR_FAULT"


class InjectedFault(RevisorError):
    """Raised at a checkpoint on purpose, by a test."""


def _plan() -> dict[str, str]:
    spec = os.environ.get(ENV, "")
    plan = {}
    for item in spec.split(","):
        point, _, action = item.strip().partition("=")
        if point:
            plan[point] = action or "raise"
    return plan


def checkpoint(point: str) -> None:
    """Do what ``REVISOR_FAULT`` asks at ``point``; nothing when it does not name it."""
    if ENV not in os.environ:
        return
    action = _plan().get(point)
    if action is None:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("sleep:"):
        time.sleep(float(action.split(":", 1)[1]))
    else:
        raise InjectedFault(f"fault injected at {point}")
