"""A trained question-answering run: the answer span of each question in its context, and scores on
SQuAD-style examples.

Contexts longer than a window are cut into the overlapping windows training used (the run's
``max_length``, ``doc_stride`` and ``max_question_length``); each question's answer is its best
span over all its windows, as characters of the context, so ``context[start:end] == text``.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from malmoi.errors import MalmoiError
from malmoi.runs import read_meta
from malmoi.training.squad_metrics import QAScores


@dataclass(frozen=True)
class ExtractedAnswer:
    """One question's answer: a span of its context."""

    question: str
    text: str
    """The answer, ``context[start:end]``; empty when the context had no span to offer."""
    start: int
    """First character of the answer in the context."""
    end: int
    """One past its last character."""
    score: float
    """Probability of the start times that of the end, within the best window (0‒1)."""

    def to_dict(self) -> dict:
        return asdict(self)


def _as_list(values, what: str) -> list[str]:
    values = [values] if isinstance(values, str) else list(values)
    if not values or any(not isinstance(v, str) or not v.strip() for v in values):
        raise MalmoiError("E492", f"every {what} must be a non-blank string (got {len(values)} {what}s)")
    return values


class QuestionAnswerer:
    """A trained ``EncoderQA`` with its tokenizer and windowing settings, loaded from a run directory."""

    def __init__(self, model, tokenizer, meta: dict, run: Path | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.meta = meta
        self.run = run

    @classmethod
    def from_run(cls, run: str | os.PathLike) -> "QuestionAnswerer":
        from malmoi.models.qa import EncoderQA
        from malmoi.text.subword import load_tokenizer

        run = Path(run)
        meta = read_meta(run)
        if meta.get("task") != "qa":
            raise MalmoiError("E490", f"{run} holds a {meta.get('task')!r} model, not a question-answering one")
        return cls(EncoderQA.load(run), load_tokenizer(run), meta, run)

    def _settings(self, key: str) -> int:
        return int(self.meta[key])

    def _best(self, questions: Sequence[str], contexts: Sequence[str], batch_size: int):
        from torch.utils.data import DataLoader

        from malmoi.data.batching import BucketSampler
        from malmoi.data.qa_windows import QACollator, QADataset, tokenize_windows
        from malmoi.models.qa import best_answers, window_logits

        if batch_size < 1:
            raise MalmoiError("E223", f"--batch-size must be >= 1, got {batch_size}")
        windows = tokenize_windows(self.tokenizer, questions, contexts, max_length=self._settings("max_length"),
                                   stride=self._settings("doc_stride"),
                                   max_question_length=self._settings("max_question_length"))
        data = QADataset(windows, named=True)
        sampler = BucketSampler(data.lengths, batch_size, shuffle=False, size=len(data))
        loader = DataLoader(data, batch_sampler=sampler, collate_fn=QACollator(self.tokenizer.pad_token_id or 0))
        logits, _ = window_logits(self.model, loader)
        order = range(len(windows))
        return best_answers(windows, [logits[w][0] for w in order], [logits[w][1] for w in order],
                            len(questions), self._settings("max_answer_length"))

    def answer(self, questions: str | Sequence[str], contexts: str | Sequence[str],
               batch_size: int = 32) -> list[ExtractedAnswer]:
        """One answer per question; a single context serves every question, else one context each."""
        questions = _as_list(questions, "question")
        contexts = _as_list(contexts, "context")
        if len(contexts) == 1 and len(questions) > 1:
            contexts = contexts * len(questions)
        if len(contexts) != len(questions):
            raise MalmoiError("E493", f"{len(questions)} questions but {len(contexts)} contexts")
        best = self._best(questions, contexts, batch_size)
        return [ExtractedAnswer(q, c[b.start:b.end], b.start, b.end, b.probability) if b is not None
                else ExtractedAnswer(q, "", 0, 0, 0.0) for q, c, b in zip(questions, contexts, best)]

    def evaluate(self, examples: Sequence, batch_size: int = 32) -> QAScores:
        """Exact match and KorQuAD F1 on ``data.squad.SquadExample``s (each scored by its best gold answer)."""
        from malmoi.training.squad_metrics import squad_scores

        examples = list(examples)
        if not examples:
            raise MalmoiError("E492", "no questions to evaluate")
        best = self._best([ex.question for ex in examples], [ex.context for ex in examples], batch_size)
        predictions = {ex.id: ex.context[b.start:b.end] for ex, b in zip(examples, best) if b is not None}
        return squad_scores(predictions, {ex.id: [a.text for a in ex.answers] for ex in examples})
