"""`malmoi tokenize` and `malmoi tokenizer train`."""
from __future__ import annotations

from . import app, tokenizer_app  # noqa: F401
