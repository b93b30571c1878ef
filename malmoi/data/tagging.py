"""Tagged sentences (named entities): KLUE's character format, CoNLL and JSONL → ``TaggedText``.

Every format becomes the same thing: the sentence's text, one tag per character of it and the
entities as character spans. KLUE-NER already tags characters (spaces included); a CoNLL or JSONL
sentence is its tokens joined by single spaces, each token's tag spread over its characters (and
over the space inside an entity), so every model and metric works on characters of the text.

Two tag schemes: BIO (``B-PS I-PS O``) and BIOES (``S-`` a one-unit entity, ``E-`` its last unit).
A file's scheme is the one its tags use; a sequence that breaks it is refused with its line.

    klue    ## comment lines, then one ``CHARACTER<TAB>TAG`` line per character, a blank line between
            sentences (``../shared/data/ner``)
    conll   one ``TOKEN<TAB>TAG`` line per token (or space-separated: the first and last field), a blank
            line between sentences; ``-DOCSTART-`` lines are skipped
    jsonl   one ``{"tokens": [...], "tags": [...]}`` object per line
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

from malmoi.errors import MalmoiError

FORMATS = ("auto", "klue", "conll", "jsonl")
SCHEMES = ("BIO", "BIOES")
OUTSIDE = "O"


class Entity(NamedTuple):
    """One entity: the characters ``text[start:end]`` of a sentence and their type."""

    start: int
    end: int
    type: str


@dataclass
class TaggedText:
    """One sentence: its text and one tag per character (in the file's scheme)."""

    text: str
    tags: list[str]


@dataclass
class TaggedCorpus:
    """The sentences of a file, the scheme their tags use and the entity types they hold."""

    sentences: list[TaggedText]
    scheme: str
    types: list[str]

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.sentences]


# ------------------------------------------------------------------------------------- schemes


def split_tag(tag: str) -> tuple[str, str]:
    """(prefix, type) of a tag: ``"B-PS"`` → ``("B", "PS")``, ``"O"`` → ``("O", "")``."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def scheme_of(tags: Sequence[str]) -> str:
    """BIOES when any tag starts ``S-`` or ``E-``, else BIO."""
    return "BIOES" if any(t[:2] in ("S-", "E-") for t in tags) else "BIO"


def check_sequence(tags: Sequence[str], scheme: str) -> int | None:
    """The index of the first tag that breaks ``scheme`` (an ``I-`` that continues nothing, a BIOES
    entity left open …), or None when the sequence is well formed."""
    open_type = ""  # the type of an entity that the next tag may continue
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if prefix in ("I", "E") and kind != open_type:
            return i
        if scheme == "BIOES" and open_type and prefix not in ("I", "E"):
            return i  # a BIOES entity must close with E- before anything else
        open_type = kind if prefix in ("B", "I") else ""
    if scheme == "BIOES" and open_type:
        return len(tags) - 1
    return None


def entities(tags: Sequence[str]) -> list[Entity]:
    """The entities of a tag sequence in either scheme. Lenient, as decoding needs: an ``I-``/``E-``
    that continues nothing starts an entity, and a type change ends one."""
    found: list[Entity] = []
    start, kind = -1, ""
    for i, tag in enumerate(tags):
        prefix, t = split_tag(tag)
        continues = prefix in ("I", "E") and t == kind and start >= 0
        if not continues and start >= 0:
            found.append(Entity(start, i, kind))
            start, kind = -1, ""
        if prefix != OUTSIDE and start < 0:
            start, kind = i, t
        if prefix in ("E", "S"):
            found.append(Entity(start, i + 1, kind))
            start, kind = -1, ""
    if start >= 0:
        found.append(Entity(start, len(tags), kind))
    return found


def tags_for(spans: Sequence[Entity], length: int, scheme: str = "BIO") -> list[str]:
    """One tag per position for ``spans`` (non-overlapping, ``end`` exclusive), in ``scheme``."""
    tags = [OUTSIDE] * length
    for s in spans:
        if scheme == "BIOES" and s.end - s.start == 1:
            tags[s.start] = f"S-{s.type}"
            continue
        tags[s.start] = f"B-{s.type}"
        for i in range(s.start + 1, s.end):
            tags[i] = f"I-{s.type}"
        if scheme == "BIOES":
            tags[s.end - 1] = f"E-{s.type}"
    return tags


def label_set(types: Sequence[str], scheme: str) -> list[str]:
    """Every tag of ``scheme`` over ``types``: ``O`` first, then per type in order."""
    prefixes = "BI" if scheme == "BIO" else "BIES"
    return [OUTSIDE] + [f"{p}-{t}" for t in sorted(types) for p in prefixes]


# ------------------------------------------------------------------------------------- readers


class _Unit(NamedTuple):
    """A character (KLUE) or token (CoNLL, JSONL) with its tag and the line it came from."""

    text: str
    tag: str
    line: int


def read_tagged(path: str | os.PathLike, format: str = "auto") -> TaggedCorpus:
    """The tagged sentences of ``path`` (see the module doc for the formats); ``auto`` picks JSONL by
    extension, KLUE when the file opens with ``## `` comment lines, CoNLL otherwise."""
    from malmoi.data.readers import _read_text

    if format not in FORMATS:
        raise MalmoiError("E234", f"unknown tagging format {format!r}; choose one of: {', '.join(FORMATS)}")
    path = Path(path)
    text = _read_text(path)
    if format == "auto":
        format = "jsonl" if path.suffix == ".jsonl" else "klue" if text.lstrip().startswith("## ") else "conll"
    sentences = _jsonl_units(path, text) if format == "jsonl" else _line_units(path, text, format)
    if not sentences:
        raise MalmoiError("E102", f"{path} holds no tagged sentence")
    scheme = scheme_of([u.tag for s in sentences for u in s])
    tagged = [_checked(path, units, scheme, joined=format != "klue") for units in sentences]
    types = sorted({e.type for s in tagged for e in entities(s.tags)})
    return TaggedCorpus(tagged, scheme, types)


