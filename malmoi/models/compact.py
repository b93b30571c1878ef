"""Compact n-gram classifiers: the table rows that matter, quantized per row, in safetensors.

A trained ``NgramClassifier`` hashes millions of n-grams into its tables, yet most rows are noise:
n-grams seen once or never (hash buckets nothing fell into still hold their random start). As in
fastText's ``quantize`` (Joulin et al., 2016, "FastText.zip"), a compact model keeps each member's
rows by their effect on the logits and stores them quantized (``models/quantize.py``); an n-gram
whose row was left out reads a zero row (``ngram.kept_positions``).

In ``model.safetensors`` each member's table is three tensors (the rest of the weights are small
and stay float32), with ``bits`` in the metadata:

    members.{i}.embed.kept   uint8    bitmap over the full table's rows: which rows are kept
                             | int32  the kept rows' ids, when fewer than 1 in 32 are kept
    members.{i}.embed.q      int8 (8 bits) | uint8, two per byte (4) | float16 (16) | float32 (32)
    members.{i}.embed.scale  float16  one per kept row (8 and 4 bits)

An NBSVM member's table is stored as its weights times its naive Bayes ratios (what its logits
sum), with the ratios then all 1. Loading dequantizes into an ordinary float32 model whose
``kept_ids`` map n-gram ids to table rows; every command uses it unchanged.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from malmoi.errors import MalmoiError
from malmoi.models.quantize import BITS, bytes_per_row, dequantize, quantize

KEPT, Q, SCALE = "embed.kept", "embed.q", "embed.scale"
HEADER_BYTES = 4096
"""What ``stored_bytes`` allows for the safetensors header (names, shapes, offsets) and the alignment."""


def member_rows(member) -> tuple[torch.Tensor, torch.Tensor]:
    """(row ids (R,), float rows (R, D)): a member's table without its padding row; an NBSVM member's
    rows are its weights times its ratios."""
    kept = member.kept_ids
    end = len(member.embed.weight) if kept is None else len(kept) + 1  # a compact table's zero row is not one
    weight = member.embed.weight.detach()[1:end]
    if member.bag.pooling == "nb":
        weight = weight * member.ratio[1:end]
    ids = kept if kept is not None else torch.arange(1, end)
    return ids, weight.float()


def importance(member, rows: torch.Tensor) -> torch.Tensor:
    """(R,) how much each row can move the member's logits: the spread across classes of the row's
    contribution through the head (per attention head, summed), or of an NBSVM row's weights; a
    member with a hidden layer falls back to the rows' norms."""
    if member.bag.pooling == "nb":
        effect = rows[:, :, None]  # (R, C, 1)
    elif member.hidden is not None:
        return rows.norm(dim=1)
    else:
        head = member.head.weight.detach()  # (C, K·D)
        heads = head.shape[1] // rows.shape[1]
        effect = torch.einsum("rd,ckd->rck", rows, head.view(len(head), heads, rows.shape[1]))
    return (effect - effect.mean(1, keepdim=True)).norm(dim=1).sum(1)


def _table_bytes(kept: int, full_rows: int, dim: int, bits: int) -> float:
    return kept * bytes_per_row(bits, dim) + min(math.ceil(full_rows / 8), 4 * kept)


def _kept_tensor(ids: torch.Tensor, full_rows: int) -> torch.Tensor:
    """The smaller of a bitmap over the table's rows and the list of kept ids."""
    if 4 * len(ids) < math.ceil(full_rows / 8):
        return ids.to(torch.int32)
    bitmap = np.zeros(full_rows, dtype=bool)
    bitmap[ids.numpy()] = True
    return torch.from_numpy(np.packbits(bitmap))


def _kept_ids(stored: torch.Tensor, full_rows: int) -> torch.Tensor:
    if stored.dtype == torch.int32:
        return stored.long()
    return torch.from_numpy(np.flatnonzero(np.unpackbits(stored.numpy())[:full_rows]))


def _other_bytes(model) -> int:
    """Bytes of the weights stored as they are (heads, attention scores, biases)."""
    tables = {f"members.{i}.embed.weight" for i in range(len(model.members))}
    tables |= {f"members.{i}.ratio" for i in range(len(model.members))}
    return sum(v.numel() * 4 for k, v in model.state_dict().items() if k not in tables)


