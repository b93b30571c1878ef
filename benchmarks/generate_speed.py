"""Generation speed: malmoi's decode loop against Hugging Face ``generate()`` on the same GPT-2.

    .venv/bin/python benchmarks/generate_speed.py --rounds 5

A 4-layer, 256-wide GPT-2 (vocab 16000, 512 positions) with seeded random weights, greedy,
200 new tokens, no eos, at batch 1 and batch 16 (the batch left-padded: row i has i % 5 padding
tokens). Each round runs, one after the other so that they share the machine's load:
  * ``generate()`` with its KV cache,
  * ``generate(use_cache=False)`` (recomputes the whole prefix every step),
  * ``malmoi.models.generation.generate`` (preallocated cache, lean GPT-2 forward).
Every malmoi output is checked token for token against ``generate()``'s. Reported: median
tokens/s over the rounds and the median of the per-round ratios. torch threads = 2.

For scale, each round also times the bare arithmetic of a decode step: the 16 layer matmuls and
the vocabulary projection on the model's own weights, nothing else ("matmul floor"). At batch 1
these weights (29 MB) stream from memory every step, so no decode loop can beat that column.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_model(seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        n_layer=4, n_embd=256, n_head=4, vocab_size=16000, n_positions=512, bos_token_id=1, eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config).eval()


def build_prompts(batch: int, length: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 16000, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    for i in range(batch):
        mask[i, : i % 5] = 0
    return ids.masked_fill(mask == 0, 0), mask


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run_batch(model, batch: int, new_tokens: int, rounds: int, prompt_len: int, seed: int, no_cache: bool) -> dict:
    from malmoi.models.generation import generate

    ids, mask = build_prompts(batch, prompt_len, seed)

    def hf(use_cache: bool, n: int = new_tokens):
        with torch.inference_mode():
            return model.generate(
                ids, attention_mask=mask, max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0,
                use_cache=use_cache,
            )

    def ours(n: int = new_tokens):
        return generate(model, ids, attention_mask=mask, max_new_tokens=n, eos_token_id=[], pad_token_id=0)

    layers = [(b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj) for b in model.transformer.h]
    head = model.lm_head.weight

    def floor(n: int = new_tokens):
        x = torch.zeros(batch, model.config.n_embd)
        with torch.inference_mode():
            for _ in range(n):
                for qkv, out, fc, proj in layers:
                    torch.addmm(qkv.bias, x, qkv.weight)
                    torch.addmm(out.bias, x, out.weight)
                    h = torch.addmm(fc.bias, x, fc.weight)
                    torch.addmm(proj.bias, h, proj.weight)
                torch.nn.functional.linear(x, head)

    hf(True, 5), ours(5)  # warm up allocator and kernels
    times: dict[str, list[float]] = {"hf": [], "hf_no_cache": [], "malmoi": [], "floor": []}
    identical = True
    for _ in range(rounds):
        expected, t = timed(lambda: hf(True))
        times["hf"].append(t)
        if no_cache:
            uncached, t = timed(lambda: hf(False))
            times["hf_no_cache"].append(t)
            identical &= torch.equal(uncached, expected)
        got, t = timed(ours)
        times["malmoi"].append(t)
        identical &= torch.equal(got, expected)
        times["floor"].append(timed(floor)[1])
    tokens = batch * new_tokens
    result = {"batch": batch, "identical": bool(identical)}
    for name, ts in times.items():
        if ts:
            result[f"{name}_tokens_per_s"] = round(tokens / statistics.median(ts), 1)
    result["malmoi_over_hf"] = round(statistics.median(h / m for h, m in zip(times["hf"], times["malmoi"])), 2)
    if no_cache:
        result["malmoi_over_hf_no_cache"] = round(
            statistics.median(h / m for h, m in zip(times["hf_no_cache"], times["malmoi"])), 2
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per batch size (medians reported)")
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-no-cache", action="store_true", help="leave out generate(use_cache=False)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    model = build_model(args.seed)
    results = [
        run_batch(model, b, args.new_tokens, args.rounds, args.prompt_len, args.seed, not args.skip_no_cache)
        for b in args.batches
    ]
    if args.json:
        print(json.dumps({"threads": args.threads, "new_tokens": args.new_tokens, "results": results}))
        return
    print(f"GPT-2 4x256, vocab 16000, greedy, {args.new_tokens} new tokens, torch threads {args.threads}, "
          f"median of {args.rounds} rounds (tokens/s)")
    print(f"{'batch':>5} {'HF generate':>12} {'HF no cache':>12} {'malmoi':>10} {'matmul floor':>13} "
          f"{'x HF':>7} {'x no cache':>11} identical")
    for r in results:
        print(
            f"{r['batch']:>5} {r['hf_tokens_per_s']:>12} {r.get('hf_no_cache_tokens_per_s', '-'):>12} "
            f"{r['malmoi_tokens_per_s']:>10} {r['floor_tokens_per_s']:>13} {r['malmoi_over_hf']:>7} "
            f"{r.get('malmoi_over_hf_no_cache', '-'):>11} {r['identical']}"
        )


if __name__ == "__main__":
    main()
