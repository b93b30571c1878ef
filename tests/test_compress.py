"""Compressing classifier runs (``malmoi compress``, ``malmoi.use.compress``) and the compact model
training exports, on real NSMC reviews: predictions agree with the uncompressed model's, the size
goal is met or refused in one line, the run is rewritten whole, and every command loads the result."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import malmoi
from malmoi.errors import MalmoiError
from malmoi.use.compress import compress, model_bytes

NSMC = Path(__file__).resolve().parents[2] / "shared" / "data" / "nsmc"
needs_nsmc = pytest.mark.skipif(not (NSMC / "train.tsv").is_file(), reason="../shared/data/nsmc is not here")
QUIET = dict(progress=False, say=lambda message: None, seed=3)


def _rows(path: Path, start: int, count: int, out: Path) -> Path:
    lines = path.read_text(encoding="utf-8").splitlines()
    out.write_text("\n".join([lines[0], *lines[1 + start:1 + start + count]]) + "\n", encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def nsmc(tmp_path_factory):
    """3,000 NSMC training reviews, 3,000 others held out, and a full (uncompressed) n-gram run on the first."""
    tmp = tmp_path_factory.mktemp("nsmc")
    train = _rows(NSMC / "train.tsv", 0, 3000, tmp / "train.tsv")
    held = _rows(NSMC / "test.tsv", 0, 3000, tmp / "held.tsv")
    run = malmoi.train(task="classify", data=train, text="document", label="label", out=tmp / "full",
                       preset="ngram-small", epochs=2, compact=False, **QUIET).run
    return {"train": train, "held": held, "run": Path(run), "tmp": tmp}


def _held(nsmc):
    from malmoi.data.readers import read_labelled

    held = read_labelled(nsmc["held"], "document", "label")
    return held.texts, np.array(held.labels)


def _labels(run, texts):
    return np.array([p.label for p in malmoi.load(run).predict(texts)])


@needs_nsmc
def test_eight_bits_agree_with_the_full_model_on_held_out_reviews(nsmc, tmp_path):
    result = compress(nsmc["run"], bits=8, out=tmp_path / "c8")
    texts, gold = _held(nsmc)
    before, after = _labels(nsmc["run"], texts), _labels(tmp_path / "c8", texts)
    assert (before == after).mean() >= 0.99
    assert abs((after == gold).mean() - (before == gold).mean()) <= 0.0015
    assert (before == gold).mean() > 0.7  # the full model learned something to agree with
    assert result.model_bytes < result.model_bytes_before / 3
    assert result.accuracy is not None and abs(result.accuracy - result.accuracy_before) <= 0.01
    assert result.examples == 300 and result.agreement >= 0.98
    assert result.run_bytes < 2 * result.model_bytes


@needs_nsmc
def test_a_target_size_is_met_and_an_unreachable_one_refused_naming_the_smallest(nsmc, tmp_path):
    result = compress(nsmc["run"], target_size="300KB", out=tmp_path / "small")
    assert result.model_bytes <= 300_000 and result.model_bytes == model_bytes(tmp_path / "small")
    texts, _ = _held(nsmc)
    assert (_labels(tmp_path / "small", texts) == _labels(nsmc["run"], texts)).mean() > 0.85
    with pytest.raises(MalmoiError) as e:
        compress(nsmc["run"], target_size="2KB", out=tmp_path / "never")
    assert e.value.code == "E291" and "smallest" in str(e.value)
    assert not (tmp_path / "never").exists()


@needs_nsmc
def test_compressing_in_place_rewrites_the_run_whole(nsmc, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(nsmc["run"], run)
    compress(run, bits=4)
    meta = json.loads((run / "malmoi.json").read_text(encoding="utf-8"))
    assert meta["compressed"]["bits"] == 4 and meta["compressed"]["model_bytes"] == model_bytes(run)
    assert meta["status"] == "done" and meta["labels"] == ["0", "1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folder left behind
    assert (run / "curve.png").is_file() and (run / "metrics.jsonl").is_file()
    assert malmoi.load(run).predict("배우들 연기가 정말 좋았어요")[0].label in ("0", "1")


@needs_nsmc
def test_given_no_goal_an_ngram_run_is_compacted_as_training_compacts(nsmc, tmp_path):
    result = compress(nsmc["run"], out=tmp_path / "auto")
    meta = json.loads((tmp_path / "auto" / "malmoi.json").read_text(encoding="utf-8"))
    assert result.bits == meta["compressed"]["bits"] == 4
    assert result.accuracy >= result.accuracy_before - 0.0015
    assert result.model_bytes < result.model_bytes_before / 4


@needs_nsmc
def test_a_compact_run_compresses_again_from_its_stored_form(nsmc, tmp_path):
    first = compress(nsmc["run"], bits=8, out=tmp_path / "a")
    second = compress(tmp_path / "a", target_size=first.model_bytes // 2, out=tmp_path / "b")
    assert second.model_bytes <= first.model_bytes // 2
    assert second.agreement > 0.9
    third = compress(tmp_path / "b", bits=16, out=tmp_path / "c")  # more bits would only grow the file
    assert third.bits == 8 and len(third.notes) == 1 and "stays at 8" in third.notes[0]


@needs_nsmc
def test_accuracy_comes_from_data_or_one_note_says_why_not(nsmc, tmp_path):
    moved = tmp_path / "moved.tsv"
    run = tmp_path / "run"
    shutil.copytree(nsmc["run"], run)
    meta = json.loads((run / "malmoi.json").read_text(encoding="utf-8"))
    meta["args"]["data"] = str(tmp_path / "gone.tsv")
    (run / "malmoi.json").write_text(json.dumps(meta), encoding="utf-8")
    alone = compress(run, bits=8, out=tmp_path / "alone")
    assert alone.accuracy is None and len(alone.notes) == 1 and "--data" in alone.notes[0]
    shutil.copy(nsmc["train"], moved)
    found = compress(run, bits=8, out=tmp_path / "found", data=moved)
    assert found.accuracy is not None and found.notes == []


def test_bad_requests_are_refused_in_one_line(tiny_runs, tmp_path):
    cases = [(dict(run=tmp_path / "none", bits=8), "E303"),
             (dict(run=tiny_runs["bert"]), "E292"),
             (dict(run=tiny_runs["ngram"], bits=3, out=tmp_path / "x"), "E290"),
             (dict(run=tiny_runs["ngram"], target_size="ten", out=tmp_path / "x"), "E291"),
             (dict(run=tiny_runs["gpt"], bits=8, out=tmp_path / "x"), "E293"),
             (dict(run=tiny_runs["ngram"], bits=8, out=tiny_runs["bert"]), "E301")]
    for kwargs, code in cases:
        with pytest.raises(MalmoiError) as e:
            compress(**kwargs)
        assert e.value.code == code, kwargs
        assert "\n" not in str(e.value)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bits", [16, 8])
def test_an_encoder_run_stores_its_weights_at_fewer_bits(tiny_runs, tmp_path, bits):
    from malmoi.data.samples import sample_path
    from malmoi.models.classifier import compact_bits

    result = compress(tiny_runs["bert"], bits=bits, out=tmp_path / "small", data=sample_path("reviews"))
    assert compact_bits(tmp_path / "small") == bits
    assert result.model_bytes < result.model_bytes_before * (0.6 if bits == 16 else 0.4)
    texts = ["배우들 연기가 정말 좋았어요", "시간 아까운 최악의 영화", "그냥 그랬다", "또 보고 싶다"]
    old = malmoi.load(tiny_runs["bert"]).predict_proba(texts)
    new = malmoi.load(tmp_path / "small").predict_proba(texts)
    assert np.allclose(old, new, atol=0.01)
    assert result.agreement >= 0.97


def test_an_encoder_target_size_picks_the_most_bits_that_fit(tiny_runs, tmp_path):
    before = model_bytes(tiny_runs["bert"])
    result = compress(tiny_runs["bert"], target_size=int(before * 0.4), out=tmp_path / "t")
    assert result.bits == 8 and result.model_bytes <= before * 0.4
    with pytest.raises(MalmoiError) as e:
        compress(tiny_runs["bert"], target_size=1000, out=tmp_path / "u")
    assert e.value.code == "E291"


@needs_nsmc
def test_training_exports_a_compact_model_that_keeps_the_full_ones_accuracy(nsmc, tmp_path):
    from malmoi.models.ngram import NgramClassifier

    run = malmoi.train(task="classify", data=nsmc["train"], text="document", label="label", out=tmp_path / "c",
                       preset="ngram-small", epochs=2, **QUIET).run
    meta = json.loads((Path(run) / "malmoi.json").read_text(encoding="utf-8"))
    compact = meta["compact"]
    assert compact["bits"] == 4 and compact["valid_accuracy"] >= compact["valid_accuracy_full"] - 0.0015
    assert NgramClassifier.load(run).is_compact
    assert model_bytes(run) < model_bytes(nsmc["run"]) / 4  # same data, seed and preset as the full run
    texts, gold = _held(nsmc)
    full, small = _labels(nsmc["run"], texts), _labels(run, texts)
    assert (small == gold).mean() >= (full == gold).mean() - 0.015


def test_the_cli_prints_sizes_and_accuracy(tiny_runs, tmp_path):
    from malmoi.data.samples import sample_path

    out = subprocess.run([sys.executable, "-m", "malmoi", "compress", str(tiny_runs["ngram"]), "--bits", "8",
                          "--out", str(tmp_path / "c"), "--data", str(sample_path("reviews"))],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "smaller" in out.stdout and "validation accuracy" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "malmoi", "compress", str(tmp_path / "none"), "--bits", "8"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "E303" in bad.stderr
    helped = subprocess.run([sys.executable, "-m", "malmoi", "compress", "--help"], capture_output=True, text=True)
    assert "Example: malmoi compress" in helped.stdout
