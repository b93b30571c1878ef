"""What the seq2seq families share (``malmoi train seq2seq``, LSTM or transformer): the options, the
source/target pairs and their split, validation (loss, perplexity, BLEU and chrF of greedy answers,
with sample answers in the log), and the run directory and training call. A family's task object
(``lstm.LSTMSeq2SeqFamily``, ``bart.BartFamily``) gives ``build_model``, ``meta`` and
``resumed_options``; ``prepare_pair_run`` and ``fit_pairs`` do the rest.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from malmoi.errors import MalmoiError
from malmoi.runs import start_run, write_meta
from malmoi.tasks.common import LoopOptions, Say, TrainResult, finish_run, recorded_args, seed_everything, unwrap
from malmoi.text.codecs import UNITS, build_codec, load_codec

SAMPLES_SHOWN = 3
SELECT_BY = ("chrf", "bleu", "loss")


@dataclass(kw_only=True)
class Seq2SeqOptions(LoopOptions):
    """``malmoi train seq2seq``: an LSTM encoder-decoder from a table of (source, target) pairs."""

    data: str | os.PathLike
    """Training file (CSV, TSV or JSONL with a header)."""
    source: str
    """Column holding the input text (a question)."""
    target: str
    """Column holding the output text (an answer)."""
    out: str | os.PathLike
    """Run directory to create (refused if it exists, unless ``resume``)."""
    valid: str | os.PathLike | None = None
    """Validation file; without it ``valid_split`` of the pairs is held out."""
    valid_split: float = 0.1
    """Fraction of the pairs held out for validation when there is no ``valid`` file."""
    preset: str = "lstm-bahdanau"
    """Model preset: an LSTM encoder-decoder (with or without attention) or a transformer (BART)."""
    units: str = "subword"
    """How text becomes ids: subword (BPE over morphemes), morphemes, words or chars."""
    tokenizer: str | os.PathLike | None = None
    """A trained subword tokenizer folder to use instead of training one."""
    vocab_size: int | None = None
    """Size of the vocabulary built from the training pairs; by default the preset's choice, else 8000."""
    max_source_length: int = 64
    """Source tokens kept (longer inputs are truncated in training, refused in generation)."""
    max_target_length: int = 64
    """Target tokens kept, and the most tokens generated."""
    teacher_forcing: float = 1.0
    """Probability of feeding the gold previous token to the decoder in training."""
    select_by: str = "chrf"
    """Validation metric that chooses the exported checkpoint: chrf or bleu (higher is better) or loss.
    A lower loss does not mean better answers: on the chatbot data the checkpoint of least loss can
    answer every question alike."""
    eval_samples: int = SAMPLES_SHOWN
    """Validation questions answered in the log after each evaluation."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Preset fields to replace (e.g. ``hidden=32`` in tests)."""
    num_threads: int | None = field(default=None, metadata={"flag": "--threads"})
    """Torch CPU threads (0 = torch's default); by default 1 for LSTM presets and 0 for transformers: an
    LSTM decoder runs one small step at a time, which a second thread barely speeds up, while on a busy
    machine spinning threads slowed LSTM training 20×."""

    def __post_init__(self) -> None:
        from malmoi.models.presets import get_preset

        family = get_preset(self.preset, "seq2seq").model_type
        if self.num_threads is None:
            self.num_threads = 1 if family == "lstm" else 0
        super().__post_init__()
        if self.units not in UNITS:
            raise MalmoiError("E210", f"unknown --units {self.units!r}; choose one of: {', '.join(UNITS)}")
        if self.tokenizer is not None and self.units != "subword":
            raise MalmoiError("E228", "--tokenizer gives subword units; leave --units at subword")
        for name in ("max_source_length", "max_target_length"):
            if not 0 < getattr(self, name) <= 4096:
                raise MalmoiError("E222", f"--{name.replace('_', '-')} must be between 1 and 4096, "
                                          f"got {getattr(self, name)}")
        if self.valid is None and not 0 < self.valid_split < 1:
            raise MalmoiError("E226", f"--valid-split must be a fraction between 0 and 1, got {self.valid_split}")
        if self.vocab_size is None:
            self.vocab_size = self.tuned().get("vocab_size", 8000)
        if self.vocab_size < 16:
            raise MalmoiError("E211", f"--vocab-size must be at least 16, got {self.vocab_size}")
        if self.select_by not in SELECT_BY:
            raise MalmoiError("E201", f"unknown --select-by {self.select_by!r}; choose one of: {', '.join(SELECT_BY)}")
        if not 0 <= self.teacher_forcing <= 1:
            raise MalmoiError("E201", f"--teacher-forcing must lie in [0, 1], got {self.teacher_forcing}")


