"""KLUE-NER entity F1: malmoi's taggers against a CRF over character n-gram features, in one run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/ner.py --budget 15m --presets bilstm-crf,bert-mini

Every model trains on ``ner/train.tsv`` (3,500 KLUE-NER v1.1 sentences) and is scored on
``ner/test.tsv`` (1,000), read at run time from ../shared/data (relative to the repository root):

* the anchor: a linear-chain CRF (python-crfsuite, L-BFGS with L1 and L2) over each character's
  unigrams, bigrams and trigrams within two characters either side, plus its kind (Hangul, digit,
  Latin, space, other) — the classic feature set;
* each malmoi preset through ``malmoi.train(task="tag", …)`` — the one training loop, a run directory,
  the checkpoint with the best validation entity F1 — with ``--budget`` of training time on
  ``--threads`` CPU threads, then ``malmoi.load(run).evaluate`` on the test file.

Columns: entity F1 (exact span and type, micro-averaged, as seqeval), precision, recall, KLUE's
character F1, points above the CRF, training seconds, steps and epochs. Results go to
``benchmarks/out/ner.json``. The machine may be shared: the ratios measured in one run are what count.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ner"


@dataclass
class Row:
    model: str
    entity_f1: float
    precision: float
    recall: float
    char_f1: float
    train_s: float
    steps: int = 0
    epochs: int = 0
    per_type: dict = field(default_factory=dict)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train.tsv and test.tsv")
    p.add_argument("--budget", default="15m", help="training time per malmoi preset (15m, 90s …)")
    p.add_argument("--presets", default="bilstm-crf", help="comma-separated malmoi tag presets")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for training")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-crf", action="store_true", help="skip the CRF anchor")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="a training option for every preset (repeatable): --set lr=3e-3, "
                        "--set 'model_overrides={\"hidden\": 256}'")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "ner.json")
    return p.parse_args()


def char_kind(c: str) -> str:
    if c.isspace():
        return "space"
    if "가" <= c <= "힣":
        return "hangul"
    if c.isdigit():
        return "digit"
    return "latin" if c.isascii() and c.isalpha() else "other"


def crf_features(text: str) -> list[list[str]]:
    """Each character's unigrams, bigrams and trigrams within two characters either side, and its kind."""
    padded = "^^" + text + "$$"
    out = []
    for i in range(len(text)):
        j = i + 2
        feats = [f"k={char_kind(text[i])}"]
        feats += [f"c[{d}]={padded[j + d]}" for d in range(-2, 3)]
        feats += [f"b[{d}]={padded[j + d:j + d + 2]}" for d in range(-2, 2)]
        feats += [f"t[{d}]={padded[j + d:j + d + 3]}" for d in range(-2, 1)]
        out.append(feats)
    return out


def crf_row(train, test) -> Row:
    import pycrfsuite

    from malmoi.training.entity_metrics import entity_report

    started = time.monotonic()
    trainer = pycrfsuite.Trainer(verbose=False)
    for s in train:
        trainer.append(crf_features(s.text), s.tags)
    trainer.set_params({"c1": 0.05, "c2": 0.05, "max_iterations": 150, "feature.possible_transitions": True})
    with tempfile.TemporaryDirectory() as tmp:
        trainer.train(f"{tmp}/crf.model")
        train_s = time.monotonic() - started
        tagger = pycrfsuite.Tagger()
        tagger.open(f"{tmp}/crf.model")
        predicted = [tagger.tag(crf_features(s.text)) for s in test]
    report = entity_report([s.text for s in test], [s.tags for s in test], predicted)
    return _row("CRF (character n-grams)", report, train_s)


def _row(name: str, report, train_s: float, steps: int = 0, epochs: int = 0) -> Row:
    return Row(name, report.entity_f1, report.entity_precision, report.entity_recall, report.char_f1, train_s,
               steps, epochs, {k: round(v.f1, 4) for k, v in report.per_type.items()})


def malmoi_row(preset: str, args, test, extra: dict) -> Row:
    import malmoi

    with tempfile.TemporaryDirectory() as tmp:
        result = malmoi.train(task="tag", data=args.data / "train.tsv", format="klue", out=Path(tmp) / "run",
                              preset=preset, time_budget=args.budget, num_threads=args.threads, seed=args.seed,
                              **extra)
        report = malmoi.load(result.run).evaluate(test)
        meta = json.loads((result.run / "malmoi.json").read_text(encoding="utf-8"))
    return _row(f"malmoi {preset}", report, result.seconds, result.steps, meta.get("epochs_done", 0))


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from malmoi.data.tagging import read_tagged

    torch.set_num_threads(args.threads)
    extra = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
    train = read_tagged(args.data / "train.tsv", "klue").sentences
    test = read_tagged(args.data / "test.tsv", "klue").sentences
    rows = [] if args.no_crf else [crf_row(train, test)]
    for preset in filter(None, args.presets.split(",")):
        rows.append(malmoi_row(preset, args, test, extra))
    anchor = rows[0].entity_f1 if not args.no_crf else None
    print(f"{'model':28} {'entity F1':>9} {'P':>6} {'R':>6} {'char F1':>8} {'vs CRF':>7} {'train s':>8} {'steps':>6}")
    for r in rows:
        gain = f"{100 * (r.entity_f1 - anchor):+.1f}" if anchor is not None else ""
        print(f"{r.model:28} {100 * r.entity_f1:9.2f} {100 * r.precision:6.2f} {100 * r.recall:6.2f} "
              f"{100 * r.char_f1:8.2f} {gain:>7} {r.train_s:8.0f} {r.steps:6d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"budget": args.budget, "threads": args.threads, "seed": args.seed,
                                    "settings": extra, "rows": [asdict(r) for r in rows]}, ensure_ascii=False,
                                   indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
