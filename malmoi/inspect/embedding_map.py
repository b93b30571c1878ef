"""A map of a run's embedding table: its most frequent tokens placed in 2-D by PCA and by t-SNE,
each with its nearest tokens in the whole table; drawn as a PNG or as one self-contained HTML page.

Frequencies come from ``data``, else from the run's recorded training file, else (with a note) the
first ids of the vocabulary stand in for them.

    emap = embedding_map(malmoi.load("runs/lm"), top=300)
    save_html(emap, "map.html")
"""
from __future__ import annotations

import html
import json
import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from malmoi.errors import MalmoiError
from malmoi.files import atomic_write_bytes
from malmoi.inspect.embeddings import nearest
from malmoi.inspect.record import family_of
from malmoi.inspect.tokens import tokenizer_of
from malmoi.inspect.words import encode, readable, special_ids, table_of

NEIGHBOURS = 5
MAX_TEXTS = 20000
"""Texts read for the counts: enough to rank a few hundred tokens, and Kiwi stays quick."""
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
MIN_TOP = 5


def embedding_map(loaded, top: int = 300, data: str | os.PathLike | None = None, column: str | None = None) -> dict:
    """The ``top`` most frequent tokens with PCA and t-SNE coordinates and their nearest tokens."""
    import torch

    if top < MIN_TOP:
        raise MalmoiError("E201", f"--top must be at least {MIN_TOP} (t-SNE needs a few points), got {top}")
    table = table_of(loaded)
    counts, source, notes = token_counts(loaded, data, column)
    ids = frequent_ids(loaded, counts, top, notes, rows=int(table.shape[0]))
    vectors = table[torch.tensor(ids)].float()
    x = vectors.numpy().astype(np.float64)
    (pca, explained), (tsne, perplexity) = pca_2d(x), tsne_2d(x)
    points = [{**p, "pca": _xy(a), "tsne": _xy(b)} for p, a, b in zip(_points(loaded, table, ids, counts), pca, tsne)]
    return {"run": str(getattr(loaded, "run", "") or ""), "family": family_of(loaded), "top": len(points),
            "counted_on": source, "vocabulary": int(table.shape[0]), "dimension": int(table.shape[1]),
            "pca": {"explained_variance": explained}, "tsne": {"perplexity": perplexity},
            "notes": notes, "points": points}


def _points(loaded, table, ids: list[int], counts: Counter) -> list[dict]:
    """Each token as text, its count and its nearest ordinary tokens in the whole table."""
    import torch

    specials = special_ids(loaded)  # [CLS], [SEP] … sit near everything in a small model, and mean nothing here
    sims, near = nearest(table, table[torch.tensor(ids)], NEIGHBOURS + 1 + len(specials))
    text = readable(loaded)
    return [{"id": i, "text": text(i), "count": counts.get(i) if counts else None,
             "neighbours": [{"id": j, "text": text(j), "cosine": round(c, 4)}
                            for j, c in zip(n, s) if j != i and j not in specials][:NEIGHBOURS]}
            for i, n, s in zip(ids, near.tolist(), sims.tolist())]


def _xy(row) -> list[float]:
    return [round(float(row[0]), 4), round(float(row[1]), 4)]


# -- counting

def token_counts(loaded, data, column: str | None) -> tuple[Counter, str | None, list[str]]:
    """Token counts on ``data``, else on the run's training file; an empty Counter when neither."""
    notes: list[str] = []
    if data is not None:
        texts = _read(Path(data), _columns(loaded, column, Path(data)))
        source = str(data)
    else:
        texts, source = _training_texts(loaded, column, notes)
        if texts is None:
            return Counter(), None, notes
    if len(texts) > MAX_TEXTS:
        notes.append(f"counted the first {MAX_TEXTS} of {len(texts)} texts")
        texts = texts[:MAX_TEXTS]
    specials, counts = special_ids(loaded), Counter()
    for start in range(0, len(texts), 2000):  # batched: a morpheme tokenizer runs Kiwi on each batch at once
        counts.update(t for row in encode(loaded, texts[start:start + 2000]) for t in row if t not in specials)
    return counts, source, notes


def _columns(loaded, column: str | None, path: Path) -> list[str | None]:
    """The text columns to read: ``column``, else the run's own; [None] for a plain text file (its lines)."""
    if column is not None:
        return [column]
    recorded = (getattr(loaded, "meta", None) or {}).get("columns") or {}
    names = [recorded.get(k) for k in ("text", "source", "target") if recorded.get(k)]
    if path.suffix.lower() in TABLE_SUFFIXES:
        if not names:
            raise MalmoiError("E104", f"{path} is a table and the run names no text column; give one with --column")
        return names
    return names if names and _has_header(path, names) else [None]


