"""`malmoi data download` (public corpora, checksummed) and `malmoi data samples` (the bundled ones)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from malmoi.cli.apps import data_app


@data_app.command("download")
def download_cmd(
    corpus: str = typer.Argument(..., help="Which corpus: nsmc or chatbot."),
    to: Optional[Path] = typer.Option(None, "--to", help="Target folder (default: data/CORPUS)."),
    base: Optional[str] = typer.Option(None, "--base", help="Base URL of a mirror (default: $MALMOI_DOWNLOAD_BASE "
                                                            "or https://raw.githubusercontent.com)."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for the server."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Download a public corpus, verify its checksums, and print where the files are.

    Example: malmoi data download nsmc --to data/nsmc
    """
    from malmoi.data.download import CORPORA, download

    folder = to if to is not None else Path("data") / corpus
    results = download(corpus, folder, base=base, timeout=timeout, progress=not as_json)
    if as_json:
        print(json.dumps({"corpus": corpus, "files": [r.to_json() for r in results]}, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    spec = CORPORA[corpus]
    table = Table(title=f"{corpus}: {spec.description}", title_justify="left")
    for col in ("file", "status", "bytes", "path"):
        table.add_column(col, justify="right" if col == "bytes" else "left")
    for r in results:
        table.add_row(r.name, r.status, f"{r.size:,}", str(r.path))
    console = Console()
    console.print(table)
    console.print(f"licence: {spec.licence}")
    if spec.example:
        console.print(f"next: {spec.example.format(to=folder)}", soft_wrap=True)


@data_app.command("samples")
def samples_cmd(as_json: bool = typer.Option(False, "--json", help="Print the paths as JSON.")):
    """List the Korean sample files bundled with malmoi (what `make demo` trains on).

    Example: malmoi data samples
    """
    from malmoi.data.samples import SAMPLES, sample_path

    paths = {name: str(sample_path(name)) for name in SAMPLES}
    if as_json:
        print(json.dumps(paths, ensure_ascii=False))
        return
    for name, path in paths.items():
        print(f"{name}\t{path}")
