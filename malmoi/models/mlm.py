"""A BERT masked-language model whose prediction head runs only where the collator masked.

With a 16k vocabulary the full (B, T, V) logits of ``BertForMaskedLM`` cost more than the encoder
itself, while only ~15% of them enter the loss.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class MaskedLMOutput:
    """What ``SparseMaskedLM`` returns: predictions only where the collator masked."""

    loss: torch.Tensor | None
    """Mean cross-entropy over the masked tokens (None without labels)."""
    logits: torch.Tensor
    """(M, V) scores of the M masked positions in row-major order, or (B, T, V) without labels."""
    targets: torch.Tensor | None
    """(M,) the original ids at those positions (None without labels)."""


class SparseMaskedLM(nn.Module):
    """A ``BertForMaskedLM`` whose prediction head runs only at the masked positions.

    The wrapped model (``.mlm``) is unchanged: it is what ``export`` saves, so the run directory
    loads with ``AutoModelForMaskedLM`` and gives the same scores there.
    """

    def __init__(self, mlm: nn.Module):
        super().__init__()
        self.mlm = mlm

    @property
    def config(self):
        return self.mlm.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> MaskedLMOutput:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.mlm.bert(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state  # (B, T, H)
        if labels is None:
            return MaskedLMOutput(None, self.mlm.cls(hidden), None)  # (B, T, V)
        where = labels != -100
        targets = labels[where]  # (M,)
        logits = self.mlm.cls(hidden[where])  # (M, V)
        if targets.numel() == 0:  # a tiny batch can draw no masked token: zero loss, gradients still flow
            return MaskedLMOutput(hidden.sum() * 0.0, logits, targets)
        return MaskedLMOutput(nn.functional.cross_entropy(logits.float(), targets), logits, targets)


def build_mlm(preset: str, tokenizer, overrides: dict[str, Any] | None = None) -> SparseMaskedLM:
    """A randomly initialised ``BertForMaskedLM`` (no pooler) sized for ``tokenizer``."""
    from transformers import BertForMaskedLM

    from malmoi.models.presets import hf_config

    config = hf_config(preset, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id or 0,
                       **(overrides or {}))
    config.architectures = ["BertForMaskedLM"]
    return SparseMaskedLM(BertForMaskedLM(config))
