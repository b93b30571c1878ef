"""Tiny trained runs of every servable kind, trained once per test session on the bundled samples."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import pytest

from malmoi.data.samples import sample_path

GPT = dict(n_embd=32, n_layer=2, n_head=2, n_inner=64, n_positions=640, resid_pdrop=0.0, embd_pdrop=0.0,
           attn_pdrop=0.0)
BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
LSTM = dict(emb_dim=32, hidden=64, dropout=0.0)
QUIET = dict(progress=False, say=lambda message: None)


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """name → run directory: ngram and bert classifiers, a GPT, an LSTM seq2seq."""
    import torch

    import malmoi

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("serve_runs")
    reviews = sample_path("reviews")
    out = {
        "ngram": malmoi.train(task="classify", data=reviews, text="document", label="label", out=tmp / "ngram",
                              preset="ngram-small", epochs=2, seed=1, **QUIET).run,
        "bert": malmoi.train(task="classify", data=reviews, text="document", label="label", out=tmp / "bert",
                             preset="bert-tiny", model_overrides=BERT, vocab_size=300, epochs=1, batch_size=32,
                             max_length=32, seed=1, **QUIET).run,
        "gpt": malmoi.train(task="lm", data=sample_path("corpus"), out=tmp / "gpt", vocab_size=300,
                            block_size=64, batch_size=16, max_steps=80, eval_every=80, lr=1e-2,
                            model_overrides=GPT, seed=1, **QUIET).run,
        "chat": malmoi.train(task="seq2seq", data=sample_path("chatbot"), source="Q", target="A",
                             out=tmp / "chat", preset="lstm-bahdanau", units="words", epochs=2, batch_size=32,
                             model_overrides=LSTM, seed=1, **QUIET).run,
    }
    torch.set_num_threads(before)
    return out


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
