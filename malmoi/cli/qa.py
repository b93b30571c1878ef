"""`malmoi train qa` and `malmoi answer`: parse, call the library, print; the training flags are the
fields of ``QAOptions`` (``cli.options``). ``evaluate_qa`` is what ``malmoi eval`` runs on a qa run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from malmoi.cli.apps import app, train_app
from malmoi.cli.options import options_command
from malmoi.cli.train import passive_openmp, print_result
from malmoi.errors import MalmoiError
from malmoi.tasks.qa import QAOptions


def summary_line(result) -> str:
    """One line: the exported model's validation scores, how long, where."""
    m = result.metrics
    scores = (f"exact match {m['exact_match']:.4f}, F1 {m['f1']:.4f}" if "f1" in m
              else " ".join(f"{k} {v:.4f}" for k, v in m.items()))
    return (f"{scores} on {result.valid_examples} validation questions; {result.steps} steps "
            f"({result.stopped_by}), {result.samples_per_s:.0f} windows/s, {result.seconds:.0f} s → {result.run}")


@options_command(train_app, QAOptions, "qa",
                 short_help="Extractive question answering from SQuAD/KorQuAD JSON: malmoi train qa "
                            "--data korquad.json --out runs/qa")
def qa(
    options: dict,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Train an extractive question-answering model (SQuAD v1.1 / KorQuAD 1.0 JSON) into a run directory.

    Example: malmoi train qa --data KorQuAD_v1.0_train.json --valid-split-by-article 0.2 --time-budget 15m --out runs/qa
    """
    passive_openmp()
    from malmoi.tasks import train

    print_result(train(task="qa", **options, progress=not as_json), as_json, summary_line)


def _answerer(run: Path):
    passive_openmp()
    from malmoi.use.qa import QuestionAnswerer

    return QuestionAnswerer.from_run(run)


@app.command(short_help='Answer questions from a context: malmoi answer runs/qa --context "…" "질문"')
def answer(
    run: Path = typer.Argument(..., help="A qa run directory."),
    questions: Optional[List[str]] = typer.Argument(None, help="Questions about the context."),
    context: Optional[str] = typer.Option(None, "--context", help="The text to find the answers in."),
    context_file: Optional[Path] = typer.Option(None, "--context-file", help="Read the context from a UTF-8 file."),
    batch_size: int = typer.Option(32, "--batch-size", help="Windows per forward pass."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The answer span of each question in the context: its text, characters [start, end) and score.

    Example: malmoi answer runs/qa --context "세종은 1418년에 즉위하였다." "세종이 즉위한 해는?"
    """
    from malmoi.data.readers import _read_text

    if (context is None) == (context_file is None):
        raise MalmoiError("E492", "give the context with --context TEXT or --context-file FILE (one of them)")
    text = context if context is not None else _read_text(context_file)
    if not questions:
        raise MalmoiError("E492", 'no question: malmoi answer RUN --context "…" "질문"')
    answers = _answerer(run).answer(list(questions), text, batch_size=batch_size)
    if as_json:
        print(json.dumps([a.to_dict() for a in answers], ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for name in ("question", "answer", "start", "end", "score"):
        table.add_column(name, justify="right" if name in ("start", "end", "score") else "left")
    for a in answers:
        table.add_row(a.question, a.text, str(a.start), str(a.end), f"{a.score:.3f}")
    Console().print(table)


def evaluate_qa(run: Path, data: Path, as_json: bool, batch_size: int) -> None:
    """Print the exact match and KorQuAD F1 of a qa run on a SQuAD v1.1 file (a table, or JSON with
    fractions: ``{"exact_match", "f1", "questions"}``)."""
    from malmoi.data.squad import examples_of, read_squad

    if batch_size < 1:
        raise MalmoiError("E223", f"--batch-size must be >= 1, got {batch_size}")
    examples = examples_of(read_squad(data))
    scores = _answerer(run).evaluate(examples, batch_size=batch_size)
    if as_json:
        print(json.dumps(scores.to_dict()))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for name in ("exact match", "F1", "questions"):
        table.add_column(name, justify="right")
    table.add_row(f"{scores.exact_match:.4f}", f"{scores.f1:.4f}", str(scores.questions))
    Console().print(table)
