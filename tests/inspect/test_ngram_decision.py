"""`malmoi inspect` on an n-gram classifier: each member's n-gram contributions plus its bias are its
logits as the model's own forward computes them, and the probabilities are `predict`'s."""
from __future__ import annotations

import json
import math
import unicodedata

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = [
    "이 영화 진짜 재밌다 ㅋㅋㅋㅋㅋㅋ 👍👍",
    "배우  연기는   좋은데 스토리가 별로...",
    "최악최악최악 😡 돈 아깝다",
    "ABC Good 굿굿!!",
    unicodedata.normalize("NFD", "재밌다 정말 재밌다"),  # conjoining jamo: spans go through NFC
    "뷁",  # one character the training texts never had
]
BASE = ["chars", "joined", "words", "morphemes", "tagged"]
# the full preset's four kinds of member, tiny; rows=512 folds the 4096 buckets so rows collide
FULL = dict(buckets=1 << 12, members=[
    dict(pooling="attention", heads=2, dim=8, per_kind=False, kinds=BASE, rows=512),
    dict(pooling="attention", heads=2, dim=4, per_kind=True, kinds=BASE + ["jamo"]),
    dict(pooling="mean", dim=4, per_kind=True, kinds=BASE + ["tail_chars", "tail_tagged"]),
    dict(pooling="nb"),
])


def _train(tmp, preset: str, overrides: dict | None = None):
    import malmoi
    from malmoi.data.samples import sample_path

    run = tmp / preset
    malmoi.train(task="classify", data=sample_path("reviews"), text="document", label="label", out=run,
                 preset=preset, epochs=2, seed=1, progress=False, say=lambda m: None,
                 model_overrides=overrides or {})
    return malmoi.load(run)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("small"), "ngram-small")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    classifier = _train(tmp_path_factory.mktemp("full"), "ngram", FULL)
    torch.manual_seed(0)
    with torch.no_grad():  # sharper attention than two epochs learn, so the weights are far from even
        for member in classifier.model.members:
            if member.bag.pooling == "attention":
                member.score.weight.normal_(0, 10.0)
    return classifier


@pytest.fixture(scope="module")
def hidden(small):
    """Mean and attention members behind a hidden ReLU layer, random weights (no training needed)."""
    from malmoi.models.ngram import classifier_for_preset
    from malmoi.use.classifier import TextClassifier

    torch.manual_seed(1)
    members = [dict(pooling="mean", dim=6), dict(pooling="attention", dim=4, heads=3, per_kind=True)]
    model = classifier_for_preset("ngram-small", small.tokenizer, 2, overrides=dict(hidden=5, members=members))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        for member in model.members:
            member.embed.weight[0].zero_()  # the padding row, as every table keeps it
    return TextClassifier(model.eval(), small.tokenizer, small.labels, 128)


CLASSIFIERS = ["small", "full", "hidden"]


def _record(classifier, text):
    from malmoi.inspect.ngram import ngram_decision

    return ngram_decision(classifier, text)


def _ids(classifier, text):
    return torch.from_numpy(classifier.tokenizer.encode([text]).row(0))[None].long()


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("text", TEXTS)
def test_contributions_plus_bias_are_each_members_logits(request, name, text):
    classifier = request.getfixturevalue(name)
    record = _record(classifier, text)
    ids = _ids(classifier, text)
    assert len(record["members"]) == len(classifier.model.members)
    with torch.no_grad():
        for member, shown in zip(classifier.model.members, record["members"]):
            logits = member(ids)[0]
            for j, label in enumerate(classifier.labels):
                total = shown["bias"][label] + math.fsum(c["contribution"][label] for c in shown["contributions"])
                assert total == pytest.approx(float(logits[j]), abs=1e-5), (shown["name"], label)
                assert shown["logits"][label] == pytest.approx(float(logits[j]), abs=1e-5)


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("text", TEXTS)
def test_probabilities_are_predicts_and_the_mean_of_the_members(request, name, text):
    classifier = request.getfixturevalue(name)
    record = _record(classifier, text)
    predicted = classifier.predict([text])[0]
    assert record["label"] == predicted.label and record["score"] == pytest.approx(predicted.score, abs=1e-6)
    members = record["members"]
    with torch.no_grad():
        model_p = classifier.model(_ids(classifier, text)).logits.softmax(-1)[0]
    for j, label in enumerate(classifier.labels):
        assert record["probabilities"][label] == pytest.approx(predicted.probabilities[label], abs=1e-6)
        assert record["probabilities"][label] == pytest.approx(float(model_p[j]), abs=1e-6)
        mean = sum(m["probabilities"][label] for m in members) / len(members)
        assert mean == pytest.approx(predicted.probabilities[label], abs=1e-5)
    assert "mean" in record["ensemble"]
    json.dumps(record)  # JSON-ready


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("text", TEXTS)
def test_every_ngram_read_is_listed_once_with_spans_inside_the_text(request, name, text):
    classifier = request.getfixturevalue(name)
    record = _record(classifier, text)
    ids = _ids(classifier, text)
    target = record["label"]
    for member, shown in zip(classifier.model.members, record["members"]):
        rows = member.read_rows(ids)[0][0]
        entries = shown["contributions"]
        assert sum(e["count"] for e in entries) == int((rows != 0).sum())  # every position the member reads
        assert len(entries) == len(set(rows[rows != 0].tolist()))  # one entry per row
        sizes = [abs(e["contribution"][target]) for e in entries]
        assert sizes == sorted(sizes, reverse=True)
        for e in entries:
            assert len(e["ngrams"]) == e["count"] and e["ngrams"][0]["text"] == e["text"]
            for g in [e, *e["ngrams"]]:
                assert 0 <= g["start"] <= g["end"] <= len(text)
            folded = member.read_rows(torch.tensor([[g["id"] for g in e["ngrams"]]]))[0][0]
            assert len(set(folded.tolist())) == 1 and int(folded[0]) != 0  # all read the same row


