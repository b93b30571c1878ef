"""`malmoi demo`: train a small classifier on the bundled reviews, then label new sentences."""
from __future__ import annotations

import shutil
from pathlib import Path

import typer

from malmoi.errors import MalmoiError
from malmoi.cli.apps import app

NEW_REVIEWS = [
    "배우들 연기가 정말 좋았고 마지막 장면에서 눈물이 났어요",
    "시간 낭비였다 다시는 안 본다",
    "음악이 아름답고 여운이 오래 남는 영화",
    "스토리가 엉망이라 보는 내내 지루했음",
    "가족이랑 같이 보기 좋은 따뜻한 영화 추천합니다",
]
"""Sentences written for the demo; none of them is in the training samples."""
SENTIMENT = {"0": "부정 (negative)", "1": "긍정 (positive)"}


def _clear_old_demo(out: Path, data: Path) -> None:
    """The demo always starts fresh, but only ever deletes a run trained on the bundled samples."""
    if not out.exists():
        return
    from malmoi.runs import read_meta

    try:
        meta = read_meta(out)
    except MalmoiError:
        meta = {}
    if meta.get("data", {}).get("train") != str(data) and any(out.iterdir()):
        raise MalmoiError("E307", f"{out} exists and is not a demo run; choose another --out")
    shutil.rmtree(out)


@app.command(short_help="Train a small classifier on the bundled reviews and predict: malmoi demo")
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run directory (an old demo run there is replaced)."),
    time_budget: str = typer.Option("90s", "--time-budget", help="Upper bound on the training time."),
    preset: str = typer.Option("bert-tiny", "--preset", help="Model preset."),
) -> None:
    """Train a text classifier on malmoi's own 616 Korean movie reviews, then label five new ones.

    Example: malmoi demo --time-budget 60s --out runs/demo
    """
    from malmoi.cli.train import passive_openmp, summary_line

    passive_openmp()
    from rich.console import Console
    from rich.table import Table

    from malmoi.data.samples import sample_path
    from malmoi.tasks import train
    from malmoi.use import load

    console = Console()
    data = sample_path("reviews")
    _clear_old_demo(out, data)
    console.print(f"[bold]1. train[/bold] {preset} on {data.name} (document → label, 0 negative / 1 positive), "
                  f"at most {time_budget}")
    result = train(task="classify", data=data, text="document", label="label", out=out, preset=preset,
                   vocab_size=3000, epochs=10, batch_size=16, max_length=64, time_budget=time_budget, seed=0)
    console.print(summary_line(result))

    console.print(f"[bold]2. predict[/bold] with malmoi.load({str(out)!r}).predict([...])")
    predictions = load(out).predict(NEW_REVIEWS)
    table = Table()
    table.add_column("new review")
    table.add_column("label")
    table.add_column("p", justify="right")
    for p in predictions:
        table.add_row(p.text, SENTIMENT.get(p.label, p.label), f"{p.score:.3f}")
    console.print(table)
    console.print(f"try: malmoi predict {out} \"문장\"   ·   malmoi eval {out} --data {data}")
