"""The training loop's arguments. Imports no torch, so that the command line and the option
dataclasses built on ``TrainArgs`` load instantly."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from malmoi.errors import MalmoiError


@dataclass
class TrainArgs:
    """Options of the training loop (the CLI's ``--epochs``, ``--batch-size`` … map onto these)."""

    epochs: int = 3
    """Passes over the training data (ignored when ``max_steps`` is set)."""
    batch_size: int = 32
    """Examples per batch on each process (per micro-batch with ``grad_accum``)."""
    lr: float = 5e-4
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.01
    """AdamW weight decay; never applied to biases and normalisation weights."""
    warmup: float = 0.06
    """Fraction of the optimizer steps spent warming the learning rate up linearly."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = off)."""
    grad_accum: int = 1
    """Micro-batches whose gradients are summed into one optimizer step."""
    bf16: bool = False
    """Autocast the forward pass to bfloat16."""
    eval_every: int = 0
    """Evaluate and checkpoint every this many optimizer steps (0 = at the end of each epoch)."""
    patience: int = 0
    """Stop after this many evaluations without improvement (0 = never)."""
    time_budget: float = 0.0
    """Seconds of wall time for this invocation of fit; stop cleanly, evaluate and save (0 = none)."""
    seed: int = 42
    """Seeds the weights, the data order, dropout, masking and validation splits; the same seed gives the same run."""
    log_every: int = 50
    """Log the training loss every this many optimizer steps."""
    max_steps: int = 0
    """Train exactly this many optimizer steps, however many epochs that takes (0 = use epochs)."""
    eval_batch_size: int = 0
    """Batch size for evaluation (0 = batch_size)."""
    decay_to_budget: bool = True
    """With a time budget, fit the learning-rate decay to the steps the budget allows (estimated as it runs)."""
    eval_share: float = 0.1
    """With a time budget and evaluation at the end of each epoch, skip an epoch's evaluation while
    evaluations have taken more than this share of the time so far (0 = evaluate every epoch): on a
    small data set, decoding the validation split each epoch would otherwise eat half the budget."""
    num_threads: int = 0
    """Torch CPU threads per process (0 = leave as is; under torchrun: cores / local processes)."""
    num_workers: int = 0
    """DataLoader worker processes (0 = load in the training process, which keeps resume exact)."""
    progress: bool = True
    """Show a progress bar (on a terminal) or log lines (otherwise) on stderr."""

    def __post_init__(self) -> None:
        positive = {"batch_size": self.batch_size, "lr": self.lr, "grad_accum": self.grad_accum,
                    "log_every": self.log_every}
        for name, value in positive.items():
            if not value > 0:
                raise MalmoiError("E201", f"{name} must be positive, got {value}")
        if self.batch_size > 65536 or self.eval_batch_size > 65536:
            raise MalmoiError("E201", f"batch size {max(self.batch_size, self.eval_batch_size)} is absurd (max 65536)")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise MalmoiError("E201", f"epochs must be positive, got {self.epochs}")
        if not 0 <= self.eval_share < 1:
            raise MalmoiError("E201", f"eval_share is a fraction of the time in [0, 1), got {self.eval_share}")
        if not 0 <= self.warmup < 1:
            raise MalmoiError("E201", f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        nonnegative = {"weight_decay": self.weight_decay, "grad_clip": self.grad_clip,
                       "eval_every": self.eval_every, "patience": self.patience,
                       "time_budget": self.time_budget, "max_steps": self.max_steps,
                       "eval_batch_size": self.eval_batch_size, "num_threads": self.num_threads,
                       "num_workers": self.num_workers}
        for name, value in nonnegative.items():
            if value < 0 or (isinstance(value, float) and math.isnan(value)):
                raise MalmoiError("E201", f"{name} must be ≥ 0, got {value}")
        if self.lr > 10:
            raise MalmoiError("E201", f"learning rate {self.lr} is absurd")


def parse_duration(text: str | float | int) -> float:
    """Seconds from ``90``, ``"90s"``, ``"10m"``, ``"1.5h"`` or ``"1h30m"``."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        s = text.strip().lower()
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms]?)", s)
        if not s or not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([hms]?)", "", s).strip():
            raise MalmoiError("E203", f"cannot read the duration {text!r}; use e.g. 90s, 10m, 1.5h")
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1, "": 1}[u] for n, u in parts)
    if seconds < 0:
        raise MalmoiError("E201", f"a duration cannot be negative: {text!r}")
    return seconds
