"""The embedding stage: each token's row of the model's input embedding table (shape, norm,
first values) and its nearest tokens in that table by cosine; and, for chosen words, one-hot
vectors (all orthogonal) beside the learned ones."""
from __future__ import annotations

import torch

FIRST_VALUES = 8


def embedding_table(loaded) -> torch.Tensor | None:
    """(V, D) input embeddings of a run's model; None for models without one (n-gram, retrieval)."""
    model = getattr(loaded, "model", None)
    for candidate in (model, getattr(model, "encoder", None)):  # a Hugging Face model, or a classifier's encoder
        get = getattr(candidate, "get_input_embeddings", None)
        table = get() if callable(get) else None
        if table is not None:
            return table.weight.detach()
    embed = getattr(model, "embed", None)  # malmoi's LSTM seq2seq
    return embed.weight.detach() if isinstance(embed, torch.nn.Embedding) else None


def nearest(table: torch.Tensor, rows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities and ids of the ``k`` rows of ``table`` nearest to each of ``rows``."""
    unit = torch.nn.functional.normalize(table.float(), dim=-1)
    sims = torch.nn.functional.normalize(rows.float(), dim=-1) @ unit.T
    return sims.topk(min(k, table.shape[0]), dim=-1)


def embedding_stage(table: torch.Tensor, ids: list[int], name_of, top_k: int = 5) -> dict:
    """``name_of(id)`` spells a vocabulary entry."""
    rows = table[torch.tensor(ids, dtype=torch.long)]
    sims, near = nearest(table, rows, top_k)
    tokens = []
    for row, s, n in zip(rows, sims.tolist(), near.tolist()):
        tokens.append({"norm": round(float(row.norm()), 4), "first": [round(float(v), 4) for v in row[:FIRST_VALUES]],
                       "nearest": [{"token": name_of(i), "id": i, "cosine": round(c, 4)} for i, c in zip(n, s)]})
    return {"shape": [len(ids), int(table.shape[1])], "vocabulary": int(table.shape[0]), "tokens": tokens}
