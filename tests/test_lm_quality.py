"""Nats per character: the character n-gram model checked on paper, the GPT scorer checked against
a token-by-token loop, and both refusing what they cannot score."""
from __future__ import annotations

import math
import unicodedata
from fractions import Fraction

import pytest

from malmoi.errors import MalmoiError
from malmoi.models.charlm import END, CharNgramLM
from malmoi.tasks import train
from malmoi.use.lm import LMGenerator

pytestmark = pytest.mark.usefixtures("one_thread")

DOCS = [
    "말모이는 우리말 사전을 만들기 위해 모은 낱말이다.",
    "오늘은 날씨가 맑고 바람이 시원하다.",
    "고양이가 창문 밖을 조용히 바라본다.",
]


def nats(*probabilities: Fraction) -> float:
    return -sum(math.log(p) for p in probabilities)


# ------------------------------------------------------------------------------ character n-grams

# Trained on "ab" and "aa": the predictions a b $ a a $ ($ = end of line).
# Unigram counts a 3, b 1, $ 2 of 6; one count of 1 and one of 2, so D1 = 1 / (1 + 2) = 1/3; the
# uniform floor is 1/4 (a, b, $, unknown) and gets D1 · 3 types / 6 = 1/6 of the mass:
P1 = {"a": Fraction(35, 72), "b": Fraction(11, 72), END: Fraction(23, 72), "unknown": Fraction(3, 72)}
# Bigram contexts (^ = start): ^ → a 2; a → b 1, a 1, $ 1; b → $ 1. Four counts of 1 and one of 2:
# D2 = 4 / (4 + 2) = 2/3, e.g. p(a | ^) = (2 − 2/3) / 2 + (2/3 · 1 / 2) · p1(a).
P2 = {("a", ""): Fraction(179, 216), ("b", "a"): Fraction(46, 216), (END, "ab"): Fraction(118, 216)}


def test_unigram_probabilities_and_nats_per_char_by_hand():
    lm = CharNgramLM(["ab", "aa"], order=1)
    assert [t.discount for t in lm.tables] == [pytest.approx(1 / 3)]
    for char in ("a", "b", END):
        assert lm.prob(char) == pytest.approx(float(P1[char]), abs=1e-15)
    assert lm.prob("c") == pytest.approx(float(P1["unknown"]), abs=1e-15)
    score = lm.score(["ab", "c"])
    assert (score.characters, score.lines, score.tokens, score.unknown) == (5, 2, 5, 1)
    expected = nats(P1["a"], P1["b"], P1[END], P1["unknown"], P1[END])
    assert score.total_nats == pytest.approx(expected, rel=1e-12)
    assert score.nats_per_char == pytest.approx(expected / 5, rel=1e-12)


def test_bigram_interpolates_with_the_unigram_by_hand():
    lm = CharNgramLM(["ab", "aa"], order=2)
    assert [t.discount for t in lm.tables] == [pytest.approx(1 / 3), pytest.approx(2 / 3)]
    for (char, context), p in P2.items():
        assert lm.prob(char, context) == pytest.approx(float(p), abs=1e-15)
    score = lm.score(["ab"])
    assert score.characters == 3
    assert score.nats_per_char == pytest.approx(nats(*P2.values()) / 3, rel=1e-12)
    # An unseen context hands everything to the unigram.
    assert lm.prob("a", "c") == pytest.approx(float(P1["a"]), abs=1e-15)


@pytest.mark.parametrize("order", [1, 3, 5])
@pytest.mark.parametrize("context", ["", "말", "말모", "오늘은 날씨", "고양이가 창문 밖을", "없는 문맥", "☃"])
def test_the_distribution_sums_to_one_and_is_never_zero(order, context):
    lm = CharNgramLM(DOCS, order=order)
    probabilities = [lm.prob(c, context) for c in lm.symbols] + [lm.prob("☃", context)]  # ☃: the unknown symbol
    assert END in lm.symbols
    assert math.fsum(probabilities) == pytest.approx(1.0, abs=1e-9)
    assert min(probabilities) > 0


def test_lines_are_nfc_normalised_before_counting_and_scoring():
    decomposed = [unicodedata.normalize("NFD", d) for d in DOCS]
    assert CharNgramLM(decomposed, order=3).score(decomposed) == CharNgramLM(DOCS, order=3).score(DOCS)
    assert CharNgramLM(DOCS, order=3).score(decomposed).characters == sum(len(d) + 1 for d in DOCS)


