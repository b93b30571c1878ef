"""NSMC sentiment accuracy: malmoi's classifier presets against TF-IDF + logistic regression, in one run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/nsmc_classify.py --budget 10m --presets ngram,bert-mini

Every model trains on ``train.tsv`` (150,000 reviews) and is scored on ``test.tsv`` (50,000), both
read at run time from ../shared/data/nsmc (relative to the repository root):

* the baseline: TF-IDF of character 1–3-grams and word 1–2-grams (sublinear tf) + scikit-learn's
  ``LogisticRegression``;
* each malmoi preset through ``malmoi.train(task="classify", …)`` — the one training loop, a run
  directory, the best checkpoint by validation accuracy — with ``--budget`` of training time on
  ``--threads`` CPU threads, then ``malmoi.load(run).evaluate`` on the test file.

Columns: test accuracy, points above the baseline, training seconds (the loop's own time:
``train_seconds`` in metrics.jsonl), preparation seconds (reading, tokenizer training or n-gram
featurizing, Kiwi's morpheme analysis reported apart), CPU seconds of the whole call, and the
training time as a multiple of the baseline's fit. ``--limit N`` uses the first N training and
N/3 test reviews for a quick check of the whole pipeline. The machine may be shared: the ratios
measured in one run are what count.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "nsmc"


@dataclass
class Row:
    """One model's result."""

    model: str
    accuracy: float
    train_s: float
    prep_s: float
    morpheme_s: float
    cpu_s: float
    steps: int = 0
    epochs: float = 0.0
    stopped_by: str = ""


def parse_args() -> argparse.Namespace:
    from malmoi.training.args import parse_duration

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train.tsv and test.tsv")
    p.add_argument("--budget", default="10m", help="training time per preset (10m, 90s …)")
    p.add_argument("--presets", default="ngram", help="comma-separated malmoi presets")
    p.add_argument("--limit", type=int, default=0, help="use the first N training and N/3 test reviews (0 = all)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for training")
    p.add_argument("--valid-split", type=float, default=0.02,
                   help="fraction of train.tsv held out to pick the best checkpoint")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-baseline", action="store_true", help="skip TF-IDF + logistic regression")
    p.add_argument("--out", type=Path, default=None, help="keep the run directories here (default: a temp folder)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = p.parse_args()
    args.budget_s = parse_duration(args.budget)
    return args


def read(path: Path, limit: int) -> tuple[list[str], list[str]]:
    from malmoi.data.readers import read_labelled

    data = read_labelled(path, "document", "label")
    if limit:
        return data.texts[:limit], data.labels[:limit]
    return data.texts, data.labels


def write_tsv(path: Path, texts: list[str], labels: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("id\tdocument\tlabel\n")
        for i, (t, y) in enumerate(zip(texts, labels)):
            f.write(f"{i}\t{t}\t{y}\n")


def baseline(train: tuple[list[str], list[str]], test: tuple[list[str], list[str]]) -> Row:
    """TF-IDF (char 1–3 + word 1–2) + logistic regression, as a careful scikit-learn user writes it."""
    import numpy as np
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    cpu, started = time.process_time(), time.perf_counter()
    char = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=2,
                           token_pattern=r"\S+")
    x_train = hstack([char.fit_transform(train[0]), word.fit_transform(train[0])]).tocsr()
    prep = time.perf_counter() - started
    started = time.perf_counter()
    clf = LogisticRegression(C=4.0, max_iter=1000, solver="liblinear")
    clf.fit(x_train, train[1])
    fit_s = time.perf_counter() - started
    x_test = hstack([char.transform(test[0]), word.transform(test[0])]).tocsr()
    accuracy = float(np.mean(clf.predict(x_test) == np.array(test[1])))
    return Row("tfidf+logreg", accuracy, fit_s, prep, 0.0, time.process_time() - cpu)


def train_seconds(run: Path) -> float:
    """The loop's own training time (evaluation excluded), from the run's metrics.jsonl."""
    seconds = 0.0
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("event") == "end":
            seconds = float(record.get("train_seconds", 0.0))
    return seconds


def morpheme_seconds(log: list[str]) -> float:
    """Kiwi's share of featurizing, from the task's log line (n-gram presets)."""
    for line in log:
        found = re.search(r"Kiwi morphemes ([\d.]+) s", line)
        if found:
            return float(found.group(1))
    return 0.0


def malmoi_preset(name: str, train_file: Path, test: tuple[list[str], list[str]], runs: Path,
                  args: argparse.Namespace) -> Row:
    import malmoi
    from malmoi.models.presets import preset_training

    run = runs / name
    log: list[str] = []

    def say(message: str) -> None:
        log.append(message)
        print(f"  [{name}] {message}", file=sys.stderr, flush=True)

    cpu, started = time.process_time(), time.perf_counter()
    # the preset's epochs where it has them (ngram: 2); otherwise the budget alone ends training
    result = malmoi.train(task="classify", data=train_file, text="document", label="label", out=run,
                          preset=name, epochs=preset_training(name).get("epochs"),
                          time_budget=args.budget_s, valid_split=args.valid_split,
                          seed=args.seed, num_threads=args.threads, progress=False,
                          say=say)
    total = time.perf_counter() - started
    cpu = time.process_time() - cpu
    trained = train_seconds(run)
    evaluation = malmoi.load(run).evaluate(test[0], test[1])
    return Row(name, evaluation.report.accuracy, trained, total - trained, morpheme_seconds(log), cpu,
               result.steps, getattr(result, "epochs", 0.0), result.stopped_by)


def print_table(rows: list[Row], base: Row | None) -> None:
    head = f"{'model':<14} {'accuracy':>9} {'vs base':>8} {'train s':>8} {'prep s':>7} {'kiwi s':>7} " \
           f"{'cpu s':>7} {'x base':>7}  steps (stopped by)"
    print(head)
    print("-" * len(head))
    for r in rows:
        diff = f"{100 * (r.accuracy - base.accuracy):+.2f}" if base else "-"
        ratio = f"{r.train_s / max(base.train_s, 1e-9):.1f}" if base else "-"
        steps = f"{r.steps} ({r.stopped_by})" if r.steps else ""
        print(f"{r.model:<14} {100 * r.accuracy:>8.2f}% {diff:>8} {r.train_s:>8.0f} {r.prep_s:>7.0f} "
              f"{r.morpheme_s:>7.0f} {r.cpu_s:>7.0f} {ratio:>7}  {steps}")


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train = read(args.data / "train.tsv", args.limit)
    test = read(args.data / "test.tsv", args.limit // 3 if args.limit else 0)
    print(f"NSMC: {len(train[0])} training, {len(test[0])} test reviews; budget {args.budget_s:.0f} s per preset, "
          f"{args.threads} threads", file=sys.stderr)
    rows: list[Row] = []
    base = None
    if not args.no_baseline:
        base = baseline(train, test)
        rows.append(base)
        print(f"  baseline {100 * base.accuracy:.2f}%", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="nsmc-classify-") as tmp:
        runs = args.out or Path(tmp)
        runs.mkdir(parents=True, exist_ok=True)
        train_file = args.data / "train.tsv"
        if args.limit:
            train_file = Path(tmp) / "train.tsv"
            write_tsv(train_file, *train)
        for name in [p.strip() for p in args.presets.split(",") if p.strip()]:
            row = malmoi_preset(name, train_file, test, runs, args)
            rows.append(row)
            print(f"  {name} {100 * row.accuracy:.2f}%", file=sys.stderr, flush=True)
    print_table(rows, base)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], ensure_ascii=False))


if __name__ == "__main__":
    main()
