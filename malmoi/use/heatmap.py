"""Attention maps as pictures: generated tokens × source tokens, with Hangul labels."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from malmoi.use.results import AttentionMap


def save_attention_png(amap: AttentionMap, out: str | os.PathLike, title: str | None = None) -> Path:
    """A heatmap of ``amap`` (generated tokens × source tokens) with Hangul labels, as a PNG."""
    import numpy as np

    from malmoi.training.plots import pyplot

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
