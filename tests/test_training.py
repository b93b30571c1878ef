"""The training loop on a tiny toy task: learning, checkpoints, exact resume, budgets, logs, errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fit_worker import ToyClassifier, accuracy, default_args, toy_data, train, weights_digest
from malmoi.data.batching import PadCollator
from malmoi.errors import MalmoiError
from malmoi.training.args import TrainArgs, parse_duration
from malmoi.training.checkpoints import load_weights, read_checkpoint_state, save_checkpoint
from malmoi.training.loop import fit
from malmoi.training.optim import WarmupLinearDecay

WORKER = Path(__file__).with_name("fit_worker.py")


def saved_digest(folder: Path) -> str:
    model = ToyClassifier()
    load_weights(folder, model)
    return weights_digest(model)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """One uninterrupted reference run, shared by the resume tests."""
    out = tmp_path_factory.mktemp("straight") / "run"
    model, result = train(out)
    return out, model, result


def test_loss_falls_and_the_task_is_learned(straight):
    out, model, result = straight
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in events if e["event"] == "train"]
    assert losses[-1] < 0.8 * losses[0]
    assert result.best_metric >= 0.8
    assert result.stopped_by == "epochs"
    # 90 examples / batch 8 = 12 batches, 2 per step → 6 steps per epoch, 3 epochs
    assert result.steps == 18 and result.epochs == 3.0


def test_run_directory_layout(straight):
    out, model, result = straight
    last, best = out / "checkpoints" / "last", out / "checkpoints" / "best"
    assert sorted(p.name for p in last.iterdir()) == ["model.safetensors", "optimizer.pt", "scheduler.pt",
                                                      "state.json"]
    assert sorted(p.name for p in best.iterdir()) == ["model.safetensors", "state.json"]
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]  # no temp folders left
    assert read_checkpoint_state(best)["loop"]["best_step"] == result.best_step
    # optimizer and scheduler state load without unpickling arbitrary objects
    torch.load(last / "optimizer.pt", weights_only=True)
    torch.load(last / "scheduler.pt", weights_only=True)
    # the model handed back and the exported model hold the best weights
    assert weights_digest(model) == saved_digest(best)
    exported = ToyClassifier()
    from safetensors.torch import load_model

    load_model(exported, str(out / "exported.safetensors"))
    assert weights_digest(exported) == weights_digest(model)


def test_metrics_jsonl_and_curve(straight):
    out, _, result = straight
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [7, 14, 18]  # every 7 steps and at the end
    assert all({"accuracy", "loss", "epoch"} <= set(e) for e in evals)
    train_events = [e for e in events if e["event"] == "train"]
    assert [e["step"] for e in train_events] == [5, 10, 15]
    assert all(e["samples_per_s"] > 0 and e["lr"] > 0 for e in train_events)
    assert events[-1]["stopped_by"] == "epochs" and events[-1]["best"] == result.best_metric
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_crash_and_resume_reach_the_same_weights(straight, tmp_path):
    """A run that dies after its step-7 checkpoint and resumes ends bitwise where the straight run ends."""
    ref_out, ref_model, ref_result = straight
    out = tmp_path / "run"

    class Crash(Exception):
        pass

    def crash_after_first_eval(step, metrics):
        raise Crash

    torch.manual_seed(0)
    data = toy_data(90, 1)
    with pytest.raises(Crash):
        fit(ToyClassifier(), data, toy_data(30, 2), args=default_args(), out=out, collate=PadCollator(), evaluate=accuracy, metric="accuracy", maximize=True, lengths=[len(x["input_ids"]) for x in data], on_eval=crash_after_first_eval)
    assert read_checkpoint_state(out / "checkpoints" / "last")["loop"]["global_step"] == 7
    # a differently initialised model: everything must come from the checkpoint
    model, result = train(out, resume=True, model_seed=123)
    assert result.steps == ref_result.steps and result.best_step == ref_result.best_step
    assert saved_digest(out / "checkpoints" / "last") == saved_digest(ref_out / "checkpoints" / "last")
    assert weights_digest(model) == weights_digest(ref_model)
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "eval"] == [7, 14, 18]


def test_time_budget_stops_cleanly_and_resume_finishes_exactly(straight, tmp_path):
    ref_out, _, ref_result = straight
    out = tmp_path / "run"
    _, result = train(out, delay=0.02, time_budget=0.25, decay_to_budget=False)
    assert result.stopped_by == "time"
    assert 0 < result.steps < ref_result.steps
    state = read_checkpoint_state(out / "checkpoints" / "last")["loop"]
    assert state["global_step"] == result.steps and state["last_eval_step"] == result.steps
    assert (out / "checkpoints" / "best" / "model.safetensors").is_file()
    _, resumed = train(out, resume=True)
    assert resumed.steps == ref_result.steps
    assert saved_digest(out / "checkpoints" / "last") == saved_digest(ref_out / "checkpoints" / "last")


def test_decay_to_budget_shortens_the_schedule(tmp_path):
    _, result = train(tmp_path / "run", delay=0.02, time_budget=0.6, epochs=50)
    assert result.stopped_by == "time"
    lrs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lrs = [e["lr"] for e in lrs if e["event"] == "train"]
    # with 50 planned epochs (300 steps) the rate would barely move; fitted to the budget it decays
    assert lrs and lrs[-1] < 0.75 * default_args().lr


def test_with_a_budget_slow_evaluations_skip_epochs_to_keep_their_share(tmp_path):
    """Evaluating at the end of every epoch, where an evaluation takes longer than an epoch of training,
    would spend most of a time budget evaluating; ``eval_share`` (10%) skips those evaluations."""
    def slow(model, loader):
        time.sleep(0.3)
        return accuracy(model, loader)

    def evals(out):
        events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return [e for e in events if e["event"] == "eval"]

    budget = dict(delay=0.02, time_budget=6.0, epochs=100, eval_every=0, evaluate=slow)
    _, every = train(tmp_path / "every", eval_share=0.0, **budget)  # first: it also pays the loop's first start
    _, thrifty = train(tmp_path / "thrifty", **budget)
    assert thrifty.stopped_by == every.stopped_by == "time"
    assert len(evals(tmp_path / "every")) >= 4  # one per epoch
    assert len(evals(tmp_path / "thrifty")) <= 3  # the first epoch's, the closing one, perhaps one between
    assert thrifty.steps > 1.3 * every.steps
    assert evals(tmp_path / "thrifty")[-1]["step"] == thrifty.steps  # the closing evaluation still runs


def test_sigkill_then_resume(straight, tmp_path):
    """kill -9 after the first checkpoint; best stays readable; resume ends with the straight run's weights."""
    ref_out, _, _ = straight
    out, report = tmp_path / "run", tmp_path / "report"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(WORKER), str(out), "--report", str(report), "--delay", "0.05"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "last" / "state.json").exists():
            assert proc.poll() is None, "the worker ended before writing a checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    best = out / "checkpoints" / "best"
    assert read_checkpoint_state(best)["loop"]["best_step"] >= 7
    saved_digest(best)  # complete and loadable
    _, result = train(out, resume=True)
    assert result.stopped_by == "epochs"
    assert saved_digest(out / "checkpoints" / "last") == saved_digest(ref_out / "checkpoints" / "last")


