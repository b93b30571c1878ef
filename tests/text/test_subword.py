import json
import unicodedata

import pytest
from transformers import AutoTokenizer

from malmoi.errors import MalmoiError
from malmoi.text.subword import MorphemeTokenizerFast, load_tokenizer, train_tokenizer

CORPUS = [
    "나는 너를 좋아해.",
    "영화가 정말 재밌었어요!",
    "배우들의 연기가 좋았다",
    "이 영화는 너무 지루해요",
    "오늘 날씨가 좋다",
    "너를 만나서 정말 좋았어",
    "café에서 커피를 마셨다",
    "결말이 조금 아쉬웠지만 재밌었다",
] * 4
KINDS = ["wordpiece", "bpe", "unigram"]


@pytest.fixture(scope="module", params=[(k, m) for k in KINDS for m in (False, True)],
                ids=lambda p: f"{p[0]}{'-morphemes' if p[1] else ''}")
def saved(request, tmp_path_factory):
    kind, morphemes = request.param
    out = tmp_path_factory.mktemp("tok") / f"{kind}-{morphemes}"
    tok = train_tokenizer(CORPUS, kind=kind, vocab_size=150, morphemes=morphemes, out=out, min_frequency=1)
    return kind, morphemes, tok, out


def test_special_token_ids(saved):
    _, _, tok, _ = saved
    assert tok.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) == [0, 1, 2, 3, 4]
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, tok.cls_token_id, tok.sep_token_id)


def test_pair_encoding(saved):
    _, _, tok, _ = saved
    enc = tok("나는 너를 좋아해", "오늘 날씨가 좋다")
    ids, types = enc["input_ids"], enc["token_type_ids"]
    first_sep = ids.index(tok.sep_token_id)
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
    assert enc["attention_mask"] == [1] * len(ids)


def test_padding_and_truncation(saved):
    _, _, tok, _ = saved
    enc = tok(["나는", "나는 너를 정말 정말 좋아해"], padding=True, truncation=True, max_length=6)
    short, long = enc["input_ids"]
    assert len(short) == len(long) == 6
    assert long[-1] == tok.sep_token_id
    assert short[-1] == tok.pad_token_id and enc["attention_mask"][0][-1] == 0


def test_autotokenizer_loads_same_ids(saved):
    kind, morphemes, tok, out = saved
    text = "결말이 조금 아쉬웠지만 배우들의 연기가 좋았다"
    plain = AutoTokenizer.from_pretrained(out, local_files_only=True)
    ours = load_tokenizer(out)
    assert ours(text)["input_ids"] == tok(text)["input_ids"]
    assert isinstance(ours, MorphemeTokenizerFast) == morphemes
    if morphemes:  # the stock loader has the vocabulary; the caller marks the boundaries
        from malmoi.text.words import mark_morpheme_boundaries

        text = mark_morpheme_boundaries([text])[0]
    assert plain(text)["input_ids"] == tok(text)["input_ids"]
    config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "TokenizersBackend"
    assert bool(config.get("malmoi_morphemes")) == morphemes


def test_nfc_and_accents(saved):
    _, _, tok, _ = saved
    composed = "café에서 커피를 마셨다"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert tok(decomposed)["input_ids"] == tok(composed)["input_ids"]
    tokens = tok.tokenize(composed)
    assert all(unicodedata.normalize("NFC", t) == t for t in tokens)  # no jamo, no stripped é
    assert "é" in "".join(tokens)


ROUND_TRIP = [
    "나는 너를 좋아해.",
    "영화가  정말 재밌었어요!",
    "café에서 커피를 마셨다",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_decode_gives_readable_korean(saved, text):
    kind, morphemes, tok, _ = saved
    decoded = tok.decode(tok(text)["input_ids"], skip_special_tokens=True)
    if kind in ("bpe", "unigram"):  # Metaspace keeps the spacing, morphemes or not
        assert decoded == text
    elif not morphemes:  # WordPiece: words come back whole, spaces between words only
        assert decoded == " ".join(text.split())
    else:  # WordPiece over morphemes: a space between morphemes, the characters all there
        assert decoded.replace(" ", "") == text.replace(" ", "")


def test_morphemes_never_cut_special_tokens(saved):
    _, morphemes, tok, _ = saved
    assert tok.mask_token in tok.tokenize("나는 [MASK]를 좋아해")


@pytest.mark.parametrize("kwargs, code", [
    (dict(kind="sentencepiece"), "E210"),
    (dict(vocab_size=3), "E211"),
])
def test_bad_arguments(kwargs, code):
    with pytest.raises(MalmoiError) as e:
        train_tokenizer(CORPUS, **kwargs)
    assert e.value.code == code


def test_no_texts():
    with pytest.raises(MalmoiError) as e:
        train_tokenizer(["", "  "], kind="bpe", vocab_size=100)
    assert e.value.code == "E102"


def test_load_missing_or_not_a_tokenizer(tmp_path):
    with pytest.raises(MalmoiError) as e:
        load_tokenizer(tmp_path / "nope")
    assert e.value.code == "E410"
    with pytest.raises(MalmoiError) as e:
        load_tokenizer(tmp_path)
    assert e.value.code == "E411"
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(MalmoiError) as e:
        load_tokenizer(tmp_path)
    assert e.value.code == "E411"


def test_out_is_replaced_whole(tmp_path):
    out = tmp_path / "tok"
    out.mkdir()
    (out / "stale.txt").write_text("old", encoding="utf-8")
    train_tokenizer(CORPUS, kind="bpe", vocab_size=100, out=out, min_frequency=1)
    assert not (out / "stale.txt").exists()
    assert (out / "tokenizer.json").is_file()


def test_batch_forms_agree(saved):
    _, _, tok, _ = saved
    a, b = "나는 너를 좋아해", "오늘 날씨가 좋다"
    one = tok(a, b)["input_ids"]
    assert tok([a], [b])["input_ids"] == [one]
    assert tok([(a, b)])["input_ids"] == [one]
    assert tok.encode(a, b) == one
