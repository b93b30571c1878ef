"""Texts → hashed n-gram ids: the input of the n-gram classifier (``models/ngram.py``).

A text becomes a bag of n-grams of several kinds, each hashed into one of ``buckets`` ids
(1 … buckets; 0 is padding), fastText-style::

    "영화 재밌다"  ─►  chars        " 영", "영화", "화 ", " 재", …        (spaces kept: word edges, phrases)
                  ─►  joined       "영화", "화재", "재밌", …             (spaces dropped: spacing-proof)
                  ─►  jamo         "ㅇㅕㅇ", "ㅈㅐㅁ", "ㅐㅁㅣ", …          (syllables split: typo-proof)
                  ─►  words        "영화", "재밌다", "영화 재밌다"
                  ─►  morphemes    "영화", "재밌", "다", "영화 재밌", …   (Kiwi)
                  ─►  tagged       "영화/NNG", "재밌/VA", …              (Kiwi, with POS tags)
                  ─►  tail_chars   character n-grams of the last words   (Korean puts the verdict last)
                  ─►  tail_tagged  tagged n-grams of the last morphemes

Hashing never uses Python's ``hash`` (randomised per process): a character n-gram is FNV-1a
over its code points, a word or morpheme is BLAKE2b over its UTF-8 bytes, a token n-gram chains
its tokens' hashes; every kind and size has its own salt and a final 64-bit mix. The same text
gives the same ids in any process, on any machine. Character n-grams are computed for all
texts at once with numpy; tokens go through a cache, morphemes through Kiwi's batch API.

``NgramFeaturizer.ngrams(text)`` lists the n-grams of one text as strings with a plain scalar
hash and the ``start``/``end`` span in ``text`` each was cut from (before normalisation); the
vectorised ``encode`` gives the same ids (the tests hold them to it).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from malmoi.errors import MalmoiError
from malmoi.files import atomic_write_json

CONFIG_FILE = "ngrams.json"
FORMAT = "malmoi.NgramFeaturizer"
KINDS = ("chars", "joined", "jamo", "words", "morphemes", "tagged", "tail_chars", "tail_tagged")
"""N-gram kinds in the order they are emitted: characters with spaces, characters without
spaces, jamo, whitespace words, Kiwi morphemes, Kiwi morphemes with their POS tags, and the
characters and tagged morphemes of the text's end."""
TOKEN_KINDS = ("words", "morphemes", "tagged", "tail_tagged")
KIWI_KINDS = ("morphemes", "tagged", "tail_tagged")
MAX_N = 8

_MASK = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MIX1, _MIX2 = 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53


