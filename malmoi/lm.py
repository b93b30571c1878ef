"""The causal language-model task (``malmoi train lm``) and its generator (``malmoi generate`` on
an lm run).

lm
    file → ``read_texts`` → held-out documents → tokenizer (BPE trained on the training texts, or
    ``--tokenizer DIR``) → ``LanguageModelDataset``: ``[CLS] doc [SEP] [CLS] doc [SEP] …`` cut into
    blocks of ``block_size`` ids → ``fit`` with a ``GPT2LMHeadModel`` built from a preset → run
    directory: a Hugging Face GPT-2 folder (``config.json``, ``model.safetensors``,
    ``generation_config.json``) + tokenizer files + ``malmoi.json`` (``task: lm``).

Validation reports the loss per predicted token on the held-out documents and its perplexity,
and continues a sample prompt after every evaluation. A prompt is read the way every training
document starts, ``[CLS]`` + its tokens, and generation stops at ``[SEP]``, the end of a
document; decoding runs on ``generation.generate`` (the lean GPT-2 loop).
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Sequence

from .errors import MalmoiError
from .generators import Answer
from .tasks import (LoopOptions, Say, TrainResult, finish_run, prepare_corpus_run, recorded_args, register,
                    stderr_say, unwrap)
from .tasks import split_texts as split_documents  # noqa: F401  (the name this module has always offered)

TASK = "lm"
ARCHITECTURE = "gpt2-lm"


@dataclass(kw_only=True)
class LMOptions(LoopOptions):
    """``malmoi train lm``: a GPT-style causal language model on plain text."""

    data: str | os.PathLike
    """Text file (one document per line) or a table (CSV, TSV, JSONL) with ``column``."""
    out: str | os.PathLike
    """Run directory to create."""
    column: str | None = None
    """Column holding the text when ``data`` is a table."""
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
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Preset config fields to replace (e.g. a tiny ``n_embd`` in tests)."""

    LR: ClassVar[float] = 1e-3
    """A small GPT from random weights trains well with a large step (nanoGPT's small configs)."""

    def default_lr(self) -> float:
        return self.LR

    def __post_init__(self) -> None:
        super().__post_init__()
        from .models.presets import get_preset
        from .text.subword import MIN_VOCAB

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
        from .text.subword import load_tokenizer, train_tokenizer

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
        import torch
        from transformers import GPT2LMHeadModel

        from .models.classifier import quiet_transformers
        from .models.presets import hf_config, max_positions

        config = hf_config(opts.preset, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           **opts.model_overrides)
        if opts.block_size > max_positions(config):
            raise MalmoiError("E222", f"--block-size {opts.block_size} exceeds the model's "
                                      f"{max_positions(config)} positions")
        torch.manual_seed(opts.seed)  # the same seed gives the same initial weights, whatever ran before
        with quiet_transformers():
            return GPT2LMHeadModel(config)

    def meta(self, opts: LMOptions, train: Sequence[str], valid: Sequence[str], model) -> dict:
        from . import __version__

        return {
            "task": self.name,
            "architecture": ARCHITECTURE,
            "malmoi_version": __version__,
            "columns": {"text": opts.column},
            "preset": opts.preset,
            "block_size": opts.block_size,
            "parameters": model.num_parameters(),
            "args": recorded_args(opts),
            "data": {"train": str(opts.data), "train_texts": len(train), "valid_texts": len(valid)},
            "status": "training",
        }

    def resumed_options(self, opts: LMOptions, out: Path) -> LMOptions:
        """On resume the data split, blocks and model are rebuilt as the run recorded them."""
        from .runs import read_meta

        meta = read_meta(out)
        if meta.get("task") != self.name:
            raise MalmoiError("E305", f"{out} is a {meta.get('task')!r} run, not a language-model run")
        saved = meta.get("args", {})
        keep = ("preset", "model_overrides", "block_size", "valid_split", "max_valid", "seed", "column")
        return replace(opts, **{k: saved[k] for k in keep if k in saved})

    def train(self, opts: LMOptions, say: Say = stderr_say) -> TrainResult:
        from .data.batching import PadCollator
        from .data.datasets import LanguageModelDataset
        from .training import fit

        started = time.monotonic()
        opts, out, (train_texts, valid_texts), tokenizer, model, resume = prepare_corpus_run(self, opts, say)

        def dataset(texts):
            return LanguageModelDataset(texts, tokenizer, opts.block_size, eos_id=tokenizer.eos_token_id,
                                        bos_id=tokenizer.bos_token_id)

        train_set, valid_set = dataset(train_texts), dataset(valid_texts)
        if not len(train_set) or not len(valid_set):
            raise MalmoiError("E102", f"{opts.data}: the texts encode to no tokens")
        say(f"{len(train_texts)} training texts ({train_set.num_tokens} tokens) in {len(train_set)} blocks of "
            f"{opts.block_size}, {len(valid_texts)} validation texts ({valid_set.num_tokens} tokens); {opts.preset}, "
            f"{model.num_parameters():,} parameters")
        prompt = opts.sample_prompt if opts.sample_prompt is not None else valid_texts[0].split()[0]
        shown: list[str] = []

        def evaluate(model, loader) -> dict[str, float]:
            metrics = lm_evaluate(model, loader)
            if opts.sample_tokens:
                from .generation import GenerationSettings, generate_text

                settings = GenerationSettings(max_new_tokens=opts.sample_tokens)
                shown[:] = [prompt + generate_text(unwrap(model), tokenizer, prompt, settings)]
            return metrics

        def on_eval(step: int, metrics: dict[str, float]) -> None:
            for text in shown:
                say(f"  sample: {text}")

        def export(model, folder) -> None:
            from .models.classifier import quiet_transformers

            with quiet_transformers():
                unwrap(model).save_pretrained(folder)
            tokenizer.save_pretrained(folder)

        result = fit(model, train_set, valid_set, PadCollator(pad_id=tokenizer.pad_token_id or 0), opts.train_args(),
                     out, evaluate=evaluate, export=export, metric="loss", maximize=False, resume=resume,
                     on_eval=on_eval)
        return finish_run(out, result, started, len(train_texts), len(valid_texts))

    def load(self, run: str | os.PathLike) -> "LMGenerator":
        return LMGenerator.from_run(run)


