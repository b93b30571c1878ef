"""`malmoi tokenize` and `malmoi tokenizer train`."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import typer

from malmoi.errors import MalmoiError
from malmoi.cli.apps import app, tokenizer_app


@dataclass
class Encoded:
    """One input as a model would see it."""

    splitter: str
    """``words``, ``chars``, ``morphemes`` or the tokenizer folder."""
    tokens: list[str]
    input_ids: list[int]
    token_type_ids: list[int]
    attention_mask: list[int]


def _encode_with_vocab(text: str, pair: str | None, splitter: str, pos: bool) -> Encoded:
    """Split, then number the tokens with a Vocab built from this input alone (ids mean nothing
    across inputs; that is what a trained tokenizer is for)."""
    from malmoi.text.vocab import BOS, EOS, Vocab
    from malmoi.text.words import split_chars, split_morphemes, split_words

    if splitter == "morphemes":
        parts = split_morphemes([text] + ([pair] if pair is not None else []), pos=pos)
    else:
        split = split_chars if splitter == "chars" else split_words
        parts = [split(text)] + ([split(pair)] if pair is not None else [])
    vocab = Vocab.build(parts)
    tokens, types = [BOS] + parts[0] + [EOS], [0] * (len(parts[0]) + 2)
    if pair is not None:
        tokens += parts[1] + [EOS]
        types += [1] * (len(parts[1]) + 1)
    return Encoded(splitter, tokens, [vocab[t] for t in tokens], types, [1] * len(tokens))


def _encode_with_tokenizer(text: str, pair: str | None, folder: Path) -> Encoded:
    from malmoi.text.subword import load_tokenizer

    tok = load_tokenizer(folder)
    enc = tok(text, pair, return_token_type_ids=True, return_attention_mask=True)
    ids = enc["input_ids"]
    return Encoded(str(folder), tok.convert_ids_to_tokens(ids), ids, enc["token_type_ids"], enc["attention_mask"])


def _print_table(enc: Encoded) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"split: {enc.splitter}", title_justify="left")
    for name in ("#", "token", "id", "token_type_id", "attention_mask"):
        table.add_column(name, justify="left" if name == "token" else "right")
    for i, row in enumerate(zip(enc.tokens, enc.input_ids, enc.token_type_ids, enc.attention_mask)):
        table.add_row(str(i), *map(str, row))
    Console().print(table)


@app.command(short_help='Tokens, ids and masks of a sentence: malmoi tokenize "나는 너를 좋아해" --morphemes')
def tokenize(
    text: str = typer.Argument(..., help="The sentence to tokenize."),
    pair: Optional[str] = typer.Option(None, "--pair", help="A second sentence (token_type_id 1)."),
    morphemes: bool = typer.Option(False, "--morphemes", help="Split into Kiwi morphemes."),
    chars: bool = typer.Option(False, "--chars", help="Split into characters."),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="A trained tokenizer folder or run directory."),
    pos: bool = typer.Option(False, "--pos", help="Show part-of-speech tags (implies --morphemes)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the tokens, ids, token_type_ids and attention_mask of a sentence.

    Without --tokenizer the ids number the tokens of this input alone (<bos> and <eos> added).

    Example: malmoi tokenize "나는 너를 좋아해" --morphemes --pair "나도 좋아"
    """
    morphemes = morphemes or pos
    chosen = [name for name, on in (("--morphemes", morphemes), ("--chars", chars),
                                    ("--tokenizer", tokenizer is not None)) if on]
    if len(chosen) > 1:
        raise MalmoiError("E212", f"choose one way to split, not {' and '.join(chosen)}")
    if tokenizer is not None:
        enc = _encode_with_tokenizer(text, pair, tokenizer)
    else:
        enc = _encode_with_vocab(text, pair, "morphemes" if morphemes else "chars" if chars else "words", pos)
    if as_json:
        typer.echo(json.dumps(asdict(enc), ensure_ascii=False))
    else:
        _print_table(enc)


@tokenizer_app.command("train", short_help="Train a subword tokenizer: malmoi tokenizer train --data FILE --kind bpe --out DIR")
def tokenizer_train(
    data: Path = typer.Option(..., "--data", help="Texts: a .txt file (one per line) or a CSV/TSV/JSONL table."),
    out: Path = typer.Option(..., "--out", help="Folder to write (replaced whole if it exists)."),
    column: Optional[str] = typer.Option(None, "--column", help="The text column of a table."),
    kind: str = typer.Option("wordpiece", "--kind", help="wordpiece, bpe or unigram."),
    vocab_size: int = typer.Option(16000, "--vocab-size", help="Largest vocabulary, special tokens included."),
    morphemes: bool = typer.Option(False, "--morphemes", help="Cut texts at Kiwi morpheme boundaries first."),
    min_frequency: int = typer.Option(2, "--min-frequency", help="Fewest occurrences of a merge (wordpiece, bpe)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Train a WordPiece, BPE or Unigram tokenizer that AutoTokenizer.from_pretrained(OUT) loads.

    Example: malmoi tokenizer train --data ../shared/data/nsmc/unlabeled.txt --kind wordpiece --vocab-size 16000 --out runs/tok
    """
    from malmoi.data.readers import read_texts
    from malmoi.text.subword import train_tokenizer

    texts = read_texts(data, column)
    start = time.perf_counter()
    tok = train_tokenizer(texts, kind=kind, vocab_size=vocab_size, morphemes=morphemes, out=out,
                          show_progress=not as_json, min_frequency=min_frequency)
    seconds = time.perf_counter() - start
    summary = {"out": str(out), "kind": kind, "morphemes": morphemes, "vocab_size": len(tok),
               "texts": len(texts), "seconds": round(seconds, 2),
               "example": tok.tokenize(texts[0])}
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
    else:
        typer.echo(f"trained a {kind} tokenizer{' over morphemes' if morphemes else ''}: {len(tok):,} tokens "
                   f"from {len(texts):,} texts in {seconds:.1f}s → {out}")
        typer.echo(f"  {texts[0][:60]!r} → {' '.join(summary['example'][:20])}")
