"""The inspect page (``malmoi inspect RUN "문장" --html``): records of tiny runs of every family written as
pages, checked as text (self-contained, the sentence readable without scripts, no way out of the
record's <script>) and in a real browser (Debian's chromium, driven by Playwright, as
tests/serve/test_page.py): every section drawn, no errors, no requests, the attention heatmap's
cells and its special-token switch, Hangul drawn with a Korean font."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

import malmoi
from malmoi.inspect import inspect_text
from malmoi.inspect.page import render_html, save_html

OUT = Path(__file__).parent.parent / "serve" / "out"
SENTENCE = "배우들 연기가 정말 좋았어요"
MASKED = "배우들 [MASK] 정말 좋았어요"
HOSTILE = '</script><script>document.title="x"</script><!-- 좋아요 & <b>굵게</b>'
LONG = "이 영화는 정말 재미있었고 배우들의 연기도 훌륭했으며 음악과 영상미까지 모두 좋아서 " * 8
FILLS = "cells => cells.map(c => c.getAttribute('fill'))"
# the sections each family's page draws (notes only when the text was cut)
SECTIONS = {
    "bert": ("text", "embeddings", "layers", "classifier"),
    "gpt": ("text", "embeddings", "layers", "generation"),
    "mlm": ("text", "embeddings", "layers", "fillings"),
    "retrieval": ("text", "retrieval"),
    "ngram": ("text", "classifier"),
    "lstm": ("text", "embeddings", "seq2seq"),
    "bart": ("text", "embeddings", "seq2seq"),
    "tagger": ("text", "embeddings", "tagging"),
    "qa": ("text", "embeddings", "layers", "reading"),
}
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def loaded(inspect_runs, tiny_runs):
    """The session's tiny runs, with its n-gram classifier and LSTM seq2seq."""
    runs = {**inspect_runs, "ngram": tiny_runs["ngram"], "lstm": tiny_runs["lstm"], "tagger": tiny_runs["tagger"],
            "qa": tiny_runs["qa"]}
    return {name: malmoi.load(run) for name, run in runs.items()}


def bart_shaped(lstm_record: dict) -> dict:
    """An LSTM record with BART's per-layer cross-attention (two layers built from its attention) and
    without per-step attention: the BART view's shape, without training a BART here."""
    record = json.loads(json.dumps(lstm_record))
    steps = record["seq2seq"]["steps"]
    weights = [s.pop("attention") for s in steps]
    for s in steps:
        s.pop("context", None)
    record["family"] = "bart"
    record["seq2seq"]["cross_attention"] = [weights, [list(reversed(w)) for w in weights]]
    record["seq2seq"]["cross_attention_heads"] = "mean"
    return record


@pytest.fixture(scope="module")
def records(loaded):
    out = {name: inspect_text(model, MASKED if name == "mlm" else SENTENCE,
                              pair="민준는 서울 출신이다. 배우들 연기가 정말 좋았어요" if name == "qa" else None)
           for name, model in loaded.items()}
    out["bart"] = bart_shaped(out["lstm"])
    return out


class Opened:
    """A page file open in the browser, with everything it logged and requested."""

    def __init__(self, browser, path: Path):
        self.page = browser.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.errors.append("dialog: " + d.message), d.dismiss()))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-rendered]")

    def count(self, selector: str) -> int:
        return self.page.eval_on_selector_all(selector, "nodes => nodes.length")

    def check_quiet(self) -> None:
        assert not self.errors, self.errors
        assert self.requests == [self.url], self.requests


def check_self_contained(page: str) -> None:
    assert page.startswith("<!doctype html>") and '<html lang="ko">' in page and '<meta charset="utf-8">' in page
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert not re.search(r"""\b(src|href)\s*=\s*["'](?!data:)""", page), "the page refers to another resource"
    assert "@import" not in page and "url(" not in page and "fetch(" not in page
    assert "Noto Sans CJK KR" in page and "NanumGothic" in page and "Malgun Gothic" in page


def test_the_page_is_self_contained_and_readable_without_scripts(records, tmp_path):
    for name, record in records.items():
        page = render_html(record)
        check_self_contained(page)
        head = page.split('<script type="application/json"')[0]
        assert f'<h1 class="sentence" id="sentence">{html.escape(record["text"])}</h1>' in head, name
        for section in SECTIONS[name]:
            assert f'<section id="{section}">' in page, (name, section)
        embedded = page.split('<script type="application/json" id="record">')[1].split("</script>")[0]
        assert json.loads(embedded) == json.loads(json.dumps(record)), name
    save_html(records["bert"], tmp_path / "sub" / "bert.html")  # makes the folder, leaves no temporary file
    assert (tmp_path / "sub" / "bert.html").read_text(encoding="utf-8") == render_html(records["bert"])
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["bert.html"]


