"""A lean GPT-2 forward for generation: weights taken once from a ``GPT2LMHeadModel``, keys and
values written in place into a cache preallocated for the whole generation.

At the sizes malmoi trains (4 layers, 256 wide) a decode step is a few million multiply-adds, so
Hugging Face ``generate()`` spends most of its time on per-step Python: model-output objects,
mask building, ``DynamicCache`` concatenation. This module does the same arithmetic with the same
kernels (``addmm`` on the ``Conv1D`` weights, ``scaled_dot_product_attention``, the tied
``lm_head``), so logits match the Hugging Face forward and greedy output matches ``generate()``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Activation names (GPT2Config.activation_function) this forward reproduces exactly.
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _gelu_new(x: torch.Tensor) -> torch.Tensor:
    # transformers' NewGELUActivation, 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))),
    # with the same float operations in the same order (so the same bits), done in place.
    t = torch.pow(x, 3.0).mul_(0.044715).add_(x).mul_(_SQRT_2_OVER_PI).tanh_().add_(1.0)
    return x.mul(0.5).mul_(t)


_ACTIVATIONS = {
    "gelu_new": _gelu_new,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
}


@dataclass(frozen=True)
class LayerWeights:
    """One GPT-2 block's parameters, as the tensors the model holds (no copies)."""

    ln1_w: torch.Tensor
    """First layer norm scale, (D,)."""
    ln1_b: torch.Tensor
    """First layer norm shift, (D,)."""
    qkv_w: torch.Tensor
    """Fused query/key/value projection, (D, 3D) (``Conv1D`` layout: x @ W)."""
    qkv_b: torch.Tensor
    """Its bias, (3D,)."""
    out_w: torch.Tensor
    """Attention output projection, (D, D)."""
    out_b: torch.Tensor
    """Its bias, (D,)."""
    ln2_w: torch.Tensor
    """Second layer norm scale, (D,)."""
    ln2_b: torch.Tensor
    """Second layer norm shift, (D,)."""
    fc_w: torch.Tensor
    """MLP up projection, (D, 4D)."""
    fc_b: torch.Tensor
    """Its bias, (4D,)."""
    proj_w: torch.Tensor
    """MLP down projection, (4D, D)."""
    proj_b: torch.Tensor
    """Its bias, (D,)."""
    scale: float
    """Attention score scale (1/sqrt(hd), divided by the layer index when the config asks)."""


@dataclass
class KVCache:
    """Keys and values for every layer, preallocated for prompt + new tokens."""

    keys: list[torch.Tensor]
    """Per layer, (B, H, T_max, hd); positions past the current length are garbage."""
    values: list[torch.Tensor]
    """Per layer, (B, H, T_max, hd)."""
    key_mask: torch.Tensor | None
    """(B, 1, 1, T_max) bool, True where a key may be attended (False on left padding); None = all."""


def supports(model) -> bool:
    """Whether ``GPT2Decoder`` reproduces ``model``'s forward (else use Hugging Face ``generate()``)."""
    config = getattr(model, "config", None)
    return (
        type(model).__name__ == "GPT2LMHeadModel"
        and config is not None
        and not getattr(config, "add_cross_attention", False)
        and getattr(config, "activation_function", None) in _ACTIVATIONS
        and model.lm_head.bias is None
    )


