"""Shared set-up: offline Hugging Face, and fixtures used across the test modules."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one torch thread, and on a busy shared CPU spinning intra-op
    threads make them many times slower (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli(capsys):
    """Run the command line in this process: ``cli("train", "classify", …)`` → (exit code, stdout, stderr)."""
    from malmoi.cli import main

    def run(*argv) -> tuple[int, str, str]:
        code = 0
        try:
            main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """Tiny trained runs of every family the server and the inspector read, trained once per test
    session on the bundled samples: ngram, bert, gpt, mlm, lstm (word-level chat), retrieval and tagger, and a
    reader (qa) on a small SQuAD file written here."""
    import torch

    import malmoi
    from malmoi.data.samples import sample_path

    bert = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    gpt = dict(n_embd=32, n_layer=2, n_head=2, n_inner=64, n_positions=640, resid_pdrop=0.0, embd_pdrop=0.0,
               attn_pdrop=0.0)  # 640 positions: a 512-token generation fits (the server's limit)
    quiet = dict(progress=False, say=lambda message: None, seed=1)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("tiny_runs")
    reviews, corpus, chatbot = sample_path("reviews"), sample_path("corpus"), sample_path("chatbot")
    runs = {
        "ngram": malmoi.train(task="classify", data=reviews, text="document", label="label", out=tmp / "ngram",
                              preset="ngram-small", epochs=2, **quiet).run,
        "bert": malmoi.train(task="classify", data=reviews, text="document", label="label", out=tmp / "bert",
                             preset="bert-tiny", model_overrides=bert, vocab_size=300, epochs=2, batch_size=32,
                             max_length=32, **quiet).run,
        "gpt": malmoi.train(task="lm", data=corpus, out=tmp / "gpt", vocab_size=300, block_size=64, batch_size=16,
                            max_steps=80, eval_every=80, lr=1e-2, model_overrides=gpt, **quiet).run,
        "mlm": malmoi.train(task="mlm", data=corpus, out=tmp / "mlm", preset="bert-tiny", model_overrides=bert,
                            vocab_size=300, max_length=32, batch_size=16, epochs=1, **quiet).run,
        "lstm": malmoi.train(task="seq2seq", data=chatbot, source="Q", target="A", out=tmp / "lstm",
                             preset="lstm-bahdanau", units="words", epochs=2, batch_size=32,
                             model_overrides=dict(emb_dim=32, hidden=64, dropout=0.0), **quiet).run,
        "retrieval": malmoi.train(task="seq2seq", data=chatbot, source="Q", target="A", out=tmp / "retrieval",
                                  preset="retrieval", **quiet).run,
        "qa": malmoi.train(task="qa", data=squad_file(tmp / "squad.json"), out=tmp / "qa", preset="qa-mini",
                           model_overrides=bert, vocab_size=150, max_length=48, doc_stride=16, max_question_length=16,
                           epochs=2, batch_size=16, **quiet).run,
        "tagger": malmoi.train(task="tag", data=sample_path("entities"), out=tmp / "tagger", epochs=3, batch_size=16,
                               lr=1e-2, model_overrides=dict(char_dim=16, bigram_dim=8, morph_dim=8, word_dim=4,
                                                             hidden=16, layers=1, grams=1 << 14), **quiet).run,
    }
    torch.set_num_threads(before)
    return runs


def squad_file(path):
    """A SQuAD v1.1 file of short contexts saying where people come from, a question about each."""
    import json
    import random

    rng = random.Random(0)
    names, cities = ["민준", "서연", "지훈", "수아", "현우", "지민"], ["서울", "부산", "대구", "광주", "전주"]
    data = []
    for a in range(12):
        context, qas = "", []
        for i, name in enumerate(rng.sample(names, 3)):
            city = rng.choice(cities)
            sentence = f"{name}는 {city} 출신이다. "
            qas.append({"id": f"{a}-{i}", "question": f"{name}는 어디 출신이지?",
                        "answers": [{"text": city, "answer_start": len(context) + sentence.index(city)}]})
            context += sentence
        data.append({"title": f"article {a}", "paragraphs": [{"context": context.strip(), "qas": qas}]})
    path.write_text(json.dumps({"version": "1.1", "data": data}, ensure_ascii=False), encoding="utf-8")
    return path


CHROMIUM = "/usr/bin/chromium"
"""Debian's chromium (``make test`` installs it with fonts-nanum); browser tests skip without it."""
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason="chromium is not installed: apt-get install chromium fonts-nanum")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless chromium context with a fresh profile and no background network traffic."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed: apt-get install chromium fonts-nanum")
    sync_api = pytest.importorskip("playwright.sync_api")
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, args=args, headless=True,
            viewport={"width": 1000, "height": 900}, locale="ko-KR")
        context.set_default_timeout(15_000)
        yield context
        context.close()


@pytest.fixture(scope="session")
def check_hangul_font():
    """``check(page, selector)``: chromium drew the element's text with a Korean font, not tofu boxes
    (asked through the DevTools protocol); only a warning where no Korean font is installed."""
    import subprocess
    import warnings

    def fonts_of(page, selector: str) -> list[str]:
        cdp = page.context.new_cdp_session(page)
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument")["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
        cdp.detach()
        return [f["familyName"] for f in fonts if f["glyphCount"]]

    def check(page, selector: str) -> None:
        fonts = fonts_of(page, selector)
        try:
            installed = subprocess.run(["fc-list", ":lang=ko", "family"], capture_output=True, text=True).stdout
        except OSError:
            installed = ""
        if installed.strip():
            assert any(k in f for f in fonts for k in ("Nanum", "Noto Sans CJK", "Noto Sans KR")), fonts
        else:
            warnings.warn(f"no Korean font installed (apt-get install fonts-nanum): Hangul drawn with {fonts}")

    return check
