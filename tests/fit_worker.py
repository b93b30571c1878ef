"""A tiny learnable classification task for testing the training loop, in-process or as a script.

As a script it trains the toy model with ``fit`` (optionally under torchrun) and writes what
the tests check into ``--report``:

    python tests/fit_worker.py OUT --report DIR [--resume] [--delay S] [--audit] [--sparse] [--set FIELD=JSON]
    torchrun --nproc_per_node 2 tests/fit_worker.py OUT --report DIR --audit
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from malmoi.data.batching import PadCollator  # noqa: E402
from malmoi.training.args import TrainArgs
from malmoi.training.loop import fit
from malmoi.training.checkpoints import load_weights  # noqa: E402

VOCAB = 40


@dataclass
class ToyOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor


class ToyClassifier(nn.Module):
    """Mean of token embeddings → LayerNorm → dropout → linear; ``delay`` slows each forward."""

    def __init__(self, dim: int = 16, classes: int = 2, delay: float = 0.0, tied: bool = False,
                 sparse: bool = False):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, dim, padding_idx=0, sparse=sparse)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(dim, classes)
        self.delay = delay
        self.tied = tied
        if tied:  # an extra LM-style output sharing the embedding matrix, to test tied weights
            self.out = nn.Linear(dim, VOCAB, bias=False)
            self.out.weight = self.emb.weight

    def forward(self, input_ids, attention_mask, labels=None):
        if self.delay:
            time.sleep(self.delay)
        mask = attention_mask.unsqueeze(-1).float()  # (B, T, 1)
        pooled = (self.emb(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, D)
        logits = self.head(self.drop(self.norm(pooled)))  # (B, C)
        if self.tied:
            logits = logits + 0 * self.out(pooled).sum()  # keeps the tied path in the graph
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return ToyOutput(loss, logits)


def toy_data(n: int, seed: int) -> list[dict]:
    """Label 1 texts use the lower half of the vocabulary, label 0 the upper half (one stray token)."""
    g = torch.Generator().manual_seed(seed)
    half = VOCAB // 2
    items = []
    for _ in range(n):
        length = int(torch.randint(2, 12, (1,), generator=g))
        label = int(torch.randint(0, 2, (1,), generator=g))
        ids = (torch.randint(1, half, (length,), generator=g) + (0 if label else half - 1)).tolist()
        ids[0] = int(torch.randint(1, VOCAB, (1,), generator=g))
        items.append({"input_ids": ids, "attention_mask": [1] * length, "labels": label})
    return items


def accuracy(model, loader) -> dict[str, float]:
    right = total = 0
    loss = 0.0
    for batch in loader:
        out = model(**batch)
        right += int((out.logits.argmax(-1) == batch["labels"]).sum())
        total += len(batch["labels"])
        loss += float(out.loss) * len(batch["labels"])
    return {"accuracy": right / total, "loss": loss / total}


def weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def export_weights(model: nn.Module, folder: Path) -> None:
    from safetensors.torch import save_model

    save_model(model, str(Path(folder) / "exported.safetensors"))


def default_args(**overrides) -> TrainArgs:
    base = dict(epochs=3, batch_size=8, lr=5e-2, eval_every=7, log_every=5, seed=3, num_threads=1,
                progress=False, grad_accum=2)
    base.update(overrides)
    return TrainArgs(**base)


def failing_evaluation(model, loader):
    raise ValueError("evaluation broke")


def train(out, resume: bool = False, delay: float = 0.0, model_seed: int = 0, evaluate=accuracy,
          sparse: bool = False, **overrides):
    torch.manual_seed(model_seed)
    model = ToyClassifier(delay=delay, sparse=sparse)
    train_set, valid_set = toy_data(90, 1), toy_data(30, 2)
    result = fit(model, train_set, valid_set, args=default_args(**overrides), out=out, collate=PadCollator(), evaluate=evaluate, export=export_weights, metric="accuracy", maximize=True, resume=resume, lengths=[len(x["input_ids"]) for x in train_set])
    return model, result


def _audit_writes(out: Path, log: list) -> None:
    """Record every file-system write under ``out`` made by this process."""
    root = str(out.resolve())

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, os.PathLike)):
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            writing = any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            if writing and os.path.abspath(args[0]).startswith(root):
                log.append([event, str(args[0])])
        elif event in ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree"):
            if args and os.path.abspath(str(args[0])).startswith(root):
                log.append([event, str(args[0])])

    sys.addaudithook(hook)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--audit", action="store_true")
    parser.add_argument("--fail-eval", action="store_true", help="evaluation raises (on the main process)")
    parser.add_argument("--sparse", action="store_true", help="sparse embedding gradients (LazyAdamW)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                        help="override a TrainArgs field, e.g. --set time_budget=0.5")
    opts = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in opts.set)}
    writes: list = []
    if opts.audit:
        _audit_writes(opts.out, writes)
    evaluate = failing_evaluation if opts.fail_eval else accuracy
    model, result = train(opts.out, resume=opts.resume, delay=opts.delay, evaluate=evaluate, sparse=opts.sparse,
                          **overrides)
    rank = int(os.environ.get("RANK", "0"))
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    opts.report.mkdir(parents=True, exist_ok=True)
    last = ToyClassifier()
    load_weights(opts.out / "checkpoints" / "last", last)
    report = {"rank": rank, "world_size": world, "digest": weights_digest(model), "writes": writes,
              "last_digest": weights_digest(last),
              "steps": result.steps, "stopped_by": result.stopped_by}
    (opts.report / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