def test_early_stopping(tmp_path):
    torch.manual_seed(0)
    data = toy_data(90, 1)
    result = fit(ToyClassifier(), data, toy_data(30, 2), args=default_args(epochs=20, eval_every=2, patience=2), out=tmp_path / "run", evaluate=lambda model, loader: {"score": 1.0}, metric="score", maximize=True)
    assert result.stopped_by == "early_stopping"
    assert result.steps == 6 and result.best_step == 2  # first eval is best, two more without improvement


def test_max_steps_and_no_validation_data(tmp_path):
    exported = []
    torch.manual_seed(0)
    result = fit(ToyClassifier(), toy_data(40, 1), None, args=default_args(max_steps=11, epochs=1), out=tmp_path / "run", export=lambda model, folder: exported.append(weights_digest(model)))
    assert result.stopped_by == "max_steps" and result.steps == 11 and result.best_metric is None
    assert not (tmp_path / "run" / "checkpoints" / "best").exists()
    assert exported == [saved_digest(tmp_path / "run" / "checkpoints" / "last")]


def test_bf16_autocast_trains(tmp_path):
    _, result = train(tmp_path / "run", bf16=True, epochs=1)
    assert result.steps == 6 and 0 <= result.metrics["loss"] < 10


def test_tied_weights_survive_a_checkpoint(tmp_path):
    model = ToyClassifier(tied=True)
    save_checkpoint(tmp_path / "ck", model, {"loop": {}})
    other = ToyClassifier(tied=True)
    load_weights(tmp_path / "ck", other)
    assert other.out.weight is other.emb.weight
    assert torch.equal(other.emb.weight, model.emb.weight)


