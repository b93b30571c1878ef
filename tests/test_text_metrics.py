"""ROUGE-L on characters, exact match and the corpus scores of generated text, checked by hand."""
from __future__ import annotations

import unicodedata

import pytest

from malmoi.training.text_metrics import exact_match, lcs_length, rouge_l, text_scores


@pytest.mark.parametrize("a, b, n", [("오늘체감온도", "체감온도", 4), ("오늘날씨", "내일날씨", 2), ("가나다", "다나가", 1),
                                     ("", "가", 0), ("abcbdab", "bdcaba", 4)])
def test_the_longest_common_subsequence(a, b, n):
    assert lcs_length(a, b) == lcs_length(b, a) == n


@pytest.mark.parametrize(
    "hypothesis, reference, f1",
    [
        ("오늘 체감온도", "오늘 체감 온도", 1.0),   # spaces do not count
        ("오늘 날씨", "내일 날씨", 0.5),           # 날씨 of 4 and 4 characters
        ("체감온도", "오늘 체감온도", 0.8),         # P 4/4, R 4/6
        ("비", "눈", 0.0),
        ("", "", 1.0),
        ("", "눈", 0.0),
    ],
)
def test_rouge_l_on_characters_by_hand(hypothesis, reference, f1):
    assert rouge_l(hypothesis, reference) == pytest.approx(f1)


def test_exact_match_folds_normalisation_and_spacing_only():
    decomposed = unicodedata.normalize("NFD", "오늘 체감온도")
    assert exact_match(decomposed, "오늘  체감온도 ")
    assert not exact_match("오늘 체감 온도", "오늘 체감온도")


def test_corpus_scores_average_rouge_and_count_exact_answers():
    scores = text_scores(["오늘 체감온도", "비"], ["오늘 체감온도", "눈"])
    assert scores["rouge_l"] == pytest.approx(50.0) and scores["exact"] == 0.5
    assert 0 < scores["chrf"] < 100 and 0 <= scores["bleu"] < 100
    assert text_scores(["같아요"], ["같아요"])["chrf"] == pytest.approx(100.0)
    with pytest.raises(ValueError):
        text_scores(["하나"], [])
