"""The seq2seq task (``malmoi train seq2seq``) with the from-scratch LSTM, and its generator.

seq2seq
    file → ``read_pairs`` → train/validation split → text codec → ``Seq2SeqDataset`` →
    ``fit`` with an ``LSTMSeq2Seq`` preset → run directory: ``config.json`` +
    ``model.safetensors`` + the codec's files + ``malmoi.json`` (``architecture: lstm-seq2seq``).

The codec turns text into ids and back, so the model never sees text:
    * ``subword`` (default): a BPE tokenizer trained on both sides after cutting at Kiwi morpheme
      boundaries (``train_tokenizer(kind="bpe", morphemes=True)``), or ``--tokenizer DIR``; BPE
      decodes back to the original spacing.
    * ``morphemes``: a ``Vocab`` of Kiwi morphemes with their tags (``좋아하/VV``), decoded by
      Kiwi's ``join``, which restores the surface forms (``좋아하 + 어`` → ``좋아해``).
    * ``words`` / ``chars``: a ``Vocab`` of whitespace words / syllables.

Validation reports loss (per target token), perplexity, and BLEU and chrF (sacrebleu) of greedy
answers against the references, and prints a few sample answers after every evaluation.

The transformer family (``bart``) shares the run directory, datasets, validation and training
call: ``prepare_pair_run`` and ``fit_pairs`` take the family's task object.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from .errors import MalmoiError
from .generators import Answer, AttentionMap
from .tasks import LoopOptions, Say, TrainResult, finish_run, recorded_args, register, stderr_say, unwrap

UNITS = ("subword", "morphemes", "words", "chars")
VOCAB_FILE = "malmoi_vocab.json"
ARCHITECTURE = "lstm-seq2seq"
SAMPLES_SHOWN = 3
TRANSFORMER_FAMILIES: dict[str, str] = {"bart": "malmoi.bart:BartSeq2SeqTask"}
"""``model_type`` of a ``models.presets`` preset → the ``"module:Class"`` that trains it
(``--preset bart-mini``); its ``train(opts, say)`` takes the same ``Seq2SeqOptions``."""


# ---------------------------------------------------------------------------------------- codecs


class _TargetTokenizer:
    """A tokenizer whose outputs lose the leading ``<bos>`` its post-processor adds: target ids
    must read ``y … <eos>``, since the decoder puts its own ``<bos>`` in front. Looks like a
    Hugging Face tokenizer to ``encode_all``, so targets are still encoded in one batched call."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def convert_tokens_to_ids(self, tokens):
        return self.tokenizer.convert_tokens_to_ids(tokens)

    def __call__(self, texts, **kwargs):
        bos = self.tokenizer.bos_token_id
        ids = self.tokenizer(texts, **kwargs)["input_ids"]
        return {"input_ids": [s[1:] if s and s[0] == bos else s for s in ids]}


class SubwordCodec:
    """Text ↔ ids through a subword tokenizer (``[CLS]`` is ``<bos>``, ``[SEP]`` is ``<eos>``)."""

    units = "subword"

    def __init__(self, tokenizer):
        if tokenizer.bos_token_id is None or tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
            raise MalmoiError("E240", "a seq2seq tokenizer needs pad, bos and eos tokens "
                                      "(malmoi tokenizers use [PAD], [CLS], [SEP])")
        self.tokenizer = tokenizer
        self.pad_id, self.bos_id, self.eos_id = tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id
        self.vocab_size = len(tokenizer)
        self.source_encoder = tokenizer
        self.target_encoder = _TargetTokenizer(tokenizer)

    @classmethod
    def train(cls, texts: Sequence[str], vocab_size: int) -> "SubwordCodec":
        from .text.subword import train_tokenizer

        return cls(train_tokenizer(texts, kind="bpe", vocab_size=vocab_size, morphemes=True))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "SubwordCodec":
        from .text.subword import load_tokenizer

        return cls(load_tokenizer(folder))

    def save(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder)

    def prepare(self, texts: Sequence[str]) -> None:
        """Nothing to precompute: the tokenizer encodes batches itself."""

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(list(ids))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()


