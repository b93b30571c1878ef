"""Compact n-gram classifiers and quantized weights: the stored form round-trips exactly, a model
that keeps every row gives the full model's logits, a left-out row reads as a counted zero row,
and the row ranking and size fitting do what they say."""
from __future__ import annotations

import json

import pytest
import torch

from malmoi.errors import MalmoiError
from malmoi.models.compact import compact_model, importance, member_rows, stored_bytes
from malmoi.models.compact_rows import Ranking, choose_share, fit_share, row_scores
from malmoi.models.ngram import CONFIG_FILE, WEIGHTS_FILE, NgramBagConfig, NgramClassifier, NgramClassifierConfig
from malmoi.models.quantize import BITS, dequantize, dequantize_state, quantize, quantize_state

ROWS = 4000


def model_of(groups: int = 2, rows: int = ROWS) -> NgramClassifier:
    """Every kind of member (mean, attention with two heads, NBSVM, a folded table) with trained-looking
    weights: random rows and heads, positive naive Bayes ratios."""
    torch.manual_seed(0)
    members = [NgramBagConfig(pooling="mean", dim=8), NgramBagConfig(pooling="attention", dim=6, heads=2),
               NgramBagConfig(pooling="nb"), NgramBagConfig(pooling="mean", dim=5, rows=rows // 2)]
    model = NgramClassifier(NgramClassifierConfig(num_embeddings=rows + 1, num_labels=3, groups=groups,
                                                  members=members))
    with torch.no_grad():
        for member in model.members:
            member.embed.weight.normal_()
            member.embed.weight[0] = 0
            if member.bag.pooling == "nb":
                member.ratio.uniform_(0.5, 2)
                member.ratio[0] = 0
            else:
                member.head.weight.normal_()
                if member.score is not None:
                    member.score.weight.normal_()
    return model.eval()


def batch(rows: int = ROWS) -> torch.Tensor:
    x = torch.randint(1, rows + 1, (16, 40), generator=torch.Generator().manual_seed(3))
    x[0, 30:] = 0
    return x


def keep_every(model) -> list[torch.Tensor]:
    return [torch.ones(len(member_rows(m)[0]), dtype=torch.bool) for m in model.members]


@pytest.mark.parametrize("bits", [16, 8, 4])
@pytest.mark.parametrize("dim", [1, 5, 16])
def test_quantized_rows_are_close_and_quantizing_again_changes_nothing(bits, dim):
    x = torch.randn(300, dim) * torch.rand(300, 1) * 3
    x[0] = 0  # an all-zero row
    x[1] = 1e-7  # a row below float16's normal range
    stored = quantize(x, bits)
    back = dequantize(stored, bits, dim)
    assert back.shape == x.shape and back.dtype == torch.float32
    step = x.abs().amax(1, keepdim=True) / {16: 1024, 8: 127, 4: 7}[bits]  # float16: 11 significant bits
    assert ((back - x).abs() <= step / 2 + 1e-4).all()
    again = quantize(back, bits)
    assert all(torch.equal(again[k], stored[k]) for k in stored)


def test_bytes_per_value():
    x = torch.randn(10, 16)
    assert quantize(x, 8)["q"].dtype == torch.int8 and quantize(x, 8)["q"].shape == (10, 16)
    assert quantize(x, 4)["q"].dtype == torch.uint8 and quantize(x, 4)["q"].shape == (10, 8)
    assert quantize(x, 16)["q"].dtype == torch.float16
    assert quantize(x, 8)["scale"].dtype == torch.float16


def test_quantized_state_dicts_keep_vectors_as_they_are():
    state = {"w": torch.randn(4, 6), "b": torch.randn(6), "ids": torch.arange(5)}
    stored = quantize_state(state, 8)
    assert set(stored) == {"w.q", "w.scale", "b", "ids"}
    back = dequantize_state(stored, 8, {k: v.shape for k, v in state.items()})
    assert torch.equal(back["b"], state["b"]) and torch.equal(back["ids"], state["ids"])
    assert torch.allclose(back["w"], state["w"], atol=state["w"].abs().max().item() / 127)


def test_keeping_every_row_at_32_bits_gives_the_full_models_logits():
    model = model_of()
    small = compact_model(model, keep_every(model), 32)
    assert small.is_compact and not model.is_compact
    assert torch.allclose(small(batch()).logits, model(batch()).logits, atol=1e-5)


def test_a_left_out_row_reads_as_a_zero_row_that_still_counts():
    model = model_of()
    keep = [torch.rand(len(m), generator=torch.Generator().manual_seed(i)) < 0.3 for i, m in enumerate(keep_every(model))]
    small = compact_model(model, keep, 32)
    with torch.no_grad():  # the full model with the same rows zeroed
        for member, mask in zip(model.members, keep):
            member.embed.weight[1:][~mask] = 0
    assert torch.allclose(small(batch()).logits, model(batch()).logits, atol=1e-5)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("share", [0.01, 0.5])  # few rows: their ids stored as a list; many: a bitmap
def test_the_stored_form_round_trips_exactly(tmp_path, bits, share):
    model = model_of()
    ranking = Ranking(row_scores(model, None))
    small = compact_model(model, ranking.masks(share), bits)
    small.save(tmp_path)
    back = NgramClassifier.load(tmp_path)
    assert back.storage_bits == bits and back.is_compact
    assert torch.equal(back(batch()).logits, small(batch()).logits)
    for a, b in zip(back.members, small.members):
        assert torch.equal(a.kept_ids, b.kept_ids)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert [m["kept"] for m in config["members"]] == [len(m.kept_ids) for m in small.members]
    assert (tmp_path / WEIGHTS_FILE).stat().st_size <= stored_bytes(model, ranking.counts(share), bits)


def test_compacting_a_compact_model_works_from_its_stored_form(tmp_path):
    model = model_of()
    ranking = Ranking(row_scores(model, None))
    first = compact_model(model, ranking.masks(0.5), 8)
    first.save(tmp_path / "a")
    loaded = NgramClassifier.load(tmp_path / "a")
    again = compact_model(loaded, Ranking(row_scores(loaded, None)).masks(0.5), 4)
    assert all(len(b.kept_ids) < len(a.kept_ids) for a, b in zip(first.members, again.members))
    for a, b in zip(first.members, again.members):  # the kept rows are a subset, by their original ids
        assert torch.isin(b.kept_ids, a.kept_ids).all()
    again.save(tmp_path / "b")
    assert torch.equal(NgramClassifier.load(tmp_path / "b")(batch()).logits, again(batch()).logits)


def test_importance_is_the_spread_of_a_rows_logits():
    model = model_of()
    mean, nb = model.members[0], model.members[2]
    ids, rows = member_rows(mean)
    effect = rows @ mean.head.weight.T.detach()
    assert torch.allclose(importance(mean, rows), (effect - effect.mean(1, keepdim=True)).norm(dim=1), atol=1e-5)
    ids, rows = member_rows(nb)  # an NBSVM row is its weight times its ratio
    assert torch.allclose(rows, (nb.embed.weight[1:] * nb.ratio[1:]).detach())


def test_unseen_rows_are_never_kept_and_the_most_important_go_first():
    model = model_of()
    counts = [torch.zeros(len(m), dtype=torch.long) for m in keep_every(model)]
    for c in counts:
        c[:100] = 1  # only the first 100 rows of each table were seen in training
    ranking = Ranking(row_scores(model, counts))
    masks = ranking.masks(1.0)
    assert all(int(m.sum()) == 100 and m[:100].all() for m in masks)
    half = ranking.masks(0.01)
    for member, mask in zip(model.members, half):
        score = importance(member, member_rows(member)[1])[:100]
        assert score[mask[:100]].min() >= score[~mask[:100]].max()


def test_fit_share_finds_the_largest_model_under_a_size_and_refuses_an_unreachable_one():
    model = model_of()
    ranking = Ranking(row_scores(model, None))
    full = stored_bytes(model, ranking.counts(1.0), 8)
    share = fit_share(model, ranking, 8, full // 3)
    assert stored_bytes(model, ranking.counts(share), 8) <= full // 3
    assert stored_bytes(model, ranking.counts(share + 0.01), 8) > full // 3
    assert fit_share(model, ranking, 8, full * 2) == 1.0
    with pytest.raises(MalmoiError) as e:
        fit_share(model, ranking, 8, 100)
    assert e.value.code == "E291" and "smallest" in str(e.value)


def test_choose_share_takes_the_smallest_share_that_keeps_the_accuracy():
    model = model_of()
    ranking = Ranking(row_scores(model, None))
    scores = {0.1: 0.5, 0.2: 0.8, 0.4: 0.8, 1.0: 0.8}

    def accuracy(small) -> float:
        kept = len(small.members[0].kept_ids) / len(member_rows(model.members[0])[0])
        return scores[min(scores, key=lambda s: abs(s - kept))]

    small, share, score = choose_share(model, ranking, 4, accuracy, full_accuracy=0.8)
    assert (share, score) == (0.2, 0.8) and small.storage_bits == 4
    assert choose_share(model, ranking, 4, lambda m: 0.0, full_accuracy=0.8)[1] == 1.0


def test_a_bad_bit_count_is_refused():
    model = model_of()
    with pytest.raises(MalmoiError) as e:
        compact_model(model, keep_every(model), 3)
    assert e.value.code == "E290"
