"""Language-model quality in nats per character, and a character n-gram model to compare with.

Any language model that gives a probability to a whole line is scored the same way::

    nats/char = Σ −ln p(line + end) / Σ (len(NFC(line)) + 1)

over the lines, where ``end`` is the model's end-of-text (``[SEP]`` for a GPT run, the
end-of-line symbol here) and the ``+ 1`` counts it as one character. Characters, not tokens, make
models with different tokenizers comparable. ``LMScore`` holds the sums;
``LMGenerator.score`` (``use/lm.py``) fills one for a trained GPT run, ``CharNgramLM.score`` for this
model.

``CharNgramLM`` is interpolated absolute discounting (Ney, Essen & Kneser 1994) over characters::

    p_k(c | h) = max(n(h c) − D_k, 0) / n(h)  +  D_k · N1+(h •) / n(h) · p_{k−1}(c | h')

with ``h`` the last k−1 characters, ``h'`` the last k−2, ``n(h) = Σ_c n(h c)``, ``N1+(h •)`` the
number of distinct characters seen after ``h``, and ``D_k = n1 / (n1 + 2 n2)`` from the
count-of-counts of order k. A context never seen hands its whole mass to the order below; order 0
is uniform over the characters seen in training + the end symbol + one unknown symbol, which every
unseen character shares, so no probability is zero and ``Σ_c p(c | h) = 1`` for every ``h``.
A line is read as ``N − 1`` start symbols, its characters, then the end symbol.
"""
from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from malmoi.errors import MalmoiError

END = "\n"
"""The end-of-line symbol; a line cannot hold it."""
START = "\x00"
"""Context before a line's first character; never predicted, and a line cannot hold it."""


@dataclass
class LMScore:
    """How well a language model predicts some lines: sums, so scores of batches add up."""

    total_nats: float
    """Σ −ln p(line + end) over the lines."""
    characters: int
    """Σ (characters of the NFC line + 1 for the end): the denominator of ``nats_per_char``."""
    lines: int
    """Lines scored."""
    tokens: int
    """Predictions made: the model's tokens of every line, plus its end token."""
    unknown: int
    """Predictions of an unknown symbol (a tokenizer's ``[UNK]``, a character unseen in training);
    each stands for whatever it replaced at one shared probability, so many make the figure optimistic."""

    @property
    def nats_per_char(self) -> float:
        return self.total_nats / self.characters

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2)

    def to_dict(self) -> dict:
        return {**asdict(self), "nats_per_char": self.nats_per_char, "bits_per_char": self.bits_per_char}


def prepare_lines(lines: Iterable[str]) -> list[str]:
    """``lines`` NFC-normalised, after checking they can be scored (a list of strings, not empty, none
    holding a line break or NUL)."""
    if isinstance(lines, str):
        raise MalmoiError("E428", "lines must be a list of strings, not one string")
    lines = list(lines)
    if not lines:
        raise MalmoiError("E472", "no lines to score or train on")
    if any(not isinstance(line, str) for line in lines):
        raise MalmoiError("E428", "lines must be strings")
    lines = [unicodedata.normalize("NFC", line) for line in lines]
    for i, line in enumerate(lines):
        if END in line or START in line:
            raise MalmoiError("E473", f"line {i + 1} holds a line break or NUL; split the text into lines first")
    return lines


def count_characters(lines: Sequence[str]) -> int:
    """The denominator of nats/char for already NFC-normalised lines: each line's characters + 1 for its end."""
    return sum(len(line) + 1 for line in lines)


