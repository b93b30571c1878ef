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


_KIWI: dict[tuple[int, bool], "Kiwi"] = {}


def kiwi(multi_dict: bool = True) -> "Kiwi":
    """The shared Kiwi analyser (loading its model takes seconds, so it is built once per process and
    setting: a forked DataLoader worker does not inherit the parent's worker threads).

    ``multi_dict`` loads Kiwi's dictionary of multi-word proper nouns (``구로사와 기요시`` as one
    morpheme); it changes 4% of NSMC reviews' analyses and doubles Kiwi's start in a fresh process
    (about 5 s against 2.5), so the n-gram featurizer leaves it out (``NgramConfig.kiwi_multi_dict``).

    At least two worker threads: since kiwipiepy 0.21 ``num_workers=0`` means single-threaded,
    and then the batch API refuses a list of texts."""
    key = (os.getpid(), multi_dict)
    if key not in _KIWI:
        from kiwipiepy import Kiwi

        _KIWI[key] = Kiwi(num_workers=max(2, min(os.cpu_count() or 2, 8)), load_multi_dict=multi_dict)
    return _KIWI[key]


def _analyses(texts: str | Sequence[str], show_progress: bool, what: str,
              multi_dict: bool = True) -> tuple[bool, Iterable[list]]:
    """(whether one string was given, Kiwi's token lists in input order) for NFC-normalised texts."""
    single = isinstance(texts, str)
    batch = [unicodedata.normalize("NFC", t) for t in ([texts] if single else texts)]
    results = kiwi(multi_dict).tokenize(batch)  # batch API: lazily yields one token list per text, in order
    if show_progress:
        from rich.progress import track

        results = track(results, total=len(batch), description=what, transient=True)
    return single, results


@overload
def morphemes(texts: str, show_progress: bool = False, multi_dict: bool = True) -> list[Morpheme]: ...
@overload
def morphemes(texts: Sequence[str], show_progress: bool = False, multi_dict: bool = True) -> list[list[Morpheme]]: ...
def morphemes(texts, show_progress=False, multi_dict=True):
    """Kiwi's analysis as typed ``Morpheme`` tuples: one list for a string, a list of lists for many
    (``multi_dict``: see ``kiwi``)."""
    single, analysed = _analyses(texts, show_progress, "morphemes", multi_dict)
    out = [[Morpheme(t.form, t.tag, t.start, t.len) for t in tokens] for tokens in analysed]
    return out[0] if single else out


@overload
def split_morphemes(texts: str, pos: bool = False, show_progress: bool = False) -> list[str]: ...
@overload
def split_morphemes(texts: Sequence[str], pos: bool = False, show_progress: bool = False) -> list[list[str]]: ...
def split_morphemes(texts, pos=False, show_progress=False):
    """Morpheme forms (``"form/TAG"`` with ``pos=True``), through Kiwi's batch API for many texts."""
    single, analysed = _analyses(texts, show_progress, "morphemes")
    # Straight from Kiwi's tokens: each attribute read crosses into C, so read only what is shown.
    if pos:
        out = [[f"{t.form}/{t.tag}" for t in tokens] for tokens in analysed]
    else:
        out = [[t.form for t in tokens] for tokens in analysed]
    return out[0] if single else out


def _inside(text: str, keep: re.Pattern | None) -> set[int]:
    """Offsets strictly inside a match of ``keep`` (where no cut may go)."""
    if keep is None:
        return set()
    return {i for m in keep.finditer(text) for i in range(m.start() + 1, m.end())}


def mark_morpheme_boundaries(texts: Sequence[str], show_progress: bool = False,
                             keep: Sequence[str] = ()) -> list[str]:
    """Each text, NFC-normalised, with ``MORPHEME_MARK`` inserted at morpheme boundaries inside words.

    The text keeps its own characters and spacing (``좋아해`` becomes ``좋아⁣해``, not Kiwi's
    ``좋아하 어``), so whatever is trained on it can still give the original words back.
    A boundary is the start offset of a morpheme; contracted morphemes share a start and add none.
    No boundary goes inside an occurrence of a string in ``keep`` (special tokens like ``[MASK]``).
    """
    batch = [unicodedata.normalize("NFC", t).replace(MORPHEME_MARK, "") for t in texts]
    keep_re = re.compile("|".join(re.escape(k) for k in sorted(keep, key=len, reverse=True))) if keep else None
    out = []
    for text, tokens in zip(batch, _analyses(batch, show_progress, "morpheme split")[1]):
        banned = _inside(text, keep_re)
        cuts = sorted(s for s in {t.start for t in tokens}
                      if 0 < s < len(text) and s not in banned and not text[s].isspace() and not text[s - 1].isspace())
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