def split_units(texts: Sequence[str], units: str) -> list[list[str]]:
    """Tokens of each text: whitespace words, syllables (spaces kept as ``▁``) or tagged morphemes."""
    from .text.words import split_chars, split_morphemes, split_words

    if units == "morphemes":
        return split_morphemes(list(texts), pos=True) if texts else []  # one batched Kiwi call
    if units == "chars":
        return [split_chars(t, keep_spaces=True) for t in texts]
    return [split_words(t) for t in texts]


class VocabCodec:
    """Text ↔ ids through a word, syllable or Kiwi-morpheme ``Vocab``."""

    def __init__(self, vocab, units: str):
        self.vocab, self.units = vocab, units
        self.pad_id, self.bos_id, self.eos_id = vocab.pad_id, vocab.bos_id, vocab.eos_id
        self.vocab_size = len(vocab)
        self._split_cache: dict[str, list[str]] = {}
        self.source_encoder: Callable[[str], list[int]] = lambda t: vocab.encode(self._split_one(t))
        self.target_encoder: Callable[[str], list[int]] = lambda t: vocab.encode(self._split_one(t), add_eos=True)

    def split(self, texts: Sequence[str]) -> list[list[str]]:
        return split_units(texts, self.units)

    def prepare(self, texts: Sequence[str]) -> None:
        """Split many texts at once (Kiwi's batch API) before the per-text encoders ask for them."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._split_cache]
        self._split_cache.update(zip(todo, self.split(todo)))

    def _split_one(self, text: str) -> list[str]:
        if text not in self._split_cache:
            self.prepare([text])
        return self._split_cache[text]

    @classmethod
    def train(cls, texts: Sequence[str], units: str, vocab_size: int) -> "VocabCodec":
        from .text.vocab import Vocab

        return cls(Vocab.build(split_units(texts, units), max_size=max(0, vocab_size - 4)), units)

    @classmethod
    def load(cls, folder: str | os.PathLike, units: str) -> "VocabCodec":
        from .text.vocab import Vocab

        return cls(Vocab.load(Path(folder) / VOCAB_FILE), units)

    def save(self, folder: Path) -> None:
        self.vocab.save(Path(folder) / VOCAB_FILE)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.vocab.itos[int(i)] for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        tokens = self.vocab.decode(ids)
        if self.units == "words":
            return " ".join(tokens)
        if self.units == "chars":
            from .text.words import SPACE_MARK

            return "".join(tokens).replace(SPACE_MARK, " ").strip()
        from .text.words import kiwi

        if not tokens:
            return ""
        morphs = [tuple(t.rsplit("/", 1)) if "/" in t[1:] else (t, "NNG") for t in tokens]  # <unk> has no tag
        return kiwi().join(morphs)


def build_codec(units: str, texts: Sequence[str], vocab_size: int, tokenizer: str | os.PathLike | None):
    if tokenizer is not None:
        return SubwordCodec.load(tokenizer)
    if units == "subword":
        return SubwordCodec.train(texts, vocab_size)
    return VocabCodec.train(texts, units, vocab_size)


def load_codec(run: Path, units: str):
    return SubwordCodec.load(run) if units == "subword" else VocabCodec.load(run, units)


# ---------------------------------------------------------------------------------------- options


@dataclass(kw_only=True)
class Seq2SeqOptions(LoopOptions):
    """``malmoi train seq2seq``: an LSTM encoder-decoder from a table of (source, target) pairs."""

    data: str | os.PathLike
    """Training file (CSV, TSV, JSONL)."""
    source: str
    """Column holding the input text (a question)."""
    target: str
    """Column holding the output text (an answer)."""
    out: str | os.PathLike
    """Run directory to create."""
    valid: str | os.PathLike | None = None
    """Validation file; without it ``valid_split`` of the pairs is held out."""
    valid_split: float = 0.1
    """Fraction of the pairs held out for validation when there is no ``valid`` file."""
    preset: str = "lstm-bahdanau"
    """LSTM preset: lstm (no attention), lstm-bahdanau, lstm-luong."""
    units: str = "subword"
    """How text becomes ids: subword (BPE over morphemes), morphemes, words or chars."""
    tokenizer: str | os.PathLike | None = None
    """A trained subword tokenizer folder to use instead of training one."""
    vocab_size: int = 8000
    """Size of the vocabulary built from the training pairs."""
    max_source_length: int = 64
    """Source tokens kept (longer inputs are truncated in training, refused in generation)."""
    max_target_length: int = 64
    """Target tokens kept, and the most tokens generated."""
    teacher_forcing: float = 1.0
    """Probability of feeding the gold previous token to the decoder in training."""
    eval_samples: int = SAMPLES_SHOWN
    """Validation questions answered in the log after each evaluation."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Preset fields to replace (e.g. ``hidden=32`` in tests)."""
    num_threads: int | None = None
    """Torch CPU threads; None: 1 for LSTM presets, torch's default (0) for transformers. An LSTM
    decoder runs one small step at a time, which a second thread barely speeds up, while on a busy
    machine spinning threads slowed LSTM training 20×."""

    LR: ClassVar[float] = 2e-3

    def default_lr(self) -> float:
        family = transformer_family(self.preset)
        return family.LR if family is not None else self.LR

    def __post_init__(self) -> None:
        if self.num_threads is None:
            self.num_threads = 0 if transformer_family(self.preset) is not None else 1
        super().__post_init__()
        from .models.lstm import PRESETS

        if self.preset not in PRESETS and transformer_family(self.preset) is None:
            names = [*PRESETS, *transformer_presets()]
            raise MalmoiError("E220", f"unknown seq2seq preset {self.preset!r}; choose one of: {', '.join(names)}")
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
        if self.vocab_size < 16:
            raise MalmoiError("E211", f"--vocab-size must be at least 16, got {self.vocab_size}")
        if not 0 <= self.teacher_forcing <= 1:
            raise MalmoiError("E201", f"--teacher-forcing must lie in [0, 1], got {self.teacher_forcing}")


