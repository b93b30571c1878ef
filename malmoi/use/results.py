"""What using a trained run returns: plain dataclasses that print, compare and turn into JSON
(``dataclasses.asdict``) the same way for every model family."""
from __future__ import annotations

from dataclasses import dataclass

from malmoi.training.metrics import ClassificationReport


@dataclass
class Prediction:
    """The classifier's answer for one text."""

    text: str
    """The input text."""
    label: str
    """The most probable class."""
    score: float
    """Its softmax probability."""
    probabilities: dict[str, float]
    """Softmax probability of every class (they sum to 1)."""


@dataclass
class Misclassified:
    """One evaluation example the model got wrong."""

    text: str
    """The input text."""
    gold: str
    """Its label in the data."""
    predicted: str
    """The model's label."""
    score: float
    """The model's probability for its (wrong) label."""


@dataclass
class Evaluation:
    """A report on labelled data and the most confident mistakes."""

    report: ClassificationReport
    """Accuracy, macro-F1, per-class scores, confusion matrix."""
    errors: list[Misclassified]
    """Misclassified examples, most confident first (as many as asked for)."""

    def to_dict(self) -> dict:
        return {**self.report.to_dict(), "errors": [e.__dict__ for e in self.errors]}


@dataclass
class Answer:
    """One generated text."""

    source: str
    """The input text."""
    text: str
    """The generated text, detokenized."""
    tokens: list[str]
    """The generated tokens as the model's vocabulary spells them."""
    score: float
    """Log-probability of the tokens (length-normalised under beam search); for a retrieved answer
    its question's cosine similarity."""
    matched: str | None = None
    """A retrieved answer: the training question it answered."""
    similarity: float | None = None
    """A retrieved answer: the cosine similarity of that question to the input (0 … 1)."""


@dataclass
class AttentionMap:
    """Where each generated token looked in the source."""

    source_tokens: list[str]
    """Source tokens as the encoder saw them (columns)."""
    target_tokens: list[str]
    """Generated tokens (rows)."""
    weights: list[list[float]]
    """(len(target_tokens), len(source_tokens)); every row sums to 1."""
    source: str
    """The input text."""
    text: str
    """The generated text."""


@dataclass
class Filling:
    """One candidate for a [MASK]."""

    token: str
    """The predicted piece."""
    score: float
    """Its softmax probability."""
    text: str
    """The input with this piece in place of the [MASK]."""


@dataclass
class EntitySpan:
    """One entity a tagger found: ``text[start:end]`` of the input and its type."""

    text: str
    """The entity's characters, as they are in the input."""
    type: str
    """Its type (``PS`` person, ``LC`` location, ``OG`` organisation, ``DT`` date, ``TI`` time, ``QT`` quantity …)."""
    start: int
    """Offset of its first character in the input."""
    end: int
    """Offset just past its last character."""
    score: float
    """The mean probability of its tags over its characters (softmax of the tagger's scores)."""


@dataclass
class Tagging:
    """A tagger's reading of one text."""

    text: str
    """The input text."""
    entities: list[EntitySpan]
    """The entities, in text order."""
    tags: list[str]
    """One tag per character of the text, in the run's scheme (BIO or BIOES)."""
