"""A GitHub fake that keeps a timeline of its answers, for the fault tests of issue 10.

Why it exists: the fault tests must show not only the end state after an SCM misbehaved (exactly
one pull request after a 500 that came *after* the create, nothing duplicated after a timeout) but
also how the client behaved on the way: that a 429 with ``Retry-After`` was waited out and tried
again, how many creates were attempted, and that a lookup came before a retried create. The
existing :class:`~tests.support.fake_github.FakeGitHub` injects the faults (``fail_next`` with
``after``, ``hang_next``, ``rate_limit_next``); this subclass only records, per request, when it
arrived, which route it hit and what it was answered (``None``: hung up without an answer), so
the shared fake stays untouched.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from tests.support.fake_github import FakeGitHub
from tests.support.fake_scm import Reply, Request

__all__ = ["Answered", "TimelineGitHub"]


@dataclass
class Answered:
    """One request as the fake answered it (recorded when it arrives, answered later)."""

    at: float  # time.monotonic() when it arrived
    method: str
    path: str
    route: str = ""  # filled in once routed
    status: int | None = None  # None: not answered (yet, or ever: hung up)


class TimelineGitHub(FakeGitHub):
    """:class:`FakeGitHub` plus :attr:`timeline`, every request in arrival order."""

    def __init__(self) -> None:
        super().__init__()
        self.timeline: list[Answered] = []
        self._timeline_lock = threading.Lock()

    def _dispatch(self, request: Request) -> Reply | None:
        entry = Answered(time.monotonic(), request.method, request.path)
        with self._timeline_lock:
            self.timeline.append(entry)
        found = self._match(request.method, request.path)
        if not isinstance(found, int):
            entry.route = found[0]  # known before a hang, so a hung request is counted too
        reply = super()._dispatch(request)
        entry.status = reply.status if reply is not None else None
        return reply

    def answered(self, route: str) -> list[Answered]:
        """The requests to ``route``, in arrival order."""
        with self._timeline_lock:
            return [a for a in self.timeline if a.route == route]

    def clear_faults(self) -> None:
        """Forget every pending fault (the SCM is back)."""
        with self._fault_lock:
            self._faults = []
