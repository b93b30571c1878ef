"""The transformer encoder-decoder (BART-style) behind ``malmoi train seq2seq --preset bart-mini``
(its runs are used through ``use.bart``).

bart-seq2seq
    file → ``pairs.read_pair_data`` (train/validation split) → subword tokenizer (BPE over Kiwi
    morphemes trained on both sides, or ``--tokenizer DIR``; ``text.codecs.SubwordCodec``) →
    ``Seq2SeqDataset`` (sources ``[CLS] x [SEP]``, labels ``y [SEP]``) → ``fit`` with the preset's
    transformer (``models.bart``: pre-norm ``mbart`` layers with a copy distribution over the source
    and label smoothing for bart-mini, post-norm BART for runs saved before) → run directory: a
    Hugging Face folder (``config.json``, ``model.safetensors``, ``generation_config.json``) +
    tokenizer files +
    ``malmoi.json`` (``task: seq2seq``, ``architecture: bart-seq2seq``).

Special ids come from the tokenizer: pad = ``[PAD]``, bos = decoder start = ``[CLS]``, eos =
``[SEP]``. BART builds its decoder inputs by shifting the labels right behind the decoder start,
so the decoder learns ``[CLS] → y₁ … yₙ → [SEP]``; ``generate()`` starts from ``[CLS]`` and stops
at ``[SEP]``. No end token is forced at the length limit (BART's default forces one, which
would overwrite the last real token of a long answer).

Validation is the LSTM family's (``pairs.make_evaluate``: loss, perplexity, BLEU, chrF and
sample answers) with ``decode_answers``. Once the best checkpoint is exported, ``choose_decoding``
weighs greedy decoding against beam search on up to ``DECODING_PAIRS`` validation pairs and records the
one with the higher chrF as the run's default (``malmoi.json`` → ``decoding``): summaries gain from
beams, chatbot answers do not. With a time budget, training stops early enough for that choice.
"""
from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Sequence

from malmoi.errors import MalmoiError
from malmoi.runs import process_state, read_meta, write_meta
from malmoi.tasks.common import Say, TrainResult, stderr_say, unwrap
from malmoi.tasks.pairs import PairData, Seq2SeqOptions, fit_pairs, pair_meta, prepare_pair_run, read_pair_data

ARCHITECTURE = "bart-seq2seq"
DECODING_BEAMS = 4
"""The beam width weighed against greedy decoding once training ends."""
DECODING_PAIRS = 500
"""Validation pairs that choice is made on: enough to see a chrF point, few enough to take seconds."""
DECODING_RESERVE = (0.05, 30.0)
"""Share of a time budget, and most seconds, kept for choosing the decoding."""


def answer_ids(row: Sequence[int], eos_id: int, pad_id: int) -> list[int]:
    """The answer in one generated row (decoder start already removed): up to the first eos, no pad."""
    row = list(row)
    if eos_id in row:
        row = row[: row.index(eos_id)]
    return [i for i in row if i != pad_id]


def decode_answers(model, input_ids, attention_mask, *, max_new_tokens: int, beams: int = 1) -> list[list[int]]:
    """Greedy (or ``beams``-wide beam search) answer ids (no decoder start, no eos) of a BART model
    for a padded batch: the ``answer`` function of ``pairs.make_evaluate``."""
    cfg = unwrap(model).config
    sequences = unwrap(model).generate(input_ids=input_ids, attention_mask=attention_mask,
                                       max_new_tokens=max_new_tokens, num_beams=beams, do_sample=False)
    return [answer_ids(row, cfg.eos_token_id, cfg.pad_token_id) for row in sequences[:, 1:].tolist()]


# ---------------------------------------------------------------------------------------- the task


