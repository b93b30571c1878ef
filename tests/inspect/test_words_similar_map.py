"""Words as vectors (one-hot against learned, CoNg), sentence similarity, the embedding map and its
PNG/HTML writers, and the `similar` / `embeddings` commands, on tiny runs trained once per module."""
from __future__ import annotations

import json
import math
import re

import pytest
import torch

import malmoi
from malmoi.data.samples import sample_path
from malmoi.errors import MalmoiError
from malmoi.inspect.embedding_map import embedding_map, save_html, save_png
from malmoi.inspect.embeddings import embedding_table
from malmoi.inspect.similar import sentence_similarity
from malmoi.inspect.words import encode, print_words, special_ids, words_view

pytestmark = pytest.mark.usefixtures("one_thread")

GPT = dict(n_embd=32, n_layer=2, n_head=2, n_inner=64, n_positions=128, resid_pdrop=0.0, embd_pdrop=0.0,
           attn_pdrop=0.0)
QUIET = dict(progress=False, say=lambda message: None)
CANDIDATES = ["돈", "꿀", "잼", "비", "눈", "차", "집", "말", "꽃", "강", "영화", "최고", "정말"]
"""A 300-piece vocabulary is mostly syllables: some of these are one token (after the word-start ▁)."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explore")
    pairs = dict(data=sample_path("chatbot"), source="Q", target="A", seed=1, **QUIET)
    return {
        "gpt": malmoi.train(task="lm", data=sample_path("corpus"), out=tmp / "gpt", vocab_size=300, block_size=64,
                            batch_size=16, max_steps=40, eval_every=40, lr=1e-2, model_overrides=GPT, seed=1,
                            **QUIET).run,
        "lstm": malmoi.train(task="seq2seq", out=tmp / "lstm", preset="lstm", units="words", epochs=1, batch_size=32,
                             model_overrides=dict(emb_dim=16, hidden=32, dropout=0.0), **pairs).run,
        "retrieval": malmoi.train(task="seq2seq", out=tmp / "retrieval", preset="retrieval", **pairs).run,
    }


@pytest.fixture(scope="module")
def gpt(runs):
    return malmoi.load(runs["gpt"])


@pytest.fixture(scope="module")
def lstm(runs):
    return malmoi.load(runs["lstm"])


def single_token_words(loaded, n=3):
    """Words whose vector is one token's, all different."""
    found = {}
    for row in words_view(loaded, CANDIDATES)["words"]:
        if len(row["vector_ids"]) == 1 and row["vector_ids"][0] not in found.values():
            found[row["word"]] = row["vector_ids"][0]
    assert len(found) >= n, found
    return list(found)[:n]


# -- words

def test_one_hot_cosines_are_zero_between_different_words_and_one_on_the_diagonal(gpt):
    words = single_token_words(gpt)
    view = words_view(gpt, words)
    size = embedding_table(gpt).shape[0]
    assert all(r["one_hot_size"] == size == view["vocabulary"] for r in view["words"])
    for i, row in enumerate(view["one_hot_cosine"]):
        assert row == [1.0 if i == j else 0.0 for j in range(len(words))]


def test_words_of_several_tokens_are_bags_of_one_hots(gpt):
    view = words_view(gpt, ["영화", "영상", "돈"])
    size = view["vocabulary"]
    bags = torch.stack([torch.nn.functional.one_hot(torch.tensor(r["vector_ids"]), size).double().sum(0)
                        for r in view["words"]])
    direct = torch.nn.functional.cosine_similarity(bags[:, None], bags[None, :], dim=-1)
    assert torch.allclose(torch.tensor(view["one_hot_cosine"], dtype=torch.float64), direct, atol=1e-4)
    assert all(r["tokens"][0] == "\u2581" and r["ids"][0] not in r["vector_ids"] for r in view["words"])


def test_learned_cosines_are_the_table_s(gpt):
    words = single_token_words(gpt) + ["영화관람객들"]
    view = words_view(gpt, words)
    table = embedding_table(gpt).double()
    vectors = torch.stack([table[r["vector_ids"]].mean(0) for r in view["words"]])
    direct = torch.nn.functional.cosine_similarity(vectors[:, None], vectors[None, :], dim=-1)
    assert torch.allclose(torch.tensor(view["learned_cosine"], dtype=torch.float64), direct, atol=1e-4)
    assert not all(v == 0.0 for i, row in enumerate(view["learned_cosine"]) for j, v in enumerate(row) if i != j)
    several = view["words"][-1]
    assert len(several["ids"]) > 1 and "mean" in several["pooled"] and view["notes"]


