"""Making a trained classifier run smaller: ``compress(run, target_size="10MB" | bits=8, out=…)``; a
tagger's or reader's encoder too.

An n-gram run keeps the table rows that matter and stores them quantized (``models/compact.py``);
an encoder run stores its weights at 16 or 8 bits per value (``models/quantize.py``). Either way
the result is a run directory every command loads unchanged, written whole into ``out`` (or in
place of ``run``) so that a crash leaves the old run as it was.

Accuracy before and after is measured on the run's validation split, rebuilt the way training
split it: from ``data`` (the run's training file elsewhere) or the training file the run
recorded. Its training texts also tell the n-gram rows no text holds (the first to go).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from malmoi.errors import MalmoiError
from malmoi.files import atomic_dir
from malmoi.runs import read_meta, write_meta
from malmoi.sizes import folder_size, format_size, parse_size

Say = Callable[[str], None]
MODEL_FILES = ("model.safetensors", "ngram_model.json", "config.json", "head.safetensors")
"""The files compressing rewrites; everything else in a run is carried over as it is."""


@dataclass
class Compressed:
    """What ``compress`` did, in numbers."""

    run: str
    """The compressed run directory."""
    source: str
    """The run it was made from."""
    bits: int
    """Bits per stored weight value."""
    model_bytes_before: int
    """Bytes of the model files before …"""
    model_bytes: int
    """… and after."""
    run_bytes: int
    """Bytes of the whole compressed run directory."""
    kept: list[int] | None = None
    """Table rows kept per member (n-gram runs)."""
    accuracy_before: float | None = None
    """Accuracy on the validation split before …"""
    accuracy: float | None = None
    """… and after compressing."""
    agreement: float | None = None
    """Share of validation texts given the same label before and after."""
    examples: int = 0
    """Validation texts scored."""
    notes: list[str] = field(default_factory=list)
    """What the caller should know (no data to measure on …)."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Split:
    """A run's data as training split it: the training texts and the validation texts with their label ids."""

    train_texts: list[str]
    valid_texts: list[str]
    valid_ids: list[int]


def model_bytes(run: Path) -> int:
    return sum((run / name).stat().st_size for name in MODEL_FILES if (run / name).is_file())


def read_split(run: Path, meta: dict, data: str | os.PathLike | None, say: Say) -> tuple[Split | None, str | None]:
    """(the run's split, None) or (None, why there is none): from ``data`` or the recorded training file."""
    from types import SimpleNamespace

    from malmoi.tasks.classify import read_classify_data

    args = meta.get("args", {})
    source = data if data is not None else args.get("data")
    if source is None or not Path(source).is_file():
        return None, (f"no data to measure accuracy on: {run} was trained on {source}, which is not here; "
                      "pass --data FILE" if source else "no data to measure accuracy on; pass --data FILE")
    valid = args.get("valid") if data is None else None
    if valid is not None and not Path(valid).is_file():
        valid = None  # the split then comes from the training file, as training would have made it
    opts = SimpleNamespace(data=source, valid=valid, text=meta["columns"]["text"], label=meta["columns"]["label"],
                           valid_split=args.get("valid_split", 0.1), seed=args.get("seed", 42))
    split = read_classify_data(opts, lambda message: None)
    if split.labels != meta["labels"]:
        raise MalmoiError("E305", f"{source} holds labels {split.labels}, {run} was trained on {meta['labels']}")
    return Split(split.train_texts, split.valid_texts, split.valid_ids), None


def compress(run: str | os.PathLike, *, target_size: str | int | None = None, bits: int | None = None,
             out: str | os.PathLike | None = None, data: str | os.PathLike | None = None,
             say: Say = lambda message: None) -> Compressed:
    """Compress a classifier run to ``target_size`` bytes (``"10MB"``) and/or ``bits`` per value
    (32, 16, 8 or 4), into ``out`` or in place. An n-gram run given neither is compacted as training
    compacts it (``tasks.classify.compact_for_export``), which needs its data."""
    from malmoi.use.classifier import TextClassifier

    run = Path(run)
    meta = read_meta(run)
    if meta.get("task") not in ("classify", "tag", "qa"):
        raise MalmoiError("E293", f"{run} holds a {meta.get('task')!r} model; compress makes classifier, tagger "
                                  "and reader (qa) runs smaller")
    from malmoi.models.quantize import BITS

    if bits is not None and bits not in BITS:
        raise MalmoiError("E290", f"--bits must be one of {', '.join(map(str, BITS))}, got {bits}")
    target = None if target_size is None else parse_size(target_size)
    out = Path(out) if out is not None else run
    if out != run and out.exists() and any(out.iterdir()):
        raise MalmoiError("E301", f"{out} already exists; choose another --out")
    if meta["task"] != "classify":
        return _compress_encoder_run(run, meta, target, bits, out)
    classifier = TextClassifier.from_run(run)
    ngram = hasattr(classifier.model, "members")
    if target is None and bits is None and not ngram:
        raise MalmoiError("E292", "give --target-size (e.g. 10MB) or --bits (16 or 8)")
    split, note = read_split(run, meta, data, say)
    if target is None and bits is None and split is None:
        raise MalmoiError("E292", f"give --target-size or --bits: without its data ({note}) there is no "
                                  "validation split to choose the compact model by")
    notes = [note] if note else []
    stored = getattr(classifier.model if ngram else classifier.model.encoder, "storage_bits", 32)
    if bits is not None and bits > stored:  # more bits would not bring back what rounding took
        notes.append(f"{run} is stored at {stored} bits already; it stays at {stored}")
        bits = stored
    before = model_bytes(run)
    if ngram:
        from malmoi.use.compact_ngram import compress_ngram

        small, bits, kept = compress_ngram(classifier, split, target, bits, say)
    else:
        from malmoi.use.compact_encoder import compress_encoder

        (small, bits), kept = compress_encoder(classifier, target, bits, before), None
    result = Compressed(str(out), str(run), bits, before, 0, 0, kept, notes=notes)
    if split is not None:
        _score(result, classifier, small, split)
    _write(run, out, small, classifier.tokenizer, meta, result)
    result.model_bytes, result.run_bytes = model_bytes(out), folder_size(out)
    return result