def test_a_sentence_cannot_break_out_of_the_record(loaded):
    record = inspect_text(loaded["bert"], HOSTILE)
    page = render_html(record)
    check_self_contained(page)
    assert page.count("</script>") == 2  # the record's and the script's own: none from the sentence
    embedded = page.split('<script type="application/json" id="record">')[1].split("</script>")[0]
    assert "<" not in embedded and json.loads(embedded)["text"] == HOSTILE
    assert "&lt;/script&gt;&lt;script&gt;" in page.split("<main>")[0]  # the visible sentence, escaped


def test_notes_and_missing_stages(records):
    record = dict(records["bert"], notes=["the text is 99 tokens; every stage shows the first 64"])
    del record["embeddings"]
    page = render_html(record)
    assert '<section id="notes"' in page and "every stage shows the first 64" in page
    assert 'id="embeddings"' not in page
    nan = json.loads(json.dumps(records["bert"]))
    nan["classifier"]["attributions"][0] = float("nan")
    assert "NaN" not in render_html(nan).split('id="record">')[1]


@pytest.mark.parametrize("family", list(SECTIONS))
def test_the_page_in_a_browser(family, records, browser, tmp_path, check_hangul_font):
    record = records[family]
    path = tmp_path / f"{family}.html"
    save_html(record, path)
    opened = Opened(browser, path)
    page = opened.page
    assert page.evaluate("document.characterSet") == "UTF-8"
    assert page.inner_text("#sentence") == record["text"]
    ids = page.eval_on_selector_all("main > section", "s => s.map(x => x.id)")
    assert ids == [s for s in ("text", "embeddings", "layers", "classifier", "generation", "seq2seq", "retrieval",
                               "fillings", "tagging", "reading") if s in SECTIONS[family]], ids
    for section in SECTIONS[family]:
        assert page.inner_text(f"#{section} > .body").strip(), section
    assert not page.query_selector(".error")
    # nothing spills out of the page sideways: wide tables and heatmaps scroll in their own boxes
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    stage = record["text_stage"]
    if stage["kind"] == "ngrams":
        assert opened.count("table.ngrams tbody tr") == len(stage["ngrams"])
    else:
        cells = page.eval_on_selector_all("table.tokens tr:first-child td", "tds => tds.map(t => t.textContent)")
        # the record's readable labels; a piece that is only a space (a lone ▁, or blank) shows as ␣
        pairs = zip(stage["tokens"], stage["display"])
        assert cells == ["␣" if set(t) == {"▁"} or not d.strip() else d for t, d in pairs]
        assert not any(c.startswith("##") for c in cells)
    if "layers" in record:
        check_layers(opened, record)
    if family in ("bert", "ngram"):
        assert record["classifier"]["label"] in page.inner_text("#classifier .verdict")
    if family == "bert":
        assert opened.count("#attributions span") == len(stage["input_ids"])
    if family == "ngram":
        members = record["classifier"]["members"]
        assert opened.count("#classifier .member") == len(members)
        assert opened.count("#classifier .member .bars .track") == sum(len(m["contributions"]) for m in members)
    if family == "gpt":
        gen = record["generation"]
        assert opened.count("#generation table.steps tbody tr") == len(gen["steps"])
        assert opened.count("#generation .chip.chosen") >= 1
        assert opened.count("#generation table.temperature tbody tr") == len(gen["sampling"]["temperature"])
    if family == "qa":
        assert opened.count("#reading table.reading tbody tr") == len(record["reading"]["tokens"])
    if family == "tagger":
        assert opened.count("#tagging table.tagging tbody tr") == len(record["tagging"]["units"])
        assert opened.count("#tagging mark.entity") == len(record["tagging"]["entities"])
    if family in ("lstm", "bart"):
        s2s = record["seq2seq"]
        steps, source = len(s2s["steps"]), len(s2s["source_tokens"])
        assert opened.count("#seq2seq table.steps tbody tr") == steps
        if family == "lstm":
            assert opened.count("#seq2seq-attention rect.cell") == steps * source
        else:
            assert opened.count("#cross-attention-map rect.cell") == steps * source
            last = page.eval_on_selector_all("#cross-attention-map rect.cell", FILLS)
            page.select_option("#cross-layer", "0")
            assert page.eval_on_selector_all("#cross-attention-map rect.cell", FILLS) != last
    if family == "retrieval":
        assert record["retrieval"]["answer"] in page.inner_text("#retrieval")
    if family == "mlm":
        assert opened.count("#fillings .bars .track") == len(record["fillings"])
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / f"inspect_{family}.png"), full_page=True)
    opened.check_quiet()
    if family in ("bert", "gpt"):  # last: the DevTools CSS domain fetches the file again, with a console error
        check_hangul_font(page, "#sentence")
    page.close()