def test_a_token_s_nearest_token_is_itself(gpt):
    view = words_view(gpt, single_token_words(gpt))
    for r in view["words"]:
        assert r["nearest"][0]["id"] == r["vector_ids"][0] and r["nearest"][0]["cosine"] == pytest.approx(1.0, abs=1e-4)
        assert len(r["nearest"]) == 5


def test_words_of_an_lstm_word_vocabulary(lstm):
    view = words_view(lstm, ["배고파", "심심해"])
    assert [r["tokens"] for r in view["words"]] == [["배고파"], ["심심해"]]
    assert view["one_hot_cosine"] == [[1.0, 0.0], [0.0, 1.0]]


def test_print_words_shows_every_word_and_matrix(gpt, capsys):
    words = single_token_words(gpt)
    print_words(words_view(gpt, words))
    out = capsys.readouterr().out
    assert all(w in out for w in words) and "one-hot cosine" in out and "learned embedding cosine" in out


@pytest.mark.parametrize("words", [[], ["영화", "  "], "영화"])
def test_blank_or_missing_words_are_refused(gpt, words):
    with pytest.raises(MalmoiError) as e:
        words_view(gpt, words)
    assert e.value.code == "E481"


def test_cong_unavailable_is_one_clear_error(gpt, monkeypatch):
    import kiwipiepy

    from malmoi.inspect import words as module
    from malmoi.text import words as shared

    def broken(*args, **kwargs):
        raise OSError("cannot open cong.mdl\nsecond line")

    monkeypatch.setattr(module, "_CONG", {})
    monkeypatch.setattr(shared, "_KIWI", {})
    monkeypatch.setattr(kiwipiepy, "Kiwi", broken)
    with pytest.raises(MalmoiError) as e:
        words_view(gpt, ["영화", "배우"], kiwi=True)
    assert e.value.code == "E482" and "CoNg" in str(e.value) and "\n" not in str(e.value)


def test_cong_neighbours_and_similarities(gpt):
    view = words_view(gpt, ["좋다", "싫다", "영화", "qzxqv"], kiwi=True)["kiwi"]
    rows = {r["word"]: r for r in view["words"]}
    assert rows["좋다"]["morpheme"] == "좋/VA" and len(rows["좋다"]["neighbours"]) == 5
    assert rows["영화"]["morpheme"].startswith("영화/NN")
    assert rows["qzxqv"]["neighbours"] is None and rows["qzxqv"]["note"] == "not in CoNg"
    sim = view["similarity"]
    assert sim[0][0] == pytest.approx(1.0, abs=1e-3) and sim[0][1] == pytest.approx(sim[1][0])
    assert sim[3] == [None] * 4


# -- sentence similarity

@pytest.mark.parametrize("name", ["gpt", "lstm"])
def test_a_sentence_is_identical_to_itself_and_similarity_is_symmetric(request, name):
    loaded = request.getfixturevalue(name)
    a, b = "오늘 날씨 어때?", "배고파 맛있는 거 먹자"
    assert sentence_similarity(loaded, a, a)["cosine"] == pytest.approx(1.0, abs=1e-6)
    ab, ba = sentence_similarity(loaded, a, b), sentence_similarity(loaded, b, a)
    assert ab["cosine"] == pytest.approx(ba["cosine"], abs=1e-5) and -1.0 <= ab["cosine"] <= 1.0
    assert ab["pooled"]["tokens"]["a"] == ba["pooled"]["tokens"]["b"]


def test_gpt_pooling_masks_padding_and_leaves_out_cls(gpt):
    a, b = "영화", "이 영화 정말 재밌어요 배우들 연기가 최고"
    result = sentence_similarity(gpt, a, b)
    assert "[CLS]" in result["pooled"]["left_out"] and "[CLS]" not in result["pooled"]["tokens"]["a"]
    vectors = []
    with torch.inference_mode():
        for text in (a, b):  # one at a time: nothing to pad
            ids = torch.tensor([[gpt.tokenizer.bos_token_id, *encode(gpt, [text])[0]]])
            hidden = gpt.model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
            vectors.append(hidden[1:].double().mean(0))
    direct = torch.nn.functional.cosine_similarity(*vectors, dim=0)
    assert result["cosine"] == pytest.approx(float(direct), abs=1e-5)


