"""A dual encoder over character n-grams: the hybrid chatbot's reranker (``--preset hybrid``).

A question and an answer each become the L2-normalised mean of their n-grams' vectors, one table
per side, so that ``q · a`` says how well an answer fits a question and ``q · q'`` how alike two
questions are in meaning rather than in spelling. Training is contrastive with in-batch negatives
(every other answer in the batch is a wrong one; a batch member with the same answer text counts as
right), the recipe of sentence-embedding retrievers, here on sparse n-gram tables that a CPU trains
in seconds.

Only n-grams seen in training get a row (``ids`` holds their featurizer ids, sorted); an unseen
n-gram of a new text is skipped, as an unknown word would be. Saved as ``dual.safetensors``.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from malmoi.errors import MalmoiError
from malmoi.files import atomic_write_bytes, safetensors_bytes

WEIGHTS_FILE = "dual.safetensors"


class DualEncoder(nn.Module):
    """Question and answer vectors from hashed n-gram ids (``text.ngrams.Encoded`` rows)."""

    def __init__(self, ids: np.ndarray, dim: int):
        super().__init__()
        self.register_buffer("ids", torch.as_tensor(np.asarray(ids, dtype=np.int64)))
        self.question = nn.EmbeddingBag(len(ids), dim, mode="mean", sparse=True)
        self.answer = nn.EmbeddingBag(len(ids), dim, mode="mean", sparse=True)
        for table in (self.question, self.answer):
            nn.init.normal_(table.weight, std=0.02)

    @classmethod
    def for_texts(cls, *encoded, dim: int) -> DualEncoder:
        """A model with one row per n-gram id that occurs in ``encoded`` (any number of ``Encoded``)."""
        return cls(np.unique(np.concatenate([e.ids for e in encoded])), dim)

    def _bags(self, encoded, rows: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(flat table rows, per-text offsets) of texts ``rows`` of ``encoded`` (all by default)."""
        rows = np.arange(len(encoded)) if rows is None else rows
        parts = [encoded.row(i) for i in rows]
        flat = torch.as_tensor(np.concatenate(parts) if parts else np.zeros(0, np.int64))
        pos = torch.searchsorted(self.ids, flat).clamp(max=len(self.ids) - 1)
        seen = self.ids[pos] == flat
        lengths = torch.zeros(len(parts), dtype=torch.long)
        lengths.index_add_(0, torch.repeat_interleave(torch.arange(len(parts)),
                                                      torch.as_tensor([len(p) for p in parts])), seen.long())
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
        return pos[seen], offsets

    def encode_questions(self, encoded, rows: np.ndarray | None = None) -> torch.Tensor:
        """(N, dim) unit question vectors (a text without a known n-gram gets the zero vector)."""
        return nn.functional.normalize(self.question(*self._bags(encoded, rows)), dim=-1)

    def encode_answers(self, encoded, rows: np.ndarray | None = None) -> torch.Tensor:
        """(N, dim) unit answer vectors."""
        return nn.functional.normalize(self.answer(*self._bags(encoded, rows)), dim=-1)

    def save(self, folder: str | os.PathLike) -> None:
        tensors = {"ids": self.ids, "question": self.question.weight.detach(),
                   "answer": self.answer.weight.detach()}
        data = safetensors_bytes({k: v.contiguous() for k, v in tensors.items()}, {"format": "malmoi.DualEncoder"})
        atomic_write_bytes(Path(folder) / WEIGHTS_FILE, data)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> DualEncoder:
        from safetensors.torch import load_file

        path = Path(folder) / WEIGHTS_FILE
        if not path.is_file():
            raise MalmoiError("E427", f"{folder} has no trained model yet (training did not finish)")
        tensors = load_file(str(path))
        model = cls(tensors["ids"].numpy(), tensors["question"].shape[1])
        with torch.no_grad():
            model.question.weight.copy_(tensors["question"])
            model.answer.weight.copy_(tensors["answer"])
        return model.eval()


def train_dual(model: DualEncoder, questions, answers, answer_texts: list[str], *, epochs: int, batch_size: int,
               lr: float, scale: float, seed: int, seconds: float | None = None) -> dict[str, float]:
    """Contrastive training of ``model`` on (question, answer) pairs given as ``Encoded`` rows:
    softmax over the batch's answers at temperature 1/``scale``, the pairs whose answer texts are
    equal all counted right. Stops after ``epochs`` or ``seconds``; returns the last epoch's mean loss,
    the epochs done and the time taken."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SparseAdam(model.parameters(), lr=lr)
    same = np.unique(answer_texts, return_inverse=True)[1]
    started, done, loss_mean = time.monotonic(), 0, math.nan
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(same), generator=generator).numpy()
        total, batches = 0.0, 0
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            logits = model.encode_questions(questions, rows) @ model.encode_answers(answers, rows).T * scale
            right = torch.as_tensor(same[rows][:, None] == same[rows][None, :], dtype=torch.float32)
            loss = -(right / right.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, batches = total + float(loss.detach()), batches + 1
        done, loss_mean = done + 1, total / max(1, batches)
        if seconds is not None and time.monotonic() - started >= seconds * done / (done + 1):
            break  # another epoch would overrun the share of the budget
    model.eval()
    return {"loss": loss_mean, "epochs": done, "seconds": time.monotonic() - started}
