"""Tiny runs of the families the inspector reads, trained once per test session on the bundled samples."""
from __future__ import annotations

import pytest

from malmoi.data.samples import sample_path

BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
GPT = dict(n_embd=32, n_layer=2, n_head=2, n_inner=64, n_positions=128, resid_pdrop=0.0, embd_pdrop=0.0,
           attn_pdrop=0.0)
QUIET = dict(progress=False, say=lambda message: None)


@pytest.fixture(scope="session")
def inspect_runs(tmp_path_factory):
    import torch

    import malmoi

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("inspect_runs")
    corpus = sample_path("corpus")
    runs = {
        "bert": malmoi.train(task="classify", data=sample_path("reviews"), text="document", label="label",
                             out=tmp / "bert", preset="bert-tiny", model_overrides=BERT, vocab_size=300, epochs=2,
                             batch_size=32, max_length=32, seed=1, **QUIET).run,
        "gpt": malmoi.train(task="lm", data=corpus, out=tmp / "gpt", vocab_size=300, block_size=64, batch_size=16,
                            max_steps=60, eval_every=60, lr=1e-2, model_overrides=GPT, seed=1, **QUIET).run,
        "mlm": malmoi.train(task="mlm", data=corpus, out=tmp / "mlm", preset="bert-tiny", model_overrides=BERT,
                            vocab_size=300, max_length=32, batch_size=16, epochs=1, seed=1, **QUIET).run,
        "retrieval": malmoi.train(task="seq2seq", data=sample_path("chatbot"), source="Q", target="A",
                                  out=tmp / "retrieval", preset="retrieval", seed=1, **QUIET).run,
    }
    torch.set_num_threads(before)
    return runs