def transformer_presets() -> list[str]:
    """The ``models.presets`` names that ``train seq2seq`` builds with a transformer family."""
    from .models.presets import PRESETS

    return [name for name, p in PRESETS.items() if p.model_type in TRANSFORMER_FAMILIES]


def transformer_family(preset: str):
    """The task class that trains ``preset`` when it is a transformer encoder-decoder, else None."""
    from importlib import import_module

    from .models.presets import PRESETS

    kind = PRESETS[preset].model_type if preset in PRESETS else None
    if kind not in TRANSFORMER_FAMILIES:
        return None
    module, name = TRANSFORMER_FAMILIES[kind].split(":")
    return getattr(import_module(module), name)


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
    from .data.readers import read_pairs

    sources, targets, skipped = read_pairs(opts.data, opts.source, opts.target)
    if skipped:
        say(f"skipped {skipped} rows of {opts.data} with an empty {opts.source!r} or {opts.target!r}")
    if opts.valid is not None:
        vs, vt, vskipped = read_pairs(opts.valid, opts.source, opts.target)
        return PairData(sources, targets, vs, vt, skipped + vskipped)
    if len(sources) < 2:
        raise MalmoiError("E111", f"{opts.data}: {len(sources)} pair is too few to hold out a validation "
                                  "split; add rows or pass --valid FILE")
    order = list(range(len(sources)))
    random.Random(opts.seed).shuffle(order)
    n_valid = min(max(round(len(order) * opts.valid_split), 1), len(order) - 1)
    va, tr = sorted(order[:n_valid]), sorted(order[n_valid:])
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
    """``evaluate(model, loader)`` for ``fit``: token-level loss, perplexity, BLEU and chrF of greedy
    answers; it also answers ``sample_sources`` and leaves (question, answer) pairs in ``shown``.
    ``answer(model, input_ids, attention_mask)`` gives each source's answer ids without
    ``<bos>``/``<eos>`` (any model family: ``lstm_greedy``, ``bart.greedy_answers`` …)."""
    from .data.datasets import encode_all

    codec.prepare(sample_sources)
    sample_ids = encode_all(sample_sources, codec.source_encoder, max_source_length)

    def evaluate(model, loader) -> dict[str, float]:
        import sacrebleu

        from .data.batching import pad_sequences

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
            src = pad_sequences(sample_ids, pad_id).to(device)
            mask = pad_sequences([[1] * len(s) for s in sample_ids], 0).to(device)
            shown[:] = [(q, codec.decode(t)) for q, t in zip(sample_sources, answer(model, src, mask))]
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
                "bleu": sacrebleu.corpus_bleu(hyps, [refs]).score if hyps else 0.0,
                "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score if hyps else 0.0}

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
    from . import __version__

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
    from .runs import start_run, write_meta

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
    from .data.datasets import Seq2SeqDataset

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
    from .data.batching import PadCollator
    from .training import fit

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

    result = fit(run.model, train_set, valid_set, PadCollator(pad_id=codec.pad_id), opts.train_args(), run.out,
                 evaluate=evaluate, export=export, metric="loss", maximize=False, resume=run.resume,
                 lengths=train_set.lengths, on_eval=on_eval)
    return finish_run(run.out, result, started, len(train_set), len(valid_set), data.skipped_empty)


