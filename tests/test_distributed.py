"""Two real processes (torchrun, gloo) train the toy model through the same ``fit``."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("fit_worker.py")
TORCHRUN = Path(sys.executable).with_name("torchrun")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [str(TORCHRUN), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           str(WORKER), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    if not TORCHRUN.exists():
        pytest.skip("torchrun is not installed next to this Python")
    tmp = tmp_path_factory.mktemp("dist")
    out, report = tmp / "run", tmp / "report"
    proc = torchrun([str(out), "--report", str(report), "--audit"], tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = {r["rank"]: r for r in (json.loads(p.read_text()) for p in report.glob("rank*.json"))}
    return out, reports, tmp


def test_two_real_processes(two_process_run):
    _, reports, _ = two_process_run
    assert sorted(reports) == [0, 1]
    assert all(r["world_size"] == 2 for r in reports.values())


def test_both_processes_end_with_identical_weights(two_process_run):
    _, reports, _ = two_process_run
    assert reports[0]["digest"] == reports[1]["digest"]
    assert reports[0]["steps"] == reports[1]["steps"] > 0
    # 90 examples in batches of 8 → 12 batches, 6 per process, 2 per step → 3 steps per epoch, 3 epochs
    assert reports[0]["steps"] == 9


def test_only_rank_zero_writes_the_run_directory(two_process_run):
    out, reports, _ = two_process_run
    assert reports[1]["writes"] == []
    written = {Path(p).name for _, p in reports[0]["writes"]}
    assert {"metrics.jsonl", "state.json"} <= written  # (safetensors and torch.save write from native code)
    assert (out / "exported.safetensors").is_file()
    assert (out / "checkpoints" / "last" / "model.safetensors").is_file()
    assert (out / "checkpoints" / "best" / "model.safetensors").is_file()
    start = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == 2


def test_sparse_embedding_gradients_are_averaged_across_processes(two_process_run, tmp_path):
    """DDP all-reduces the sparse gradients of an n-gram-style table: the processes read different batches
    and still end with identical weights."""
    out = tmp_path / "run"
    proc = torchrun([str(out), "--report", str(tmp_path / "report"), "--sparse"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(p.read_text()) for p in (tmp_path / "report").glob("rank*.json")]
    assert len(reports) == 2 and reports[0]["digest"] == reports[1]["digest"]
    assert reports[0]["steps"] == 9


@pytest.mark.slow  # two more torchrun launches (~45 s on 2 busy cores)
def test_two_process_run_stopped_by_its_budget_resumes_exactly(two_process_run, tmp_path):
    """Both processes stop at the same step when rank 0's clock says so, and resuming under two
    processes ends with the weights of the uninterrupted two-process run."""
    _, reference, _ = two_process_run
    out = tmp_path / "run"
    first = torchrun([str(out), "--report", str(tmp_path / "first"), "--delay", "0.05",
                      "--set", "time_budget=0.5", "--set", "decay_to_budget=false"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    stopped = [json.loads(p.read_text()) for p in (tmp_path / "first").glob("rank*.json")]
    assert [r["stopped_by"] for r in stopped] == ["time", "time"]
    assert stopped[0]["steps"] == stopped[1]["steps"] < reference[0]["steps"]
    second = torchrun([str(out), "--report", str(tmp_path / "second"), "--resume"], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = [json.loads(p.read_text()) for p in (tmp_path / "second").glob("rank*.json")]
    # the final weights; the best may differ, as the stopped run evaluated at one more step
    assert [r["last_digest"] for r in resumed] == [reference[0]["last_digest"]] * 2
    assert resumed[0]["digest"] == resumed[1]["digest"]


def test_a_failure_on_the_main_process_ends_every_process(tmp_path):
    """rank 0's evaluation raises: rank 1 must not wait for it forever."""
    started = time.monotonic()
    proc = torchrun([str(tmp_path / "run"), "--report", str(tmp_path / "report"), "--fail-eval"], tmp_path)
    assert proc.returncode != 0
    assert "evaluation broke" in proc.stderr
    assert "the main process failed: ValueError: evaluation broke" in proc.stderr  # rank 1's error
    assert time.monotonic() - started < 120
