"""Schemathesis against the published OpenAPI (``/api/v1/openapi.json``) of a live server on
loopback: every operation of the whole schema — browse, transactions, proposals, operations and
whatever other routes are mounted (candidates, workspaces, jobs) — gets generated requests, valid
and invalid, and no response may be a 5xx or disagree with the schema. Bounded and derandomized
(``max_examples`` per operation and mode) so that it is quick and repeatable.

The operations are driven with Schemathesis's Python API (one Hypothesis run per operation)
rather than its pytest plugin, whose lazy fixture loader does not support this pytest."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support.api import ApiWorld, api_world

FILES = {"README.md": "hello\n", "docs/guide.md": "# Guide\n", "src/app.py": "print(1)\n"}
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    with api_world(tmp_path_factory.mktemp("schemathesis"), FILES) as w:
        r = w.post("/sources/proj/transactions", json={"message": "seed", "changes": [
            {"op": "write", "path": "seed.txt", "content": "seed"}]})
        assert r.status_code == 201
        yield w


def _run(operation: Any, mode: GenerationMode, base_url: str) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES[mode], derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url,
            checks=[not_a_server_error, response_schema_conformance],
            timeout=60,
        )

    check()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors_and_responses_match_the_schema(
    served: ApiWorld, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(served.api + "/openapi.json")
    labels = []
    failures: list[str] = []
    timings: list[tuple[float, str]] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)
        started = time.monotonic()
        try:
            _run(operation, mode, served.url)
        except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
            assert mode is GenerationMode.NEGATIVE
        except Exception as exc:  # collected: one report listing every failing operation
            failures.append(f"{operation.label}: {type(exc).__name__}: {exc}"[:3000])
        timings.append((time.monotonic() - started, operation.label))
    assert "GET /api/v1/sources/{source}/tree" in labels
    assert "POST /api/v1/sources/{source}/transactions" in labels
    assert failures == [], failures
    print("slowest:", sorted(timings, reverse=True)[:3])
