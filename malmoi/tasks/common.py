"""What every task's training call shares: the loop options every task extends (``LoopOptions``),
the result (``TrainResult``), the options as malmoi.json records them, the closing of a run
(``finish_run``), and for the tasks trained on plain text (lm, mlm) reading the corpus and opening
the run (``read_corpus``, ``prepare_corpus_run``). ``runs.start_run`` opens every run directory.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

from malmoi.errors import MalmoiError
from malmoi.runs import process_state, read_meta, start_run, write_meta
from malmoi.training.args import TrainArgs, parse_duration

Say = Callable[[str], None]


def stderr_say(message: str) -> None:
    """Default log line sink: stderr, so that ``--json`` output on stdout stays clean."""
    print(message, file=sys.stderr, flush=True)


UNTIL_BUDGET = 1_000_000
"""The epoch count of a run that only a time budget stops."""


@dataclass(kw_only=True)
class LoopOptions(TrainArgs):
    """The loop's ``TrainArgs`` as task options: ``epochs``, ``batch_size`` and ``lr`` may be left to
    the preset (``tuned()``) and the task, ``time_budget`` may be a duration (``"10m"``), and
    ``resume`` continues a run."""

    epochs: int | None = None
    """Passes over the training data; by default the preset's choice (else 3), or with a ``time_budget``
    as many as it allows."""
    batch_size: int | None = None
    """Examples per batch; by default the preset's choice (else 32)."""
    lr: float | None = None
    """Peak learning rate; by default the preset's choice, else the task's default (``default_lr()``)."""
    time_budget: float | str = 0.0
    """Stop training after this long (``"90s"``, ``"10m"``, ``"1h"`` or seconds); 0 means no limit."""
    resume: bool = False
    """Continue the run in ``out`` from its last checkpoint."""
    keep_checkpoints: bool = False
    """Keep ``checkpoints/`` (the optimizer state: about 3× the model) once training ends, to
    --resume the finished run for more epochs later; by default a finished run holds its model once."""

    def tuned(self) -> dict:
        """Settings the chosen preset was tuned with (``lr``, ``batch_size``, ``epochs`` …)."""
        from malmoi.models.presets import PRESETS, preset_training

        preset = getattr(self, "preset", None)
        return preset_training(preset) if preset in PRESETS else {}

    def default_lr(self) -> float:
        """The step when neither the caller nor the preset chooses one."""
        return TrainArgs.lr

    def __post_init__(self) -> None:
        self.time_budget = parse_duration(self.time_budget or 0)
        tuned = self.tuned()
        if self.epochs is None:  # a time budget alone decides when training ends
            self.epochs = UNTIL_BUDGET if self.time_budget else tuned.get("epochs", TrainArgs.epochs)
        if self.batch_size is None:
            self.batch_size = tuned.get("batch_size", TrainArgs.batch_size)
        if self.lr is None:
            self.lr = tuned.get("lr", self.default_lr())
        super().__post_init__()

    def train_args(self) -> TrainArgs:
        """The plain loop arguments (what checkpoints and metrics.jsonl record)."""
        return TrainArgs(**{f.name: getattr(self, f.name) for f in fields(TrainArgs)})


@dataclass
class TrainResult:
    """What a finished (or time-limited) training run reports."""

    run: Path
    """The run directory."""
    metrics: dict[str, float]
    """Validation metrics of the exported (best) model."""
    train_examples: int
    """Examples trained on (after skipping empty ones and splitting off validation)."""
    valid_examples: int
    """Examples scored for validation."""
    skipped_empty: int
    """Rows dropped because their text was empty (training and validation files)."""
    seconds: float
    """Wall time of the whole call."""
    stopped_by: str = "epochs"
    """Why training ended: "epochs", "max_steps", "time" or "early_stopping"."""
    steps: int = 0
    """Optimizer steps taken (including those before a resume)."""
    samples_per_s: float = 0.0
    """Training throughput of this call, evaluation excluded."""

    def to_dict(self) -> dict:
        return {**asdict(self), "run": str(self.run)}


def recorded_args(opts) -> dict:
    """A task's options as malmoi.json records them (paths as strings, so the file is JSON)."""
    return {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in asdict(opts).items()}


