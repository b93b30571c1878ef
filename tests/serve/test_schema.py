"""Property-based requests from the OpenAPI schema (schemathesis): no request, valid or not, makes
the server fail (5xx); answers conform to the schema; invalid data is refused; a declared key is
enforced. Run with and without a key."""
from __future__ import annotations

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, ignored_auth, negative_data_rejection,
                                               response_schema_conformance, status_code_conformance)

from malmoi.serve import ServeSettings, create_app

KEY = "sekret"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection, ignored_auth]
LIMITS = dict(max_new_tokens=8, max_chars=40, max_texts=4)  # small requests: the fuzzing stays quick


@pytest.fixture(scope="module")
def keyed_schema(served):
    app = create_app(settings=ServeSettings(api_key=KEY, **LIMITS), models=served)
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Authorization": f"Bearer {KEY}"})


@pytest.fixture(scope="module")
def open_schema(served):
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(settings=ServeSettings(**LIMITS),
                                                                      models=served))


FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def fuzz(schema, headers: dict) -> int:
    """Every operation with valid and invalid generated requests; the number of operations run.
    (Driven by hand: schemathesis' pytest plugin does not run on this pytest.)"""
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.method == "post" else [])
        for mode in modes:  # a GET without parameters has no invalid request to make
            @given(case=operation.as_strategy(generation_mode=mode))
            @FUZZ
            def run(case):
                case.call_and_validate(headers=headers, checks=CHECKS)

            run()
        operations += 1
    return operations


def test_with_a_key(keyed_schema):
    assert fuzz(keyed_schema, {"Authorization": f"Bearer {KEY}"}) >= 7


def test_without_a_key(open_schema):
    assert fuzz(open_schema, {}) >= 7
