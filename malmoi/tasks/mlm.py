"""Masked-language-model pretraining (``malmoi pretrain mlm``): the KoBERT workflow without KoBERT;
its runs are used through ``use.mask_filler``.

mlm
    file → ``read_texts`` → held-out split → tokenizer (WordPiece trained on the training texts,
    or the one given) → documents packed into blocks (``[CLS] a [SEP] b [SEP] …``) →
    ``MLMCollator`` (15% of the tokens, 80% [MASK] / 10% random / 10% kept) → ``fit`` with a
    ``BertForMaskedLM`` built from a preset → run directory: a Hugging Face ``BertForMaskedLM``
    folder (``config.json`` + ``model.safetensors``) + tokenizer files + ``malmoi.json``
    (``task: mlm``).

The run directory is what ``malmoi train classify --pretrained RUN`` fine-tunes:
``AutoModel.from_pretrained(RUN)`` reads the encoder weights (``bert.*``) and drops the MLM head
(``cls.*``); the classifier adds a fresh linear head on [CLS].

Training computes the prediction head only at the masked positions (``models.mlm.SparseMaskedLM``). Validation reports the loss per masked token,
its perplexity and the masked-token accuracy, with the same masking every evaluation.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Sequence

from malmoi.errors import MalmoiError
from malmoi.runs import read_meta
from malmoi.tasks.common import (LoopOptions, Say, TrainResult, finish_run, prepare_corpus_run, recorded_args,
                                 stderr_say, unwrap)

TASK = "mlm"


# ---------------------------------------------------------------------------------------- options


@dataclass(kw_only=True)
class MLMOptions(LoopOptions):
    """``malmoi pretrain mlm``: a BERT encoder pretrained by masked-language modelling on plain text."""

    data: str | os.PathLike
    """Text file (one document per line) or a table (CSV, TSV, JSONL) with ``column``."""
    out: str | os.PathLike
    """Run directory to create (refused if it exists, unless ``resume``)."""
    column: str | None = None
    """Column holding the text when ``data`` is a table."""
    preset: str = "bert-mini"
    """BERT preset the encoder is built from (random weights)."""
    tokenizer: str | os.PathLike | None = None
    """A tokenizer folder; without it WordPiece is trained on the training texts."""
    vocab_size: int = 8000
    """Size of the WordPiece vocabulary trained when no tokenizer is given."""
    morphemes: bool = False
    """Train the WordPiece vocabulary over Kiwi morphemes (no piece crosses a morpheme boundary)."""
    max_length: int = 128
    """Tokens per block (documents longer than this are cut into several blocks)."""
    pack: bool = field(default=True, metadata={"flag": "--no-pack"})
    """Pack several documents into each block; off (``--no-pack``), one truncated document per block."""
    valid_split: float = 0.02
    """Fraction of the documents held out for validation (at most ``max_valid``)."""
    max_valid: int = 2000
    """At most this many documents held out (keeps evaluation quick on big corpora)."""
    mlm_probability: float = 0.15
    """Fraction of the tokens the model must predict (of those: 80% [MASK], 10% random, 10% kept)."""
    lr: float | None = None
    """Peak learning rate; by default the preset's choice, else 5e-4."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Preset config fields to replace (e.g. a tiny ``hidden_size`` in tests)."""

    MAX_LENGTH_LIMIT: ClassVar[int] = 8192
    LR_SCRATCH: ClassVar[float] = 5e-4
    """A small encoder from random weights wants a large step."""

    def default_lr(self) -> float:
        return self.LR_SCRATCH

    def __post_init__(self) -> None:
        super().__post_init__()
        from malmoi.models.presets import get_preset
        from malmoi.text.subword import MIN_VOCAB

        if get_preset(self.preset).model_type != "bert":
            raise MalmoiError("E250", f"MLM pretraining needs a BERT preset (bert-tiny, bert-mini), not {self.preset!r}")
        if not 3 <= self.max_length <= self.MAX_LENGTH_LIMIT:
            raise MalmoiError("E222", f"--max-length must be between 3 and {self.MAX_LENGTH_LIMIT}, got {self.max_length}")
        if not 0 < self.valid_split < 1:
            raise MalmoiError("E226", f"--valid-split must be a fraction between 0 and 1, got {self.valid_split}")
        if self.max_valid < 1:
            raise MalmoiError("E251", f"max_valid must be at least 1, got {self.max_valid}")
        if self.vocab_size < MIN_VOCAB:
            raise MalmoiError("E211", f"--vocab-size must be at least {MIN_VOCAB}, got {self.vocab_size}")
        if not 0 < self.mlm_probability < 1:
            raise MalmoiError("E252", f"mlm_probability must be in (0, 1), got {self.mlm_probability}")


