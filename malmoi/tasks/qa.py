"""The qa task (``malmoi train qa``): extractive question answering from a SQuAD v1.1 / KorQuAD 1.0 file.

qa
    file → ``read_squad`` → articles → split by article (or the ``valid`` file) → tokenizer
    (WordPiece trained on the contexts and questions, or the one given) → (question, context)
    windows with their question-match flags and answer token positions (``data/qa_windows.py``)
    → ``fit`` with an ``EncoderQA`` → validation: the best span of each question over its windows,
    mapped back to context characters, scored by exact match and KorQuAD's character F1 (the
    exported model is the one with the best F1) → run directory (HF model folder +
    ``head.safetensors`` + tokenizer + ``malmoi.json`` with task ``qa``).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

from malmoi.errors import MalmoiError
from malmoi.runs import read_meta, start_run, write_meta
from malmoi.tasks.common import (LoopOptions, Say, TrainResult, finish_run, recorded_args, seed_everything,
                                 stderr_say, unwrap)

TASK = "qa"


@dataclass(kw_only=True)
class QAOptions(LoopOptions):
    """``malmoi train qa``: an extractive question-answering model from a SQuAD v1.1 / KorQuAD 1.0 file."""

    data: str | os.PathLike
    """Training file: SQuAD v1.1 JSON (KorQuAD 1.0's format)."""
    out: str | os.PathLike
    """Run directory to create (refused if it exists, unless ``resume``)."""
    valid: str | os.PathLike | None = None
    """Validation file (SQuAD v1.1 JSON); without it ``valid_split_by_article`` of the articles is held out."""
    valid_split_by_article: float = 0.2
    """Fraction of the articles held out whole (seeded) when there is no ``valid`` file."""
    articles: str | None = None
    """Train on a slice of the file's articles, ``FIRST:END`` (0-based, END excluded: ``0:112``), read at run
    time, so a file whose licence allows sharing only the unchanged whole (KorQuAD) is never re-split on disk."""
    preset: str | None = None
    """Model preset trained from scratch; without this and ``pretrained``: ``qa-mini``."""
    pretrained: str | os.PathLike | None = None
    """A local Hugging Face encoder folder to fine-tune (its tokenizer comes along)."""
    tokenizer: str | os.PathLike | None = None
    """A tokenizer folder (a fast tokenizer); without it (and without ``pretrained``) WordPiece is trained
    on the contexts and questions."""
    vocab_size: int = 3000
    """Size of the WordPiece vocabulary trained when no tokenizer is given; on KorQuAD 3000 is about one token
    per character, so answers that end before a particle (세종 in 세종은) are whole tokens (8000: 75% are)."""
    max_length: int = 256
    """Tokens per window: question + context part + 3 special tokens."""
    doc_stride: int = 64
    """Tokens neighbouring windows of a long context share."""
    max_answer_length: int = 30
    """Longest answer (in tokens) validation and inference consider."""
    max_question_length: int = 64
    """Question tokens kept; longer questions are cut."""
    unanswered_windows: float = 0.2
    """Share of the training windows that do not hold the answer (their label is [CLS]) kept for training:
    fewer make an epoch shorter (KorQuAD, 3 minutes: all of them F1 21.4, a fifth 23.1)."""
    question_match: bool = True
    """Tell the model which context tokens occur in the question (an added embedding, DrQA's exact-match
    feature); off, it sees the plain pair."""
    lr: float | None = None
    """Peak learning rate; by default the preset's choice, else 5e-4 from scratch and 5e-5 fine-tuning a
    ``pretrained`` encoder."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Preset config fields to replace (e.g. a tiny ``hidden_size`` in tests)."""

    DEFAULT_PRESET: ClassVar[str] = "qa-mini"
    MAX_LENGTH_LIMIT: ClassVar[int] = 8192
    LR_SCRATCH: ClassVar[float] = 5e-4
    LR_PRETRAINED: ClassVar[float] = 5e-5

    def default_lr(self) -> float:
        return self.LR_PRETRAINED if self.pretrained else self.LR_SCRATCH

    def article_slice(self) -> slice:
        """``articles`` as a slice (all of them when it is None)."""
        if self.articles is None:
            return slice(None)
        first, sep, end = str(self.articles).partition(":")
        try:
            bounds = (int(first) if first else None, int(end) if end else None)
        except ValueError:
            bounds = None
        if not sep or bounds is None or any(b is not None and b < 0 for b in bounds):
            raise MalmoiError("E201", f"--articles must be FIRST:END with article numbers from 0 (e.g. 0:112), "
                                      f"got {self.articles!r}")
        return slice(*bounds)

    def __post_init__(self) -> None:
        if self.preset and self.pretrained:
            raise MalmoiError("E228", "give either --preset or --pretrained, not both")
        if not self.pretrained:
            from malmoi.models.presets import get_preset

            self.preset = self.preset or self.DEFAULT_PRESET
            get_preset(self.preset, TASK)
        super().__post_init__()
        if not 0 < self.max_length <= self.MAX_LENGTH_LIMIT:
            raise MalmoiError("E222", f"--max-length must be between 1 and {self.MAX_LENGTH_LIMIT}, "
                                      f"got {self.max_length}")
        if not 1 <= self.max_question_length <= self.max_length - 8:
            raise MalmoiError("E239", f"--max-question-length must be between 1 and --max-length - 8 "
                                      f"({self.max_length - 8}), got {self.max_question_length}")
        room = self.max_length - self.max_question_length - 3  # the context tokens of a window, at least
        if not 0 <= self.doc_stride < room:
            raise MalmoiError("E237", f"--doc-stride must be at least 0 and below the context room of a window "
                                      f"(--max-length - --max-question-length - 3 = {room}), got {self.doc_stride}")
        if not 0 <= self.unanswered_windows <= 1:
            raise MalmoiError("E201", f"--unanswered-windows must be between 0 and 1, got {self.unanswered_windows}")
        if self.max_answer_length < 1:
            raise MalmoiError("E238", f"--max-answer-length must be at least 1, got {self.max_answer_length}")
        if self.articles is not None:
            self.article_slice()  # refused now rather than after reading the file
        if self.valid is None and not 0 < self.valid_split_by_article < 1:
            raise MalmoiError("E226", f"--valid-split-by-article must be a fraction between 0 and 1, "
                                      f"got {self.valid_split_by_article}")
        from malmoi.text.subword import MIN_VOCAB

        if self.vocab_size < MIN_VOCAB:
            raise MalmoiError("E211", f"--vocab-size must be at least {MIN_VOCAB}, got {self.vocab_size}")
        if self.pretrained is not None and not (Path(self.pretrained) / "config.json").is_file():
            raise MalmoiError("E401", f"--pretrained {self.pretrained} is not a Hugging Face model folder "
                                      "(no config.json)")


@dataclass
class QAData:
    """Training and validation examples (``data.squad.SquadExample``)."""

    train: list
    valid: list
    train_articles: int
    valid_articles: int


def read_qa_data(opts: QAOptions) -> QAData:
    """The examples to train and validate on: the ``valid`` file, or a split by article."""
    from malmoi.data.squad import examples_of, read_squad, split_articles

    articles = read_squad(opts.data)[opts.article_slice()]
    if not articles:
        raise MalmoiError("E102", f"{opts.data}: --articles {opts.articles} selects no article")
    if opts.valid is not None:
        valid = read_squad(opts.valid)
        return QAData(examples_of(articles), examples_of(valid), len(articles), len(valid))
    train, valid = split_articles(articles, opts.valid_split_by_article, opts.seed)
    return QAData(examples_of(train), examples_of(valid), len(train), len(valid))


def qa_evaluate(examples: Sequence, windows, max_answer_length: int):
    """``fit``'s evaluate for ``examples`` windowed as ``windows``: loss, exact match and F1."""
    from malmoi.models.qa import best_answers, window_logits
    from malmoi.training.squad_metrics import squad_scores

    def evaluate(model, loader) -> dict[str, float]:
        was_training = model.training
        model.eval()
        logits, loss = window_logits(model, loader)
        model.train(was_training)
        order = range(len(windows))
        best = best_answers(windows, [logits[w][0] for w in order], [logits[w][1] for w in order],
                            len(examples), max_answer_length)
        predictions = {ex.id: ex.context[b.start:b.end] for ex, b in zip(examples, best) if b is not None}
        scores = squad_scores(predictions, {ex.id: [a.text for a in ex.answers] for ex in examples})
        return {"loss": loss, "exact_match": scores.exact_match, "f1": scores.f1}

    return evaluate


def windowed(tokenizer, examples: Sequence, opts: QAOptions, named: bool):
    """(windows, dataset) of ``examples``, labelled with their first answer."""
    from malmoi.data.qa_windows import QADataset, tokenize_windows

    windows = tokenize_windows(tokenizer, [ex.question for ex in examples], [ex.context for ex in examples],
                               max_length=opts.max_length, stride=opts.doc_stride,
                               max_question_length=opts.max_question_length)
    answers = [(ex.answers[0].start, ex.answers[0].end) if ex.answers else None for ex in examples]
    return windows, QADataset(windows, answers, named=named)


class QATask:
    """Extractive question answering with an ``EncoderQA``."""

    name = TASK
    Options = QAOptions

    def build_tokenizer(self, opts: QAOptions, examples: Sequence, say: Say):
        from malmoi.text.subword import load_tokenizer, train_tokenizer

        if opts.tokenizer is not None:
            return load_tokenizer(opts.tokenizer)
        if opts.pretrained is not None:
            return load_tokenizer(opts.pretrained)
        texts = list(dict.fromkeys(ex.context for ex in examples)) + [ex.question for ex in examples]
        say(f"training a WordPiece tokenizer ({opts.vocab_size} tokens) on {len(texts)} contexts and questions")
        return train_tokenizer(texts, kind="wordpiece", vocab_size=opts.vocab_size)

    def build_model(self, opts: QAOptions, tokenizer):
        from malmoi.models.presets import check_max_length
        from malmoi.models.qa import EncoderQA

        if not getattr(tokenizer, "is_fast", False):
            raise MalmoiError("E491", "question answering needs a fast tokenizer (character offsets)")
        if opts.pretrained is not None:
            model = EncoderQA.from_pretrained_encoder(opts.pretrained, question_match=opts.question_match)
            if model.encoder.config.vocab_size < len(tokenizer):
                raise MalmoiError("E408", f"the tokenizer has {len(tokenizer)} tokens but {opts.pretrained} "
                                          f"embeds only {model.encoder.config.vocab_size}")
        else:
            model = EncoderQA.from_preset(opts.preset, vocab_size=len(tokenizer),
                                          pad_token_id=tokenizer.pad_token_id or 0,
                                          question_match=opts.question_match, **opts.model_overrides)
        check_max_length(model.encoder.config, opts.max_length)
        return model

    def _meta(self, opts: QAOptions, data: QAData) -> dict:
        from malmoi.version import __version__

        return {
            "task": self.name,
            "malmoi_version": __version__,
            "preset": opts.preset,
            "pretrained": str(opts.pretrained) if opts.pretrained else None,
            **{k: getattr(opts, k) for k in ("max_length", "doc_stride", "max_answer_length", "max_question_length",
                                             "question_match")},
            "args": recorded_args(opts),
            "data": {"train": str(opts.data), "valid": str(opts.valid) if opts.valid else None,
                     "train_articles": data.train_articles, "valid_articles": data.valid_articles,
                     "train_examples": len(data.train), "valid_examples": len(data.valid)},
            "status": "training",
        }

    def _prepare_run(self, opts: QAOptions, data: QAData, say: Say):
        """(opts, out, tokenizer, model, resume); the run directory is written only once the tokenizer
        and the model build."""
        from dataclasses import replace

        from malmoi.text.subword import load_tokenizer

        seed_everything(opts.seed)
        with start_run(opts.out, self.name, opts.resume, say) as run:
            if run.reopen:
                if run.resume:  # the model is rebuilt as the run recorded it
                    saved = read_meta(run.out).get("args", {})
                    keep = ("preset", "pretrained", "model_overrides", "question_match", "max_length", "doc_stride",
                            "max_question_length")
                    opts = replace(opts, **{k: saved[k] for k in keep if k in saved})
                tokenizer = load_tokenizer(run.out)
                return opts, run.out, tokenizer, self.build_model(opts, tokenizer), run.resume
            with run.building():
                tokenizer = self.build_tokenizer(opts, data.train, say)
                model = self.build_model(opts, tokenizer)
            tokenizer.save_pretrained(run.out)
            write_meta(run.out, self._meta(opts, data))
            return opts, run.out, tokenizer, model, False

    def train(self, opts: QAOptions, say: Say = stderr_say) -> TrainResult:
        from malmoi.data.qa_windows import QACollator
        from malmoi.training.loop import fit

        started = time.monotonic()
        data = read_qa_data(opts)
        opts, out, tokenizer, model, resume = self._prepare_run(opts, data, say)
        _, train_set = windowed(tokenizer, data.train, opts, named=False)
        if opts.unanswered_windows < 1:
            train_set = train_set.keeping_unanswered(opts.unanswered_windows, opts.seed)
        valid_windows, valid_set = windowed(tokenizer, data.valid, opts, named=True)
        say(f"{len(data.train)} training questions ({len(train_set)} windows, {data.train_articles} articles) and "
            f"{len(data.valid)} validation questions ({len(valid_set)} windows, {data.valid_articles} articles)")

        def export(model, folder) -> None:
            unwrap(model).save(folder)
            tokenizer.save_pretrained(folder)

        result = fit(model, train_set, valid_set, args=opts.train_args(), out=out,
                     collate=QACollator(pad_id=tokenizer.pad_token_id or 0),
                     evaluate=qa_evaluate(data.valid, valid_windows, opts.max_answer_length), export=export,
                     metric="f1", maximize=True, resume=resume, lengths=train_set.lengths)
        return finish_run(out, result, started, len(data.train), len(data.valid), 0, opts.keep_checkpoints)
