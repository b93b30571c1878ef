"""The causal language-model task (``malmoi train lm``); its runs are used through ``use.lm``.

lm
    file → ``read_texts`` → held-out documents → tokenizer (BPE trained on the training texts, or
    ``--tokenizer DIR``) → ``LanguageModelDataset``: ``[CLS] doc [SEP] [CLS] doc [SEP] …`` cut into
    blocks of ``block_size`` ids → ``fit`` with a ``GPT2LMHeadModel`` built from a preset → run
    directory: a Hugging Face GPT-2 folder (``config.json``, ``model.safetensors``,
    ``generation_config.json``) + tokenizer files + ``malmoi.json`` (``task: lm``).

Validation reports the loss per predicted token on the held-out documents and its perplexity,
and continues a sample prompt after every evaluation. A prompt is read the way every training
document starts, ``[CLS]`` + its tokens, and generation stops at ``[SEP]``, the end of a
document; decoding runs on ``models.generation.generate`` (the lean GPT-2 loop).

With ``--source Q --target A`` a table of pairs is read instead, each pair one turn, ``[CLS]
question [SEP] answer [SEP]`` (``data.datasets.ChatDataset``, turns packed whole into blocks); the
loss counts the answers only (``answer_only``), the held-out pairs give the validation loss per
answer token, and the run answers questions (``use.lm``, ``malmoi chat``).
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

TASK = "lm"
ARCHITECTURE = "gpt2-lm"


@dataclass(kw_only=True)
class LMOptions(LoopOptions):
    """``malmoi train lm``: a GPT-style causal language model on plain text."""

    data: str | os.PathLike
    """Text file (one document per line) or a table (CSV, TSV, JSONL) with ``column``."""
    out: str | os.PathLike
    """Run directory to create (refused if it exists, unless ``resume``)."""
    column: str | None = None
    """Column holding the text when ``data`` is a table."""
    source: str | None = None
    """Question column of a table of pairs: with ``target``, the model learns one turn format,
    ``[CLS] question [SEP] answer [SEP]``, and answers questions (``malmoi chat``, ``generate``)."""
    target: str | None = None
    """Answer column of a table of pairs (with ``source``)."""
    answer_only: bool = True
    """With pairs: the loss counts the answers only (the question is read, not predicted)."""
    preset: str = "gpt-mini"
    """GPT-2 preset the model is built from (random weights)."""
    tokenizer: str | os.PathLike | None = None
    """A tokenizer folder (with bos/eos tokens); without it BPE is trained on the training texts."""
    vocab_size: int = 8000
    """Size of the BPE vocabulary trained when no tokenizer is given."""
    block_size: int = 128
    """Tokens per training block; documents are packed end to end across blocks."""
    valid_split: float = 0.05
    """Fraction of the documents held out for perplexity."""
    max_valid: int = 2000
    """At most this many documents held out (keeps evaluation quick on big corpora)."""
    sample_prompt: str | None = None
    """Continued greedily after each evaluation (default: the first word of a held-out document)."""
    sample_tokens: int = 30
    """Tokens generated for the sample (0 = no sample)."""
    lr: float | None = None
    """Peak learning rate; by default the preset's choice, else 1e-3."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Preset config fields to replace (e.g. a tiny ``n_embd`` in tests)."""

    LR: ClassVar[float] = 1e-3
    """A small GPT from random weights trains well with a large step (nanoGPT's small configs)."""

    def default_lr(self) -> float:
        return self.LR

    def __post_init__(self) -> None:
        super().__post_init__()
        from malmoi.models.presets import get_preset
        from malmoi.text.subword import MIN_VOCAB

        if (self.source is None) != (self.target is None):
            raise MalmoiError("E228", "--source and --target go together: the question and the answer columns")
        if self.source is not None and self.column is not None:
            raise MalmoiError("E228", "give either --column (free text) or --source and --target (pairs), not both")
        if get_preset(self.preset).model_type != "gpt2":
            raise MalmoiError("E272", f"a language model needs a GPT preset (gpt-mini), not {self.preset!r}")
        if not 2 <= self.block_size <= 8192:
            raise MalmoiError("E222", f"--block-size must be between 2 and 8192, got {self.block_size}")
        if not 0 < self.valid_split < 1:
            raise MalmoiError("E226", f"--valid-split must be a fraction between 0 and 1, got {self.valid_split}")
        if self.max_valid < 1:
            raise MalmoiError("E273", f"max_valid must be at least 1, got {self.max_valid}")
        if self.vocab_size < MIN_VOCAB:
            raise MalmoiError("E211", f"--vocab-size must be at least {MIN_VOCAB}, got {self.vocab_size}")
        if self.sample_tokens < 0:
            raise MalmoiError("E273", f"sample_tokens must be 0 or more, got {self.sample_tokens}")


# ---------------------------------------------------------------------------------------- evaluation


