"""The hybrid family of ``train seq2seq`` (``--preset hybrid``): retrieved answers reranked by a
dual encoder, with an LSTM generator for questions unlike any training question.

hybrid
    file → ``pairs.read_pair_data`` (the split every seq2seq preset uses) → ``RetrievalIndex`` of
    the training questions (the retrieval preset's) → ``DualEncoder`` trained contrastively on the
    training pairs → an LSTM seq2seq run in ``generator/`` (``train seq2seq`` with the preset's
    ``generator``, for what is left of ``--time-budget``) → validation: BLEU, chrF and exact match of
    the hybrid's answers, beside the retrieval answers (the ablation with the model switched off)
    and the share of answers that differ from them → run directory: the index files +
    ``dual.safetensors`` + ``generator/`` + ``malmoi.json`` (``architecture: hybrid``) + ``metrics.jsonl``.

``--time-budget`` bounds the whole call: the dual encoder takes at most ``dual_share`` of it, the
generator the rest but a reserve for validation. ``--resume`` continues the generator's training.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from malmoi.errors import MalmoiError
from malmoi.files import atomic_write_bytes
from malmoi.runs import prepare_out, process_state, restart_unfinished, write_meta
from malmoi.tasks.common import (
    Say,
    TrainResult,
    seed_everything,
    stderr_say,
)
from malmoi.tasks.pairs import PairData, Seq2SeqOptions, lstm_greedy, read_pair_data
from malmoi.tasks.retrieval import RetrievalFamily
from malmoi.training.text_metrics import text_scores

GENERATOR = "generator"
"""Sub-folder holding the generator's own run (an LSTM seq2seq run, usable by itself)."""
VALIDATION_RESERVE = 10.0
"""Seconds of the budget kept for the hybrid's validation after the generator."""


class GeneratorFallback:
    """Greedy answers of the generator's LSTM run, loaded once; a source longer than the model takes
    is cut to its length (the retrieval side read the whole question)."""

    def __init__(self, run: Path):
        from malmoi.models.lstm import LSTMSeq2Seq
        from malmoi.runs import read_meta
        from malmoi.text.codecs import load_codec

        self.model = LSTMSeq2Seq.load(run).eval()
        self.codec = load_codec(run, read_meta(run).get("units", "subword"))

    def __call__(self, texts: list[str]) -> list[str]:
        import torch

        from malmoi.data.batching import pad_with_mask
        from malmoi.data.datasets import encode_all

        if not texts:
            return []
        codec = self.codec
        codec.prepare(texts)
        limit = self.model.config.max_source_len
        ids = [seq or [codec.eos_id] for seq in encode_all(texts, codec.source_encoder, limit)]
        with torch.no_grad():
            src, mask = pad_with_mask(ids, codec.pad_id)
            return [codec.decode(t) for t in lstm_greedy(self.model, src, mask)]


