"""`malmoi compress`: a classifier run made smaller, with its accuracy before and after."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from malmoi.cli.apps import app


@app.command("compress", short_help="Make a classifier run smaller: malmoi compress runs/reviews --target-size 10MB")
def compress(
    run: Path = typer.Argument(..., help="A classifier run directory."),
    target_size: Optional[str] = typer.Option(None, "--target-size",
                                              help="Largest model file wanted: 10MB (10^6 bytes), 800KB, 1GiB."),
    bits: Optional[int] = typer.Option(None, "--bits", help="Bits per stored weight: 16, 8 or 4 (32 = as trained)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the compressed run here instead of in place."),
    data: Optional[Path] = typer.Option(None, "--data",
                                        help="The run's training file, if it has moved: its validation split "
                                             "measures accuracy before and after."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of lines."),
) -> None:
    """Keep an n-gram classifier's table rows that matter, quantized, or store an encoder's weights
    at fewer bits; report size and validation accuracy before and after. In place unless --out.
    Given neither --target-size nor --bits, an n-gram run is compacted as training compacts it: the
    fewest rows (a tenth at least), at 4 bits, whose validation accuracy stays within 0.15 points.

    Example: malmoi compress runs/reviews --target-size 10MB --out runs/reviews-small
    """
    from malmoi.cli.train import passive_openmp

    passive_openmp()
    from malmoi.tasks.common import stderr_say
    from malmoi.use.compress import compress as compress_run, describe

    result = compress_run(run, target_size=target_size, bits=bits, out=out, data=data, say=stderr_say)
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    for line in describe(result):
        print(line)
