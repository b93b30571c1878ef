"""EncoderQA: any Hugging Face encoder (``AutoModel``) + dropout + ``Linear(hidden, 2)`` → start and end
logits of the answer span, and the decoding of those logits back to context characters.

    input_ids (B, T) ─► word embeddings (+ question-match embedding) ─► encoder ─► (B, T, H)
                     ─► dropout ─► linear ─► (B, T, 2) ─► start_logits (B, T), end_logits (B, T)

The question-match embedding (one row per ``data.qa_windows.match_levels`` value: whether a context
token shares characters with the question, and how many of its neighbours do) is added to the word
embeddings; it starts at zero, so a pretrained encoder begins exactly as it was trained. The
encoder is built and saved as the classifier's is (``models/classifier.py``): a Hugging Face
folder plus ``head.safetensors``, which here holds the span head and the match embedding.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from transformers.modeling_outputs import QuestionAnsweringModelOutput

from malmoi.data.qa_windows import MATCH_LEVELS
from malmoi.errors import MalmoiError
from malmoi.files import atomic_write_bytes, safetensors_bytes
from malmoi.models.classifier import HEAD_FILE, encoder_from_preset, load_encoder, save_encoder

FORMAT = "malmoi.EncoderQA"


class EncoderQA(nn.Module):
    """Encoder + dropout + a linear layer giving each token a start and an end logit."""

    def __init__(self, encoder: nn.Module, dropout: float | None = None, question_match: bool = True):
        super().__init__()
        config = encoder.config
        if dropout is None:
            dropout = getattr(config, "hidden_dropout_prob", 0.1)
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(config.hidden_size, 2)
        nn.init.normal_(self.head.weight, std=getattr(config, "initializer_range", 0.02))
        nn.init.zeros_(self.head.bias)
        self.match = None
        if question_match:
            self.match = nn.Embedding(MATCH_LEVELS, config.hidden_size)
            nn.init.zeros_(self.match.weight)

    @classmethod
    def from_preset(cls, preset: str, *, vocab_size: int, pad_token_id: int = 0, dropout: float | None = None,
                    question_match: bool = True, **overrides) -> "EncoderQA":
        """Random weights from a named preset; ``overrides`` change config fields."""
        encoder = encoder_from_preset(preset, vocab_size=vocab_size, pad_token_id=pad_token_id, **overrides)
        return cls(encoder, dropout, question_match)

    @classmethod
    def from_pretrained_encoder(cls, folder: str | os.PathLike, dropout: float | None = None,
                                question_match: bool = True) -> "EncoderQA":
        """A pretrained encoder from a local folder with a new span head."""
        return cls(load_encoder(folder), dropout, question_match)

    def encoder_inputs(self, input_ids: torch.Tensor, question_match: torch.Tensor | None = None) -> dict:
        """What the encoder reads: the token ids, or with question-match levels the word embeddings plus the
        match embedding (``inputs_embeds``)."""
        if self.match is None or question_match is None:
            return {"input_ids": input_ids}
        return {"inputs_embeds": self.encoder.get_input_embeddings()(input_ids) + self.match(question_match)}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, question_match: torch.Tensor | None = None,
                start_positions: torch.Tensor | None = None, end_positions: torch.Tensor | None = None,
                ) -> QuestionAnsweringModelOutput:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(**self.encoder_inputs(input_ids, question_match), attention_mask=attention_mask,
                              **extra).last_hidden_state
        logits = self.head(self.dropout(hidden))  # (B, T, 2)
        start, end = logits[..., 0], logits[..., 1]
        if attention_mask is not None:  # padding can never be an answer
            start = start.masked_fill(attention_mask == 0, -1e4)
            end = end.masked_fill(attention_mask == 0, -1e4)
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = (nn.functional.cross_entropy(start.float(), start_positions)
                    + nn.functional.cross_entropy(end.float(), end_positions)) / 2
        return QuestionAnsweringModelOutput(loss=loss, start_logits=start, end_logits=end)

    def save(self, folder: str | os.PathLike) -> None:
        """Encoder as a Hugging Face folder, span head and match embedding as ``head.safetensors``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_encoder(self.encoder, folder)
        tensors = {"weight": self.head.weight.detach().contiguous(), "bias": self.head.bias.detach().contiguous()}
        if self.match is not None:
            tensors["match"] = self.match.weight.detach().contiguous()
        meta = {"format": FORMAT, "dropout": str(self.dropout.p), "question_match": str(self.match is not None)}
        atomic_write_bytes(folder / HEAD_FILE, safetensors_bytes(tensors, meta))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "EncoderQA":
        """Rebuild a saved model (in eval mode); weights come from safetensors only."""
        from safetensors import safe_open

        folder = Path(folder)
        head_path = folder / HEAD_FILE
        meta = {}
        if head_path.is_file():
            with safe_open(str(head_path), "pt") as f:
                meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise MalmoiError("E490", f"{folder} holds no question-answering head ({HEAD_FILE} of {FORMAT})")
        tensors = load_file(str(head_path))
        if "match" in tensors and tensors["match"].shape[0] != MATCH_LEVELS:
            raise MalmoiError("E413", f"{folder} reads {tensors['match'].shape[0]} question-match levels, this version "
                                      f"of malmoi computes {MATCH_LEVELS}; train the reader again")
        model = cls(load_encoder(folder), float(meta.get("dropout", 0.1)), "match" in tensors)
        model.head.load_state_dict({"weight": tensors["weight"], "bias": tensors["bias"]})
        if model.match is not None:
            model.match.weight.data.copy_(tensors["match"])
        return model.eval()


