"""`malmoi inspect`: one sentence through a run, every stage, in the terminal, as JSON or as HTML."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from malmoi.cli.apps import app
from malmoi.errors import MalmoiError


@app.command("inspect", short_help='Every stage of one sentence through a run: malmoi inspect runs/nsmc "재밌어요"')
def inspect_command(
    run: Path = typer.Argument(..., help="A run directory."),
    text: Optional[List[str]] = typer.Argument(None, help="The sentence (or, with --words, the words)."),
    pair: Optional[str] = typer.Option(None, "--pair", help="A second sentence, read as the pair's second text."),
    words: bool = typer.Option(False, "--words", help="Compare words: one-hot against learned embeddings."),
    kiwi: bool = typer.Option(False, "--kiwi", help="With --words: also Kiwi's CoNg neighbours and similarities."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON (malmoi/inspect/schema.json)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write one self-contained HTML page."),
    top_k: int = typer.Option(5, "--top-k", help="Nearest tokens and next-token candidates shown."),
    max_tokens: int = typer.Option(64, "--max-tokens", help="Longer inputs are cut to this many tokens, with a note."),
    steps: int = typer.Option(8, "--steps", help="Generation steps shown for a GPT run."),
) -> None:
    """Words and morphemes → tokens, ids, type ids and mask → embeddings → layers and attention →
    logits → softmax or the next token → text, for any run directory.

    Example: malmoi inspect runs/nsmc "배우들 연기가 정말 좋았어요" --html nsmc.html
    """
    from malmoi.cli.train import passive_openmp

    passive_openmp()
    if top_k < 1 or max_tokens < 2 or steps < 1:
        raise MalmoiError("E201", "--top-k and --steps must be at least 1, --max-tokens at least 2")
    if kiwi and not words:
        raise MalmoiError("E201", "--kiwi goes with --words")
    if not words:  # refused before a model is loaded
        from malmoi.inspect.text import check_sentence

        if not text or len(text) != 1:
            raise MalmoiError("E480", 'give one sentence in quotes: malmoi inspect RUN "문장"' if not text else
                                      f"give the sentence as one argument in quotes (got {len(text)} words)")
        check_sentence(text[0])
    from malmoi.use import load

    loaded = load(run)
    if words:
        _words(loaded, text or [], kiwi, as_json)
        return
    from malmoi.inspect import inspect_text

    record = inspect_text(loaded, text[0], pair=pair, top_k=top_k, max_tokens=max_tokens, steps=steps)
    if html is not None:
        from malmoi.inspect.page import save_html

        save_html(record, html)
    if as_json:
        print(json.dumps(record, ensure_ascii=False))
        return
    from malmoi.inspect.terminal import print_record

    print_record(record)
    if html is not None:
        print(f"wrote {html}")


def _words(loaded, words: list[str], kiwi: bool, as_json: bool) -> None:
    from malmoi.inspect.words import print_words, words_view

    if len(words) < 2:
        raise MalmoiError("E201", "give at least two words to compare: malmoi inspect RUN --words 좋다 최고 별로")
    view = words_view(loaded, words, kiwi=kiwi)
    if as_json:
        print(json.dumps(view, ensure_ascii=False))
    else:
        print_words(view)
