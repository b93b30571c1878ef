"""malmoi (말모이): Korean-first NLP from sentences to trained models and back to text.

    >>> import malmoi
    >>> result = malmoi.train(task="classify", data="reviews.tsv", text="document", label="label",
    ...                       out="runs/reviews", preset="bert-mini", time_budget="10m")
    >>> malmoi.load("runs/reviews").predict(["정말 재밌어요"])[0].label

Heavy modules (torch, transformers) load on first use, so ``import malmoi`` stays fast.
"""
from __future__ import annotations

import os
from typing import Any

from malmoi.errors import MalmoiError
from malmoi.version import __version__

__all__ = ["MalmoiError", "__version__", "train", "load", "EncoderClassifier", "TextClassifier", "Prediction",
           "Answer", "TrainResult", "PRESETS"]

# name → module that defines it, imported when first touched
_LAZY = {
    "EncoderClassifier": "malmoi.models.classifier",
    "TextClassifier": "malmoi.use.classifier",
    "Prediction": "malmoi.use.results",
    "Answer": "malmoi.use.results",
    "TrainResult": "malmoi.tasks.common",
    "PRESETS": "malmoi.models.presets",
}


def train(task: str = "classify", **options: Any):
    """Train ``task`` into ``out`` exactly as ``malmoi train TASK`` does; returns a ``TrainResult``.

    ``options`` are the task's fields (``data``, ``text``, ``label``, ``out``, ``preset``,
    ``epochs``, ``time_budget="10m"`` …; see ``malmoi.tasks.classify.ClassifyOptions``)."""
    from malmoi.tasks import train as train_task

    return train_task(task, **options)


def load(run: str | os.PathLike):
    """The trained model of a run directory, ready to use: for a classifier a ``TextClassifier``
    whose ``.predict(["…"])`` returns ``Prediction`` objects, for a seq2seq or lm run a text
    generator (``.generate``, ``.stream``), for an mlm run a ``MaskFiller`` (see ``malmoi.use``)."""
    from malmoi.use import load as load_run

    return load_run(run)


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'malmoi' has no attribute {name!r}")