def _line_units(path: Path, text: str, format: str) -> list[list[_Unit]]:
    sentences: list[list[_Unit]] = []
    current: list[_Unit] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if format == "klue" and line.startswith("##"):
            continue
        if not line.strip() and (format == "conll" or not line):  # a KLUE line " \tO" is a space character
            if current:
                sentences.append(current)
            current = []
            continue
        if format == "conll" and line.startswith("-DOCSTART-"):
            continue
        current.append(_unit(path, number, line, format))
    if current:
        sentences.append(current)
    return sentences


def _unit(path: Path, number: int, line: str, format: str) -> _Unit:
    if format == "klue":
        unit, tab, tag = line.rpartition("\t")
        if not tab or len(unit) != 1:
            raise MalmoiError("E120", f"{path}: line {number} is not one character, a tab and its tag "
                                      f"(KLUE format): {line[:40]!r}")
        return _Unit(unit, tag.strip(), number)
    fields = line.split("\t") if "\t" in line else line.split()
    if len(fields) < 2 or not fields[0].strip():
        raise MalmoiError("E120", f"{path}: line {number} is not a token and its tag (CoNLL format): {line[:40]!r}")
    return _Unit(fields[0].strip(), fields[-1].strip(), number)


def _jsonl_units(path: Path, text: str) -> list[list[_Unit]]:
    sentences = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise MalmoiError("E107", f"{path}: line {number} is not valid JSON ({e.msg})") from None
        tokens, tags = (obj.get("tokens"), obj.get("tags")) if isinstance(obj, dict) else (None, None)
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags) or not tokens:
            raise MalmoiError("E123", f'{path}: line {number} needs "tokens" and "tags", two lists of the same '
                                      "non-zero length")
        if not all(isinstance(t, str) and t.strip() for t in tokens) or not all(isinstance(t, str) for t in tags):
            raise MalmoiError("E123", f"{path}: line {number} has a token that is empty or not a string")
        sentences.append([_Unit(tok.strip(), tag.strip(), number) for tok, tag in zip(tokens, tags)])
    return sentences


def _checked(path: Path, units: list[_Unit], scheme: str, joined: bool) -> TaggedText:
    """A sentence's units as a ``TaggedText`` once their tags are known and follow ``scheme``."""
    allowed = set(scheme)
    for u in units:
        prefix, kind = split_tag(u.tag)
        if u.tag != OUTSIDE and (prefix not in allowed - {OUTSIDE} or not kind):
            raise MalmoiError("E121", f"{path}: line {u.line}: {u.tag!r} is not a {scheme} tag (O, or "
                                      f"{'/'.join(sorted(allowed - {OUTSIDE}))}-TYPE)")
    broken = check_sequence([u.tag for u in units], scheme)
    if broken is not None:
        u = units[broken]
        raise MalmoiError("E122", f"{path}: line {u.line}: {u.tag!r} breaks the {scheme} sequence "
                                  "(an entity must start with B-" + (" or S-, and end with E-)" if scheme == "BIOES"
                                                                       else ")"))
    if not joined:
        return TaggedText("".join(u.text for u in units), [u.tag for u in units])
    return _joined(units, scheme)


def _joined(units: list[_Unit], scheme: str) -> TaggedText:
    """Tokens joined by single spaces, their entities carried over to characters."""
    starts, pos = [], 0
    for u in units:
        starts.append(pos)
        pos += len(u.text) + 1
    text = " ".join(u.text for u in units)
    spans = [Entity(starts[e.start], starts[e.end - 1] + len(units[e.end - 1].text), e.type)
             for e in entities([u.tag for u in units])]
    return TaggedText(text, tags_for(spans, len(text), scheme))
