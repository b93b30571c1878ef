"""A retrieval "model": the answer of the most similar training question.

Questions become TF-IDF vectors over hashed character n-grams (``text.ngrams.NgramFeaturizer``),
L2-normalised, so that a dot product is the cosine similarity; the index keeps them as compressed
rows and scores queries through an inverted list (n-gram → the questions holding it), which on a
CPU answers thousands of questions a second without a similarity matrix of the whole training set.

Saved in a run directory as ``retrieval.safetensors`` (the rows and the idf weights) and
``retrieval.json`` (the questions and answers, in training order) beside the featurizer's ``ngrams.json``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from malmoi.errors import MalmoiError
from malmoi.files import atomic_write_bytes, atomic_write_json

WEIGHTS_FILE = "retrieval.safetensors"
TEXTS_FILE = "retrieval.json"
ARCHITECTURE = "retrieval"


@dataclass
class Hits:
    """The ``k`` nearest training questions of each query."""

    index: np.ndarray
    """(N, k) positions of the training pairs, most similar first."""
    similarity: np.ndarray
    """(N, k) their cosine similarities (0 … 1)."""


def _term_counts(encoded, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, ids, counts): each row's distinct n-gram ids (below ``width``), sorted, with their counts."""
    rows = np.repeat(np.arange(len(encoded)), encoded.lengths)
    unique, counts = np.unique(rows * width + encoded.ids, return_counts=True)
    return unique // width, unique % width, counts


def _weights(terms, idf: np.ndarray, n: int, sublinear: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, ids, weights) of the ``n`` rows of ``terms`` as L2-normalised TF-IDF: each distinct
    n-gram with (1 + ln tf) · idf (or tf · idf)."""
    rows, ids, counts = terms
    tf = 1.0 + np.log(counts) if sublinear else counts.astype(np.float64)
    weights = tf * idf[ids]
    norms = np.sqrt(np.bincount(rows, weights=weights ** 2, minlength=n))
    weights = weights / np.maximum(norms[rows], 1e-12)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, ids.astype(np.int64), weights.astype(np.float32)


class RetrievalIndex:
    """Training questions and answers, searchable by TF-IDF cosine over character n-grams."""

    def __init__(self, featurizer, questions: Sequence[str], answers: Sequence[str], idf: np.ndarray,
                 indptr: np.ndarray, ids: np.ndarray, weights: np.ndarray, sublinear: bool = True):
        self.featurizer = featurizer
        self.questions, self.answers = list(questions), list(answers)
        self.idf, self.sublinear = idf, sublinear
        self.indptr, self.ids, self.weights = indptr, ids, weights
        # inverted lists: postings of n-gram g are post_rows/post_weights[starts[g]:starts[g + 1]]
        order = np.argsort(ids, kind="stable")
        self.post_rows = np.repeat(np.arange(len(self.questions)), np.diff(indptr))[order]
        self.post_weights = weights[order]
        self.starts = np.searchsorted(ids[order], np.arange(len(idf) + 1))

    @classmethod
    def build(cls, featurizer, questions: Sequence[str], answers: Sequence[str],
              sublinear: bool = True) -> "RetrievalIndex":
        """Index the (question, answer) pairs; idf is ln((1 + N) / (1 + df)) + 1, as scikit-learn's,
        whose cosine ranking this reproduces."""
        if not questions:
            raise MalmoiError("E113", "the training data is empty")
        if len(questions) != len(answers):
            raise MalmoiError("E115", f"{len(questions)} questions but {len(answers)} answers")
        terms = _term_counts(featurizer.encode(list(questions)), len(featurizer))
        df = np.bincount(terms[1], minlength=len(featurizer))
        idf = (np.log((1 + len(questions)) / (1 + df)) + 1.0).astype(np.float32)  # as saved
        # n-grams no training question holds: the rarest weight, so that they count in a query's norm
        # (its similarity to a question shares the query's unseen part) without changing the ranking
        idf[df == 0] = np.log(1 + len(questions)) + 1.0
        return cls(featurizer, questions, answers, idf, *_weights(terms, idf, len(questions), sublinear),
                   sublinear=sublinear)

    def __len__(self) -> int:
        return len(self.questions)

    def search(self, texts: Sequence[str], k: int = 1, batch_size: int = 256) -> Hits:
        """The ``k`` most similar training questions of every text (ties: the earlier pair)."""
        k = max(1, min(k, len(self)))
        index = np.zeros((len(texts), k), dtype=np.int64)
        similarity = np.zeros((len(texts), k), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            scores = self._scores(texts[start:start + batch_size])
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            index[start:start + len(top)] = top
            similarity[start:start + len(top)] = np.take_along_axis(scores, top, 1)
        return Hits(index, np.clip(similarity, 0.0, 1.0))

    def _scores(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), len(self)) cosine similarities, through the inverted lists."""
        terms = _term_counts(self.featurizer.encode(list(texts)), len(self.idf))
        q_indptr, q_ids, q_weights = _weights(terms, self.idf, len(texts), self.sublinear)
        begin, end = self.starts[q_ids], self.starts[q_ids + 1]
        counts = end - begin
        query = np.repeat(np.repeat(np.arange(len(texts)), np.diff(q_indptr)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        postings = np.repeat(begin, counts) + offsets
        contributions = np.repeat(q_weights, counts) * self.post_weights[postings]
        scores = np.bincount(query * len(self) + self.post_rows[postings], weights=contributions,
                             minlength=len(texts) * len(self))
        return scores.reshape(len(texts), len(self))

    def save(self, folder: str | os.PathLike) -> None:
        from safetensors.numpy import save

        folder = Path(folder)
        self.featurizer.save_pretrained(folder)
        tensors = {"indptr": self.indptr, "ids": self.ids, "weights": self.weights, "idf": self.idf}
        # one metadata key: the library writes several in an order that differs between processes
        atomic_write_bytes(folder / WEIGHTS_FILE, save({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                                                       metadata={"format": "malmoi.RetrievalIndex"}))
        atomic_write_json(folder / TEXTS_FILE, {"sublinear": self.sublinear, "questions": self.questions,
                                                "answers": self.answers})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "RetrievalIndex":
        from safetensors.numpy import load_file

        from malmoi.text.ngrams import NgramFeaturizer

        folder = Path(folder)
        if not (folder / WEIGHTS_FILE).is_file() or not (folder / TEXTS_FILE).is_file():
            raise MalmoiError("E427", f"{folder} has no trained model yet (training did not finish)")
        tensors = load_file(str(folder / WEIGHTS_FILE))
        texts = json.loads((folder / TEXTS_FILE).read_text(encoding="utf-8"))
        return cls(NgramFeaturizer.from_pretrained(folder), texts["questions"], texts["answers"],
                   tensors["idf"], tensors["indptr"], tensors["ids"], tensors["weights"],
                   sublinear=texts["sublinear"])
