"""One place per task: how its data is read, which Dataset and model it builds, how it is scored
and how a finished run is loaded for use.

A task is a small class with ``name``, ``Options`` (a keyword-only dataclass extending
``LoopOptions``), ``train(options) -> TrainResult`` and ``load(run)``; ``register`` adds it to
``TASKS`` and ``TASK_MODULES`` says which module to import for a task defined elsewhere. ``train(task=..., **options)`` and ``load(run)`` are what ``malmoi.train`` /
``malmoi.load`` and the CLI call, so the command line and Python behave the same.

What every task's ``train`` shares lives here too: ``recorded_args`` (the options in malmoi.json),
``finish_run`` (the result once ``fit`` ends), and for the tasks trained on plain text (lm, mlm)
``read_corpus`` and ``prepare_corpus_run``; ``runs.start_run`` opens the run directory.

classify
    file → ``read_labelled`` → label ids (sorted label strings) → tokenizer (trained WordPiece,
    or the one given) → ``ClassificationDataset`` → ``fit`` with an ``EncoderClassifier`` →
    run directory (HF model folder + ``head.safetensors`` + tokenizer + ``malmoi.json``).
    N-gram presets (the default) put an ``NgramFeaturizer``, ``NgramDataset`` and
    ``NgramClassifier`` in those places.
"""
from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from .errors import MalmoiError
from .runs import process_state
from .training import TrainArgs, parse_duration

Say = Callable[[str], None]


def stderr_say(message: str) -> None:
    """Default log line sink: stderr, so that ``--json`` output on stdout stays clean."""
    print(message, file=sys.stderr, flush=True)


def _silent(message: str) -> None:
    pass


@dataclass(kw_only=True)
class LoopOptions(TrainArgs):
    """The loop's ``TrainArgs`` as task options: ``lr`` may be left to the task, ``time_budget``
    may be a duration (``"10m"``), and ``resume`` continues a run."""

    lr: float | None = None
    """Peak learning rate; None takes the task's ``default_lr()``."""
    time_budget: float | str = 0.0
    """Stop training after this long (``"10m"``, ``"90s"``, seconds); 0 means no limit."""
    resume: bool = False
    """Continue the run in ``out`` from its last checkpoint."""

    def default_lr(self) -> float:
        return TrainArgs.lr

    def __post_init__(self) -> None:
        self.time_budget = parse_duration(self.time_budget or 0)
        if self.lr is None:
            self.lr = self.default_lr()
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


# ---------------------------------------------------------------------------------------- classify


