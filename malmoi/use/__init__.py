"""Using a trained run: ``load(run)`` gives one object per model family, whatever task trained it.

| run (``malmoi.json``)                 | object             | main calls                                 |
| ------------------------------------- | ------------------ | ------------------------------------------ |
| task ``classify``                     | ``TextClassifier`` | ``predict``, ``predict_proba``, ``evaluate`` |
| architecture ``lstm-seq2seq``         | ``Seq2SeqGenerator`` | ``generate``, ``stream``, ``reply``, ``attention`` |
| architecture ``bart-seq2seq``         | ``BartGenerator``  | ``generate``, ``stream``, ``reply``, ``attention`` |
| architecture ``retrieval``            | ``RetrievalGenerator`` | ``generate``, ``stream``, ``reply``    |
| task ``lm``                           | ``LMGenerator``    | ``generate``, ``stream``, ``reply``        |
| task ``mlm``                          | ``MaskFiller``     | ``fill``                                   |

Every object has ``run`` (its directory), ``meta`` (its ``malmoi.json``) and ``tokenizer``; the
text generators share the ``TextGenerator`` interface. Results are the dataclasses of
``use.results`` (``Prediction``, ``Answer``, ``AttentionMap``, ``Filling`` …).

    gen = load_generator("runs/chat")
    gen.generate(["오늘 날씨 어때?"], beams=4)[0].text
    save_attention_png(gen.attention("오늘 날씨 어때?"), "att.png")
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

from malmoi.errors import MalmoiError
from malmoi.runs import read_meta
from malmoi.use.bart import BartGenerator
from malmoi.use.classifier import TextClassifier
from malmoi.use.heatmap import save_attention_png
from malmoi.use.lm import LMGenerator
from malmoi.use.mask_filler import MaskFiller
from malmoi.use.results import Answer, AttentionMap, Evaluation, Filling, Misclassified, Prediction
from malmoi.use.retrieval import RetrievalGenerator
from malmoi.use.seq2seq import Seq2SeqGenerator

__all__ = ["load", "load_generator", "save_attention_png", "TextGenerator", "TextClassifier", "Seq2SeqGenerator",
           "BartGenerator", "RetrievalGenerator", "LMGenerator", "MaskFiller", "Answer", "AttentionMap", "Evaluation", "Filling",
           "Misclassified", "Prediction"]

LOADERS = {
    "classify": TextClassifier,
    "lstm-seq2seq": Seq2SeqGenerator,
    "bart-seq2seq": BartGenerator,
    "retrieval": RetrievalGenerator,
    "lm": LMGenerator,
    "mlm": MaskFiller,
}
"""A run's ``architecture`` (or, failing it, its ``task``) → the class whose ``from_run(run)`` loads it."""
GENERATORS = (Seq2SeqGenerator, BartGenerator, RetrievalGenerator, LMGenerator)


@runtime_checkable
class TextGenerator(Protocol):
    """What ``generate``, ``chat`` (and the server) call on a run that turns text into text;
    ``attention`` exists where the model has cross-attention (the seq2seq families)."""

    continues_prompt: bool
    """Whether an answer continues its input (GPT) rather than replying to it (seq2seq)."""
    samples: bool
    """Whether ``generate`` and ``stream`` take sampling options (``top_k``, ``top_p``, ``temperature`` …)."""

    def generate(self, texts: str | Sequence[str], *, beams: int = 1,
                 max_new_tokens: int | None = None) -> list[Answer]:
        ...

    def stream(self, text: str, *, beams: int = 1, max_new_tokens: int | None = None) -> Iterator[str]:
        ...

    def reply(self, text: str, beams: int = 1) -> str:
        ...


def load(run: str | os.PathLike):
    """The trained model of a run directory, ready to use (see the table above)."""
    run = Path(run)
    meta = read_meta(run)
    key = next((k for k in (meta.get("architecture"), meta.get("task")) if k in LOADERS), None)
    if key is None:
        kind = meta.get("architecture") or meta.get("task")
        raise MalmoiError("E413", f"{run} holds a {kind!r} model, which this version cannot load "
                                  f"(it loads: {', '.join(LOADERS)})")
    loaded = LOADERS[key].from_run(run)
    loaded.meta = meta
    return loaded


def load_generator(run: str | os.PathLike) -> TextGenerator:
    """The text generator of a run directory; a run that does not generate text is refused."""
    meta = read_meta(run)
    kind = meta.get("architecture") or meta.get("task")
    if not any(LOADERS.get(k) in GENERATORS for k in (meta.get("architecture"), meta.get("task"))):
        raise MalmoiError("E430", f"{run} holds a {kind!r} model, which does not generate text "
                                  f"(text generators: {', '.join(k for k, c in LOADERS.items() if c in GENERATORS)})")
    return load(run)