@dataclass
class NgramConfig:
    """Which n-grams a featurizer emits and how many hash buckets they share (saved as ``ngrams.json``)."""

    buckets: int = 1 << 20
    """Hash buckets; ids run 1 … buckets and 0 is padding."""
    chars: tuple[int, int] | None = (1, 4)
    """Smallest and largest character n-gram over the text with its spaces (None = off)."""
    joined: tuple[int, int] | None = None
    """Character n-grams over the text with its spaces removed (None = off)."""
    jamo: tuple[int, int] | None = None
    """N-grams of jamo over the text with its spaces, Hangul syllables split into their letters
    (``맛`` → ``ㅁ ㅏ ㅅ``), so spelling variants (``재밋``, ``재밌``) share most of theirs (None = off)."""
    words: tuple[int, int] | None = (1, 2)
    """Whitespace-word n-grams (None = off)."""
    morphemes: tuple[int, int] | None = None
    """Kiwi morpheme n-grams, forms only (None = off)."""
    tagged: tuple[int, int] | None = None
    """Kiwi morpheme n-grams written ``form/TAG`` (None = off)."""
    tail_chars: tuple[int, int] | None = None
    """Character n-grams of the last ``tail_words`` words: a Korean sentence ends in its verdict (None = off)."""
    tail_tagged: tuple[int, int] | None = None
    """``form/TAG`` n-grams of the last ``tail_morphemes`` morphemes that are not symbols (None = off)."""
    tail_words: int = 2
    """Words at the end of a text that ``tail_chars`` reads."""
    tail_morphemes: int = 5
    """Morphemes (punctuation, numbers and foreign letters left out) at the end that ``tail_tagged`` reads."""
    kiwi_multi_dict: bool = False
    """Give Kiwi its dictionary of multi-word proper nouns: it halves a cold start's Kiwi time to leave it
    out (``text.words.kiwi``), for the same accuracy. Featurizers saved before this setting used it."""
    separate_kinds: bool = True
    """Give each kind its own share of the buckets: ``(id - 1) % groups`` is the kind's index among the
    kinds in use, so a model can pool kinds apart and kinds never collide with each other."""
    lowercase: bool = True
    """Lower-case Latin letters before anything else."""
    max_repeat: int = 3
    """A run of one character longer than this is cut to this length (``ㅋㅋㅋㅋㅋ`` → ``ㅋㅋㅋ``; 0 = keep)."""
    max_chars: int = 2000
    """Texts are cut to this many characters, which bounds the n-grams of one text."""

    def __post_init__(self) -> None:
        if not 1 <= self.buckets <= 1 << 30:
            raise MalmoiError("E260", f"buckets must be between 1 and 2^30, got {self.buckets}")
        for kind in KINDS:
            span = getattr(self, kind)
            if span is None:
                continue
            if len(span) != 2 or not 1 <= span[0] <= span[1] <= MAX_N:
                raise MalmoiError("E260", f"{kind} n-gram sizes must be (min, max) with 1 ≤ min ≤ max ≤ {MAX_N}, "
                                          f"got {span}")
            setattr(self, kind, (int(span[0]), int(span[1])))
        if not any(getattr(self, k) for k in KINDS):
            raise MalmoiError("E260", "at least one n-gram kind must be on")
        if self.buckets < self.groups:
            raise MalmoiError("E260", f"{self.buckets} buckets cannot be shared by {self.groups} n-gram kinds")
        if self.max_repeat < 0 or self.max_chars < 1:
            raise MalmoiError("E260", "max_repeat must be ≥ 0 and max_chars ≥ 1")
        if self.tail_words < 1 or self.tail_morphemes < 1:
            raise MalmoiError("E260", "tail_words and tail_morphemes must be ≥ 1")

    @property
    def kinds(self) -> list[str]:
        """The kinds in use, in ``KINDS`` order."""
        return [k for k in KINDS if getattr(self, k)]

    @property
    def groups(self) -> int:
        """How many kinds the ids tell apart (1 when kinds share the buckets)."""
        return len(self.kinds) if self.separate_kinds else 1

    def slot(self, kind: str) -> int:
        """The remainder ``(id - 1) % groups`` of a kind's ids."""
        return self.kinds.index(kind) if self.separate_kinds else 0

    @property
    def uses_kiwi(self) -> bool:
        return any(getattr(self, k) for k in KIWI_KINDS)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "NgramConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MalmoiError("E260", f"unknown n-gram settings {unknown}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})


class Ngram(NamedTuple):
    """One n-gram of a text, as ``NgramFeaturizer.ngrams`` lists it."""

    kind: str
    """One of ``KINDS``."""
    units: tuple[str, ...]
    """Its characters (character kinds) or tokens (word and morpheme kinds)."""
    id: int
    """Its hashed id, 1 … buckets."""
    start: int
    """Offset in the caller's (unnormalised) text of the first character it was cut from."""
    end: int
    """Offset just past the last one: ``text[start:end]`` is the stretch behind the n-gram. The spaces
    added at a text's edges cover nothing (a lone edge space is an empty span beside the text)."""

    @property
    def text(self) -> str:
        return " ".join(self.units) if self.kind in TOKEN_KINDS else "".join(self.units)


# ------------------------------------------------------------------------------------- hashing


def _fmix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (uint64 arithmetic wraps, which is what we want)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(_MIX1)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(_MIX2)
    return h ^ (h >> np.uint64(33))


def _fmix_int(h: int) -> int:
    h ^= h >> 33
    h = (h * _MIX1) & _MASK
    h ^= h >> 33
    h = (h * _MIX2) & _MASK
    return h ^ (h >> 33)


def _blake64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


_SALTS = {(kind, n): _blake64(f"malmoi-ngram:{kind}:{n}") for kind in KINDS for n in range(1, MAX_N + 1)}


