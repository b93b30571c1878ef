"""A trained LSTM seq2seq run: answers, beam search and attention maps for new texts; and what every
seq2seq family's use shares (the run check, the encoding of inputs to answer)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Sequence

from malmoi.errors import MalmoiError
from malmoi.runs import read_meta
from malmoi.text.codecs import load_codec
from malmoi.use.results import Answer, AttentionMap


def trained_run_meta(run: Path, architecture: str, files: Sequence[str] = ("config.json", "model.safetensors")) -> dict:
    """malmoi.json of ``run``, refused unless it holds a trained ``architecture`` model (the neural
    families write ``config.json`` and ``model.safetensors``; others name their own ``files``)."""
    meta = read_meta(run)
    if meta.get("architecture") != architecture:
        raise MalmoiError("E426", f"{run} holds a {meta.get('architecture') or meta.get('task')!r} model, "
                                  f"not {architecture}")
    if not all((run / name).is_file() for name in files):
        raise MalmoiError("E427", f"{run} has no trained model yet (training did not finish; use --resume)")
    return meta


def encode_sources(codec, texts: Sequence[str], limit: int) -> list[list[int]]:
    """Source ids of the inputs to answer. Unlike training, a text longer than ``limit`` tokens
    (the model's --max-source-length) is refused, not truncated: the answer would ignore its end."""
    from malmoi.data.datasets import encode_all

    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise MalmoiError("E428", f"inputs must be strings, got {type(bad[0]).__name__}")
    if any(not t.strip() for t in texts):
        raise MalmoiError("E421", "empty input: give a sentence to answer")
    codec.prepare(texts)
    ids = encode_all(texts, codec.source_encoder)
    for text, seq in zip(texts, ids):
        if not seq:
            raise MalmoiError("E421", f"empty input: {text!r} has no tokens")
        if len(seq) > limit:
            short = text if len(text) <= 40 else text[:40] + "…"
            raise MalmoiError("E423", f"input is {len(seq)} tokens long ({short!r}); this model takes at most "
                                      f"{limit} (its --max-source-length)")
    return ids


class Seq2SeqGenerator:
    """A trained LSTM seq2seq run: answers, beam search and attention maps for new texts."""

    continues_prompt: ClassVar[bool] = False
    """Answers are new texts, not continuations of the input (``malmoi generate`` prints them alone)."""
    samples: ClassVar[bool] = False
    """Greedy or beam search only: no sampling options."""

    def __init__(self, model, codec, run: Path | None = None):
        self.model = model.eval()
        self.codec = codec
        self.run = run

    @property
    def tokenizer(self):
        """What turns text into ids: the subword tokenizer, or the word/syllable/morpheme codec."""
        return getattr(self.codec, "tokenizer", self.codec)

    @classmethod
    def from_run(cls, run: str | os.PathLike) -> "Seq2SeqGenerator":
        from malmoi.models.lstm import LSTMSeq2Seq

        run = Path(run)
        meta = trained_run_meta(run, "lstm-seq2seq")
        return cls(LSTMSeq2Seq.load(run), load_codec(run, meta.get("units", "subword")), run)

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        return encode_sources(self.codec, texts, self.model.config.max_source_len)

    def _decode_batch(self, ids: list[list[int]], beams: int, max_new_tokens: int | None, length_penalty: float):
        import torch

        from malmoi.data.batching import pad_sequences

        src = pad_sequences(ids, self.model.config.pad_id)
        lengths = torch.tensor([len(s) for s in ids])
        return self.model.generate(src, lengths, beams=beams, length_penalty=length_penalty, max_len=max_new_tokens)

    def generate(self, texts: str | Sequence[str], *, beams: int = 1, max_new_tokens: int | None = None,
                 length_penalty: float = 1.0, batch_size: int = 64) -> list[Answer]:
        """One ``Answer`` per text (greedy for beams=1, beam search otherwise)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if max_new_tokens is not None and max_new_tokens < 1:
            raise MalmoiError("E201", f"max_new_tokens must be at least 1, got {max_new_tokens}")
        ids = self._encode(texts)
        answers: list[Answer] = []
        for start in range(0, len(ids), batch_size):
            gen = self._decode_batch(ids[start:start + batch_size], beams, max_new_tokens, length_penalty)
            for text, tokens, score in zip(texts[start:start + batch_size], gen.tokens, gen.scores):
                answers.append(Answer(text, self.codec.decode(tokens), self.codec.pieces(tokens), float(score)))
        return answers

    def stream(self, text: str, *, beams: int = 1, max_new_tokens: int | None = None) -> Iterator[str]:
        """The answer to ``text`` as one piece: an LSTM answer is decoded whole in milliseconds, and a
        morpheme codec's text is only final once Kiwi has joined the whole answer."""
        yield self.generate([text], beams=beams, max_new_tokens=max_new_tokens)[0].text

    def reply(self, text: str, beams: int = 1) -> str:
        """The answer to one chat message."""
        return self.generate([text], beams=beams)[0].text

    def attention(self, text: str, *, beams: int = 1, max_new_tokens: int | None = None) -> AttentionMap:
        """Where each generated token of the answer to ``text`` looked in the source."""
        if self.model.config.attention == "none":
            raise MalmoiError("E429", f"{self.run or 'this model'} has no attention (preset lstm); "
                                      "train with --preset lstm-bahdanau or lstm-luong")
        ids = self._encode([text])
        gen = self._decode_batch(ids, beams, max_new_tokens, 1.0)
        tokens, weights = gen.tokens[0], gen.attentions[0]
        return AttentionMap(self.codec.pieces(ids[0]), self.codec.pieces(tokens), weights.tolist(), text,
                            self.codec.decode(tokens))
