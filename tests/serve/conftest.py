"""Tiny trained runs of every servable kind, trained once per test session on the bundled samples."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import pytest


@pytest.fixture(scope="session")
def runs(tiny_runs):
    """name → run directory: ngram and bert classifiers, a GPT, an LSTM seq2seq ("chat")."""
    return {"ngram": tiny_runs["ngram"], "bert": tiny_runs["bert"], "gpt": tiny_runs["gpt"], "chat": tiny_runs["lstm"]}


@pytest.fixture(scope="session")
def served(runs):
    """The runs loaded once, as the server holds them."""
    from malmoi.serve import load_models, parse_specs

    return load_models(parse_specs([f"{name}={run}" for name, run in runs.items()]))


@contextmanager
def live_server(app, port: int | None = None):
    """``app`` served by uvicorn on 127.0.0.1 in a thread; yields its base URL once /health is 200."""
    import httpx
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    else:
        raise RuntimeError("the test server did not start")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def serve_in_thread():
    """``live_server`` for the tests: ``with serve_in_thread(app) as url: …``."""
    return live_server


@pytest.fixture
def port() -> int:
    return free_port()
