"""The LSTM family of ``train seq2seq`` (the default, ``--preset lstm-bahdanau``; its runs are used
through ``use.seq2seq``).

lstm-seq2seq
    file → ``read_pairs`` → train/validation split → text codec (``text.codecs``) →
    ``Seq2SeqDataset`` → ``fit`` with an ``LSTMSeq2Seq`` preset → run directory: ``config.json`` +
    ``model.safetensors`` + the codec's files + ``malmoi.json`` (``architecture: lstm-seq2seq``).

Validation and the run directory are shared with the transformer family (``tasks.pairs``).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from malmoi.errors import MalmoiError
from malmoi.runs import read_meta
from malmoi.tasks.common import Say, TrainResult, stderr_say
from malmoi.tasks.pairs import PairData, Seq2SeqOptions, fit_pairs, pair_meta, prepare_pair_run, read_pair_data

ARCHITECTURE = "lstm-seq2seq"


class LSTMSeq2SeqFamily:
    """Source → target text with the from-scratch ``LSTMSeq2Seq``."""

    name = "seq2seq"

    def build_model(self, opts: Seq2SeqOptions, codec):
        from malmoi.models.lstm import LSTMSeq2Seq, config_from_preset

        cfg = config_from_preset(opts.preset, vocab_size=codec.vocab_size, pad_id=codec.pad_id, bos_id=codec.bos_id,
                                 eos_id=codec.eos_id, max_len=opts.max_target_length,
                                 max_source_len=opts.max_source_length, teacher_forcing=opts.teacher_forcing,
                                 **opts.model_overrides)
        return LSTMSeq2Seq(cfg)

    def meta(self, opts: Seq2SeqOptions, data: PairData, model) -> dict:
        return pair_meta(opts, data, model, ARCHITECTURE, model.config.attention)

    def resumed_options(self, opts: Seq2SeqOptions, out: Path) -> Seq2SeqOptions:
        """On resume the codec and model are rebuilt as the run recorded them, whatever the new command says."""
        meta = read_meta(out)
        if meta.get("architecture", ARCHITECTURE) != ARCHITECTURE:
            raise MalmoiError("E305", f"{out} holds a {meta.get('architecture') or meta.get('task')!r} run, "
                                      f"not {ARCHITECTURE}")
        saved = meta.get("args", {})
        keep = ("preset", "units", "max_source_length", "max_target_length", "teacher_forcing", "model_overrides", "select_by")
        saved.setdefault("select_by", "loss")  # runs from before --select-by kept the least loss
        return replace(opts, **{k: saved[k] for k in keep if k in saved})

    def train(self, opts: Seq2SeqOptions, say: Say = stderr_say) -> TrainResult:
        started = time.monotonic()
        run = prepare_pair_run(self, opts, read_pair_data(opts, say), say)
        attention = run.model.config.attention
        describe = (f"{run.opts.preset} ({'no' if attention == 'none' else attention} attention), "
                    f"{run.model.num_parameters():,} parameters, {run.codec.vocab_size} {run.opts.units} tokens")
        return fit_pairs(run, say, started, describe=describe, save_model=lambda model, folder: model.save(folder))
