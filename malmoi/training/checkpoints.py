"""Checkpoint folders (``checkpoints/last``, ``checkpoints/best``): weights in safetensors, the
optimizer and scheduler state, and ``state.json`` (loop position, generators, arguments). Each
folder is written to a temporary sibling and renamed into place, so it is always complete."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from malmoi.errors import MalmoiError
from malmoi.files import atomic_dir

MODEL_FILE = "model.safetensors"


def save_checkpoint(folder: Path, model: nn.Module, state: dict, optimizer=None, scheduler=None) -> None:
    """Write one checkpoint folder atomically: weights, optionally optimizer + scheduler, state.json."""
    from safetensors.torch import save_model

    with atomic_dir(folder) as tmp:
        save_model(model, str(tmp / MODEL_FILE))  # drops duplicates of tied weights
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")


def load_weights(folder: str | os.PathLike, model: nn.Module) -> None:
    """Load ``model.safetensors`` of a checkpoint folder into ``model`` (tied weights re-tied)."""
    from safetensors.torch import load_model

    path = Path(folder) / MODEL_FILE
    if not path.is_file():
        raise MalmoiError("E310", f"{folder} holds no {MODEL_FILE}")
    load_model(model, str(path), device=str(next(model.parameters()).device))


def read_checkpoint_state(folder: str | os.PathLike) -> dict:
    path = Path(folder) / "state.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise MalmoiError("E310", f"checkpoint {folder} is unreadable: {e}") from None
