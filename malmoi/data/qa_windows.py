"""(question, context) pairs → token windows for extractive question answering.

Each pair becomes ``[CLS] question [SEP] context window [SEP]``. A context longer than
``max_length`` allows is cut into overlapping windows (``stride`` tokens shared by neighbours,
as Hugging Face's ``run_qa`` does), so every context character lies in some window and an answer
near a cut is whole in the next one. Each window keeps, per token, its character span in the
context (``None`` outside the context), which is how a predicted token span becomes context
characters again, and a ``question_match`` level (``match_levels``): whether the token shares a
character bigram with the question (DrQA's exact-match feature, on characters because Korean
words carry particles: 혐의로 and 혐의 share 혐의), how many of its near neighbours do, and how many
do within about a sentence. For a model trained on a few thousand questions this is the cheapest
strong hint of where the answer is.

Training labels (``answer_positions``) are the first and last token of the gold answer in the
windows that hold it whole, and [CLS] (position 0) in the others.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from malmoi.errors import MalmoiError

Span = tuple[int, int]


@dataclass
class QAWindows:
    """Token windows of (question, context) pairs, one entry per window in every list."""

    input_ids: list[list[int]] = field(default_factory=list)
    token_type_ids: list[list[int]] = field(default_factory=list)
    question_match: list[list[int]] = field(default_factory=list)
    """``match_levels`` of each token (0 outside the context)."""
    offsets: list[list[Span | None]] = field(default_factory=list)
    """Each token's (start, end) characters in the context; None for question and special tokens."""
    example: list[int] = field(default_factory=list)
    """The index of the pair each window comes from."""

    def __len__(self) -> int:
        return len(self.input_ids)

    def select(self, kept: Sequence[int]) -> "QAWindows":
        """The windows at positions ``kept``, in that order."""
        return QAWindows(*([values[i] for i in kept] for values in (
            self.input_ids, self.token_type_ids, self.question_match, self.offsets, self.example)))

    def windows_of(self) -> dict[int, list[int]]:
        """Pair index → its window indices, in order."""
        found: dict[int, list[int]] = {}
        for w, e in enumerate(self.example):
            found.setdefault(e, []).append(w)
        return found


def _cut_question(tokenizer, question: str, max_question_length: int) -> str:
    """The question, cut after its ``max_question_length``-th token (a long question would leave no room
    for the context)."""
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    return question if len(offsets) <= max_question_length else question[:offsets[max_question_length - 1][1]]


MATCH_NEAR = 8
"""Context tokens on each side whose matches a token's level counts."""
MATCH_MOST = 7
"""Matching neighbours counted at most."""
NEAR_LEVELS = 2 + 2 * (MATCH_MOST + 1)
"""Values of the near part: 0 outside the context, then 1 + matched + 2 × matching neighbours."""
MATCH_WIDE = 24
"""Context tokens on each side of the wide count (about a sentence at KorQuAD's one token per character)."""
WIDE_EDGES = (1, 2, 3, 5, 8, 12, 18)
"""The wide count's buckets start at these numbers of matching tokens (and at 0)."""
MATCH_LEVELS = NEAR_LEVELS * (len(WIDE_EDGES) + 1)
"""Values ``question_match`` takes: near level + ``NEAR_LEVELS`` × wide bucket. On KorQuAD (3 minutes,
one thread, F1 on 28 held-out articles) the near part alone scored 22.9; with the wide count 27.1 and
26.2 (seeds 42 and 7), with ±12 or ±48 tokens instead of ±24 25.1 and 25.0, with a third count over
±64 tokens 26.6."""


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1) if not any(c.isspace() for c in text[i:i + 2])}


def char_matches(question: str, context: str) -> list[bool]:
    """Per context character: whether a bigram it is part of (within a word) occurs in the question."""
    asked = _bigrams(question)
    flags = [False] * len(context)
    for i in range(len(context) - 1):
        if context[i:i + 2] in asked:
            flags[i] = flags[i + 1] = True
    return flags


def match_levels(flags: Sequence[bool], offsets: Sequence[Span | None]) -> list[int]:
    """Each token's question-match level from the per-character ``flags`` of its context: 0 outside the
    context, else 1 + (the token holds a matching character) + 2 × (how many of the ``MATCH_NEAR``
    context tokens on either side do, at most ``MATCH_MOST``), plus ``NEAR_LEVELS`` × the bucket
    (``WIDE_EDGES``) of how many tokens within ``MATCH_WIDE`` on either side match, itself included:
    the near part says the token sits among question words, the wide part that its sentence does."""
    inside = [i for i, o in enumerate(offsets) if o is not None]
    matched = [int(any(flags[offsets[i][0]:offsets[i][1]])) for i in inside]
    running = [0, *accumulate(matched)]

    def count(k: int, reach: int) -> int:
        return running[min(len(inside), k + reach + 1)] - running[max(0, k - reach)]

    levels = [0] * len(offsets)
    for k, i in enumerate(inside):
        near = count(k, MATCH_NEAR) - matched[k]
        levels[i] = 1 + matched[k] + 2 * min(near, MATCH_MOST) + NEAR_LEVELS * bisect_right(WIDE_EDGES,
                                                                                          count(k, MATCH_WIDE))
    return levels


