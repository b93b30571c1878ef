"""EncoderClassifier: any Hugging Face encoder (``AutoModel``) + dropout + a linear head on [CLS].

    input_ids (B, T) ─► encoder ─► last_hidden_state (B, T, H) ─► [:, 0] (B, H) ─► dropout ─► linear ─► logits (B, C)

The encoder is either a preset config with random weights or any local model folder, including
pretrained encoders that ship without a classification head (the KoBERT situation). Saved as a
normal Hugging Face folder (``config.json`` + ``model.safetensors``) plus ``head.safetensors``;
loading rebuilds both and gives identical outputs.

Only [CLS] leaves the last layer, so for BERT-family encoders that layer computes keys and
values for every token but the query, attention output and feed-forward block for [CLS] alone:
the same logits (and gradients) for about a fifth less work in a 4-layer model.
"""
from __future__ import annotations

import functools
import inspect
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from safetensors.torch import load_file
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from malmoi.errors import MalmoiError
from malmoi.files import atomic_write_bytes, safetensors_bytes
from malmoi.models.presets import hf_config

HEAD_FILE = "head.safetensors"
WEIGHTS_FILE = "model.safetensors"
COMPACT_FORMAT = "malmoi.compact-encoder"
"""An encoder's weights quantized per row (``save_encoder``)."""


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' load report and weight-loading bar: dropping the pooler of a pretrained
    encoder is intended, and a wall of UNEXPECTED keys would read as a failure."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _without_pooler(config) -> dict:
    """``add_pooling_layer=False`` where the model class has one: the head reads [CLS] directly, and an
    unused pooler would leave parameters without gradients (which breaks DistributedDataParallel)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        model_class = MODEL_MAPPING[type(config)]
    except KeyError:
        return {}
    params = inspect.signature(model_class.__init__).parameters
    return {"add_pooling_layer": False} if "add_pooling_layer" in params else {}


def load_encoder(folder: str | os.PathLike):
    """A Hugging Face encoder (no head) from a local folder, in float32."""
    from transformers import AutoConfig, AutoModel

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise MalmoiError("E401", f"{folder} is not a Hugging Face model folder (no config.json)")
    with quiet_transformers():
        try:
            config = AutoConfig.from_pretrained(folder)
            bits = compact_bits(folder)
            if bits is None:
                return AutoModel.from_pretrained(folder, dtype=torch.float32, **_without_pooler(config))
            encoder = AutoModel.from_config(config, **_without_pooler(config))
        except (OSError, ValueError) as e:
            raise MalmoiError("E401", f"cannot load a model from {folder}: {str(e).splitlines()[0]}") from None
    set_storage_bits(encoder, bits, load_file(str(folder / WEIGHTS_FILE)))
    return encoder.eval()


def encoder_from_preset(preset: str, *, vocab_size: int, pad_token_id: int = 0, **overrides):
    """An encoder (no head, no pooler) with random weights from a named preset; ``overrides`` change
    config fields."""
    from transformers import AutoModel

    config = hf_config(preset, vocab_size=vocab_size, pad_token_id=pad_token_id, **overrides)
    return AutoModel.from_config(config, **_without_pooler(config))


def compact_bits(folder: Path) -> int | None:
    """The bits of an encoder ``save_encoder`` stored quantized, None for a Hugging Face one."""
    from safetensors import safe_open

    path = folder / WEIGHTS_FILE
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    return int(meta["bits"]) if meta.get("format") == COMPACT_FORMAT else None


def set_storage_bits(encoder: nn.Module, bits: int, stored: dict[str, torch.Tensor] | None = None) -> None:
    """Give ``encoder`` the weights it has stored at ``bits`` (``models/quantize.py``): from ``stored``
    tensors, or its own rounded the way saving rounds them."""
    from malmoi.models.quantize import BITS, dequantize_state, quantize_state

    if bits not in BITS:
        raise MalmoiError("E290", f"--bits must be one of {', '.join(map(str, BITS))}, got {bits}")
    shapes = {k: v.shape for k, v in encoder.state_dict().items()}
    stored = quantize_state(encoder.state_dict(), bits) if stored is None else stored
    encoder.load_state_dict(dequantize_state(stored, bits, shapes), strict=True)
    encoder.storage_bits = bits


def save_encoder(encoder: nn.Module, folder: Path) -> None:
    """A Hugging Face folder, or for an encoder stored below 32 bits its config and its quantized
    weights (which only ``load_encoder`` reads)."""
    from malmoi.models.quantize import quantize_state

    bits = getattr(encoder, "storage_bits", 32)
    with quiet_transformers():
        if bits == 32:
            encoder.save_pretrained(folder)
            return
        encoder.config.save_pretrained(folder)
    tensors = quantize_state(encoder.state_dict(), bits)
    atomic_write_bytes(folder / WEIGHTS_FILE, safetensors_bytes(tensors, {"format": COMPACT_FORMAT, "bits": str(bits)}))


FIRST_TOKEN_LAYERS = ("BertLayer", "RobertaLayer", "XLMRobertaLayer", "CamembertLayer", "ElectraLayer")
"""Layer classes (same structure in transformers 5) whose last instance may run for [CLS] only."""


def _first_token_layer(encoder: nn.Module) -> nn.Module | None:
    """The encoder's last layer when it can be run for the first position only, else None."""
    config = getattr(encoder, "config", None)
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if config is None or not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        return None
    last = layers[-1]
    if type(last).__name__ not in FIRST_TOKEN_LAYERS or getattr(config, "is_decoder", False):
        return None
    if getattr(config, "chunk_size_feed_forward", 0) or getattr(config, "add_cross_attention", False):
        return None
    return last


