"""Hashed n-gram featurizer: which n-grams each kind yields, ids that never depend on the process,
the vectorised path against the plain one, persistence and the tokenizer-style call."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
import torch

from malmoi.errors import MalmoiError
from malmoi.text.ngrams import CONFIG_FILE, KINDS, NgramConfig, NgramFeaturizer, is_featurizer_folder, scalar_id
from malmoi.text.words import morphemes

OFF = {kind: None for kind in KINDS}


def only(kind: str, span: tuple[int, int], **extra) -> NgramFeaturizer:
    return NgramFeaturizer(NgramConfig(**{**OFF, kind: span, **extra}))


KINDS_TABLE = [
    ("chars", (1, 1), "영화 굿", [" ", "영", "화", " ", "굿", " "]),
    ("chars", (2, 2), "영화 굿", [" 영", "영화", "화 ", " 굿", "굿 "]),
    ("chars", (3, 3), "재밌다", [" 재밌", "재밌다", "밌다 "]),
    ("joined", (2, 2), "재 밌 다", ["재밌", "밌다"]),
    ("joined", (3, 4), "노잼 영화", ["노잼영", "잼영화", "노잼영화"]),
    ("words", (1, 2), "정말 최고의 영화", ["정말", "최고의", "영화", "정말 최고의", "최고의 영화"]),
    ("words", (3, 3), "정말 최고의 영화", ["정말 최고의 영화"]),
    ("words", (2, 2), "굿", []),
    ("morphemes", (1, 1), "영화가 재밌었어요", ["영화", "가", "재밌", "었", "어요"]),
    ("morphemes", (2, 2), "재밌었어요", ["재밌 었", "었 어요"]),
    ("tagged", (1, 1), "나는 너를", ["나/NP", "는/JX", "너/NP", "를/JKO"]),
    ("jamo", (3, 3), "맛", [" \u1106\u1161", "\u1106\u1161\u11ba", "\u1161\u11ba "]),  # " ㅁㅏ", "ㅁㅏㅅ", "ㅏㅅ "
    ("jamo", (2, 2), "가 a", [" \u1100", "\u1100\u1161", "\u1161 ", " a", "a "]),
    ("tail_chars", (2, 2), "정말 너무 재밌다", [" 너", "너무", "무 ", " 재", "재밌", "밌다", "다 "]),
    ("tail_chars", (1, 1), "굿", [" ", "굿", " "]),
    ("tail_tagged", (1, 1), "이 영화가 재밌었어요!!", ["영화/NNG", "가/JKS", "재밌/VA", "었/EP", "어요/EF"]),
    ("tail_tagged", (2, 2), "10점 만점에 10점", ["점/NNB 만점/NNG", "만점/NNG 에/JKB", "에/JKB 점/NNB"]),
]


@pytest.mark.parametrize("kind, span, text, expected", KINDS_TABLE)
def test_ngram_kinds(kind, span, text, expected):
    grams = only(kind, span).ngrams(text)
    assert [g.text for g in grams] == expected
    assert {g.kind for g in grams} <= {kind}


@pytest.mark.parametrize("text, normalised", [
    ("ㅋㅋㅋㅋㅋㅋ 최고!!!!!", "ㅋㅋㅋ 최고!!!"),
    ("  GOOD   Movie\t", "good movie"),
    ("ㅎㅎ", "ㅎㅎ"),
])
def test_normalize(text, normalised):
    assert NgramFeaturizer().normalize(text) == normalised


def test_spacing_does_not_change_joined_ngrams():
    f = only("joined", (1, 3))
    assert f.encode(["정말 재밌다"]).row(0).tolist() == f.encode(["정말재밌다"]).row(0).tolist()


def test_separate_kinds_own_their_share_of_the_ids():
    f = NgramFeaturizer(FULL)
    assert FULL.groups == 8
    for gram in f.ngrams("영화가 정말 재밌었어요 ㅋㅋ"):
        assert (gram.id - 1) % 8 == FULL.kinds.index(gram.kind)
    shared = NgramFeaturizer(NgramConfig(chars=(1, 2), words=(1, 1), separate_kinds=False))
    assert shared.config.groups == 1 and shared.config.slot("words") == 0


def test_kinds_and_sizes_hash_apart():
    """The same string as a word, a morpheme or a character n-gram gets a different id."""
    ids = {kind: scalar_id(kind, ("영화",) if kind not in ("chars", "joined") else ("영", "화"), 1 << 20)
           for kind in ("chars", "joined", "words", "morphemes")}
    assert len(set(ids.values())) == len(ids)


TEXTS = ["영화 재밌다!!!!!", "ㅋㅋㅋㅋㅋ 최고", "", "Good 영화 ㅎㅎ", "a",
         "배우들 연기가 너무 좋았어요. 10점 만점에 10점"]
FULL = NgramConfig(buckets=1 << 16, chars=(1, 4), joined=(2, 3), jamo=(2, 4), words=(1, 2), morphemes=(1, 2),
                   tagged=(1, 1), tail_chars=(1, 3), tail_tagged=(1, 2))


def test_vectorised_ids_equal_the_plain_computation():
    f = NgramFeaturizer(FULL)
    enc = f.encode(TEXTS)
    assert len(enc) == len(TEXTS)
    for i, text in enumerate(TEXTS):
        assert enc.row(i).tolist() == [g.id for g in f.ngrams(text)], text
    assert enc.row(2).size == 0  # an empty text has no n-grams
    assert enc.ids.min() >= 1 and enc.ids.max() <= FULL.buckets


def test_a_batch_encodes_each_text_as_alone():
    f = NgramFeaturizer(FULL)
    together = f.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        assert together.row(i).tolist() == f.encode([text]).row(0).tolist()


CHILD = """
import json, sys
from malmoi.text.ngrams import NgramConfig, NgramFeaturizer
cfg = NgramConfig(**json.loads(sys.argv[1]))
print(json.dumps(NgramFeaturizer(cfg).encode(json.loads(sys.argv[2])).ids.tolist()))
"""


@pytest.mark.parametrize("seed", ["1", "12345"])
def test_ids_do_not_depend_on_the_process(seed):
    """Python's str hash changes with PYTHONHASHSEED; the featurizer's ids must not."""
    cfg = dict(buckets=1 << 16, chars=[1, 3], words=[1, 2], joined=[2, 2])
    here = NgramFeaturizer(NgramConfig.from_dict(cfg)).encode(TEXTS).ids.tolist()
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg), json.dumps(TEXTS)], env=env,
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == here


def test_known_ids_stay_fixed():
    """Saved models rely on these exact ids: changing the hash would silently break them."""
    assert [scalar_id("chars", tuple("영화"), 1 << 20), scalar_id("words", ("영화",), 1 << 20),
            scalar_id("words", ("좋은", "영화"), 1 << 20)] == [792841, 849871, 596173]


def test_save_and_load(tmp_path):
    f = NgramFeaturizer(FULL)
    f.save_pretrained(tmp_path)
    assert is_featurizer_folder(tmp_path)
    saved = json.loads((tmp_path / CONFIG_FILE).read_text(encoding="utf-8"))
    assert saved["words"] == [1, 2] and saved["buckets"] == 1 << 16
    g = NgramFeaturizer.from_pretrained(tmp_path)
    assert g.config == f.config
    assert g.encode(TEXTS).ids.tolist() == f.encode(TEXTS).ids.tolist()


def test_kiwi_leaves_out_its_multi_word_dictionary_except_for_featurizers_saved_with_it(tmp_path):
    from malmoi.text.words import kiwi

    assert NgramFeaturizer(FULL).config.kiwi_multi_dict is False
    NgramFeaturizer(FULL).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / CONFIG_FILE).read_text(encoding="utf-8"))
    del saved["kiwi_multi_dict"]  # as a run saved before the setting existed
    (tmp_path / CONFIG_FILE).write_text(json.dumps(saved), encoding="utf-8")
    old = NgramFeaturizer.from_pretrained(tmp_path)
    assert old.config.kiwi_multi_dict is True
    text = "구로사와 기요시 감독의 영화"  # a multi-word name: one morpheme only with the dictionary
    new_ids, old_ids = NgramFeaturizer(FULL).encode([text]).ids.tolist(), old.encode([text]).ids.tolist()
    assert new_ids != old_ids
    assert [m.form for m in kiwi(True).tokenize(text)][0] == "구로사와 기요시"
    assert [m.form for m in kiwi(False).tokenize(text)][:2] == ["구로사와", "기요시"]


def test_load_refuses_a_folder_without_it(tmp_path):
    with pytest.raises(MalmoiError) as e:
        NgramFeaturizer.from_pretrained(tmp_path)
    assert e.value.code == "E450"


@pytest.mark.parametrize("settings", [
    dict(buckets=0),
    dict(chars=(0, 2)),
    dict(words=(3, 2)),
    dict(chars=(1, 9)),
    dict(**OFF),
    dict(buckets=2, chars=(1, 1), words=(1, 1), morphemes=(1, 1)),
])
def test_bad_settings(settings):
    with pytest.raises(MalmoiError) as e:
        NgramConfig(**settings)
    assert e.value.code == "E260"


def test_tokenizer_style_call_pads_with_zero():
    f = only("chars", (1, 2))
    out = f(["영화 굿", "굿"], return_tensors="pt", padding=True, truncation=True, max_length=3)
    ids = out["input_ids"]
    assert ids.dtype == torch.long and ids.shape == (2, 11)  # "영화 굿": 6 unigrams + 5 bigrams
    assert (ids[1, 5:] == 0).all() and (ids[1, :5] > 0).all()  # " 굿 ": 3 unigrams + 2 bigrams
    assert f("굿")["input_ids"] == f(["굿"])["input_ids"][0]
    assert len(f) == f.config.buckets + 1 and f.pad_token_id == 0


def test_encode_refuses_a_bare_string():
    with pytest.raises(MalmoiError):
        NgramFeaturizer().encode("영화")


def test_lengths_and_rows_agree():
    enc = NgramFeaturizer(FULL).encode(TEXTS)
    assert enc.lengths.tolist() == [enc.row(i).size for i in range(len(TEXTS))]
    assert enc.indptr[-1] == enc.ids.size and isinstance(enc.ids, np.ndarray)


# ------------------------------------------------------------------------------------- spans


@pytest.mark.parametrize("text, settings, norm, spans", [
    ("  a \t b  ", {}, "a b", [(2, 3), (3, 6), (6, 7)]),  # a whitespace run is the one space
    ("\u1100\u1161\u11a8 X", {}, "각 x", [(0, 3), (3, 4), (4, 5)]),  # conjoining jamo merge into one syllable
    ("İA", {}, "i\u0307a", [(0, 1), (0, 1), (1, 2)]),  # lower() lengthens İ: both pieces are its
    ("ΟΔΟΣ", {}, "οδος", [(0, 1), (1, 2), (2, 3), (3, 4)]),  # final sigma lowers in context
    ("ㅋㅋㅋㅋㅋ!", {}, "ㅋㅋㅋ!", [(0, 1), (1, 2), (2, 5), (5, 6)]),  # the last kept ㅋ stands for the cut ones
    ("ㅋㅋㅋㅋㅋ", dict(max_repeat=0, lowercase=False), "ㅋㅋㅋㅋㅋ", [(i, i + 1) for i in range(5)]),
    ("AB  CD", dict(lowercase=False, max_chars=4), "AB", [(0, 1), (1, 2)]),
    ("", {}, "", []),
])
def test_normalize_with_map(text, settings, norm, spans):
    f = NgramFeaturizer(NgramConfig(**settings))
    got, starts, ends = f._normalize_with_map(text)
    assert got == norm == f.normalize(text)
    assert list(zip(starts, ends)) == spans


SPAN_TEXTS = [
    "  영화가  정말 GOOD!! ㅋㅋㅋㅋㅋㅋㅋㅋ 😀 재밌었어요  ",
    "배우들 연기가\t너무 좋았어요.\n\n10점 만점에 10점 👍🏻 ",
    "이 영화 WORST... ㅠㅠㅠㅠㅠ 돈 아까워",
    "\u1112\u1161\u11ab\u1100\u1173\u11af  텍스트 ÉCOLE",  # conjoining jamo, upper-case with an accent
    "ㅋㅋㅋㅋㅋㅋㅋㅋ",
    " ",
]


def _cut(f: NgramFeaturizer, text: str) -> set[int]:
    """Offsets of ``text`` that normalising drops from a long run (an n-gram over them cannot read back as itself)."""
    k = f.config.max_repeat
    return {i for m in re.finditer(r"(.)\1{%d,}" % k, text) for i in range(m.start() + k, m.end())}


@pytest.mark.parametrize("text", SPAN_TEXTS)
def test_every_ngram_spans_the_input_it_came_from(text):
    f = NgramFeaturizer(FULL)
    grams = f.ngrams(text)
    assert [g.id for g in grams] == f.encode([text]).row(0).tolist()  # spans leave the ids as they were
    checked, cut = 0, _cut(f, text)
    for g in grams:
        assert 0 <= g.start <= g.end <= len(text), g
        assert g.end > g.start or g.text == " ", g  # only a lone edge space covers nothing
        stretch = text[g.start:g.end]
        clean = cut.isdisjoint(range(g.start - 1, g.end))  # (a kept character before the cut spans it)
        if g.kind in ("chars", "tail_chars", "joined") and clean:
            read = f.normalize(stretch)
            assert (read.replace(" ", "") if g.kind == "joined" else read) == g.text.strip(), (g, stretch)
            checked += 1
        if g.kind == "jamo" and clean:
            assert g.text.strip() in unicodedata.normalize("NFD", f.normalize(stretch)), (g, stretch)
    assert checked or not text.strip()


@pytest.mark.parametrize("text", SPAN_TEXTS)
def test_an_ngram_spans_its_first_to_its_last_unit(text):
    grams = NgramFeaturizer(NgramConfig(buckets=1 << 16, **{kind: (1, 3) for kind in KINDS})).ngrams(text)
    for kind in KINDS:
        units = [(g.start, g.end) for g in grams if g.kind == kind and len(g.units) == 1]
        assert units or kind == "tail_tagged" or not text.strip()  # (a text of symbols has no tail)
        for n in (2, 3):
            longer = [(g.start, g.end) for g in grams if g.kind == kind and len(g.units) == n]
            assert longer == [(min(s for s, _ in units[i:i + n]), max(e for _, e in units[i:i + n]))
                              for i in range(len(units) - n + 1)], (kind, n)


@pytest.mark.parametrize("text", SPAN_TEXTS)
def test_words_span_exactly_the_original_words(text):
    grams = NgramFeaturizer(FULL).ngrams(text)
    assert [text[g.start:g.end] for g in grams if g.kind == "words" and len(g.units) == 1] == text.split()
    for g in grams:
        if g.kind == "words" and len(g.units) == 2:
            assert [NgramFeaturizer(FULL).normalize(w) for w in text[g.start:g.end].split()] == list(g.units)


@pytest.mark.parametrize("text", SPAN_TEXTS)
def test_morpheme_spans_cover_their_surface(text):
    f = NgramFeaturizer(FULL)
    norm = f.normalize(text)
    analysed = morphemes(norm)
    grams = f.ngrams(text)
    forms = [g for g in grams if g.kind == "morphemes" and len(g.units) == 1]
    tagged = [g for g in grams if g.kind == "tagged"]
    assert [g.units[0] for g in forms] == [m.form for m in analysed]
    for g, m in zip(forms, analysed):
        assert f.normalize(text[g.start:g.end]) == norm[m.start:m.start + m.len], (g, m)
    assert [(g.start, g.end) for g in tagged] == [(g.start, g.end) for g in forms]
    # the tail's spans follow its filter: the last morphemes that are not symbols (S* tags)
    tail = [(g.start, g.end) for g in grams if g.kind == "tail_tagged" and len(g.units) == 1]
    kept = [(g.start, g.end) for g in tagged if not g.units[0].rsplit("/", 1)[1].startswith("S")]
    assert tail == kept[-FULL.tail_morphemes:]


@pytest.mark.parametrize("kind, span, text, expected", [
    ("chars", (2, 2), " 영화  굿 ", [(" 영", 1, 2), ("영화", 1, 3), ("화 ", 2, 5), (" 굿", 3, 6), ("굿 ", 5, 6)]),
    ("chars", (1, 1), "굿", [(" ", 0, 0), ("굿", 0, 1), (" ", 1, 1)]),
    ("chars", (3, 3), "ㅋㅋㅋㅋㅋㅋㅋㅋ", [(" ㅋㅋ", 0, 2), ("ㅋㅋㅋ", 0, 8), ("ㅋㅋ ", 1, 8)]),
    ("joined", (2, 2), "재  밌", [("재밌", 0, 4)]),
    ("jamo", (2, 2), "\u1106\u1161\u11ba", [(" \u1106", 0, 3), ("\u1106\u1161", 0, 3), ("\u1161\u11ba", 0, 3),
                                             ("\u11ba ", 0, 3)]),
    ("words", (1, 2), "GOOD  Movie", [("good", 0, 4), ("movie", 6, 11), ("good movie", 0, 11)]),
    ("tail_chars", (2, 2), "A  B C", [(" b", 3, 4), ("b ", 3, 5), (" c", 4, 6), ("c ", 5, 6)]),
    ("morphemes", (1, 2), "했다", [("하", 0, 1), ("었", 0, 1), ("다", 1, 2), ("하 었", 0, 1), ("었 다", 0, 2)]),
    ("chars", (1, 2), "   ", []),
])
def test_spans_by_kind(kind, span, text, expected):
    settings = dict(tail_words=2) if kind == "tail_chars" else {}
    assert [(g.text, g.start, g.end) for g in only(kind, span, **settings).ngrams(text)] == expected