def tokenize_windows(tokenizer: Any, questions: Sequence[str], contexts: Sequence[str], *, max_length: int,
                     stride: int, max_question_length: int, chunk: int = 1000) -> QAWindows:
    """The windows of every (question, context) pair, in pair order."""
    if len(questions) != len(contexts):
        raise MalmoiError("E115", f"{len(questions)} questions but {len(contexts)} contexts")
    if not getattr(tokenizer, "is_fast", False):
        raise MalmoiError("E491", "question answering needs a fast tokenizer (character offsets)")
    windows = QAWindows()
    for begin in range(0, len(questions), chunk):  # bounded memory on large files
        qs = [_cut_question(tokenizer, q, max_question_length) for q in questions[begin:begin + chunk]]
        enc = tokenizer(qs, list(contexts[begin:begin + chunk]), truncation="only_second", max_length=max_length,
                        stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                        return_token_type_ids=True, padding=False)
        flags: dict[int, list[bool]] = {}
        for w, ids in enumerate(enc["input_ids"]):
            sequence = enc.sequence_ids(w)
            pair = enc["overflow_to_sample_mapping"][w]
            if pair not in flags:
                flags[pair] = char_matches(qs[pair], contexts[begin + pair])
            offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][w], sequence)]
            windows.input_ids.append(list(ids))
            windows.token_type_ids.append([1 if s == 1 else 0 for s in sequence])
            windows.question_match.append(match_levels(flags[pair], offsets))
            windows.offsets.append(offsets)
            windows.example.append(begin + pair)
    return windows


def answer_positions(offsets: Sequence[Span | None], start: int, end: int) -> tuple[int, int]:
    """(first, last) token of the character span [start, end) in a window, or (0, 0) ([CLS]) when the
    window does not hold it whole."""
    inside = [i for i, o in enumerate(offsets) if o is not None]
    if not inside or offsets[inside[0]][0] > start or offsets[inside[-1]][1] < end:
        return 0, 0
    first = next(i for i in inside if offsets[i][1] > start)
    last = next(i for i in reversed(inside) if offsets[i][0] < end)
    return first, last


class QADataset(Dataset):
    """Windows (and, for training, the answer's token positions) → dicts of lists of ints. With
    ``named``, ``window`` names each item's window, so an evaluation that sees batches in any order
    can put answers back together."""

    def __init__(self, windows: QAWindows, answers: Sequence[Span | None] | None = None, named: bool = False):
        self.windows, self.named = windows, named
        self.positions = None
        if answers is not None:  # character span per pair → token positions per window
            self.positions = [answer_positions(windows.offsets[w], *answers[e]) if answers[e] else (0, 0)
                              for w, e in enumerate(windows.example)]
        self.lengths = [len(ids) for ids in windows.input_ids]

    def __len__(self) -> int:
        return len(self.windows)

    def keeping_unanswered(self, share: float, seed: int) -> "QADataset":
        """This training set with only ``share`` of its windows that do not hold the answer (a seeded
        choice); the windows that do are all kept."""
        import random

        unanswered = [i for i, p in enumerate(self.positions) if p == (0, 0)]
        dropped = set(random.Random(seed).sample(unanswered, len(unanswered) - round(share * len(unanswered))))
        kept = [i for i in range(len(self)) if i not in dropped]
        subset = QADataset(self.windows.select(kept), named=self.named)
        subset.positions = [self.positions[i] for i in kept]
        return subset

    def __getitem__(self, i: int) -> dict[str, Any]:
        w = self.windows
        item = {"input_ids": w.input_ids[i], "token_type_ids": w.token_type_ids[i],
                "attention_mask": [1] * len(w.input_ids[i]), "question_match": w.question_match[i]}
        if self.named:
            item["window"] = i
        if self.positions is not None:
            item["start_positions"], item["end_positions"] = self.positions[i]
        return item


@dataclass
class QACollator:
    """Pads a batch of ``QADataset`` items: ``input_ids`` with ``pad_id``, the other sequences with 0."""

    pad_id: int = 0

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        from malmoi.data.batching import pad_sequences

        if not items:
            raise MalmoiError("E114", "cannot collate an empty batch")
        batch = {}
        for key, first in items[0].items():
            values = [item[key] for item in items]
            batch[key] = torch.tensor(values) if isinstance(first, int) else \
                pad_sequences(values, self.pad_id if key == "input_ids" else 0)
        return batch