def stored_bytes(model, kept: list[int], bits: int) -> int:
    """The size ``save_compact`` gives ``model`` with ``kept`` rows per member at ``bits``."""
    total = HEADER_BYTES + _other_bytes(model)
    for member, k in zip(model.members, kept):
        dim = member.embed.weight.shape[1]
        total += _table_bytes(k, member.bag.table_rows(model.config.num_embeddings), dim, bits)
    return int(total)


# ------------------------------------------------------------------------------------ building


def compact_model(model, keep: list[torch.Tensor], bits: int):
    """A new model holding, per member, the rows ``keep`` marks (a bool per row of ``member_rows``),
    with their values as ``bits`` stores them: what saving and loading it gives back, exactly."""
    from dataclasses import replace

    if bits not in BITS:
        raise MalmoiError("E290", f"--bits must be one of {', '.join(map(str, BITS))}, got {bits}")
    tables = []
    for member, mask in zip(model.members, keep):
        ids, rows = member_rows(member)
        if not mask.any():  # an empty table would not be a table: keep the member's strongest row
            mask = torch.zeros_like(mask)
            mask[importance(member, rows).argmax()] = True
        stored = quantize(rows[mask], bits)
        tables.append((ids[mask], stored))
    config = replace(model.config, members=[replace(m.bag, kept=len(ids)) for m, (ids, _) in zip(model.members, tables)])
    small = type(model)(config)
    small.load_state_dict(_state(model, tables, bits), strict=True)
    for member, (ids, _) in zip(small.members, tables):
        member.kept_ids = ids.clone()
    small.storage_bits = bits
    return small.eval()


def _state(model, tables: list[tuple[torch.Tensor, dict]], bits: int) -> dict[str, torch.Tensor]:
    """A compact model's state dict from the big model's small weights and the stored tables."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for i, (member, (ids, stored)) in enumerate(zip(model.members, tables)):
        dim = member.embed.weight.shape[1]
        zero = torch.zeros(1, dim)  # padding first, the row left-out ids read last
        state[f"members.{i}.embed.weight"] = torch.cat([zero, dequantize(stored, bits, dim), zero])
        if member.bag.pooling == "nb":  # the ratios are folded into the weights
            state[f"members.{i}.ratio"] = torch.ones(len(ids) + 2, dim)
            state[f"members.{i}.ratio"][0] = 0
    return state


# ------------------------------------------------------------------------------------ files


def compact_tensors(model, bits: int) -> dict[str, torch.Tensor]:
    """The tensors ``model.safetensors`` holds for a compact model (see the module's docstring)."""
    tensors = {}
    for i, member in enumerate(model.members):
        ids, rows = member_rows(member)
        tensors[f"members.{i}.{KEPT}"] = _kept_tensor(ids, member.bag.table_rows(model.config.num_embeddings))
        for name, value in quantize(rows, bits).items():
            tensors[f"members.{i}.embed.{name}"] = value
    skip = {f"members.{i}.{name}" for i in range(len(model.members)) for name in ("embed.weight", "ratio")}
    tensors.update({k: v.detach().contiguous() for k, v in model.state_dict().items() if k not in skip})
    return tensors


def load_compact(model, tensors: dict[str, torch.Tensor], bits: int, path: Path):
    """Fill ``model`` (built from a compact config) from the tensors ``compact_tensors`` stored."""
    if bits not in BITS:
        raise MalmoiError("E453", f"{path} stores its tables at {bits} bits, which this version cannot read")
    tables = []
    for i, member in enumerate(model.members):
        try:
            kept = tensors.pop(f"members.{i}.{KEPT}")
            stored = {name: tensors.pop(f"members.{i}.embed.{name}") for name in ("q", "scale")
                      if f"members.{i}.embed.{name}" in tensors}
        except KeyError as e:
            raise MalmoiError("E453", f"{path} is missing the compact table {e}") from None
        ids = _kept_ids(kept, member.bag.table_rows(model.config.num_embeddings))
        if len(ids) != member.bag.kept or ids[:1].eq(0).any() or (ids[1:] <= ids[:-1]).any():
            raise MalmoiError("E453", f"{path}: member {i} keeps {len(ids)} rows, its config says {member.bag.kept}")
        tables.append((ids, stored))
    state = {**tensors, **{k: v for k, v in _state(model, tables, bits).items() if k not in tensors}}
    model.load_state_dict(state, strict=True)
    for member, (ids, _) in zip(model.members, tables):
        member.kept_ids = ids
    model.storage_bits = bits
    return model
