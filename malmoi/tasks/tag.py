"""The tag task (``malmoi train tag``): a named-entity tagger from tagged sentences.

tag
    file → ``read_tagged`` (KLUE / CoNLL / JSONL, BIO or BIOES) → character tags → a character
    featurizer and ``CharTagDataset`` (preset ``bilstm-crf``, the default) or a tokenizer and
    ``TokenTagDataset`` (a BERT preset or ``--pretrained DIR``) → ``fit`` with a ``CharTagger`` or an
    ``EncoderTagger``, the checkpoint kept by validation entity F1 → run directory.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from malmoi.errors import MalmoiError
from malmoi.runs import read_meta, start_run, write_meta
from malmoi.tasks.common import LoopOptions, Say, TrainResult, finish_run, recorded_args, seed_everything, stderr_say


@dataclass(kw_only=True)
class TagOptions(LoopOptions):
    """``malmoi train tag``: a named-entity tagger from tagged sentences."""

    data: str | os.PathLike
    """Training file: KLUE's character format, CoNLL (token and tag per line) or JSONL (tokens, tags)."""
    out: str | os.PathLike
    """Run directory to create (refused if it exists, unless ``resume``)."""
    format: str = "auto"
    """File format: klue, conll, jsonl, or auto (by extension, or KLUE when the file opens with ``##``)."""
    valid: str | os.PathLike | None = None
    """Validation file (same format); without it ``valid_split`` of the sentences is held out."""
    valid_split: float = 0.1
    """Fraction of the sentences held out when there is no ``valid`` file."""
    preset: str | None = None
    """Model preset trained from scratch; without this and ``pretrained``: ``bilstm-crf``."""
    pretrained: str | os.PathLike | None = None
    """A local Hugging Face encoder folder to fine-tune (its tokenizer comes along)."""
    tokenizer: str | os.PathLike | None = None
    """A tokenizer folder for a BERT preset; without it WordPiece is trained on the sentences."""
    vocab_size: int = 8000
    """Size of the WordPiece vocabulary trained for a BERT preset when no tokenizer is given."""
    max_length: int = 256
    """Characters (``bilstm-crf``) or tokens (encoders) per sentence; longer ones are cut for training."""
    dropout: float | None = None
    """Dropout before an encoder's head; None follows the encoder's config."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Preset config fields to replace (e.g. a tiny ``hidden`` in tests)."""

    DEFAULT_PRESET: ClassVar[str] = "bilstm-crf"
    MAX_LENGTH_LIMIT: ClassVar[int] = 4096
    LR_PRETRAINED: ClassVar[float] = 5e-5

    def default_lr(self) -> float:
        return self.LR_PRETRAINED if self.pretrained else 5e-4

    def __post_init__(self) -> None:
        from malmoi.data.tagging import FORMATS
        from malmoi.models.presets import get_preset

        if self.preset and self.pretrained:
            raise MalmoiError("E228", "give either --preset or --pretrained, not both")
        if not self.pretrained:
            self.preset = self.preset or self.DEFAULT_PRESET
            get_preset(self.preset, "tag")
        super().__post_init__()
        if self.format not in FORMATS:
            raise MalmoiError("E234", f"unknown tagging format {self.format!r}; choose one of: {', '.join(FORMATS)}")
        if not 0 < self.max_length <= self.MAX_LENGTH_LIMIT:
            raise MalmoiError("E222", f"--max-length must be between 1 and {self.MAX_LENGTH_LIMIT}, "
                                      f"got {self.max_length}")
        if self.valid is None and not 0 < self.valid_split < 1:
            raise MalmoiError("E226", f"--valid-split must be a fraction between 0 and 1, got {self.valid_split}")
        if self.pretrained is not None and not (Path(self.pretrained) / "config.json").is_file():
            raise MalmoiError("E401", f"--pretrained {self.pretrained} is not a Hugging Face model folder "
                                      "(no config.json)")

    @property
    def char_model(self) -> bool:
        from malmoi.models.presets import get_preset

        return not self.pretrained and get_preset(self.preset).model_type == "bilstm-crf"


@dataclass
class TagData:
    """Training and validation sentences with their character tags."""

    scheme: str
    labels: list[str]
    train: list
    valid: list


