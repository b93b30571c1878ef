"""Using a trained run: ``load(run)`` gives one object per model family, whatever task trained it.

| run (``malmoi.json``)                 | object             | main calls                                 |
| ------------------------------------- | ------------------ | ------------------------------------------ |
| task ``classify``                     | ``TextClassifier`` | ``predict``, ``predict_proba``, ``evaluate`` |
| architecture ``lstm-seq2seq``         | ``Seq2SeqGenerator`` | ``generate``, ``stream``, ``reply``, ``attention`` |
| architecture ``bart-seq2seq``         | ``BartGenerator``  | ``generate``, ``stream``, ``reply``, ``attention`` |
| architecture ``retrieval``            | ``RetrievalGenerator`` | ``generate``, ``stream``, ``reply``    |
| architecture ``hybrid``               | ``HybridGenerator`` | ``generate``, ``stream``, ``reply``       |
| task ``lm``                           | ``LMGenerator``    | ``generate``, ``stream``, ``reply``, ``score`` |
| task ``mlm``                          | ``MaskFiller``     | ``fill``                                   |
| task ``qa``                           | ``QuestionAnswerer`` | ``answer``, ``evaluate``                 |
| task ``tag``                          | ``Tagger``         | ``tag``, ``evaluate``                      |

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
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

from malmoi.errors import MalmoiError
from malmoi.runs import read_meta

if TYPE_CHECKING:
    from malmoi.use.results import Answer

# Imported when first used, so that loading one run imports one family (a cold ``malmoi predict``
# on an n-gram run never imports transformers)
_EXPORTS = {
    "TextClassifier": "classifier", "Seq2SeqGenerator": "seq2seq", "BartGenerator": "bart",
    "RetrievalGenerator": "retrieval", "HybridGenerator": "hybrid", "LMGenerator": "lm", "MaskFiller": "mask_filler",
    "QuestionAnswerer": "qa", "ExtractedAnswer": "qa", "Tagger": "tagger",
    "save_attention_png": "heatmap", **{name: "results" for name in (
        "Answer", "AttentionMap", "EntitySpan", "Evaluation", "Filling", "Misclassified", "Prediction", "Tagging")},
}

__all__ = ["load", "load_generator", "TextGenerator", *_EXPORTS]

LOADERS = {
    "classify": "TextClassifier",
    "lstm-seq2seq": "Seq2SeqGenerator",
    "bart-seq2seq": "BartGenerator",
    "retrieval": "RetrievalGenerator",
    "hybrid": "HybridGenerator",
    "lm": "LMGenerator",
    "mlm": "MaskFiller",
    "qa": "QuestionAnswerer",
    "tag": "Tagger",
}
"""A run's ``architecture`` (or, failing it, its ``task``) → the class whose ``from_run(run)`` loads it."""
GENERATORS = ("Seq2SeqGenerator", "BartGenerator", "RetrievalGenerator", "HybridGenerator", "LMGenerator")
"""The loaders (by name) whose objects generate text."""


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def is_generator(loaded) -> bool:
    """Whether a loaded run generates text."""
    return type(loaded).__name__ in GENERATORS


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


def _loader(meta: dict) -> str | None:
    """The name of the class that loads a run: by its ``architecture``, failing that its ``task``; None if neither."""
    return LOADERS.get(meta.get("architecture")) or LOADERS.get(meta.get("task"))


def _load(run: Path, meta: dict, loader: str):
    loaded = __getattr__(loader).from_run(run)
    loaded.meta = meta
    return loaded


def load(run: str | os.PathLike):
    """The trained model of a run directory, ready to use (see the table above)."""
    run = Path(run)
    meta = read_meta(run)
    loader = _loader(meta)
    if loader is None:
        raise MalmoiError("E413", f"{run} holds a {meta.get('architecture') or meta.get('task')!r} model, which "
                                  f"this version cannot load (it loads: {', '.join(LOADERS)})")
    return _load(run, meta, loader)


def load_generator(run: str | os.PathLike) -> TextGenerator:
    """The text generator of a run directory; a run that does not generate text is refused."""
    run = Path(run)
    meta = read_meta(run)
    loader = _loader(meta)
    if loader not in GENERATORS:
        raise MalmoiError("E430", f"{run} holds a {meta.get('architecture') or meta.get('task')!r} model, which "
                                  f"does not generate text (text generators: "
                                  f"{', '.join(k for k, c in LOADERS.items() if c in GENERATORS)})")
    return _load(run, meta, loader)
