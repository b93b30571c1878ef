"""Tokenization speed on NSMC's unlabelled reviews.

    .venv/bin/python benchmarks/tokenize_speed.py --limit 50000

Measures, in one run so that the ratios share the machine's load:
  1. time to train a 16k WordPiece tokenizer, without and with Kiwi morpheme pre-splitting;
  2. morpheme splitting throughput (sentences/s): malmoi's batched path (Kiwi's batch API over its
     worker threads) against a plain loop calling Kiwi once per sentence, same Kiwi instance;
  3. encode throughput of the saved tokenizer loaded with AutoTokenizer: batched calls against one
     call per sentence (and the morpheme tokenizer through load_tokenizer, which runs Kiwi too).
The data is read at run time from ../shared/data (relative to the repository root).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "nsmc" / "unlabeled.txt"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def best_of(rounds: int, fn) -> float:
    """Fastest of ``rounds`` runs: the least disturbed by other work on a shared machine."""
    return min(timed(fn)[1] for _ in range(rounds))


def head_to_head(rounds: int, slow, fast) -> tuple[float, float, float, float]:
    """(best slow time, best fast time, median of the per-round ratios, cores the fast one got),
    the two run alternately so that both see the same load. The last figure (process CPU time
    over wall time) shows whether the machine gave the threads more than one core at all."""
    slow_times, fast_times, cores = [], [], []
    for _ in range(rounds):
        slow_times.append(timed(slow)[1])
        cpu = time.process_time()
        fast_times.append(timed(fast)[1])
        cores.append((time.process_time() - cpu) / fast_times[-1])
    ratios = sorted(s / f for s, f in zip(slow_times, fast_times))
    return min(slow_times), min(fast_times), ratios[len(ratios) // 2], max(cores)


def encode_batched(tok, texts, batch_size=1000):
    for i in range(0, len(texts), batch_size):
        tok(texts[i:i + batch_size], truncation=True, max_length=128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=50000, help="sentences used (the first N lines)")
    parser.add_argument("--vocab-size", type=int, default=16000)
    parser.add_argument("--speed-limit", type=int, default=20000, help="sentences for the throughput runs")
    parser.add_argument("--rounds", type=int, default=3,
                        help="throughput runs alternate this many times; best speeds and the median ratio count")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from malmoi.data.readers import read_texts
    from malmoi.text.subword import load_tokenizer, train_tokenizer
    from malmoi.text.words import kiwi, split_morphemes

    texts = read_texts(args.data)[: args.limit]
    speed_texts = texts[: args.speed_limit]
    load_before = os.getloadavg()[0]
    r: dict = {"sentences": len(texts), "speed_sentences": len(speed_texts), "cpus": os.cpu_count(),
               "vocab_size": args.vocab_size,
               "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM", "(unset: on)")}

    with tempfile.TemporaryDirectory() as tmp:
        plain_dir, morph_dir = Path(tmp) / "wordpiece", Path(tmp) / "wordpiece-morphemes"
        _, r["train_wordpiece_s"] = timed(lambda: train_tokenizer(texts, "wordpiece", args.vocab_size, out=plain_dir))
        kiwi()  # load the model outside the timings
        _, r["train_wordpiece_morphemes_s"] = timed(
            lambda: train_tokenizer(texts, "wordpiece", args.vocab_size, morphemes=True, out=morph_dir))

        k = kiwi()
        loop = lambda: [[t.form for t in k.tokenize(s)] for s in speed_texts]  # noqa: E731
        batched = lambda: split_morphemes(speed_texts)  # noqa: E731
        assert loop()[:50] == batched()[:50]
        t_loop, t_batch, ratio, r["morphemes_batched_cores_used"] = head_to_head(args.rounds, loop, batched)
        r["kiwi_workers"] = k.num_workers
        r["morphemes_loop_per_s"] = len(speed_texts) / t_loop
        r["morphemes_batched_per_s"] = len(speed_texts) / t_batch
        r["morphemes_batched_over_loop_best"] = t_loop / t_batch
        r["morphemes_batched_over_loop_median"] = ratio

        auto = AutoTokenizer.from_pretrained(plain_dir, local_files_only=True)
        t_one, t_enc, ratio, _ = head_to_head(args.rounds, lambda: [auto(s, truncation=True, max_length=128)
                                                                 for s in speed_texts],
                                           lambda: encode_batched(auto, speed_texts))
        r["encode_batched_per_s"] = len(speed_texts) / t_enc
        r["encode_one_by_one_per_s"] = len(speed_texts) / t_one
        r["encode_batched_over_one_by_one_median"] = ratio
        morph_tok = load_tokenizer(morph_dir)
        r["encode_morphemes_batched_per_s"] = len(speed_texts) / best_of(1, lambda: encode_batched(morph_tok, speed_texts))
        sample = texts[0]
        r["example"] = {"text": sample, "wordpiece": auto.tokenize(sample), "wordpiece_morphemes": morph_tok.tokenize(sample)}
    r["load_avg_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]

    if args.json:
        print(json.dumps(r, ensure_ascii=False, indent=2))
        return
    print(f"{r['sentences']:,} sentences ({r['speed_sentences']:,} for throughput), {r['cpus']} CPUs, "
          f"load average {r['load_avg_before_after'][0]} → {r['load_avg_before_after'][1]}, "
          f"TOKENIZERS_PARALLELISM={r['tokenizers_parallelism']}")
    print(f"train {args.vocab_size // 1000}k WordPiece:           {r['train_wordpiece_s']:8.1f} s")
    print(f"train {args.vocab_size // 1000}k WordPiece, morphemes: {r['train_wordpiece_morphemes_s']:8.1f} s")
    print(f"morphemes, loop of single calls: {r['morphemes_loop_per_s']:8.0f} sentences/s")
    print(f"morphemes, malmoi batched ({r['kiwi_workers']} workers): {r['morphemes_batched_per_s']:8.0f} sentences/s"
          f"   ×{r['morphemes_batched_over_loop_best']:.2f} best/best, ×{r['morphemes_batched_over_loop_median']:.2f}"
          f" median of {args.rounds} alternating rounds; it got {r['morphemes_batched_cores_used']:.2f} cores")
    print(f"encode (AutoTokenizer), one by one: {r['encode_one_by_one_per_s']:8.0f} sentences/s")
    print(f"encode (AutoTokenizer), batched:    {r['encode_batched_per_s']:8.0f} sentences/s"
          f"   ×{r['encode_batched_over_one_by_one_median']:.2f} (median ratio)")
    print(f"encode, morpheme tokenizer (Kiwi + WordPiece), batched: {r['encode_morphemes_batched_per_s']:8.0f} sentences/s")
    print(f"example: {r['example']['text'][:40]!r}\n  {' '.join(r['example']['wordpiece'])}\n"
          f"  {' '.join(r['example']['wordpiece_morphemes'])}")


if __name__ == "__main__":
    main()
