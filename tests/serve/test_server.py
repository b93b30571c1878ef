"""A real server: the `malmoi serve` command in its own process, and uvicorn in a thread for
what needs the server's insides (a client that disconnects mid-stream stops the generation)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from malmoi.serve import ServeSettings, create_app

KEY = "sekret"
AUTH = {"Authorization": f"Bearer {KEY}"}


def start(*argv: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "malmoi", "serve", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def wait_healthy(url: str, process: subprocess.Popen, seconds: float = 60) -> list[int]:
    """Statuses /health answered until it said 200."""
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            seen.append(httpx.get(f"{url}/health", timeout=2).status_code)
            if seen[-1] == 200:
                return seen
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("the server never became healthy")


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_malmoi_serve_in_its_own_process(runs, workers, port):
    process = start(f"reviews={runs['ngram']}", str(runs["gpt"]), "--port", str(port), "--workers", str(workers),
                    env={"MALMOI_API_KEY": KEY})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        models = httpx.get(f"{url}/v1/models", headers=AUTH).json()["data"]
        assert [m["id"] for m in models] == ["reviews", "gpt"]
        assert httpx.get(f"{url}/v1/models").status_code == 401
        got = httpx.post(f"{url}/v1/classify", json={"model": "reviews", "texts": ["정말 재밌어요"]}, headers=AUTH)
        assert got.status_code == 200 and got.json()["predictions"][0]["label"] in ("0", "1")
        ask = {"model": "gpt", "prompt": "영화가", "max_new_tokens": 10, "temperature": 1.2, "seed": 1}
        whole = httpx.post(f"{url}/v1/generate", json=ask, headers=AUTH).json()["text"]
        with httpx.stream("POST", f"{url}/v1/generate", json={**ask, "stream": True}, headers=AUTH) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            data = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
        assert "".join(d["text"] for d in data) == whole and data[-1]["finish_reason"] in ("eos", "length")
        assert httpx.get(f"{url}/").headers["content-type"] == "text/html; charset=utf-8"
    finally:
        code = stop(process)
    assert code == 0


def test_bad_runs_are_refused_before_binding(cli, runs, tmp_path, port, monkeypatch):
    monkeypatch.delenv("MALMOI_API_KEY", raising=False)
    for argv, code in [([str(tmp_path / "missing")], "E3"), ([f"a={runs['ngram']}", f"a={runs['gpt']}"], "E601"),
                       ([str(runs["ngram"]), "--host", "0.0.0.0"], "E603")]:
        exit_code, _, err = cli("serve", *argv, "--port", str(port))
        assert exit_code == 2, err
        assert err.strip().count("\n") == 0 and "Traceback" not in err and f"[{code}" in err, err


def test_a_client_that_disconnects_stops_the_generation(served, serve_in_thread):
    loaded = served["gpt"].loaded
    real, produced, closed = loaded.stream, [], threading.Event()

    def slow_stream(*args, **kwargs):  # the real stream, one piece every 20 ms
        try:
            for piece in real(*args, **kwargs):
                produced.append(piece)
                time.sleep(0.02)
                yield piece
        finally:
            closed.set()

    app = create_app(settings=ServeSettings(), models=served)
    loaded.stream = slow_stream
    try:
        with serve_in_thread(app) as url:
            ask = {"model": "gpt", "prompt": "영화가", "max_new_tokens": 500, "temperature": 1.0, "seed": 2,
                   "stream": True}
            with httpx.stream("POST", f"{url}/v1/generate", json=ask) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        break  # one piece, then hang up
            assert closed.wait(5), "the generation went on after the client left"
            after = len(produced)
            time.sleep(0.3)
            assert len(produced) == after < 100
            assert app.state.malmoi.workers["gpt"].streams == []
    finally:
        loaded.stream = real
