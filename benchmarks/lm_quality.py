"""Language-model quality in nats per character: a GPT preset against character n-gram models on
the same held-out NSMC reviews.

    .venv/bin/python benchmarks/lm_quality.py                                  # gpt-mini, 10m of training
    .venv/bin/python benchmarks/lm_quality.py --lines 20000 --time-budget 20s  # a quick end-to-end check
    .venv/bin/python benchmarks/lm_quality.py --set vocab_size=4000 --set lr=3e-3  # a recipe to try

The last ``--held-out`` (5,000) non-empty lines of ../shared/data/nsmc/unlabeled.txt are held out;
neither the tokenizer nor any model sees them. The lines before them (the first ``--lines`` of
them, if given) are written to a temporary file and ``malmoi.train(task="lm")`` trains the preset
on it for ``--time-budget`` (BPE trained on those lines; the task holds out up to 2,000 of them
for its validation perplexity). In the same run, character 5-gram and trigram models
(``models/charlm.py``, interpolated absolute discounting) are trained on the same training lines.
Every model is scored on the held-out lines as Σ −ln p(line + end) / Σ (characters + 1)
(``LMGenerator.score``, ``CharNgramLM.score``); printed: nats/char, bits/char, unknown tokens,
seconds; the GPT's steps, training tokens/s and validation perplexity (per token); and sampled
continuations of five review openings. The data is read at run time; nothing of it is copied
into the repository.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from recipes import add_recipe_option, recipe

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "nsmc" / "unlabeled.txt"
OUT = ROOT / "benchmarks" / "out"
PROMPTS = ["이 영화는", "배우들 연기가", "스토리가", "감독이", "이런 영화"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--preset", default="gpt-mini", help="GPT preset to train")
    parser.add_argument("--time-budget", default="10m", help="GPT training time (90s, 10m …)")
    parser.add_argument("--lines", type=int, default=None, help="train on only the first N training lines")
    parser.add_argument("--held-out", type=int, default=5000, help="last lines of the file held out for scoring")
    parser.add_argument("--seed", type=int, default=42)
    add_recipe_option(parser)
    args = parser.parse_args()

    import malmoi
    from malmoi.data.readers import read_texts
    from malmoi.models.charlm import CharNgramLM
    from malmoi.runs import read_meta

    lines = read_texts(args.data)
    train_lines, held_out = lines[: -args.held_out][: args.lines], lines[-args.held_out :]
    print(f"{len(train_lines):,} training lines, {len(held_out):,} held-out lines of {args.data.name}", flush=True)
    rows, samples = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.txt"
        data.write_text("\n".join(train_lines) + "\n", encoding="utf-8")
        started = time.perf_counter()
        result = malmoi.train(task="lm", data=data, preset=args.preset, time_budget=args.time_budget,
                              seed=args.seed, progress=False, out=Path(tmp) / "run", **recipe(args.set))
        trained = time.perf_counter() - started
        generator = malmoi.load(result.run)
        started = time.perf_counter()
        score = generator.score(held_out)
        block = read_meta(result.run)["block_size"]
        rows[f"{args.preset} ({args.time_budget})"] = {
            **score.to_dict(), "train_s": round(trained, 1), "score_s": round(time.perf_counter() - started, 1),
            "steps": result.steps, "train_tokens_per_s": round(result.samples_per_s * block),
            "valid_perplexity": result.metrics["perplexity"], "stopped_by": result.stopped_by}
        for answer in generator.generate(PROMPTS, max_new_tokens=40, top_p=0.95, temperature=0.9, seed=args.seed):
            samples[answer.source] = answer.text
    for order in (5, 3):
        started = time.perf_counter()
        lm = CharNgramLM(train_lines, order=order)
        trained = time.perf_counter() - started
        started = time.perf_counter()
        score = lm.score(held_out)
        rows[f"char {order}-gram"] = {**score.to_dict(), "train_s": round(trained, 1),
                                      "score_s": round(time.perf_counter() - started, 1)}

    gpt = next(iter(rows.values()))
    print(f"\n{args.preset}: {gpt['steps']} steps ({gpt['stopped_by']}), {gpt['train_tokens_per_s']:,} training "
          f"tokens/s, validation perplexity {gpt['valid_perplexity']:.2f} per token")
    print(f"\n{'model':<24} {'nats/char':>9} {'bits/char':>9} {'vs 5-gram':>9} {'unknown':>8} {'train s':>8} "
          f"{'score s':>8}")
    for name, r in rows.items():
        print(f"{name:<24} {r['nats_per_char']:>9.4f} {r['bits_per_char']:>9.4f} "
              f"{r['nats_per_char'] / rows['char 5-gram']['nats_per_char']:>9.3f} {r['unknown']:>8} "
              f"{r['train_s']:>8.1f} {r['score_s']:>8.1f}")
    print(f"({gpt['characters']:,} characters + ends in {gpt['lines']:,} held-out lines; unknown: [UNK] tokens "
          "for the GPT, characters unseen in training for the n-grams)")
    print("\nsampled continuations (top_p 0.95, temperature 0.9):")
    for prompt, text in samples.items():
        print(f"  {prompt}{text}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "lm_quality.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                     "results": rows, "samples": samples},
                                                    ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nwrote {OUT / 'lm_quality.json'}")


if __name__ == "__main__":
    main()
