"""Seq2seq's other jobs: sentence summarisation (sae4k) and translation (ko→en, en→ko), every preset
beside two baselines in the same run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/seq2seq_tasks.py                  # every task, bart-mini, 15m
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/seq2seq_tasks.py --tasks sae4k --presets bart-mini,lstm-bahdanau
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/seq2seq_tasks.py --tasks ko-en --time-budget 3m --set lr=1e-3

The data is read at run time from ../shared/data: ``sae4k/sae4k.tsv`` (utterance → argument, 29,837
pairs) and ``koen/koen.tsv`` (3,940 Korean–English pairs). Each task holds out a seeded random test
set (1,000 sae4k pairs, 500 koen pairs); the rest are written to a temporary file that
``malmoi.train(task="seq2seq", …)`` reads (it holds out its own validation pairs from them) with
``--time-budget`` and no epoch count. The test sources are answered through
``malmoi.load(run).generate(sources)`` (each run's default decoding) and scored against the raw
targets: chrF, BLEU, ROUGE-L on characters and exact match (``malmoi.training.text_metrics``).

Baselines in the same run, on the same test pairs: copying the source, and retrieval (the target
of the most similar training source by scikit-learn TF-IDF over character 1–3-grams). Results go
to ``benchmarks/out/seq2seq_tasks.json``.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pair_bench import (add_runs_option, answer_stats, print_side_by_side, runs_folder, tfidf_baseline, train_on_pairs,
                        write_pairs)
from recipes import add_recipe_option, recipe

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "out" / "seq2seq_tasks.json"


@dataclass(frozen=True)
class Task:
    file: str
    source: str
    target: str
    test: int
    """Pairs held out for the test."""
    lengths: int = 64
    """``max_source_length`` and ``max_target_length`` in tokens: every test source must fit."""


TASKS = {
    "sae4k": Task("sae4k/sae4k.tsv", "utterance", "argument", 1000),
    "ko-en": Task("koen/koen.tsv", "ko", "en", 500, lengths=160),  # news sentences of up to 220 characters
    "en-ko": Task("koen/koen.tsv", "en", "ko", 500, lengths=160),
}


def split(task: Task, seed: int) -> tuple[list[str], list[str], list[str], list[str]]:
    """(train sources, train targets, test sources, test targets); the test pairs are a seeded sample
    (the same for ko-en and en-ko)."""
    from malmoi.data.readers import read_pairs

    sources, targets, _ = read_pairs(DATA / task.file, task.source, task.target)
    order = list(range(len(sources)))
    random.Random(seed).shuffle(order)
    test, train = sorted(order[:task.test]), sorted(order[task.test:])
    return ([sources[i] for i in train], [targets[i] for i in train],
            [sources[i] for i in test], [targets[i] for i in test])


def run_task(name: str, args, tmp: Path) -> dict:
    import malmoi

    task = TASKS[name]
    train_s, train_t, test_s, test_t = split(task, args.seed)
    print(f"\n{name}: {len(train_s)} training pairs, {len(test_s)} test pairs", flush=True)
    rows, answers = {}, {}
    for label, answer in {"copy the source": lambda: list(test_s),
                          "retrieval (TF-IDF char 1-3)": lambda: tfidf_baseline(train_s, train_t, test_s)}.items():
        answers[label] = answer()
        rows[label] = answer_stats(answers[label], test_t)
    data = write_pairs(tmp / f"{name}.csv", task.source, task.target, train_s, train_t)
    for preset in [p for p in args.presets.split(",") if p]:
        started = time.perf_counter()
        result = train_on_pairs(preset, data, task.source, task.target, tmp / f"{name}-{preset.replace(':', '-')}",
                                time_budget=args.time_budget, seed=args.seed, progress=False,
                                **{"max_source_length": task.lengths, "max_target_length": task.lengths,
                                   **recipe(args.set)})
        trained = time.perf_counter() - started
        answers[preset] = [a.text for a in malmoi.load(result.run).generate(test_s)]
        rows[preset] = {**answer_stats(answers[preset], test_t), "seconds": round(trained, 1), "steps": result.steps}
    print(f"{'model':<30} {'chrF':>6} {'BLEU':>6} {'ROUGE-L':>8} {'exact':>7} {'steps':>6}")
    for label, r in rows.items():
        print(f"{label:<30} {r['chrf']:>6.1f} {r['bleu']:>6.1f} {r['rouge_l']:>8.1f} {r['exact']:>7.1%} "
              f"{r.get('steps', '-'):>6}")
    print_side_by_side(test_s, test_t, answers, args.show)
    return {"train_pairs": len(train_s), "test_pairs": len(test_s), "results": rows,
            "answers": {k: v[:args.show] for k, v in answers.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="sae4k,ko-en,en-ko", help=f"comma-separated, of {', '.join(TASKS)}")
    parser.add_argument("--presets", default="bart-mini",
                        help="comma-separated seq2seq presets (lm:PRESET: a chat GPT)")
    parser.add_argument("--time-budget", default="15m", help="training time per preset and task (90s, 15m …)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--show", type=int, default=5, help="test pairs printed side by side per task")
    parser.add_argument("--results", type=Path, default=OUT, help="where the results JSON goes")
    add_recipe_option(parser)
    add_runs_option(parser)
    args = parser.parse_args()
    unknown = [t for t in args.tasks.split(",") if t not in TASKS]
    if unknown:
        parser.error(f"unknown task {unknown[0]!r}; tasks: {', '.join(TASKS)}")
    with runs_folder(args.runs) as tmp:
        results = {name: run_task(name, args, Path(tmp)) for name in args.tasks.split(",")}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": " ".join(sys.argv), "args": {k: str(v) for k, v in vars(args).items()}, "tasks": results}
    args.results.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\n→ {args.results}")


if __name__ == "__main__":
    main()
