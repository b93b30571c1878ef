"""NgramClassifier: shapes, loss, padding, n-gram dropout, save/load round trip, and learning a tiny
Korean sentiment set through the training loop."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from malmoi.errors import MalmoiError
from malmoi.models.ngram import (CONFIG_FILE, NgramBagConfig, NgramClassifier, NgramClassifierConfig,
                                 is_ngram_model_folder)

ENSEMBLE = "mean+attention"


def tiny(num_labels: int = 3, hidden: int = 0, pooling: str = "mean", heads: int = 1, groups: int = 1,
         **extra) -> NgramClassifier:
    """Members of dim 8, one per pooling named in ``pooling`` (``mean+attention`` makes two)."""
    torch.manual_seed(0)
    members = [NgramBagConfig(pooling=p, dim=8, heads=heads) for p in pooling.split("+")]
    model = NgramClassifier(NgramClassifierConfig(num_embeddings=50, num_labels=num_labels, hidden=hidden,
                                                  groups=groups, members=members, **extra))
    with torch.no_grad():  # a zero head would give equal logits everywhere; the tests want real ones
        for member in model.members:
            member.head.weight.normal_()
    return model


def ids(b: int = 4, t: int = 6) -> torch.Tensor:
    x = torch.randint(1, 50, (b, t), generator=torch.Generator().manual_seed(1))
    x[0, t - 2:] = 0  # one padded row
    return x


@pytest.mark.parametrize("b,t,c,hidden,pooling", [(1, 3, 2, 0, "mean"), (4, 6, 3, 0, "mean"), (5, 9, 4, 16, "mean"),
                                                   (4, 6, 3, 0, "attention"), (5, 9, 4, 16, "attention")])
def test_forward_shapes(b, t, c, hidden, pooling):
    out = tiny(c, hidden, pooling=pooling, heads=2).eval()(ids(b, t))
    assert out.logits.shape == (b, c)
    assert out.loss is None


def test_loss_only_with_labels_and_is_cross_entropy():
    model = tiny().eval()
    labels = torch.tensor([0, 1, 2, 1])
    out = model(ids(), labels=labels)
    assert torch.allclose(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))


POOLINGS = ["mean", "attention", ENSEMBLE]


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("groups", [1, 3])
def test_padding_changes_nothing(pooling, groups):
    model = tiny(pooling=pooling, heads=2, groups=groups).eval()
    x = ids()
    padded = torch.cat([x, torch.zeros_like(x)], dim=1)
    assert torch.allclose(model(x).logits, model(padded).logits, atol=1e-6)
    empty = torch.zeros(1, 3, dtype=torch.long)
    for member in model.members:
        width = 8 * (2 if member.bag.pooling == "attention" else 1)
        assert torch.equal(member.pooled(empty), torch.zeros(1, width))


def test_mean_pooling_is_the_mean_of_real_ngrams():
    model = tiny().eval()
    x = ids()
    bag = model.members[0]
    assert torch.allclose(bag.pooled(x)[0], bag.embed.weight[x[0, :4]].mean(0), atol=1e-6)


def test_attention_starts_as_the_mean_and_learns_weights():
    model = tiny(pooling="attention", heads=1).eval()
    x = ids()
    bag = model.members[0]
    assert torch.allclose(bag.pooled(x)[0], bag.embed.weight[x[0, :4]].mean(0), atol=1e-6)
    with torch.no_grad():
        bag.score.weight.copy_(bag.embed.weight[x[1, 0]][None] * 1e4)  # a head that looks for one n-gram
    assert torch.allclose(bag.pooled(x[1:2])[0], bag.embed.weight[x[1, 0]], atol=1e-4)


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_groups_pool_each_kind_apart(pooling):
    """With 2 groups, ids 1, 3, 5 … are one kind and 2, 4, 6 … the other: each kind counts once."""
    bag = NgramBagConfig(pooling=pooling, dim=4)
    model = NgramClassifier(NgramClassifierConfig(num_embeddings=20, groups=2, members=[bag])).eval()
    bag = model.members[0]
    x = torch.tensor([[1, 3, 5, 2, 0]])  # three n-grams of kind 0, one of kind 1, padding
    w = bag.embed.weight
    expected = (w[1] + w[3] + w[5]) / 3 + w[2]  # attention starts as each kind's mean
    assert torch.allclose(bag.pooled(x)[0], expected, atol=1e-6)
    assert torch.equal(bag.pooled(torch.tensor([[0, 0]])), torch.zeros(1, 4))
    only_first = torch.tensor([[1, 3, 0]])  # a text without kind 1
    assert torch.allclose(bag.pooled(only_first)[0], (w[1] + w[3]) / 2, atol=1e-6)


def test_an_ensemble_averages_its_members_probabilities():
    model = tiny(pooling="mean+attention", heads=2).eval()
    x, labels = ids(), torch.tensor([0, 1, 2, 1])
    out = model(x, labels=labels)
    each = [m(x) for m in model.members]
    mean_prob = torch.stack([e.softmax(-1) for e in each]).mean(0)
    assert torch.allclose(out.logits.softmax(-1), mean_prob, atol=1e-6)
    assert torch.allclose(out.loss, sum(torch.nn.functional.cross_entropy(e, labels) for e in each) / 2)
    assert model.members[0].embed.weight.data_ptr() != model.members[1].embed.weight.data_ptr()


@pytest.mark.parametrize("pooling", POOLINGS)
def test_order_of_ngrams_does_not_matter(pooling):
    model = tiny(pooling=pooling, heads=2).eval()
    x = ids()
    assert torch.allclose(model(x).logits, model(x.flip(1)).logits, atol=1e-6)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_ngram_dropout_only_in_training(pooling):
    model = tiny(ngram_dropout=0.5, pooling=pooling)
    x = ids(8, 40)
    model.train()
    assert not torch.equal(model(x).logits, model(x).logits)
    model.eval()
    assert torch.equal(model(x).logits, model(x).logits)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_every_parameter_gets_a_gradient(pooling):
    model = tiny(2, hidden=4, pooling=pooling).train()
    model(ids(), labels=torch.tensor([0, 1, 0, 1])).loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("pooling", POOLINGS)
def test_save_load_gives_identical_logits(tmp_path, pooling):
    model = tiny(3, hidden=16, dropout=0.1, pooling=pooling, heads=3).eval()
    model.save(tmp_path)
    assert is_ngram_model_folder(tmp_path)
    saved = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert saved["hidden"] == 16 and saved["members"][-1]["heads"] == 3
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
    (dict(num_embeddings=10, members=[dict(dim=0)]), "E451"),
    (dict(num_embeddings=10, ngram_dropout=1.0), "E451"),
    (dict(num_embeddings=10, members=[dict(pooling="max")]), "E451"),
    (dict(num_embeddings=10, members=[]), "E451"),
    (dict(num_embeddings=10, members=[dict(pooling="attention", heads=0)]), "E451"),
    (dict(num_embeddings=10, groups=2, members=[dict(kinds=[2])]), "E451"),
    (dict(num_embeddings=10, groups=2, members=[dict(rows=5)]), "E451"),
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
    from malmoi.training.args import TrainArgs
    from malmoi.training.loop import fit

    featurizer = NgramFeaturizer(NgramConfig(buckets=1 << 12, chars=(1, 3), words=(1, 2)))
    texts, labels = POSITIVE + NEGATIVE, [1] * len(POSITIVE) + [0] * len(NEGATIVE)
    data = NgramDataset(featurizer, texts, labels)
    torch.manual_seed(0)
    model = NgramClassifier(NgramClassifierConfig(num_embeddings=len(featurizer), groups=featurizer.config.groups,
                                                  members=[NgramBagConfig(dim=8)]))
    args = TrainArgs(epochs=30, batch_size=4, lr=0.05, warmup=0.0, weight_decay=0.0, progress=False, seed=0)
    fit(model, data, data, args=args, out=tmp_path / "run", collate=PadCollator())
    model.eval()
    unseen = featurizer(["진짜 재밌다 최고", "진짜 지루하다 최악"], return_tensors="pt")
    probs = model(**unseen).logits.softmax(-1)
    assert probs[0, 1] > 0.8 and probs[1, 0] > 0.8


def tiny_nb(num_labels: int = 2) -> NgramClassifier:
    """One ``nb`` member with random weights and ratios (row 0, the padding, stays zero in both)."""
    torch.manual_seed(0)
    model = NgramClassifier(NgramClassifierConfig(num_embeddings=50, num_labels=num_labels,
                                                  members=[NgramBagConfig(pooling="nb")]))
    member = model.members[0]
    with torch.no_grad():
        member.embed.weight[1:].normal_()
        member.ratio[1:].normal_()
    return model


def test_distinct_keeps_each_id_once_per_row():
    from malmoi.models.ngram import distinct

    out = distinct(torch.tensor([[5, 3, 5, 5, 0], [2, 2, 0, 0, 7]]))
    assert [sorted(r for r in row if r) for row in out.tolist()] == [[3, 5], [2, 7]]


def test_log_count_ratios_by_hand():
    """Texts as n-gram id rows: id 1 only in class-1 texts, id 2 in both, id 3 once in a class-0 text
    (twice in it: counted once)."""
    from malmoi.text.ngrams import Encoded

    rows = [[1, 2], [1, 2], [2, 3, 3]]
    encoded = Encoded(indptr=np.cumsum([0] + [len(r) for r in rows]), ids=np.array(sum(rows, [])))
    model = NgramClassifier(NgramClassifierConfig(num_embeddings=4, num_labels=2,
                                                  members=[NgramBagConfig(pooling="nb")]))
    assert model.fit_ratios(encoded, [1, 1, 0]) == 1
    ratios = model.members[0].ratio
    # texts containing ids 1, 2, 3: class 1 → 2, 2, 0; class 0 → 0, 1, 1; smoothed by 1
    pos, neg = np.array([3, 3, 1]), np.array([1, 2, 2])
    expected = np.log(pos / pos.sum()) - np.log(neg / neg.sum())
    assert np.allclose(ratios[1:, 1].numpy(), expected) and np.allclose(ratios[1:, 0].numpy(), -expected)
    assert torch.equal(ratios[0], torch.zeros(2))


def test_nb_member_reads_distinct_ngrams_weighted_by_their_ratios():
    model = tiny_nb().eval()
    member = model.members[0]
    x = torch.tensor([[4, 9, 4, 4, 0]])
    expected = member.embed.weight[[4, 9]] * member.ratio[[4, 9]]
    assert torch.allclose(model(x).logits, expected.sum(0, keepdim=True), atol=1e-6)
    assert torch.allclose(model(x).logits, model(torch.tensor([[9, 4]])).logits, atol=1e-6)


def test_nb_member_saves_its_ratios(tmp_path):
    model = tiny_nb(3)
    model.save(tmp_path)
    again = NgramClassifier.load(tmp_path)
    assert torch.equal(again.members[0].ratio, model.members[0].ratio)
    x = ids()
    assert torch.equal(model.eval()(x).logits, again(x).logits)


def test_nb_member_learns_from_its_ratios_through_fit(tmp_path):
    """fit_ratios from the training texts, then the loop: unseen sentences classified right."""
    from malmoi.data.batching import PadCollator
    from malmoi.models.ngram import NgramDataset
    from malmoi.text.ngrams import NgramConfig, NgramFeaturizer
    from malmoi.training.args import TrainArgs
    from malmoi.training.loop import fit

    featurizer = NgramFeaturizer(NgramConfig(buckets=1 << 12, chars=(1, 3), words=(1, 2)))
    data = NgramDataset(featurizer, POSITIVE + NEGATIVE, [1] * len(POSITIVE) + [0] * len(NEGATIVE))
    model = NgramClassifier(NgramClassifierConfig(num_embeddings=len(featurizer), groups=featurizer.config.groups,
                                                  members=[NgramBagConfig(pooling="nb")]))
    model.fit_ratios(data.encoded, data.labels)
    assert model.members[0].ratio.abs().sum() > 0
    fit(model, data, data, args=TrainArgs(epochs=20, batch_size=4, lr=0.05, progress=False, seed=0), out=tmp_path / "run", collate=PadCollator())
    probs = model.eval()(**featurizer(["진짜 재밌다 최고", "진짜 지루하다 최악"], return_tensors="pt")).logits.softmax(-1)
    assert probs[0, 1] > 0.8 and probs[1, 0] > 0.8


def _tiny_fit(out, model_seed: int = 0, resume: bool = False, on_eval=None):
    """Three members (every pooling, sparse tables) on the tiny set, evaluated every 3 steps."""
    from malmoi.data.batching import PadCollator
    from malmoi.models.ngram import NgramDataset
    from malmoi.text.ngrams import NgramConfig, NgramFeaturizer
    from malmoi.training.args import TrainArgs
    from malmoi.training.loop import fit

    featurizer = NgramFeaturizer(NgramConfig(buckets=1 << 10, chars=(1, 3), words=(1, 2)))
    data = NgramDataset(featurizer, POSITIVE + NEGATIVE, [1] * len(POSITIVE) + [0] * len(NEGATIVE))
    torch.manual_seed(model_seed)
    model = NgramClassifier(NgramClassifierConfig(
        num_embeddings=len(featurizer), groups=featurizer.config.groups, ngram_dropout=0.2,
        members=[NgramBagConfig(dim=8), NgramBagConfig(pooling="attention", dim=4, heads=2),
                 NgramBagConfig(pooling="nb")]))
    if not resume:  # as the classify task does: a resumed run gets its ratios from the checkpoint
        model.fit_ratios(data.encoded, data.labels)
    args = TrainArgs(epochs=4, batch_size=4, lr=0.05, eval_every=3, progress=False, seed=0)
    fit(model, data, data, args=args, out=out, collate=PadCollator(), resume=resume, on_eval=on_eval)
    return model


def test_sparse_tables_train_and_resume_exactly(tmp_path):
    """The embedding tables get sparse gradients (LazyAdamW's rows), and a run that dies after a checkpoint
    resumes to the straight run's weights."""
    straight = _tiny_fit(tmp_path / "straight")
    assert all(m.embed.sparse for m in straight.members)

    class Crash(Exception):
        pass

    def crash(step, metrics):
        raise Crash

    with pytest.raises(Crash):
        _tiny_fit(tmp_path / "run", on_eval=crash)
    resumed = _tiny_fit(tmp_path / "run", model_seed=123, resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_ngram_preset_through_the_classify_task(tmp_path):
    """`malmoi train classify --preset ngram`: a run directory that loads and predicts like the model in memory."""
    import malmoi
    from malmoi.text.ngrams import is_featurizer_folder

    data = tmp_path / "train.tsv"
    rows = [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE]
    data.write_text("document\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows * 3), encoding="utf-8")
    result = malmoi.train(task="classify", data=data, text="document", label="label", out=tmp_path / "run",
                          preset="ngram", valid=data, epochs=20, batch_size=8, progress=False,
                          model_overrides=dict(buckets=1 << 12), say=lambda m: None)
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




@pytest.mark.parametrize("preset_buckets,texts,expected", [
    (1 << 22, 150_000, 1 << 22),   # NSMC: the preset's own size
    (1 << 22, 100_000, 1 << 22),   # 3.2M wanted → the next power of two, capped by the preset
    (1 << 22, 40_000, 1 << 21),    # 1.28M wanted → 2M
    (1 << 22, 600, 1 << 16),       # a small CSV: the floor
    (1 << 12, 150_000, 1 << 12),   # never more than the preset asks for
])
def test_buckets_scale_with_the_training_texts(preset_buckets, texts, expected):
    from malmoi.models.ngram import scaled_buckets

    assert scaled_buckets(preset_buckets, texts) == expected


def test_ngram_is_the_default_unless_a_tokenizer_is_given(tmp_path):
    from malmoi.tasks import ClassifyOptions

    common = dict(data="x.tsv", text="t", label="y", out=tmp_path / "r")
    assert ClassifyOptions(**common).preset == "ngram"
    assert ClassifyOptions(**common, tokenizer=tmp_path / "tok").preset == "bert-mini"


def test_default_preset_sizes_its_table_to_a_small_dataset(tmp_path):
    """A 48-row CSV trained with no --preset: the n-gram default, with the smallest table, not 4M rows."""
    import malmoi
    from malmoi.models.ngram import MIN_BUCKETS

    data = tmp_path / "train.tsv"
    rows = [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE]
    data.write_text("document\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows * 3), encoding="utf-8")
    malmoi.train(task="classify", data=data, text="document", label="label", out=tmp_path / "run", valid=data,
                 epochs=10, batch_size=8, progress=False, say=lambda m: None)
    classifier = malmoi.load(tmp_path / "run")
    assert classifier.tokenizer.config.buckets == MIN_BUCKETS
    assert sum(p.numel() for p in classifier.model.parameters()) < 10_000_000  # ~201M at NSMC's size
    assert [p.label for p in classifier.predict(["진짜 재밌다 최고", "진짜 지루하다 최악"])] == ["pos", "neg"]


def test_a_member_reads_only_its_kinds():
    bag = NgramBagConfig(dim=4, kinds=[1])
    model = NgramClassifier(NgramClassifierConfig(num_embeddings=20, groups=2, members=[bag])).eval()
    w = model.members[0].embed.weight
    x = torch.tensor([[1, 3, 2, 4]])  # kind 0: 1, 3; kind 1: 2, 4
    assert torch.allclose(model.members[0].pooled(x)[0], (w[2] + w[4]) / 2, atol=1e-6)


def test_folded_rows_keep_the_kind():
    bag = NgramBagConfig(dim=4, rows=6)
    model = NgramClassifier(NgramClassifierConfig(num_embeddings=20, groups=2, members=[bag])).eval()
    member = model.members[0]
    assert member.embed.weight.shape == (7, 4)
    w = member.embed.weight
    x = torch.tensor([[13, 8]])  # 13 → 1 (kind 0), 8 → 2 (kind 1)
    assert torch.allclose(member.pooled(x)[0], w[1] + w[2], atol=1e-6)


def test_preset_members_name_their_kinds():
    from malmoi.models.ngram import classifier_for_preset, featurizer_for_preset
    from malmoi.models.presets import get_preset

    featurizer = featurizer_for_preset("ngram", dict(buckets=1 << 12))
    model = classifier_for_preset("ngram", featurizer, 2)
    config = get_preset("ngram").config["model"]
    assert len(model.members) == len(config["members"])
    for member, spec in zip(model.config.members, config["members"]):
        if spec.get("kinds"):
            assert member.kinds == [featurizer.config.slot(k) for k in spec["kinds"]]
        assert member.rows == 0  # a preset's rows shrink to fit a featurizer of 4096 buckets
