"""Compact classifiers on NSMC: size, accuracy, cold start and memory, before and after compaction.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/compact.py --budget 10m --epochs 2 --valid-split 0.02

(the protocol of ``benchmarks/nsmc_classify.py``, whose table the README's NSMC accuracy comes from;
without ``--epochs`` the budget alone ends training, as ``malmoi train classify --time-budget 10m`` does)

1. The default ``ngram`` preset trains on ``train.tsv`` (150,000 reviews, ``--valid-split`` held out)
   for ``--budget`` with ``--no-compact`` (every row, 32 bits: the model before compaction), at seed 42.
2. ``malmoi compress RUN`` with no goal compacts it exactly as training exports by default (the
   smallest share of each table's rows, at 4 bits, whose validation accuracy stays with the full
   model's); ``--target-size`` at ``--sizes`` and 4 and 8 bits gives the size/accuracy curve (the
   same calls in this process, so the training texts are featurized once).
3. Every model is scored on ``test.tsv`` (50,000 reviews, featurized once), and the full and the
   compact run are timed in fresh processes: ``malmoi predict RUN "배우들 연기가 정말 좋았어요"``
   (median of ``--repeats``) beside a bare ``python -c "import torch"``, with the peak resident
   memory of each predict process.
4. ``bert-mini`` (``--bert-budget``, 0 skips it) is stored at 16 and 8 bits the same way.

Targets (issue: compact models): model file ≤ 25 MB, run directory ≤ 2× the model file, test
accuracy within 0.15 points of the full model and ≥ 88.5%, cold predict ≤ 2.5× the torch import,
peak memory ≤ 600 MB; bert-mini within 0.3 points. Writes ``benchmarks/out/compact.json`` and the
curve ``docs/compact_curve.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from malmoi.sizes import folder_size  # noqa: E402
from malmoi.use.compress import model_bytes  # noqa: E402
DATA = ROOT.parent / "shared" / "data" / "nsmc"
SENTENCE = "배우들 연기가 정말 좋았어요"
MALMOI = [sys.executable, "-m", "malmoi"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DATA, help="folder with train.tsv and test.tsv")
    p.add_argument("--budget", default="10m", help="training time of the ngram run")
    p.add_argument("--epochs", default=None, help="epochs of the ngram run (default: as many as the budget allows)")
    p.add_argument("--valid-split", default="0.1", help="share of train.tsv held out (the ngram run's validation)")
    p.add_argument("--bert-budget", default="10m", help="training time of the bert-mini run (0 skips it)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "compact_runs",
                   help="run directories (an existing full run there is reused)")
    p.add_argument("--sizes", default="5MB,10MB,15MB,25MB,50MB", help="target sizes of the curve")
    p.add_argument("--repeats", type=int, default=3, help="fresh processes timed per cold start")
    p.add_argument("--limit", type=int, default=0, help="first N training and N/3 test reviews (a quick check)")
    return p.parse_args()


def run(cmd: list[str]) -> dict:
    """Wall seconds and peak resident MB of one fresh process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if status:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}")
    return {"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024}


def cold(cmd: list[str], repeats: int) -> dict:
    runs = [run(cmd) for _ in range(repeats)]
    return {"seconds": statistics.median(r["seconds"] for r in runs), "rss_mb": max(r["rss_mb"] for r in runs)}


def train(args, data: Path, out: Path, *extra: str) -> None:
    if (out / "malmoi.json").is_file() and json.loads((out / "malmoi.json").read_text()).get("status") == "done":
        print(f"reusing {out}", flush=True)
        return
    cmd = [*MALMOI, "train", "classify", "--data", str(data), "--text", "document", "--label", "label",
           "--out", str(out), "--seed", "42", *extra]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def compress(run_dir: Path, out: Path, *goal: str) -> dict:
    if not (out / "malmoi.json").is_file():
        subprocess.run([*MALMOI, "compress", str(run_dir), "--out", str(out), *goal], check=True,
                       stdout=subprocess.DEVNULL)
    return json.loads((out / "malmoi.json").read_text())["compressed"]


class Scorer:
    """Test accuracy of n-gram runs sharing one featurizer: the test texts featurized once."""

    def __init__(self, run_dir: Path, texts: list[str], labels: list[str]):
        import numpy as np

        from malmoi.data.batching import PadCollator
        from malmoi.models.ngram import NgramDataset
        from malmoi.text.ngrams import NgramFeaturizer

        started = time.perf_counter()
        data = NgramDataset(NgramFeaturizer.from_pretrained(run_dir), texts)
        collate = PadCollator(pad_id=0)
        self.batches = [collate([data[i] for i in range(s, min(s + 1000, len(data)))])["input_ids"]
                        for s in range(0, len(data), 1000)]
        self.labels = labels
        print(f"featurized {len(texts)} test reviews in {time.perf_counter() - started:.0f} s", flush=True)
        self.np = np

    def __call__(self, run_dir: Path, model=None) -> float:
        """Accuracy of the run's model (or of ``model``, with the run's labels)."""
        import torch

        from malmoi.models.ngram import NgramClassifier

        meta = json.loads((run_dir / "malmoi.json").read_text())
        model = model or NgramClassifier.load(run_dir)
        with torch.inference_mode():
            pred = torch.cat([model(b).logits.argmax(-1) for b in self.batches]).numpy()
        gold = self.np.array([meta["labels"].index(y) for y in self.labels])
        return float((pred == gold).mean())


def curve_points(full_dir: Path, sizes: list[str], score: Scorer, folder: Path) -> list[dict]:
    """``malmoi compress --target-size`` at each size and 4 and 8 bits, done in this process with the
    same library calls, so that the training texts are featurized and counted once, not per point."""
    from malmoi.models.compact import compact_model
    from malmoi.models.compact_rows import Ranking, fit_share, row_counts, row_scores
    from malmoi.runs import read_meta
    from malmoi.sizes import parse_size
    from malmoi.use.classifier import TextClassifier
    from malmoi.use.compress import read_split

    classifier = TextClassifier.from_run(full_dir)
    split, _ = read_split(full_dir, read_meta(full_dir), None, print)
    counts = row_counts(classifier.model, classifier.tokenizer.encode(split.train_texts))
    ranking = Ranking(row_scores(classifier.model, counts))
    points = []
    for size in sizes:
        for bits in (4, 8):
            share = fit_share(classifier.model, ranking, bits, parse_size(size))
            small = compact_model(classifier.model, ranking.masks(share), bits)
            small.save(folder)
            files = ("model.safetensors", "ngram_model.json")
            points.append({"target": size, "bits": bits, "share": share,
                           "bytes": sum((folder / f).stat().st_size for f in files),
                           "accuracy": score(full_dir, small), "kept": [len(m.kept_ids) for m in small.members]})
            print(points[-1], flush=True)
    return points


def bert_rows(args, train_file: Path, texts, labels) -> list[dict]:
    import malmoi

    full = args.out / "bert-mini"
    train(args, train_file, full, "--preset", "bert-mini", "--time-budget", args.bert_budget)
    rows = []
    for bits in (32, 16, 8):
        run_dir = full if bits == 32 else args.out / f"bert-mini-{bits}"
        if bits != 32:
            compress(full, run_dir, "--bits", str(bits))
        evaluation = malmoi.load(run_dir).evaluate(texts, labels)
        rows.append({"model": f"bert-mini {bits} bits", "bytes": model_bytes(run_dir),
                     "accuracy": evaluation.report.accuracy})
        print(rows[-1], flush=True)
    return rows


def plot(curve: list[dict], full: dict, default: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for bits, marker in ((4, "o"), (8, "s")):
        points = sorted((r["bytes"] / 1e6, 100 * r["accuracy"]) for r in curve if r["bits"] == bits)
        if points:
            ax.plot(*zip(*points), marker=marker, label=f"--target-size, {bits} bits")
    ax.scatter([default["bytes"] / 1e6], [100 * default["accuracy"]], marker="*", s=200, color="C3", zorder=3,
               label="what training exports")
    ax.axhline(100 * full["accuracy"], color="grey", linestyle="--",
               label=f"full model ({full['bytes'] / 1e6:.0f} MB)")
    ax.axhspan(100 * full["accuracy"] - 0.15, 100 * full["accuracy"] + 0.15, color="grey", alpha=0.12)
    ax.set_xscale("log")
    ax.set_xlabel("model file (MB, log scale)")
    ax.set_ylabel("NSMC test accuracy (%)")
    ax.set_title("ngram preset, 10 CPU-minutes: size against accuracy")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    args = parse_args()
    from malmoi.data.readers import read_labelled

    args.out.mkdir(parents=True, exist_ok=True)
    train_file, test_file = args.data / "train.tsv", args.data / "test.tsv"
    if args.limit:  # a quick check of the whole pipeline on fewer reviews
        for name, n in (("train", args.limit), ("test", args.limit // 3)):
            lines = (args.data / f"{name}.tsv").read_text(encoding="utf-8").splitlines()[:n + 1]
            (args.out / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        train_file, test_file = args.out / "train.tsv", args.out / "test.tsv"
    test = read_labelled(test_file, "document", "label")
    full_dir = args.out / "ngram-full"
    epochs = ["--epochs", args.epochs] if args.epochs else []
    train(args, train_file, full_dir, "--time-budget", args.budget, "--valid-split", args.valid_split, *epochs,
          "--no-compact")
    default_dir = args.out / "ngram-compact"
    compress(full_dir, default_dir)
    score = Scorer(full_dir, test.texts, test.labels)
    full = {"model": "ngram, full", "bytes": model_bytes(full_dir), "run_bytes": folder_size(full_dir),
            "accuracy": score(full_dir)}
    default = {"model": "ngram, compact (as trained)", "bytes": model_bytes(default_dir),
               "run_bytes": folder_size(default_dir), "accuracy": score(default_dir),
               **{k: v for k, v in json.loads((default_dir / "malmoi.json").read_text())["compressed"].items()
                  if k in ("bits", "kept")}}
    print(full, default, sep="\n", flush=True)
    curve = curve_points(full_dir, args.sizes.split(","), score, args.out / "curve-point")
    torch_import = cold([sys.executable, "-c", "import torch"], args.repeats)
    for row, run_dir in ((full, full_dir), (default, default_dir)):
        timed = cold([*MALMOI, "predict", str(run_dir), SENTENCE], args.repeats)
        row.update({f"cold_{k}": v for k, v in timed.items()})
    bert = bert_rows(args, train_file, test.texts, test.labels) if args.bert_budget not in ("0", "0s") else []
    result = {"full": full, "default": default, "curve": curve, "torch_import": torch_import, "bert": bert}
    (ROOT / "benchmarks" / "out" / "compact.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    plot(curve, full, default, ROOT / "docs" / "compact_curve.png")
    report(result)


def report(r: dict) -> None:
    full, default, torch_s = r["full"], r["default"], r["torch_import"]["seconds"]
    print("\n| model | model file | run directory | NSMC test | cold predict | peak memory |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in (full, default):
        print(f"| {row['model']} | {row['bytes'] / 1e6:.1f} MB | {row['run_bytes'] / 1e6:.1f} MB | "
              f"{100 * row['accuracy']:.2f}% | {row['cold_seconds']:.2f} s ({row['cold_seconds'] / torch_s:.2f}× "
              f"import torch) | {row['cold_rss_mb']:.0f} MB |")
    print(f"\nimport torch: {torch_s:.2f} s; {full['bytes'] / default['bytes']:.0f}× smaller, "
          f"{100 * (default['accuracy'] - full['accuracy']):+.2f} points")
    for row in r["curve"]:
        print(f"curve: {row['target']} at {row['bits']} bits → {row['bytes'] / 1e6:.2f} MB, "
              f"{100 * row['accuracy']:.2f}%")
    for row in r["bert"]:
        print(f"{row['model']}: {row['bytes'] / 1e6:.1f} MB, {100 * row['accuracy']:.2f}%")


if __name__ == "__main__":
    main()