def _compress_encoder_run(run: Path, meta: dict, target: int | None, bits: int | None, out: Path) -> Compressed:
    """A tagger or reader run with an encoder, its weights stored at fewer bits (as an encoder classifier's);
    ``malmoi eval`` on the result tells its scores."""
    from malmoi.use import load
    from malmoi.use.compact_encoder import compress_encoder

    loaded = load(run)
    if not hasattr(loaded.model, "encoder"):
        raise MalmoiError("E293", f"{run} is a character tagger: it already stores only the feature rows training "
                                  "touched, and compress makes encoder runs smaller")
    if target is None and bits is None:
        raise MalmoiError("E292", "give --target-size (e.g. 10MB) or --bits (16 or 8)")
    notes = [f"scores are not measured here: malmoi eval {out} --data FILE gives the compressed run's"]
    stored = getattr(loaded.model.encoder, "storage_bits", 32)
    if bits is not None and bits > stored:
        notes.append(f"{run} is stored at {stored} bits already; it stays at {stored}")
        bits = stored
    before = model_bytes(run)
    small, bits = compress_encoder(loaded, target, bits, before)
    result = Compressed(str(out), str(run), bits, before, 0, 0, notes=notes)
    _write(run, out, small, loaded.tokenizer, meta, result)
    result.model_bytes, result.run_bytes = model_bytes(out), folder_size(out)
    return result


def _score(result: Compressed, classifier, small, split: Split) -> None:
    from malmoi.use.classifier import predict_proba

    gold = np.asarray(split.valid_ids)
    old = classifier.predict_proba(split.valid_texts).argmax(1)
    new = predict_proba(small, classifier.tokenizer, split.valid_texts, max_length=classifier.max_length).argmax(1)
    result.examples = len(gold)
    if len(gold):
        result.accuracy_before = float((old == gold).mean())
        result.accuracy = float((new == gold).mean())
        result.agreement = float((old == new).mean())


def _link_or_copy(src: str, dst: str) -> None:
    try:  # files are only ever replaced, never changed in place, so a link is a safe copy
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write(run: Path, out: Path, model, tokenizer, meta: dict, result: Compressed) -> None:
    """The compressed run: ``run``'s other files, the small model, malmoi.json saying what was done."""
    with atomic_dir(out) as tmp:
        shutil.copytree(run, tmp, dirs_exist_ok=True, copy_function=_link_or_copy,
                        ignore=lambda folder, names: [n for n in names if Path(folder) == run and n in MODEL_FILES])
        model.save(tmp)
        tokenizer.save_pretrained(tmp)
        record = {k: v for k, v in result.to_dict().items() if k not in ("run", "run_bytes", "model_bytes", "notes")}
        write_meta(tmp, {**meta, "compressed": {**record, "model_bytes": model_bytes(tmp)}})


def describe(result: Compressed) -> list[str]:
    """The lines ``malmoi compress`` prints."""
    ratio = result.model_bytes_before / max(result.model_bytes, 1)
    lines = [f"{result.source} → {result.run}: model {format_size(result.model_bytes_before)} → "
             f"{format_size(result.model_bytes)} ({ratio:.1f}× smaller, {result.bits} bits), "
             f"run directory {format_size(result.run_bytes)}"]
    if result.kept is not None:
        lines.append(f"table rows kept per member: {', '.join(f'{k:,}' for k in result.kept)}")
    if result.accuracy is not None:
        lines.append(f"validation accuracy {result.accuracy_before:.4f} → {result.accuracy:.4f} "
                     f"({100 * (result.accuracy - result.accuracy_before):+.2f} points) on {result.examples} texts; "
                     f"{100 * result.agreement:.2f}% of labels unchanged")
    return lines + result.notes
