"""Classification metrics from a confusion matrix, in plain numpy.

Small enough to own (and to check by hand in tests) rather than make scikit-learn, which the
project keeps as a benchmark-only extra, a runtime dependency. Conventions follow scikit-learn:
a class that is never predicted has precision 0, macro-F1 is the unweighted mean of the
per-class F1 over every known label.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass
class ClassMetrics:
    """Scores of one class."""

    label: str
    """The class name as in the training data."""
    precision: float
    """Of the examples predicted as this class, the share that are."""
    recall: float
    """Of the examples of this class, the share predicted as it."""
    f1: float
    """Harmonic mean of precision and recall (0 when both are 0)."""
    support: int
    """Number of examples of this class in the gold labels."""


@dataclass
class ClassificationReport:
    """Everything ``malmoi eval`` shows for a classifier."""

    labels: list[str]
    """Class names, in id order."""
    accuracy: float
    """Share of examples predicted correctly."""
    macro_f1: float
    """Mean F1 over all classes, each class weighted equally."""
    per_class: list[ClassMetrics]
    """Precision, recall, F1 and support of each class, in id order."""
    confusion: list[list[int]]
    """``confusion[gold][predicted]`` counts."""
    total: int
    """Number of examples scored."""

    def to_dict(self) -> dict:
        return asdict(self)


def confusion_matrix(gold: Sequence[int], predicted: Sequence[int], num_labels: int) -> np.ndarray:
    """(num_labels, num_labels) int matrix: rows are gold ids, columns predicted ids."""
    gold, predicted = np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    if gold.shape != predicted.shape:
        raise ValueError(f"{gold.size} gold labels but {predicted.size} predictions")
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (gold, predicted), 1)
    return matrix


def accuracy(gold: Sequence[int], predicted: Sequence[int]) -> float:
    gold, predicted = np.asarray(gold), np.asarray(predicted)
    return float((gold == predicted).mean()) if gold.size else 0.0


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(num.shape, dtype=np.float64), where=den > 0)


def report_from_confusion(matrix: np.ndarray, labels: Sequence[str]) -> ClassificationReport:
    matrix = np.asarray(matrix, dtype=np.int64)
    hits = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    precision = _ratio(hits, matrix.sum(axis=0).astype(np.float64))
    recall = _ratio(hits, support.astype(np.float64))
    f1 = _ratio(2 * precision * recall, precision + recall)
    total = int(matrix.sum())
    per_class = [ClassMetrics(str(lab), float(p), float(r), float(f), int(s))
                 for lab, p, r, f, s in zip(labels, precision, recall, f1, support)]
    return ClassificationReport(
        labels=[str(lab) for lab in labels],
        accuracy=float(hits.sum() / total) if total else 0.0,
        macro_f1=float(f1.mean()) if len(labels) else 0.0,
        per_class=per_class,
        confusion=matrix.tolist(),
        total=total,
    )


def classification_report(gold: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> ClassificationReport:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""
    return report_from_confusion(confusion_matrix(gold, predicted, len(labels)), labels)
