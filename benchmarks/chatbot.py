"""Korean chatbot: every seq2seq preset against two baselines on the same held-out pairs.

    .venv/bin/python benchmarks/chatbot.py                       # retrieval, hybrid, lstm-bahdanau, bart-mini; 15m each
    .venv/bin/python benchmarks/chatbot.py --presets retrieval --time-budget 1m
    .venv/bin/python benchmarks/chatbot.py --presets bart-mini --set vocab_size=4000 --set batch_size=32

Each preset is trained with ``malmoi.train(task="seq2seq")`` on ../shared/data/chatbot/chatbot.csv
(Q → A) with ``--time-budget`` and no epoch count (the budget alone ends training), holding out
10% of the pairs (seed 42); the held-out questions are answered through
``malmoi.load(run).generate(questions)`` with each run's default decoding, and the answers are
scored against the raw held-out answer strings. Beside them, in the same run and on the same
split: the single most frequent training answer, and the answer of the most similar training
question by scikit-learn's TF-IDF over character 1-3-grams (cosine). Printed per model: BLEU,
chrF, exact match, distinct-1/2 (distinct word uni/bigrams over all answers), the share of answers
that are one of the five most frequent answers it gave, steps/s; then ten questions answered side
by side. The data is read at run time; nothing of it is copied into the repository.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from recipes import add_recipe_option, recipe

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "chatbot" / "chatbot.csv"
OUT = ROOT / "benchmarks" / "out"


def answer_stats(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """BLEU, chrF, exact match, distinct-1/2 and the top-5 share of answers against raw references."""
    from malmoi.tasks.retrieval import answer_scores

    words = [h.split() for h in hypotheses]
    unigrams = [w for ws in words for w in ws]
    bigrams = [tuple(ws[i:i + 2]) for ws in words for i in range(len(ws) - 1)]
    top5 = {a for a, _ in Counter(hypotheses).most_common(5)}
    return {**answer_scores(hypotheses, references),
            "distinct1": len(set(unigrams)) / max(1, len(unigrams)),
            "distinct2": len(set(bigrams)) / max(1, len(bigrams)),
            "top5_share": sum(h in top5 for h in hypotheses) / max(1, len(hypotheses))}


def tfidf_baseline(train_q: list[str], train_a: list[str], questions: list[str]) -> list[str]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    x = vectorizer.fit_transform(train_q)
    best = (vectorizer.transform(questions) @ x.T).toarray().argmax(1)
    return [train_a[j] for j in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--presets", default="retrieval,hybrid,lstm-bahdanau,bart-mini", help="comma-separated seq2seq presets")
    parser.add_argument("--time-budget", default="15m", help="training time per preset (90s, 15m …)")
    parser.add_argument("--seed", type=int, default=42)
    add_recipe_option(parser)
    parser.add_argument("--show", type=int, default=10, help="held-out questions answered side by side")
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
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            started = time.perf_counter()
            result = malmoi.train(task="seq2seq", data=args.data, source="Q", target="A", out=Path(tmp) / preset,
                                  preset=preset, time_budget=args.time_budget, seed=args.seed, progress=False,
                                  **recipe(args.set))
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
    for i in range(min(args.show, len(questions))):
        print(f"\nQ: {questions[i]}\n   reference: {references[i]}")
        for name, hyp in answers.items():
            print(f"   {name}: {hyp[i]}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "chatbot.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": rows,
                                                  "answers": {k: v[:args.show] for k, v in answers.items()}},
                                                 ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nwrote {OUT / 'chatbot.json'}")


if __name__ == "__main__":
    main()
