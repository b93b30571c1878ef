"""Training throughput: malmoi's loop (``fit``) against Hugging Face ``Trainer`` on NSMC.

    .venv/bin/python benchmarks/nsmc_throughput.py --omp-passive

Both train the same model config (a preset, default ``bert-mini``) from the same initial weights,
with the same WordPiece tokenizer, the same tokenized examples, batch size, max length, learning
rate schedule and seed, for one epoch each, alternating malmoi / Trainer ``--rounds`` times in one
process so that both see the same machine load. Trainer is set up as a careful user would:
``DataCollatorWithPadding``, ``train_sampling_strategy="group_by_length"`` (transformers 5's
name for length-grouped batches), no evaluation, no saving, no logging, no progress bar.

``--trainer-model``: ``hf`` gives Trainer ``BertForSequenceClassification`` (what a Trainer user
builds from the config; it adds the pooler) and malmoi its ``EncoderClassifier``; ``same`` gives
both the ``EncoderClassifier`` so that only the loops differ.

Reported: samples/s (wall time of the ``fit`` / ``trainer.train`` call; malmoi's includes its
end-of-epoch checkpoint), the ratio, padding, and achieved GFLOP/s estimated as
6 x non-embedding parameters x tokens (computed once over real tokens, once over the padded
tokens the model actually processed; the same full-model count for both, so malmoi's [CLS]-only
last layer shows as more useful work per second, not as fewer FLOPs) against the CPU's fp32 peak (``--peak-gflops``; 2 Zen 3
cores with AVX2 FMA: 2 x 3.0 GHz x 2 FMA x 8 lanes x 2 = ~157 GFLOP/s at 3.0-3.5 GHz).
The data is read at run time from ../shared/data (relative to the repository root).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "nsmc" / "train.tsv"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--examples", type=int, default=2000, help="training examples (a seeded random subset)")
    p.add_argument("--preset", default="bert-mini")
    p.add_argument("--vocab-size", type=int, default=16000)
    p.add_argument("--tokenizer-examples", type=int, default=50000,
                   help="reviews the shared WordPiece tokenizer is trained on (a realistic vocabulary)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--rounds", type=int, default=3, help="malmoi/Trainer pairs, alternating")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--trainer-model", choices=["hf", "same"], default="hf")
    p.add_argument("--full-last-layer", action="store_true",
                   help="malmoi's classifier runs its last layer for every position (off: [CLS] only)")
    p.add_argument("--fused-adamw", action="store_true",
                   help="what-if: give malmoi's loop fused AdamW, as Trainer uses on torch >= 2.8")
    p.add_argument("--peak-gflops", type=float, default=157.0)
    p.add_argument("--omp-passive", action="store_true",
                   help="OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spinning (on a machine "
                        "shared with other work, spinning threads can slow every step many times over)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    return p.parse_args()


class TokenCounter:
    """Wraps a collator and counts the real and padded tokens of every batch it builds."""

    def __init__(self, collate):
        self.collate = collate
        self.real = self.padded = 0

    def __call__(self, items):
        batch = self.collate(items)
        self.real += int(batch["attention_mask"].sum())
        self.padded += batch["input_ids"].numel()
        return batch


def warm_up(make_model, train_set, collate, steps: int = 3) -> None:
    """A few untimed steps of both models, so that one-time start-up costs (thread pools, kernel
    selection) land in neither measurement."""
    import torch

    batch = collate([train_set[i] for i in range(32)])
    for kind in ("malmoi", "hf"):
        model = make_model(kind)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for _ in range(steps):
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()


def non_embedding_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)


def run_malmoi(make_model, train_set, collate, args, out: Path) -> dict:
    import functools

    import torch

    from malmoi.training.args import TrainArgs
    from malmoi.training.loop import fit

    model = make_model("malmoi")
    adamw = torch.optim.AdamW
    if args.fused_adamw:  # what-if experiment: the loop builds its optimizer as torch.optim.AdamW(...)
        torch.optim.AdamW = functools.partial(adamw, fused=True)
    counter = TokenCounter(collate)
    targs = TrainArgs(epochs=1, batch_size=args.batch_size, lr=args.lr, warmup=0.06, weight_decay=0.01,
                      grad_clip=1.0, seed=42, log_every=10**9, progress=False)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        result = fit(model, train_set, None, args=targs, out=out, collate=counter, lengths=train_set.lengths)
    finally:
        torch.optim.AdamW = adamw
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "samples": len(train_set), "real_tokens": counter.real,
            "padded_tokens": counter.padded, "params": non_embedding_params(model),
            "loop_samples_per_s": result.samples_per_s}


def run_trainer(make_model, train_set, tokenizer, args, out: Path) -> dict:
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

    model = make_model(args.trainer_model)
    counter = TokenCounter(DataCollatorWithPadding(tokenizer))
    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch_size, num_train_epochs=1,
        learning_rate=args.lr, warmup_steps=0.06, weight_decay=0.01, max_grad_norm=1.0, lr_scheduler_type="linear",
        train_sampling_strategy="group_by_length", eval_strategy="no", save_strategy="no",
        logging_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0,
        use_cpu=True, seed=42, data_seed=42,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train_set, data_collator=counter,
                      processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict; logging is off otherwise
    start, cpu = time.perf_counter(), time.process_time()
    metrics = trainer.train().metrics
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "samples": len(train_set), "real_tokens": counter.real,
            "padded_tokens": counter.padded, "params": non_embedding_params(model),
            "loop_samples_per_s": metrics.get("train_samples_per_second"), "optim": str(targs.optim)}


def summarise(runs: list[dict], peak: float) -> dict:
    best = min(runs, key=lambda r: r["seconds"])
    return {
        "samples_per_s": best["samples"] / best["seconds"],
        "samples_per_s_all": [round(r["samples"] / r["seconds"], 1) for r in runs],
        "samples_per_cpu_s": max(r["samples"] / r["cpu_seconds"] for r in runs),
        "cores_used": [round(r["cpu_seconds"] / r["seconds"], 2) for r in runs],
        "padding": 1 - best["real_tokens"] / best["padded_tokens"],
        "gflops_real": 6 * best["params"] * best["real_tokens"] / best["seconds"] / 1e9,
        "gflops_padded": 6 * best["params"] * best["padded_tokens"] / best["seconds"] / 1e9,
        "peak_fraction_padded": 6 * best["params"] * best["padded_tokens"] / best["seconds"] / 1e9 / peak,
        "non_embedding_params": best["params"],
        **({"optim": best["optim"]} if "optim" in best else {}),
    }


def main() -> None:
    args = parse_args()
    if args.omp_passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read when torch's OpenMP starts, so before importing it
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    from malmoi.data.batching import PadCollator
    from malmoi.data.datasets import ClassificationDataset
    from malmoi.data.readers import read_labelled
    from malmoi.models.classifier import EncoderClassifier
    from malmoi.models.presets import hf_config
    from malmoi.text.subword import train_tokenizer

    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    labelled = read_labelled(args.data, "document", "label")
    rng = random.Random(0)
    order = rng.sample(range(len(labelled.texts)), min(max(args.examples, args.tokenizer_examples),
                                                       len(labelled.texts)))
    picked = order[:args.examples]
    texts = [labelled.texts[i] for i in picked]
    labels = sorted(set(labelled.labels))
    ids = [labels.index(labelled.labels[i]) for i in picked]
    tokenizer = train_tokenizer([labelled.texts[i] for i in order[:max(args.examples, args.tokenizer_examples)]],
                                kind="wordpiece", vocab_size=args.vocab_size)
    train_set = ClassificationDataset(texts, ids, tokenizer, max_length=args.max_length)
    config = hf_config(args.preset, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)

    def make_model(kind: str):
        torch.manual_seed(0)
        if kind == "hf":
            return BertForSequenceClassification(hf_config(args.preset, vocab_size=len(tokenizer),
                                                           pad_token_id=tokenizer.pad_token_id, num_labels=2))
        model = EncoderClassifier.from_preset(args.preset, 2, vocab_size=len(tokenizer),
                                              pad_token_id=tokenizer.pad_token_id)
        model.first_token_last_layer = not args.full_last_layer
        return model

    collate = PadCollator(pad_id=tokenizer.pad_token_id)
    malmoi_runs, trainer_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        warm_up(make_model, train_set, collate)
        for r in range(args.rounds):
            # alternate who goes first, so that a slow start or a burst of load elsewhere hits both alike
            order = ("malmoi", "trainer") if r % 2 == 0 else ("trainer", "malmoi")
            for who in order:
                if who == "malmoi":
                    malmoi_runs.append(run_malmoi(make_model, train_set, collate, args, Path(tmp) / f"m{r}"))
                else:
                    trainer_runs.append(run_trainer(make_model, train_set, tokenizer, args, Path(tmp) / f"t{r}"))
            print(f"round {r + 1}: malmoi {malmoi_runs[-1]['samples'] / malmoi_runs[-1]['seconds']:.1f} samples/s, "
                  f"Trainer {trainer_runs[-1]['samples'] / trainer_runs[-1]['seconds']:.1f} samples/s",
                  file=sys.stderr, flush=True)
    malmoi, trainer = summarise(malmoi_runs, args.peak_gflops), summarise(trainer_runs, args.peak_gflops)
    ratios = [(t["seconds"] / m["seconds"]) for m, t in zip(malmoi_runs, trainer_runs)]
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "setup": {"examples": len(train_set), "preset": args.preset, "vocab": len(tokenizer),
                  "batch_size": args.batch_size, "max_length": args.max_length, "threads": torch.get_num_threads(),
                  "mean_tokens": sum(train_set.lengths) / len(train_set), "trainer_model": args.trainer_model,
                  "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                  "malmoi_last_layer": "full" if args.full_last_layer else "[CLS] only",
                  "malmoi_adamw": "fused (what-if)" if args.fused_adamw else "loop default",
                  "hidden_size": config.hidden_size, "layers": config.num_hidden_layers},
        "malmoi": malmoi,
        "trainer": trainer,
        "ratio_best": malmoi["samples_per_s"] / trainer["samples_per_s"],
        "ratio_per_round": [round(x, 3) for x in ratios],
        "ratio_median": statistics.median(ratios),
        # on a machine shared with other work, wall time swings with the neighbours' load; the CPU
        # time the process itself spent (idle OpenMP threads sleep with --omp-passive) does much less
        "ratio_cpu_time": statistics.median(t["cpu_seconds"] / m["cpu_seconds"]
                                            for m, t in zip(malmoi_runs, trainer_runs)),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['command']}")
    print(f"{len(train_set)} NSMC reviews, {args.preset} ({config.num_hidden_layers}x{config.hidden_size}), "
          f"vocab {len(tokenizer)}, batch {args.batch_size}, max length {args.max_length}, "
          f"{torch.get_num_threads()} threads, mean {report['setup']['mean_tokens']:.1f} tokens/review; "
          f"malmoi last layer: {report['setup']['malmoi_last_layer']}, AdamW: {report['setup']['malmoi_adamw']}; "
          f"Trainer model: {args.trainer_model}, optim {trainer.get('optim')}")
    for name, r in (("malmoi fit", malmoi), ("HF Trainer", trainer)):
        print(f"  {name:10s} {r['samples_per_s']:7.1f} samples/s  (rounds {r['samples_per_s_all']})  "
              f"padding {r['padding']:.1%}  {r['gflops_real']:.1f} GFLOP/s on real tokens, "
              f"{r['gflops_padded']:.1f} on padded = {r['peak_fraction_padded']:.1%} of {args.peak_gflops:.0f}; "
              f"{r['samples_per_cpu_s']:.1f} samples per CPU-second, cores used {r['cores_used']}")
    print(f"  malmoi / Trainer: {report['ratio_best']:.2f}x (best rounds), median per-round "
          f"{report['ratio_median']:.2f}x, by CPU time {report['ratio_cpu_time']:.2f}x")


if __name__ == "__main__":
    main()