@dataclass(kw_only=True)
class ClassifyOptions(LoopOptions):
    """``malmoi train classify``: a text classifier from a labelled table."""

    data: str | os.PathLike
    """Training file (CSV, TSV, JSONL)."""
    text: str
    """Column holding the text."""
    label: str
    """Column holding the label."""
    out: str | os.PathLike
    """Run directory to create."""
    valid: str | os.PathLike | None = None
    """Validation file; without it ``valid_split`` of the training data is held out."""
    valid_split: float = 0.1
    """Fraction of the training data held out (per class) when there is no ``valid`` file."""
    preset: str | None = None
    """Model preset trained from scratch; without this and ``pretrained``: ``ngram``, or ``bert-mini``
    when a ``tokenizer`` is given."""
    batch_size: int | None = None
    """Examples per batch; None takes the preset's choice (``TrainArgs``' 32 for transformers)."""
    epochs: int | None = None
    """Passes over the training data; None takes the preset's choice (``TrainArgs``' 3 for transformers)."""
    pretrained: str | os.PathLike | None = None
    """A local Hugging Face encoder folder to fine-tune (its tokenizer comes along)."""
    tokenizer: str | os.PathLike | None = None
    """A tokenizer folder; without it (and without ``pretrained``) WordPiece is trained on the texts."""
    vocab_size: int = 8000
    """Size of the WordPiece vocabulary trained when no tokenizer is given."""
    max_length: int = 128
    """Tokens per text, longer texts are truncated."""
    dropout: float | None = None
    """Dropout before the head; None follows the encoder's config."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Preset config fields to replace (e.g. a tiny ``hidden_size`` in tests)."""

    DEFAULT_PRESET: ClassVar[str] = "ngram"
    """The most accurate family within a CPU budget (88.3% on NSMC in 10 minutes, bert-mini 84.8%)."""
    DEFAULT_TRANSFORMER: ClassVar[str] = "bert-mini"
    """The default when a ``tokenizer`` is given: n-gram presets read no subword tokens."""
    MAX_LENGTH_LIMIT: ClassVar[int] = 8192
    LR_SCRATCH: ClassVar[float] = 5e-4
    """Small encoders trained from random weights want a large step."""
    LR_PRETRAINED: ClassVar[float] = 5e-5
    """Fine-tuning a pretrained encoder wants the usual small one."""

    def default_lr(self) -> float:
        if self.pretrained:
            return self.LR_PRETRAINED
        return self._preset_training().get("lr", self.LR_SCRATCH)

    def _default_preset(self) -> str:
        return self.DEFAULT_TRANSFORMER if self.tokenizer is not None else self.DEFAULT_PRESET

    def _preset_training(self) -> dict:
        """Loop settings the preset was tuned with (n-gram presets); unknown presets fail later, clearly."""
        from .models.presets import PRESETS, preset_training

        name = self.preset or (None if self.pretrained else self._default_preset())
        return preset_training(name) if name in PRESETS else {}

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs"):
            if getattr(self, name) is None:
                setattr(self, name, self._preset_training().get(name, getattr(TrainArgs, name)))
        super().__post_init__()
        if self.preset and self.pretrained:
            raise MalmoiError("E228", "give either --preset or --pretrained, not both")
        if not self.pretrained:
            self.preset = self.preset or self._default_preset()
            from .models.presets import get_preset

            get_preset(self.preset)
        if not 0 < self.max_length <= self.MAX_LENGTH_LIMIT:
            raise MalmoiError("E222", f"--max-length must be between 1 and {self.MAX_LENGTH_LIMIT}, got {self.max_length}")
        if self.valid is None and not 0 < self.valid_split < 1:
            raise MalmoiError("E226", f"--valid-split must be a fraction between 0 and 1, got {self.valid_split}")
        from .text.subword import MIN_VOCAB

        if self.vocab_size < MIN_VOCAB:
            raise MalmoiError("E211", f"--vocab-size must be at least {MIN_VOCAB}, got {self.vocab_size}")
        if self.pretrained is not None and not (Path(self.pretrained) / "config.json").is_file():
            raise MalmoiError("E401", f"--pretrained {self.pretrained} is not a Hugging Face model folder (no config.json)")


@dataclass
class ClassifyData:
    """Texts with label ids, split into training and validation."""

    labels: list[str]
    """Label names; a label's id is its index (sorted strings)."""
    train_texts: list[str]
    """Texts to train on."""
    train_ids: list[int]
    """Their label ids."""
    valid_texts: list[str]
    """Held-out texts (the --valid file or the split)."""
    valid_ids: list[int]
    """Their label ids."""
    skipped_empty: int
    """Empty texts dropped from both files."""


def stratified_split(ids: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, valid) positions: ``fraction`` of each class held out, at least one example of each
    class kept for training, so a rare class never vanishes from either side when it can be avoided."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for pos, y in enumerate(ids):
        by_class.setdefault(y, []).append(pos)
    train, valid = [], []
    for y in sorted(by_class):
        positions = by_class[y]
        rng.shuffle(positions)
        n_valid = min(max(round(len(positions) * fraction), 1), len(positions) - 1)
        valid += positions[:n_valid]
        train += positions[n_valid:]
    return sorted(train), sorted(valid)


