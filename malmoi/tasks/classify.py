"""The classify task (``malmoi train classify``): a text classifier from a labelled table.

classify
    file → ``read_labelled`` → label ids (sorted label strings) → tokenizer (trained WordPiece,
    or the one given) → ``ClassificationDataset`` → ``fit`` with an ``EncoderClassifier`` →
    run directory (HF model folder + ``head.safetensors`` + tokenizer + ``malmoi.json``).
    N-gram presets (the default) put an ``NgramFeaturizer``, ``NgramDataset`` and
    ``NgramClassifier`` in those places.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

from malmoi.errors import MalmoiError
from malmoi.runs import process_state, read_meta, start_run, write_meta
from malmoi.tasks.common import (LoopOptions, Say, TrainResult, finish_run, recorded_args, seed_everything,
                                 stderr_say, unwrap)

# ---------------------------------------------------------------------------------------- classify


@dataclass(kw_only=True)
class ClassifyOptions(LoopOptions):
    """``malmoi train classify``: a text classifier from a labelled table."""

    data: str | os.PathLike
    """Training file (CSV, TSV or JSONL with a header)."""
    text: str
    """Column holding the text."""
    label: str
    """Column holding the label."""
    out: str | os.PathLike
    """Run directory to create (refused if it exists, unless ``resume``)."""
    valid: str | os.PathLike | None = None
    """Validation file; without it ``valid_split`` of the training data is held out."""
    valid_split: float = 0.1
    """Fraction of the training data held out (per class) when there is no ``valid`` file."""
    preset: str | None = None
    """Model preset trained from scratch; without this and ``pretrained``: ``ngram``, or ``bert-mini``
    when a ``tokenizer`` is given."""
    pretrained: str | os.PathLike | None = None
    """A local Hugging Face encoder folder to fine-tune (its tokenizer comes along)."""
    tokenizer: str | os.PathLike | None = None
    """A tokenizer folder; without it (and without ``pretrained``) WordPiece is trained on the texts."""
    vocab_size: int = 8000
    """Size of the WordPiece vocabulary trained when no tokenizer is given."""
    max_length: int = 128
    """Tokens per text, longer texts are truncated."""
    lr: float | None = None
    """Peak learning rate; by default the preset's choice (n-gram presets), else 5e-4 from scratch and
    5e-5 fine-tuning a ``pretrained`` encoder."""
    dropout: float | None = None
    """Dropout before the head; None follows the encoder's config."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Preset config fields to replace (e.g. a tiny ``hidden_size`` in tests)."""
    compact: bool = True
    """Store an n-gram model compactly once trained: the smallest share of each table's rows, at 4 bits,
    whose validation accuracy is within 0.15 points of the full model's (``models/compact_rows.py``); off
    keeps every row at 32 bits (``malmoi compress`` can still shrink it later)."""

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
        return self.LR_PRETRAINED if self.pretrained else self.LR_SCRATCH

    def __post_init__(self) -> None:
        if self.preset and self.pretrained:
            raise MalmoiError("E228", "give either --preset or --pretrained, not both")
        if not self.pretrained:  # the preset first: its tuned loop settings fill what is left out
            from malmoi.models.presets import get_preset

            default = self.DEFAULT_TRANSFORMER if self.tokenizer is not None else self.DEFAULT_PRESET
            self.preset = self.preset or default
            get_preset(self.preset)
        super().__post_init__()
        if not 0 < self.max_length <= self.MAX_LENGTH_LIMIT:
            raise MalmoiError("E222", f"--max-length must be between 1 and {self.MAX_LENGTH_LIMIT}, got {self.max_length}")
        if self.valid is None and not 0 < self.valid_split < 1:
            raise MalmoiError("E226", f"--valid-split must be a fraction between 0 and 1, got {self.valid_split}")
        from malmoi.text.subword import MIN_VOCAB

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


def read_classify_data(opts: ClassifyOptions, say: Say) -> ClassifyData:
    from malmoi.data.readers import read_labelled
    from malmoi.data.splits import stratified_split

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


def classify_evaluate(model, loader) -> dict[str, float]:
    """Validation loss, accuracy and macro-F1 over a loader of labelled batches."""
    import numpy as np
    import torch

    from malmoi.training.metrics import classification_report

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