def _has_header(path: Path, columns: list[str]) -> bool:
    """Whether a .txt file is a TSV table with these columns (malmoi reads .txt tables as TSV)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            header = f.readline().rstrip("\r\n").split("\t")
    except (OSError, UnicodeDecodeError):
        return False
    return all(c in header for c in columns)


def _read(path: Path, columns: list[str | None]) -> list[str]:
    from malmoi.data.readers import read_texts

    return [t for c in columns for t in read_texts(path, c)]


def _training_texts(loaded, column: str | None, notes: list[str]) -> tuple[list[str] | None, str | None]:
    meta = getattr(loaded, "meta", None) or {}
    path = (meta.get("data") or {}).get("train") or (meta.get("args") or {}).get("data")
    if not path or not Path(path).is_file():
        notes.append("no readable training file recorded (give --data FILE to count tokens on): the first ids "
                     "of the vocabulary after the special tokens stand in for the most frequent")
        return None, None
    try:
        return _read(Path(path), _columns(loaded, column, Path(path))), str(path)
    except MalmoiError as e:
        notes.append(f"cannot count on the training file ({e}); the first ids of the vocabulary stand in")
        return None, None


def frequent_ids(loaded, counts: Counter, top: int, notes: list[str], rows: int) -> list[int]:
    """The ``top`` most frequent ids; without counts, the first ordinary ids of the vocabulary."""
    if counts:
        ids = [i for i, _ in counts.most_common(top)]
        if len(ids) < top:
            notes.append(f"only {len(ids)} different tokens occur in the counted texts")
    else:
        tok, specials = tokenizer_of(loaded), special_ids(loaded)
        size = min(rows, len(tok) if hasattr(tok, "__len__") else len(tok.vocab))
        ids = [i for i in range(size) if i not in specials][:top]
    if len(ids) < MIN_TOP:
        raise MalmoiError("E102", f"only {len(ids)} tokens to map; a map needs at least {MIN_TOP}")
    return ids


# -- the two projections

def pca_2d(x: np.ndarray) -> tuple[np.ndarray, list[float]]:
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0)
    return pca.fit_transform(x), [round(float(v), 4) for v in pca.explained_variance_ratio_]


def tsne_2d(x: np.ndarray) -> tuple[np.ndarray, float]:
    """t-SNE by cosine distance (the neighbours' measure); perplexity scaled to the number of points,
    since it must stay below it and 30 (the usual value) suits a few hundred."""
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", learning_rate="auto",
                random_state=0)
    return tsne.fit_transform(x), perplexity


# -- writers

def save_map(emap: dict, path: str | os.PathLike) -> Path:
    """Write the map as PNG or HTML, by the extension of ``path``."""
    return writer_for(path)(emap, path)


def writer_for(path: str | os.PathLike):
    suffix = Path(path).suffix.lower()
    writers = {".png": save_png, ".html": save_html, ".htm": save_html}
    if suffix not in writers:
        raise MalmoiError("E484", f"--out {path}: the map is written as .png or .html, not {suffix or 'no extension'}")
    return writers[suffix]


def _title(emap: dict) -> str:
    counted = f"counted on {Path(emap['counted_on']).name}" if emap["counted_on"] else "vocabulary order"
    return f"{emap['run'] or 'run'}: {emap['top']} most frequent tokens ({counted}), {emap['dimension']}-d embeddings"


def save_png(emap: dict, path: str | os.PathLike) -> Path:
    """Both maps side by side, every point labelled in Hangul."""
    import io

    from malmoi.training.plots import pyplot

    plt = pyplot()
    with warnings.catch_warnings():  # koreanize-matplotlib still imports distutils' LooseVersion
        warnings.simplefilter("ignore", DeprecationWarning)
        import koreanize_matplotlib  # noqa: F401  (registers NanumGothic, so Hangul is not drawn as boxes)

    fig, axes = plt.subplots(1, 2, figsize=(18, 9))
    for ax, key, name in zip(axes, ("pca", "tsne"), ("PCA", f"t-SNE (perplexity {emap['tsne']['perplexity']:g})")):
        xy = np.array([p[key] for p in emap["points"]])
        ax.scatter(xy[:, 0], xy[:, 1], s=10, color="tab:blue", alpha=0.6)
        for p, (x, y) in zip(emap["points"], xy):  # NanumGothic has no "▁": draw it as "_"
            ax.annotate(p["text"].replace("\u2581", "_"), (x, y), xytext=(2, 2), textcoords="offset points", fontsize=7)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(_title(emap), fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # a rare glyph missing from the font is drawn as a box, not an error
        warnings.simplefilter("ignore", UserWarning)
        fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def save_html(emap: dict, path: str | os.PathLike) -> Path:
    """One UTF-8 page that needs nothing else: both maps as inline SVG, neighbours on hover."""
    atomic_write_bytes(path, html_page(emap).encode("utf-8"))
    return Path(path)


WIDTH, HEIGHT, PAD = 640, 560, 24

STYLE = """body{font-family:"Apple SD Gothic Neo","Malgun Gothic","Noto Sans CJK KR","NanumGothic",sans-serif;
margin:16px;color:#222}.maps{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}
svg{border:1px solid #ccc;background:#fff;width:640px;height:560px}
g.pt circle{fill:#1f77b4;opacity:.7}g.pt{cursor:default}g.pt text{font-size:10px;fill:#333}
svg.dim g.pt{opacity:.15}svg.dim g.pt.on,svg.dim g.pt.near{opacity:1}
g.pt.on circle{fill:#ff7f0e}g.pt.near circle{fill:#d62728}
#tip{position:absolute;display:none;background:#fffbe6;border:1px solid #aaa;padding:6px 10px;
font-size:13px;pointer-events:none}#tip ol{margin:4px 0 0;padding-left:20px}.note{color:#8a6d00}"""

SCRIPT = """const points = JSON.parse(document.getElementById("points").textContent);
const byId = new Map(points.map((p, i) => [p.id, i]));
const tip = document.getElementById("tip");
function show(g, e) {
  const p = points[+g.dataset.i], svg = g.ownerSVGElement;
  tip.replaceChildren();
  const head = document.createElement("b");
  head.textContent = p.text;
  const list = document.createElement("ol");
  for (const n of p.neighbours) {
    const li = document.createElement("li");
    li.textContent = n.text + "  " + n.cosine.toFixed(3);
    list.append(li);
    const j = byId.get(n.id);
    if (j !== undefined) svg.querySelector('g.pt[data-i="' + j + '"]').classList.add("near");
  }
  tip.append(head, " id " + p.id + (p.count === null ? "" : ", " + p.count + " times"), list);
  tip.style.left = (e.pageX + 14) + "px";
  tip.style.top = (e.pageY + 14) + "px";
  tip.style.display = "block";
  svg.classList.add("dim");
  g.classList.add("on");
}
function hide() {
  tip.style.display = "none";
  document.querySelectorAll("svg.dim").forEach(s => s.classList.remove("dim"));
  document.querySelectorAll("g.on, g.near").forEach(g => g.classList.remove("on", "near"));
}
document.querySelectorAll("g.pt").forEach(g => {
  g.addEventListener("mouseenter", e => show(g, e));
  g.addEventListener("mouseleave", hide);
});"""


def html_page(emap: dict) -> str:
    title = html.escape(_title(emap))
    notes = "".join(f'<p class="note">note: {html.escape(n)}</p>' for n in emap["notes"])
    maps = "".join(_svg(emap["points"], key, name) for key, name in
                   (("pca", "PCA"), ("tsne", f"t-SNE (perplexity {emap['tsne']['perplexity']:g})")))
    data = json.dumps([{k: p[k] for k in ("id", "text", "count", "neighbours")} for p in emap["points"]],
                      ensure_ascii=False).replace("</", "<\\/")  # nothing in the data can close the script
    return (f'<!DOCTYPE html>\n<html lang="ko"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{STYLE}</style></head><body><h1 style=\"font-size:18px\">{title}</h1>{notes}"
            f'<p>Hover a token to see its {NEIGHBOURS} nearest tokens in the whole embedding table.</p>'
            f'<div class="maps">{maps}</div><div id="tip"></div>'
            f'<script type="application/json" id="points">{data}</script><script>{SCRIPT}</script></body></html>\n')


def _svg(points: list[dict], key: str, name: str) -> str:
    xy = np.array([p[key] for p in points], dtype=float)
    low, span = xy.min(0), np.maximum(xy.max(0) - xy.min(0), 1e-9)
    scaled = PAD + (xy - low) / span * [WIDTH - 3 * PAD, HEIGHT - 2 * PAD]  # room on the right for labels
    scaled[:, 1] = HEIGHT - scaled[:, 1]  # SVG's y grows downwards
    marks = "".join(f'<g class="pt" data-i="{i}"><circle cx="{x:.1f}" cy="{y:.1f}" r="3.5"></circle>'
                    f'<text x="{x + 5:.1f}" y="{y + 3:.1f}">{html.escape(p["text"])}</text></g>'
                    for i, (p, (x, y)) in enumerate(zip(points, scaled)))
    return (f"<figure><figcaption>{html.escape(name)}</figcaption>"
            f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img">{marks}</svg></figure>')
