"""`malmoi train classify`: parse, call ``tasks.train``, print a summary."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Optional

import typer

from malmoi.cli import train_app


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


@train_app.command(short_help="Text classifier from a labelled table: malmoi train classify --data reviews.tsv "
                              "--text document --label label --out runs/reviews")
def classify(
    data: Path = typer.Option(..., "--data", help="Training file (CSV, TSV or JSONL with a header)."),
    text: str = typer.Option(..., "--text", help="Column holding the text."),
    label: str = typer.Option(..., "--label", help="Column holding the label."),
    out: Path = typer.Option(..., "--out", help="Run directory to create (refused if it exists, unless --resume)."),
    valid: Optional[Path] = typer.Option(None, "--valid", help="Validation file with the same columns."),
    valid_split: float = typer.Option(0.1, "--valid-split", help="Without --valid: fraction of each class held out."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Model trained from scratch: ngram (default: "
                                                               "hashed n-grams, the most accurate on CPU), ngram-small, "
                                                               "bert-tiny, bert-mini (the default with --tokenizer)."),
    pretrained: Optional[Path] = typer.Option(None, "--pretrained", help="Local Hugging Face encoder folder to "
                                                                         "fine-tune (its tokenizer comes along)."),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="Tokenizer folder; without it WordPiece is "
                                                                       "trained on the training texts."),
    vocab_size: int = typer.Option(8000, "--vocab-size", help="Vocabulary of the WordPiece tokenizer trained here."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Passes over the training data [default: the "
                                                                "preset's; 3 for transformers]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Examples per batch [default: the preset's; "
                                                                       "32 for transformers]."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate [default: 5e-4 from scratch, "
                                                          "5e-5 pretrained, the preset's for ngram]."),
    max_length: int = typer.Option(128, "--max-length", help="Tokens per text; longer texts are truncated."),
    time_budget: str = typer.Option("0", "--time-budget", help="Stop after this long: 90s, 10m, 1h (0 = no limit)."),
    eval_every: int = typer.Option(0, "--eval-every", help="Evaluate every N steps (0 = each epoch)."),
    patience: int = typer.Option(0, "--patience", help="Stop after N evaluations without improvement (0 = off)."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Batches per optimizer step."),
    bf16: bool = typer.Option(False, "--bf16", help="bfloat16 autocast."),
    seed: int = typer.Option(42, "--seed", help="Seed for weights, data order and the validation split."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Train a text classifier into a run directory (model, tokenizer, malmoi.json, metrics.jsonl, curve.png).

    Example: malmoi train classify --data reviews.tsv --text document --label label --preset bert-mini --out runs/reviews
    """
    passive_openmp()
    from malmoi.tasks import train

    result = train(
        task="classify", data=data, text=text, label=label, out=out, valid=valid, valid_split=valid_split,
        preset=preset, pretrained=pretrained, tokenizer=tokenizer, vocab_size=vocab_size, epochs=epochs,
        batch_size=batch_size, lr=lr, max_length=max_length, time_budget=time_budget, eval_every=eval_every,
        patience=patience, grad_accum=grad_accum, bf16=bf16, seed=seed, resume=resume, progress=not as_json,
    )
    print_result(result, as_json)