# ---------------------------------------------------------------------------------------- the task


class Seq2SeqTask:
    """Source → target text with the from-scratch ``LSTMSeq2Seq``."""

    name = "seq2seq"
    Options = Seq2SeqOptions

    def build_model(self, opts: Seq2SeqOptions, codec):
        import torch

        from .models.lstm import LSTMSeq2Seq, config_from_preset

        torch.manual_seed(opts.seed)  # the same seed gives the same initial weights, whatever ran before

        cfg = config_from_preset(opts.preset, vocab_size=codec.vocab_size, pad_id=codec.pad_id, bos_id=codec.bos_id,
                                 eos_id=codec.eos_id, max_len=opts.max_target_length,
                                 max_source_len=opts.max_source_length, teacher_forcing=opts.teacher_forcing,
                                 **opts.model_overrides)
        return LSTMSeq2Seq(cfg)

    def meta(self, opts: Seq2SeqOptions, data: PairData, model) -> dict:
        return pair_meta(opts, data, model, ARCHITECTURE, model.config.attention)

    def resumed_options(self, opts: Seq2SeqOptions, out: Path) -> Seq2SeqOptions:
        """On resume the codec and model are rebuilt as the run recorded them, whatever the new command says."""
        from dataclasses import replace

        from .runs import read_meta

        meta = read_meta(out)
        if meta.get("task") != self.name:
            raise MalmoiError("E305", f"{out} holds a {meta.get('task')!r} run, not seq2seq")
        saved = meta.get("args", {})
        keep = ("preset", "units", "max_source_length", "max_target_length", "teacher_forcing", "model_overrides")
        return replace(opts, **{k: saved[k] for k in keep if k in saved})

    def train(self, opts: Seq2SeqOptions, say: Say = stderr_say) -> TrainResult:
        family = transformer_family(_run_preset(opts))
        if family is not None:
            return family().train(opts, say)
        started = time.monotonic()
        run = prepare_pair_run(self, opts, read_pair_data(opts, say), say)
        attention = run.model.config.attention
        describe = (f"{run.opts.preset} ({'no' if attention == 'none' else attention} attention), "
                    f"{run.model.num_parameters():,} parameters, {run.codec.vocab_size} {run.opts.units} tokens")
        return fit_pairs(run, say, started, describe=describe, save_model=lambda model, folder: model.save(folder))

    def load(self, run: str | os.PathLike):
        from .generators import load_generator

        return load_generator(run)  # LSTM or transformer, by the run's architecture


def _run_preset(opts: Seq2SeqOptions) -> str:
    """The preset that decides the model family: a resumed run keeps the one it was started with
    (a run killed before its first checkpoint is started again, with the command's)."""
    out = Path(opts.out)
    if opts.resume and (out / "malmoi.json").is_file() and (out / "checkpoints" / "last").exists():
        from .runs import read_meta

        return read_meta(out).get("preset", opts.preset)
    return opts.preset


register(Seq2SeqTask())


# ---------------------------------------------------------------------------------------- using a run