COMPACT_BITS = 4
"""Bits per value of the compact model training exports: on NSMC as accurate as 8 (88.75% against
88.76% on 20,000 test reviews with a tenth of each table's rows), in 59% of the bytes."""


def compact_for_export(model, train_set, valid_set, collate, say: Say):
    """(compact model, what malmoi.json records of it) of a trained ``NgramClassifier``: the smallest share
    of rows whose validation accuracy stays within 0.15 points of the full model's (``choose_share``)."""
    from torch.utils.data import DataLoader

    from malmoi.models.compact import stored_bytes
    from malmoi.models.compact_rows import Ranking, choose_share, row_counts, row_scores
    from malmoi.sizes import format_size

    loader = DataLoader(valid_set, batch_size=512, collate_fn=collate)

    def accuracy(m) -> float:
        return classify_evaluate(m, loader)["accuracy"]

    full = accuracy(model)
    ranking = Ranking(row_scores(model, row_counts(model, train_set.encoded)))
    small, share, score = choose_share(model, ranking, COMPACT_BITS, accuracy, full)
    kept = [int(m.kept_ids.numel()) for m in small.members]
    record = {"share": share, "bits": COMPACT_BITS, "kept": kept, "valid_accuracy_full": full,
              "valid_accuracy": score, "bytes": stored_bytes(small, kept, COMPACT_BITS)}
    say(f"compact model: {share:.0%} of each table's rows at {COMPACT_BITS} bits, {format_size(record['bytes'])}; "
        f"validation accuracy {full:.4f} → {record['valid_accuracy']:.4f}")
    return small, record


class ClassifyTask:
    """Text classification with an ``EncoderClassifier``."""

    name = "classify"
    Options = ClassifyOptions

    def build_tokenizer(self, opts: ClassifyOptions, texts: Sequence[str], say: Say):
        from malmoi.models.ngram import featurizer_for_preset, is_ngram_preset
        from malmoi.text.subword import load_tokenizer, train_tokenizer

        if is_ngram_preset(opts.preset):  # n-gram presets read hashed n-grams instead of subword tokens
            return featurizer_for_preset(opts.preset, opts.model_overrides, texts=len(texts))
        if opts.tokenizer is not None:
            return load_tokenizer(opts.tokenizer)
        if opts.pretrained is not None:
            return load_tokenizer(opts.pretrained)
        say(f"training a WordPiece tokenizer ({opts.vocab_size} tokens) on {len(texts)} texts")
        return train_tokenizer(texts, kind="wordpiece", vocab_size=opts.vocab_size)

    def build_model(self, opts: ClassifyOptions, tokenizer, num_labels: int):
        from malmoi.models.classifier import EncoderClassifier
        from malmoi.models.ngram import classifier_for_preset, is_ngram_preset
        from malmoi.models.presets import check_max_length

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
        check_max_length(model.encoder.config, opts.max_length)
        return model

    def _meta(self, opts: ClassifyOptions, data: ClassifyData) -> dict:
        from malmoi.version import __version__

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
        from malmoi.text.ngrams import NgramFeaturizer, is_featurizer_folder
        from malmoi.text.subword import load_tokenizer

        seed_everything(opts.seed)
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
        from malmoi.data.batching import PadCollator
        from malmoi.data.datasets import ClassificationDataset
        from malmoi.models.ngram import NgramDataset
        from malmoi.text.ngrams import NgramFeaturizer
        from malmoi.training.loop import fit

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

        compacted: dict = {}

        def export(model, folder) -> None:
            model = unwrap(model)
            if opts.compact and isinstance(tokenizer, NgramFeaturizer):
                model, compacted["compact"] = compact_for_export(model, train_set, valid_set, collate, say)
            model.save(folder)
            tokenizer.save_pretrained(folder)

        collate = PadCollator(pad_id=tokenizer.pad_token_id or 0)
        result = fit(model, train_set, valid_set, args=opts.train_args(), out=out, collate=collate,
                     evaluate=classify_evaluate, export=export, metric="accuracy", maximize=True,
                     resume=resume, lengths=train_set.lengths)
        if compacted and process_state().is_main_process:
            write_meta(out, {**read_meta(out), **compacted})
        return finish_run(out, result, started, len(train_set), len(valid_set), data.skipped_empty,
                          opts.keep_checkpoints)
