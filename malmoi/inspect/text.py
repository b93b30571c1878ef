"""The text stage of one sentence: words, Kiwi morphemes with tags, and the run's tokens (ids,
type ids, mask, character spans), cut to ``max_tokens`` with a note when longer."""
from __future__ import annotations

import re

from malmoi.errors import MalmoiError
from malmoi.inspect.tokens import tokenize

PER_TOKEN = ("tokens", "input_ids", "token_type_ids", "attention_mask", "offsets", "display", "sequence_ids")


def check_sentence(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise MalmoiError("E480", "give a sentence to inspect: it is empty or blank")
    return text


def words(text: str) -> list[dict]:
    return [{"text": m.group(), "start": m.start(), "end": m.end()} for m in re.finditer(r"\S+", text)]


def morphemes(text: str) -> list[dict]:
    from malmoi.text.words import morphemes as analyse

    return [{"form": m.form, "tag": m.tag, "start": m.start, "end": m.start + m.len} for m in analyse(text)]


def text_stage(loaded, text: str, pair: str | None = None, max_tokens: int = 64) -> tuple[dict, list[str]]:
    """The stage and the notes it leaves (truncation)."""
    notes = []
    stage = {"words": words(text), "morphemes": morphemes(text)}
    if pair is not None:
        stage["pair"] = {"words": words(pair), "morphemes": morphemes(pair)}
    view = tokenize(loaded, text, pair)
    if view["kind"] == "ngrams":
        total = len(view["ngrams"])
        if total > max_tokens * 8:
            view["ngrams"] = view["ngrams"][: max_tokens * 8]
            notes.append(f"showing the first {max_tokens * 8} of {total} n-grams")
    elif len(view["tokens"]) > max_tokens:
        total = len(view["tokens"])
        for key in PER_TOKEN:
            if key in view:
                view[key] = view[key][:max_tokens]
        notes.append(f"the text is {total} tokens; every stage shows the first {max_tokens}")
    return {**stage, **view}, notes
