"""Collators and the length-bucketed batch sampler."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from malmoi.data.batching import BucketSampler, MLMCollator, PadCollator, pad_with_mask, padding_fraction
from malmoi.errors import MalmoiError


def test_pads_each_batch_only_to_its_longest_member():
    items = [{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "token_type_ids": [0, 0, 0], "labels": 1},
             {"input_ids": [8], "attention_mask": [1], "token_type_ids": [0], "labels": 0}]
    batch = PadCollator(pad_id=3)(items)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 3, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert batch["labels"].tolist() == [1, 0] and batch["labels"].dtype == torch.long


def test_token_labels_are_padded_with_minus_100():
    items = [{"input_ids": [5, 6], "labels": [9, 10, 11]}, {"input_ids": [7, 8, 9, 10], "labels": [12]}]
    batch = PadCollator()(items)
    assert batch["input_ids"].tolist() == [[5, 6, 0, 0], [7, 8, 9, 10]]
    assert batch["labels"].tolist() == [[9, 10, 11], [12, -100, -100]]


def test_pad_to_multiple_and_float_targets():
    batch = PadCollator(pad_to_multiple_of=8)([{"input_ids": [1] * 9, "score": 0.5}, {"input_ids": [2], "score": 1.0}])
    assert batch["input_ids"].shape == (2, 16)
    assert batch["score"].dtype == torch.float32


def test_empty_batch_is_an_error():
    with pytest.raises(MalmoiError):
        PadCollator()([])


# ---------------------------------------------------------------------- MLM masking

SPECIALS = (0, 1, 2, 3, 4)  # [PAD] [UNK] [CLS] [SEP] [MASK]


@pytest.fixture(scope="module")
def masked():
    torch.manual_seed(0)
    collator = MLMCollator(mask_id=4, vocab_size=1000, special_ids=SPECIALS, pad_id=0)
    items = []
    for i in range(400):
        length = 100 + i % 100
        ids = [2] + torch.randint(5, 1000, (length - 2,)).tolist() + [3]
        items.append({"input_ids": ids, "attention_mask": [1] * length})
    original = PadCollator()(items)["input_ids"]
    batch = collator(items)
    return original, batch


def test_mlm_masks_15_percent_of_ordinary_tokens(masked):
    original, batch = masked
    eligible = original >= 5
    chosen = batch["labels"] != -100
    assert not chosen[~eligible].any()  # never [CLS], [SEP] or padding
    rate = chosen.sum().item() / eligible.sum().item()
    assert rate == pytest.approx(0.15, abs=0.005)  # ~60k eligible tokens: 5 sigma is ~0.007
    assert torch.equal(batch["labels"][chosen], original[chosen])


def test_mlm_80_10_10(masked):
    original, batch = masked
    chosen = batch["labels"] != -100
    ids, orig = batch["input_ids"][chosen], original[chosen]
    n = len(ids)
    as_mask = (ids == 4).sum().item() / n
    unchanged = (ids == orig).sum().item() / n
    replaced = ((ids != 4) & (ids != orig)).sum().item() / n
    assert as_mask == pytest.approx(0.8, abs=0.01)
    assert unchanged == pytest.approx(0.1 + 0.1 / 995, abs=0.01)  # a random pick can equal the original
    assert replaced == pytest.approx(0.1, abs=0.01)
    assert (ids[(ids != 4) & (ids != orig)] >= 5).all()  # replacements are never special tokens
    assert torch.equal(batch["input_ids"][~chosen], original[~chosen])


def test_mlm_masking_follows_the_seed():
    collator = MLMCollator(mask_id=4, vocab_size=50, special_ids=SPECIALS)
    items = [{"input_ids": list(range(5, 50))}] * 4
    torch.manual_seed(7)
    a = collator(items)
    torch.manual_seed(7)
    b = collator(items)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])


@pytest.mark.parametrize("kwargs", [{"mlm_probability": 0}, {"mlm_probability": 1.2},
                                    {"mask_fraction": 0.9, "random_fraction": 0.2}])
def test_mlm_bad_rates(kwargs):
    with pytest.raises(MalmoiError):
        MLMCollator(mask_id=4, vocab_size=50, special_ids=SPECIALS, **kwargs)


# ---------------------------------------------------------------------- bucket sampler


def lengths_for(n: int, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(1, 120, n).tolist()


@pytest.mark.parametrize("n, batch_size, shuffle", [(1000, 32, True), (1000, 32, False), (7, 3, True), (64, 64, True),
                                                    (5, 10, True), (1, 1, False)])
def test_every_index_exactly_once_per_epoch(n, batch_size, shuffle):
    sampler = BucketSampler(lengths_for(n), batch_size, shuffle=shuffle, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(i for b in batches for i in b) == list(range(n))
        assert len(batches) == len(sampler) == -(-n // batch_size)
        assert sum(len(b) < batch_size for b in batches) <= 1  # only one partial batch


def test_bucketing_reduces_padding():
    lengths = lengths_for(4000)
    bucketed = BucketSampler(lengths, 32, seed=0)
    random_batches = BucketSampler(None, 32, seed=0, size=len(lengths))
    bucketed_pad = padding_fraction(list(bucketed), lengths)
    random_pad = padding_fraction(list(random_batches), lengths)
    assert random_pad > 0.4
    assert bucketed_pad < 0.1 * random_pad


def test_batch_order_is_shuffled_not_sorted():
    lengths = lengths_for(3200)
    longest = [max(lengths[i] for i in b) for b in BucketSampler(lengths, 32, seed=0)]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)


def test_deterministic_for_seed_and_epoch():
    lengths = lengths_for(500)
    a, b = BucketSampler(lengths, 16, seed=5), BucketSampler(lengths, 16, seed=5)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert list(BucketSampler(lengths, 16, seed=6)) != first


def test_resume_mid_epoch_skips_the_first_batches():
    sampler = BucketSampler(lengths_for(500), 16, seed=2)
    sampler.set_epoch(3)
    full = list(sampler)
    sampler.skip(10)
    assert list(sampler) == full[10:] and len(sampler) == len(full) - 10
    sampler.set_epoch(3)  # a new epoch (or the same one again) starts from the beginning
    assert list(sampler) == full


@pytest.mark.parametrize("n, world", [(1000, 2), (101, 2), (50, 3), (3, 4)])
def test_shards_for_processes(n, world):
    lengths = lengths_for(n)
    shards = [list(BucketSampler(lengths, 8, seed=0, num_replicas=world, rank=r)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # equal step counts keep DDP in lock-step
    assert all(len(s) == BucketSampler(lengths, 8, num_replicas=world).num_batches for s in shards)
    seen = [i for shard in shards for b in shard for i in b]
    assert set(seen) == set(range(n))
    global_batches = BucketSampler(lengths, 8, seed=0).global_batches()
    assert len(seen) - n == sum(len(b) for b in (global_batches * world)[len(global_batches):len(shards[0]) * world])


def test_drop_last():
    sampler = BucketSampler(lengths_for(100), 32, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 and all(len(b) == 32 for b in batches)


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": 4, "rank": 2, "num_replicas": 2}])
def test_sampler_bad_arguments(kwargs):
    with pytest.raises(MalmoiError):
        BucketSampler([1, 2, 3], **kwargs)


def test_pad_with_mask_marks_the_real_tokens():
    ids, mask = pad_with_mask([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
