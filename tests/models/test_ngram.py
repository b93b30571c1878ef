"""NgramClassifier: shapes, loss, padding, n-gram dropout, save/load round trip, and learning a tiny
Korean sentiment set through the training loop."""
from __future__ import annotations

import json

import pytest
import torch

from malmoi.errors import MalmoiError
from malmoi.models.ngram import CONFIG_FILE, NgramClassifier, NgramClassifierConfig, is_ngram_model_folder


def tiny(num_labels: int = 3, hidden: int = 0, **extra) -> NgramClassifier:
    torch.manual_seed(0)
    model = NgramClassifier(NgramClassifierConfig(num_embeddings=50, num_labels=num_labels, dim=8, hidden=hidden,
                                                  **extra))
    with torch.no_grad():  # a zero head would give equal logits everywhere; the tests want real ones
        model.head.weight.normal_()
    return model


def ids(b: int = 4, t: int = 6) -> torch.Tensor:
    x = torch.randint(1, 50, (b, t), generator=torch.Generator().manual_seed(1))
    x[0, t - 2:] = 0  # one padded row
    return x


@pytest.mark.parametrize("b,t,c,hidden", [(1, 3, 2, 0), (4, 6, 3, 0), (5, 9, 4, 16)])
def test_forward_shapes(b, t, c, hidden):
    out = tiny(c, hidden).eval()(ids(b, t))
    assert out.logits.shape == (b, c)
    assert out.loss is None


def test_loss_only_with_labels_and_is_cross_entropy():
    model = tiny().eval()
    labels = torch.tensor([0, 1, 2, 1])
    out = model(ids(), labels=labels)
    assert torch.allclose(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))


def test_padding_changes_nothing_and_the_mean_ignores_it():
    model = tiny().eval()
    x = ids()
    padded = torch.cat([x, torch.zeros_like(x)], dim=1)
    assert torch.equal(model(x).logits, model(padded).logits)
    mean = model.embed.weight[x[0, :4]].mean(0)
    assert torch.allclose(model.pooled(x)[0], mean, atol=1e-6)
    assert torch.equal(model.pooled(torch.zeros(1, 3, dtype=torch.long)), torch.zeros(1, 8))  # an empty text


def test_order_of_ngrams_does_not_matter():
    model = tiny().eval()
    x = ids()
    assert torch.allclose(model(x).logits, model(x.flip(1)).logits, atol=1e-6)


def test_ngram_dropout_only_in_training():
    model = tiny(ngram_dropout=0.5)
    x = ids(8, 40)
    model.train()
    assert not torch.equal(model(x).logits, model(x).logits)
    model.eval()
    assert torch.equal(model(x).logits, model(x).logits)


def test_every_parameter_gets_a_gradient():
    model = tiny(2, hidden=4).train()
    model(ids(), labels=torch.tensor([0, 1, 0, 1])).loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_save_load_gives_identical_logits(tmp_path):
    model = tiny(3, hidden=16, dropout=0.1).eval()
    model.save(tmp_path)
    assert is_ngram_model_folder(tmp_path)
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["hidden"] == 16
    again = NgramClassifier.load(tmp_path)
    assert not again.training
    assert torch.equal(model(ids()).logits, again(ids()).logits)


def test_load_refuses_other_folders(tmp_path):
    with pytest.raises(MalmoiError) as e:
        NgramClassifier.load(tmp_path)
    assert e.value.code == "E453"


@pytest.mark.parametrize("settings, code", [
    (dict(num_embeddings=1), "E451"),
    (dict(num_embeddings=10, num_labels=1), "E402"),
    (dict(num_embeddings=10, dim=0), "E451"),
    (dict(num_embeddings=10, ngram_dropout=1.0), "E451"),
])
def test_bad_sizes(settings, code):
    with pytest.raises(MalmoiError) as e:
        NgramClassifierConfig(**settings)
    assert e.value.code == code


