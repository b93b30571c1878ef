"""`malmoi similar` and `malmoi embeddings`: what a trained run's vectors say about sentences and tokens."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from malmoi.cli.apps import app


def _load(run: Path):
    from malmoi.cli.train import passive_openmp

    passive_openmp()  # before torch is imported: idle OpenMP threads sleep on a busy machine
    from malmoi.use import load

    return load(run)


@app.command(short_help='How alike two sentences are to a run: malmoi similar runs/lm "영화 최고" "정말 재밌다"')
def similar(
    run: Path = typer.Argument(..., help="A run directory (BERT, GPT, MLM, LSTM or BART)."),
    a: str = typer.Argument(..., help="Sentence A."),
    b: str = typer.Argument(..., help="Sentence B."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """The cosine of the two sentences' mean-pooled final hidden states (padding and [CLS]/[SEP] left
    out), and which states and tokens were pooled.

    Example: malmoi similar runs/lm "영화가 정말 재밌다" "이 영화 최고예요" --json
    """
    from malmoi.inspect.similar import check_pair, sentence_similarity

    check_pair(a, b)  # before loading the run: a typo costs no model load
    result = sentence_similarity(_load(run), a, b)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    pooled = result["pooled"]
    print(f"cosine {result['cosine']:.4f}  ({result['family']}: mean of {pooled['states']}, "
          f"{pooled['dimension']} dimensions)")
    for name in ("a", "b"):
        tokens = pooled["tokens"][name]
        print(f"  {name.upper()} pooled {len(tokens)} token{'s' * (len(tokens) != 1)}: {' '.join(tokens)}")
    if pooled["left_out"]:
        print(f"  left out: {' '.join(pooled['left_out'])}")
    for note in result["notes"]:
        print(f"note: {note}")


@app.command(short_help="Map a run's most frequent tokens in 2-D: malmoi embeddings runs/lm --out map.html")
def embeddings(
    run: Path = typer.Argument(..., help="A run directory (BERT, GPT, MLM, LSTM or BART)."),
    out: Path = typer.Option(..., "--out", help="The map to write: .png (picture) or .html (hover for neighbours)."),
    top: int = typer.Option(300, "--top", help="How many of the most frequent tokens to place."),
    data: Optional[Path] = typer.Option(None, "--data", help="Count tokens on this file [default: the run's "
                                                             "training file]."),
    column: Optional[str] = typer.Option(None, "--column", help="With --data on a table: the text column."),
    as_json: bool = typer.Option(False, "--json", help="Print the map (points, coordinates, neighbours) as JSON."),
) -> None:
    """The TOP most frequent tokens' embeddings projected to 2-D by PCA and by t-SNE, each token labelled
    and, in the HTML page, its 5 nearest tokens in the whole table shown on hover.

    Example: malmoi embeddings runs/lm --top 300 --out map.html
    """
    from malmoi.errors import MalmoiError
    from malmoi.inspect.embedding_map import MIN_TOP, embedding_map, writer_for

    write = writer_for(out)  # a wrong extension fails before the run is loaded
    if top < MIN_TOP:
        raise MalmoiError("E201", f"--top must be at least {MIN_TOP}, got {top}")
    emap = embedding_map(_load(run), top=top, data=data, column=column)
    write(emap, out)
    if as_json:
        print(json.dumps({**emap, "out": str(out)}, ensure_ascii=False))
        return
    counted = f"counted on {emap['counted_on']}" if emap["counted_on"] else "in vocabulary order"
    print(f"wrote {out}: {emap['top']} tokens ({counted}), PCA and t-SNE of {emap['dimension']}-d embeddings")
    for note in emap["notes"]:
        print(f"note: {note}")
