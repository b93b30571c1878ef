"""Characters → the ids a character tagger reads: for each character of a sentence (spaces included)
its own id, the id of the bigram it opens, the part of speech of the Kiwi morpheme it belongs to
(with B/I: first character of the morpheme or not), its place in its whitespace word, and the hashed
ids of ``GRAMS`` window features (the characters, bigrams and trigrams within two characters either
side and the parts of speech around it: the classic CRF feature set, which the tagger connects
straight to its output as Huang, Xu and Yu's BiLSTM-CRF does).

Korean entities end where a particle begins (``이순신`` + ``은``) and their types follow the
morpheme's part of speech (NNP proper noun, SN number + NNB unit noun ``명``, ``년``), which a
character alone does not show; the bigram carries the syllable pair a name or a unit is made of.

    f = CharFeaturizer.fit(["이순신은 1545년에 태어났다"])
    f.encode("이순신은")  # {"chars": [...], "bigrams": [...], "morphs": [...], "words": [...]}
"""
from __future__ import annotations

import json
import os
import zlib
from collections import Counter
from pathlib import Path
from typing import Sequence

from malmoi.files import atomic_write_json

FEATURES_FILE = "char_features.json"
FORMAT = "malmoi.char-features/1"
PAD, UNK = "<pad>", "<unk>"
SPACE = "<space>"
WORD_PLACES = [PAD, "B", "M", "E", "S", SPACE]
"""A character's place in its whitespace word: begins, middle, ends, the word is one character; or a space."""
FIELDS = ("chars", "bigrams", "morphs", "words")
GRAMS = 18
"""Window features per character (``window_features``)."""


def morph_tags(texts: Sequence[str]) -> list[list[str]]:
    """For each character of each text: ``B-`` or ``I-`` + the part of speech of the Kiwi morpheme
    that covers it (the first, where contracted morphemes overlap), ``<space>`` for whitespace and
    ``O`` for a character no morpheme covers."""
    from malmoi.text.words import kiwi

    out = []
    for text, tokens in zip(texts, kiwi(multi_dict=False).tokenize(list(texts))):
        tags = [SPACE if c.isspace() else "O" for c in text]
        for t in tokens:
            for i in range(t.start, min(t.start + t.len, len(text))):
                if tags[i] == "O":
                    tags[i] = ("B-" if i == t.start else "I-") + t.tag
        out.append(tags)
    return out


def word_places(text: str) -> list[str]:
    places = []
    for i, c in enumerate(text):
        if c.isspace():
            places.append(SPACE)
            continue
        first = i == 0 or text[i - 1].isspace()
        last = i == len(text) - 1 or text[i + 1].isspace()
        places.append("S" if first and last else "B" if first else "E" if last else "M")
    return places


def bigrams(text: str) -> list[str]:
    """The bigram each character opens (the last one pairs with an end mark)."""
    return [text[i:i + 2] if i + 1 < len(text) else text[i] + "</s>" for i in range(len(text))]


def char_kind(c: str) -> str:
    if c.isspace():
        return "_"
    if "가" <= c <= "힣":
        return "H"
    if c.isdigit():
        return "9"
    return "A" if c.isascii() and c.isalpha() else "."


def window_features(text: str, morphs: list[str], places: list[str]) -> list[list[str]]:
    """``GRAMS`` features of each character: characters at -2…+2, bigrams starting at -2…+1,
    trigrams at -2…0, its kind (Hangul, digit, Latin, space, other), parts of speech at -1…+1,
    character with its part of speech and with its place in the word, kinds at -1…+1."""
    pad = "^^" + text + "$$"
    tags = ["^", "^"] + morphs + ["$", "$"]
    out = []
    for i in range(len(text)):
        j = i + 2
        feats = [f"c{d}={pad[j + d]}" for d in range(-2, 3)]
        feats += [f"b{d}={pad[j + d:j + d + 2]}" for d in range(-2, 2)]
        feats += [f"t{d}={pad[j + d:j + d + 3]}" for d in range(-2, 1)]
        feats += [f"m{d}={tags[j + d]}" for d in range(-1, 2)]
        feats += [f"k={char_kind(text[i])}", f"cm={text[i]}/{morphs[i]}", f"cw={text[i]}/{places[i]}",
                  "K=" + "".join(char_kind(c) for c in pad[j - 1:j + 2])]
        out.append(feats)
    return out


def hashed(features: list[str], buckets: int) -> list[int]:
    """Stable ids in [1, buckets) (0 is padding): the same in every process, unlike ``hash``."""
    return [1 + zlib.crc32(f.encode("utf-8")) % (buckets - 1) for f in features]


class CharFeaturizer:
    """The id tables of the four features, fitted on training sentences, and the number of hash
    buckets of the window features (0: none)."""

    def __init__(self, tables: dict[str, list[str]], buckets: int = 0):
        self.tables = tables
        self.buckets = buckets
        self.index = {name: {tok: i for i, tok in enumerate(toks)} for name, toks in tables.items()}

    @classmethod
    def fit(cls, texts: Sequence[str], min_bigram_count: int = 2, buckets: int = 0) -> "CharFeaturizer":
        """Tables from ``texts``: every character, the bigrams seen ``min_bigram_count`` times, every
        part-of-speech tag Kiwi gives them (unseen ones read ``<unk>`` later); ``buckets`` > 0 adds
        the hashed window features."""
        chars = Counter(c for t in texts for c in t)
        pairs = Counter(b for t in texts for b in bigrams(t))
        morphs = Counter(m for tags in morph_tags(texts) for m in tags)
        return cls({
            "chars": [PAD, UNK] + sorted(chars),
            "bigrams": [PAD, UNK] + sorted(b for b, n in pairs.items() if n >= min_bigram_count),
            "morphs": [PAD, UNK] + sorted(morphs),
            "words": list(WORD_PLACES),
        }, buckets)

    def sizes(self) -> dict[str, int]:
        return {name: len(toks) for name, toks in self.tables.items()}

    def encode_many(self, texts: Sequence[str]) -> list[dict[str, list[int]]]:
        """The four id lists of each text, each as long as the text."""
        return [self._ids(text, morphs) for text, morphs in zip(texts, morph_tags(texts))]

    def encode(self, text: str) -> dict[str, list[int]]:
        return self.encode_many([text])[0]

    def _ids(self, text: str, morphs: list[str]) -> dict[str, list[int]]:
        units = {"chars": list(text), "bigrams": bigrams(text), "morphs": morphs, "words": word_places(text)}
        ids = {name: [self.index[name].get(u, 1) for u in units[name]] for name in FIELDS}
        if self.buckets:
            ids["grams"] = [hashed(f, self.buckets) for f in window_features(text, morphs, units["words"])]
        return ids

    def convert_ids_to_tokens(self, i: int) -> str:
        """The character a ``chars`` id stands for (as a tokenizer spells its ids)."""
        return self.tables["chars"][int(i)]

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        atomic_write_json(Path(folder) / FEATURES_FILE, {"format": FORMAT, "tables": self.tables,
                                                         "buckets": self.buckets})

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "CharFeaturizer":
        data = json.loads((Path(folder) / FEATURES_FILE).read_text(encoding="utf-8"))
        return cls(data["tables"], data.get("buckets", 0))


def is_char_featurizer_folder(folder: str | os.PathLike) -> bool:
    return (Path(folder) / FEATURES_FILE).is_file()
