"""EncoderClassifier: any Hugging Face encoder (``AutoModel``) + dropout + a linear head on [CLS].

    input_ids (B, T) ─► encoder ─► last_hidden_state (B, T, H) ─► [:, 0] (B, H) ─► dropout ─► linear ─► logits (B, C)

The encoder is either a preset config with random weights or any local model folder, including
pretrained encoders that ship without a classification head (the KoBERT situation). Saved as a
normal Hugging Face folder (``config.json`` + ``model.safetensors``) plus ``head.safetensors``;
loading rebuilds both and gives identical outputs.
"""
from __future__ import annotations

import inspect
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from ..errors import MalmoiError
from .presets import hf_config

HEAD_FILE = "head.safetensors"


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
            return AutoModel.from_pretrained(folder, dtype=torch.float32, **_without_pooler(config))
        except (OSError, ValueError) as e:
            raise MalmoiError("E401", f"cannot load a model from {folder}: {str(e).splitlines()[0]}") from None


class EncoderClassifier(nn.Module):
    """Encoder + dropout + linear head over the first token's hidden state."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float | None = None):
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

    @property
    def num_labels(self) -> int:
        return self.head.out_features

    @classmethod
    def from_preset(cls, preset: str, num_labels: int, *, vocab_size: int, pad_token_id: int = 0,
                    dropout: float | None = None, **overrides) -> "EncoderClassifier":
        """Random weights from a named preset (``bert-mini`` …); ``overrides`` change config fields."""
        from transformers import AutoModel

        config = hf_config(preset, vocab_size=vocab_size, pad_token_id=pad_token_id, **overrides)
        encoder = AutoModel.from_config(config, **_without_pooler(config))
        return cls(encoder, num_labels, dropout)

    @classmethod
    def from_pretrained_encoder(cls, folder: str | os.PathLike, num_labels: int,
                                dropout: float | None = None) -> "EncoderClassifier":
        """A pretrained encoder from a local folder with a new, randomly initialised head."""
        return cls(load_encoder(folder), num_labels, dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                ) -> SequenceClassifierOutput:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state  # (B, T, H)
        logits = self.head(self.dropout(hidden[:, 0]))  # (B, C)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def save(self, folder: str | os.PathLike) -> None:
        """Encoder as a Hugging Face folder, head as ``head.safetensors`` (its sizes in the metadata)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.encoder.save_pretrained(folder)
        tensors = {"weight": self.head.weight.detach().contiguous(), "bias": self.head.bias.detach().contiguous()}
        meta = {"format": "malmoi.EncoderClassifier", "num_labels": str(self.num_labels),
                "dropout": str(self.dropout.p)}
        save_file(tensors, str(folder / HEAD_FILE), metadata=meta)

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
