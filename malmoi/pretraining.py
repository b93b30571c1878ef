"""Masked-language-model pretraining: the KoBERT workflow without KoBERT.

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

Training computes the prediction head only at the masked positions (``SparseMaskedLM``): with
a 16k vocabulary the full (B, T, V) logits of ``BertForMaskedLM`` cost more than the encoder
itself, while only ~15% of them enter the loss. Validation reports the loss per masked token,
its perplexity and the masked-token accuracy, with the same masking every evaluation.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from .errors import MalmoiError
from .tasks import (LoopOptions, Say, TrainResult, finish_run, prepare_corpus_run, recorded_args, register,
                    stderr_say, unwrap)
from .tasks import split_texts  # noqa: F401  (the name this module has always offered)

TASK = "mlm"


# ---------------------------------------------------------------------------------------- options


@dataclass(kw_only=True)
class MLMOptions(LoopOptions):
    """``malmoi pretrain mlm``: a BERT encoder pretrained by masked-language modelling on plain text."""

    data: str | os.PathLike
    """Text file (one document per line) or a table (CSV, TSV, JSONL) with ``column``."""
    out: str | os.PathLike
    """Run directory to create."""
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
    pack: bool = True
    """Pack several documents into each block; otherwise one (truncated) document per block."""
    valid_split: float = 0.02
    """Fraction of the documents held out for validation."""
    max_valid: int = 2000
    """At most this many documents held out (keeps evaluation quick on big corpora)."""
    mlm_probability: float = 0.15
    """Fraction of the tokens the model must predict (of those: 80% [MASK], 10% random, 10% kept)."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Preset config fields to replace (e.g. a tiny ``hidden_size`` in tests)."""

    MAX_LENGTH_LIMIT: ClassVar[int] = 8192
    LR_SCRATCH: ClassVar[float] = 5e-4
    """A small encoder from random weights wants a large step."""

    def default_lr(self) -> float:
        return self.LR_SCRATCH

    def __post_init__(self) -> None:
        super().__post_init__()
        from .models.presets import get_preset
        from .text.subword import MIN_VOCAB

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


# ---------------------------------------------------------------------------------------- data


def pack_blocks(docs: Sequence[Sequence[int]], max_length: int, cls_id: int, sep_id: int,
                pack: bool = True) -> list[list[int]]:
    """Blocks of at most ``max_length`` ids, each ``[CLS] doc [SEP] doc [SEP] …``.

    With ``pack`` whole documents are appended while they fit (RoBERTa's FULL-SENTENCES) and a
    document longer than a block is cut into block-sized pieces; without it every document is
    one block, truncated. Empty documents are dropped.
    """
    room = max_length - 2  # [CLS] and one [SEP]
    if room < 1:
        raise MalmoiError("E222", f"max_length {max_length} leaves no room for tokens between [CLS] and [SEP]")
    blocks: list[list[int]] = []
    current: list[int] = [cls_id]
    for doc in docs:
        if not doc:
            continue
        if not pack:
            blocks.append([cls_id, *doc[:room], sep_id])
            continue
        pieces = [doc[i : i + room] for i in range(0, len(doc), room)]
        for piece in pieces:
            if len(current) + len(piece) + 1 > max_length:
                blocks.append(current)
                current = [cls_id]
            current += [*piece, sep_id]
    if len(current) > 1:
        blocks.append(current)
    return blocks


class PackedTextDataset(Dataset):
    """Texts → packed blocks → ``{input_ids, attention_mask}`` items (masking is the collator's job)."""

    def __init__(self, texts: Sequence[str], tokenizer, max_length: int, pack: bool = True):
        from .data.datasets import encode_all

        docs = encode_all(texts, tokenizer, special_tokens=False)
        self.num_tokens = sum(len(d) for d in docs)
        self.blocks = pack_blocks(docs, max_length, tokenizer.cls_token_id, tokenizer.sep_token_id, pack)
        self.lengths = [len(b) for b in self.blocks]

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ids = self.blocks[i]
        return {"input_ids": ids, "attention_mask": [1] * len(ids)}


# ---------------------------------------------------------------------------------------- model


@dataclass
class MaskedLMOutput:
    """What ``SparseMaskedLM`` returns: predictions only where the collator masked."""

    loss: torch.Tensor | None
    """Mean cross-entropy over the masked tokens (None without labels)."""
    logits: torch.Tensor
    """(M, V) scores of the M masked positions in row-major order, or (B, T, V) without labels."""
    targets: torch.Tensor | None
    """(M,) the original ids at those positions (None without labels)."""


