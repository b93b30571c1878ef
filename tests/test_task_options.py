"""Task options: defaults decided once (the preset table, then the task), and a time budget alone
deciding when training ends."""
from __future__ import annotations

import json

import pytest

import malmoi
from malmoi.tasks.classify import ClassifyOptions
from malmoi.tasks.common import UNTIL_BUDGET
from malmoi.tasks.lm import LMOptions
from malmoi.tasks.pairs import Seq2SeqOptions
from malmoi.training.args import TrainArgs

PAIRS = dict(data="pairs.csv", source="Q", target="A", out="runs/x")


@pytest.mark.parametrize("preset,batch,lr,vocab", [("lstm-bahdanau", 64, 2e-3, 8000), ("lstm", 64, 2e-3, 8000),
                                                   ("bart-mini", 32, 2e-3, 4000)])
def test_seq2seq_defaults_come_from_the_preset(preset, batch, lr, vocab):
    opts = Seq2SeqOptions(preset=preset, **PAIRS)
    assert (opts.epochs, opts.batch_size, opts.lr, opts.vocab_size) == (10, batch, lr, vocab)


def test_given_values_win_over_the_preset():
    opts = Seq2SeqOptions(preset="lstm", epochs=2, batch_size=8, lr=0.1, **PAIRS)
    assert (opts.epochs, opts.batch_size, opts.lr) == (2, 8, 0.1)


def test_classify_defaults_follow_the_preset_or_the_loop():
    ngram = ClassifyOptions(data="a.tsv", text="t", label="l", out="o")
    assert ngram.preset == "ngram" and (ngram.epochs, ngram.batch_size, ngram.lr) == (2, 512, 7e-3)
    bert = ClassifyOptions(data="a.tsv", text="t", label="l", out="o", preset="bert-mini")
    assert (bert.epochs, bert.batch_size, bert.lr) == (TrainArgs.epochs, TrainArgs.batch_size, 5e-4)


def test_a_time_budget_without_epochs_trains_until_the_budget():
    assert LMOptions(data="c.txt", out="o", time_budget="2m").epochs == UNTIL_BUDGET
    assert LMOptions(data="c.txt", out="o", time_budget="2m", epochs=4).epochs == 4
    assert LMOptions(data="c.txt", out="o").epochs == TrainArgs.epochs


def test_a_budgeted_run_is_stopped_by_time_not_by_the_default_epochs(tmp_path, one_thread):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["오늘은 날씨가 맑다.", "고양이가 창밖을 본다.", "말모이는 낱말을 모은다."] * 4) + "\n",
                      encoding="utf-8")
    result = malmoi.train(task="lm", data=corpus, out=tmp_path / "run", vocab_size=60, block_size=16, batch_size=4,
                          time_budget=2, model_overrides=dict(n_embd=16, n_layer=1, n_head=2, n_inner=32),
                          progress=False, say=lambda _: None)
    meta = json.loads((result.run / "malmoi.json").read_text(encoding="utf-8"))
    assert result.stopped_by == "time" and meta["args"]["epochs"] == UNTIL_BUDGET
