"""Inspecting seq2seq runs step by step: tiny LSTM (three attention kinds) and BART runs trained on the
bundled chatbot sample. The steps are checked against the generators' own ``generate`` and attention
maps, which decode through other code (``LSTMSeq2Seq.greedy``, Hugging Face ``generate``)."""
from __future__ import annotations

import csv
import json

import pytest

import malmoi
from malmoi.data.samples import sample_path
from malmoi.errors import MalmoiError
from malmoi.inspect.seq2seq import bart_stages, lstm_stages
from malmoi.use import load_generator

pytestmark = pytest.mark.usefixtures("one_thread")

ROUNDING = 5e-5  # the stages round to 4 digits


def sample_rows() -> list[dict]:
    with open(sample_path("chatbot"), encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def questions(n: int = 6) -> list[str]:
    return [row["Q"] for row in sample_rows()[:n]] + ["완전히 처음 보는 문장이에요"]


@pytest.fixture(scope="module", params=["lstm-bahdanau", "lstm-luong", "lstm"])
def lstm(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("lstm") / "run"
    malmoi.train(task="seq2seq", data=sample_path("chatbot"), source="Q", target="A", out=out,
                 preset=request.param, units="words", epochs=3, batch_size=32,
                 model_overrides=dict(emb_dim=32, hidden=64, dropout=0.0), seed=1, progress=False,
                 say=lambda m: None, max_source_length=16, max_target_length=12)  # a long input is easy to write
    return load_generator(out)


@pytest.fixture(scope="module")
def bart(tmp_path_factory):
    """A tiny BART that has memorised the sample's first six pairs: answers that end in <eos>."""
    from malmoi.text.subword import train_tokenizer

    tmp = tmp_path_factory.mktemp("bart")
    rows = sample_rows()
    train_tokenizer([t for r in rows for t in (r["Q"], r["A"])], kind="bpe", vocab_size=300,
                    out=tmp / "tok")  # plain BPE: no Kiwi
    with open(tmp / "six.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("Q", "A"), *((r["Q"], r["A"]) for r in rows[:6])])
    tiny = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                dropout=0.0)
    malmoi.train(task="seq2seq", data=tmp / "six.csv", valid=tmp / "six.csv", source="Q", target="A",
                 out=tmp / "run", preset="bart-mini", tokenizer=tmp / "tok", batch_size=6, lr=1e-2, warmup=0.0,
                 max_steps=60, eval_every=60, model_overrides=tiny, seed=1, progress=False, say=lambda m: None,
                 max_source_length=32, max_target_length=24)  # a small BPE cuts text into many pieces
    return load_generator(tmp / "run")


def chosen_ids(stages: dict) -> list[int]:
    return [s["chosen"]["id"] for s in stages["steps"]]


def check_steps(stages: dict, answer, eos: int, limit: int) -> None:
    """The steps choose ``answer``'s tokens, then <eos> unless the length limit came first."""
    ids, tokens = chosen_ids(stages), [s["chosen"]["token"] for s in stages["steps"]]
    assert [s["step"] for s in stages["steps"]] == list(range(1, len(ids) + 1))
    if len(answer.tokens) < limit:
        assert ids[-1] == eos and tokens[:-1] == answer.tokens
    else:
        assert tokens == answer.tokens
    assert stages["text"] == answer.text and stages["decoding"] == "greedy"
    for s in stages["steps"]:
        assert s["top"][0]["id"] == s["chosen"]["id"] and s["top"][0]["p"] == s["chosen"]["p"]
        assert len(s["top"]) == 3 and s["top"][0]["p"] >= s["top"][-1]["p"]
    json.dumps(stages)  # JSON-ready


def check_row(row: list[float], expected: list[float]) -> None:
    assert len(row) == len(expected)
    assert sum(row) == pytest.approx(1.0, abs=1e-5 + ROUNDING * len(row))
    assert row == pytest.approx(expected, abs=ROUNDING + 1e-6)


@pytest.mark.parametrize("text", questions())
def test_lstm_steps_reproduce_generate(lstm, text):
    stages = lstm_stages(lstm, text, top_k=3)
    cfg = lstm.model.config
    check_steps(stages, lstm.generate([text])[0], cfg.eos_id, cfg.max_len)
    ids = lstm._encode([text])[0]
    assert stages["source_tokens"] == lstm.codec.pieces(ids)
    assert len(stages["encoder"]["norms"]) == len(ids)
    assert len(stages["encoder"]["final"]["first"]) == 8 and stages["encoder"]["final"]["norm"] > 0
    if cfg.attention == "none":
        assert all("attention" not in s and "context" not in s for s in stages["steps"])
        return
    shown = lstm.attention(text)  # model.greedy's attention rows, one per answer token
    for s, expected in zip(stages["steps"], shown.weights):
        check_row(s["attention"], expected)
        assert len(s["context"]["first"]) == 8
    for s in stages["steps"][len(shown.weights):]:  # the step that chose <eos>
        assert sum(s["attention"]) == pytest.approx(1.0, abs=1e-5 + ROUNDING * len(ids))


@pytest.mark.parametrize("text", questions())
def test_bart_steps_reproduce_generate(bart, text):
    stages = bart_stages(bart, text, top_k=3)
    check_steps(stages, bart.generate([text])[0], bart.codec.eos_id, bart.max_target_length)
    if text in questions()[:6]:  # memorised: a real answer that ends in <eos>, not at the length limit
        assert len(stages["steps"]) > 3 and chosen_ids(stages)[-1] == bart.codec.eos_id
    ids = bart._encode([text])[0]
    assert stages["source_tokens"] == bart.codec.pieces(ids)
    assert len(stages["encoder"]["norms"]) == len(ids)
    cross = stages["cross_attention"]
    assert len(cross) == bart.model.config.decoder_layers == 2
    answer = chosen_ids(stages)[:-1] if chosen_ids(stages)[-1] == bart.codec.eos_id else chosen_ids(stages)
    for layer, rows in enumerate(cross):
        assert len(rows) == len(stages["steps"])
        # one teacher-forced pass over the answer: row t is what choosing token t + 1 read
        expected = bart.cross_attention(ids, answer, layer).tolist()
        for row, want in zip(rows, expected):
            check_row(row, want)


def test_a_long_input_is_refused_as_generate_refuses_it(lstm, bart):
    for generator, stages in ((lstm, lstm_stages), (bart, bart_stages)):
        text = " ".join(["안녕하세요"] * 40)
        with pytest.raises(MalmoiError) as refused:
            generator.generate([text])
        with pytest.raises(MalmoiError) as got:
            stages(generator, text)
        assert got.value.code == refused.value.code == "E423"
        short = "안녕하세요"  # under the limit: inspected as usual
        assert stages(generator, short)["source_tokens"] == generator.codec.pieces(generator._encode([short])[0])


def test_whole_records_validate_and_a_long_input_is_cut_with_a_note(lstm, bart):
    import json
    from importlib import resources

    import jsonschema

    from malmoi.inspect import inspect_text

    schema = json.loads(resources.files("malmoi.inspect").joinpath("schema.json").read_text(encoding="utf-8"))
    for generator, family in ((lstm, "lstm"), (bart, "bart")):
        record = inspect_text(generator, questions(1)[0])
        jsonschema.validate(record, schema)
        assert record["family"] == family and record["seq2seq"]["text"] == generator.generate(questions(1))[0].text
        long = inspect_text(generator, " ".join(["안녕하세요"] * 40))
        jsonschema.validate(long, schema)
        assert any("first" in note for note in long["notes"])


def test_bart_records_show_the_encoders_layers(bart):
    from malmoi.inspect import inspect_text

    record = inspect_text(bart, questions(1)[0])
    layers = record["layers"]
    n = len(record["text_stage"]["input_ids"])
    assert layers["layers"] == 2 and len(layers["hidden_norms"]) == 3
    for head in layers["attention"][0]:
        assert len(head) == n and all(abs(sum(row) - 1) < 1e-3 for row in head)
