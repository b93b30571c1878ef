"""Exact match and F1 of extracted answers, as the official KorQuAD 1.0 evaluation scores them.

Both compare normalised text: the quote and bracket marks ``' " 《 》 < > 〈 〉 ( ) ‘ ’`` become
spaces, then lower case, then ASCII punctuation removed, then runs of whitespace become one
space. Exact match compares the normalised strings. F1 is KorQuAD's, not SQuAD's: it counts
shared *characters* of the normalised answers with the spaces removed (Korean words carry
particles, so word overlap would be too strict). A question scores the best over its gold
answers. Scores are fractions (the official script prints percentages).
"""
from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

_TO_SPACE = str.maketrans({c: " " for c in "'\"《》<>〈〉()‘’"})
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """The form both scores compare (see the module doc)."""
    text = text.translate(_TO_SPACE).lower().translate(_PUNCTUATION)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised texts are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def char_f1(prediction: str, gold: str) -> float:
    """KorQuAD's F1 over the characters of the normalised texts, spaces removed."""
    pred = normalize_answer(prediction).replace(" ", "")
    ref = normalize_answer(gold).replace(" ", "")
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class QAScores:
    """Exact match and F1 over a set of questions (fractions)."""

    exact_match: float
    f1: float
    questions: int

    def to_dict(self) -> dict:
        return {"exact_match": self.exact_match, "f1": self.f1, "questions": self.questions}


def squad_scores(predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]]) -> QAScores:
    """Mean exact match and F1 of ``predictions`` (question id → answer) against ``golds`` (question id
    → gold answers), each question scored by its best gold answer; a question without a prediction
    scores 0, as the official script counts it."""
    em = f1 = 0.0
    for qid, answers in golds.items():
        pred = predictions.get(qid)
        if pred is None or not answers:
            continue
        em += max(exact_match(pred, g) for g in answers)
        f1 += max(char_f1(pred, g) for g in answers)
    n = len(golds)
    return QAScores(em / n if n else 0.0, f1 / n if n else 0.0, n)
