"""Run directories: the unit of persistence.

``runs/NAME/`` is a Hugging Face model folder plus ``malmoi.json`` (task, labels, columns,
preset, arguments), ``metrics.jsonl``, ``curve.png`` and ``checkpoints/``. Everything is
written atomically (``malmoi.files``).

Every task's training call opens its run directory with ``start_run``: one process writes it,
an existing run is refused without --resume, and a run killed before its first checkpoint
is started again.
"""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from malmoi.errors import MalmoiError
from malmoi.files import atomic_write_json

META_FILE = "malmoi.json"


def prepare_out(out: str | os.PathLike, resume: bool) -> Path:
    """Refuse to overwrite an existing run unless resuming; refuse to resume a missing one."""
    out = Path(out)
    exists = out.exists() and any(out.iterdir())
    if exists and not resume:
        raise MalmoiError("E301", f"{out} already exists; pass --resume to continue it or choose another --out")
    if resume and not (out / "checkpoints" / "last").exists():
        if _finished(out):
            raise MalmoiError("E308", f"{out} finished training and kept no checkpoints, so it cannot continue; "
                                      "train into a new --out (with --keep-checkpoints to continue it later)")
        raise MalmoiError("E302", f"nothing to resume in {out}: no checkpoints/last")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _finished(out: Path) -> bool:
    try:
        return read_meta(out).get("status") == "done"
    except MalmoiError:
        return False


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


# ---------------------------------------------------------------------------------------- a training call


def process_state():
    """accelerate's view of this process (rank, main or not), set up as the training loop sets it
    up: on a machine without GPUs accelerate needs ``cpu=True`` to honour torchrun's environment,
    and the first call decides for the whole process."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def restart_unfinished(out: str | os.PathLike, task: str, say: Callable[[str], None]) -> bool:
    """Remove a ``task`` run killed before its first checkpoint (it holds only a tokenizer and
    malmoi.json): there is nothing to resume, and left in place it would block both a rerun and
    --resume. Any other folder is left alone."""
    out = Path(out)
    if not (out / META_FILE).is_file() or (out / "checkpoints" / "last").exists():
        return False
    try:
        meta = read_meta(out)
    except MalmoiError:
        return False
    if meta.get("task") != task or meta.get("status") != "training":
        return False
    say(f"{out} never reached a checkpoint; starting it again")
    shutil.rmtree(out)
    return True


@dataclass
class RunStart:
    """How a training call found its run directory (what ``start_run`` yields)."""

    out: Path
    """The run directory."""
    resume: bool
    """Training continues from ``checkpoints/last``."""
    reopen: bool
    """Rebuild the tokenizer and model from the directory: on resume, and on every process but the
    main one, which has written them by the time the others get here."""
    fresh: bool
    """The directory did not exist before this call."""

    @contextmanager
    def building(self) -> Iterator[None]:
        """Remove the directory again if what is built inside fails, so that a rerun is not refused."""
        try:
            yield
        except BaseException:
            if self.fresh and self.out.is_dir() and not any(self.out.iterdir()):
                self.out.rmdir()
            raise


@contextmanager
def start_run(out: str | os.PathLike, task: str, resume: bool, say: Callable[[str], None]) -> Iterator[RunStart]:
    """Create or reopen the run directory of a ``task`` training call. The main process goes first
    (the others wait until it leaves the block): it restarts an unfinished run, refuses to overwrite
    an existing one without ``resume`` and to resume a missing one."""
    state = process_state()
    out = Path(out)
    with state.main_process_first():
        restarted = state.is_main_process and restart_unfinished(out, task, say)
        resumed = resume and (out / "checkpoints" / "last").exists()
        fresh = not out.exists()
        if state.is_main_process:
            prepare_out(out, resume and not restarted)
        yield RunStart(out, resumed, resumed or not state.is_main_process, fresh)