def read_classify_data(opts: ClassifyOptions, say: Say) -> ClassifyData:
    from .data.readers import read_labelled

    train = read_labelled(opts.data, opts.text, opts.label)
    labels = sorted(set(train.labels))
    if len(labels) < 2:
        raise MalmoiError("E110", f"{opts.data}: column {opts.label!r} has a single class ({labels[0]!r}); "
                                  "a classifier needs at least two")
    index = {lab: i for i, lab in enumerate(labels)}
    ids = [index[y] for y in train.labels]
    skipped = train.skipped_empty
    if skipped:
        say(f"skipped {skipped} empty {opts.text!r} rows in {opts.data}")
    if opts.valid is not None:
        valid = read_labelled(opts.valid, opts.text, opts.label, allowed=labels)
        if valid.skipped_empty:
            say(f"skipped {valid.skipped_empty} empty {opts.text!r} rows in {opts.valid}")
        return ClassifyData(labels, train.texts, ids, valid.texts, [index[y] for y in valid.labels],
                            skipped + valid.skipped_empty)
    if len(ids) < 2 * len(labels):
        raise MalmoiError("E111", f"{opts.data}: {len(ids)} rows are too few to hold out a validation split; "
                                  "add rows or pass --valid FILE")
    tr, va = stratified_split(ids, opts.valid_split, opts.seed)
    return ClassifyData(labels, [train.texts[i] for i in tr], [ids[i] for i in tr],
                        [train.texts[i] for i in va], [ids[i] for i in va], skipped)


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
               skipped_empty: int = 0) -> TrainResult:
    """What a task's ``train`` returns once ``fit`` (its result is ``fitted``) has ended; the main
    process also records it in malmoi.json. The metrics are those of the exported model."""
    from .runs import read_meta, write_meta

    metrics = best_eval_metrics(out, fitted.best_step) or dict(fitted.metrics)
    if process_state().is_main_process:
        meta = read_meta(out)
        meta.update(status="done", result=metrics, stopped_by=fitted.stopped_by, steps=fitted.steps,
                    epochs_done=fitted.epochs, samples_per_s=round(fitted.samples_per_s, 2))
        write_meta(out, meta)
    return TrainResult(out, metrics, train_examples, valid_examples, skipped_empty, time.monotonic() - started,
                       fitted.stopped_by, fitted.steps, fitted.samples_per_s)


