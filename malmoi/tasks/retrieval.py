"""The retrieval family of ``train seq2seq`` (``--preset retrieval``): the answer of the most similar
training question, the baseline every chatbot figure is printed beside.

retrieval
    file → ``pairs.read_pair_data`` (the same train/validation split as every seq2seq preset) →
    ``NgramFeaturizer`` (character n-grams) → ``models.retrieval.RetrievalIndex`` of the training
    questions → validation: BLEU, chrF, ROUGE-L and exact match of the retrieved answers against the raw
    held-out answers → run directory: the index files + ``ngrams.json`` + ``malmoi.json``
    (``architecture: retrieval``) + ``metrics.jsonl``. Building takes seconds; there is no loop.
"""
from __future__ import annotations

import json
import time

from malmoi.errors import MalmoiError
from malmoi.files import atomic_write_bytes
from malmoi.runs import process_state, start_run, write_meta
from malmoi.tasks.common import Say, TrainResult, recorded_args, seed_everything, stderr_say
from malmoi.tasks.pairs import PairData, Seq2SeqOptions, read_pair_data
from malmoi.training.text_metrics import text_scores


class RetrievalFamily:
    """``train seq2seq --preset retrieval``: index the training pairs, score the held-out ones."""

    name = "seq2seq"

    def check(self, opts: Seq2SeqOptions) -> None:
        if opts.tokenizer is not None or opts.units != "subword" or opts.teacher_forcing != 1.0:
            raise MalmoiError("E228", f"--preset {opts.preset} reads character n-grams and trains no decoder; "
                                      "leave out --tokenizer, --units and --teacher-forcing")

    def build(self, opts: Seq2SeqOptions, data: PairData):
        from malmoi.models.presets import get_preset
        from malmoi.models.retrieval import RetrievalIndex
        from malmoi.text.ngrams import NgramConfig, NgramFeaturizer

        config = {**get_preset(opts.preset).config, **opts.model_overrides}
        featurizer = NgramFeaturizer(NgramConfig.from_dict(config["features"]))
        return RetrievalIndex.build(featurizer, data.train_sources, data.train_targets,
                                    sublinear=config.get("sublinear", True))

    def meta(self, opts: Seq2SeqOptions, data: PairData, index, metrics: dict) -> dict:
        from malmoi.models.retrieval import ARCHITECTURE
        from malmoi.version import __version__

        return {
            "task": "seq2seq",
            "architecture": ARCHITECTURE,
            "malmoi_version": __version__,
            "preset": opts.preset,
            "columns": {"source": opts.source, "target": opts.target},
            "pairs": len(index),
            "args": recorded_args(opts),
            "data": {"train": str(opts.data), "valid": str(opts.valid) if opts.valid else None,
                     "train_examples": len(data.train_sources), "valid_examples": len(data.valid_sources),
                     "skipped_empty": data.skipped_empty},
            "status": "done",
            "result": metrics,
            "stopped_by": "built",
            "steps": 0,
        }

    def train(self, opts: Seq2SeqOptions, say: Say = stderr_say) -> TrainResult:
        self.check(opts)
        started = time.monotonic()
        data = read_pair_data(opts, say)
        seed_everything(opts.seed)
        with start_run(opts.out, self.name, opts.resume, say) as run:
            with run.building():
                index = self.build(opts, data)
                hits = index.search(data.valid_sources)
                answers = [index.answers[i] for i in hits.index[:, 0]]
                metrics = text_scores(answers, data.valid_targets)
            say(f"indexed {len(index)} training questions; on {len(data.valid_sources)} held-out pairs "
                f"BLEU {metrics['bleu']:.2f}, chrF {metrics['chrf']:.2f}, exact {metrics['exact']:.1%}")
            for question, answer in list(zip(data.valid_sources, answers))[: opts.eval_samples]:
                say(f"  Q: {question}\n  A: {answer}")
            if process_state().is_main_process:
                index.save(run.out)
                record = {"event": "eval", "step": 0, "epoch": 0, **metrics}
                atomic_write_bytes(run.out / "metrics.jsonl", (json.dumps(record) + "\n").encode("utf-8"))
                write_meta(run.out, self.meta(opts, data, index, metrics))
        return TrainResult(run.out, metrics, len(data.train_sources), len(data.valid_sources), data.skipped_empty,
                           time.monotonic() - started, "built", 0, 0.0)
