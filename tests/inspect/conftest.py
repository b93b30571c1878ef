"""The inspector's transformer and retrieval runs: the session's tiny runs (tests/conftest.py)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def inspect_runs(tiny_runs):
    return {name: tiny_runs[name] for name in ("bert", "gpt", "mlm", "retrieval")}