def test_a_character_ngram_spans_its_characters(small):
    text = "재밌다  ㅋㅋㅋㅋㅋ"
    entries = _record(small, text)["members"][0]["contributions"]
    chars = [g for e in entries for g in e["ngrams"] if g["kind"] == "chars" and len(g["text"]) == 1]
    for g in chars:
        if g["text"] != " ":
            assert unicodedata.normalize("NFC", text[g["start"]:g["end"]]).lower().startswith(g["text"])


def test_folded_rows_gather_colliding_ngrams(full):
    """rows=512 for a few hundred n-grams: some rows are read by different n-grams, listed together."""
    texts = " ".join(TEXTS[:4])
    entries = _record(full, texts)["members"][0]["contributions"]
    assert any(len({g["id"] for g in e["ngrams"]}) > 1 for e in entries)


def test_nb_contribution_is_what_removing_the_row_takes_away(small):
    """The nb member adds each distinct row once: dropping every position of a row removes exactly its share."""
    text = TEXTS[0]
    ids = _ids(small, text)
    index = [m.bag.pooling for m in small.model.members].index("nb")
    member, shown = small.model.members[index], _record(small, text)["members"][index]
    rows = member.read_rows(ids)[0][0]
    with torch.no_grad():
        whole = member(ids)[0]
        for e in shown["contributions"][:5]:
            row = member.read_rows(torch.tensor([[e["id"]]]))[0][0, 0]
            without = member(ids[:, rows != row])[0]
            for j, label in enumerate(small.labels):
                assert float(whole[j] - without[j]) == pytest.approx(e["contribution"][label], abs=1e-5)
            assert set(e["ratio"]) == set(small.labels)


@pytest.mark.parametrize("text", TEXTS)
def test_attention_weights_rebuild_the_models_pooled_vector(full, text):
    ids = _ids(full, text)
    record = _record(full, text)
    kinds = full.tokenizer.config.kinds
    for member, shown in zip(full.model.members, record["members"]):
        if member.bag.pooling != "attention":
            assert "attention" not in shown
            continue
        entries, weights = shown["contributions"], shown["attention"]
        assert len(weights) == len(entries) and all(len(w) == member.bag.heads for w in weights)
        rows = torch.tensor([int(member.read_rows(torch.tensor([[e["id"]]]))[0][0, 0]) for e in entries])
        with torch.no_grad():
            pooled = member.pooled(ids)[0].view(member.bag.heads, -1)  # (K, D)
            rebuilt = torch.einsum("uk,ud->kd", torch.tensor(weights), member.embed.weight[rows])
        assert torch.allclose(rebuilt, pooled, atol=1e-4)
        present = {e["kind"] for e in entries} if member.bag.per_kind else {"all"}
        assert [sum(w[k] for w in weights) for k in range(member.bag.heads)] == \
            pytest.approx([len(present)] * member.bag.heads, abs=1e-4)  # a softmax per kind
        assert set(shown["reads"]) <= set(kinds)
    spread = [w[0] for w in record["members"][0]["attention"]]
    assert max(spread) > 2 * min(spread)  # the weights are not the mean's
