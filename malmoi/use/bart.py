"""A trained BART seq2seq run (``train seq2seq --preset bart-mini``): answers (greedy, beams,
sampling) through Hugging Face ``generate()``, streaming, and attention maps.

Attention maps come from one teacher-forced pass over the generated answer with eager attention
(sdpa computes no weights to return): the cross-attention of one decoder layer, averaged over its heads.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Sequence

from malmoi.errors import MalmoiError
from malmoi.tasks.bart import ARCHITECTURE, answer_ids, load_exported
from malmoi.text.codecs import SubwordCodec
from malmoi.use.results import Answer, AttentionMap
from malmoi.use.seq2seq import encode_sources, trained_run_meta


class BartGenerator:
    """A trained BART seq2seq run: answers (greedy, beams, sampling), streaming, attention maps."""

    continues_prompt: ClassVar[bool] = False
    """Answers are new texts, not continuations of the input (``malmoi generate`` prints them alone)."""
    samples: ClassVar[bool] = True
    """Takes sampling options (``top_k``, ``top_p``, ``temperature`` …)."""

    def __init__(self, model, codec, max_source_length: int, max_target_length: int,
                 run: Path | None = None, beams: int = 1):
        self.model = model.eval()
        self.codec = codec
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.run = run
        self.beams = beams
        """The run's default decoding: 1 (greedy) or the beam width its training chose on validation."""

    @property
    def tokenizer(self):
        """The subword tokenizer that turns text into ids."""
        return self.codec.tokenizer

    @classmethod
    def from_run(cls, run: str | os.PathLike) -> "BartGenerator":
        run = Path(run)
        meta = trained_run_meta(run, ARCHITECTURE)
        return cls(load_exported(run), SubwordCodec.load(run), int(meta.get("max_source_length", 64)),
                   int(meta.get("max_target_length", 64)), run, int(meta.get("decoding", {}).get("beams", 1)))

    # -- inputs and settings

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        return encode_sources(self.codec, texts, self.max_source_length)

    def _batch(self, ids: list[list[int]]):
        """(input_ids, attention_mask), right-padded as in training."""
        from malmoi.data.batching import pad_with_mask

        return pad_with_mask(ids, self.codec.pad_id)

    def settings(self, *, beams: int | None = None, max_new_tokens: int | None = None, greedy: bool | None = None,
                 top_k: int | None = None, top_p: float | None = None, temperature: float | None = None,
                 repetition_penalty: float = 1.0, seed: int | None = None):
        """``GenerationSettings`` for this run. ``greedy=None`` samples when any of ``top_k`` /
        ``top_p`` / ``temperature`` is given, and decodes greedily otherwise. ``beams=None`` is the
        run's default decoding (``self.beams``), unless sampling or ``greedy`` is asked for."""
        from malmoi.models.generation import GenerationSettings
        from malmoi.models.presets import max_positions

        sampling = any(v is not None for v in (top_k, top_p, temperature))
        if greedy and sampling:
            raise MalmoiError("E274", "--greedy cannot be combined with --top-k, --top-p or --temperature")
        if beams is None:
            beams = self.beams if greedy is None and not sampling else 1
        if beams < 1:
            raise MalmoiError("E224", f"--beams must be at least 1, got {beams}")
        if beams > 1 and (sampling or greedy is False):
            raise MalmoiError("E274", "--beams runs beam search; leave out --top-k, --top-p and --temperature")
        new = self.max_target_length if max_new_tokens is None else max_new_tokens
        if new < 1:
            raise MalmoiError("E201", f"max_new_tokens must be at least 1, got {new}")
        if new + 1 > max_positions(self.model.config):
            raise MalmoiError("E222", f"--max-new-tokens {new} exceeds the decoder's "
                                      f"{max_positions(self.model.config) - 1} positions")
        return GenerationSettings(
            max_new_tokens=new, greedy=not sampling if greedy is None else greedy, beams=beams,
            top_k=top_k or 0, top_p=1.0 if top_p is None else top_p,
            temperature=1.0 if temperature is None else temperature, repetition_penalty=repetition_penalty,
            eos_token_id=self.codec.eos_id, pad_token_id=self.codec.pad_id, seed=seed,
        )

    # -- generation

    def _generate(self, ids: list[list[int]], settings, length_penalty: float):
        """Hugging Face ``generate()`` on one batch: (answer ids per row, score per row)."""
        import torch

        src, mask = self._batch(ids)
        kwargs = settings.hf_kwargs()
        if settings.beams > 1:
            kwargs["length_penalty"] = length_penalty
        with torch.random.fork_rng(devices=[]):
            if settings.seed is not None:
                torch.manual_seed(settings.seed)
            with torch.inference_mode():
                # beam search reports its ranking scores only with output_scores
                out = self.model.generate(input_ids=src, attention_mask=mask, return_dict_in_generate=True,
                                          output_logits=settings.beams == 1, output_scores=settings.beams > 1,
                                          **kwargs)
        new = out.sequences[:, 1:]  # (B, T) after the decoder start
        rows = [answer_ids(r, self.codec.eos_id, self.codec.pad_id) for r in new.tolist()]
        if settings.beams > 1:
            return rows, [float(s) for s in out.sequences_scores]
        # log p of each chosen token under the model (unwarped logits), through the first eos
        logp = torch.log_softmax(torch.stack(out.logits, 1).float(), -1).gather(2, new.unsqueeze(2)).squeeze(2)
        ended = torch.cumsum((new == self.codec.eos_id).long(), 1)
        keep = (ended == 0) | ((ended == 1) & (new == self.codec.eos_id))
        return rows, [float(s) for s in (logp * keep).sum(1)]

    def generate(self, texts: str | Sequence[str], *, beams: int | None = None, max_new_tokens: int | None = None,
                 length_penalty: float = 1.0, batch_size: int = 64, **options) -> list[Answer]:
        """One ``Answer`` per text: the run's default decoding (greedy, or the beam width its training
        chose), greedy with ``beams=1``, beam search with ``beams`` > 1, sampling with
        ``top_k`` / ``top_p`` / ``temperature`` (``options`` as in ``settings``). The score is the
        answer's log-probability (length-normalised under beam search, as Hugging Face ranks beams)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        settings = self.settings(beams=beams, max_new_tokens=max_new_tokens, **options)
        ids = self._encode(texts)
        answers: list[Answer] = []
        for start in range(0, len(ids), batch_size):
            rows, scores = self._generate(ids[start:start + batch_size], settings, length_penalty)
            for text, row, score in zip(texts[start:start + batch_size], rows, scores):
                answers.append(Answer(text, self.codec.decode(row), self.codec.pieces(row), score))
        return answers

    def stream(self, text: str, *, beams: int | None = None, max_new_tokens: int | None = None,
               **options) -> Iterator[str]:
        """Pieces of the answer to ``text`` as they are generated (never half a syllable)."""
        from malmoi.models.generation import generate, stream_text

        settings = self.settings(beams=beams, max_new_tokens=max_new_tokens, **options)
        src, mask = self._batch(self._encode([text]))
        tokens = (int(t[0]) for t in generate(self.model, src, settings, attention_mask=mask, stream=True))
        return stream_text(self.codec.tokenizer, [], tokens, settings.eos_token_id)

    def reply(self, text: str, beams: int | None = None) -> str:
        """The answer to one chat message."""
        return self.generate([text], beams=beams)[0].text

    # -- attention

    def cross_attention(self, source_ids: list[int], answer: list[int], layer: int = -1):
        """Cross-attention (len(answer) + 1, len(source_ids)) of decoder ``layer``, averaged over
        heads: row t is what the decoder read while choosing token t + 1 of ``[CLS] answer [SEP]``."""
        import torch

        src, mask = self._batch([source_ids])
        decoder_ids = torch.tensor([[self.model.config.decoder_start_token_id, *answer]])
        previous = self.model.config._attn_implementation
        self.model.set_attn_implementation("eager")  # sdpa computes no attention weights to return
        try:
            with torch.inference_mode():
                out = self.model(input_ids=src, attention_mask=mask, decoder_input_ids=decoder_ids,
                                 output_attentions=True)
        finally:
            self.model.set_attn_implementation(previous)
        return out.cross_attentions[layer][0].float().mean(0)  # (heads, T, S) → (T, S)

    def attention(self, text: str, *, beams: int | None = None, max_new_tokens: int | None = None,
                  layer: int | None = None) -> AttentionMap:
        """Where each generated token of the answer to ``text`` looked in the source: decoder
        ``layer``'s cross-attention (default the last; negative counts from the end), head average."""
        layers = self.model.config.decoder_layers
        layer = layers - 1 if layer is None else layer
        if not -layers <= layer < layers:
            raise MalmoiError("E280", f"--layer {layer} does not exist; this decoder has layers 0 to {layers - 1}")
        ids = self._encode([text])
        rows, _ = self._generate(ids, self.settings(beams=beams, max_new_tokens=max_new_tokens), 1.0)
        answer = rows[0]
        weights = self.cross_attention(ids[0], answer, layer)
        shown = answer if answer else [self.codec.eos_id]  # an empty answer: show the step that ended it
        return AttentionMap(self.codec.pieces(ids[0]), self.codec.pieces(shown), weights[: len(shown)].tolist(),
                            text, self.codec.decode(answer))
