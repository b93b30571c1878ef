"""`malmoi train classify`: parse, call ``tasks.train``, print a summary; the flags are the fields of
``ClassifyOptions`` (``cli.options``)."""
from __future__ import annotations

import json
import os
from typing import Callable

import typer

from malmoi.cli.apps import train_app
from malmoi.cli.options import options_command
from malmoi.tasks.classify import ClassifyOptions


def passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spin (unless the user chose): on a machine busy with
    other work, spinning threads made each training step many times slower (the demo: 49 against
    677 samples/s at load 4 on 2 cores). Takes effect because torch is first imported after this."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def summary_line(result) -> str:
    """One line: the exported model's validation scores, how long, where."""
    m = result.metrics
    scores = f"accuracy {m['accuracy']:.4f} (macro-F1 {m.get('macro_f1', float('nan')):.4f})" if "accuracy" in m \
        else " ".join(f"{k} {v:.4f}" for k, v in m.items())
    return (f"{scores} on {result.valid_examples} validation examples; {result.steps} steps "
            f"({result.stopped_by}), {result.samples_per_s:.0f} samples/s, {result.seconds:.0f} s → {result.run}")


def print_result(result, as_json: bool, summary: Callable = summary_line) -> None:
    """What a training command prints: the result as JSON, or ``summary(result)``; under torchrun
    only rank 0 prints, so the output is one result."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    print(json.dumps(result.to_dict(), ensure_ascii=False) if as_json else summary(result))


@options_command(train_app, ClassifyOptions, "classify",
                 short_help="Text classifier from a labelled table: malmoi train classify --data reviews.tsv "
                            "--text document --label label --out runs/reviews")
def classify(
    options: dict,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Train a text classifier into a run directory (model, tokenizer, malmoi.json, metrics.jsonl, curve.png).

    Example: malmoi train classify --data reviews.tsv --text document --label label --preset bert-mini --out runs/reviews
    """
    passive_openmp()
    from malmoi.tasks import train

    print_result(train(task="classify", **options, progress=not as_json), as_json)
