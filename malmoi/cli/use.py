"""`malmoi eval` and `malmoi predict`: use a trained run directory (a classifier; for a tagger and a
question-answering run ``cli.tag`` and ``cli.qa`` print the results)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from malmoi.errors import MalmoiError
from malmoi.cli.apps import app


def _task(run: Path, tasks: tuple[str, ...]) -> tuple[str, dict]:
    """(task, malmoi.json) of a run this command works on."""
    from malmoi.cli.train import passive_openmp

    passive_openmp()
    from malmoi.runs import read_meta

    meta = read_meta(run)
    if meta.get("task") not in tasks:
        raise MalmoiError("E409", f"{run} holds a {meta.get('task')!r} model; this command works on "
                                  f"{', '.join(tasks)} runs")
    return meta["task"], meta


def _print_evaluation(evaluation, skipped: int) -> None:
    from rich.console import Console
    from rich.table import Table

    report = evaluation.report
    console = Console()
    console.print(f"[bold]accuracy[/bold] {report.accuracy:.4f}   [bold]macro-F1[/bold] {report.macro_f1:.4f}   "
                  f"on {report.total} examples" + (f" ({skipped} empty skipped)" if skipped else ""))
    per_class = Table(title="per class", title_justify="left")
    for name in ("label", "precision", "recall", "F1", "support"):
        per_class.add_column(name, justify="left" if name == "label" else "right")
    for c in report.per_class:
        per_class.add_row(c.label, f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}", str(c.support))
    console.print(per_class)
    confusion = Table(title="confusion matrix (rows: gold, columns: predicted)", title_justify="left")
    confusion.add_column("gold \\ predicted")
    for lab in report.labels:
        confusion.add_column(lab, justify="right")
    for lab, row in zip(report.labels, report.confusion):
        confusion.add_row(lab, *map(str, row))
    console.print(confusion)
    if evaluation.errors:
        errors = Table(title=f"{len(evaluation.errors)} most confident mistakes", title_justify="left")
        for name in ("text", "gold", "predicted", "p"):
            errors.add_column(name, justify="right" if name == "p" else "left")
        for e in evaluation.errors:
            errors.add_row(e.text, e.gold, e.predicted, f"{e.score:.3f}")
        console.print(errors)


@app.command("eval", short_help="Score a classifier, tagger or reader on labelled data: malmoi eval runs/reviews "
                                "--data test.tsv")
def evaluate(
    run: Path = typer.Argument(..., help="A run directory."),
    data: Path = typer.Option(..., "--data", help="Labelled file: CSV, TSV or JSONL for a classifier; tagged "
                                                  "sentences for a tagger; SQuAD JSON for question answering."),
    format: str = typer.Option("auto", "--format", help="A tagger's file format: klue, conll, jsonl or auto."),
    text: Optional[str] = typer.Option(None, "--text", help="Text column [default: the run's]."),
    label: Optional[str] = typer.Option(None, "--label", help="Label column [default: the run's]."),
    source: Optional[str] = typer.Option(None, "--source", help="A text generator's input column "
                                                                "[default: the run's]."),
    target: Optional[str] = typer.Option(None, "--target", help="A text generator's reference column "
                                                                "[default: the run's]."),
    errors: int = typer.Option(0, "--errors", help="Show this many misclassified examples, most confident first."),
    batch_size: int = typer.Option(64, "--batch-size", help="Texts per forward pass."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Scores of a trained run on labelled data. A classifier: accuracy, macro-F1, per-class
    precision/recall and the confusion matrix. A tagger: entity precision/recall/F1 (exact span and
    type), per type, and KLUE's character F1. A reader (qa): exact match and F1 as KorQuAD computes them.
    A text generator (seq2seq, a chat lm): BLEU, chrF, ROUGE-L on characters and exact match of its
    answers to the sources against the targets.

    Example: malmoi eval runs/reviews --data test.tsv --errors 5
    Example: malmoi eval runs/summary --data test.tsv --errors 3
    """
    from malmoi.data.readers import read_labelled

    if errors < 0:
        raise MalmoiError("E232", f"--errors must be >= 0, got {errors}")
    if batch_size < 1:
        raise MalmoiError("E223", f"--batch-size must be >= 1, got {batch_size}")
    task, meta = _task(run, ("classify", "tag", "qa", "seq2seq", "lm"))
    if task in ("seq2seq", "lm"):
        from malmoi.cli.seq2seq import evaluate_generator

        return evaluate_generator(run, meta, data, source, target, errors, as_json)
    if task == "tag":
        from malmoi.cli.tag import evaluate_tagger

        return evaluate_tagger(run, data, format, batch_size, as_json)
    if task == "qa":
        from malmoi.cli.qa import evaluate_qa

        return evaluate_qa(run, data, as_json, batch_size)
    from malmoi.use import load

    classifier = load(run)
    columns = meta.get("columns", {})
    labelled = read_labelled(data, text or columns.get("text", "text"), label or columns.get("label", "label"),
                             allowed=classifier.labels)
    evaluation = classifier.evaluate(labelled.texts, labelled.labels, errors=errors, batch_size=batch_size)
    if as_json:
        print(json.dumps({**evaluation.to_dict(), "skipped_empty": labelled.skipped_empty}, ensure_ascii=False))
    else:
        _print_evaluation(evaluation, labelled.skipped_empty)


@app.command(short_help='Label new texts, or find their entities: malmoi predict runs/reviews "정말 재밌어요"')
def predict(
    run: Path = typer.Argument(..., help="A run directory (a classifier or a tagger)."),
    texts: Optional[List[str]] = typer.Argument(None, help="Texts to classify or tag."),
    file: Optional[Path] = typer.Option(None, "--file", help="Classify every line of a text file (or a column)."),
    column: Optional[str] = typer.Option(None, "--column", help="With --file on a table: the text column."),
    batch_size: int = typer.Option(64, "--batch-size", help="Texts per forward pass."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The most probable label and the softmax probabilities of every label, for each text; for a
    tagger run, the entities of each text with their character spans and types.

    Example: malmoi predict runs/reviews "배우들 연기가 최고" "시간 아까움"
    Example: malmoi predict runs/ner "이순신은 1545년 한성에서 태어났다" --json
    """
    from malmoi.data.readers import read_texts

    if batch_size < 1:
        raise MalmoiError("E223", f"--batch-size must be >= 1, got {batch_size}")
    inputs = list(texts or [])
    if file is not None:
        inputs += read_texts(file, column)
    if not inputs:
        raise MalmoiError("E233", 'nothing to predict: give texts (malmoi predict RUN "문장") or --file FILE')
    task, _ = _task(run, ("classify", "tag"))
    from malmoi.use import load

    loaded = load(run)
    if task == "tag":
        from malmoi.cli.tag import print_taggings

        return print_taggings(loaded.tag(inputs, batch_size=batch_size), as_json)
    classifier = loaded
    predictions = classifier.predict(inputs, batch_size=batch_size)
    if as_json:
        print(json.dumps([p.__dict__ for p in predictions], ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    table.add_column("text")
    table.add_column("label")
    for lab in classifier.labels:
        table.add_column(f"p({lab})", justify="right")
    for p in predictions:
        table.add_row(p.text, p.label, *(f"{p.probabilities[lab]:.3f}" for lab in classifier.labels))
    Console().print(table)
