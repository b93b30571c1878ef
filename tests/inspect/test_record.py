"""The inspect record for transformer runs (BERT classifier, GPT, MLM) and retrieval: every stage
present and consistent with what the run's own calls return; the JSON validates; the CLI."""
from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest
import torch

import malmoi
from malmoi.errors import MalmoiError
from malmoi.inspect import inspect_text

SENTENCE = "배우들 연기가 정말 좋았어요 😀"
SCHEMA = json.loads(resources.files("malmoi.inspect").joinpath("schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def loaded(inspect_runs):
    return {name: malmoi.load(run) for name, run in inspect_runs.items()}


@pytest.fixture(scope="module")
def records(loaded):
    return {name: inspect_text(model, SENTENCE) for name, model in loaded.items()}


def test_every_record_validates_against_the_schema(records):
    for name, record in records.items():
        jsonschema.validate(record, SCHEMA)
        assert record["family"] == {"bert": "bert", "gpt": "gpt", "mlm": "mlm", "retrieval": "retrieval"}[name]
        json.dumps(record, ensure_ascii=False)  # plain JSON all the way down


def test_the_text_stage_matches_the_tokenizer(records, loaded):
    stage = records["bert"]["text_stage"]
    enc = loaded["bert"].tokenizer(SENTENCE)
    assert stage["input_ids"] == enc["input_ids"] and stage["attention_mask"] == enc["attention_mask"]
    assert stage["token_type_ids"] == enc["token_type_ids"]
    assert [w["text"] for w in stage["words"]] == SENTENCE.split()
    assert all(SENTENCE[m["start"]:m["end"]] for m in stage["morphemes"])
    # readable labels are the input's own characters: no ## pieces, specials as themselves
    assert stage["display"][0] == "[CLS]" and not any(d.startswith("##") for d in stage["display"])
    assert "".join(d for d, o in zip(stage["display"], stage["offsets"]) if o[1] > o[0]) == SENTENCE.replace(" ", "")


def test_a_tokens_first_neighbour_is_itself(records):
    for name in ("bert", "gpt", "mlm"):
        ids = records[name]["text_stage"]["input_ids"]
        emb = records[name]["embeddings"]
        assert emb["shape"][0] == len(ids)
        for i, row in zip(ids, emb["tokens"]):
            assert row["nearest"][0]["id"] == i and row["nearest"][0]["cosine"] == pytest.approx(1.0, abs=1e-4)


def test_attention_rows_sum_to_one(records):
    for name in ("bert", "gpt", "mlm"):
        layers = records[name]["layers"]
        n = len(records[name]["text_stage"]["input_ids"])
        assert len(layers["hidden_norms"]) == layers["layers"] + 1
        for layer in layers["attention"]:
            assert len(layer) == layers["heads"]
            for head in layer:
                assert len(head) == n
                for t, row in enumerate(head):
                    assert sum(row) == pytest.approx(1.0, abs=1e-3)
                    if name == "gpt":  # causal: nothing after the token itself
                        assert all(w == 0 for w in row[t + 1:])


def test_the_classifier_stage_equals_predict(records, loaded):
    clf = records["bert"]["classifier"]
    expected = loaded["bert"].predict([SENTENCE])[0]
    assert clf["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    assert clf["label"] == expected.label
    assert sum(clf["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    logits = torch.tensor(list(clf["logits"].values()))
    assert logits.softmax(-1).tolist() == pytest.approx(list(expected.probabilities.values()), abs=1e-3)
    assert len(clf["attributions"]) == len(records["bert"]["text_stage"]["input_ids"])
    assert any(abs(a) > 0 for a in clf["attributions"])


def test_gradient_x_input_sums_to_the_logit_change_of_a_linear_probe(loaded):
    # for the embedding layer's output alone the attributions are Σ grad·e per token: check one by hand
    from malmoi.inspect.classifier import encoder_inputs, gradient_x_input

    clf = loaded["bert"]
    inputs = encoder_inputs(clf.tokenizer, "정말 좋다", None, 32)
    got = gradient_x_input(clf.model, inputs, 1)
    table = clf.model.encoder.get_input_embeddings()
    e = table(inputs["input_ids"]).detach().requires_grad_(True)
    hidden = clf.model.encoder(inputs_embeds=e, attention_mask=inputs["attention_mask"],
                               token_type_ids=inputs["token_type_ids"]).last_hidden_state
    clf.model.head(hidden[:, 0])[0, 1].backward()
    assert got == pytest.approx((e.grad * e).sum(-1)[0].tolist(), abs=1e-4)


def test_gpt_first_step_is_greedy_generate(records, loaded):
    gen = records["gpt"]["generation"]
    greedy = loaded["gpt"].generate([SENTENCE], max_new_tokens=len(gen["steps"]), greedy=True)[0]
    assert [s["chosen"]["token"] for s in gen["steps"]][: len(greedy.tokens)] == greedy.tokens
    assert gen["steps"][0]["top"][0]["id"] == gen["steps"][0]["chosen"]["id"]
    assert gen["text"] == greedy.text
    sampling = gen["sampling"]
    entropies = [t["entropy"] for t in sampling["temperature"]]
    assert entropies == sorted(entropies)  # a higher temperature flattens the distribution
    assert 1 <= sampling["top_p"]["tokens_kept"] <= sampling["top_p"]["of"]


def test_the_logit_lens_last_layer_is_the_models_prediction(records, loaded):
    lens = records["gpt"]["layers"]["logit_lens"]
    ids = torch.tensor([records["gpt"]["text_stage"]["input_ids"]])
    with torch.inference_mode():
        best = loaded["gpt"].model(ids).logits[0].argmax(-1).tolist()
    spell = loaded["gpt"].tokenizer.convert_ids_to_tokens
    assert [cell[0]["token"] for cell in lens[-1]] == spell(best)
    assert len(lens) == records["gpt"]["layers"]["layers"]


def test_mlm_fills_a_mask_and_shows_its_lens(loaded):
    record = inspect_text(loaded["mlm"], "오늘 날씨가 [MASK] 좋다")
    assert record["fillings"] and record["fillings"][0]["text"].startswith("오늘")
    assert len(record["layers"]["logit_lens"]) == record["layers"]["layers"]


def test_a_pair_has_two_type_ids(loaded):
    record = inspect_text(loaded["bert"], "정말 좋다", pair="너무 싫다")
    stage = record["text_stage"]
    assert set(stage["token_type_ids"]) == {0, 1} and stage["sequence_ids"].count(1) > 0
    jsonschema.validate(record, SCHEMA)


def test_retrieval_shows_its_match(records, loaded):
    r = records["retrieval"]["retrieval"]
    answer = loaded["retrieval"].generate([SENTENCE])[0]
    assert r["answer"] == answer.text and r["matched"] == answer.matched


def test_long_inputs_are_cut_with_a_note(loaded):
    record = inspect_text(loaded["gpt"], "가나다라 " * 200, max_tokens=16)
    assert len(record["text_stage"]["input_ids"]) == 16 and record["notes"]
    assert len(record["layers"]["attention"][0][0]) == 16


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_an_empty_sentence_is_refused(loaded, text):
    with pytest.raises(MalmoiError) as e:
        inspect_text(loaded["bert"], text)
    assert e.value.code == "E480"


def test_the_command_line(cli, inspect_runs):
    code, out, err = cli("inspect", inspect_runs["bert"], "정말 재밌어요", "--json")
    assert code == 0, err
    record = json.loads(out)
    jsonschema.validate(record, SCHEMA)
    code, predicted, _ = cli("predict", inspect_runs["bert"], "정말 재밌어요", "--json")
    assert record["classifier"]["probabilities"] == pytest.approx(json.loads(predicted)[0]["probabilities"])
    code, out, err = cli("inspect", inspect_runs["gpt"], "이 영화는")
    assert code == 0 and "logit lens" in out and "generation" in out
    code, out, err = cli("inspect", inspect_runs["bert"], "")
    assert code == 2 and "E480" in err and len(err.strip().splitlines()) == 1


def test_ngram_and_lstm_records_validate(tiny_runs):
    for name, family in (("ngram", "ngram"), ("lstm", "lstm")):
        record = inspect_text(malmoi.load(tiny_runs[name]), SENTENCE)
        jsonschema.validate(record, SCHEMA)
        assert record["family"] == family
    record = inspect_text(malmoi.load(tiny_runs["ngram"]), SENTENCE)
    assert record["classifier"]["probabilities"] == pytest.approx(
        malmoi.load(tiny_runs["ngram"]).predict([SENTENCE])[0].probabilities, abs=1e-6)


def test_a_tagger_record_shows_features_tags_and_predicts_entities(tiny_runs):
    tagger = malmoi.load(tiny_runs["tagger"])
    text = "김민준은 어제 서울에 갔다."
    record = inspect_text(tagger, text)
    jsonschema.validate(record, SCHEMA)
    assert record["family"] == "tagger" and record["text_stage"]["tokens"] == list(text)
    stage = record["tagging"]
    assert [u["text"] for u in stage["units"]] == list(text) and stage["tags"] == tagger.tag(text)[0].tags
    assert [e["text"] for e in stage["entities"]] == [e.text for e in tagger.tag(text)[0].entities]
    assert stage["units"][0]["features"]["morpheme"].endswith("NNP")  # Kiwi reads 김민준 as a proper noun
    for u in stage["units"]:
        assert sum(t["p"] for t in u["top"]) <= 1.0 + 1e-6


def test_a_reader_record_shows_the_answer_and_its_span_probabilities(tiny_runs):
    reader = malmoi.load(tiny_runs["qa"])
    context, question = "민준는 서울 출신이다. 서연는 부산 출신이다.", "서연는 어디 출신이지?"
    record = inspect_text(reader, question, pair=context)
    jsonschema.validate(record, SCHEMA)
    assert record["family"] == "qa" and record["text_stage"]["sequence_ids"].count(1) > 0
    reading = record["reading"]
    answer = reader.answer([question], context)[0]
    assert (reading["answer"]["text"], reading["answer"]["start"]) == (answer.text, answer.start)
    assert all(context[u["start"]:u["end"]] == u["text"] for u in reading["tokens"])
    assert sum(u["p_start"] for u in reading["tokens"]) <= 1 + 1e-6
    assert len(record["layers"]["attention"][0][0]) == len(record["text_stage"]["input_ids"])
    with pytest.raises(MalmoiError) as e:
        inspect_text(reader, question)
    assert e.value.code == "E492"