def unwrap(model):
    """The plain module under DDP / compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model


def classify_evaluate(model, loader) -> dict[str, float]:
    """Validation loss, accuracy and macro-F1 over a loader of labelled batches."""
    import numpy as np
    import torch

    from .metrics import classification_report

    was_training = model.training
    model.eval()
    total_loss, count, gold, pred = 0.0, 0, [], []
    device = next(model.parameters()).device
    with torch.inference_mode():
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(**batch)
            n = batch["labels"].shape[0]
            total_loss += float(out.loss) * n
            count += n
            gold.append(batch["labels"].cpu().numpy())
            pred.append(out.logits.argmax(-1).cpu().numpy())
    model.train(was_training)
    if not count:
        return {"loss": float("nan"), "accuracy": 0.0, "macro_f1": 0.0}
    num_labels = unwrap(model).num_labels
    report = classification_report(np.concatenate(gold), np.concatenate(pred), [str(i) for i in range(num_labels)])
    return {"loss": total_loss / count, "accuracy": report.accuracy, "macro_f1": report.macro_f1}


class ClassifyTask:
    """Text classification with an ``EncoderClassifier``."""

    name = "classify"
    Options = ClassifyOptions

    def build_tokenizer(self, opts: ClassifyOptions, texts: Sequence[str], say: Say):
        from .models.ngram import featurizer_for_preset, is_ngram_preset
        from .text.subword import load_tokenizer, train_tokenizer

        if is_ngram_preset(opts.preset):  # n-gram presets read hashed n-grams instead of subword tokens
            return featurizer_for_preset(opts.preset, opts.model_overrides, texts=len(texts))
        if opts.tokenizer is not None:
            return load_tokenizer(opts.tokenizer)
        if opts.pretrained is not None:
            return load_tokenizer(opts.pretrained)
        say(f"training a WordPiece tokenizer ({opts.vocab_size} tokens) on {len(texts)} texts")
        return train_tokenizer(texts, kind="wordpiece", vocab_size=opts.vocab_size)

    def build_model(self, opts: ClassifyOptions, tokenizer, num_labels: int):
        from .models.classifier import EncoderClassifier
        from .models.ngram import classifier_for_preset, is_ngram_preset
        from .models.presets import max_positions

        if is_ngram_preset(opts.preset):
            return classifier_for_preset(opts.preset, tokenizer, num_labels, opts.dropout, opts.model_overrides)
        if opts.pretrained is not None:
            model = EncoderClassifier.from_pretrained_encoder(opts.pretrained, num_labels, opts.dropout)
            if model.encoder.config.vocab_size < len(tokenizer):
                raise MalmoiError("E408", f"the tokenizer has {len(tokenizer)} tokens but {opts.pretrained} "
                                          f"embeds only {model.encoder.config.vocab_size}")
        else:
            model = EncoderClassifier.from_preset(opts.preset, num_labels, vocab_size=len(tokenizer),
                                                  pad_token_id=tokenizer.pad_token_id or 0,
                                                  dropout=opts.dropout, **opts.model_overrides)
        limit = max_positions(model.encoder.config)
        if opts.max_length > limit:
            raise MalmoiError("E222", f"--max-length {opts.max_length} exceeds the model's {limit} positions")
        return model

    def _meta(self, opts: ClassifyOptions, data: ClassifyData) -> dict:
        from . import __version__

        return {
            "task": self.name,
            "malmoi_version": __version__,
            "labels": data.labels,
            "columns": {"text": opts.text, "label": opts.label},
            "preset": opts.preset,
            "pretrained": str(opts.pretrained) if opts.pretrained else None,
            "max_length": opts.max_length,
            "args": recorded_args(opts),
            "data": {"train": str(opts.data), "valid": str(opts.valid) if opts.valid else None,
                     "train_examples": len(data.train_texts), "valid_examples": len(data.valid_texts),
                     "skipped_empty": data.skipped_empty},
            "status": "training",
        }

    def _resumed_options(self, opts: ClassifyOptions, out: Path, data: ClassifyData) -> ClassifyOptions:
        """On resume the model is rebuilt as the run recorded it, whatever the new command says."""
        from dataclasses import replace

        from .runs import read_meta

        meta = read_meta(out)
        if meta.get("labels") != data.labels:
            raise MalmoiError("E305", f"{out} was trained on labels {meta.get('labels')}, "
                                      f"the data now has {data.labels}; use a new --out")
        saved = meta.get("args", {})
        keep = {k: saved[k] for k in ("preset", "pretrained", "model_overrides", "dropout") if k in saved}
        return replace(opts, **keep)

    def _prepare_run(self, opts: ClassifyOptions, data: ClassifyData, say: Say):
        """(out, tokenizer, model, resume): create or reopen the run directory; only the main process
        writes, and only once the tokenizer and the model are known to build."""
        from .runs import start_run, write_meta
        from .text.ngrams import NgramFeaturizer, is_featurizer_folder
        from .text.subword import load_tokenizer

        with start_run(opts.out, self.name, opts.resume, say) as run:
            out = run.out
            if run.reopen:
                opts = self._resumed_options(opts, out, data) if run.resume else opts
                tokenizer = NgramFeaturizer.from_pretrained(out) if is_featurizer_folder(out) else load_tokenizer(out)
                return out, tokenizer, self.build_model(opts, tokenizer, len(data.labels)), run.resume
            with run.building():
                tokenizer = self.build_tokenizer(opts, data.train_texts, say)
                model = self.build_model(opts, tokenizer, len(data.labels))
            tokenizer.save_pretrained(out)
            write_meta(out, self._meta(opts, data))
            return out, tokenizer, model, False

    def train(self, opts: ClassifyOptions, say: Say = stderr_say) -> TrainResult:
        from .data.batching import PadCollator
        from .data.datasets import ClassificationDataset
        from .models.ngram import NgramDataset
        from .text.ngrams import NgramFeaturizer
        from .training import fit

        started = time.monotonic()
        data = read_classify_data(opts, say)
        out, tokenizer, model, resume = self._prepare_run(opts, data, say)
        if isinstance(tokenizer, NgramFeaturizer):  # n-gram presets: hashed n-gram rows, featurized once
            train_set = NgramDataset(tokenizer, data.train_texts, data.train_ids)
            valid_set = NgramDataset(tokenizer, data.valid_texts, data.valid_ids)
            say(f"featurized {len(train_set) + len(valid_set)} texts into n-grams in "
                f"{train_set.seconds + valid_set.seconds:.1f} s (Kiwi morphemes "
                f"{train_set.encoded.morpheme_seconds + valid_set.encoded.morpheme_seconds:.1f} s)")
            if not resume and model.fit_ratios(train_set.encoded, train_set.labels):
                say(f"counted the naive Bayes ratios of {len(train_set)} texts' n-grams")  # resumed: in the weights
        else:
            train_set = ClassificationDataset(data.train_texts, data.train_ids, tokenizer, max_length=opts.max_length)
            valid_set = ClassificationDataset(data.valid_texts, data.valid_ids, tokenizer, max_length=opts.max_length)
        say(f"{len(train_set)} training and {len(valid_set)} validation examples, "
            f"{len(data.labels)} classes: {', '.join(data.labels)}")

        def export(model, folder) -> None:
            unwrap(model).save(folder)
            tokenizer.save_pretrained(folder)

        collate = PadCollator(pad_id=tokenizer.pad_token_id or 0)
        result = fit(model, train_set, valid_set, collate, opts.train_args(), out,
                     evaluate=classify_evaluate, export=export, metric="accuracy", maximize=True,
                     resume=resume, lengths=train_set.lengths)
        return finish_run(out, result, started, len(train_set), len(valid_set), data.skipped_empty)

    def load(self, run: str | os.PathLike):
        from .inference import TextClassifier

        return TextClassifier.from_run(run)


# ---------------------------------------------------------------------------------------- plain-text corpora


def split_texts(texts: Sequence[str], fraction: float, max_valid: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, valid): a seeded random ``fraction`` of the texts (at least 1, at most ``max_valid``)
    held out, both sides in their original order."""
    if len(texts) < 2:
        raise MalmoiError("E112", f"{len(texts)} document is too few to hold out a validation split; add lines")
    n_valid = min(max(1, round(len(texts) * fraction)), max_valid, len(texts) - 1)
    held = set(random.Random(seed).sample(range(len(texts)), n_valid))
    return [t for i, t in enumerate(texts) if i not in held], [t for i, t in enumerate(texts) if i in held]


