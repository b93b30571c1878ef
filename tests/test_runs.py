"""Run directories as every task opens them: a run killed before its first checkpoint is started
again (with or without --resume), while finished runs, other tasks' runs and stray folders are
never removed; an existing run is refused without --resume."""
from __future__ import annotations

import json

import pytest

import malmoi
from malmoi.training import loop
from malmoi.cli import main
from malmoi.errors import MalmoiError
from malmoi.runs import restart_unfinished, start_run

PAIRS = [
    ("안녕하세요", "반가워요 좋은 하루예요"),
    ("배고파", "맛있는 거 드세요"),
    ("오늘 날씨 어때?", "맑고 따뜻해요"),
    ("심심해", "산책 어때요?"),
]
DOCS = [
    "말모이는 우리말 사전을 만들기 위해 모은 낱말이다.",
    "오늘은 날씨가 맑고 바람이 시원하다.",
    "고양이가 창문 밖을 조용히 바라본다.",
    "비가 와서 우산을 챙겼다.",
]
# two steps are enough to pass the first checkpoint; tiny models train fastest on one thread
LOOP = dict(batch_size=8, max_steps=2, eval_every=2, num_threads=1, progress=False)
# each task with a tiny model and no Kiwi: (task options, data file)
TASKS = {
    "lstm": (dict(task="seq2seq", source="Q", target="A", preset="lstm-bahdanau", units="words",
                  model_overrides=dict(emb_dim=16, hidden=16, dropout=0.0)), "pairs"),
    "bart": (dict(task="seq2seq", source="Q", target="A", preset="bart-mini",
                  model_overrides=dict(d_model=16, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=32,
                                       decoder_ffn_dim=32, dropout=0.0)), "pairs"),
    "lm": (dict(task="lm", vocab_size=60, block_size=16, sample_tokens=0,
                model_overrides=dict(n_embd=16, n_layer=1, n_head=2, n_inner=32, n_positions=32)), "docs"),
    "mlm": (dict(task="mlm", preset="bert-tiny", vocab_size=100, max_length=16,
                 model_overrides=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32)), "docs"),
}
STARTS_AGAIN = "never reached a checkpoint; starting it again"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from malmoi.text.subword import train_tokenizer

    tmp = tmp_path_factory.mktemp("runs")
    pairs = tmp / "pairs.csv"
    pairs.write_text("Q,A\n" + "".join(f"{q},{a}\n" for q, a in PAIRS * 4), encoding="utf-8")
    docs = tmp / "docs.txt"
    docs.write_text("\n".join(DOCS * 4) + "\n", encoding="utf-8")
    # a plain BPE tokenizer keeps BART off Kiwi
    train_tokenizer([t for pair in PAIRS for t in pair] * 4, kind="bpe", vocab_size=80, out=tmp / "tok")
    return {"pairs": pairs, "docs": docs, "tokenizer": tmp / "tok"}


def task_options(name: str, files, out) -> dict:
    options, data = TASKS[name]
    extra = {"tokenizer": files["tokenizer"]} if name == "bart" else {}
    return {**options, **LOOP, **extra, "data": files[data], "out": out}


def kill_before_the_first_checkpoint(options: dict, monkeypatch) -> None:
    """Run the task until ``fit`` starts, as a run killed then leaves its directory."""
    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    with monkeypatch.context() as patch:
        patch.setattr(loop, "fit", killed)
        with pytest.raises(RuntimeError, match="killed"):
            malmoi.train(**options, say=lambda _: None)
    meta = json.loads((options["out"] / "malmoi.json").read_text(encoding="utf-8"))
    assert meta["status"] == "training" and not (options["out"] / "checkpoints").exists()


# ---------------------------------------------------------------------------------------- every task