def test_a_higher_order_fits_its_training_text_better():
    scores = [CharNgramLM(DOCS, order=n).score(DOCS).nats_per_char for n in (1, 2, 3, 5)]
    assert scores == sorted(scores, reverse=True)


# ------------------------------------------------------------------------------ a GPT run

TINY = {"n_embd": 16, "n_layer": 1, "n_head": 2, "n_inner": 32, "n_positions": 32, "resid_pdrop": 0.0,
        "embd_pdrop": 0.0, "attn_pdrop": 0.0}


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm-quality")
    data = folder / "tiny.txt"
    data.write_text("\n".join(DOCS * 4) + "\n", encoding="utf-8")
    result = train(task="lm", data=data, out=folder / "run", vocab_size=60, block_size=16, batch_size=8,
                   max_steps=4, eval_every=4, sample_tokens=0, progress=False, model_overrides=TINY,
                   say=lambda message: None)
    return LMGenerator.from_run(result.run)


def token_by_token(generator: LMGenerator, line: str, window: int) -> float:
    """−ln p(line + [SEP]) one prediction at a time, each from the context the sliding window gives
    it: everything before it up to ``window`` − 1 tokens back, else the window starting at the last
    multiple of half a window that still holds the token."""
    import torch

    tok = generator.tokenizer
    ids = [tok.bos_token_id, *tok(line, add_special_tokens=False)["input_ids"], tok.eos_token_id]
    stride, total = window // 2, 0.0
    with torch.no_grad():
        for t in range(1, len(ids)):
            start = 0 if t < window else ((t - window) // stride + 1) * stride
            logits = generator.model(torch.tensor([ids[start:t]])).logits[0, -1]
            total -= float(torch.log_softmax(logits.double(), -1)[ids[t]])
    return total


def test_the_score_is_the_sum_of_token_log_probabilities(generator):
    line = DOCS[1]
    score = generator.score([line])
    assert score.total_nats == pytest.approx(token_by_token(generator, line, 16), rel=1e-5)
    assert score.characters == len(line) + 1 and score.lines == 1
    assert score.nats_per_char == pytest.approx(score.total_nats / (len(line) + 1))


def test_long_lines_are_scored_by_a_sliding_window(generator):
    line = " ".join(DOCS)
    assert len(generator.tokenizer(line, add_special_tokens=False)["input_ids"]) > 2 * 6
    for window in (6, 7, 16):
        expected = token_by_token(generator, line, window)
        assert generator.score([line], window=window).total_nats == pytest.approx(expected, rel=1e-5)


def test_batching_and_padding_do_not_change_the_score(generator):
    lines = [DOCS[0], "말", " ".join(DOCS), DOCS[2], "오늘은"]
    together = generator.score(lines, batch_size=2)
    alone = [generator.score([line]) for line in lines]
    assert together.total_nats == pytest.approx(sum(s.total_nats for s in alone), rel=1e-5)
    assert together.characters == sum(len(line) + 1 for line in lines)
    assert together.tokens == sum(s.tokens for s in alone)


def test_characters_are_counted_after_nfc_and_unknown_tokens_are_reported(generator):
    decomposed = unicodedata.normalize("NFD", DOCS[0])
    assert len(decomposed) > len(DOCS[0])
    assert generator.score([decomposed]).characters == len(DOCS[0]) + 1
    assert generator.score([decomposed]).total_nats == pytest.approx(generator.score([DOCS[0]]).total_nats)
    assert generator.score(["☃ 말 ☃☃"]).unknown == 2  # BPE fuses a run of unknown characters into one [UNK]
    assert generator.score(DOCS).unknown == 0


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "call, code",
    [
        (lambda g: g.score([]), "E472"),
        (lambda g: CharNgramLM([]), "E472"),
        (lambda g: CharNgramLM(DOCS).score([]), "E472"),
        (lambda g: g.score(["두 줄\n이다"]), "E473"),
        (lambda g: CharNgramLM(["널\x00문자"]), "E473"),
        (lambda g: g.score("한 줄"), "E428"),
        (lambda g: CharNgramLM(DOCS, order=0), "E201"),
        (lambda g: g.score(DOCS, window=33), "E222"),
        (lambda g: g.score(DOCS, window=1), "E222"),
        (lambda g: g.score(DOCS, batch_size=0), "E223"),
    ],
)
def test_what_cannot_be_scored_is_one_clear_error(generator, call, code):
    with pytest.raises(MalmoiError) as e:
        call(generator)
    assert e.value.code == code
