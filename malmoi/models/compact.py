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
    members.{i}.embed.q      int8 (8 bits) | uint8, two per byte (4) | float16 (16) | float32 (32):
                             the padding row, the kept rows, the zero row left-out ids read
    members.{i}.embed.scale  float16  one per row (8 and 4 bits)

An NBSVM member's table is stored as its weights times its naive Bayes ratios (what its logits
sum), with the ratios then all 1. Loaded, the tables stay as stored (``quantize.QuantizedRows``
dequantizes the rows a text reads) and ``kept_ids`` map n-gram ids to table rows; every command
uses the model unchanged.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from malmoi.errors import MalmoiError
from malmoi.models.quantize import BITS, QuantizedRows, bytes_per_row, quantize

KEPT, Q, SCALE = "embed.kept", "embed.q", "embed.scale"
HEADER_BYTES = 4096
"""What ``stored_bytes`` allows for the safetensors header (names, shapes, offsets) and the alignment."""


def member_rows(member) -> tuple[torch.Tensor, torch.Tensor]:
    """(row ids (R,), float rows (R, D)): a member's table without its padding row; an NBSVM member's
    rows are its weights times its ratios."""
    kept, weight = member.kept_ids, member.embed.weight.detach()
    end = len(weight) if kept is None else len(kept) + 1  # a compact table's zero row is not one
    weight = weight[1:end]
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
    return (kept + 2) * bytes_per_row(bits, dim) + min(math.ceil(full_rows / 8), 4 * kept)


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
    as ``bits`` stores them: saving and loading it gives it back exactly."""
    from dataclasses import replace

    if bits not in BITS:
        raise MalmoiError("E290", f"--bits must be one of {', '.join(map(str, BITS))}, got {bits}")
    tables = []
    for member, mask in zip(model.members, keep):
        ids, rows = member_rows(member)
        if not mask.any():  # an empty table would not be a table: keep the member's strongest row
            mask = torch.zeros_like(mask)
            mask[importance(member, rows).argmax()] = True
        zero = torch.zeros(1, rows.shape[1])  # padding first, the row left-out ids read last
        tables.append((ids[mask], quantize(torch.cat([zero, rows[mask], zero]), bits)))
    members = [replace(m.bag, kept=len(ids)) for m, (ids, _) in zip(model.members, tables)]
    config = replace(model.config, members=members)
    small = type(model)(config, init=False)
    skip = _table_names(model)
    rest = {k: v.detach().clone() for k, v in model.state_dict().items() if k not in skip}
    return _install(small, tables, bits, rest)


def _table_names(model) -> set[str]:
    return {f"members.{i}.{name}" for i in range(len(model.members)) for name in ("embed.weight", "ratio")}


def _install(model, tables: list[tuple[torch.Tensor, dict]], bits: int, rest: dict[str, torch.Tensor]):
    """``model`` (built with ``init=False`` from a compact config) with its stored tables as
    ``QuantizedRows``, and ``rest`` (the other weights) in place."""
    rest = dict(rest)
    for i, (member, (ids, stored)) in enumerate(zip(model.members, tables)):
        dim = member.embed.weight.shape[1]
        member.embed = QuantizedRows(stored, bits, dim)
        member.kept_ids = ids.to(torch.int32)  # ids are below 2^30 (``NgramConfig.buckets``)
        if member.bag.pooling == "nb":  # the ratios are folded into the weights
            rest[f"members.{i}.ratio"] = torch.ones(len(ids) + 2, dim)
            rest[f"members.{i}.ratio"][0] = 0
    model.load_state_dict(rest, strict=True, assign=True)
    model.storage_bits = bits
    return model.eval()


# ------------------------------------------------------------------------------------ files


def compact_tensors(model) -> dict[str, torch.Tensor]:
    """The tensors ``model.safetensors`` holds for a compact model (see the module's docstring)."""
    tensors = {}
    for i, member in enumerate(model.members):
        full_rows = member.bag.table_rows(model.config.num_embeddings)
        tensors[f"members.{i}.{KEPT}"] = _kept_tensor(member.kept_ids, full_rows)
        tensors.update({f"members.{i}.embed.{name}": v.contiguous() for name, v in member.embed.stored().items()})
    skip = _table_names(model)
    tensors.update({k: v.detach().contiguous() for k, v in model.state_dict().items() if k not in skip})
    return tensors


def load_compact(model, tensors: dict[str, torch.Tensor], bits: int, path: Path):
    """Fill ``model`` (built with ``init=False`` from a compact config) from the tensors
    ``compact_tensors`` stored."""
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
        if (len(ids) != member.bag.kept or len(stored["q"]) != len(ids) + 2 or ids[:1].eq(0).any()
                or (ids[1:] <= ids[:-1]).any()):
            raise MalmoiError("E453", f"{path}: member {i} keeps {len(ids)} rows, its config says {member.bag.kept}")
        tables.append((ids, stored))
    return _install(model, tables, bits, tensors)
