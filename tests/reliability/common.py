"""Helpers shared by the reliability tests: the long-mode switch, Hypothesis budgets, and the
report of measured figures. No tests here."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

__all__ = ["LONG_ENV", "examples", "long_mode", "write_report"]

LONG_ENV = "REVISOR_LONG"


def long_mode() -> bool:
    """Whether the long modes were asked for (``REVISOR_LONG=1`` or ``--revisor-long``)."""
    return os.environ.get(LONG_ENV, "") not in ("", "0")


def examples(short: int, long: int = 2_000) -> settings:
    """Hypothesis settings: ``short`` examples in CI (derandomized: the same examples every run,
    so CI is reproducible), ``long`` random ones with the long mode; no deadline (a loaded
    machine must not fail a property)."""
    return settings(
        max_examples=long if long_mode() else short,
        derandomize=not long_mode(),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def write_report(directory: Path, name: str, figures: dict[str, Any]) -> Path:
    """Print ``figures`` and write them as ``<directory>/<name>.json``."""
    path = directory / f"{name}.json"
    text = json.dumps(figures, indent=2, sort_keys=True)
    path.write_text(text + "\n")
    print(f"\n{name}: {text}\n(written to {path})")
    return path
