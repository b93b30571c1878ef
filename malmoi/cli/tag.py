"""`malmoi train tag`, and how `malmoi eval` and `malmoi predict` print a tagger's results."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from malmoi.cli.apps import train_app
from malmoi.cli.options import options_command
from malmoi.cli.train import passive_openmp, print_result
from malmoi.tasks.tag import TagOptions


def summary_line(result) -> str:
    m = result.metrics
    nan = float("nan")
    return (f"entity F1 {m.get('entity_f1', nan):.4f} (precision {m.get('entity_precision', nan):.4f}, "
            f"recall {m.get('entity_recall', nan):.4f}) on {result.valid_examples} validation sentences; "
            f"{result.steps} steps ({result.stopped_by}), {result.seconds:.0f} s → {result.run}")


@options_command(train_app, TagOptions, "tag",
                 short_help="Named-entity tagger from tagged sentences: malmoi train tag --data ner/train.tsv "
                            "--out runs/ner")
def tag(
    options: dict,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Train a named-entity tagger (KLUE character format, CoNLL or JSONL; BIO or BIOES tags) into a run directory.

    Example: malmoi train tag --data ner/train.tsv --format klue --out runs/ner --time-budget 15m
    """
    passive_openmp()
    from malmoi.tasks import train

    print_result(train(task="tag", **options, progress=not as_json), as_json, summary_line)


def evaluate_tagger(run: Path, data: Path, format: str, batch_size: int, as_json: bool) -> None:
    """`malmoi eval` on a tagger run: entity scores per type and KLUE's character F1."""
    from malmoi.data.tagging import read_tagged
    from malmoi.use import load

    tagger = load(run)
    corpus = read_tagged(data, format)
    report = tagger.evaluate(corpus.sentences, batch_size=batch_size)
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]entity F1[/bold] {report.entity_f1:.4f}   precision {report.entity_precision:.4f}   "
                  f"recall {report.entity_recall:.4f}   [bold]character F1[/bold] {report.char_f1:.4f}   "
                  f"on {report.sentences} sentences, {report.entities} entities")
    table = Table(title="per entity type", title_justify="left")
    for name in ("type", "precision", "recall", "F1", "support"):
        table.add_column(name, justify="left" if name == "type" else "right")
    for kind, s in report.per_type.items():
        table.add_row(kind, f"{s.precision:.4f}", f"{s.recall:.4f}", f"{s.f1:.4f}", str(s.support))
    console.print(table)


def print_taggings(taggings, as_json: bool) -> None:
    """`malmoi predict` on a tagger run: each text's entities with their spans and types."""
    if as_json:
        print(json.dumps([{"text": t.text, "entities": [asdict(e) for e in t.entities]} for t in taggings],
                         ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for name in ("text", "entity", "type", "span", "score"):
        table.add_column(name, justify="right" if name == "score" else "left")
    for t in taggings:
        if not t.entities:
            table.add_row(t.text, "—", "", "", "")
        for i, e in enumerate(t.entities):
            table.add_row(t.text if i == 0 else "", e.text, e.type, f"{e.start}–{e.end}", f"{e.score:.3f}")
    Console().print(table)