def test_similarity_refusals(gpt, runs):
    with pytest.raises(MalmoiError) as e:
        sentence_similarity(gpt, "영화", "   ")
    assert e.value.code == "E480"
    with pytest.raises(MalmoiError) as e:
        sentence_similarity(malmoi.load(runs["retrieval"]), "안녕", "배고파")
    assert e.value.code == "E483"


# -- the embedding map

def test_the_map_places_the_most_frequent_tokens(gpt):
    emap = embedding_map(gpt, top=40)
    points = emap["points"]
    assert len(points) == emap["top"] == 40 and emap["counted_on"] == str(sample_path("corpus"))
    assert all(math.isfinite(v) for p in points for v in p["pca"] + p["tsne"])
    assert [p["count"] for p in points] == sorted((p["count"] for p in points), reverse=True)
    assert not {p["id"] for p in points} & special_ids(gpt)
    for p in points:  # five ordinary tokens, itself not among them
        near = {n["id"] for n in p["neighbours"]}
        assert len(near) == 5 and p["id"] not in near and not near & special_ids(gpt)
    assert not any(p["text"].startswith(("##", "\u2581")) for p in points if len(p["text"]) > 1)


def test_the_map_counts_on_given_data_or_falls_back_to_vocabulary_order(gpt, lstm, tmp_path):
    data = tmp_path / "few.txt"
    data.write_text("배고파 배고파 배고파\n심심해 심심해\n오늘\n영화\n너무\n", encoding="utf-8")
    emap = embedding_map(lstm, top=5, data=data)
    assert emap["counted_on"] == str(data) and [p["text"] for p in emap["points"]][:2] == ["배고파", "심심해"]
    meta = gpt.meta
    gpt.meta = {k: v for k, v in meta.items() if k not in ("data", "args")}
    try:
        emap = embedding_map(gpt, top=10)
    finally:
        gpt.meta = meta
    first = [i for i in range(len(gpt.tokenizer)) if i not in special_ids(gpt)][:10]
    assert emap["counted_on"] is None and [p["id"] for p in emap["points"]] == first and emap["notes"]


def test_png_and_html_are_written(gpt, tmp_path):
    emap = embedding_map(gpt, top=30)
    png, page = save_png(emap, tmp_path / "map.png"), save_html(emap, tmp_path / "out" / "map.html")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text(encoding="utf-8")
    hangul = [p["text"] for p in emap["points"] if re.search("[가-힣]", p["text"])]
    assert hangul and all(h in text for h in hangul)
    assert not re.search(r"https?://", text) and "<script" in text and text.count("<svg") == 2
    assert not list(tmp_path.glob("**/*.tmp"))  # atomic writes leave nothing behind


def test_map_refusals(gpt, runs):
    with pytest.raises(MalmoiError) as e:
        embedding_map(gpt, top=2)
    assert e.value.code == "E201"
    with pytest.raises(MalmoiError) as e:
        embedding_map(malmoi.load(runs["retrieval"]), top=10)
    assert e.value.code == "E483"


# -- the commands

def test_similar_command(cli, runs):
    code, out, err = cli("similar", runs["gpt"], "영화 정말 재밌다", "영화 최고")
    assert code == 0 and out.startswith("cosine ") and "pooled" in out, err
    code, out, _ = cli("similar", runs["lstm"], "배고파", "심심해", "--json")
    assert code == 0 and json.loads(out)["family"] == "lstm"


def test_embeddings_command(cli, runs, tmp_path):
    code, out, err = cli("embeddings", runs["gpt"], "--top", "20", "--out", tmp_path / "map.html")
    assert code == 0 and "wrote" in out and (tmp_path / "map.html").is_file(), err
    code, out, _ = cli("embeddings", runs["gpt"], "--top", "10", "--out", tmp_path / "map.png", "--json")
    assert code == 0 and len(json.loads(out)["points"]) == 10 and (tmp_path / "map.png").is_file()


@pytest.mark.parametrize("argv, code", [
    (("similar", "gpt", "", "영화"), "E480"),
    (("similar", "retrieval", "안녕", "배고파"), "E483"),
    (("embeddings", "gpt", "--out", "map.svg"), "E484"),
    (("embeddings", "gpt", "--out", "map.png", "--top", "1"), "E201"),
])
def test_bad_input_is_one_line_and_exit_2(cli, runs, tmp_path, argv, code):
    argv = [runs.get(a, a) for a in argv]
    argv = [tmp_path / a if str(a).startswith("map.") else a for a in argv]
    status, out, err = cli(*argv)
    assert status == 2 and err.count("\n") == 1 and f"[{code}]" in err and out == ""
