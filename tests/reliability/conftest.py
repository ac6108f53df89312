"""Settings of the reliability suite (issue 10): short modes in CI, long modes behind a flag.

Every test here runs a bounded short mode by default: a few crash/restart cycles, a few seconds of
load, a bounded number of Hypothesis examples. ``REVISOR_LONG=1`` (or ``--revisor-long``) selects
the long modes: 200 crash-checked operations, a longer soak with more clients, many more examples.
Figures the tests measure (p99 latencies, crash counts) go to ``report_dir``: printed, and written
as JSON under the test's output directory; no test asserts on a timing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability.common import LONG_ENV


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--revisor-long", action="store_true", default=False,
        help="run the reliability suite's long modes (same as REVISOR_LONG=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--revisor-long", default=False):
        os.environ[LONG_ENV] = "1"
    config.addinivalue_line("markers", "reliability: the crash, load, fault and hostile-input "
                            "suite of issue 10 (long modes with REVISOR_LONG=1)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def report_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where a test writes the figures it measured (kept with pytest's temporary directories;
    ``REVISOR_REPORT_DIR`` overrides, for CI artifacts)."""
    base = os.environ.get("REVISOR_REPORT_DIR")
    root = Path(base) if base else tmp_path_factory.getbasetemp() / "reliability-reports"
    path = root / request.node.name.replace("/", "_")
    path.mkdir(parents=True, exist_ok=True)
    return path