def trained_run_meta(run: Path, architecture: str) -> dict:
    """malmoi.json of ``run``, refused unless it holds a trained ``architecture`` model (every
    family writes ``config.json`` and ``model.safetensors``)."""
    from .runs import read_meta

    meta = read_meta(run)
    if meta.get("architecture") != architecture:
        raise MalmoiError("E426", f"{run} holds a {meta.get('architecture') or meta.get('task')!r} model, "
                                  f"not {architecture}")
    if not (run / "config.json").is_file() or not (run / "model.safetensors").is_file():
        raise MalmoiError("E427", f"{run} has no trained model yet (training did not finish; use --resume)")
    return meta


def encode_sources(codec, texts: Sequence[str], limit: int) -> list[list[int]]:
    """Source ids of the inputs to answer. Unlike training, a text longer than ``limit`` tokens
    (the model's --max-source-length) is refused, not truncated: the answer would ignore its end."""
    from .data.datasets import encode_all

    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise MalmoiError("E428", f"inputs must be strings, got {type(bad[0]).__name__}")
    if any(not t.strip() for t in texts):
        raise MalmoiError("E421", "empty input: give a sentence to answer")
    codec.prepare(texts)
    ids = encode_all(texts, codec.source_encoder)
    for text, seq in zip(texts, ids):
        if not seq:
            raise MalmoiError("E421", f"empty input: {text!r} has no tokens")
        if len(seq) > limit:
            short = text if len(text) <= 40 else text[:40] + "…"
            raise MalmoiError("E423", f"input is {len(seq)} tokens long ({short!r}); this model takes at most "
                                      f"{limit} (its --max-source-length)")
    return ids


class Seq2SeqGenerator:
    """A trained LSTM seq2seq run: answers, beam search and attention maps for new texts."""

    def __init__(self, model, codec, run: Path | None = None):
        self.model = model.eval()
        self.codec = codec
        self.run = run

    @classmethod
    def from_run(cls, run: str | os.PathLike) -> "Seq2SeqGenerator":
        from .models.lstm import LSTMSeq2Seq

        run = Path(run)
        meta = trained_run_meta(run, ARCHITECTURE)
        return cls(LSTMSeq2Seq.load(run), load_codec(run, meta.get("units", "subword")), run)

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        return encode_sources(self.codec, texts, self.model.config.max_source_len)

    def _decode_batch(self, ids: list[list[int]], beams: int, max_new_tokens: int | None, length_penalty: float):
        import torch

        from .data.batching import pad_sequences

        src = pad_sequences(ids, self.model.config.pad_id)
        lengths = torch.tensor([len(s) for s in ids])
        return self.model.generate(src, lengths, beams=beams, length_penalty=length_penalty, max_len=max_new_tokens)

    def generate(self, texts: str | Sequence[str], *, beams: int = 1, max_new_tokens: int | None = None,
                 length_penalty: float = 1.0, batch_size: int = 64) -> list[Answer]:
        """One ``Answer`` per text (greedy for beams=1, beam search otherwise)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if max_new_tokens is not None and max_new_tokens < 1:
            raise MalmoiError("E201", f"max_new_tokens must be at least 1, got {max_new_tokens}")
        ids = self._encode(texts)
        answers: list[Answer] = []
        for start in range(0, len(ids), batch_size):
            gen = self._decode_batch(ids[start:start + batch_size], beams, max_new_tokens, length_penalty)
            for text, tokens, score in zip(texts[start:start + batch_size], gen.tokens, gen.scores):
                answers.append(Answer(text, self.codec.decode(tokens), self.codec.pieces(tokens), float(score)))
        return answers

    def reply(self, text: str, beams: int = 1) -> str:
        """The answer to one chat message."""
        return self.generate([text], beams=beams)[0].text

    def attention(self, text: str, *, beams: int = 1, max_new_tokens: int | None = None) -> AttentionMap:
        """Where each generated token of the answer to ``text`` looked in the source."""
        if self.model.config.attention == "none":
            raise MalmoiError("E429", f"{self.run or 'this model'} has no attention (preset lstm); "
                                      "train with --preset lstm-bahdanau or lstm-luong")
        ids = self._encode([text])
        gen = self._decode_batch(ids, beams, max_new_tokens, 1.0)
        tokens, weights = gen.tokens[0], gen.attentions[0]
        return AttentionMap(self.codec.pieces(ids[0]), self.codec.pieces(tokens), weights.tolist(), text,
                            self.codec.decode(tokens))