@pytest.mark.parametrize("resume", [True, False], ids=["resume", "rerun"])
@pytest.mark.parametrize("name", TASKS)
def test_a_run_killed_before_its_first_checkpoint_starts_again(files, tmp_path, monkeypatch, name, resume):
    options = task_options(name, files, tmp_path / "run")
    kill_before_the_first_checkpoint(options, monkeypatch)
    said: list[str] = []
    result = malmoi.train(**options, resume=resume, say=said.append)
    assert f"{tmp_path / 'run'} {STARTS_AGAIN}" in said
    assert result.steps == 2 and not (tmp_path / "run" / "checkpoints").exists()  # finished: model only
    meta = json.loads((tmp_path / "run" / "malmoi.json").read_text(encoding="utf-8"))
    assert meta["status"] == "done" and meta["task"] == options["task"]


def test_a_killed_transformer_run_starts_again_as_the_command_says(files, tmp_path, monkeypatch):
    """Nothing was trained, so --resume keeps nothing of the killed run, its model family included."""
    kill_before_the_first_checkpoint(task_options("bart", files, tmp_path / "run"), monkeypatch)
    said: list[str] = []
    malmoi.train(**task_options("lstm", files, tmp_path / "run"), resume=True, say=said.append)
    assert f"{tmp_path / 'run'} {STARTS_AGAIN}" in said
    assert json.loads((tmp_path / "run" / "malmoi.json").read_text())["architecture"] == "lstm-seq2seq"


def test_the_cli_says_it_starts_again_and_trains(files, tmp_path, monkeypatch, capsys):
    kill_before_the_first_checkpoint(task_options("lstm", files, tmp_path / "run"), monkeypatch)
    capsys.readouterr()
    code = 0
    try:
        main(["train", "seq2seq", "--data", str(files["pairs"]), "--source", "Q", "--target", "A", "--out",
              str(tmp_path / "run"), "--units", "words", "--epochs", "1", "--resume", "--json"])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{tmp_path / 'run'} {STARTS_AGAIN}" in err
    assert json.loads(out)["steps"] > 0


def test_a_finished_run_is_still_refused_without_resume(files, tmp_path):
    options = task_options("lstm", files, tmp_path / "run")
    malmoi.train(**options, say=lambda _: None)
    with pytest.raises(MalmoiError) as e:
        malmoi.train(**options, say=lambda _: None)
    assert e.value.code == "E301"


# ---------------------------------------------------------------------------------------- the folder rules


def half_made(run, **meta) -> None:
    run.mkdir()
    (run / "malmoi.json").write_text(json.dumps({"task": "seq2seq", "status": "training", **meta}))
    (run / "tokenizer.json").write_text("{}")


@pytest.mark.parametrize("make, removed", [
    (lambda run: half_made(run), True),
    (lambda run: half_made(run, task="lm"), False),                 # another task's run
    (lambda run: half_made(run, status="done"), False),             # finished
    (lambda run: (half_made(run), (run / "checkpoints" / "last").mkdir(parents=True)), False),  # resumable
    (lambda run: (run.mkdir(), (run / "malmoi.json").write_text("{half")), False),  # unreadable
    (lambda run: (run.mkdir(), (run / "notes.txt").write_text("mine")), False),     # not a run at all
    (lambda run: None, False),                                                      # nothing there
])
def test_only_a_half_made_run_of_the_same_task_is_removed(tmp_path, make, removed):
    run = tmp_path / "run"
    make(run)
    existed = run.exists()
    said: list[str] = []
    assert restart_unfinished(run, "seq2seq", said.append) is removed
    assert run.exists() is (existed and not removed)
    assert said == ([f"{run} {STARTS_AGAIN}"] if removed else [])


@pytest.mark.parametrize("resume, code", [(False, "E301"), (True, "E302")])
def test_start_run_refuses_an_existing_run_or_a_missing_checkpoint(tmp_path, resume, code):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(MalmoiError) as e:
        with start_run(tmp_path / "run", "seq2seq", resume, lambda _: None):
            pass
    assert e.value.code == code
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_a_build_failure_leaves_no_run_directory(tmp_path):
    with pytest.raises(ValueError):
        with start_run(tmp_path / "run", "seq2seq", False, lambda _: None) as run:
            assert run.fresh and not run.reopen and run.out.is_dir()
            with run.building():
                raise ValueError("no model")
    assert not (tmp_path / "run").exists()
