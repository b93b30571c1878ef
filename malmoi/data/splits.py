"""Held-out splits: which examples train and which validate. Every split is seeded, keeps both
sides in the data's order, and holds out ``held_out_count`` of what it splits."""
from __future__ import annotations

import random
from typing import Sequence

from malmoi.errors import MalmoiError


def held_out_count(n: int, fraction: float, most: int | None = None) -> int:
    """How many of ``n`` examples ``fraction`` holds out: at least one, at most ``most``, and never
    all of them (one is always left to train on)."""
    count = max(1, round(n * fraction))
    if most is not None:
        count = min(count, most)
    return min(count, n - 1)


def random_split(n: int, fraction: float, seed: int, most: int | None = None) -> tuple[list[int], list[int]]:
    """(train, valid) positions of ``n`` examples: a seeded random ``held_out_count`` held out."""
    held = set(random.Random(seed).sample(range(n), held_out_count(n, fraction, most)))
    return [i for i in range(n) if i not in held], sorted(held)


def stratified_split(ids: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, valid) positions: ``fraction`` of each class held out, at least one example of each
    class kept for training, so a rare class never vanishes from either side when it can be avoided."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for pos, y in enumerate(ids):
        by_class.setdefault(y, []).append(pos)
    train, valid = [], []
    for y in sorted(by_class):
        positions = by_class[y]
        rng.shuffle(positions)
        n_valid = held_out_count(len(positions), fraction)
        valid += positions[:n_valid]
        train += positions[n_valid:]
    return sorted(train), sorted(valid)


def split_texts(texts: Sequence[str], fraction: float, max_valid: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, valid) documents: a seeded random ``fraction`` of the texts (at least 1, at most
    ``max_valid``) held out, both sides in their original order."""
    if len(texts) < 2:
        raise MalmoiError("E112", f"{len(texts)} document is too few to hold out a validation split; add lines")
    train, valid = random_split(len(texts), fraction, seed, max_valid)
    return [texts[i] for i in train], [texts[i] for i in valid]
