"""Codecs: text ↔ ids for each kind of unit a seq2seq model reads, so that the model never sees text.

* ``SubwordCodec`` (``subword``, the default): a BPE tokenizer trained on both sides after cutting
  at Kiwi morpheme boundaries (``train_tokenizer(kind="bpe", morphemes=True)``), or a given
  tokenizer folder; BPE decodes back to the original spacing.
* ``VocabCodec`` (``morphemes``): a ``Vocab`` of Kiwi morphemes with their tags (``좋아하/VV``),
  decoded by Kiwi's ``join``, which restores the surface forms (``좋아하 + 어`` → ``좋아해``).
* ``VocabCodec`` (``words`` / ``chars``): a ``Vocab`` of whitespace words / syllables.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from malmoi.errors import MalmoiError

UNITS = ("subword", "morphemes", "words", "chars")
VOCAB_FILE = "malmoi_vocab.json"


class _TargetTokenizer:
    """A tokenizer whose outputs lose the leading ``<bos>`` its post-processor adds: target ids
    must read ``y … <eos>``, since the decoder puts its own ``<bos>`` in front. Looks like a
    Hugging Face tokenizer to ``encode_all``, so targets are still encoded in one batched call."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def convert_tokens_to_ids(self, tokens):
        return self.tokenizer.convert_tokens_to_ids(tokens)

    def __call__(self, texts, **kwargs):
        bos = self.tokenizer.bos_token_id
        ids = self.tokenizer(texts, **kwargs)["input_ids"]
        return {"input_ids": [s[1:] if s and s[0] == bos else s for s in ids]}


class SubwordCodec:
    """Text ↔ ids through a subword tokenizer (``[CLS]`` is ``<bos>``, ``[SEP]`` is ``<eos>``)."""

    units = "subword"

    def __init__(self, tokenizer):
        if tokenizer.bos_token_id is None or tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
            raise MalmoiError("E431", "a seq2seq tokenizer needs pad, bos and eos tokens "
                                      "(malmoi tokenizers use [PAD], [CLS], [SEP])")
        self.tokenizer = tokenizer
        self.pad_id, self.bos_id, self.eos_id = tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id
        self.vocab_size = len(tokenizer)
        self.source_encoder = tokenizer
        self.target_encoder = _TargetTokenizer(tokenizer)

    @classmethod
    def train(cls, texts: Sequence[str], vocab_size: int) -> "SubwordCodec":
        from malmoi.text.subword import train_tokenizer

        return cls(train_tokenizer(texts, kind="bpe", vocab_size=vocab_size, morphemes=True))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "SubwordCodec":
        from malmoi.text.subword import load_tokenizer

        return cls(load_tokenizer(folder))

    def save(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder)

    def prepare(self, texts: Sequence[str]) -> None:
        """Nothing to precompute: the tokenizer encodes batches itself."""

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(list(ids))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()


def split_units(texts: Sequence[str], units: str) -> list[list[str]]:
    """Tokens of each text: whitespace words, syllables (spaces kept as ``▁``) or tagged morphemes."""
    from malmoi.text.words import split_chars, split_morphemes, split_words

    if units == "morphemes":
        return split_morphemes(list(texts), pos=True) if texts else []  # one batched Kiwi call
    if units == "chars":
        return [split_chars(t, keep_spaces=True) for t in texts]
    return [split_words(t) for t in texts]


class VocabCodec:
    """Text ↔ ids through a word, syllable or Kiwi-morpheme ``Vocab``."""

    def __init__(self, vocab, units: str):
        self.vocab, self.units = vocab, units
        self.pad_id, self.bos_id, self.eos_id = vocab.pad_id, vocab.bos_id, vocab.eos_id
        self.vocab_size = len(vocab)
        self._split_cache: dict[str, list[str]] = {}
        self.source_encoder: Callable[[str], list[int]] = lambda t: vocab.encode(self._split_one(t))
        self.target_encoder: Callable[[str], list[int]] = lambda t: vocab.encode(self._split_one(t), add_eos=True)

    def split(self, texts: Sequence[str]) -> list[list[str]]:
        return split_units(texts, self.units)

    def prepare(self, texts: Sequence[str]) -> None:
        """Split many texts at once (Kiwi's batch API) before the per-text encoders ask for them."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._split_cache]
        self._split_cache.update(zip(todo, self.split(todo)))

    def _split_one(self, text: str) -> list[str]:
        if text not in self._split_cache:
            self.prepare([text])
        return self._split_cache[text]

    @classmethod
    def train(cls, texts: Sequence[str], units: str, vocab_size: int) -> "VocabCodec":
        from malmoi.text.vocab import Vocab

        return cls(Vocab.build(split_units(texts, units), max_size=max(0, vocab_size - 4)), units)

    @classmethod
    def load(cls, folder: str | os.PathLike, units: str) -> "VocabCodec":
        from malmoi.text.vocab import Vocab

        return cls(Vocab.load(Path(folder) / VOCAB_FILE), units)

    def save(self, folder: Path) -> None:
        self.vocab.save(Path(folder) / VOCAB_FILE)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.vocab.itos[int(i)] for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        tokens = self.vocab.decode(ids)
        if self.units == "words":
            return " ".join(tokens)
        if self.units == "chars":
            from malmoi.text.words import SPACE_MARK

            return "".join(tokens).replace(SPACE_MARK, " ").strip()
        from malmoi.text.words import kiwi

        if not tokens:
            return ""
        morphs = [tuple(t.rsplit("/", 1)) if "/" in t[1:] else (t, "NNG") for t in tokens]  # <unk> has no tag
        return kiwi().join(morphs)


def build_codec(units: str, texts: Sequence[str], vocab_size: int, tokenizer: str | os.PathLike | None):
    if tokenizer is not None:
        return SubwordCodec.load(tokenizer)
    if units == "subword":
        return SubwordCodec.train(texts, vocab_size)
    return VocabCodec.train(texts, units, vocab_size)


def load_codec(run: Path, units: str):
    return SubwordCodec.load(run) if units == "subword" else VocabCodec.load(run, units)