def lm_evaluate(model, loader) -> dict[str, float]:
    """Mean loss per predicted token (the first token of a block has no prediction) and perplexity."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        n = int((batch["labels"][:, 1:] != -100).sum())
        total += float(model(**batch).loss) * n
        count += n
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}


# ---------------------------------------------------------------------------------------- the task


class LMTask:
    """Causal language modelling with a GPT-2 preset."""

    name = TASK
    Options = LMOptions

    def build_tokenizer(self, opts: LMOptions, texts: Sequence[str], say: Say):
        from malmoi.text.subword import load_tokenizer, train_tokenizer

        if opts.source is not None:  # (question, answer) pairs
            texts = [text for pair in texts for text in pair]
        if opts.tokenizer is not None:
            tokenizer = load_tokenizer(opts.tokenizer)
        else:
            say(f"training a BPE tokenizer ({opts.vocab_size} tokens) on {len(texts)} texts")
            tokenizer = train_tokenizer(texts, kind="bpe", vocab_size=opts.vocab_size)
        for name in ("bos", "eos"):
            if getattr(tokenizer, f"{name}_token_id") is None:
                raise MalmoiError("E471", f"the tokenizer has no {name} token; a language model needs one to "
                                          "start and end documents (malmoi's tokenizers use [CLS] and [SEP])")
        return tokenizer

    def build_model(self, opts: LMOptions, tokenizer):
        from transformers import GPT2LMHeadModel

        from malmoi.models.classifier import quiet_transformers
        from malmoi.models.presets import hf_config, max_positions

        config = hf_config(opts.preset, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           loss_type="ForCausalLM",  # named, or transformers warns it cannot tell from the class
                           **opts.model_overrides)
        if opts.block_size > max_positions(config):
            raise MalmoiError("E222", f"--block-size {opts.block_size} exceeds the model's "
                                      f"{max_positions(config)} positions")
        with quiet_transformers():
            return GPT2LMHeadModel(config)

    def meta(self, opts: LMOptions, train: Sequence[str], valid: Sequence[str], model) -> dict:
        from malmoi.version import __version__

        return {
            "task": self.name,
            "architecture": ARCHITECTURE,
            "malmoi_version": __version__,
            "columns": {"text": opts.column} if opts.source is None else {"source": opts.source, "target": opts.target},
            "format": "text" if opts.source is None else "chat",
            "preset": opts.preset,
            "block_size": opts.block_size,
            "parameters": model.num_parameters(),
            "args": recorded_args(opts),
            "data": {"train": str(opts.data), "train_texts": len(train), "valid_texts": len(valid)},
            "status": "training",
        }

    def resumed_options(self, opts: LMOptions, out: Path) -> LMOptions:
        """On resume the data split, blocks and model are rebuilt as the run recorded them."""
        meta = read_meta(out)
        if meta.get("task") != self.name:
            raise MalmoiError("E305", f"{out} is a {meta.get('task')!r} run, not a language-model run")
        saved = meta.get("args", {})
        keep = ("preset", "model_overrides", "block_size", "valid_split", "max_valid", "seed", "column", "source",
                "target", "answer_only")
        return replace(opts, **{k: saved[k] for k in keep if k in saved})

    def train(self, opts: LMOptions, say: Say = stderr_say) -> TrainResult:
        from malmoi.data.batching import PadCollator
        from malmoi.data.datasets import ChatDataset, LanguageModelDataset
        from malmoi.training.loop import fit

        started = time.monotonic()
        opts, out, (train_texts, valid_texts), tokenizer, model, resume = prepare_corpus_run(self, opts, say)

        def dataset(texts):
            if opts.source is not None:
                return ChatDataset(texts, tokenizer, opts.block_size, bos_id=tokenizer.bos_token_id,
                                   eos_id=tokenizer.eos_token_id, answer_only=opts.answer_only)
            return LanguageModelDataset(texts, tokenizer, opts.block_size, eos_id=tokenizer.eos_token_id,
                                        bos_id=tokenizer.bos_token_id)

        train_set, valid_set = dataset(train_texts), dataset(valid_texts)
        if not len(train_set) or not len(valid_set):
            raise MalmoiError("E102", f"{opts.data}: the texts encode to no tokens")
        say(f"{len(train_texts)} training texts ({train_set.num_tokens} tokens) in {len(train_set)} blocks of "
            f"{opts.block_size}, {len(valid_texts)} validation texts ({valid_set.num_tokens} tokens); {opts.preset}, "
            f"{model.num_parameters():,} parameters")
        chat = opts.source is not None
        prompt = opts.sample_prompt if opts.sample_prompt is not None else (
            valid_texts[0][0] if chat else valid_texts[0].split()[0])
        shown: list[str] = []

        def evaluate(model, loader) -> dict[str, float]:
            metrics = lm_evaluate(model, loader)
            if opts.sample_tokens:
                from malmoi.models.generation import GenerationSettings, generate_text

                settings = GenerationSettings(max_new_tokens=opts.sample_tokens)
                said = generate_text(unwrap(model), tokenizer, prompt, settings, reply=chat)
                shown[:] = [f"{prompt} → {said}" if chat else prompt + said]
            return metrics

        def on_eval(step: int, metrics: dict[str, float]) -> None:
            for text in shown:
                say(f"  sample: {text}")

        def export(model, folder) -> None:
            from malmoi.models.classifier import quiet_transformers

            with quiet_transformers():
                unwrap(model).save_pretrained(folder)
            tokenizer.save_pretrained(folder)

        result = fit(model, train_set, valid_set, args=opts.train_args(), out=out,
                     collate=PadCollator(pad_id=tokenizer.pad_token_id or 0), evaluate=evaluate, export=export,
                     metric="loss", maximize=False, resume=resume, on_eval=on_eval)
        return finish_run(out, result, started, len(train_texts), len(valid_texts),
                          keep_checkpoints=opts.keep_checkpoints)
