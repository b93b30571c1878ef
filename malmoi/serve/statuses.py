"""malmoi's error codes as HTTP statuses: the one place the server decides them."""
from __future__ import annotations

STATUS = {
    "E604": 404,  # unknown model
    "E605": 422,  # the model cannot do what the route asks
    "E606": 413,
    "E607": 429,
    "E608": 504,
    "E609": 401,
    "E610": 422,
    "E611": 503,
}
"""Codes with a status of their own; the rest follow their group in ``status_of``."""

GROUP_STATUS = {"E1": 422, "E2": 422, "E4": 422}
"""Bad input data, options and inputs a model refuses are the client's to fix; other groups are 500."""


def status_of(code: str) -> int:
    return STATUS.get(code) or GROUP_STATUS.get(code[:2], 500)
