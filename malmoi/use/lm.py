"""A trained language-model run (``train lm``): continue prompts (greedy, sampling, beams), or
stream the continuation. A prompt is read the way every training document starts, ``[CLS]`` + its
tokens, and generation stops at ``[SEP]``; decoding runs on ``models.generation.generate``.

A chat run (``train lm --source Q --target A``) reads its input as a question, ``[CLS] question
[SEP]``, and its answer is what it writes before the next ``[SEP]``."""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from malmoi.errors import MalmoiError
from malmoi.runs import read_meta
from malmoi.use.results import Answer

if TYPE_CHECKING:
    from malmoi.models.charlm import LMScore


class LMGenerator:
    """A trained language-model run: continue prompts (greedy, sampling, beams), or stream."""

    DEFAULT_NEW_TOKENS: ClassVar[int] = 50
    continues_prompt: bool
    """Its answers continue the input text (``malmoi generate`` prints the prompt in front); a chat
    run's answer its input."""
    samples: ClassVar[bool] = True
    """Takes sampling options (``top_k``, ``top_p``, ``temperature`` …)."""

    def __init__(self, model, tokenizer, run: Path | None = None, chat: bool = False):
        self.model, self.tokenizer, self.run = model.eval(), tokenizer, run
        self.chat = chat
        """Trained on (question, answer) turns: it answers its input instead of continuing it."""
        self.continues_prompt = not chat

    @classmethod
    def from_run(cls, run: str | os.PathLike) -> LMGenerator:
        import torch
        from transformers import AutoModelForCausalLM

        from malmoi.models.classifier import quiet_transformers
        from malmoi.text.subword import load_tokenizer

        run = Path(run)
        meta = read_meta(run)
        if meta.get("task") != "lm":
            raise MalmoiError("E426", f"{run} holds a {meta.get('architecture') or meta.get('task')!r} model, "
                                      "not a language model")
        if not (run / "config.json").is_file() or not (run / "model.safetensors").is_file():
            raise MalmoiError("E427", f"{run} has no trained model yet (training did not finish; use --resume)")
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(run, dtype=torch.float32)
        return cls(model, load_tokenizer(run), run, chat=meta.get("format") == "chat")

    def settings(self, *, beams: int = 1, max_new_tokens: int | None = None, greedy: bool | None = None,
                 top_k: int | None = None, top_p: float | None = None, temperature: float | None = None,
                 repetition_penalty: float = 1.0, seed: int | None = None):
        """``GenerationSettings`` for this run's tokenizer. ``greedy=None`` samples when any of
        ``top_k`` / ``top_p`` / ``temperature`` is given, and decodes greedily otherwise."""
        from malmoi.models.generation import GenerationSettings

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
        from malmoi.models.generation import continuation, encode_prompt, encode_turn, generate

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
            prompts = [(encode_turn if self.chat else encode_prompt)(self.tokenizer, t) for t in group]
            ids, mask = _left_pad(prompts, settings.pad_token_id)
            sequences = generate(self.model, ids, settings, attention_mask=mask)
            new = sequences[:, ids.shape[1] :]
            scores = self._scores(sequences, mask, ids.shape[1], settings, beams > 1)
            for text, prompt, row, score in zip(group, prompts, new.tolist(), scores):
                row = _until_eos(row, settings.eos_token_id)
                pieces = self.tokenizer.convert_ids_to_tokens([i for i in row if i != settings.eos_token_id])
                said = continuation(self.tokenizer, [] if self.chat else prompt, row)
                answers.append(Answer(text, said, pieces, score))
        return answers

    def stream(self, text: str, *, beams: int = 1, max_new_tokens: int | None = None, **options) -> Iterator[str]:
        """Pieces of the continuation of ``text`` as they are generated (never half a syllable)."""
        from malmoi.models.generation import generate_text

        settings = self.settings(beams=beams, max_new_tokens=max_new_tokens, **options)
        return generate_text(self.model, self.tokenizer, text, settings, stream=True, reply=self.chat)

    def reply(self, text: str, beams: int = 1) -> str:
        """The continuation of one chat message."""
        return self.generate([text], beams=beams)[0].text

    def score(self, lines: Sequence[str], *, batch_size: int = 32, window: int | None = None) -> LMScore:
        """How well the model predicts ``lines``: Σ −ln p(line + ``[SEP]``) over the lines, each read
        as training read its documents (``[CLS]`` + its tokens; NFC-normalised first), with
        nats/char's denominator Σ (characters + 1) (``LMScore.nats_per_char``, ``models/charlm.py``).

        A line longer than ``window`` tokens (default: the run's ``block_size``, the positions
        training used; at most the model's positions) is scored by a sliding window that moves
        half a window at a time, each token predicted once from at least half a window before it.
        ``[UNK]`` is scored with the probability the model gives ``[UNK]``, which stands for every
        character the tokenizer lacks (a run of them is one ``[UNK]``): ``LMScore.unknown`` counts
        these tokens, and many make the figure optimistic."""
        import torch
        import torch.nn.functional as F

        from malmoi.models.charlm import LMScore, count_characters, prepare_lines
        from malmoi.models.presets import max_positions

        lines = prepare_lines(lines)
        positions = max_positions(self.model.config)
        if window is None:
            block = read_meta(self.run).get("block_size") if self.run is not None else None
            window = min(block or positions, positions)
        if not 2 <= window <= positions:
            raise MalmoiError("E222", f"window must be between 2 and the model's {positions} positions, got {window}")
        if batch_size < 1:
            raise MalmoiError("E223", f"batch_size must be at least 1, got {batch_size}")
        tok = self.tokenizer
        encoded = tok(lines, add_special_tokens=False)["input_ids"]
        pieces = [w for ids in encoded for w in _windows([tok.bos_token_id, *ids, tok.eos_token_id], window)]
        pieces.sort(key=lambda piece: len(piece[0]))  # similar lengths together: less padding
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        device = next(self.model.parameters()).device
        total = 0.0
        self.model.eval()
        with torch.inference_mode():
            for i in range(0, len(pieces), batch_size):
                batch = pieces[i : i + batch_size]
                width = max(len(ids) for ids, _ in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                scored = torch.zeros((len(batch), width), dtype=torch.bool)  # the targets this piece predicts
                for row, (piece, first) in enumerate(batch):
                    ids[row, : len(piece)] = torch.tensor(piece)
                    mask[row, : len(piece)] = 1
                    scored[row, first : len(piece)] = True
                ids, mask, scored = ids.to(device), mask.to(device), scored.to(device)
                # Right padding keeps every real token at the position training gave it (0, 1, …).
                logits = self.model(ids, attention_mask=mask).logits[:, :-1]  # (B, T-1, V)
                nll = F.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:], reduction="none")  # (B, T-1)
                total += float(nll[scored[:, 1:]].double().sum())
        unk = tok.unk_token_id
        return LMScore(total_nats=total, characters=count_characters(lines), lines=len(lines),
                       tokens=sum(len(ids) + 1 for ids in encoded),
                       unknown=sum(ids.count(unk) for ids in encoded) if unk is not None else 0)

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


def _windows(ids: list[int], window: int) -> list[tuple[list[int], int]]:
    """``ids`` as (window of at most ``window`` ids, index of its first target to score) pieces that
    together score ids[1:] once each; after the first, each piece starts half a window later and
    scores only its last half, so every prediction keeps at least half a window of context."""
    stride = window // 2
    pieces, start = [(ids[:window], 1)], 0
    while start + window < len(ids):
        start += stride
        pieces.append((ids[start : start + window], window - stride))
    return pieces


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