def _bucket(h: np.ndarray, kind: str, n: int, buckets: int, slot: int = 0, groups: int = 1) -> np.ndarray:
    """Ids 1 … buckets: kind ``slot`` of ``groups`` owns the ids with ``(id - 1) % groups == slot``."""
    share = np.uint64(buckets // groups)
    return (_fmix(h ^ np.uint64(_SALTS[kind, n])) % share).astype(np.int64) * groups + slot + 1


def scalar_id(kind: str, units: Sequence[str], buckets: int, slot: int = 0, groups: int = 1) -> int:
    """The id of one n-gram, computed plainly (the reference the vectorised path must match)."""
    n = len(units)
    if kind not in TOKEN_KINDS:
        h = _FNV_OFFSET
        for c in units:
            h = ((h ^ ord(c)) * _FNV_PRIME) & _MASK
    else:
        h = _blake64(units[0])
        for tok in units[1:]:
            h = _fmix_int(((h * _FNV_PRIME) & _MASK) ^ _blake64(tok))
    return _fmix_int(h ^ _SALTS[kind, n]) % (buckets // groups) * groups + slot + 1


def _char_ngrams(texts: Sequence[str], span: tuple[int, int], kind: str, buckets: int, slot: int, groups: int):
    """(doc, id) arrays of all character n-grams of ``texts`` (each text's n-grams stay inside it)."""
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    doc = np.repeat(np.arange(len(texts), dtype=np.int64), lens)
    h = np.full(len(cps), _FNV_OFFSET, dtype=np.uint64)
    out = []
    for n in range(1, span[1] + 1):
        size = len(cps) - n + 1
        if size <= 0:
            break
        h = (h[:size] ^ cps[n - 1:n - 1 + size]) * np.uint64(_FNV_PRIME)  # FNV-1a, one more code point
        if n >= span[0]:
            inside = doc[:size] == doc[n - 1:n - 1 + size]
            out.append((doc[:size][inside], _bucket(h[inside], kind, n, buckets, slot, groups)))
    return out


class _TokenHashes:
    """BLAKE2b of tokens, remembered: a corpus repeats its words and morphemes very often."""

    def __init__(self, limit: int = 2_000_000):
        self.cache: dict[str, int] = {}
        self.limit = limit

    def __call__(self, tokens: list[str]) -> np.ndarray:
        if len(self.cache) > self.limit:
            self.cache.clear()
        cache, out = self.cache, np.empty(len(tokens), dtype=np.uint64)
        for i, tok in enumerate(tokens):
            h = cache.get(tok)
            if h is None:
                h = cache[tok] = _blake64(tok)
            out[i] = h
        return out


def _token_ngrams(token_lists: Sequence[Sequence[str]], span: tuple[int, int], kind: str, buckets: int, slot: int,
                  groups: int, hashes: _TokenHashes):
    lens = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
    flat = hashes([tok for toks in token_lists for tok in toks])
    doc = np.repeat(np.arange(len(token_lists), dtype=np.int64), lens)
    h = flat
    out = []
    for n in range(1, span[1] + 1):
        size = len(flat) - n + 1
        if size <= 0:
            break
        if n > 1:
            h = _fmix((h[:size] * np.uint64(_FNV_PRIME)) ^ flat[n - 1:n - 1 + size])
        if n >= span[0]:
            inside = doc[:size] == doc[n - 1:n - 1 + size]
            out.append((doc[:size][inside], _bucket(h[inside], kind, n, buckets, slot, groups)))
    return out


# ------------------------------------------------------------------------------------- featurizer


@dataclass
class Encoded:
    """N-gram ids of many texts in compressed rows: text ``i`` has ``ids[indptr[i]:indptr[i + 1]]``."""

    indptr: np.ndarray
    """(N + 1,) int64 row starts."""
    ids: np.ndarray
    """(total,) int64 n-gram ids, 1 … buckets."""
    morpheme_seconds: float = 0.0
    """Time spent in Kiwi's morpheme analysis."""
    seconds: float = 0.0
    """Total time of the call."""

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def row(self, i: int) -> np.ndarray:
        return self.ids[self.indptr[i]:self.indptr[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)


_REPEATS: dict[int, re.Pattern] = {}


def _repeats(k: int) -> re.Pattern:
    """A run of one character longer than ``k``."""
    pattern = _REPEATS.get(k)
    if pattern is None:
        pattern = _REPEATS[k] = re.compile(r"(.)\1{%d,}" % k, re.S)
    return pattern


def _tail_morphemes(ms: list, k: int) -> list:
    """The last ``k`` morphemes that are not symbols: Sejong tags S* are punctuation, symbols,
    numbers and foreign letters, not the verdict."""
    return [m for m in ms if not m.tag.startswith("S")][-k:]


# ------------------------------------------------------------------------------------- spans
# ``ngrams`` tells where each n-gram came from: every step from the input to the units carries a
# list of (start, end) spans of the input, one per character of its output.

Span = tuple[int, int]


def _cluster_map(text: str, form: str) -> tuple[str, list[Span]]:
    """``unicodedata.normalize(form, text)`` and, per output character, the range of ``text`` it came from.

    Normalised cluster by cluster, so NFC's merges (conjoining jamo → syllable) and NFD's splits
    (syllable → 2–3 jamo) map to the whole cluster; a cluster that does not change maps char to char."""
    whole = unicodedata.normalize(form, text)
    if whole == text:
        return text, [(i, i + 1) for i in range(len(text))]
    pieces, ranges, a = [], [], 0
    for b in range(1, len(text) + 1):
        if b < len(text) and not _starts_cluster(text, a, b, form):
            continue
        piece = unicodedata.normalize(form, text[a:b])
        ranges += [(i, i + 1) for i in range(a, b)] if piece == text[a:b] else [(a, b)] * len(piece)
        pieces.append(piece)
        a = b
    if "".join(pieces) != whole:  # not seen in practice; stay consistent at the cost of precision
        return whole, [(0, len(text))] * len(whole)
    return whole, ranges


def _starts_cluster(text: str, a: int, b: int, form: str) -> bool:
    """Whether ``text[b]`` normalises apart from the cluster ``text[a:b]`` (no composing, no reordering)."""
    if unicodedata.combining(text[b]):
        return False
    norm = unicodedata.normalize
    return norm(form, text[a:b + 1]) == norm(form, text[a:b]) + norm(form, text[b])


def _through(spans: list[Span], ranges: list[Span]) -> list[Span]:
    """Spans of a step's output, given the spans of its input and the input range of each output char."""
    return [(spans[a][0], spans[b - 1][1]) for a, b in ranges]


def _lower_map(text: str, spans: list[Span]) -> tuple[str, list[Span]]:
    low = text.lower()  # whole-string, like ``normalize`` (final sigma depends on context)
    if len(low) == len(text):
        return low, spans
    # a few characters lengthen (İ → i + dot): every piece keeps its character's span
    return low, [sp for ch, sp in zip(text, spans) for _ in range(len(ch.lower()))]


def _cut_repeats_map(text: str, spans: list[Span], k: int) -> tuple[str, list[Span]]:
    spans, drop = list(spans), set()
    for m in _repeats(k).finditer(text):
        last = m.start() + k - 1
        spans[last] = (spans[last][0], spans[m.end() - 1][1])  # the kept run stands for the cut characters
        drop.update(range(last + 1, m.end()))
    keep = [i for i in range(len(text)) if i not in drop]
    return "".join(text[i] for i in keep), [spans[i] for i in keep]


def _collapse_spaces_map(text: str, spans: list[Span]) -> tuple[str, list[Span]]:
    """``" ".join(text.split())``; each space spans the whitespace run it replaces."""
    chars, out, run = [], [], None
    for i, ch in enumerate(text):
        if ch.isspace():
            run = i if run is None else run
            continue
        if run is not None and chars:
            chars.append(" ")
            out.append((spans[run][0], spans[i - 1][1]))
        run = None
        chars.append(ch)
        out.append(spans[i])
    return "".join(chars), out


def _edged(at: list[Span]) -> list[Span]:
    """Spans of ``f" {t} "``: the edge spaces are empty spans where the text starts and ends."""
    return [(at[0][0], at[0][0])] + at + [(at[-1][1], at[-1][1])]


def _word_spans(norm: str, at: list[Span]) -> list[Span]:
    out, i = [], 0
    for word in norm.split(" "):
        out.append((at[i][0], at[i + len(word) - 1][1]))
        i += len(word) + 1
    return out


def _morpheme_span(at: list[Span], m) -> Span:
    """Kiwi's ``start``/``len`` through ``at`` (clamped, so an odd zero-length token stays inside)."""
    first = min(m.start, len(at) - 1)
    last = max(first, min(m.start + m.len, len(at)) - 1)
    return at[first][0], at[last][1]


class NgramFeaturizer:
    """Text → hashed n-gram ids, as configured by an ``NgramConfig``.

    It also answers the small part of a Hugging Face tokenizer's interface that the classify
    pipeline uses (``pad_token_id``, ``len``, ``save_pretrained``, a batch ``__call__``), so a
    run directory holds it where a tokenizer would be.
    """

    pad_token_id = 0
    model_input_names = ["input_ids"]

    def __init__(self, config: NgramConfig | None = None, **settings):
        self.config = config or NgramConfig(**settings)
        self._hashes = _TokenHashes()

    def __len__(self) -> int:
        return self.config.buckets + 1

    def __repr__(self) -> str:
        on = ", ".join(f"{k} {getattr(self.config, k)[0]}-{getattr(self.config, k)[1]}"
                       for k in KINDS if getattr(self.config, k))
        return f"NgramFeaturizer({on}; {self.config.buckets} buckets)"

    # -- text → units

    def normalize(self, text: str) -> str:
        """NFC, lower case, long character runs cut, whitespace runs made one space."""
        c = self.config
        text = unicodedata.normalize("NFC", text[: c.max_chars])
        if c.lowercase:
            text = text.lower()
        if c.max_repeat:
            text = _repeats(c.max_repeat).sub(r"\1" * c.max_repeat, text)
        return " ".join(text.split())

    def _normalize_with_map(self, text: str) -> tuple[str, list[int], list[int]]:
        """``normalize(text)`` step by step, with the span ``text[starts[i]:ends[i]]`` that its
        character ``i`` came from (a collapsed whitespace run or a cut repeat goes to the character kept)."""
        c = self.config
        norm, spans = _cluster_map(text[: c.max_chars], "NFC")
        if c.lowercase:
            norm, spans = _lower_map(norm, spans)
        if c.max_repeat:
            norm, spans = _cut_repeats_map(norm, spans, c.max_repeat)
        norm, spans = _collapse_spaces_map(norm, spans)
        return norm, [s for s, _ in spans], [e for _, e in spans]

    def _morphemes(self, texts: Sequence[str], units: dict[str, list], analysed: list | None = None) -> None:
        """Forms, ``form/TAG`` and the tail's ``form/TAG`` per text, through Kiwi's batch API
        (or from ``analysed``, Kiwi's morphemes of ``texts`` already at hand)."""
        from malmoi.text.words import morphemes

        c = self.config
        if analysed is None:
            analysed = morphemes(list(texts), multi_dict=c.kiwi_multi_dict) if texts else []
        if c.morphemes:
            units["morphemes"] = [[m.form for m in ms] for ms in analysed]
        if c.tagged:
            units["tagged"] = [[f"{m.form}/{m.tag}" for m in ms] for ms in analysed]
        if c.tail_tagged:
            units["tail_tagged"] = [[f"{m.form}/{m.tag}" for m in _tail_morphemes(ms, c.tail_morphemes)]
                                    for ms in analysed]

    def _units(self, texts: Sequence[str], analysed: list | None = None) -> dict[str, list]:
        """What each kind is cut from: strings for the character kinds, token lists for the others."""
        c = self.config
        units: dict[str, list] = {}
        edged = [f" {t} " if t else "" for t in texts]  # spaces mark the first and last word's edges
        if c.chars:
            units["chars"] = edged
        if c.joined:
            units["joined"] = [t.replace(" ", "") for t in texts]
        if c.jamo:
            units["jamo"] = [unicodedata.normalize("NFD", t) for t in edged]
        if c.words:
            units["words"] = [t.split(" ") if t else [] for t in texts]
        if c.tail_chars:
            units["tail_chars"] = [f" {' '.join(t.split(' ')[-c.tail_words:])} " if t else "" for t in texts]
        if c.uses_kiwi:
            self._morphemes(texts, units, analysed)
        return units

    def _unit_spans(self, norm: str, at: list[Span], analysed: list | None) -> dict[str, list[Span]]:
        """The input span of every unit ``_units([norm])`` cuts, per kind; ``at`` holds the spans of
        ``norm``'s characters and ``analysed`` Kiwi's morphemes of ``norm``."""
        c = self.config
        if not norm:
            return {kind: [] for kind in c.kinds}
        out = {}
        if c.chars:
            out["chars"] = _edged(at)
        if c.joined:
            out["joined"] = [sp for ch, sp in zip(norm, at) if ch != " "]
        if c.jamo:
            out["jamo"] = _through(_edged(at), _cluster_map(f" {norm} ", "NFD")[1])
        if c.words:
            out["words"] = _word_spans(norm, at)
        if c.tail_chars:
            tail = len(norm) - len(" ".join(norm.split(" ")[-c.tail_words:]))  # where the last words start
            out["tail_chars"] = _edged(at[tail:])
        if c.uses_kiwi:
            kiwi_at = _through(at, _cluster_map(norm, "NFC")[1])  # Kiwi's offsets count in the NFC it was given
            spans = [_morpheme_span(kiwi_at, m) for m in analysed]
            out["morphemes"] = out["tagged"] = spans
            out["tail_tagged"] = [_morpheme_span(kiwi_at, m) for m in _tail_morphemes(analysed, c.tail_morphemes)]
        return out

    # -- encoding

    def encode(self, texts: Sequence[str]) -> Encoded:
        """N-gram ids of every text, in rows; within a row kinds come in ``KINDS`` order, then by
        size, then by position."""
        import time

        started = time.perf_counter()
        if isinstance(texts, str):
            raise MalmoiError("E404", "encode takes a list of texts; wrap a single text in a list")
        texts = [self.normalize(t) for t in texts]
        kiwi_started = time.perf_counter()
        units = self._units(texts)
        kiwi_seconds = time.perf_counter() - kiwi_started if self.config.uses_kiwi else 0.0
        parts = []
        for kind in KINDS:
            span = getattr(self.config, kind)
            if not span:
                continue
            where = (self.config.buckets, self.config.slot(kind), self.config.groups)
            if kind in TOKEN_KINDS:
                parts += _token_ngrams(units[kind], span, kind, *where, self._hashes)
            else:
                parts += _char_ngrams(units[kind], span, kind, *where)
        docs = np.concatenate([d for d, _ in parts]) if parts else np.zeros(0, dtype=np.int64)
        ids = np.concatenate([i for _, i in parts]) if parts else np.zeros(0, dtype=np.int64)
        order = np.argsort(docs, kind="stable")  # group by text, keeping kind / size / position order
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.bincount(docs, minlength=len(texts)), out=indptr[1:])
        return Encoded(indptr, ids[order], kiwi_seconds, time.perf_counter() - started)

    def ngrams(self, text: str) -> list[Ngram]:
        """The n-grams of one text with their ids and their spans in ``text``, computed one by one
        (for reading, showing and testing)."""
        from malmoi.text.words import morphemes

        norm, starts, ends = self._normalize_with_map(text)
        # one Kiwi call for units and spans
        analysed = morphemes(norm, multi_dict=self.config.kiwi_multi_dict) if self.config.uses_kiwi else None
        units = self._units([norm], None if analysed is None else [analysed])
        spans = self._unit_spans(norm, list(zip(starts, ends)), analysed)
        out = []
        for kind in KINDS:
            size = getattr(self.config, kind)
            if not size:
                continue
            seq, at = list(units[kind][0]), spans[kind]
            where = (self.config.buckets, self.config.slot(kind), self.config.groups)
            for n in range(size[0], size[1] + 1):
                for i in range(len(seq) - n + 1):
                    piece = tuple(seq[i:i + n])
                    start, end = min(s for s, _ in at[i:i + n]), max(e for _, e in at[i:i + n])
                    out.append(Ngram(kind, piece, scalar_id(kind, piece, *where), start, end))
        return out

    def __call__(self, texts: str | Sequence[str], *, padding: bool | str = False, return_tensors: str | None = None,
                 **_ignored) -> dict:
        """Tokenizer-style batch call: ``{"input_ids": [...]}``, padded with 0 into a (B, T) tensor
        when ``return_tensors="pt"``. Truncation and special-token options do not apply and are ignored."""
        single = isinstance(texts, str)
        enc = self.encode([texts] if single else list(texts))
        rows = [enc.row(i) for i in range(len(enc))]
        if return_tensors == "pt":
            import torch

            width = max(1, max((len(r) for r in rows), default=1))
            batch = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                batch[i, : len(r)] = torch.from_numpy(r)
            return {"input_ids": batch}
        if return_tensors is not None:
            raise MalmoiError("E261", f"return_tensors={return_tensors!r} is not supported (use 'pt' or None)")
        ids = [r.tolist() for r in rows]
        return {"input_ids": ids[0] if single else ids}

    # -- persistence

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write ``ngrams.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / CONFIG_FILE, {"format": FORMAT, **self.config.to_dict()})

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "NgramFeaturizer":
        """Rebuild the featurizer saved in ``folder``."""
        path = Path(folder) / CONFIG_FILE
        if not path.is_file():
            raise MalmoiError("E450", f"{folder} holds no {CONFIG_FILE}: not an n-gram featurizer")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise MalmoiError("E450", f"{path} is unreadable: {e}") from None
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise MalmoiError("E450", f"{path} is not a malmoi n-gram featurizer")
        data.setdefault("kiwi_multi_dict", True)  # saved before the setting existed: Kiwi loaded it
        return cls(NgramConfig.from_dict(data))


def is_featurizer_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a saved ``NgramFeaturizer``."""
    return (Path(folder) / CONFIG_FILE).is_file()