def read_tag_data(opts: TagOptions) -> TagData:
    from malmoi.data.splits import random_split
    from malmoi.data.tagging import label_set, read_tagged

    corpus = read_tagged(opts.data, opts.format)
    if not corpus.types:
        raise MalmoiError("E124", f"{opts.data}: no sentence holds an entity; a tagger needs tagged entities")
    if opts.valid is not None:
        valid = read_tagged(opts.valid, opts.format)
        unknown = sorted(set(valid.types) - set(corpus.types))
        if unknown:
            raise MalmoiError("E105", f"{opts.valid}: entity types {unknown} are not in the training data")
        return TagData(corpus.scheme, label_set(corpus.types, corpus.scheme), corpus.sentences, valid.sentences)
    if len(corpus.sentences) < 2:
        raise MalmoiError("E111", f"{opts.data}: {len(corpus.sentences)} sentence is too few to hold out a "
                                  "validation split; add sentences or pass --valid FILE")
    train, valid = random_split(len(corpus.sentences), opts.valid_split, opts.seed)
    return TagData(corpus.scheme, label_set(corpus.types, corpus.scheme),
                   [corpus.sentences[i] for i in train], [corpus.sentences[i] for i in valid])


def tag_evaluate(model, loader) -> dict[str, float]:
    """Validation loss and entity precision/recall/F1 over the units of a loader's labelled batches
    (characters for ``CharTagger``, tokens for ``EncoderTagger``)."""
    from malmoi.data.tagging import entities
    from malmoi.tasks.common import unwrap

    tagger = unwrap(model)
    labels = tagger.labels
    total_loss, count, gold, pred = 0.0, 0, set(), set()
    device = next(model.parameters()).device
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**batch)
        paths = tagger.best_paths(out.logits, batch["attention_mask"])
        total_loss += float(out.loss) * batch["labels"].shape[0]
        for row, path in zip(batch["labels"].tolist(), paths):
            keep = [i for i, y in enumerate(row) if y >= 0]
            gold |= {(count, e) for e in entities([labels[row[i]] for i in keep])}
            pred |= {(count, e) for e in entities([labels[path[i]] for i in keep])}
            count += 1
    correct = len(gold & pred)
    p = correct / len(pred) if pred else 0.0
    r = correct / len(gold) if gold else 0.0
    return {"loss": total_loss / max(count, 1), "entity_precision": p, "entity_recall": r,
            "entity_f1": 2 * p * r / (p + r) if p + r else 0.0}


