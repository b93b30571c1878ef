"""The seq2seq task (``malmoi train seq2seq``): source → target text, by the family of the preset —
the from-scratch LSTM encoder-decoder (``tasks.lstm``), BART (``tasks.bart``), the nearest training
question's answer (``tasks.retrieval``) or retrieval reranked with a generator behind it
(``tasks.hybrid``). The families share options, data and validation (``tasks.pairs``).
"""
from __future__ import annotations

from pathlib import Path

from malmoi.models.presets import get_preset
from malmoi.runs import read_meta
from malmoi.tasks.bart import BartFamily
from malmoi.tasks.common import Say, TrainResult, stderr_say
from malmoi.tasks.hybrid import GENERATOR, HybridFamily
from malmoi.tasks.lstm import LSTMSeq2SeqFamily
from malmoi.tasks.pairs import Seq2SeqOptions
from malmoi.tasks.retrieval import RetrievalFamily


FAMILIES = {"lstm": LSTMSeq2SeqFamily, "bart": BartFamily, "mbart": BartFamily, "retrieval": RetrievalFamily,
            "hybrid": HybridFamily}
"""A seq2seq preset's ``model_type`` (``models.presets``) → the family that trains it."""


class Seq2SeqTask:
    """``train seq2seq``: hands the options to the family of the preset."""

    name = "seq2seq"
    Options = Seq2SeqOptions

    def train(self, opts: Seq2SeqOptions, say: Say = stderr_say) -> TrainResult:
        family = FAMILIES[get_preset(_run_preset(opts), self.name).model_type]
        return family().train(opts, say)


def _run_preset(opts: Seq2SeqOptions) -> str:
    """The preset that decides the model family: a resumed run keeps the one it was started with
    (a run killed before its first checkpoint is started again, with the command's)."""
    out = Path(opts.out)
    # a hybrid run's checkpoint is its generator's
    checkpoints = [out / "checkpoints" / "last", out / GENERATOR / "checkpoints" / "last"]
    if opts.resume and (out / "malmoi.json").is_file() and any(c.exists() for c in checkpoints):
        return read_meta(out).get("preset", opts.preset)
    return opts.preset