class BartFamily:
    """Source → target text with a BART-style transformer preset (``train seq2seq``
    hands ``--preset bart-mini`` runs here through ``seq2seq.FAMILIES``)."""

    name = "seq2seq"

    def check(self, opts: Seq2SeqOptions) -> None:
        if opts.units != "subword":
            raise MalmoiError("E228", f"--preset {opts.preset} reads subword tokens; leave --units at subword "
                                      f"(got {opts.units!r})")
        if opts.teacher_forcing != 1.0:
            raise MalmoiError("E228", f"--preset {opts.preset} trains with full teacher forcing (its decoder "
                                      "reads the whole target at once); leave out --teacher-forcing")

    def build_model(self, opts: Seq2SeqOptions, codec):
        from malmoi.models.bart import model_class
        from malmoi.models.classifier import quiet_transformers
        from malmoi.models.presets import hf_config, max_positions

        overrides = {"forced_eos_token_id": None, **opts.model_overrides}
        config = hf_config(opts.preset, vocab_size=codec.vocab_size, pad_token_id=codec.pad_id,
                           bos_token_id=codec.bos_id, eos_token_id=codec.eos_id,
                           decoder_start_token_id=codec.bos_id, **overrides)
        limit = max_positions(config)
        for name, need in (("max_source_length", opts.max_source_length),
                           ("max_target_length", opts.max_target_length + 1)):  # + the decoder start
            if need > limit:
                raise MalmoiError("E222", f"--{name.replace('_', '-')} {getattr(opts, name)} exceeds the "
                                          f"model's {limit} positions")
        with quiet_transformers():
            return model_class(config)(config)

    def meta(self, opts: Seq2SeqOptions, data: PairData, model) -> dict:
        return pair_meta(opts, data, model, ARCHITECTURE, "transformer")

    def resumed_options(self, opts: Seq2SeqOptions, out: Path) -> Seq2SeqOptions:
        """On resume the model is rebuilt as the run recorded it, whatever the new command says."""
        meta = read_meta(out)
        if meta.get("architecture") != ARCHITECTURE:
            raise MalmoiError("E305", f"{out} holds a {meta.get('architecture') or meta.get('task')!r} "
                                      f"run, not {ARCHITECTURE}")
        saved = meta.get("args", {})
        keep = ["preset", "max_source_length", "max_target_length", "model_overrides", "select_by"]
        if opts.preset != saved.get("preset"):
            keep.append("lr")  # a command naming another preset got that family's default step
        saved.setdefault("select_by", "loss")  # runs from before --select-by kept the least loss
        return replace(opts, **{k: saved[k] for k in keep if k in saved})

    def train(self, opts: Seq2SeqOptions, say: Say = stderr_say) -> TrainResult:
        self.check(opts)
        started = time.monotonic()
        run = prepare_pair_run(self, opts, read_pair_data(opts, say), say)
        describe = (f"{run.opts.preset} (transformer encoder-decoder), {run.model.num_parameters():,} parameters, "
                    f"{run.codec.vocab_size} subword tokens")
        answer = partial(decode_answers, max_new_tokens=run.opts.max_target_length)
        budget = run.opts.time_budget
        if budget:  # the decoding choice below must fit in the budget too
            share, most = DECODING_RESERVE
            run = replace(run, opts=replace(run.opts, time_budget=budget - min(share * budget, most)))
        result = fit_pairs(run, say, started, describe=describe, save_model=_save_pretrained, answer=answer)
        if run.data.valid_sources and process_state().is_main_process:
            choose_decoding(run.out, run.data, say)
        return result


def choose_decoding(out: Path, data: PairData, say: Say = stderr_say) -> dict:
    """Greedy or ``DECODING_BEAMS``-beam search, whichever answers the first ``DECODING_PAIRS``
    validation pairs with the higher chrF (greedy on a tie), recorded in the run's malmoi.json as
    ``decoding`` (``beams`` and the chrF of each): what ``generate`` does when no beam width is given.
    Sources are cut to the model's length as in validation."""
    import torch

    from malmoi.data.batching import pad_with_mask
    from malmoi.data.datasets import encode_all
    from malmoi.text.codecs import SubwordCodec
    from malmoi.training.text_metrics import text_scores

    model, meta, codec = load_exported(out), read_meta(out), SubwordCodec.load(out)
    sources, targets = data.valid_sources[:DECODING_PAIRS], data.valid_targets[:DECODING_PAIRS]
    codec.prepare(sources)
    ids = [seq or [codec.eos_id] for seq in encode_all(sources, codec.source_encoder, meta["max_source_length"])]

    def answers(beams: int) -> list[str]:
        texts = []
        for start in range(0, len(ids), 64):
            with torch.inference_mode():
                rows = decode_answers(model, *pad_with_mask(ids[start:start + 64], codec.pad_id),
                                      max_new_tokens=meta["max_target_length"], beams=beams)
            texts += [codec.decode(row) for row in rows]
        return texts

    chrf = {beams: round(text_scores(answers(beams), targets)["chrf"], 2) for beams in (1, DECODING_BEAMS)}
    best = DECODING_BEAMS if chrf[DECODING_BEAMS] > chrf[1] else 1
    decoding = {"beams": best, "chrf": {str(b): c for b, c in chrf.items()}, "pairs": len(sources)}
    write_meta(out, meta | {"decoding": decoding})
    say(f"decoding: {'greedy' if best == 1 else f'{best} beams'} (validation chrF greedy {chrf[1]:.2f}, "
        f"{DECODING_BEAMS} beams {chrf[DECODING_BEAMS]:.2f} on {len(sources)} pairs)")
    return decoding


def load_exported(out: Path):
    """The exported model of a run directory, in eval mode (the best checkpoint's weights)."""
    import torch
    from transformers import AutoConfig

    from malmoi.models.bart import model_class
    from malmoi.models.classifier import quiet_transformers

    with quiet_transformers():
        config = AutoConfig.from_pretrained(out)
        return model_class(config).from_pretrained(out, config=config, dtype=torch.float32).eval()


def _save_pretrained(model, folder) -> None:
    """The model part of an export: a Hugging Face folder, written without transformers' notices."""
    from malmoi.models.classifier import quiet_transformers

    with quiet_transformers():
        model.save_pretrained(folder)
