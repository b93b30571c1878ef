"""Words, characters and Korean morphemes: the first cut of a sentence into tokens.

Korean glues particles and endings onto stems (``너를`` = ``너`` + ``를``), so whitespace words
are a poor unit; morphemes from Kiwi (kiwipiepy) are the usual fix. Many sentences go through
Kiwi's batch API, which spreads the work over its worker threads; a Python loop of single calls
uses one core.

>>> split_words("나는 너를 좋아해")
['나는', '너를', '좋아해']
>>> split_morphemes("나는 너를 좋아해")
['나', '는', '너', '를', '좋아하', '어']
>>> split_morphemes("나는 너를 좋아해", pos=True)
['나/NP', '는/JX', '너/NP', '를/JKO', '좋아하/VV', '어/EF']
"""
from __future__ import annotations

import os
import re
import unicodedata
from typing import TYPE_CHECKING, Iterable, NamedTuple, Sequence, overload

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

SPACE_MARK = "▁"
"""Stands for a run of whitespace in ``split_chars(..., keep_spaces=True)``, so it stays visible."""

MORPHEME_MARK = "\u2063"
"""INVISIBLE SEPARATOR: written between morphemes inside a word by ``mark_morpheme_boundaries``.

It is not whitespace, so a subword tokenizer that splits on it (and drops it) still knows where
the words were and can decode the original spacing."""


class Morpheme(NamedTuple):
    """One morpheme of Kiwi's analysis."""

    form: str
    """The morpheme as analysed, which may differ from the surface (``했`` → ``하`` + ``었``)."""
    tag: str
    """Sejong part-of-speech tag: NNG noun, VV verb, JKO object particle, EF final ending …"""
    start: int
    """Offset of its first character in the input text."""
    len: int
    """Number of input characters it covers (contracted morphemes overlap)."""


def split_words(text: str) -> list[str]:
    """Whitespace words: ``"나는  너를"`` → ``["나는", "너를"]``."""
    return text.split()


def split_chars(text: str, keep_spaces: bool = False) -> list[str]:
    """Characters (Hangul syllables, not jamo); whitespace dropped, or kept as one ``▁`` per run."""
    text = unicodedata.normalize("NFC", text)
    if not keep_spaces:
        return [c for c in text if not c.isspace()]
    out: list[str] = []
    for c in text.strip():
        if not c.isspace():
            out.append(c)
        elif out[-1] != SPACE_MARK:
            out.append(SPACE_MARK)
    return out


_KIWI: dict[int, "Kiwi"] = {}


def kiwi() -> "Kiwi":
    """The shared Kiwi analyser (loading its model takes about a second, so it is built once
    per process: a forked DataLoader worker does not inherit the parent's worker threads).

    At least two worker threads: since kiwipiepy 0.21 ``num_workers=0`` means single-threaded,
    and then the batch API refuses a list of texts."""
    pid = os.getpid()
    if pid not in _KIWI:
        from kiwipiepy import Kiwi

        _KIWI[pid] = Kiwi(num_workers=max(2, min(os.cpu_count() or 2, 8)))
    return _KIWI[pid]


def _iter_analyses(texts: Sequence[str], show_progress: bool, what: str) -> Iterable[list]:
    results = kiwi().tokenize(texts)  # batch API: lazily yields one token list per text, in order
    if not show_progress:
        return results
    from rich.progress import track

    return track(results, total=len(texts), description=what, transient=True)


@overload
def morphemes(texts: str, show_progress: bool = False) -> list[Morpheme]: ...
@overload
def morphemes(texts: Sequence[str], show_progress: bool = False) -> list[list[Morpheme]]: ...
def morphemes(texts, show_progress=False):
    """Kiwi's analysis as typed ``Morpheme`` tuples: one list for a string, a list of lists for many."""
    single = isinstance(texts, str)
    batch = [texts] if single else list(texts)
    batch = [unicodedata.normalize("NFC", t) for t in batch]
    out = [[Morpheme(t.form, t.tag, t.start, t.len) for t in tokens]
           for tokens in _iter_analyses(batch, show_progress, "morphemes")]
    return out[0] if single else out


@overload
def split_morphemes(texts: str, pos: bool = False, show_progress: bool = False) -> list[str]: ...
@overload
def split_morphemes(texts: Sequence[str], pos: bool = False, show_progress: bool = False) -> list[list[str]]: ...
def split_morphemes(texts, pos=False, show_progress=False):
    """Morpheme forms (``"form/TAG"`` with ``pos=True``), through Kiwi's batch API for many texts."""
    analysed = morphemes(texts, show_progress=show_progress)
    fmt = (lambda m: f"{m.form}/{m.tag}") if pos else (lambda m: m.form)
    if isinstance(texts, str):
        return [fmt(m) for m in analysed]
    return [[fmt(m) for m in ms] for ms in analysed]


def _inside(text: str, keep: Sequence[str]) -> set[int]:
    """Offsets strictly inside an occurrence of one of ``keep`` (where no cut may go)."""
    if not keep:
        return set()
    pattern = re.compile("|".join(re.escape(k) for k in sorted(keep, key=len, reverse=True) if k))
    return {i for m in pattern.finditer(text) for i in range(m.start() + 1, m.end())}


def mark_morpheme_boundaries(texts: Sequence[str], show_progress: bool = False,
                             keep: Sequence[str] = ()) -> list[str]:
    """Each text, NFC-normalised, with ``MORPHEME_MARK`` inserted at morpheme boundaries inside words.

    The text keeps its own characters and spacing (``좋아해`` becomes ``좋아⁣해``, not Kiwi's
    ``좋아하 어``), so whatever is trained on it can still give the original words back.
    A boundary is the start offset of a morpheme; contracted morphemes share a start and add none.
    No boundary goes inside an occurrence of a string in ``keep`` (special tokens like ``[MASK]``).
    """
    batch = [unicodedata.normalize("NFC", t).replace(MORPHEME_MARK, "") for t in texts]
    out = []
    for text, tokens in zip(batch, _iter_analyses(batch, show_progress, "morpheme split")):
        banned = _inside(text, keep)
        cuts = sorted({t.start for t in tokens
                       if 0 < t.start < len(text) and t.start not in banned
                       and not text[t.start].isspace() and not text[t.start - 1].isspace()})
        if not cuts:
            out.append(text)
            continue
        pieces, prev = [], 0
        for c in cuts:
            pieces.append(text[prev:c])
            prev = c
        pieces.append(text[prev:])
        out.append(MORPHEME_MARK.join(pieces))
    return out
