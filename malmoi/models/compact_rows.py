"""Choosing which rows of an n-gram classifier's tables a compact model keeps (``models/compact.py``).

Rows are ranked by ``compact.importance`` (how far a row can move the logits); rows no training
text holds go first, whatever their values (they were never trained). The same share of every
member's rows is kept: the largest share that fits a size (``fit_share``), or after training the
smallest share (a tenth at least) whose validation accuracy stays within 0.15 points of the full
model's (``choose_share``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from malmoi.errors import MalmoiError
from malmoi.models.compact import compact_model, importance, member_rows, stored_bytes
from malmoi.sizes import format_size


def row_counts(model, encoded) -> list[torch.Tensor]:
    """Per member, (R,) how many texts of ``encoded`` (``text.ngrams.Encoded``) hold each row of
    ``member_rows``: a row no training text holds was never trained, it holds its random start."""
    ids = torch.from_numpy(encoded.ids)[None]
    doc = np.repeat(np.arange(len(encoded), dtype=np.int64), encoded.lengths)
    counts = []
    for member in model.members:
        rows = member.read_rows(ids)[0][0].numpy()  # 0 = not read (or not kept)
        size = len(member.embed.weight)
        # each (text, row) once: numpy's sort, then the first of each run
        pairs = np.sort((doc * size + rows)[rows != 0])
        first = np.ones(len(pairs), dtype=bool)
        first[1:] = pairs[1:] != pairs[:-1]
        kept = len(member_rows(member)[0])
        counts.append(torch.from_numpy(np.bincount(pairs[first] % size, minlength=size)[1:kept + 1]))
    return counts


def row_scores(model, counts: list[torch.Tensor] | None) -> list[torch.Tensor]:
    """Per member, (R,) the order rows are kept in: importance, with unseen rows (count 0) at -1."""
    scores = []
    for i, member in enumerate(model.members):
        score = importance(member, member_rows(member)[1])
        if counts is not None:
            score = torch.where(counts[i] > 0, score, -1.0)
        scores.append(score)
    return scores


class Ranking:
    """Each member's rows from the most to the least important, and how many may be kept at all
    (unseen rows never are)."""

    def __init__(self, scores: list[torch.Tensor]):
        self.order = [torch.argsort(s, descending=True, stable=True) for s in scores]
        self.allowed = [max(1, int((s >= 0).sum())) for s in scores]

    def counts(self, share: float) -> list[int]:
        """Rows kept per member at ``share`` of its table (at least one)."""
        return [min(allowed, max(1, round(share * len(order)))) for order, allowed in zip(self.order, self.allowed)]

    def masks(self, share: float) -> list[torch.Tensor]:
        """Per member, a bool per row: the ``counts(share)`` most important."""
        masks = []
        for order, k in zip(self.order, self.counts(share)):
            mask = torch.zeros(len(order), dtype=torch.bool)
            mask[order[:k]] = True
            masks.append(mask)
        return masks


def fit_share(model, ranking: Ranking, bits: int, target: int) -> float:
    """The largest share of rows (a bisection) whose stored model fits ``target`` bytes."""
    def size(share: float) -> int:
        return stored_bytes(model, ranking.counts(share), bits)

    if size(0.0) > target:
        raise MalmoiError("E291", f"--target-size {format_size(target)} is out of reach: the smallest this model "
                                  f"can be stored in is {format_size(size(0.0))} ({bits} bits, one row per member)")
    if size(1.0) <= target:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if size(middle) <= target else (low, middle)
    return low


SHARES = (0.1, 0.2, 0.4)
"""Shares of each table tried after training, smallest first (``choose_share``). A tenth at the least: on
NSMC, 4 bits, validation and test agreed from there on (0.1: -0.14 and +0.01 points; 0.2: -0.14 and -0.03)
but not below it (0.05: -0.15 and -0.16; 0.02: -0.48 and -0.64), where the model drifts from the full one
(97% of labels kept at 0.05, 98% at 0.1, 99% at 0.2)."""
TOLERANCE = 0.0015
"""Validation accuracy a compact model may lose to the full one when training chooses its share: the
0.15 points that are also the standard error of NSMC's 50,000 test reviews."""


def choose_share(model, ranking: Ranking, bits: int, accuracy: Callable[[object], float],
                 full_accuracy: float) -> tuple[object, float, float]:
    """(compact model, share, its accuracy): the smallest share in ``SHARES`` whose model, at ``bits``, scores within
    ``TOLERANCE`` of ``full_accuracy`` by ``accuracy(model)`` (the validation split), else every seen row."""
    for share in (*SHARES, 1.0):
        small = compact_model(model, ranking.masks(share), bits)
        score = accuracy(small)
        if score >= full_accuracy - TOLERANCE or share == 1.0:
            return small, share, score