register(LMTask())


# ---------------------------------------------------------------------------------------- use


class LMGenerator:
    """A trained language-model run: continue prompts (greedy, sampling, beams), or stream."""

    DEFAULT_NEW_TOKENS: ClassVar[int] = 50
    continues_prompt: ClassVar[bool] = True
    """Its answers continue the input text (``malmoi generate`` prints the prompt in front)."""

    def __init__(self, model, tokenizer, run: Path | None = None):
        self.model, self.tokenizer, self.run = model.eval(), tokenizer, run

    @classmethod
    def from_run(cls, run: str | os.PathLike) -> "LMGenerator":
        import torch
        from transformers import AutoModelForCausalLM

        from .models.classifier import quiet_transformers
        from .runs import read_meta
        from .text.subword import load_tokenizer

        run = Path(run)
        meta = read_meta(run)
        if meta.get("task") != TASK:
            raise MalmoiError("E426", f"{run} holds a {meta.get('architecture') or meta.get('task')!r} model, "
                                      "not a language model")
        if not (run / "config.json").is_file() or not (run / "model.safetensors").is_file():
            raise MalmoiError("E427", f"{run} has no trained model yet (training did not finish; use --resume)")
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(run, dtype=torch.float32)
        return cls(model, load_tokenizer(run), run)

    def settings(self, *, beams: int = 1, max_new_tokens: int | None = None, greedy: bool | None = None,
                 top_k: int | None = None, top_p: float | None = None, temperature: float | None = None,
                 repetition_penalty: float = 1.0, seed: int | None = None):
        """``GenerationSettings`` for this run's tokenizer. ``greedy=None`` samples when any of
        ``top_k`` / ``top_p`` / ``temperature`` is given, and decodes greedily otherwise."""
        from .generation import GenerationSettings

        sampling = any(v is not None for v in (top_k, top_p, temperature))
        if greedy and sampling:
            raise MalmoiError("E274", "--greedy cannot be combined with --top-k, --top-p or --temperature")
        if beams > 1 and (sampling or greedy is False):
            raise MalmoiError("E274", "--beams runs beam search; leave out --top-k, --top-p and --temperature")
        tok = self.tokenizer
        return GenerationSettings(
            max_new_tokens=self.DEFAULT_NEW_TOKENS if max_new_tokens is None else max_new_tokens,
            greedy=not sampling if greedy is None else greedy, beams=beams,
            top_k=top_k or 0, top_p=1.0 if top_p is None else top_p,
            temperature=1.0 if temperature is None else temperature, repetition_penalty=repetition_penalty,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else 0,
            seed=seed,
        )

    def generate(self, texts: str | Sequence[str], *, beams: int = 1, max_new_tokens: int | None = None,
                 **options) -> list[Answer]:
        """One ``Answer`` (the continuation) per prompt; ``options`` as in ``settings``."""
        from .generation import continuation, encode_prompt, generate

        texts = [texts] if isinstance(texts, str) else list(texts)
        if any(not isinstance(t, str) for t in texts):
            raise MalmoiError("E428", "prompts must be strings")
        if max_new_tokens is not None and max_new_tokens < 1:
            raise MalmoiError("E201", f"max_new_tokens must be at least 1, got {max_new_tokens}")
        settings = self.settings(beams=beams, max_new_tokens=max_new_tokens, **options)
        answers = []
        # Beam search goes to Hugging Face one prompt at a time; the lean loop takes a padded batch.
        groups = [[t] for t in texts] if beams > 1 else [texts[i : i + 64] for i in range(0, len(texts), 64)]
        for group in groups:
            prompts = [encode_prompt(self.tokenizer, t) for t in group]
            ids, mask = _left_pad(prompts, settings.pad_token_id)
            sequences = generate(self.model, ids, settings, attention_mask=mask)
            new = sequences[:, ids.shape[1] :]
            scores = self._scores(sequences, mask, ids.shape[1], settings, beams > 1)
            for text, prompt, row, score in zip(group, prompts, new.tolist(), scores):
                row = _until_eos(row, settings.eos_token_id)
                pieces = self.tokenizer.convert_ids_to_tokens([i for i in row if i != settings.eos_token_id])
                answers.append(Answer(text, continuation(self.tokenizer, prompt, row), pieces, score))
        return answers

    def stream(self, text: str, *, beams: int = 1, max_new_tokens: int | None = None, **options) -> Iterator[str]:
        """Pieces of the continuation of ``text`` as they are generated (never half a syllable)."""
        from .generation import generate_text

        settings = self.settings(beams=beams, max_new_tokens=max_new_tokens, **options)
        return generate_text(self.model, self.tokenizer, text, settings, stream=True)

    def reply(self, text: str, beams: int = 1) -> str:
        """The continuation of one chat message."""
        return self.generate([text], beams=beams)[0].text

    def _scores(self, sequences, mask, prompt_len: int, settings, normalise: bool) -> list[float]:
        """Log-probability of each row's new tokens (through its eos) under the model."""
        import torch

        new_len = sequences.shape[1] - prompt_len
        if new_len == 0:
            return [0.0] * sequences.shape[0]
        full_mask = torch.cat([mask, torch.ones(mask.shape[0], new_len, dtype=mask.dtype)], 1)
        new = sequences[:, prompt_len:]
        # Tokens after a row's eos are padding, not part of the answer.
        ended = torch.cumsum((new == settings.eos_token_id).long(), 1)
        keep = (ended == 0) | ((ended == 1) & (new == settings.eos_token_id))
        full_mask[:, prompt_len:] = keep.long()
        positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(sequences, attention_mask=full_mask, position_ids=positions).logits
        logp = torch.log_softmax(logits[:, prompt_len - 1 : -1].float(), -1).gather(2, new.unsqueeze(2)).squeeze(2)
        sums = (logp * keep).sum(1)
        if normalise:
            sums = sums / keep.sum(1).clamp(min=1)
        return [float(s) for s in sums]


def _left_pad(prompts: list[list[int]], pad_id: int):
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    return ids, mask


def _until_eos(row: list[int], eos: int | None) -> list[int]:
    return row[: row.index(eos) + 1] if eos is not None and eos in row else row


def train_lm(say: Say = stderr_say, **options) -> TrainResult:
    """Train with keyword ``options`` (the fields of ``LMOptions``), as ``malmoi train lm`` does."""
    try:
        opts = LMOptions(**options)
    except TypeError as e:
        raise MalmoiError("E231", f"train_lm(): {e}") from None
    return LMTask().train(opts, say)
