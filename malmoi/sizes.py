"""Sizes as people write them: ``10MB`` is 10^6 bytes × 10, ``512KiB`` 512 × 2^10."""
from __future__ import annotations

import os
import re
from pathlib import Path

from malmoi.errors import MalmoiError

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "k": 10**3, "m": 10**6, "g": 10**9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(text: str | int) -> int:
    """Bytes from ``"10MB"``, ``"2.5 MB"``, ``"800KB"``, ``"1GiB"`` or a plain number of bytes."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match[2].lower() not in _UNITS:
        raise MalmoiError("E291", f"cannot read the size {text!r}; use e.g. 10MB, 800KB or 1GiB (MB = 10^6 bytes)")
    size = int(float(match[1]) * _UNITS[match[2].lower()])
    if size < 1:
        raise MalmoiError("E291", f"a size must be at least one byte, got {text!r}")
    return size


def format_size(size: int) -> str:
    """``12.3 MB`` (10^6 bytes), ``850 KB``, ``12 B``."""
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}" if size < 100 * factor else f"{size / factor:.0f} {unit}"
    return f"{size} B"


def folder_size(folder: str | os.PathLike) -> int:
    """Bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