def test_thread_count_is_restored(tmp_path):
    before = torch.get_num_threads()
    train(tmp_path / "run", epochs=1, num_threads=1)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("overrides", [
    {"batch_size": 0}, {"batch_size": -4}, {"batch_size": 100_000}, {"lr": 0}, {"lr": -1e-3}, {"lr": 50.0},
    {"grad_accum": 0}, {"warmup": 1.5}, {"eval_share": 1.0}, {"epochs": 0}, {"time_budget": -1}, {"patience": -1},
    {"eval_every": -5}, {"weight_decay": -0.1}, {"log_every": 0},
])
def test_bad_arguments(overrides):
    with pytest.raises(MalmoiError) as err:
        TrainArgs(**overrides)
    assert err.value.code == "E201"


def test_resume_needs_a_checkpoint_and_a_new_run_refuses_old_checkpoints(tmp_path, straight):
    with pytest.raises(MalmoiError) as err:
        train(tmp_path / "empty", resume=True)
    assert err.value.code == "E302"
    ref_out, _, _ = straight
    with pytest.raises(MalmoiError) as err:
        train(ref_out)
    assert err.value.code == "E301"
    with pytest.raises(MalmoiError) as err:
        train(ref_out, resume=True, batch_size=4)
    assert err.value.code == "E306"


def test_empty_training_data(tmp_path):
    with pytest.raises(MalmoiError) as err:
        fit(ToyClassifier(), [], None, args=default_args(), out=tmp_path / "run")
    assert err.value.code == "E113"


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("90s", 90), ("10m", 600), ("1.5h", 5400), ("1h30m", 5400), (45, 45), (" 2m ", 120),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "m"])
def test_parse_duration_rejects(text):
    with pytest.raises(MalmoiError):
        parse_duration(text)


def test_warmup_then_linear_decay():
    schedule = WarmupLinearDecay(0.1, 100)
    factors = [schedule(s) for s in range(101)]
    assert factors[0] == pytest.approx(1 / 11) and factors[9] == pytest.approx(10 / 11)
    assert factors[10] == 1.0 and factors[55] == pytest.approx(0.5) and factors[100] == 0.0
    assert all(a <= b for a, b in zip(factors[:10], factors[1:11]))
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))


def test_a_failed_checkpoint_write_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    import safetensors.torch

    good = ToyClassifier()
    save_checkpoint(tmp_path / "best", good, {"loop": {"best_step": 1}})

    def dies_halfway(model, filename, **kw):
        Path(filename).write_bytes(b"\x00" * 10)  # a torn file, as a crash mid-write would leave
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_model", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "best", ToyClassifier(), {"loop": {"best_step": 2}})
    assert read_checkpoint_state(tmp_path / "best")["loop"]["best_step"] == 1
    assert saved_digest(tmp_path / "best") == weights_digest(good)
    assert [p.name for p in tmp_path.iterdir()] == ["best"]  # no temporary folder left behind


def test_default_evaluation_is_the_mean_loss(tmp_path):
    torch.manual_seed(0)
    data = toy_data(40, 1)
    result = fit(ToyClassifier(), data, toy_data(20, 2), args=default_args(epochs=2, eval_every=0), out=tmp_path / "run")
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in events if e["event"] == "eval"]
    assert len(losses) == 2 and result.best_metric == min(losses)  # lower is better by default
    assert set(result.metrics) == {"loss"}


def test_a_model_without_a_loss_is_a_clear_error(tmp_path):
    data = [{k: v for k, v in item.items() if k != "labels"} for item in toy_data(16, 1)]
    with pytest.raises(MalmoiError) as err:
        fit(ToyClassifier(), data, None, args=default_args(), out=tmp_path / "run")
    assert err.value.code == "E460" and "labels" in err.value.message