def _first_token_forward(layer: nn.Module, full_forward, hidden_states: torch.Tensor,
                         attention_mask: torch.Tensor | None = None, *args, **kwargs) -> torch.Tensor:
    """A BERT layer's forward for position 0: keys/values from every token, the rest from [CLS]."""
    attention = layer.attention.self
    if attention.config._attn_implementation not in ("sdpa", "eager") or (
            attention_mask is not None and attention_mask.dim() != 4):
        return full_forward(hidden_states, attention_mask, *args, **kwargs)[:, :1]
    B, T, _ = hidden_states.shape
    nh, hs = attention.num_attention_heads, attention.attention_head_size
    first = hidden_states[:, :1]  # (B, 1, H)
    q = attention.query(first).view(B, 1, nh, hs).transpose(1, 2)  # (B, nh, 1, hs)
    k = attention.key(hidden_states).view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
    v = attention.value(hidden_states).view(B, T, nh, hs).transpose(1, 2)
    mask = None if attention_mask is None else attention_mask[..., :1, :]  # the [CLS] row: (B, 1, 1, T)
    context = nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=attention.dropout.p if layer.training else 0.0, scale=attention.scaling)
    context = context.transpose(1, 2).reshape(B, 1, nh * hs)  # (B, 1, H)
    return layer.feed_forward_chunk(layer.attention.output(context, first))  # (B, 1, H)


class EncoderClassifier(nn.Module):
    """Encoder + dropout + linear head over the first token's hidden state."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float | None = None,
                 first_token_last_layer: bool = True):
        super().__init__()
        if num_labels < 2:
            raise MalmoiError("E402", f"a classifier needs at least 2 labels, got {num_labels}")
        config = encoder.config
        if dropout is None:  # follow the encoder's own choice, as BertForSequenceClassification does
            dropout = getattr(config, "classifier_dropout", None) or getattr(config, "hidden_dropout_prob", 0.1)
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(config.hidden_size, num_labels)
        nn.init.normal_(self.head.weight, std=getattr(config, "initializer_range", 0.02))
        nn.init.zeros_(self.head.bias)
        self.first_token_last_layer = first_token_last_layer
        """Run the last BERT-family layer for [CLS] only (identical results, less work)."""

    @contextmanager
    def _last_layer_for_first_token(self) -> Iterator[None]:
        # patched per call, not for good: code that calls self.encoder directly gets every position
        layer = _first_token_layer(self.encoder) if self.first_token_last_layer else None
        if layer is None:
            yield
            return
        layer.forward = functools.partial(_first_token_forward, layer, type(layer).forward.__get__(layer))
        try:
            yield
        finally:
            layer.__dict__.pop("forward", None)

    @property
    def num_labels(self) -> int:
        return self.head.out_features

    @classmethod
    def from_preset(cls, preset: str, num_labels: int, *, vocab_size: int, pad_token_id: int = 0,
                    dropout: float | None = None, **overrides) -> "EncoderClassifier":
        """Random weights from a named preset (``bert-mini`` …); ``overrides`` change config fields."""
        return cls(encoder_from_preset(preset, vocab_size=vocab_size, pad_token_id=pad_token_id, **overrides),
                   num_labels, dropout)

    @classmethod
    def from_pretrained_encoder(cls, folder: str | os.PathLike, num_labels: int,
                                dropout: float | None = None) -> "EncoderClassifier":
        """A pretrained encoder from a local folder with a new, randomly initialised head."""
        return cls(load_encoder(folder), num_labels, dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                ) -> SequenceClassifierOutput:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        with self._last_layer_for_first_token():
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        logits = self.head(self.dropout(hidden[:, 0]))  # (B, H) → (B, C)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def save(self, folder: str | os.PathLike) -> None:
        """Encoder as a Hugging Face folder, head as ``head.safetensors`` (its sizes in the metadata)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_encoder(self.encoder, folder)
        tensors = {"weight": self.head.weight.detach().contiguous(), "bias": self.head.bias.detach().contiguous()}
        meta = {"format": "malmoi.EncoderClassifier", "num_labels": str(self.num_labels),
                "dropout": str(self.dropout.p)}
        atomic_write_bytes(folder / HEAD_FILE, safetensors_bytes(tensors, meta))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "EncoderClassifier":
        """Rebuild a saved classifier (in eval mode)."""
        from safetensors import safe_open

        folder = Path(folder)
        head_path = folder / HEAD_FILE
        if not head_path.is_file():
            raise MalmoiError("E403", f"{folder} has no {HEAD_FILE}: not a saved classifier")
        with safe_open(str(head_path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(head_path))
        num_labels = int(meta.get("num_labels", tensors["weight"].shape[0]))
        model = cls(load_encoder(folder), num_labels, float(meta.get("dropout", 0.1)))
        model.head.load_state_dict(tensors)
        return model.eval()