class CharNgramLM:
    """A character n-gram language model with interpolated absolute discounting (see the module).

    Counting is numpy over integer codes (a k-gram of character ids is one base-``V`` number, so it
    must fit 63 bits: order 5 allows about 6,200 distinct characters), which keeps 16M characters
    to seconds per order; the tables are sorted arrays looked up with ``searchsorted``."""

    def __init__(self, lines: Iterable[str], order: int = 5):
        if not 1 <= order <= 20:
            raise MalmoiError("E201", f"the n-gram order must be between 1 and 20, got {order}")
        self.order = order
        lines = prepare_lines(lines)
        # Every line behind its own order−1 start symbols, all in one string: a k-gram ending at a
        # start symbol predicts nothing and is dropped; any other ends at a character or an end
        # symbol, and its context never reaches past its line's start symbols.
        text = _padded(lines, order)
        self.alphabet = np.union1d(_code_points(text), [ord(START)])  # sorted: START is id 0
        self.base = len(self.alphabet) + 1  # id len(alphabet) is the unknown symbol
        if self.base ** order >= 2**63:
            raise MalmoiError("E201", f"order {order} over {len(self.alphabet)} distinct characters does not fit "
                                      "64-bit n-gram codes; lower the order")
        self.symbols = [chr(c) for c in self.alphabet[1:]]
        """Every character seen in training, and the end symbol."""
        self.uniform = 1.0 / (len(self.symbols) + 1)  # + the unknown symbol
        self.tables = [_NgramTable.count(codes, self.base) for codes in self._codes(self._ids(text))]

    def _codes(self, ids: np.ndarray) -> Iterator[np.ndarray]:
        """For k = 1 … order, the codes of the k-grams that end at a predicted symbol (not START),
        one per such position, in order; a padded text gives every such position order−1 symbols
        before it, so the k lists line up."""
        predicted = ids != 0
        codes = ids
        for k in range(1, self.order + 1):
            if k > 1:  # codes[i] is the k-gram starting at i
                codes = codes[:-1] * self.base + ids[k - 1:]
            yield codes[predicted[k - 1:]]

    def _ids(self, text: str) -> np.ndarray:
        points = _code_points(text)
        i = np.searchsorted(self.alphabet, points).clip(max=len(self.alphabet) - 1)
        return np.where(self.alphabet[i] == points, i, self.base - 1).astype(np.int64)

    def _probs(self, ids: np.ndarray) -> np.ndarray:
        """p(symbol | the order−1 before it) at every predicted position of ``ids`` (a padded text)."""
        p = np.full(int((ids != 0).sum()), self.uniform)
        for table, codes in zip(self.tables, self._codes(ids)):
            p = table.interpolate(codes, p, self.base)
        return p

    def prob(self, char: str, context: str = "") -> float:
        """p(char | context); ``context`` is the text before ``char`` in its line (the start symbols
        in front are implied), and ``END`` asks for the end of the line."""
        return float(self._probs(self._ids(START * (self.order - 1) + context + char))[-1])

    def score(self, lines: Iterable[str]) -> LMScore:
        """Σ −ln p(line + end) over ``lines`` (NFC-normalised first), with the nats/char denominator."""
        lines = prepare_lines(lines)
        ids = self._ids(_padded(lines, self.order))
        p = self._probs(ids)
        chars = count_characters(lines)
        assert len(p) == chars
        return LMScore(total_nats=float(-np.log(p).sum()), characters=chars, lines=len(lines), tokens=chars,
                       unknown=int((ids == self.base - 1).sum()))


class _NgramTable:
    """The counts of one order k: sorted k-gram codes and their counts, and for each context (the
    code of its first k−1 symbols) n(h) and N1+(h •); with the order's discount D."""

    def __init__(self, grams, counts, contexts, totals, types, discount: float):
        self.grams, self.counts, self.contexts, self.totals, self.types = grams, counts, contexts, totals, types
        self.discount = discount

    @classmethod
    def count(cls, codes: np.ndarray, base: int) -> _NgramTable:
        grams, counts = np.unique(codes, return_counts=True)
        # Sorted codes have their contexts (code // base) sorted too, each context's k-grams together.
        contexts, first, types = np.unique(grams // base, return_index=True, return_counts=True)
        totals = np.add.reduceat(counts, first)
        return cls(grams, counts, contexts, totals, types, _ney_discount(counts))

    def interpolate(self, codes: np.ndarray, lower: np.ndarray, base: int) -> np.ndarray:
        """p_k at each k-gram ``codes`` from p_{k−1} (``lower``); an unseen context keeps ``lower``."""
        at, found = _find(self.grams, codes)
        n = np.where(found, self.counts[at], 0)
        at, seen = _find(self.contexts, codes // base)  # one search serves both context tables
        total, types = np.where(seen, self.totals[at], 0), np.where(seen, self.types[at], 0)
        d = self.discount
        mixed = (np.maximum(n - d, 0.0) + d * types * lower) / np.maximum(total, 1)
        return np.where(seen, mixed, lower)


def _find(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each ``query`` would sit in the sorted ``keys``, and whether it is there."""
    i = np.searchsorted(keys, query).clip(max=len(keys) - 1)
    return i, keys[i] == query


def _padded(lines: Sequence[str], order: int) -> str:
    pad = START * (order - 1)
    return pad + (END + pad).join(lines) + END


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _ney_discount(counts: np.ndarray) -> float:
    """D = n1 / (n1 + 2 n2) (Ney et al.'s estimate); 0.5 when no count is 1, so mass still reaches
    unseen characters (D must stay in (0, 1] for the distribution to be proper and never zero)."""
    n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
    return n1 / (n1 + 2 * n2) if n1 else 0.5
