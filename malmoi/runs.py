"""Run directories: the unit of persistence.

``runs/NAME/`` is a Hugging Face model folder plus ``malmoi.json`` (task, labels, columns,
preset, arguments), ``metrics.jsonl``, ``curve.png`` and ``checkpoints/``. Everything is
written to a temporary sibling first and renamed into place, so a crash never leaves a
half-written file or folder behind.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import MalmoiError

META_FILE = "malmoi.json"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, ensure_ascii=False, indent=2).encode("utf-8"))


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` whole (old one removed last)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def prepare_out(out: str | os.PathLike, resume: bool) -> Path:
    """Refuse to overwrite an existing run unless resuming; refuse to resume a missing one."""
    out = Path(out)
    exists = out.exists() and any(out.iterdir())
    if exists and not resume:
        raise MalmoiError("E301", f"{out} already exists; pass --resume to continue it or choose another --out")
    if resume and not (out / "checkpoints" / "last").exists():
        raise MalmoiError("E302", f"nothing to resume in {out}: no checkpoints/last")
    out.mkdir(parents=True, exist_ok=True)
    return out


def read_meta(run: str | os.PathLike) -> dict:
    run = Path(run)
    meta = run / META_FILE
    if not meta.is_file():
        raise MalmoiError("E303", f"{run} is not a malmoi run directory (no {META_FILE})")
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MalmoiError("E304", f"{meta} is unreadable: {e}") from None


def write_meta(run: str | os.PathLike, meta: dict) -> None:
    atomic_write_json(Path(run) / META_FILE, meta)
