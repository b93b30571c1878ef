"""The record as one self-contained HTML page (``malmoi inspect RUN "문장" --html out.html``).

The page carries the record as JSON in ``<script type="application/json" id="record">`` and inlines
``static/inspect.css`` and ``static/inspect.js``, which draws every view from it (tables, SVG
heatmaps, bars). Nothing is fetched: no CDN, no web fonts, no requests. The sentence, the run and
the notes are also written into the page as plain text, so they read even with scripts off.
"""
from __future__ import annotations

import html
import json
import math
import os
from importlib import resources

from malmoi.files import atomic_write_bytes

# (record key, section id, heading): the views, in page order; a section is there when its stage is
SECTIONS = (
    ("text_stage", "text", "텍스트 · 단어, 형태소, 토큰"),
    ("embeddings", "embeddings", "임베딩 · embeddings"),
    ("layers", "layers", "레이어 · hidden states, attention, logit lens"),
    ("classifier", "classifier", "분류 · logits, softmax"),
    ("generation", "generation", "생성 · next tokens, sampling"),
    ("seq2seq", "seq2seq", "seq2seq · 답변, attention"),
    ("retrieval", "retrieval", "검색 · retrieval"),
    ("fillings", "fillings", "[MASK] 채우기 · fillings"),
    ("tagging", "tagging", "개체명 · tags, entities"),
    ("reading", "reading", "독해 · answer span, start and end"),
)
FAMILIES = {"ngram": "n-gram 분류기", "bert": "BERT 분류기", "gpt": "GPT 언어 모델", "mlm": "BERT 마스크 언어 모델",
            "lstm": "LSTM seq2seq", "bart": "BART seq2seq", "retrieval": "검색 챗봇",
            "tagger": "개체명 태거", "qa": "질의응답 (독해)"}


def _static(name: str) -> str:
    return resources.files("malmoi.inspect").joinpath("static", name).read_text(encoding="utf-8")


def _plain(x):
    """The record as strict JSON: NaN and infinities (a diverged tiny run) become null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def record_json(record: dict) -> str:
    """JSON that is safe inside a ``<script>`` element: every ``<``, ``>`` and ``&`` (they only occur
    inside strings) is written as a ``\\u`` escape, so no ``</script>`` or ``<!--`` in a sentence
    can end the element early."""
    text = json.dumps(_plain(record), ensure_ascii=False, allow_nan=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def render_html(record: dict) -> str:
    """One page, no external resources, the sentence readable as text without scripts."""
    esc = html.escape
    family = record.get("family") or ""
    about = " · ".join(esc(str(x)) for x in (FAMILIES.get(family, family), record.get("preset") or record.get("task"))
                       if x)
    run = f'<div class="muted" id="run">{esc(str(record.get("run") or ""))}</div>' if record.get("run") else ""
    pair = (f'<p class="sentence pair" id="pair-text">{esc(record["pair"])}</p>' if record.get("pair") else "")
    notes = "".join(f"<li>{esc(str(n))}</li>" for n in record.get("notes") or [])
    sections = []
    if notes:
        sections.append(f'<section id="notes" class="notes"><h2>참고 · notes</h2><ul>{notes}</ul></section>')
    for key, ident, heading in SECTIONS:
        if record.get(key):
            sections.append(f'<section id="{ident}"><h2>{esc(heading)}</h2><div class="body"></div></section>')
    title = esc(f"malmoi inspect · {record.get('text', '')}")
    return f"""<!doctype html>
<html lang="ko">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="malmoi inspect">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>
{_static("inspect.css")}
</style>
</head>
<body>
<header>
  <div class="muted">malmoi inspect · {about}</div>
  {run}
  <h1 class="sentence" id="sentence">{esc(str(record.get("text", "")))}</h1>
  {pair}
  <noscript><p class="muted">스크립트를 켜면 단계별 화면이 보입니다 (the views are drawn by JavaScript).</p></noscript>
</header>
<main>
{chr(10).join(sections)}
</main>
<script type="application/json" id="record">{record_json(record)}</script>
<script>
{_static("inspect.js")}
</script>
</body>
</html>
"""


def save_html(record: dict, path: str | os.PathLike) -> None:
    """Write the page atomically (a crash never leaves half a page)."""
    atomic_write_bytes(path, render_html(record).encode("utf-8"))
