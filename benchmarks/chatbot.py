"""Korean chatbot: every seq2seq preset against two baselines on the same held-out pairs.

    .venv/bin/python benchmarks/chatbot.py                       # retrieval, hybrid, lstm-bahdanau, bart-mini; 15m each
    .venv/bin/python benchmarks/chatbot.py --presets retrieval --time-budget 1m
    .venv/bin/python benchmarks/chatbot.py --presets bart-mini --set vocab_size=4000 --set batch_size=32
    .venv/bin/python benchmarks/chatbot.py --presets lm:gpt-mini       # a chat GPT (train lm --source Q --target A)

Each preset is trained with ``malmoi.train(task="seq2seq")`` on ../shared/data/chatbot/chatbot.csv
(Q → A) with ``--time-budget`` and no epoch count (the budget alone ends training), holding out
10% of the pairs (seed 42); the held-out questions are answered through
``malmoi.load(run).generate(questions)`` with each run's default decoding, and the answers are
scored against the raw held-out answer strings. ``lm:PRESET`` is a GPT trained as a chat language
model (``train lm --source Q --target A``) on the training pairs alone (written to a temporary
file, since the lm task holds out its own validation pairs from what it reads). Beside them, in
the same run and on the same split: the single most frequent training answer, and the answer of
the most similar training question by scikit-learn's TF-IDF over character 1-3-grams (cosine). Printed per model: BLEU,
chrF, exact match, distinct-1/2 (distinct word uni/bigrams over all answers), the share of answers
that are one of the five most frequent answers it gave, steps/s; then ten questions answered side
by side. The data is read at run time; nothing of it is copied into the repository.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from pair_bench import (add_runs_option, answer_stats, print_side_by_side, runs_folder, tfidf_baseline, train_on_pairs,
                        write_pairs)
from recipes import add_recipe_option, recipe

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "chatbot" / "chatbot.csv"
OUT = ROOT / "benchmarks" / "out"


def train_preset(preset: str, split, tmp: Path, args):
    """One preset trained on the chatbot file; a chat GPT (``lm:PRESET``) on the training pairs alone."""
    options = dict(time_budget=args.time_budget, seed=args.seed, progress=False, **recipe(args.set))
    data = args.data
    if preset.startswith("lm:"):
        data = write_pairs(tmp / "train_pairs.csv", "Q", "A", split.train_sources, split.train_targets)
    return train_on_pairs(preset, data, "Q", "A", tmp / preset.replace(":", "-"), **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--presets", default="retrieval,hybrid,lstm-bahdanau,bart-mini,lm:gpt-mini",
                        help="comma-separated seq2seq presets; lm:PRESET for a chat GPT")
    parser.add_argument("--time-budget", default="15m", help="training time per preset (90s, 15m …)")
    parser.add_argument("--seed", type=int, default=42)
    add_recipe_option(parser)
    add_runs_option(parser)
    parser.add_argument("--show", type=int, default=10, help="held-out questions answered side by side")
    parser.add_argument("--results", type=Path, default=OUT / "chatbot.json", help="where the results JSON goes")
    args = parser.parse_args()

    import malmoi
    from malmoi.tasks.pairs import Seq2SeqOptions, read_pair_data

    split = read_pair_data(Seq2SeqOptions(data=args.data, source="Q", target="A", out="-", seed=args.seed),
                           lambda _: None)
    questions, references = split.valid_sources, split.valid_targets
    baselines = {
        "most frequent answer": lambda: [Counter(split.train_targets).most_common(1)[0][0]] * len(questions),
        "TF-IDF char 1-3 (sklearn)": lambda: tfidf_baseline(split.train_sources, split.train_targets, questions),
    }
    answers, rows = {}, {}
    for name, answer in baselines.items():
        started = time.perf_counter()
        answers[name] = answer()
        rows[name] = {**answer_stats(answers[name], references), "steps_per_s": None,
                      "seconds": round(time.perf_counter() - started, 1)}
    with runs_folder(args.runs) as tmp:
        for preset in args.presets.split(","):
            started = time.perf_counter()
            result = train_preset(preset, split, Path(tmp), args)
            trained = time.perf_counter() - started
            answers[preset] = [a.text for a in malmoi.load(result.run).generate(questions)]
            rows[preset] = {**answer_stats(answers[preset], references), "seconds": round(trained, 1),
                            "steps_per_s": round(result.steps / trained, 2) if result.steps else None}
            print(f"{preset}: {rows[preset]}", flush=True)

    print(f"\n{len(questions)} held-out pairs of {args.data.name} (seed {args.seed}), {args.time_budget} per preset")
    print(f"{'model':<28} {'BLEU':>6} {'chrF':>6} {'exact':>6} {'dist-1':>6} {'dist-2':>6} {'top-5':>6} {'steps/s':>8}")
    for name, r in rows.items():
        steps = f"{r['steps_per_s']:>8.2f}" if r["steps_per_s"] else f"{'-':>8}"
        print(f"{name:<28} {r['bleu']:>6.2f} {r['chrf']:>6.2f} {r['exact']:>6.1%} {r['distinct1']:>6.3f} "
              f"{r['distinct2']:>6.3f} {r['top5_share']:>6.1%} {steps}")
    print_side_by_side(questions, references, answers, args.show)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": rows,
                                                  "answers": {k: v[:args.show] for k, v in answers.items()}},
                                                 ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nwrote {args.results}")


if __name__ == "__main__":
    main()