def check_layers(opened: Opened, record: dict) -> None:
    """T × T attention cells; hiding the specials removes their rows and columns; layer and head pickers."""
    page, layers = opened.page, record["layers"]
    names = record["text_stage"]["display"]
    T = len(names)
    specials = sum(1 for n, o in zip(names, record["text_stage"]["offsets"])
                   if re.fullmatch(r"\[[^\]]+\]|<[^>]+>", n) and not (o and o[1] > o[0]))
    assert specials >= 1
    assert opened.count("#attention-map rect.cell") == T * T
    assert opened.count("#norms-map rect.cell") == len(layers["hidden_norms"]) * T
    assert opened.count("#attention-head option") == layers["heads"] + 1
    assert opened.count("#attention-layer option") == layers["layers"]
    mean = page.eval_on_selector_all("#attention-map rect.cell", FILLS)
    page.select_option("#attention-head", "0")
    assert page.eval_on_selector_all("#attention-map rect.cell", FILLS) != mean
    page.select_option("#attention-layer", "0")
    assert opened.count("#attention-map rect.cell") == T * T
    page.check("#hide-specials")
    kept = T - specials
    assert opened.count("#attention-map rect.cell") == kept * kept
    assert opened.count("#norms-map rect.cell") == len(layers["hidden_norms"]) * kept
    shown = page.eval_on_selector_all("#attention-map > text", "t => t.map(x => x.textContent)")
    assert not any(s in ("[CLS]", "[SEP]") for s in shown), shown
    if layers.get("logit_lens"):
        assert opened.count("table.lens tbody tr") == layers["layers"]
        assert opened.count("table.lens tbody tr:first-child td") == kept
    page.uncheck("#hide-specials")
    page.select_option("#attention-head", "mean")
    assert opened.count("#attention-map rect.cell") == T * T


def test_a_hostile_sentence_stays_text_in_the_browser(loaded, browser, tmp_path):
    record = inspect_text(loaded["bert"], HOSTILE)
    save_html(record, tmp_path / "hostile.html")
    opened = Opened(browser, tmp_path / "hostile.html")
    assert opened.page.inner_text("#sentence") == HOSTILE
    assert opened.page.title().startswith("malmoi inspect")  # the sentence's script never ran
    assert opened.count("script") == 2 and opened.count("header b") == 0
    opened.check_quiet()
    opened.page.close()


def test_a_long_input_stays_usable(loaded, browser, tmp_path):
    """Cut to 64 tokens: 64 × 64 attention cells that shrink to fit, tables that scroll sideways."""
    record = inspect_text(loaded["gpt"], LONG, max_tokens=64)
    assert len(record["text_stage"]["input_ids"]) == 64 and record["notes"]
    save_html(record, tmp_path / "long.html")
    opened = Opened(browser, tmp_path / "long.html")
    page = opened.page
    assert "64" in page.inner_text("#notes")
    assert opened.count("#attention-map rect.cell") == 64 * 64
    width = page.eval_on_selector("#attention-map", "s => s.getBoundingClientRect().width")
    assert width <= page.eval_on_selector("#layers", "s => s.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    scrolls = page.eval_on_selector("table.tokens", "t => t.parentElement.scrollWidth > t.parentElement.clientWidth")
    assert scrolls
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / "inspect_long.png"), full_page=True)
    opened.check_quiet()
    page.close()


def test_a_sentence_pair(loaded, browser, tmp_path):
    record = inspect_text(loaded["bert"], SENTENCE, pair="다시 보고 싶어요")
    save_html(record, tmp_path / "pair.html")
    opened = Opened(browser, tmp_path / "pair.html")
    page = opened.page
    assert page.inner_text("#pair-text") == "다시 보고 싶어요"
    assert "다시" in page.inner_text("#text") and "sequence_ids" in page.inner_text("table.tokens")
    assert opened.count("#attention-map rect.cell") == len(record["text_stage"]["input_ids"]) ** 2
    opened.check_quiet()
    page.close()
