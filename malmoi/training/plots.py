"""Pictures of runs: the training curve (``curve.png``) drawn from ``metrics.jsonl``.

matplotlib is imported lazily with the Agg backend, so plotting works without a display and
costs nothing for code that never plots.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The events of a ``metrics.jsonl``; a line cut short by a crash is skipped."""
    records = []
    path = Path(path)
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curve(metrics: str | os.PathLike | Iterable[dict], out: str | os.PathLike,
               metric: str = "loss") -> Path:
    """Training loss (and validation loss) against the step on the left axis; the validation
    ``metric`` on the right axis when it is not the loss. Written atomically to ``out``."""
    from malmoi.files import atomic_write_bytes
    import io

    records = read_metrics(metrics) if isinstance(metrics, (str, os.PathLike)) else list(metrics)
    train = [(r["step"], r["loss"]) for r in records if r.get("event") == "train" and "loss" in r]
    evals = [r for r in records if r.get("event") == "eval"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", color="tab:blue", linewidth=1)
    valid_loss = [(r["step"], r["loss"]) for r in evals if "loss" in r]
    if valid_loss:
        ax.plot(*zip(*valid_loss), "o-", label="valid loss", color="tab:orange", markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    handles, labels = ax.get_legend_handles_labels()
    values = [(r["step"], r[metric]) for r in evals if metric != "loss" and metric in r]
    if values:
        right = ax.twinx()
        right.plot(*zip(*values), "s-", label=f"valid {metric}", color="tab:green", markersize=3)
        right.set_ylabel(metric)
        more_h, more_l = right.get_legend_handles_labels()
        handles, labels = handles + more_h, labels + more_l
    if handles:
        ax.legend(handles, labels, loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    out = Path(out)
    atomic_write_bytes(out, buf.getvalue())
    return out