def best_eval_metrics(out: Path, best_step: int | None) -> dict[str, float]:
    """The metrics of the evaluation that chose the exported model, from metrics.jsonl."""
    path = Path(out) / "metrics.jsonl"
    if best_step is None or not path.is_file():
        return {}
    found: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("event") == "eval" and record.get("step") == best_step:
            found = {k: v for k, v in record.items() if k not in ("event", "step", "epoch", "best", "elapsed")}
    return found


def finish_run(out: Path, fitted, started: float, train_examples: int, valid_examples: int,
               skipped_empty: int = 0, keep_checkpoints: bool = False) -> TrainResult:
    """What a task's ``train`` returns once ``fit`` (its result is ``fitted``) has ended; the main
    process also records it in malmoi.json, then removes ``checkpoints/`` unless ``keep_checkpoints``
    (the exported model is the run's one copy). The metrics are those of the exported model."""
    metrics = best_eval_metrics(out, fitted.best_step) or dict(fitted.metrics)
    if process_state().is_main_process:
        meta = read_meta(out)
        meta.update(status="done", result=metrics, stopped_by=fitted.stopped_by, steps=fitted.steps,
                    epochs_done=fitted.epochs, samples_per_s=round(fitted.samples_per_s, 2),
                    checkpoints_kept=keep_checkpoints)
        write_meta(out, meta)  # "done" first: a run killed while pruning is finished, not resumable
        if not keep_checkpoints:
            shutil.rmtree(Path(out) / "checkpoints", ignore_errors=True)
    return TrainResult(out, metrics, train_examples, valid_examples, skipped_empty, time.monotonic() - started,
                       fitted.stopped_by, fitted.steps, fitted.samples_per_s)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch before anything random happens in a training call (model
    initialisation above all), so that the same seed gives the same weights in any process."""
    from malmoi.training.rng import seed_all

    seed_all(seed)


def unwrap(model):
    """The plain module under DDP / compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model


def read_corpus(opts) -> tuple[list[str], list[str]]:
    """(train, valid) documents of a task trained on plain text (lm, mlm): the lines of
    ``opts.data``, or its ``opts.column``, split by ``split_texts``; with ``opts.source`` (a chat
    language model) the documents are (question, answer) pairs."""
    from malmoi.data.readers import read_pairs, read_texts
    from malmoi.data.splits import split_texts

    if getattr(opts, "source", None) is not None:
        sources, targets, _ = read_pairs(opts.data, opts.source, opts.target)
        return split_texts(list(zip(sources, targets)), opts.valid_split, opts.max_valid, opts.seed)
    texts = read_texts(opts.data, opts.column)
    if not texts:
        raise MalmoiError("E102", f"{opts.data}: column {opts.column!r} holds no non-empty text")
    return split_texts(texts, opts.valid_split, opts.max_valid, opts.seed)


def prepare_corpus_run(task, opts, say: Say):
    """(opts, out, (train, valid), tokenizer, model, resume) of a task trained on plain text. ``task``
    gives ``build_tokenizer(opts, texts, say)``, ``build_model(opts, tokenizer)``,
    ``resumed_options(opts, out)`` (what a resumed run takes from its malmoi.json) and
    ``meta(opts, train, valid, model)``. The run directory is written only once the data reads
    and the tokenizer and the model build."""
    from malmoi.text.subword import load_tokenizer

    seed_everything(opts.seed)
    with start_run(opts.out, task.name, opts.resume, say) as run:
        if run.reopen:
            opts = task.resumed_options(opts, run.out) if run.resume else opts
            tokenizer = load_tokenizer(run.out)
            return opts, run.out, read_corpus(opts), tokenizer, task.build_model(opts, tokenizer), run.resume
        with run.building():
            texts = read_corpus(opts)
            tokenizer = task.build_tokenizer(opts, texts[0], say)
            model = task.build_model(opts, tokenizer)
        tokenizer.save_pretrained(run.out)
        write_meta(run.out, task.meta(opts, *texts, model))
        return opts, run.out, texts, tokenizer, model, False
