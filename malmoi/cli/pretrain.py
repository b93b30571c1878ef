"""`malmoi pretrain mlm`: parse, call ``pretraining.pretrain``, print a summary."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from malmoi.cli import pretrain_app
from malmoi.cli.train import print_result


def summary_line(result) -> str:
    """One line: the exported model's validation scores, how long, where."""
    m = result.metrics
    scores = (f"masked-token accuracy {m['accuracy']:.4f}, loss {m['loss']:.4f} (perplexity {m['perplexity']:.1f})"
              if "accuracy" in m else " ".join(f"{k} {v:.4f}" for k, v in m.items()))
    return (f"{scores} on {result.valid_examples} validation texts; {result.steps} steps "
            f"({result.stopped_by}), {result.samples_per_s:.0f} blocks/s, {result.seconds:.0f} s → {result.run}")


@pretrain_app.command(short_help="BERT encoder by masked-language modelling: malmoi pretrain mlm --data "
                                 "unlabeled.txt --preset bert-mini --out runs/mlm")
def mlm(
    data: Path = typer.Option(..., "--data", help="Text file (one document per line) or a table with --column."),
    out: Path = typer.Option(..., "--out", help="Run directory to create (refused if it exists, unless --resume)."),
    column: Optional[str] = typer.Option(None, "--column", help="Column holding the text when --data is a table."),
    preset: str = typer.Option("bert-mini", "--preset", help="BERT preset: bert-tiny, bert-mini."),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="Tokenizer folder; without it WordPiece is "
                                                                       "trained on the texts."),
    vocab_size: int = typer.Option(8000, "--vocab-size", help="Vocabulary of the WordPiece tokenizer trained here."),
    morphemes: bool = typer.Option(False, "--morphemes", help="Train that WordPiece over Kiwi morphemes."),
    max_length: int = typer.Option(128, "--max-length", help="Tokens per block of packed documents."),
    no_pack: bool = typer.Option(False, "--no-pack", help="One (truncated) document per block instead of packing."),
    valid_split: float = typer.Option(0.02, "--valid-split", help="Fraction of the texts held out (at most "
                                                                  "--max-valid)."),
    max_valid: int = typer.Option(2000, "--max-valid", help="At most this many held-out texts."),
    mlm_probability: float = typer.Option(0.15, "--mlm-probability", help="Fraction of tokens to predict."),
    epochs: int = typer.Option(3, "--epochs", help="Passes over the training texts."),
    batch_size: int = typer.Option(32, "--batch-size", help="Blocks per batch."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate [default: 5e-4]."),
    warmup: float = typer.Option(0.06, "--warmup", help="Fraction of the steps spent warming the learning rate up."),
    time_budget: str = typer.Option("0", "--time-budget", help="Stop after this long: 90s, 10m, 1h (0 = no limit)."),
    eval_every: int = typer.Option(0, "--eval-every", help="Evaluate and checkpoint every N steps (0 = each epoch)."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Batches per optimizer step."),
    bf16: bool = typer.Option(False, "--bf16", help="bfloat16 autocast."),
    seed: int = typer.Option(42, "--seed", help="Seed for weights, masking, data order and the held-out split."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Pretrain a BERT encoder on unlabelled text into a run directory that `train classify --pretrained` fine-tunes.

    Example: malmoi pretrain mlm --data unlabeled.txt --preset bert-mini --time-budget 30m --out runs/mlm
    """
    from malmoi.tasks import train

    result = train(
        task="mlm",
        data=data, out=out, column=column, preset=preset, tokenizer=tokenizer, vocab_size=vocab_size,
        morphemes=morphemes, max_length=max_length, pack=not no_pack, valid_split=valid_split,
        max_valid=max_valid, mlm_probability=mlm_probability, epochs=epochs, batch_size=batch_size, lr=lr,
        warmup=warmup, time_budget=time_budget, eval_every=eval_every, grad_accum=grad_accum, bf16=bf16,
        seed=seed, resume=resume, progress=not as_json,
    )
    print_result(result, as_json, summary_line)
