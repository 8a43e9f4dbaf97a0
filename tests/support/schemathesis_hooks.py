"""Schemathesis hooks for tests/e2e/test_openapi_conformance.py (loaded by
``st run`` through ``SCHEMATHESIS_HOOKS``).

An ``Idempotency-Key`` names one request: the same key with another body is
rightly refused (422 ``idempotency_key_reused``, API.md).  The generator
cannot know that, and reuses short keys ("0") across cases, so each case that
sends a well-formed key gets a fresh one; malformed keys are left as they are.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

_WELL_FORMED = re.compile(r"[ -~]{1,255}")


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    headers = case.headers
    if headers and isinstance(headers.get("Idempotency-Key"), str) and _WELL_FORMED.fullmatch(headers["Idempotency-Key"]):
        headers["Idempotency-Key"] = uuid.uuid4().hex
