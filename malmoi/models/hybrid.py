"""The hybrid chatbot's ranking (``--preset hybrid``): retrieved training answers reranked by a
dual encoder, and which questions are left to a generator.

For each question the TF-IDF index (``models.retrieval``) proposes the answers of its ``candidates``
nearest training questions; each candidate scores

    similarity(q, q_i) + answer_weight · dual(q, a_i) + question_weight · dual(q, q_i)

and the best one is the answer. A question whose nearest training question is less similar than
``fallback_below`` has nothing worth retrieving: it is answered by the generator. With both
weights at 0 and no generator the ranking is the retrieval preset's, answer for answer.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from malmoi.models.dual import DualEncoder
from malmoi.models.retrieval import RetrievalIndex

ARCHITECTURE = "hybrid"


@dataclass
class HybridConfig:
    """How candidates are found and weighed."""

    candidates: int = 10
    """Nearest training questions whose answers are reranked."""
    answer_weight: float = 0.3
    """Weight of the dual encoder's question–answer cosine."""
    question_weight: float = 0.1
    """Weight of the dual encoder's question–question cosine."""
    fallback_below: float = 0.05
    """Questions whose best TF-IDF similarity is lower are answered by the generator."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Choices:
    """The chosen training pair of each question."""

    pair: np.ndarray
    """(N,) position of the chosen training pair."""
    similarity: np.ndarray
    """(N,) TF-IDF cosine of the question to the chosen pair's question."""
    score: np.ndarray
    """(N,) the chosen candidate's combined score."""
    generate: np.ndarray
    """(N,) bool: nothing similar was found; the generator should answer."""
    nearest: np.ndarray
    """(N,) position of the most similar training question: retrieval's choice (the ablation)."""


class HybridRanker:
    """Retrieval candidates reranked by a dual encoder."""

    def __init__(self, index: RetrievalIndex, dual: DualEncoder | None, config: HybridConfig):
        self.index, self.dual, self.config = index, dual, config
        if dual is not None:
            with torch.no_grad():
                self.question_vectors = dual.encode_questions(index.featurizer.encode(index.questions))
                self.answer_vectors = dual.encode_answers(index.featurizer.encode(index.answers))

    def choose(self, texts: Sequence[str]) -> Choices:
        cfg = self.config
        hits = self.index.search(texts, k=cfg.candidates)
        scores = hits.similarity.astype(np.float64)
        if self.dual is not None and (cfg.answer_weight or cfg.question_weight):
            with torch.no_grad():
                query = self.dual.encode_questions(self.index.featurizer.encode(list(texts)))
                rows = torch.as_tensor(hits.index)
                fit = torch.einsum("nd,nkd->nk", query, self.answer_vectors[rows])
                alike = torch.einsum("nd,nkd->nk", query, self.question_vectors[rows])
            scores = scores + cfg.answer_weight * fit.double().numpy() + cfg.question_weight * alike.double().numpy()
        best = scores.argmax(1)  # the first of equal scores: the nearer question, as retrieval does
        pick = np.arange(len(best))
        return Choices(hits.index[pick, best], hits.similarity[pick, best], scores[pick, best],
                       hits.similarity[:, 0] < cfg.fallback_below, hits.index[:, 0])