@dataclass
class PairData:
    """Source/target pairs split into training and validation."""

    train_sources: list[str]
    train_targets: list[str]
    valid_sources: list[str]
    valid_targets: list[str]
    skipped_empty: int
    """Rows dropped because one side was empty (both files)."""


def read_pair_data(opts: Seq2SeqOptions, say: Say) -> PairData:
    from malmoi.data.readers import read_pairs
    from malmoi.data.splits import random_split

    sources, targets, skipped = read_pairs(opts.data, opts.source, opts.target)
    if skipped:
        say(f"skipped {skipped} rows of {opts.data} with an empty {opts.source!r} or {opts.target!r}")
    if opts.valid is not None:
        vs, vt, vskipped = read_pairs(opts.valid, opts.source, opts.target)
        return PairData(sources, targets, vs, vt, skipped + vskipped)
    if len(sources) < 2:
        raise MalmoiError("E111", f"{opts.data}: {len(sources)} pair is too few to hold out a validation "
                                  "split; add rows or pass --valid FILE")
    tr, va = random_split(len(sources), opts.valid_split, opts.seed)
    return PairData([sources[i] for i in tr], [targets[i] for i in tr],
                    [sources[i] for i in va], [targets[i] for i in va], skipped)


# ---------------------------------------------------------------------------------------- evaluation


def _gold_ids(labels, pad_id: int, eos_id: int) -> list[list[int]]:
    out = []
    for row in labels.tolist():
        ids = [i for i in row if i not in (-100, pad_id)]
        out.append(ids[: ids.index(eos_id)] if eos_id in ids else ids)
    return out


def lstm_greedy(model, input_ids, attention_mask) -> list[list[int]]:
    """Greedy answer ids (no ``<bos>``/``<eos>``) of an ``LSTMSeq2Seq`` for a padded batch."""
    return model.greedy(input_ids, attention_mask=attention_mask).tokens


def make_evaluate(codec, sample_sources: list[str], max_source_length: int, shown: list,
                  answer: Callable = lstm_greedy):
    """``evaluate(model, loader)`` for ``fit``: token-level loss, perplexity, BLEU, chrF, ROUGE-L and
    exact match of greedy answers (``training.text_metrics``); it also answers ``sample_sources`` and
    leaves (question, answer) pairs in ``shown``. ``answer(model, input_ids, attention_mask)`` gives
    each source's answer ids without ``<bos>``/``<eos>`` (any model family: ``lstm_greedy``,
    ``bart.decode_answers`` …)."""
    from malmoi.data.datasets import encode_all

    codec.prepare(sample_sources)
    sample_ids = encode_all(sample_sources, codec.source_encoder, max_source_length)

    def evaluate(model, loader) -> dict[str, float]:
        from malmoi.data.batching import pad_with_mask
        from malmoi.training.text_metrics import text_scores

        device = next(model.parameters()).device
        pad_id, eos_id = codec.pad_id, codec.eos_id
        loss_sum, tokens, hyps, refs = 0.0, 0, [], []
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(**batch)
            n = int(((batch["labels"] != -100) & (batch["labels"] != pad_id)).sum())
            loss_sum += float(out.loss) * n
            tokens += n
            hyps += [codec.decode(t) for t in answer(model, batch["input_ids"], batch.get("attention_mask"))]
            refs += [codec.decode(t) for t in _gold_ids(batch["labels"], pad_id, eos_id)]
        loss = loss_sum / max(1, tokens)
        if sample_ids:
            src, mask = (t.to(device) for t in pad_with_mask(sample_ids, pad_id))
            shown[:] = [(q, codec.decode(t)) for q, t in zip(sample_sources, answer(model, src, mask))]
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), **text_scores(hyps, refs)}

    return evaluate


# ---------------------------------------------------------------------------------------- a run, any family


@dataclass
class PairRun:
    """A seq2seq run directory ready to train in, whatever the model family."""

    opts: Seq2SeqOptions
    """The options; a resumed run's model and lengths as the run recorded them."""
    data: PairData
    """The pairs to train and validate on."""
    out: Path
    """The run directory."""
    codec: Any
    """Text ↔ ids (``SubwordCodec`` or ``VocabCodec``)."""
    model: Any
    """The model to train (``LSTMSeq2Seq`` or a Hugging Face encoder-decoder)."""
    resume: bool
    """Training continues from ``checkpoints/last``."""


