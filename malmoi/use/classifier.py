"""A trained classifier run: class probabilities and labels for new texts, and scores on labelled ones.

Texts are batched in order of length so that each batch pads little, then put back in the
caller's order.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from malmoi.errors import MalmoiError
from malmoi.runs import read_meta
from malmoi.training.metrics import classification_report
from malmoi.use.results import Evaluation, Misclassified, Prediction


def _as_texts(texts: str | Sequence[str]) -> list[str]:
    texts = [texts] if isinstance(texts, str) else list(texts)
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise MalmoiError("E404", f"texts must be strings, got {type(bad[0]).__name__}")
    return texts


@torch.inference_mode()
def predict_proba(model: torch.nn.Module, tokenizer, texts: Sequence[str], *, max_length: int,
                  batch_size: int = 64) -> np.ndarray:
    """(N, C) softmax probabilities of a classifier for ``texts``."""
    texts = _as_texts(texts)
    if not texts:
        return np.zeros((0, model.num_labels), dtype=np.float32)
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length, padding=True,
                          return_tensors="pt")
        batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        out[idx] = torch.softmax(model(**batch).logits.float(), dim=-1).cpu().numpy()
    return out


class TextClassifier:
    """A trained classifier with its tokenizer and label names, loaded from a run directory."""

    def __init__(self, model, tokenizer, labels: Sequence[str], max_length: int, run: Path | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.max_length = max_length
        self.run = run

    @classmethod
    def from_run(cls, run: str | os.PathLike) -> "TextClassifier":
        from malmoi.models.ngram import load_ngram_run

        run = Path(run)
        meta = read_meta(run)
        if meta.get("task") != "classify":
            raise MalmoiError("E405", f"{run} holds a {meta.get('task')!r} model, not a classifier")
        ngram = load_ngram_run(run)  # (model, featurizer) of an n-gram preset's run, else None
        if ngram is not None:
            model, tokenizer = ngram
        else:  # transformers only for the runs that need it: it costs a cold start a second
            from transformers import AutoTokenizer

            from malmoi.models.classifier import HEAD_FILE, EncoderClassifier

            if not (run / HEAD_FILE).is_file():
                raise MalmoiError("E406", f"{run} has no trained model yet (training did not finish; use --resume)")
            model = EncoderClassifier.load(run)
            tokenizer = AutoTokenizer.from_pretrained(run)
        labels = meta["labels"]
        if len(labels) != model.num_labels:
            raise MalmoiError("E407", f"{run}: malmoi.json lists {len(labels)} labels, the model has {model.num_labels}")
        return cls(model, tokenizer, labels, int(meta.get("max_length", 128)), run)

    def predict_proba(self, texts: str | Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(N, C) class probabilities, columns in the order of ``self.labels``."""
        return predict_proba(self.model, self.tokenizer, _as_texts(texts), max_length=self.max_length,
                             batch_size=batch_size)

    def predict(self, texts: str | Sequence[str], batch_size: int = 64) -> list[Prediction]:
        """One ``Prediction`` per text (a single string counts as one text)."""
        texts = _as_texts(texts)
        probs = self.predict_proba(texts, batch_size)
        out = []
        for text, p in zip(texts, probs):
            best = int(p.argmax())
            out.append(Prediction(text, self.labels[best], float(p[best]),
                                  {lab: float(v) for lab, v in zip(self.labels, p)}))
        return out

    def evaluate(self, texts: Sequence[str], gold: Sequence[str], errors: int = 0,
                 batch_size: int = 64) -> Evaluation:
        """Scores on labelled texts; ``errors`` > 0 also returns that many confident mistakes."""
        index = {lab: i for i, lab in enumerate(self.labels)}
        unknown = sorted(set(gold) - set(index))
        if unknown:
            raise MalmoiError("E105", f"unexpected label values {unknown[:5]}; the model knows {self.labels}")
        probs = self.predict_proba(texts, batch_size)
        gold_ids = np.array([index[g] for g in gold], dtype=np.int64)
        pred_ids = probs.argmax(axis=1)
        report = classification_report(gold_ids, pred_ids, self.labels)
        wrong = np.flatnonzero(pred_ids != gold_ids)
        wrong = wrong[np.argsort(-probs[wrong, pred_ids[wrong]], kind="stable")][:max(errors, 0)]
        mistakes = [Misclassified(texts[i], self.labels[gold_ids[i]], self.labels[pred_ids[i]],
                                  float(probs[i, pred_ids[i]])) for i in wrong]
        return Evaluation(report, mistakes)
