"""Inside a transformer for one input: each layer's hidden-state norms, attention per layer and
head, and the logit lens (what each layer's hidden state would predict through the output head)."""
from __future__ import annotations

from contextlib import contextmanager

import torch

DIGITS = 4


def rounded(x: torch.Tensor) -> list:
    return torch.round(x.double(), decimals=DIGITS).tolist()  # in double: 0.563, not 0.5630000233650208


@contextmanager
def eager_attention(model):
    """SDPA computes no attention weights to return; eager attention does, for this call."""
    previous = getattr(model.config, "_attn_implementation", None)
    if previous not in (None, "eager"):
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if previous not in (None, "eager"):
            model.set_attn_implementation(previous)


@torch.inference_mode()
def run_layers(model, inputs: dict) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Hidden states (embeddings + each layer, each (T, D)) and attentions (each (H, T, T)) of one input."""
    with eager_attention(model):
        out = model(**inputs, output_hidden_states=True, output_attentions=True)
    hidden = out.hidden_states if out.hidden_states is not None else out.encoder_hidden_states
    attentions = out.attentions if out.attentions is not None else out.encoder_attentions
    return tuple(h[0] for h in hidden), tuple(a[0] for a in attentions)


def layers_stage(hidden: tuple[torch.Tensor, ...], attentions: tuple[torch.Tensor, ...]) -> dict:
    return {
        "hidden_norms": [rounded(h.norm(dim=-1)) for h in hidden],  # (layers + 1, T): row 0 the embeddings
        "attention": [rounded(a) for a in attentions],  # (layers, heads, T, T): row t is where token t looked
        "layers": len(attentions), "heads": int(attentions[0].shape[0]) if attentions else 0,
    }


@torch.inference_mode()
def logit_lens(hidden: tuple[torch.Tensor, ...], final_norm, head, name_of, top_k: int = 3,
               last_is_normed: bool = False) -> list[list[list[dict]]]:
    """For every layer after the embeddings and every position, the ``top_k`` tokens the output head
    would predict from that layer's hidden state, through the final norm as the last layer's goes
    (GPT-2 returns its last hidden state already normed: ``last_is_normed``)."""
    lens = []
    for i, h in enumerate(hidden[1:], 1):
        normed = h if last_is_normed and i == len(hidden) - 1 else final_norm(h)
        probs = head(normed).float().softmax(-1)  # (T, V)
        p, ids = probs.topk(top_k, dim=-1)
        lens.append([[{"token": name_of(i), "p": round(v, DIGITS)} for i, v in zip(row_ids, row_p)]
                     for row_ids, row_p in zip(ids.tolist(), p.tolist())])
    return lens
