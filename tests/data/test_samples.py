"""The bundled samples: present, readable through the readers, distinct, balanced, small."""
from __future__ import annotations

from collections import Counter

import pytest

from malmoi.data.readers import read_labelled, read_pairs, read_texts
from malmoi.data.samples import SAMPLES, sample_path
from malmoi.errors import MalmoiError


def test_every_sample_exists_and_is_small():
    for name in SAMPLES:
        path = sample_path(name)
        assert path.is_file()
        assert path.stat().st_size < 200_000


def test_unknown_sample_name_lists_the_known_ones():
    with pytest.raises(MalmoiError) as e:
        sample_path("nsmc")
    assert e.value.code == "E242" and "reviews, chatbot, corpus" in e.value.message


def test_reviews_count_balance_and_distinct():
    got = read_labelled(sample_path("reviews"), "document", "label", allowed=["0", "1"])
    assert len(got.texts) >= 400 and got.skipped_empty == 0
    counts = Counter(got.labels)
    assert set(counts) == {"0", "1"}
    assert abs(counts["0"] - counts["1"]) <= 0.05 * len(got.labels)
    assert len(set(got.texts)) == len(got.texts)


def test_reviews_vary_in_length():
    words = [len(t.split()) for t in read_labelled(sample_path("reviews"), "document", "label").texts]
    assert min(words) >= 2 and max(words) <= 40
    assert sum(w >= 15 for w in words) >= 10  # some long reviews, not only one-liners


def test_reviews_ids_are_unique():
    ids = [line.split("\t")[0] for line in sample_path("reviews").read_text(encoding="utf-8").splitlines()[1:]]
    assert len(ids) == len(set(ids))


def test_chatbot_pairs_labels_and_distinct_questions():
    questions, answers, skipped = read_pairs(sample_path("chatbot"), "Q", "A")
    assert len(questions) >= 200 and skipped == 0
    assert len(set(questions)) == len(questions)
    assert max(len(a) for a in answers) <= 60  # a friendly chatbot answers briefly
    labels = read_labelled(sample_path("chatbot"), "Q", "label", allowed=["0", "1", "2"]).labels
    counts = Counter(labels)
    assert set(counts) == {"0", "1", "2"} and min(counts.values()) >= 50


def test_chatbot_csv_exercises_quoting():
    questions, answers, _ = read_pairs(sample_path("chatbot"), "Q", "A")
    assert any("," in q for q in questions) and any('"' in q for q in questions)


def test_corpus_lines_distinct_and_korean():
    lines = read_texts(sample_path("corpus"))
    assert len(lines) >= 300
    assert len(set(lines)) == len(lines)
    hangul = sum(any("\uac00" <= ch <= "\ud7a3" for ch in line) for line in lines)
    assert hangul == len(lines)


def test_reviews_signal_is_learnable():
    # A word-count naive Bayes, trained on 80%, must clearly beat chance on the other 20%.
    import math
    import random

    got = read_labelled(sample_path("reviews"), "document", "label")
    rows = list(zip(got.texts, got.labels))
    random.Random(0).shuffle(rows)
    cut = int(0.8 * len(rows))
    train, test = rows[:cut], rows[cut:]

    def grams(text: str) -> list[str]:
        chars = text.replace(" ", "_")
        return [chars[i:i + 2] for i in range(len(chars) - 1)]

    counts = {y: Counter() for y in ("0", "1")}
    for text, y in train:
        counts[y].update(grams(text))
    vocab = set(counts["0"]) | set(counts["1"])
    totals = {y: sum(c.values()) + len(vocab) for y, c in counts.items()}

    def predict(text: str) -> str:
        score = {y: sum(math.log((counts[y][g] + 1) / totals[y]) for g in grams(text)) for y in counts}
        return max(score, key=score.get)

    accuracy = sum(predict(t) == y for t, y in test) / len(test)
    assert accuracy >= 0.7
