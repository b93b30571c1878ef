"""A trained retrieval run (``train seq2seq --preset retrieval``): each input gets the answer of the
most similar training question, with that question and its similarity."""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from malmoi.errors import MalmoiError
from malmoi.models.retrieval import ARCHITECTURE, RetrievalIndex
from malmoi.use.results import Answer
from malmoi.use.seq2seq import trained_run_meta


class RetrievalGenerator:
    """Answers from the training pairs. An input that shares no character n-gram with any training
    question gets the most frequent training answer (similarity 0)."""

    continues_prompt: ClassVar[bool] = False
    """Answers are new texts, not continuations of the input."""
    samples: ClassVar[bool] = False
    """It retrieves: sampling options and beams do not apply."""

    def __init__(self, index: RetrievalIndex, run: Path | None = None):
        self.index = index
        self.run = run
        self.fallback = Counter(index.answers).most_common(1)[0][0]

    @classmethod
    def from_run(cls, run: str | os.PathLike) -> RetrievalGenerator:
        run = Path(run)
        trained_run_meta(run, ARCHITECTURE, files=("retrieval.safetensors", "retrieval.json"))
        return cls(RetrievalIndex.load(run), run)

    @property
    def tokenizer(self):
        """The character n-gram featurizer questions are compared through."""
        return self.index.featurizer

    def generate(self, texts: str | Sequence[str], *, beams: int = 1, max_new_tokens: int | None = None,
                 **options) -> list[Answer]:
        """One ``Answer`` per text: the nearest training question's answer; ``score`` and ``similarity``
        are their cosine similarity, ``matched`` the question."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if any(not isinstance(t, str) for t in texts):
            raise MalmoiError("E428", "inputs must be strings")
        if any(not t.strip() for t in texts):
            raise MalmoiError("E421", "empty input: give a sentence to answer")
        if beams != 1 or options:
            raise MalmoiError("E275", "a retrieval run returns training answers; --beams and sampling options "
                                      "do not apply")
        return self._answers(texts)

    def _answers(self, texts: list[str]) -> list[Answer]:
        hits = self.index.search(texts)
        answers = []
        for text, i, sim in zip(texts, hits.index[:, 0], hits.similarity[:, 0]):
            found = sim > 0
            reply = self.index.answers[i] if found else self.fallback
            answers.append(Answer(text, reply, [reply], float(sim), self.index.questions[i] if found else None,
                                  float(sim)))
        return answers

    def stream(self, text: str, *, beams: int = 1, max_new_tokens: int | None = None, **options) -> Iterator[str]:
        """The answer to ``text`` as one piece (it is retrieved whole)."""
        yield self.generate([text], beams=beams, max_new_tokens=max_new_tokens, **options)[0].text

    def reply(self, text: str, beams: int = 1) -> str:
        """The answer to one chat message."""
        return self.generate([text], beams=beams)[0].text
