"""Property-based API fuzzing from our own /openapi.json: no input may produce
a 5xx (bad input is always a precise 4xx).

Operations are driven one by one with Hypothesis rather than through
schemathesis' pytest plugin, which does not support this pytest version.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Err

from tests.support.api_client import Tokens, bearer


def test_no_input_makes_a_server_error(app: Any, tokens: Tokens) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    failures: list[str] = []
    operations = 0
    calls: list[int] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # our own spec must load whole
            raise result.err()
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "20")), deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            response = case.call(headers=bearer(tokens.admin))
            calls.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")

        check()
    assert operations >= 15
    assert len(calls) >= 3 * operations, len(calls)  # the fuzzer really sent requests
    assert failures == []