class SparseMaskedLM(nn.Module):
    """A ``BertForMaskedLM`` whose prediction head runs only at the masked positions.

    The wrapped model (``.mlm``) is unchanged: it is what ``export`` saves, so the run directory
    loads with ``AutoModelForMaskedLM`` and gives the same scores there.
    """

    def __init__(self, mlm: nn.Module):
        super().__init__()
        self.mlm = mlm

    @property
    def config(self):
        return self.mlm.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> MaskedLMOutput:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.mlm.bert(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state  # (B, T, H)
        if labels is None:
            return MaskedLMOutput(None, self.mlm.cls(hidden), None)  # (B, T, V)
        where = labels != -100
        targets = labels[where]  # (M,)
        logits = self.mlm.cls(hidden[where])  # (M, V)
        if targets.numel() == 0:  # a tiny batch can draw no masked token: zero loss, gradients still flow
            return MaskedLMOutput(hidden.sum() * 0.0, logits, targets)
        return MaskedLMOutput(nn.functional.cross_entropy(logits.float(), targets), logits, targets)


def build_mlm(preset: str, tokenizer, overrides: dict[str, Any] | None = None) -> SparseMaskedLM:
    """A randomly initialised ``BertForMaskedLM`` (no pooler) sized for ``tokenizer``."""
    from transformers import BertForMaskedLM

    from .models.presets import hf_config

    config = hf_config(preset, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id or 0,
                       **(overrides or {}))
    config.architectures = ["BertForMaskedLM"]
    return SparseMaskedLM(BertForMaskedLM(config))


def mlm_evaluate(model: nn.Module, loader) -> dict[str, float]:
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
        from .text.subword import load_tokenizer, train_tokenizer

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

    def build_model(self, opts: MLMOptions, tokenizer) -> SparseMaskedLM:
        from .models.presets import max_positions

        torch.manual_seed(opts.seed)  # the same seed gives the same initial weights
        model = build_mlm(opts.preset, tokenizer, opts.model_overrides)
        limit = max_positions(model.config)
        if opts.max_length > limit:
            raise MalmoiError("E222", f"--max-length {opts.max_length} exceeds the model's {limit} positions")
        return model

    def meta(self, opts: MLMOptions, train: Sequence[str], valid: Sequence[str], model: SparseMaskedLM) -> dict:
        from . import __version__

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
        from .runs import read_meta

        meta = read_meta(out)
        if meta.get("task") != self.name:
            raise MalmoiError("E305", f"{out} is a {meta.get('task')!r} run, not an MLM pretraining run")
        saved = meta.get("args", {})
        keep = ("preset", "model_overrides", "max_length", "pack", "valid_split", "max_valid", "seed",
                "mlm_probability", "column")
        return replace(opts, **{k: saved[k] for k in keep if k in saved})

    def train(self, opts: MLMOptions, say: Say = stderr_say) -> TrainResult:
        from .data.batching import MLMCollator
        from .training import fit

        started = time.monotonic()
        opts, out, (train_texts, valid_texts), tokenizer, model, resume = prepare_corpus_run(self, opts, say)
        train_set = PackedTextDataset(train_texts, tokenizer, opts.max_length, opts.pack)
        valid_set = PackedTextDataset(valid_texts, tokenizer, opts.max_length, opts.pack)
        if not len(train_set) or not len(valid_set):
            raise MalmoiError("E102", f"{opts.data}: the texts encode to no tokens")
        say(f"{len(train_texts)} training texts ({train_set.num_tokens} tokens) in {len(train_set)} blocks, "
            f"{len(valid_texts)} validation texts in {len(valid_set)} blocks of at most {opts.max_length} tokens")

        def export(model, folder) -> None:
            from .models.classifier import quiet_transformers

            with quiet_transformers():
                unwrap(model).mlm.save_pretrained(folder)
            tokenizer.save_pretrained(folder)

        collate = MLMCollator.from_tokenizer(tokenizer, mlm_probability=opts.mlm_probability)
        result = fit(model, train_set, valid_set, collate, opts.train_args(), out, evaluate=mlm_evaluate,
                     export=export, metric="loss", maximize=False, resume=resume, lengths=train_set.lengths)
        return finish_run(out, result, started, len(train_texts), len(valid_texts))

    def load(self, run: str | os.PathLike) -> "MaskFiller":
        return MaskFiller.from_run(run)


# ---------------------------------------------------------------------------------------- use


@dataclass
class Filling:
    """One candidate for a [MASK]."""

    token: str
    """The predicted piece."""
    score: float
    """Its softmax probability."""
    text: str
    """The input with this piece in place of the [MASK]."""


class MaskFiller:
    """A pretrained MLM run, used the way it was trained: fill in ``[MASK]`` in a sentence."""

    def __init__(self, model: nn.Module, tokenizer):
        self.model, self.tokenizer = model.eval(), tokenizer

    @classmethod
    def from_run(cls, run: str | os.PathLike) -> "MaskFiller":
        from transformers import AutoModelForMaskedLM

        from .models.classifier import quiet_transformers
        from .text.subword import load_tokenizer

        run = Path(run)
        if not (run / "config.json").is_file():
            raise MalmoiError("E401", f"{run} is not a Hugging Face model folder (no config.json)")
        with quiet_transformers():
            model = AutoModelForMaskedLM.from_pretrained(run, dtype=torch.float32)
        return cls(model, load_tokenizer(run))

    @torch.inference_mode()
    def fill(self, text: str, top_k: int = 5) -> list[Filling]:
        """The ``top_k`` most likely pieces for the first ``[MASK]`` of ``text``."""
        tok = self.tokenizer
        if tok.mask_token not in text:
            raise MalmoiError("E441", f"the text holds no {tok.mask_token}: {text!r}")
        enc = tok(text, return_tensors="pt", return_token_type_ids=False)
        where = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
        probs = self.model(**enc).logits[0, where].softmax(-1)  # (V,)
        scores, ids = probs.topk(top_k)
        out = []
        for score, i in zip(scores.tolist(), ids.tolist()):
            piece = tok.convert_ids_to_tokens(i)
            out.append(Filling(piece, score, text.replace(tok.mask_token, piece.removeprefix("##"), 1)))
        return out


register(MLMTask())


def pretrain(say: Say = stderr_say, **options) -> TrainResult:
    """Pretrain with keyword ``options`` (the fields of ``MLMOptions``), as ``malmoi pretrain mlm`` does."""
    try:
        opts = MLMOptions(**options)
    except TypeError as e:
        raise MalmoiError("E231", f"pretrain(): {e}") from None
    return MLMTask().train(opts, say)
