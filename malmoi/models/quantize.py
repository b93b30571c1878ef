"""Per-row quantization of weight tables: each row scaled by its own largest magnitude, so a rare
large row does not cost the precision of every small one.

``quantize(x, bits)`` → tensors to store; ``dequantize(stored, bits)`` → float32 again. 16 bits
is float16; 8 bits int8 in [-127, 127]; 4 bits two values per byte in [-7, 7]; both with one
float16 scale per row (2 bytes, what a 16-wide row of int8 costs 12% over). 32 stores the rows
as they are.
"""
from __future__ import annotations

import torch
from torch import nn

BITS = (32, 16, 8, 4)
_LEVELS = {8: 127, 4: 7}
_SMALLEST_NORMAL = float(torch.finfo(torch.float16).tiny)


def quantize(x: torch.Tensor, bits: int) -> dict[str, torch.Tensor]:
    """(R, D) float rows → ``{"q": …, "scale": …}`` (no ``scale`` at 32 and 16 bits)."""
    x = x.detach().float()
    if bits == 32:
        return {"q": x.contiguous()}
    if bits == 16:
        return {"q": x.half().contiguous()}
    levels = _LEVELS[bits]
    # the scale rounded to float16 first (the stored scale is the one the values were divided by) and
    # kept normal: a subnormal one loses digits, and quantizing the dequantized rows would then differ
    scale = (x.abs().amax(1) / levels).clamp_min(_SMALLEST_NORMAL).half()
    q = torch.round(x / scale.float()[:, None]).clamp(-levels, levels).to(torch.int8)
    if bits == 4:
        if q.shape[1] % 2:
            q = torch.cat([q, torch.zeros(len(q), 1, dtype=torch.int8)], 1)
        u = (q + 8).to(torch.uint8)  # 1 … 15
        q = u[:, 0::2] | (u[:, 1::2] << 4)
    return {"q": q.contiguous(), "scale": scale.contiguous()}


def dequantize(stored: dict[str, torch.Tensor], bits: int, dim: int) -> torch.Tensor:
    """The float32 (R, ``dim``) rows ``quantize`` stored."""
    q = stored["q"]
    if bits in (32, 16):
        return q.float()
    if bits == 4:
        low, high = (q & 0x0F).to(torch.int8) - 8, (q >> 4).to(torch.int8) - 8
        q = torch.stack([low, high], 2).flatten(1)[:, :dim]
    return q.float() * stored["scale"].float()[:, None]


def bytes_per_row(bits: int, dim: int) -> float:
    """Stored bytes of one ``dim``-wide row at ``bits``, its scale included."""
    if bits in (32, 16):
        return dim * bits / 8
    return (dim if bits == 8 else (dim + 1) // 2) + 2


def quantize_state(state: dict[str, torch.Tensor], bits: int) -> dict[str, torch.Tensor]:
    """A state dict with every float matrix (linear weights, embeddings) quantized per row, as
    ``{name}.q`` (+ ``{name}.scale``); vectors (biases, norms) and integer buffers stay as they are."""
    out = {}
    for name, value in state.items():
        if value.dim() == 2 and value.is_floating_point():
            out.update({f"{name}.{part}": t for part, t in quantize(value, bits).items()})
        else:
            out[name] = value.detach().contiguous()
    return out


def dequantize_state(stored: dict[str, torch.Tensor], bits: int,
                     shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """The float32 state dict ``quantize_state`` stored, for a model whose parameter ``shapes`` are given."""
    out = {}
    for name, shape in shapes.items():
        if name in stored:
            out[name] = stored[name]
        elif f"{name}.q" in stored:
            parts = {part: stored[f"{name}.{part}"] for part in ("q", "scale") if f"{name}.{part}" in stored}
            out[name] = dequantize(parts, bits, shape[-1])
    return out


class QuantizedRows(nn.Module):
    """An embedding table kept in memory as ``quantize`` stored it, each row dequantized as it is
    looked up, so that a compact model's tables stay as small in memory as on disk (a 4-bit NSMC
    model: 15 MB instead of 93). Called as ``nn.Embedding`` (ids → rows) or, with
    ``per_sample_weights``, as a summing ``nn.EmbeddingBag``. Not trainable."""

    def __init__(self, stored: dict[str, torch.Tensor], bits: int, dim: int):
        super().__init__()
        self.bits, self.dim = bits, dim
        self.register_buffer("q", stored["q"], persistent=False)
        self.register_buffer("scale", stored.get("scale"), persistent=False)

    def stored(self, ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The stored tensors, of every row or of rows ``ids``."""
        parts = {"q": self.q} if self.scale is None else {"q": self.q, "scale": self.scale}
        return parts if ids is None else {k: v[ids] for k, v in parts.items()}

    @property
    def weight(self) -> torch.Tensor:
        """The whole table in float32 (for reading it, not for inference)."""
        return dequantize(self.stored(), self.bits, self.dim)

    def forward(self, ids: torch.Tensor, per_sample_weights: torch.Tensor | None = None) -> torch.Tensor:
        rows = dequantize(self.stored(ids.reshape(-1)), self.bits, self.dim).view(*ids.shape, self.dim)
        if per_sample_weights is None:
            return rows
        return (rows * per_sample_weights.unsqueeze(-1)).sum(-2)
