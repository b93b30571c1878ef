"""Runs that turn text into text, whatever the model family, for ``malmoi generate``, ``chat`` and
``attention``.

A run's ``malmoi.json`` names its ``architecture`` (``lstm-seq2seq`` …); ``LOADERS`` maps that
name (or, failing it, the run's ``task``) to a class with ``from_run(run)`` that returns a
``TextGenerator``. A new family plugs in with one entry, say
``"bart": "malmoi.bart:BartGenerator"``; nothing is imported until a run of that kind is loaded.

    gen = load_generator("runs/chat")
    gen.generate(["오늘 날씨 어때?"], beams=4)[0].text
    save_attention_png(gen.attention("오늘 날씨 어때?"), "att.png")
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

from .errors import MalmoiError

LOADERS: dict[str, str] = {
    "lstm-seq2seq": "malmoi.seq2seq:Seq2SeqGenerator",
    "bart-seq2seq": "malmoi.bart:BartGenerator",
    "lm": "malmoi.lm:LMGenerator",
}
"""architecture (or task) → ``"module:Class"`` whose ``from_run(run)`` gives a ``TextGenerator``."""


@dataclass
class Answer:
    """One generated text."""

    source: str
    """The input text."""
    text: str
    """The generated text, detokenized."""
    tokens: list[str]
    """The generated tokens as the model's vocabulary spells them."""
    score: float
    """Log-probability of the tokens (length-normalised under beam search)."""


@dataclass
class AttentionMap:
    """Where each generated token looked in the source."""

    source_tokens: list[str]
    """Source tokens as the encoder saw them (columns)."""
    target_tokens: list[str]
    """Generated tokens (rows)."""
    weights: list[list[float]]
    """(len(target_tokens), len(source_tokens)); every row sums to 1."""
    source: str
    """The input text."""
    text: str
    """The generated text."""


@runtime_checkable
class TextGenerator(Protocol):
    """What ``generate`` and ``chat`` need; ``attention`` is optional (models with cross-attention)."""

    def generate(self, texts: Sequence[str], *, beams: int = 1, max_new_tokens: int | None = None) -> list[Answer]:
        ...


def load_generator(run: str | os.PathLike) -> TextGenerator:
    """The text generator of a run directory, chosen by its architecture (then its task)."""
    from .runs import read_meta

    meta = read_meta(run)
    key = next((k for k in (meta.get("architecture"), meta.get("task")) if k in LOADERS), None)
    if key is None:
        kind = meta.get("architecture") or meta.get("task")
        raise MalmoiError("E430", f"{run} holds a {kind!r} model, which does not generate text "
                                  f"(text generators: {', '.join(LOADERS)})")
    module, name = LOADERS[key].split(":")
    return getattr(import_module(module), name).from_run(Path(run))


def save_attention_png(amap: AttentionMap, out: str | os.PathLike, title: str | None = None) -> Path:
    """A heatmap of ``amap`` (generated tokens × source tokens) with Hangul labels, as a PNG."""
    from .plots import pyplot

    import warnings

    import numpy as np

    plt = pyplot()
    with warnings.catch_warnings():  # koreanize-matplotlib still imports distutils' LooseVersion
        warnings.simplefilter("ignore", DeprecationWarning)
        import koreanize_matplotlib  # noqa: F401  (registers NanumGothic, so Hangul is not drawn as boxes)

    weights = np.asarray(amap.weights, dtype=float).reshape(len(amap.target_tokens), len(amap.source_tokens))
    rows, cols = weights.shape
    fig, ax = plt.subplots(figsize=(min(max(5.0, 2.5 + 0.6 * cols), 24), min(max(3.5, 2.0 + 0.45 * rows), 24)))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    if rows * cols <= 400:  # small maps: print each weight in its cell
        for r in range(rows):
            for c in range(cols):
                ax.text(c, r, f"{weights[r, c]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if weights[r, c] > 0.6 else "white")
    def shown(tokens):  # NanumGothic has no "▁" (U+2581), the subword word-start mark: draw it as "_"
        return [t.replace("\u2581", "_") for t in tokens]

    ax.set_xticks(range(cols), shown(amap.source_tokens), rotation=60, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(rows), shown(amap.target_tokens))
    ax.set_xlabel("source tokens")
    ax.set_ylabel("generated tokens")
    ax.set_title(title or f"{amap.source}  ->  {amap.text}", fontsize=11)  # NanumGothic has no arrow glyph
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="attention weight")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out