def test_rejects_flat_input():
    with pytest.raises(MalmoiError):
        tiny()(torch.tensor([1, 2, 3]))


POSITIVE = ["정말 재밌다", "최고의 영화", "배우 연기 최고", "재밌다 강추", "감동적인 영화 최고", "또 보고 싶다 재밌다"]
NEGATIVE = ["정말 지루하다", "최악의 영화", "배우 연기 최악", "지루하다 비추", "시간 아까운 영화 최악", "다시는 안 본다 지루하다"]


def test_learns_a_tiny_korean_set_through_fit(tmp_path):
    from malmoi.data.batching import PadCollator
    from malmoi.models.ngram import NgramDataset
    from malmoi.text.ngrams import NgramConfig, NgramFeaturizer
    from malmoi.training import TrainArgs, fit

    featurizer = NgramFeaturizer(NgramConfig(buckets=1 << 12, chars=(1, 3), words=(1, 2)))
    texts, labels = POSITIVE + NEGATIVE, [1] * len(POSITIVE) + [0] * len(NEGATIVE)
    data = NgramDataset(featurizer, texts, labels)
    torch.manual_seed(0)
    model = NgramClassifier(NgramClassifierConfig(num_embeddings=len(featurizer), dim=8))
    args = TrainArgs(epochs=30, batch_size=4, lr=0.05, warmup=0.0, weight_decay=0.0, progress=False, seed=0)
    fit(model, data, data, PadCollator(), args, tmp_path / "run")
    model.eval()
    unseen = featurizer(["진짜 재밌다 최고", "진짜 지루하다 최악"], return_tensors="pt")
    probs = model(**unseen).logits.softmax(-1)
    assert probs[0, 1] > 0.8 and probs[1, 0] > 0.8


def test_ngram_preset_through_the_classify_task(tmp_path):
    """`malmoi train classify --preset ngram`: a run directory that loads and predicts like the model in memory."""
    import malmoi
    from malmoi.text.ngrams import is_featurizer_folder

    data = tmp_path / "train.tsv"
    rows = [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE]
    data.write_text("document\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows * 3), encoding="utf-8")
    result = malmoi.train(task="classify", data=data, text="document", label="label", out=tmp_path / "run",
                          preset="ngram", valid=data, epochs=20, batch_size=8, progress=False,
                          model_overrides=dict(buckets=1 << 12, dim=8), say=lambda m: None)
    run = tmp_path / "run"
    assert is_ngram_model_folder(run) and is_featurizer_folder(run)
    assert result.metrics["accuracy"] == 1.0
    classifier = malmoi.load(run)
    unseen = ["진짜 재밌다 최고", "진짜 지루하다 최악"]
    assert [p.label for p in classifier.predict(unseen)] == ["pos", "neg"]
    again = malmoi.load(run)
    assert (classifier.predict_proba(unseen) == again.predict_proba(unseen)).all()


def test_ngram_preset_supplies_its_training_settings(tmp_path):
    from malmoi.models.presets import preset_training
    from malmoi.tasks import ClassifyOptions

    opts = ClassifyOptions(data="x.tsv", text="t", label="y", out=tmp_path / "r", preset="ngram")
    tuned = preset_training("ngram")
    assert (opts.lr, opts.batch_size, opts.epochs) == (tuned["lr"], tuned["batch_size"], tuned["epochs"])
    mine = ClassifyOptions(data="x.tsv", text="t", label="y", out=tmp_path / "r", preset="ngram", lr=0.5,
                           batch_size=7, epochs=1)
    assert (mine.lr, mine.batch_size, mine.epochs) == (0.5, 7, 1)
    bert = ClassifyOptions(data="x.tsv", text="t", label="y", out=tmp_path / "r", preset="bert-mini")
    assert (bert.batch_size, bert.epochs, bert.lr) == (32, 3, ClassifyOptions.LR_SCRATCH)
