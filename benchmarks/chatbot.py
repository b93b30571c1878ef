"""Korean chatbot: LSTM seq2seq without attention vs with attention, same data, same budget.

    .venv/bin/python benchmarks/chatbot.py --time-budget 10m
    .venv/bin/python benchmarks/chatbot.py --presets lstm-bahdanau,bart-mini --time-budget 5m   # vs the transformer

Trains each preset with ``malmoi.train(task="seq2seq")`` on ../shared/data/chatbot/chatbot.csv
(Q → A), holding out the same 10% of the pairs (same seed) for validation, and reports the
validation loss, perplexity, BLEU and chrF (sacrebleu, greedy answers) of the model the run
kept (lowest validation loss), then answers a few held-out questions with each model.
The data is read at run time; nothing of it is copied into the repository.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "chatbot" / "chatbot.csv"
OUT = ROOT / "benchmarks" / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--presets", default="lstm,lstm-bahdanau",
                        help="comma-separated seq2seq presets (lstm, lstm-bahdanau, lstm-luong, bart-mini)")
    parser.add_argument("--time-budget", default="10m", help="training time per preset (90s, 10m …)")
    parser.add_argument("--units", default="subword", help="subword, morphemes, words or chars")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (0 = each epoch)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core box)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--show", type=int, default=5, help="held-out questions answered by each model")
    args = parser.parse_args()

    import torch

    import malmoi
    from malmoi.tasks.seq2seq import read_pair_data, Seq2SeqOptions

    torch.set_num_threads(args.threads)
    results, answers = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            started = time.perf_counter()
            result = malmoi.train(task="seq2seq", data=args.data, source="Q", target="A", out=Path(tmp) / preset,
                                  preset=preset, units=args.units, vocab_size=args.vocab_size, epochs=1000,
                                  batch_size=args.batch_size, time_budget=args.time_budget,
                                  eval_every=args.eval_every, seed=args.seed, num_threads=args.threads,
                                  progress=False)
            results[preset] = {**result.metrics, "steps": result.steps, "seconds": round(time.perf_counter() - started),
                               "valid_pairs": result.valid_examples}
            opts = Seq2SeqOptions(data=args.data, source="Q", target="A", out=Path(tmp) / preset, seed=args.seed)
            held_out = read_pair_data(opts, lambda _: None).valid_sources[: args.show]
            answers[preset] = [(q, a.text) for q, a in zip(held_out, malmoi.load(result.run).generate(held_out))]
            print(f"{preset}: {results[preset]}", flush=True)

    print(f"\nheld-out 10% of {args.data.name}, {args.time_budget} of training each ({args.units} units)")
    print(f"{'preset':<15} {'steps':>6} {'loss':>7} {'ppl':>8} {'BLEU':>6} {'chrF':>6}")
    for preset, r in results.items():
        print(f"{preset:<15} {r['steps']:>6} {r['loss']:>7.3f} {r['perplexity']:>8.1f} {r['bleu']:>6.2f} {r['chrf']:>6.2f}")
    for preset, pairs in answers.items():
        print(f"\n{preset}:")
        for q, a in pairs:
            print(f"  Q: {q}\n  A: {a}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "chatbot.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                   "results": results, "answers": answers},
                                                  ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nwrote {OUT / 'chatbot.json'}")


if __name__ == "__main__":
    main()
