"""Does attention rescue long inputs? LSTM seq2seq without attention vs Bahdanau vs Luong.

    .venv/bin/python benchmarks/attention_vs_length.py --steps 600

Every model gets the same size, data, optimizer and budget (optimizer steps, or seconds with
--time-budget), trained by malmoi's own loop (``malmoi.training.loop.fit``) on a synthetic task:
reverse (or copy) a random sequence of 5–60 symbols. Then greedy decoding on fresh sequences of
each length gives exact-match accuracy (whole sequence right) and token accuracy (share of gold
positions predicted right) against the input length: a table on stdout, a PNG and a JSON in
benchmarks/out/. The course claim under test: the plain encoder squeezes the whole input into
one fixed-size state, so it breaks down as inputs grow, while attention reads every encoder
state and holds up.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from malmoi.models.lstm import LSTMConfig, LSTMSeq2Seq
from malmoi.training.args import TrainArgs
from malmoi.training.loop import fit

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
PAD, UNK, BOS, EOS = 0, 1, 2, 3
FIRST = 4  # the first ordinary symbol id


@dataclass
class Task:
    kind: str
    """reverse or copy."""
    symbols: int
    """Distinct ordinary symbols."""
    min_len: int
    """Shortest source."""
    max_len: int
    """Longest source."""

    def target(self, seq: list[int]) -> list[int]:
        return (seq[::-1] if self.kind == "reverse" else seq) + [EOS]

    def sample(self, n: int, generator: torch.Generator, length: int | None = None) -> list[list[int]]:
        lengths = (torch.full((n,), length) if length is not None
                   else torch.randint(self.min_len, self.max_len + 1, (n,), generator=generator))
        return [torch.randint(FIRST, FIRST + self.symbols, (int(k),), generator=generator).tolist() for k in lengths]


class PairDataset(Dataset):
    """Items as the shared collator expects them: input_ids, attention_mask, labels (ending in <eos>)."""

    def __init__(self, sources: list[list[int]], task: Task):
        self.sources = sources
        self.targets = [task.target(s) for s in sources]
        self.lengths = [len(s) + len(t) for s, t in zip(self.sources, self.targets)]

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.sources[i], "attention_mask": [1] * len(self.sources[i]), "labels": self.targets[i]}


def accuracy_by_length(model: LSTMSeq2Seq, task: Task, lengths: list[int], per_length: int, seed: int,
                       batch_size: int = 128) -> dict[int, tuple[float, float]]:
    """{length: (exact match, token accuracy)} on fresh sequences, greedy decoding."""
    g = torch.Generator().manual_seed(seed)
    result = {}
    for length in lengths:
        sources = task.sample(per_length, g, length)
        exact = tokens = 0
        for i in range(0, per_length, batch_size):
            chunk = sources[i : i + batch_size]
            src = torch.tensor(chunk)  # (B, length): all one length, no padding
            gen = model.greedy(src, torch.full((len(chunk),), length), max_len=length + 5)
            for seq, pred in zip(chunk, gen.tokens):
                gold = task.target(seq)[:-1]
                exact += pred == gold
                tokens += sum(p == t for p, t in zip(pred, gold)) / len(gold)
        result[length] = (exact / per_length, tokens / per_length)
    return result


def train_one(attention: str, task: Task, train: PairDataset, args: argparse.Namespace, workdir: Path):
    torch.manual_seed(args.seed)  # same initial embeddings and encoder weights for every kind
    cfg = LSTMConfig(vocab_size=FIRST + task.symbols, emb_dim=args.emb, hidden=args.hidden, layers=1,
                     bidirectional=True, dropout=0.0, attention=attention, pad_id=PAD, bos_id=BOS, eos_id=EOS,
                     max_len=task.max_len + 5, max_source_len=task.max_len)
    model = LSTMSeq2Seq(cfg)
    targs = TrainArgs(batch_size=args.batch_size, lr=args.lr, weight_decay=0.0, warmup=0.03, grad_clip=1.0,
                      max_steps=args.steps if not args.time_budget else 10**9, time_budget=args.time_budget,
                      seed=args.seed, log_every=100, num_threads=args.threads, progress=args.progress)
    started = time.perf_counter()
    result = fit(model, train, None, args=targs, out=workdir / attention, lengths=train.lengths)
    return model, result, time.perf_counter() - started


def plot(results: dict, lengths: list[int], task: Task, title_budget: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for attention, r in results.items():
        for ax, which in zip(axes, (0, 1)):
            ax.plot(lengths, [r["by_length"][n][which] for n in lengths], marker="o", label=attention)
    for ax, name in zip(axes, ("exact-match accuracy", "token accuracy")):
        ax.set_xlabel("input length (tokens)")
        ax.set_ylabel(name)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(title="attention")
    fig.suptitle(f"LSTM seq2seq, {task.kind} task, {task.symbols} symbols, lengths {task.min_len}–{task.max_len}: "
                 f"{title_budget}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=("reverse", "copy"), default="reverse")
    parser.add_argument("--kinds", default="none,bahdanau,luong-dot,luong-general",
                        help="comma-separated attention kinds to compare")
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps per model (the budget)")
    parser.add_argument("--time-budget", type=float, default=0.0, help="seconds per model instead of --steps")
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--min-len", type=int, default=5)
    parser.add_argument("--max-len", type=int, default=60)
    parser.add_argument("--train-size", type=int, default=50000)
    parser.add_argument("--eval-per-length", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=5, help="evaluate every this many lengths")
    parser.add_argument("--emb", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core box)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="show the training loop's progress")
    parser.add_argument("--out", type=Path, default=OUT / "attention_vs_length.png")
    args = parser.parse_args()

    task = Task(args.task, args.symbols, args.min_len, args.max_len)
    train = PairDataset(task.sample(args.train_size, torch.Generator().manual_seed(args.seed)), task)
    lengths = sorted({args.min_len, *range(args.eval_every, args.max_len + 1, args.eval_every)})
    budget = f"{args.time_budget:.0f} s each" if args.time_budget else f"{args.steps} steps × {args.batch_size} each"
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for attention in args.kinds.split(","):
            model, fit_result, seconds = train_one(attention, task, train, args, Path(tmp))
            by_length = accuracy_by_length(model, task, lengths, args.eval_per_length, seed=args.seed + 1)
            results[attention] = {"steps": fit_result.steps, "train_seconds": round(fit_result.train_seconds, 1),
                                  "parameters": model.num_parameters(), "by_length": by_length}
            print(f"{attention}: {fit_result.steps} steps in {fit_result.train_seconds:.0f} s, "
                  f"{model.num_parameters():,} parameters", flush=True)

    kinds = list(results)
    print(f"\n{task.kind}, {budget}; exact match / token accuracy by input length (greedy, "
          f"{args.eval_per_length} fresh sequences per length)")
    print("length " + " ".join(f"{k:>17}" for k in kinds))
    for n in lengths:
        print(f"{n:>6} " + " ".join(f"{results[k]['by_length'][n][0]:>8.2f} /{results[k]['by_length'][n][1]:>6.2f} "
                                    for k in kinds))
    plot(results, lengths, task, budget, args.out)
    summary = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "results": {k: {**r, "by_length": {str(n): v for n, v in r["by_length"].items()}}
                           for k, r in results.items()}}
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"\nwrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