@dataclass(frozen=True)
class SpanChoice:
    """The best span of one window: characters [start, end) of the context and how it scored."""

    start: int
    end: int
    logit: float
    """Start plus end logit: what spans are compared by, across windows too."""
    probability: float
    """Softmax probability of the start times that of the end, over the window's context tokens."""


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, offsets: Sequence[tuple[int, int] | None],
              max_answer_length: int) -> SpanChoice | None:
    """The highest-scoring span of a window whose tokens lie in the context, end ≥ start and at most
    ``max_answer_length`` tokens long (every such pair is compared, which includes any top-k search);
    None for a window without context tokens."""
    inside = np.array([i for i, o in enumerate(offsets) if o is not None], dtype=np.int64)
    if not len(inside):
        return None
    s = np.asarray(start_logits, dtype=np.float64)[inside]
    e = np.asarray(end_logits, dtype=np.float64)[inside]
    n = len(inside)
    pairs = s[:, None] + e[None, :]  # (n, n): start row, end column
    i, j = np.indices((n, n))
    pairs[(j < i) | (j - i >= max_answer_length)] = -np.inf
    row, col = np.unravel_index(int(np.argmax(pairs)), pairs.shape)
    log_ps = s - np.logaddexp.reduce(s)
    log_pe = e - np.logaddexp.reduce(e)
    return SpanChoice(offsets[inside[row]][0], offsets[inside[col]][1], float(pairs[row, col]),
                      float(np.exp(log_ps[row] + log_pe[col])))


def best_answers(windows, start_logits: Sequence[np.ndarray], end_logits: Sequence[np.ndarray],
                 pairs: int, max_answer_length: int) -> list[SpanChoice | None]:
    """For each of ``pairs`` (question, context) pairs, its best span over all its windows (by logit);
    ``windows`` is their ``QAWindows``, the logits one array per window."""
    best: list[SpanChoice | None] = [None] * pairs
    for w, e in enumerate(windows.example):
        choice = best_span(start_logits[w], end_logits[w], windows.offsets[w], max_answer_length)
        if choice is not None and (best[e] is None or choice.logit > best[e].logit):
            best[e] = choice
    return best


def window_logits(model, loader) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], float]:
    """(window → (start logits, end logits) as numpy, mean loss where labels were given) over a loader
    of ``QADataset(named=True)`` batches, in whatever order they come."""
    device = next(model.parameters()).device
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch in loader:
            names = batch.pop("window").tolist()
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(**batch)
            if out.loss is not None:
                total += float(out.loss) * len(names)
                count += len(names)
            lengths = batch["attention_mask"].sum(-1).tolist()
            starts, ends = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
            for row, w in enumerate(names):
                found[w] = (starts[row, :lengths[row]], ends[row, :lengths[row]])
    return found, (total / count if count else float("nan"))
