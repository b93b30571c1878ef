import itertools
import json

import pytest
import torch

from malmoi.errors import MalmoiError
from malmoi.text.vocab import BERT_SPECIALS, SPECIALS, Vocab, one_hot_cosine

TEXTS = [
    ["나는", "너를", "좋아해"],
    ["너를", "싫어해"],
    ["나는", "영화를", "좋아해"],
    ["너를", "만났다"],
]


@pytest.fixture
def vocab():
    return Vocab.build(TEXTS)


def test_specials_come_first(vocab):
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)


def test_bert_specials():
    v = Vocab.build(TEXTS, bert=True)
    assert v.itos[: len(SPECIALS) + len(BERT_SPECIALS)] == SPECIALS + ["[CLS]", "[SEP]", "[MASK]"]
    assert v.pad_id == 0


def test_most_frequent_first_ties_in_first_seen_order(vocab):
    # 너를 ×3, 나는 ×2, 좋아해 ×2, then the words seen once in order of appearance
    assert vocab.itos[4:] == ["너를", "나는", "좋아해", "싫어해", "영화를", "만났다"]
    assert len(vocab) == 10


@pytest.mark.parametrize("min_freq, max_size, words", [
    (1, None, ["너를", "나는", "좋아해", "싫어해", "영화를", "만났다"]),
    (2, None, ["너를", "나는", "좋아해"]),
    (3, None, ["너를"]),
    (1, 2, ["너를", "나는"]),
    (2, 0, []),
])
def test_min_freq_and_max_size(min_freq, max_size, words):
    v = Vocab.build(TEXTS, min_freq=min_freq, max_size=max_size)
    assert v.itos[len(SPECIALS):] == words


@pytest.mark.parametrize("tokens, bos, eos, expected", [
    (["나는", "너를", "좋아해"], False, False, [5, 4, 6]),
    (["나는", "너를", "좋아해"], True, True, [2, 5, 4, 6, 3]),
    (["나는", "고양이를", "좋아해"], False, True, [5, 1, 6, 3]),
    ([], True, True, [2, 3]),
])
def test_encode(vocab, tokens, bos, eos, expected):
    assert vocab.encode(tokens, add_bos=bos, add_eos=eos) == expected


def test_decode_skips_specials_but_keeps_unk(vocab):
    ids = vocab.encode(["나는", "고양이를", "좋아해"], add_bos=True, add_eos=True) + [vocab.pad_id] * 2
    assert vocab.decode(ids) == ["나는", "<unk>", "좋아해"]
    assert vocab.decode(ids, skip_specials=False) == ["<bos>", "나는", "<unk>", "좋아해", "<eos>", "<pad>", "<pad>"]
    assert vocab.decode(torch.tensor(ids)) == ["나는", "<unk>", "좋아해"]


def test_round_trip_of_known_words(vocab):
    for tokens in TEXTS:
        assert vocab.decode(vocab.encode(tokens, add_bos=True, add_eos=True)) == tokens


def test_save_load(vocab, tmp_path):
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocab.load(path)
    assert loaded.itos == vocab.itos and loaded.specials == vocab.specials
    assert json.loads(path.read_text(encoding="utf-8"))["tokens"][4] == "너를"  # readable Korean, not \\uXXXX


@pytest.mark.parametrize("content", ["{broken", "[1, 2]", '{"format": "other"}'])
def test_load_rejects_other_files(tmp_path, content):
    path = tmp_path / "vocab.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(MalmoiError) as e:
        Vocab.load(path)
    assert e.value.code == "E412"


def test_load_missing(tmp_path):
    with pytest.raises(MalmoiError) as e:
        Vocab.load(tmp_path / "none.json")
    assert e.value.code == "E412"


def test_one_hot_shape_and_values(vocab):
    oh = vocab.one_hot([[5, 4], [0, 0]])
    assert oh.shape == (2, 2, len(vocab)) and oh.dtype == torch.float32
    assert oh.sum(-1).tolist() == [[1, 1], [1, 1]]
    assert oh[0, 0].argmax().item() == 5


def test_one_hot_vectors_of_different_words_are_orthogonal(vocab):
    words = vocab.itos[len(SPECIALS):]
    for a, b in itertools.combinations(words, 2):
        assert one_hot_cosine(vocab, a, b) == 0.0
    assert one_hot_cosine(vocab, "나는", "나는") == pytest.approx(1.0)
    oh = vocab.one_hot(range(len(vocab)))
    assert torch.equal(oh @ oh.T, torch.eye(len(vocab)))  # the whole Gram matrix is the identity
