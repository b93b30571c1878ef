"""Scores of a tagger: entity-level precision, recall and F1 (the seqeval convention: an entity counts
when its span and type are both exact; micro-averaged, and per type) and KLUE-NER's character-level
F1 (macro F1 over the character tags other than ``O``, spaces left out).

Both take the gold and predicted tags of each sentence, one tag per character, in either scheme.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from malmoi.data.tagging import OUTSIDE, entities, split_tag


@dataclass
class TypeScore:
    """Entity scores of one type (fractions)."""

    precision: float
    recall: float
    f1: float
    support: int
    """Gold entities of the type."""


@dataclass
class EntityReport:
    """What ``malmoi eval`` prints for a tagger (fractions)."""

    entity_precision: float
    entity_recall: float
    entity_f1: float
    char_f1: float
    per_type: dict[str, TypeScore]
    sentences: int
    entities: int
    """Gold entities in all sentences."""

    def to_dict(self) -> dict:
        return asdict(self)


def _prf(correct: int, predicted: int, gold: int) -> tuple[float, float, float]:
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def entity_report(texts: Sequence[str], gold: Sequence[Sequence[str]],
                  predicted: Sequence[Sequence[str]]) -> EntityReport:
    """Scores of ``predicted`` against ``gold`` tags (one list per sentence, one tag per character of ``texts``)."""
    gold_set = {(i, e) for i, tags in enumerate(gold) for e in entities(tags)}
    pred_set = {(i, e) for i, tags in enumerate(predicted) for e in entities(tags)}
    types = sorted({e.type for _, e in gold_set | pred_set})
    per_type = {}
    for t in types:
        g = {x for x in gold_set if x[1].type == t}
        p = {x for x in pred_set if x[1].type == t}
        per_type[t] = TypeScore(*_prf(len(g & p), len(p), len(g)), support=len(g))
    precision, recall, f1 = _prf(len(gold_set & pred_set), len(pred_set), len(gold_set))
    return EntityReport(precision, recall, f1, char_f1(texts, gold, predicted), per_type, len(gold), len(gold_set))


def char_f1(texts: Sequence[str], gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """KLUE-NER's character-level macro F1: over the non-space characters, each tag other than ``O``
    (in BIO: a BIOES tag counts as its B/I form) scored as a class, the F1s averaged over the tags
    that occur in either sequence."""
    counts: dict[str, list[int]] = {}  # tag → [correct, predicted, gold]
    for text, g_tags, p_tags in zip(texts, gold, predicted):
        for ch, g, p in zip(text, _as_bio(g_tags), _as_bio(p_tags)):
            if ch.isspace():
                continue
            if g != OUTSIDE:
                counts.setdefault(g, [0, 0, 0])[2] += 1
            if p != OUTSIDE:
                counts.setdefault(p, [0, 0, 0])[1] += 1
            if g == p and g != OUTSIDE:
                counts[g][0] += 1
    if not counts:
        return 1.0
    return sum(_prf(*c)[2] for c in counts.values()) / len(counts)


def _as_bio(tags: Sequence[str]) -> list[str]:
    out = []
    for tag in tags:
        prefix, kind = split_tag(tag)
        out.append(tag if prefix in (OUTSIDE, "B", "I") else f"{'B' if prefix == 'S' else 'I'}-{kind}")
    return out