class TagTask:
    """Named-entity tagging with a ``CharTagger`` or an ``EncoderTagger``."""

    name = "tag"
    Options = TagOptions

    def build_features(self, opts: TagOptions, texts, say: Say):
        from malmoi.text.char_features import CharFeaturizer
        from malmoi.text.subword import load_tokenizer, train_tokenizer

        if opts.char_model:
            say(f"fitting character features (Kiwi parts of speech) on {len(texts)} sentences")
            return CharFeaturizer.fit(texts, buckets=self._char_config(opts).get("grams", 0))
        if opts.tokenizer is not None or opts.pretrained is not None:
            return load_tokenizer(opts.tokenizer or opts.pretrained)
        say(f"training a WordPiece tokenizer ({opts.vocab_size} tokens) on {len(texts)} sentences")
        return train_tokenizer(texts, kind="wordpiece", vocab_size=opts.vocab_size)

    def build_model(self, opts: TagOptions, features, labels: list[str]):
        from malmoi.models.presets import check_max_length
        from malmoi.models.tagger import CharTagger, CharTaggerConfig, EncoderTagger

        if opts.char_model:
            config = {**self._char_config(opts), "grams": features.buckets}
            return CharTagger(CharTaggerConfig(labels=labels, vocab=features.sizes(), **config))
        if opts.pretrained is not None:
            model = EncoderTagger.from_pretrained_encoder(opts.pretrained, labels, opts.dropout)
        else:
            model = EncoderTagger.from_preset(opts.preset, labels, vocab_size=len(features),
                                              pad_token_id=features.pad_token_id or 0, dropout=opts.dropout,
                                              **opts.model_overrides)
        check_max_length(model.encoder.config, opts.max_length)
        return model

    @staticmethod
    def _char_config(opts: TagOptions) -> dict:
        from malmoi.models.presets import get_preset

        return {**get_preset(opts.preset).config, **opts.model_overrides}

    def _meta(self, opts: TagOptions, data: TagData) -> dict:
        from malmoi.version import __version__

        return {
            "task": self.name,
            "malmoi_version": __version__,
            "architecture": "char-tagger" if opts.char_model else "encoder-tagger",
            "labels": data.labels,
            "scheme": data.scheme,
            "preset": opts.preset,
            "pretrained": str(opts.pretrained) if opts.pretrained else None,
            "max_length": opts.max_length,
            "args": recorded_args(opts),
            "data": {"train": str(opts.data), "valid": str(opts.valid) if opts.valid else None,
                     "format": opts.format, "train_examples": len(data.train), "valid_examples": len(data.valid)},
            "status": "training",
        }

    def _prepare_run(self, opts: TagOptions, data: TagData, say: Say):
        """(opts, out, features, model, resume): create or reopen the run directory."""
        from dataclasses import replace

        from malmoi.text.char_features import CharFeaturizer, is_char_featurizer_folder
        from malmoi.text.subword import load_tokenizer

        seed_everything(opts.seed)
        with start_run(opts.out, self.name, opts.resume, say) as run:
            if run.reopen:
                meta = read_meta(run.out)
                if run.resume and meta.get("labels") != data.labels:
                    raise MalmoiError("E305", f"{run.out} was trained on tags {meta.get('labels')}, "
                                              f"the data now has {data.labels}; use a new --out")
                saved = meta.get("args", {})
                opts = replace(opts, **{k: saved[k] for k in ("preset", "pretrained", "model_overrides", "dropout")
                                        if k in saved}) if run.resume else opts
                features = (CharFeaturizer.from_pretrained(run.out) if is_char_featurizer_folder(run.out)
                            else load_tokenizer(run.out))
                return opts, run.out, features, self.build_model(opts, features, data.labels), run.resume
            with run.building():
                features = self.build_features(opts, [s.text for s in data.train], say)
                model = self.build_model(opts, features, data.labels)
            features.save_pretrained(run.out)
            write_meta(run.out, self._meta(opts, data))
            return opts, run.out, features, model, False

    def datasets(self, opts: TagOptions, features, data: TagData):
        from malmoi.data.tag_datasets import CharTagDataset, TokenTagDataset

        def build(sentences):
            texts, tags = [s.text for s in sentences], [s.tags for s in sentences]
            if opts.char_model:
                return CharTagDataset(features, texts, tags, data.labels, opts.max_length)
            return TokenTagDataset(features, texts, tags, data.labels, data.scheme, opts.max_length)

        return build(data.train), build(data.valid)

    def train(self, opts: TagOptions, say: Say = stderr_say) -> TrainResult:
        from malmoi.data.batching import PadCollator
        from malmoi.data.tag_datasets import CharTagCollator
        from malmoi.tasks.common import unwrap
        from malmoi.training.loop import fit

        started = time.monotonic()
        data = read_tag_data(opts)
        opts, out, features, model, resume = self._prepare_run(opts, data, say)
        train_set, valid_set = self.datasets(opts, features, data)
        types = sorted({lab[2:] for lab in data.labels if lab != "O"})
        say(f"{len(train_set)} training and {len(valid_set)} validation sentences, {data.scheme} tags of "
            f"{len(types)} entity types: {', '.join(types)}")

        def export(model, folder) -> None:
            unwrap(model).save(folder)
            features.save_pretrained(folder)

        collate = CharTagCollator() if opts.char_model else PadCollator(pad_id=features.pad_token_id or 0)
        result = fit(model, train_set, valid_set, args=opts.train_args(), out=out, collate=collate,
                     evaluate=tag_evaluate, export=export, metric="entity_f1", maximize=True, resume=resume,
                     lengths=train_set.lengths)
        return finish_run(out, result, started, len(train_set), len(valid_set), 0, opts.keep_checkpoints)
