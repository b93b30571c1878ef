"""How each task trains: one module per task, and the one table of them.

| name       | module            | what it trains                                          |
| ---------- | ----------------- | ------------------------------------------------------- |
| classify   | ``classify.py``   | a text classifier (n-gram or encoder + linear head)     |
| seq2seq    | ``seq2seq.py``    | source → target text: LSTM (``lstm``), BART (``bart``), the nearest training question's answer (``retrieval``) or it reranked with a generator behind (``hybrid``), sharing ``pairs.py`` |
| lm         | ``lm.py``         | a GPT-style causal language model                       |
| mlm        | ``mlm.py``        | a BERT encoder by masked-language modelling             |
| qa         | ``qa.py``         | extractive question answering (SQuAD / KorQuAD files): encoder + span head |
| tag        | ``tag.py``        | a named-entity tagger (KLUE / CoNLL / JSONL): character BiLSTM-CRF or encoder + a head per token |

A task is a small object with ``name``, ``Options`` (a keyword-only dataclass extending
``common.LoopOptions``) and ``train(options, say) -> TrainResult``. ``train(task=..., **options)``
is what ``malmoi.train`` and the CLI call, so the command line and Python behave the same. Using a
finished run is ``malmoi.use``'s job.
"""
from __future__ import annotations

import os

from malmoi.errors import MalmoiError
from malmoi.tasks.classify import ClassifyOptions, ClassifyTask
from malmoi.tasks.common import LoopOptions, Say, TrainResult, stderr_say
from malmoi.tasks.lm import LMOptions, LMTask
from malmoi.tasks.mlm import MLMOptions, MLMTask
from malmoi.tasks.pairs import Seq2SeqOptions
from malmoi.tasks.qa import QAOptions, QATask
from malmoi.tasks.seq2seq import Seq2SeqTask
from malmoi.tasks.tag import TagOptions, TagTask

__all__ = ["TASKS", "get_task", "train", "TrainResult", "LoopOptions", "ClassifyOptions", "Seq2SeqOptions",
           "LMOptions", "MLMOptions", "QAOptions", "TagOptions"]

TASKS = {task.name: task for task in (ClassifyTask(), Seq2SeqTask(), LMTask(), MLMTask(), QATask(), TagTask())}
"""Every task by the name ``malmoi train NAME`` / ``malmoi.train(task=NAME)`` takes."""


def _silent(message: str) -> None:
    pass


def get_task(name: str):
    try:
        return TASKS[name]
    except KeyError:
        raise MalmoiError("E230", f"unknown task {name!r}; choose one of: {', '.join(TASKS)}") from None


def train(task: str = "classify", say: Say = stderr_say, **options) -> TrainResult:
    """Train ``task`` with keyword ``options`` (the fields of its ``Options``), as the CLI does."""
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, one log
        say = _silent
    t = get_task(task)
    try:
        opts = t.Options(**options)
    except TypeError as e:  # unknown or missing keyword: one line, like the CLI
        raise MalmoiError("E231", f"train(task={task!r}): {e}") from None
    return t.train(opts, say)