def pair_meta(opts: Seq2SeqOptions, data: PairData, model, architecture: str, attention: str) -> dict:
    """malmoi.json of a fresh seq2seq run (``status: training`` until ``fit`` ends)."""
    from malmoi.version import __version__

    return {
        "task": "seq2seq",
        "architecture": architecture,
        "malmoi_version": __version__,
        "preset": opts.preset,
        "attention": attention,
        "units": opts.units,
        "columns": {"source": opts.source, "target": opts.target},
        "max_source_length": opts.max_source_length,
        "max_target_length": opts.max_target_length,
        "parameters": model.num_parameters(),
        "args": recorded_args(opts),
        "data": {"train": str(opts.data), "valid": str(opts.valid) if opts.valid else None,
                 "train_examples": len(data.train_sources), "valid_examples": len(data.valid_sources),
                 "skipped_empty": data.skipped_empty},
        "status": "training",
    }


def new_codec(opts: Seq2SeqOptions, data: PairData, say: Say):
    """The codec of a fresh run: the given tokenizer, or one trained on both sides of the training pairs."""
    texts = data.train_sources + data.train_targets
    if opts.tokenizer is not None:
        say(f"using the tokenizer in {opts.tokenizer}")
    elif opts.units == "subword":
        say(f"training a BPE tokenizer ({opts.vocab_size} tokens, Kiwi morpheme cuts) on {len(texts)} texts")
    else:
        say(f"building a {opts.units} vocabulary of up to {opts.vocab_size} tokens from {len(texts)} texts")
    return build_codec(opts.units, texts, opts.vocab_size, opts.tokenizer)


def prepare_pair_run(family, opts: Seq2SeqOptions, data: PairData, say: Say) -> PairRun:
    """Create or reopen the run directory of a seq2seq training call. ``family`` is the model
    family's task object: ``build_model(opts, codec)``, ``resumed_options(opts, out)`` (what a
    resumed run takes from its malmoi.json) and ``meta(opts, data, model)`` (the malmoi.json it writes)."""
    seed_everything(opts.seed)
    with start_run(opts.out, family.name, opts.resume, say) as run:
        if run.reopen:
            opts = family.resumed_options(opts, run.out) if run.resume else opts
            codec = load_codec(run.out, opts.units)
            return PairRun(opts, data, run.out, codec, family.build_model(opts, codec), run.resume)
        with run.building():
            codec = new_codec(opts, data, say)
            model = family.build_model(opts, codec)
        codec.save(run.out)
        write_meta(run.out, family.meta(opts, data, model))
        return PairRun(opts, data, run.out, codec, model, False)


def pair_datasets(codec, data: PairData, opts: Seq2SeqOptions):
    """(train, valid) ``Seq2SeqDataset``s of the pairs."""
    from malmoi.data.datasets import Seq2SeqDataset

    codec.prepare(data.train_sources + data.train_targets + data.valid_sources + data.valid_targets)

    def dataset(sources, targets):
        return Seq2SeqDataset(sources, targets, codec.source_encoder, codec.target_encoder,
                              max_source_length=opts.max_source_length, max_target_length=opts.max_target_length)

    return dataset(data.train_sources, data.train_targets), dataset(data.valid_sources, data.valid_targets)


def fit_pairs(run: PairRun, say: Say, started: float, *, describe: str, save_model: Callable,
              answer: Callable = lstm_greedy) -> TrainResult:
    """Train ``run.model`` with the seq2seq validation (loss, perplexity, BLEU, chrF; sample answers
    in the log after each evaluation). ``describe`` names the model in the log, ``save_model(model,
    folder)`` writes the plain model into an export, ``answer`` is ``make_evaluate``'s."""
    from malmoi.data.batching import PadCollator
    from malmoi.training.loop import fit

    opts, data, codec = run.opts, run.data, run.codec
    train_set, valid_set = pair_datasets(codec, data, opts)
    say(f"{len(train_set)} training and {len(valid_set)} validation pairs; {describe}")
    shown: list[tuple[str, str]] = []
    evaluate = make_evaluate(codec, data.valid_sources[: opts.eval_samples], opts.max_source_length, shown,
                             answer=answer)

    def on_eval(step: int, metrics: dict[str, float]) -> None:
        for question, reply in shown:
            say(f"  Q: {question}\n  A: {reply}")

    def export(model, folder) -> None:
        save_model(unwrap(model), folder)
        codec.save(folder)

    result = fit(run.model, train_set, valid_set, args=opts.train_args(), out=run.out,
                 collate=PadCollator(pad_id=codec.pad_id), evaluate=evaluate, export=export, metric=opts.select_by,
                 maximize=opts.select_by != "loss", resume=run.resume, lengths=train_set.lengths, on_eval=on_eval)
    return finish_run(run.out, result, started, len(train_set), len(valid_set), data.skipped_empty,
                      opts.keep_checkpoints)
