"""`malmoi train lm`: parse, call ``lm.train_lm``, print a summary.

``print_generations`` is the body of ``malmoi generate`` once sampling and streaming options are
parsed: runs whose generator has ``stream`` / sampling (language models) take them all, others
(the LSTM seq2seq) take beams and a length only.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import typer

from malmoi.errors import MalmoiError
from malmoi.cli import train_app
from malmoi.cli.train import print_result


def summary_line(result) -> str:
    """One line: the exported model's validation scores, how long, where."""
    m = result.metrics
    return (f"loss {m.get('loss', float('nan')):.4f} perplexity {m.get('perplexity', float('nan')):.2f} on "
            f"{result.valid_examples} validation texts; {result.steps} steps ({result.stopped_by}), "
            f"{result.samples_per_s:.0f} blocks/s, {result.seconds:.0f} s → {result.run}")


@train_app.command(short_help="GPT-style language model on plain text: malmoi train lm --data corpus.txt "
                              "--preset gpt-mini --out runs/gpt")
def lm(
    data: Path = typer.Option(..., "--data", help="Text file (one document per line) or a CSV/TSV/JSONL table."),
    out: Path = typer.Option(..., "--out", help="Run directory to create (refused if it exists, unless --resume)."),
    column: Optional[str] = typer.Option(None, "--column", help="Column holding the text when --data is a table."),
    preset: str = typer.Option("gpt-mini", "--preset", help="GPT-2 preset: gpt-mini."),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="Tokenizer folder; without it BPE is "
                                                                       "trained on the training texts."),
    vocab_size: int = typer.Option(8000, "--vocab-size", help="Vocabulary of the BPE tokenizer trained here."),
    block_size: int = typer.Option(128, "--block-size", help="Tokens per training block (documents are packed)."),
    valid_split: float = typer.Option(0.05, "--valid-split", help="Fraction of the documents held out."),
    sample_prompt: Optional[str] = typer.Option(None, "--sample-prompt", help="Prompt continued after each "
                                                                              "evaluation."),
    epochs: int = typer.Option(3, "--epochs", help="Passes over the training data."),
    batch_size: int = typer.Option(32, "--batch-size", help="Blocks per batch."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate [default: 1e-3]."),
    time_budget: str = typer.Option("0", "--time-budget", help="Stop after this long: 90s, 10m, 1h (0 = no limit)."),
    eval_every: int = typer.Option(0, "--eval-every", help="Evaluate every N steps (0 = each epoch)."),
    patience: int = typer.Option(0, "--patience", help="Stop after N evaluations without improvement (0 = off)."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Batches per optimizer step."),
    bf16: bool = typer.Option(False, "--bf16", help="bfloat16 autocast."),
    seed: int = typer.Option(42, "--seed", help="Seed for weights, data order and the validation split."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Train a causal language model (GPT-2 preset) into a run directory; validation reports the loss
    per token and perplexity on held-out documents and continues a sample prompt.

    Example: malmoi train lm --data corpus.txt --preset gpt-mini --out runs/gpt --time-budget 10m
    """
    from malmoi.tasks import train

    result = train(
        task="lm",
        data=data, out=out, column=column, preset=preset, tokenizer=tokenizer, vocab_size=vocab_size,
        block_size=block_size, valid_split=valid_split, sample_prompt=sample_prompt, epochs=epochs,
        batch_size=batch_size, lr=lr, time_budget=time_budget, eval_every=eval_every, patience=patience,
        grad_accum=grad_accum, bf16=bf16, seed=seed, resume=resume, progress=not as_json,
    )
    print_result(result, as_json, summary_line)


def print_generations(generator, texts: Sequence[str], *, beams: int = 1, max_new_tokens: int | None = None,
                      greedy: bool = False, top_k: int | None = None, top_p: float | None = None,
                      temperature: float | None = None, repetition_penalty: float | None = None,
                      seed: int | None = None, stream: bool = False, as_json: bool = False) -> None:
    """What ``malmoi generate`` prints for ``texts`` with ``generator`` (from ``load_generator``)."""
    sampling = {k: v for k, v in dict(top_k=top_k, top_p=top_p, temperature=temperature,
                                      repetition_penalty=repetition_penalty, seed=seed).items() if v is not None}
    if greedy:
        sampling["greedy"] = True
    if (sampling or stream) and not hasattr(generator, "stream"):
        raise MalmoiError("E275", "this run generates greedily or with --beams only; sampling options, --seed, "
                                  "--repetition-penalty and --stream need a language-model run")
    prefix = getattr(generator, "continues_prompt", False)
    if stream:
        if as_json:
            raise MalmoiError("E275", "--stream prints text as it comes; leave out --json")
        for text in texts:
            print(text if prefix else (f"{text}\t" if len(texts) > 1 else ""), end="", flush=True)
            for piece in generator.stream(text, beams=beams, max_new_tokens=max_new_tokens, **sampling):
                sys.stdout.write(piece)
                sys.stdout.flush()
            print()
        return
    answers = generator.generate(texts, beams=beams, max_new_tokens=max_new_tokens, **sampling)
    if as_json:
        print(json.dumps([a.__dict__ for a in answers], ensure_ascii=False))
        return
    for a in answers:
        if prefix:
            print(a.source + a.text)
        else:
            print(a.text if len(answers) == 1 else f"{a.source}\t{a.text}")