class GPT2Decoder:
    """Inference-only GPT-2 forward over a ``KVCache``; built once per ``generate`` call."""

    def __init__(self, model):
        if not supports(model):
            raise ValueError(f"GPT2Decoder cannot run {type(model).__name__}")
        config = model.config
        t = model.transformer
        self.n_head = config.n_head
        self.d_model = config.n_embd
        self.head_dim = config.n_embd // config.n_head
        self.max_positions = config.n_positions
        self.eps = config.layer_norm_epsilon
        self.act = _ACTIVATIONS[config.activation_function]
        self.wte = t.wte.weight.detach()
        self.wpe = t.wpe.weight.detach()
        self.lm_head = model.lm_head.weight.detach()
        self.lnf_w = t.ln_f.weight.detach()
        self.lnf_b = t.ln_f.bias.detach()
        self.layers = [self._layer(block, config) for block in t.h]

    def _layer(self, block, config) -> LayerWeights:
        attn, mlp = block.attn, block.mlp
        return LayerWeights(
            ln1_w=block.ln_1.weight.detach(), ln1_b=block.ln_1.bias.detach(),
            qkv_w=attn.c_attn.weight.detach(), qkv_b=attn.c_attn.bias.detach(),
            out_w=attn.c_proj.weight.detach(), out_b=attn.c_proj.bias.detach(),
            ln2_w=block.ln_2.weight.detach(), ln2_b=block.ln_2.bias.detach(),
            fc_w=mlp.c_fc.weight.detach(), fc_b=mlp.c_fc.bias.detach(),
            proj_w=mlp.c_proj.weight.detach(), proj_b=mlp.c_proj.bias.detach(),
            scale=attn.scaling,
        )

    def new_cache(self, attention_mask: torch.Tensor | None, batch: int, max_len: int) -> KVCache:
        """Empty cache for ``batch`` rows of up to ``max_len`` positions; ``attention_mask`` (B, T0)
        marks the prompt's real tokens (None: no padding)."""
        shape = (batch, self.n_head, max_len, self.head_dim)
        dtype, device = self.wte.dtype, self.wte.device
        keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in self.layers]
        values = [torch.zeros(shape, dtype=dtype, device=device) for _ in self.layers]
        key_mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_mask = torch.ones(batch, 1, 1, max_len, dtype=torch.bool, device=device)
            key_mask[:, 0, 0, : attention_mask.shape[1]] = attention_mask.bool()
        return KVCache(keys, values, key_mask)

    def prefill(self, input_ids: torch.Tensor, positions: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Run the prompt (B, T0) at ``positions`` (B, T0), filling cache[:T0]; last-position logits (B, V)."""
        B, T = input_ids.shape
        x = F.embedding(input_ids, self.wte) + F.embedding(positions, self.wpe)  # (B, T, D)
        mask = None
        if cache.key_mask is not None:
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            # A padded query also sees itself: a fully masked row would give NaN keys/values in
            # later layers, and NaN * 0 attention weight still poisons the real rows.
            mask = (causal & cache.key_mask[:, :, :, :T]) | torch.eye(T, dtype=torch.bool, device=x.device)
        for layer, k_cache, v_cache in zip(self.layers, cache.keys, cache.values):
            x = self._block(x, layer, k_cache, v_cache, 0, T, mask)
        x = F.layer_norm(x[:, -1], (self.d_model,), self.lnf_w, self.lnf_b, self.eps)
        return F.linear(x, self.lm_head)  # (B, V)

    def step(self, token: torch.Tensor, position: torch.Tensor, cache: KVCache, t: int) -> torch.Tensor:
        """One new token per row (B,) at ``position`` (B,), written to cache slot ``t``; logits (B, V)."""
        x = (F.embedding(token, self.wte) + F.embedding(position, self.wpe)).unsqueeze(1)  # (B, 1, D)
        mask = None if cache.key_mask is None else cache.key_mask.narrow(3, 0, t + 1)
        for layer, k_cache, v_cache in zip(self.layers, cache.keys, cache.values):
            x = self._block(x, layer, k_cache, v_cache, t, t + 1, mask)
        x = F.layer_norm(x[:, -1], (self.d_model,), self.lnf_w, self.lnf_b, self.eps)
        return F.linear(x, self.lm_head)  # (B, V)

    def _block(self, x, w: LayerWeights, k_cache, v_cache, start: int, end: int, mask):
        """One GPT-2 block on x (B, T, D) for positions [start, end); keys/values go into the cache."""
        B, T, D = x.shape
        h = F.layer_norm(x, (D,), w.ln1_w, w.ln1_b, self.eps)
        qkv = torch.addmm(w.qkv_b, h.view(-1, D), w.qkv_w).view(B, T, 3, self.n_head, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, hd)
        k_cache.narrow(2, start, T).copy_(k)
        v_cache.narrow(2, start, T).copy_(v)
        keys, values = k_cache.narrow(2, 0, end), v_cache.narrow(2, 0, end)  # (B, H, end, hd)
        causal = mask is None and T > 1
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=causal, scale=w.scale)
        y = y.transpose(1, 2).reshape(-1, D)  # (B*T, D)
        x = x + torch.addmm(w.out_b, y, w.out_w).view(B, T, D)
        h = F.layer_norm(x, (D,), w.ln2_w, w.ln2_b, self.eps)
        h = self.act(torch.addmm(w.fc_b, h.view(-1, D), w.fc_w))
        return x + torch.addmm(w.proj_b, h, w.proj_w).view(B, T, D)
