"""Datasets tokenize once and hand out id lists that the collators batch."""
from __future__ import annotations

import pytest
import torch

from malmoi.data.batching import MLMCollator, PadCollator
from malmoi.data.datasets import (
    ClassificationDataset, LanguageModelDataset, Seq2SeqDataset, TextDataset, encode_all,
)
from malmoi.errors import MalmoiError

WORDS = ["나는", "너를", "좋아해", "이", "영화", "정말", "재밌다", "별로다", "오늘", "날씨가", "좋다", "?", "응"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def tokenizer():
    """A word-level fast tokenizer with BERT's [CLS] … [SEP] template, built in code."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   bos_token="[CLS]", eos_token="[SEP]",
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def ids(*words: str) -> list[int]:
    return [(SPECIAL + WORDS).index(w) for w in words]


CLS, SEP = 2, 3


@pytest.mark.parametrize("text, expected", [
    ("나는 너를 좋아해", [CLS, *ids("나는", "너를", "좋아해"), SEP]),
    ("이 영화 정말 재밌다", [CLS, *ids("이", "영화", "정말", "재밌다"), SEP]),
    ("오늘 날씨가 좋다 ?", [CLS, *ids("오늘", "날씨가", "좋다", "?"), SEP]),
    ("외계어 문장", [CLS, 1, 1, SEP]),
])
def test_classification_items(tokenizer, text, expected):
    data = ClassificationDataset([text], [1], tokenizer, max_length=32)
    item = data[0]
    assert item["input_ids"] == expected
    assert item["attention_mask"] == [1] * len(expected)
    assert item["token_type_ids"] == [0] * len(expected)
    assert item["labels"] == 1
    assert data.lengths == [len(expected)]


def test_no_token_type_ids_unless_the_tokenizer_takes_them(tokenizer):
    class NoTypes:
        model_input_names = ["input_ids", "attention_mask"]
        convert_tokens_to_ids = tokenizer.convert_tokens_to_ids

        def __call__(self, texts, **kw):
            return tokenizer(texts, **kw)

    item = ClassificationDataset(["응"], [0], NoTypes(), 8)[0]
    assert set(item) == {"input_ids", "attention_mask", "labels"}


def test_classification_truncates_but_keeps_sep(tokenizer):
    data = ClassificationDataset(["이 영화 정말 정말 정말 재밌다"], [0], tokenizer, max_length=4)
    assert data[0]["input_ids"] == [CLS, *ids("이", "영화"), SEP]


def test_tokenizes_once_in_one_batched_call(tokenizer):
    calls = []

    class Counting:
        model_input_names = tokenizer.model_input_names

        def convert_tokens_to_ids(self, *a):
            return tokenizer.convert_tokens_to_ids(*a)

        def __call__(self, texts, **kw):
            calls.append(len(texts))
            return tokenizer(texts, **kw)

    data = ClassificationDataset(["나는 너를 좋아해", "응", "이 영화 별로다"] * 10, [0, 1, 0] * 10, Counting(), 16)
    for _ in range(3):
        [data[i] for i in range(len(data))]
    assert calls == [30]


def test_classification_batches_through_the_collator(tokenizer):
    data = ClassificationDataset(["나는 너를 좋아해", "응"], [1, 0], tokenizer, max_length=16)
    batch = PadCollator(pad_id=tokenizer.pad_token_id)([data[0], data[1]])
    assert batch["input_ids"].tolist() == [[CLS, *ids("나는", "너를", "좋아해"), SEP], [CLS, *ids("응"), SEP, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 5, [1, 1, 1, 0, 0]]


@pytest.mark.parametrize("texts, labels, max_length, code", [
    (["응"], [0], 0, "E202"), (["응"], [0], -3, "E202"), (["응", "응"], [0], 8, "E115"),
])
def test_classification_bad_input(tokenizer, texts, labels, max_length, code):
    with pytest.raises(MalmoiError) as err:
        ClassificationDataset(texts, labels, tokenizer, max_length)
    assert err.value.code == code


def test_seq2seq_with_a_tokenizer(tokenizer):
    data = Seq2SeqDataset(["오늘 날씨가 좋다 ?"], ["응 좋다"], tokenizer)
    assert data[0] == {"input_ids": [CLS, *ids("오늘", "날씨가", "좋다", "?"), SEP],
                       "labels": [CLS, *ids("응", "좋다"), SEP], "attention_mask": [1] * 6}
    assert data.lengths == [10]


def test_seq2seq_with_callables_keeps_eos_when_truncating():
    vocab = {w: i + 4 for i, w in enumerate(WORDS)}
    bos, eos = 2, 3

    def encode(text):  # what a word-level Vocab does: words → ids, framed by <bos> … <eos>
        return [bos] + [vocab[w] for w in text.split()] + [eos]

    data = Seq2SeqDataset(["나는 너를 좋아해"], ["이 영화 정말 재밌다"], encode, max_source_length=None,
                          max_target_length=4, attention_mask=False)
    assert data[0] == {"input_ids": [bos, vocab["나는"], vocab["너를"], vocab["좋아해"], eos],
                       "labels": [bos, vocab["이"], vocab["영화"], eos]}
    batch = PadCollator()([data[0], data[0]])
    assert batch["labels"].shape == (2, 4)


def test_seq2seq_mismatched_pairs(tokenizer):
    with pytest.raises(MalmoiError) as err:
        Seq2SeqDataset(["응"], [], tokenizer)
    assert err.value.code == "E115"


def test_language_model_packs_documents_with_eos(tokenizer):
    texts = ["나는 너를 좋아해", "응", "이 영화 정말 재밌다"]
    data = LanguageModelDataset(texts, tokenizer, block_size=4)
    stream = [*ids("나는", "너를", "좋아해"), SEP, *ids("응"), SEP, *ids("이", "영화", "정말", "재밌다"), SEP]
    assert data.num_tokens == len(stream) == 11
    assert [data[i]["input_ids"] for i in range(len(data))] == [stream[0:4], stream[4:8]]
    assert all(data[i]["labels"] == data[i]["input_ids"] for i in range(len(data)))
    assert data.lengths == [4, 4]


def test_language_model_short_corpus_is_one_block(tokenizer):
    data = LanguageModelDataset(["응"], tokenizer, block_size=64, bos_id=CLS)
    assert len(data) == 1 and data[0]["input_ids"] == [CLS, *ids("응"), SEP]


def test_language_model_needs_eos_and_a_block_size():
    with pytest.raises(MalmoiError):
        LanguageModelDataset(["a"], lambda t: [5], block_size=8)
    with pytest.raises(MalmoiError):
        LanguageModelDataset(["a"], lambda t: [5], block_size=0, eos_id=3)


def test_text_dataset_feeds_mlm(tokenizer):
    data = TextDataset(["나는 너를 좋아해", "이 영화 정말 재밌다"] * 50, tokenizer, max_length=16)
    collator = MLMCollator.from_tokenizer(tokenizer)
    torch.manual_seed(0)
    batch = collator([data[i] for i in range(len(data))])
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    chosen = batch["labels"] != -100
    assert chosen.any()
    assert not chosen[:, 0].any()  # [CLS] is never masked
    assert (batch["labels"][chosen] >= len(SPECIAL)).all()


def test_encode_all_empty(tokenizer):
    assert encode_all([], tokenizer, 8) == []
