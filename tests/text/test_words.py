import unicodedata

import pytest

from malmoi.text.words import (MORPHEME_MARK, Morpheme, mark_morpheme_boundaries, morphemes, split_chars,
                               split_morphemes, split_words)


@pytest.mark.parametrize("text, expected", [
    ("나는 너를 좋아해", ["나는", "너를", "좋아해"]),
    ("  영화가\t정말\n재밌다  ", ["영화가", "정말", "재밌다"]),
    ("", []),
])
def test_split_words(text, expected):
    assert split_words(text) == expected


@pytest.mark.parametrize("text, keep_spaces, expected", [
    ("나는 너", False, ["나", "는", "너"]),
    ("나는  너 ", True, ["나", "는", "▁", "너"]),
    (unicodedata.normalize("NFD", "한글"), False, ["한", "글"]),  # syllables, not jamo
])
def test_split_chars(text, keep_spaces, expected):
    assert split_chars(text, keep_spaces=keep_spaces) == expected


MORPHEMES = [
    ("나는 너를 좋아해", ["나", "는", "너", "를", "좋아하", "어"]),
    ("영화가 재밌었어요", ["영화", "가", "재밌", "었", "어요"]),
    ("밥을 먹었다.", ["밥", "을", "먹", "었", "다", "."]),
]


@pytest.mark.parametrize("text, expected", MORPHEMES)
def test_split_morphemes_one_text(text, expected):
    assert split_morphemes(text) == expected


def test_split_morphemes_batch_matches_single_calls():
    texts = [t for t, _ in MORPHEMES] + [""]
    assert split_morphemes(texts) == [e for _, e in MORPHEMES] + [[]]


@pytest.mark.parametrize("text, expected", [
    ("나는 너를 좋아해", ["나/NP", "는/JX", "너/NP", "를/JKO", "좋아하/VV", "어/EF"]),
    ("밥을 먹었다.", ["밥/NNG", "을/JKO", "먹/VV", "었/EP", "다/EF", "./SF"]),
])
def test_split_morphemes_with_pos(text, expected):
    assert split_morphemes(text, pos=True) == expected


def test_morphemes_are_typed_with_offsets():
    ms = morphemes("나는 너를")
    assert ms[0] == Morpheme(form="나", tag="NP", start=0, len=1)
    assert [m.start for m in ms] == [0, 1, 3, 4]
    assert morphemes(["나는", "너를"])[1][1].tag == "JKO"


@pytest.mark.parametrize("text, expected", [
    ("나는 너를 좋아해", "나|는 너|를 좋아|해"),
    ("했다!", "했|다|!"),  # contracted 하+었 share a start: one piece
    ("영화가  재밌어", "영화|가  재밌|어"),  # spacing untouched
    ("나는 [MASK]를", "나|는 [MASK]|를"),
])
def test_mark_morpheme_boundaries(text, expected):
    marked = mark_morpheme_boundaries([text], keep=["[MASK]"])[0]
    assert marked.replace(MORPHEME_MARK, "|") == expected
    assert marked.replace(MORPHEME_MARK, "") == text


def _split_in_child(queue):
    queue.put(split_morphemes(["영화가 재밌다", "정말"]))


def test_forked_worker_gets_its_own_kiwi():
    """A forked DataLoader worker inherits Kiwi without its threads; reusing it would hang."""
    import multiprocessing as mp

    split_morphemes(["나는 너를"])  # the parent's Kiwi exists and has run its threads
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_split_in_child, args=(queue,))
    child.start()
    try:
        assert queue.get(timeout=60) == [["영화", "가", "재밌", "다"], ["정말"]]
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
