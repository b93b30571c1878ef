"""A trained hybrid run (``train seq2seq --preset hybrid``): the best-ranked training answer of the
nearest questions, or the generator's answer where nothing similar was found."""
from __future__ import annotations

import os
from pathlib import Path

from malmoi.models.dual import DualEncoder
from malmoi.models.hybrid import ARCHITECTURE, HybridConfig, HybridRanker
from malmoi.models.presets import get_preset
from malmoi.models.retrieval import RetrievalIndex
from malmoi.use.results import Answer
from malmoi.use.retrieval import RetrievalGenerator
from malmoi.use.seq2seq import trained_run_meta


class HybridGenerator(RetrievalGenerator):
    """Answers from the training pairs, reranked; ``matched`` is None for a generated answer."""

    def __init__(self, ranker: HybridRanker, generate, run: Path | None = None):
        super().__init__(ranker.index, run)
        self.ranker = ranker
        self._generate = generate

    @classmethod
    def from_run(cls, run: str | os.PathLike) -> HybridGenerator:
        from malmoi.tasks.hybrid import GENERATOR, GeneratorFallback

        run = Path(run)
        meta = trained_run_meta(run, ARCHITECTURE, files=("retrieval.safetensors", "dual.safetensors"))
        trained_run_meta(run / GENERATOR, "lstm-seq2seq")
        ranking = meta.get("ranking") or get_preset("hybrid").config["ranking"]  # as the run was validated
        ranker = HybridRanker(RetrievalIndex.load(run), DualEncoder.load(run), HybridConfig(**ranking))
        return cls(ranker, GeneratorFallback(run / GENERATOR), run)

    def _answers(self, texts: list[str]) -> list[Answer]:
        """``generate``'s answers: ``similarity`` is the chosen question's cosine to the input, ``score``
        the reranked score (similarity plus the weighted dual-encoder cosines)."""
        from malmoi.tasks.hybrid import hybrid_answers

        choices = self.ranker.choose(texts)
        replies = hybrid_answers(self.ranker, self._generate, texts, choices)
        return [Answer(text, reply, [reply], float(score), None if generated else self.index.questions[i],
                       float(sim))
                for text, reply, i, sim, score, generated in zip(texts, replies, choices.pair, choices.similarity,
                                                                  choices.score, choices.generate)]