def read_corpus(opts) -> tuple[list[str], list[str]]:
    """(train, valid) documents of a task trained on plain text (lm, mlm): the lines of
    ``opts.data``, or its ``opts.column``, split by ``split_texts``."""
    from .data.readers import read_texts

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
    from .runs import start_run, write_meta
    from .text.subword import load_tokenizer

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


# ---------------------------------------------------------------------------------------- registry

TASKS: dict[str, Any] = {}
"""Registered task objects by name."""
TASK_MODULES: dict[str, str] = {"seq2seq": "malmoi.seq2seq", "lm": "malmoi.lm", "mlm": "malmoi.pretraining"}
"""Where the other tasks live; each module calls ``register`` when imported, and ``get_task`` imports
it on first use, so ``malmoi.load(run)`` works for any run without importing every task up front."""


def register(task) -> None:
    """Add a task object (``name``, ``Options``, ``train``, ``load``) to the registry."""
    TASKS[task.name] = task


register(ClassifyTask())


def get_task(name: str):
    if name not in TASKS and name in TASK_MODULES:
        from importlib import import_module

        import_module(TASK_MODULES[name])
    try:
        return TASKS[name]
    except KeyError:
        known = sorted(set(TASKS) | set(TASK_MODULES))
        raise MalmoiError("E230", f"unknown task {name!r}; choose one of: {', '.join(known)}") from None


def train(task: str = "classify", say: Say = stderr_say, **options) -> TrainResult:
    """Train ``task`` with keyword ``options`` (the fields of its ``Options``), as the CLI does."""
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, one log
        say = _silent
    t = get_task(task)
    try:
        opts = t.Options(**options)
    except TypeError as e:  # unknown or missing keyword: one line, like the CLI
        raise MalmoiError("E231", f"train(task={task!r}): {e}") from None
    return t.train(opts, say)


def load(run: str | os.PathLike):
    """The trained model of a run directory, ready for use (``.predict`` …), whatever its task."""
    from .runs import read_meta

    return get_task(read_meta(run).get("task", "")).load(run)
from . import seq2seq  # noqa: E402,F401  (registers the seq2seq task)
from . import lm  # noqa: E402,F401  (registers the lm task)