class HybridFamily(RetrievalFamily):
    """``train seq2seq --preset hybrid``: index, dual encoder and generator, validated together."""

    def train(self, opts: Seq2SeqOptions, say: Say = stderr_say) -> TrainResult:
        from malmoi.models.dual import DualEncoder, train_dual
        from malmoi.models.hybrid import ARCHITECTURE, HybridConfig, HybridRanker
        from malmoi.models.presets import get_preset

        self.check(opts)
        started = time.monotonic()
        config = {**get_preset(opts.preset).config, **opts.model_overrides}
        out, resume = self._prepare(opts, say)
        data = read_pair_data(opts, say)
        seed_everything(opts.seed)
        index = self.build(opts, data)
        encode = index.featurizer.encode
        questions, answers = encode(data.train_sources), encode(data.train_targets)
        dual = DualEncoder.for_texts(questions, answers, dim=config["dual"]["dim"])
        share = opts.time_budget * config["dual_share"] if opts.time_budget else None
        fitted = train_dual(dual, questions, answers, data.train_targets, seed=opts.seed, seconds=share,
                            **{k: v for k, v in config["dual"].items() if k != "dim"})
        say(f"indexed {len(index)} training questions; dual encoder ({len(dual.ids):,} n-grams × "
            f"{config['dual']['dim']}): {fitted['epochs']} epochs, loss {fitted['loss']:.3f}, "
            f"{fitted['seconds']:.0f} s")
        main = process_state().is_main_process
        if main:
            index.save(out)
            dual.save(out)
            write_meta(out, self.meta(opts, data, index, {}) | {"architecture": ARCHITECTURE, "status": "training",
                                                                "stopped_by": None, "generator": GENERATOR})
        generator = self._train_generator(opts, config, out / GENERATOR, resume, started, say)
        ranker = HybridRanker(index, dual, HybridConfig(**config["ranking"]))
        metrics = self.validate(ranker, out / GENERATOR, data)
        say(f"on {len(data.valid_sources)} held-out pairs: BLEU {metrics['bleu']:.2f}, chrF {metrics['chrf']:.2f}, "
            f"exact {metrics['exact']:.1%} (retrieval alone chrF {metrics['retrieval_chrf']:.2f}; "
            f"{metrics['differ']:.1%} of answers differ from it, {metrics['generated']:.1%} generated)")
        if main:
            record = {"event": "eval", "step": generator.steps, "epoch": 0, **metrics}
            atomic_write_bytes(out / "metrics.jsonl", (json.dumps(record) + "\n").encode("utf-8"))
            write_meta(out, self.meta(opts, data, index, metrics) | {
                "architecture": ARCHITECTURE, "generator": GENERATOR, "steps": generator.steps,
                "stopped_by": generator.stopped_by, "dual": fitted, "ranking": config["ranking"]})
        return TrainResult(out, metrics, len(data.train_sources), len(data.valid_sources), data.skipped_empty,
                           time.monotonic() - started, generator.stopped_by, generator.steps, generator.samples_per_s)

    def _prepare(self, opts: Seq2SeqOptions, say: Say) -> tuple[Path, bool]:
        """The run directory, and whether the generator resumes: ``--resume`` continues the generator's
        checkpoint (the index and the dual encoder are rebuilt, the same for the same seed). A run
        killed before the generator's first checkpoint is started again."""
        out = Path(opts.out)
        if not opts.resume:
            if not (out / GENERATOR / "checkpoints" / "last").exists():
                restart_unfinished(out, self.name, say)
            return prepare_out(out, False), False
        if not (out / GENERATOR / "checkpoints" / "last").exists():
            raise MalmoiError("E302", f"nothing to resume in {out}: no {GENERATOR}/checkpoints/last")
        return out, True

    def _train_generator(self, opts: Seq2SeqOptions, config: dict, out: Path, resume: bool, started: float,
                         say: Say) -> TrainResult:
        from malmoi.tasks.lstm import LSTMSeq2SeqFamily

        budget = 0.0
        if opts.time_budget:  # what the index and the dual encoder left, less the validation's reserve
            budget = max(1.0, opts.time_budget - (time.monotonic() - started) - VALIDATION_RESERVE)
        gen_opts = replace(opts, out=out, preset=config["generator"], resume=resume, time_budget=budget,
                           num_threads=None, model_overrides=config.get("generator_overrides", {}))
        say(f"training the generator ({config['generator']}) in {out}"
            + (f" for {budget:.0f} s" if budget else ""))
        return LSTMSeq2SeqFamily().train(gen_opts, say)

    @staticmethod
    def validate(ranker, generator: Path, data: PairData) -> dict[str, float]:
        """The hybrid's scores on the held-out pairs, the retrieval ablation's, and how often they differ."""
        if not data.valid_sources:
            return {"bleu": 0.0, "chrf": 0.0, "exact": 0.0, "retrieval_chrf": 0.0, "differ": 0.0, "generated": 0.0}
        choices = ranker.choose(data.valid_sources)
        hybrid = hybrid_answers(ranker, GeneratorFallback(generator), data.valid_sources, choices)
        retrieved = [ranker.index.answers[i] for i in choices.nearest]
        alone = text_scores(retrieved, data.valid_targets)
        return {**text_scores(hybrid, data.valid_targets), "retrieval_chrf": alone["chrf"],
                "retrieval_bleu": alone["bleu"], "differ": sum(h != r for h, r in zip(hybrid, retrieved)) / len(hybrid),
                "generated": float(choices.generate.mean())}


def hybrid_answers(ranker, generate, texts: list[str], choices=None) -> list[str]:
    """The hybrid's answer to each text: the best-ranked training answer, or ``generate``'s (a
    ``GeneratorFallback``) where nothing similar was found."""
    choices = ranker.choose(texts) if choices is None else choices
    answers = [ranker.index.answers[i] for i in choices.pair]
    fallback = [i for i, g in enumerate(choices.generate) if g]
    for i, reply in zip(fallback, generate([texts[i] for i in fallback])):
        answers[i] = reply if reply.strip() else answers[i]  # an empty generation keeps the retrieved answer
    return answers
