"""`malmoi train classify`, `malmoi eval`, `malmoi predict`: output, --json, and one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import malmoi
from malmoi.training.metrics import classification_report

from test_classify_task import TINY, reviews, write_tsv

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    return {
        "train": write_tsv(tmp / "train.tsv", reviews(120, 10)),
        "test": write_tsv(tmp / "test.tsv", reviews(30, 11)),
        "tmp": tmp,
    }


@pytest.fixture(scope="module")
def run(data):
    """A tiny trained run made through the Python API (the CLI cannot shrink a preset to width 32)."""
    result = malmoi.train(task="classify", data=data["train"], text="document", label="label",
                          out=data["tmp"] / "run", preset="bert-tiny", model_overrides=TINY, vocab_size=150,
                          epochs=4, batch_size=16, lr=3e-3, max_length=16, progress=False)
    return result.run


def train_args(data, out, *extra):
    return ["train", "classify", "--data", data["train"], "--text", "document", "--label", "label", "--out", out,
            "--preset", "bert-tiny", "--epochs", "1", "--batch-size", "32", "--max-length", "12",
            "--vocab-size", "100", *extra]


def test_train_classify_json(cli, data):
    code, out, err = cli(*train_args(data, data["tmp"] / "cli-run", "--json", "--valid-split", "0.2"))
    assert code == 0, err
    result = json.loads(out)
    assert result["train_examples"] == 96 and result["valid_examples"] == 24
    assert 0 <= result["metrics"]["accuracy"] <= 1
    assert result["stopped_by"] == "epochs"
    meta = json.loads((data["tmp"] / "cli-run" / "malmoi.json").read_text(encoding="utf-8"))
    assert meta["args"]["max_length"] == 12 and meta["args"]["valid_split"] == 0.2


def test_train_classify_summary_line_and_skipped_empty_rows(cli, data):
    rows = reviews(60, 12) + [("", "긍정"), ("", "부정"), ("  ", "긍정")]
    train_file = write_tsv(data["tmp"] / "with-empty.tsv", rows)
    code, out, err = cli("train", "classify", "--data", train_file, "--text", "document", "--label",
                             "label", "--out", data["tmp"] / "empty-run", "--preset", "bert-tiny", "--epochs", "1",
                             "--max-length", "12", "--vocab-size", "100", "--time-budget", "2m")
    assert code == 0, err
    assert "skipped 3 empty 'document' rows" in err
    assert out.startswith("accuracy ") and "validation examples" in out and str(data["tmp"] / "empty-run") in out


def bad_input_cases(data):
    tmp = data["tmp"]
    one_class = write_tsv(tmp / "one-class.tsv", [(t, "긍정") for t, _ in reviews(10, 13)])
    existing = tmp / "existing"
    existing.mkdir(exist_ok=True)
    (existing / "notes.txt").write_text("keep me")
    out = tmp / "never-made"
    return {
        "missing label column": (train_args(data, out)[:6] + ["--label", "stars", "--out", out], "E104",
                                 "no column 'stars'"),
        "single class": (["train", "classify", "--data", one_class, "--text", "document", "--label", "label",
                          "--out", out], "E110", "single class"),
        "max-length 0": (train_args(data, out, "--max-length", "0"), "E222", "--max-length"),
        "max-length absurd": (train_args(data, out, "--max-length", "1000000"), "E222", "--max-length"),
        "batch size 0": (train_args(data, out, "--batch-size", "0"), "E201", "batch_size"),
        "batch size absurd": (train_args(data, out, "--batch-size", "100000000"), "E201", "absurd"),
        "existing out": (train_args(data, existing), "E301", "--resume"),
        "resume nothing": (train_args(data, out, "--resume"), "E302", "nothing to resume"),
        "unknown preset": (train_args(data, out)[:-8] + ["--preset", "bert-huge"], "E220", "bert-mini"),
        "preset and pretrained": (train_args(data, out, "--pretrained", tmp), "E228", "not both"),
        "bad duration": (train_args(data, out, "--time-budget", "soon"), "E203", "duration"),
        "missing file": (["train", "classify", "--data", tmp / "nope.tsv", "--text", "document", "--label",
                          "label", "--out", out], "E101", "file not found"),
    }


@pytest.mark.parametrize("case", ["missing label column", "single class", "max-length 0", "max-length absurd",
                                  "batch size 0", "batch size absurd", "existing out", "resume nothing",
                                  "unknown preset", "preset and pretrained", "bad duration", "missing file"])
def test_bad_input_is_one_line_exit_2(cli, data, case):
    argv, code, words = bad_input_cases(data)[case]
    exit_code, out, err = cli(*argv)
    assert exit_code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and f"[{code}]" in lines[0] and words in lines[0]
    assert "Traceback" not in err
    assert not (data["tmp"] / "never-made").exists() or not any((data["tmp"] / "never-made").iterdir())
    assert (data["tmp"] / "existing" / "notes.txt").read_text() == "keep me"


def test_error_through_a_real_process(data, tmp_path):
    """The installed entry point: exit status 2, one line on stderr, nothing on stdout."""
    argv = [sys.executable, "-m", "malmoi", *map(str, train_args(data, tmp_path / "x", "--max-length", "-5"))]
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "[E222]" in proc.stderr


def test_eval_json_matches_hand_computed_metrics(cli, data, run):
    code, out, err = cli("eval", run, "--data", data["test"], "--errors", "2", "--json")
    assert code == 0, err
    report = json.loads(out)
    rows = reviews(30, 11)
    predicted = [p.label for p in malmoi.load(run).predict([t for t, _ in rows])]
    labels = ["긍정", "부정"]
    expected = classification_report([labels.index(y) for _, y in rows], [labels.index(p) for p in predicted],
                                     labels)
    assert report["confusion"] == expected.confusion
    assert report["accuracy"] == pytest.approx(expected.accuracy)
    assert report["macro_f1"] == pytest.approx(expected.macro_f1)
    assert [c["label"] for c in report["per_class"]] == labels
    assert len(report["errors"]) <= 2
    assert report["total"] == 30 and report["skipped_empty"] == 0


def test_eval_tables(cli, data, run):
    code, out, err = cli("eval", run, "--data", data["test"], "--errors", "1")
    assert code == 0, err
    for words in ("accuracy", "macro-F1", "per class", "precision", "recall", "confusion matrix", "긍정", "부정"):
        assert words in out


def test_eval_reports_unexpected_labels(cli, data, run):
    odd = write_tsv(data["tmp"] / "odd.tsv", reviews(4, 14) + [("그냥 그래요", "중립")])
    code, out, err = cli("eval", run, "--data", odd)
    assert code == 2 and "[E105]" in err and "중립" in err and len(err.strip().splitlines()) == 1


def test_eval_on_a_folder_that_is_not_a_run(cli, data, tmp_path):
    code, out, err = cli("eval", tmp_path, "--data", data["test"])
    assert code == 2 and "[E303]" in err


@pytest.mark.parametrize("text", ["최고 명작 추천", "최악 노잼 실망", "오늘 친구랑 본 영화"])
def test_predict_json(cli, run, text):
    code, out, err = cli("predict", run, text, "--json")
    assert code == 0, err
    [pred] = json.loads(out)
    assert pred["text"] == text and pred["label"] in ("긍정", "부정")
    assert sum(pred["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert pred["score"] == pytest.approx(pred["probabilities"][pred["label"]])


def test_predict_from_a_file_and_table(cli, data, run):
    lines = data["tmp"] / "lines.txt"
    lines.write_text("최고 명작\n\n별로 최악\n", encoding="utf-8")
    code, out, err = cli("predict", run, "--file", lines, "--json")
    assert code == 0, err
    assert [p["text"] for p in json.loads(out)] == ["최고 명작", "별로 최악"]
    code, out, err = cli("predict", run, "추천 꿀잼")
    assert code == 0 and "추천 꿀잼" in out and "p(긍정)" in out


def test_predict_without_texts(cli, run):
    code, out, err = cli("predict", run)
    assert code == 2 and "[E233]" in err


def test_demo_trains_on_the_samples_and_predicts(cli, tmp_path):
    out = tmp_path / "runs" / "demo"
    code, stdout, err = cli("demo", "--out", out, "--time-budget", "5s")
    assert code == 0, err
    assert "1. train" in stdout and "2. predict" in stdout and "validation examples" in stdout
    assert stdout.count("(positive)") + stdout.count("(negative)") == 5
    assert json.loads((out / "malmoi.json").read_text(encoding="utf-8"))["status"] == "done"
    code, stdout, err = cli("demo", "--out", out, "--time-budget", "2s")  # an old demo run is replaced
    assert code == 0, err


def test_demo_never_deletes_a_folder_it_did_not_make(cli, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    code, stdout, err = cli("demo", "--out", tmp_path)
    assert code == 2 and "[E307]" in err
    assert (tmp_path / "mine.txt").read_text() == "keep me"


@pytest.mark.slow  # two processes, each importing torch and transformers
def test_torchrun_two_processes_write_one_run(data, tmp_path):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    argv = [torchrun, "--nproc_per_node", "2", "-m", "malmoi", *map(str, train_args(data, tmp_path / "run")),
            "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    [summary] = [line for line in proc.stdout.splitlines() if line.startswith("{")]  # one process reports
    assert json.loads(summary)["steps"] == 2  # 108 examples / batch 32 = 4 batches, 2 per process
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2
    assert proc.stderr.count("training a WordPiece tokenizer") == 1