def mlm_evaluate(model, loader) -> dict[str, float]:
    """Loss per masked token, its perplexity, and masked-token accuracy."""
    device = next(model.parameters()).device
    total_loss, correct, count = 0.0, 0, 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**batch)
        n = int(out.targets.numel())
        if not n:
            continue
        total_loss += float(out.loss) * n
        correct += int((out.logits.argmax(-1) == out.targets).sum())
        count += n
    if not count:
        return {"loss": float("nan"), "perplexity": float("nan"), "accuracy": 0.0}
    loss = total_loss / count
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": correct / count}


# ---------------------------------------------------------------------------------------- the task


class MLMTask:
    """Masked-language-model pretraining of a BERT encoder."""

    name = TASK
    Options = MLMOptions

    def build_tokenizer(self, opts: MLMOptions, texts: Sequence[str], say: Say):
        from malmoi.text.subword import load_tokenizer, train_tokenizer

        if opts.tokenizer is not None:
            tokenizer = load_tokenizer(opts.tokenizer)
        else:
            say(f"training a WordPiece tokenizer ({opts.vocab_size} tokens) on {len(texts)} texts")
            tokenizer = train_tokenizer(texts, kind="wordpiece", vocab_size=opts.vocab_size, morphemes=opts.morphemes)
        for name in ("mask", "cls", "sep"):
            if getattr(tokenizer, f"{name}_token_id") is None:
                raise MalmoiError("E440", f"the tokenizer has no {name} token; MLM pretraining needs "
                                          "[CLS], [SEP] and [MASK] (malmoi's subword tokenizers have them)")
        return tokenizer

    def build_model(self, opts: MLMOptions, tokenizer):
        from malmoi.models.mlm import build_mlm
        from malmoi.models.presets import check_max_length

        model = build_mlm(opts.preset, tokenizer, opts.model_overrides)
        check_max_length(model.config, opts.max_length)
        return model

    def meta(self, opts: MLMOptions, train: Sequence[str], valid: Sequence[str], model) -> dict:
        from malmoi.version import __version__

        return {
            "task": self.name,
            "malmoi_version": __version__,
            "architecture": "BertForMaskedLM",
            "columns": {"text": opts.column},
            "preset": opts.preset,
            "max_length": opts.max_length,
            "parameters": model.mlm.num_parameters(),
            "args": recorded_args(opts),
            "data": {"train": str(opts.data), "train_texts": len(train), "valid_texts": len(valid)},
            "status": "training",
        }

    def resumed_options(self, opts: MLMOptions, out: Path) -> MLMOptions:
        """On resume the data split, blocks and model are rebuilt as the run recorded them."""
        meta = read_meta(out)
        if meta.get("task") != self.name:
            raise MalmoiError("E305", f"{out} is a {meta.get('task')!r} run, not an MLM pretraining run")
        saved = meta.get("args", {})
        keep = ("preset", "model_overrides", "max_length", "pack", "valid_split", "max_valid", "seed",
                "mlm_probability", "column")
        return replace(opts, **{k: saved[k] for k in keep if k in saved})

    def train(self, opts: MLMOptions, say: Say = stderr_say) -> TrainResult:
        from malmoi.data.batching import MLMCollator
        from malmoi.data.datasets import PackedTextDataset
        from malmoi.training.loop import fit

        started = time.monotonic()
        opts, out, (train_texts, valid_texts), tokenizer, model, resume = prepare_corpus_run(self, opts, say)
        train_set = PackedTextDataset(train_texts, tokenizer, opts.max_length, opts.pack)
        valid_set = PackedTextDataset(valid_texts, tokenizer, opts.max_length, opts.pack)
        if not len(train_set) or not len(valid_set):
            raise MalmoiError("E102", f"{opts.data}: the texts encode to no tokens")
        say(f"{len(train_texts)} training texts ({train_set.num_tokens} tokens) in {len(train_set)} blocks, "
            f"{len(valid_texts)} validation texts in {len(valid_set)} blocks of at most {opts.max_length} tokens")

        def export(model, folder) -> None:
            from malmoi.models.classifier import quiet_transformers

            with quiet_transformers():
                unwrap(model).mlm.save_pretrained(folder)
            tokenizer.save_pretrained(folder)

        collate = MLMCollator.from_tokenizer(tokenizer, mlm_probability=opts.mlm_probability)
        result = fit(model, train_set, valid_set, args=opts.train_args(), out=out, collate=collate, evaluate=mlm_evaluate,
                     export=export, metric="loss", maximize=False, resume=resume, lengths=train_set.lengths)
        return finish_run(out, result, started, len(train_texts), len(valid_texts),
                          keep_checkpoints=opts.keep_checkpoints)
