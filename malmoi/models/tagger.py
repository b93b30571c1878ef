"""Taggers: one label per unit of a sentence.

``CharTagger``  character features (``text/char_features.py``) → embeddings → BiLSTM → linear → CRF:
                the CPU-fast preset (``bilstm-crf``), and the strong from-scratch baseline of Korean NER.
``EncoderTagger`` a Hugging Face encoder (a preset from scratch, or ``--pretrained DIR``) + dropout + a
                linear layer per token, composed like ``EncoderClassifier``.

Both return ``TaggerOutput(loss, logits)`` from ``forward`` and the best label ids per unit from
``best_paths(logits, attention_mask)``; both save with safetensors (config as JSON) and load without unpickling.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file
from torch import nn

from malmoi.data.batching import LABEL_PAD
from malmoi.errors import MalmoiError
from malmoi.files import atomic_write_bytes, atomic_write_json, safetensors_bytes
from malmoi.models.crf import CRF

IGNORE = LABEL_PAD
"""The label of a position no loss reads (padding, an encoder's special tokens)."""
CONFIG_FILE = "tagger.json"
WEIGHTS_FILE = "tagger.safetensors"
HEAD_FILE = "head.safetensors"


@dataclass
class TaggerOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor
    """(batch, units, labels): each label's score at each unit (the CRF's emissions)."""


@dataclass
class CharTaggerConfig:
    """Sizes of a ``CharTagger``; ``vocab`` holds the featurizer's table sizes."""

    labels: list[str]
    vocab: dict[str, int]
    char_dim: int = 128
    bigram_dim: int = 64
    morph_dim: int = 32
    word_dim: int = 8
    hidden: int = 192
    """LSTM units per direction; 0 leaves the window features alone."""
    layers: int = 2
    dropout: float = 0.3
    crf: bool = True
    grams: int = 0
    """Hash buckets of the window features, each a row of label scores added straight to the emissions
    (0: none). Set from the featurizer when the model is built."""
    gram_dropout: float = 0.0
    """Share of window features left out of each training step: the sparse rows memorise the training
    sentences within a few epochs, and without them the BiLSTM has to learn to generalise."""
    format: str = field(default="malmoi.CharTagger", repr=False)


class CharTagger(nn.Module):
    """Embeddings of a character's four features → BiLSTM → linear, plus the label scores of its hashed
    window features → CRF (or softmax). ``hidden=0`` keeps the window features alone."""

    def __init__(self, config: CharTaggerConfig):
        super().__init__()
        self.config = config
        dims = {"chars": config.char_dim, "bigrams": config.bigram_dim, "morphs": config.morph_dim,
                "words": config.word_dim}
        self.embeddings = nn.ModuleDict({name: nn.Embedding(config.vocab[name], dim, padding_idx=0)
                                         for name, dim in dims.items()}) if config.hidden else None
        self.dropout = nn.Dropout(config.dropout)
        k = len(config.labels)
        # sparse: a batch touches a few thousand of a million rows, which LazyAdamW updates alone
        self.grams = nn.Embedding(config.grams, k, padding_idx=0, sparse=True) if config.grams else None
        if self.grams is not None:
            nn.init.zeros_(self.grams.weight)
        if config.hidden == 0:  # the window features alone: a linear-chain CRF like CRFsuite's
            self.bias = nn.Parameter(torch.zeros(k))
        else:
            self.lstm = nn.LSTM(sum(dims.values()), config.hidden, num_layers=config.layers, bidirectional=True,
                                batch_first=True, dropout=config.dropout if config.layers > 1 else 0.0)
        self.head = nn.Linear(2 * config.hidden, k) if config.hidden else None
        self.crf = CRF(config.labels) if config.crf else None

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    def get_input_embeddings(self) -> nn.Embedding | None:
        """The character embeddings (what the inspector compares characters by); None without them."""
        return self.embeddings["chars"] if self.embeddings is not None else None

    def emissions(self, chars, bigrams, morphs, words, attention_mask, grams=None) -> torch.Tensor:
        if self.grams is not None and self.training and self.config.gram_dropout:
            grams = grams.masked_fill(torch.rand(grams.shape) < self.config.gram_dropout, 0)  # row 0 is zeros
        direct = 0.0 if self.grams is None else self.grams(grams).sum(-2)
        if self.head is None:
            return direct + self.bias
        return direct + self._contextual(chars, bigrams, morphs, words, attention_mask)

    def _contextual(self, chars, bigrams, morphs, words, attention_mask) -> torch.Tensor:
        x = torch.cat([self.embeddings[name](ids) for name, ids in
                       (("chars", chars), ("bigrams", bigrams), ("morphs", morphs), ("words", words))], dim=-1)
        lengths = attention_mask.sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.dropout(x), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.head(self.dropout(out))

    def forward(self, chars, bigrams, morphs, words, attention_mask, grams=None, labels=None) -> TaggerOutput:
        logits = self.emissions(chars, bigrams, morphs, words, attention_mask, grams)
        loss = None
        if labels is not None:
            if self.crf is not None:
                loss = self.crf.nll(logits, labels.clamp(min=0), attention_mask)
            else:
                loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        return TaggerOutput(loss, logits)

    @torch.no_grad()
    def best_paths(self, logits: torch.Tensor, attention_mask: torch.Tensor) -> list[list[int]]:
        """The label ids of each row's real positions (Viterbi through the CRF)."""
        if self.crf is not None:
            return self.crf.decode(logits, attention_mask)
        return [row[: int(n)].tolist() for row, n in zip(logits.argmax(-1), attention_mask.sum(1))]

    def save(self, folder: str | os.PathLike) -> None:
        """Weights as safetensors; of the window-feature table only its non-zero rows (those training
        touched, often under half of them), with their ids: exact, and the file a fraction of the table."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items() if k != "grams.weight"}
        if self.grams is not None:
            table = self.grams.weight.detach()
            rows = table.abs().sum(1).nonzero().squeeze(1)
            tensors["grams.rows"] = rows.to(torch.int32).contiguous()
            tensors["grams.values"] = table[rows].contiguous()
        atomic_write_bytes(folder / WEIGHTS_FILE, safetensors_bytes(tensors, {"format": self.config.format}))
        atomic_write_json(folder / CONFIG_FILE, asdict(self.config))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "CharTagger":
        folder = Path(folder)
        config = CharTaggerConfig(**json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))
        model = cls(config)
        state = load_file(str(folder / WEIGHTS_FILE))
        if "grams.rows" in state:
            table = torch.zeros_like(model.grams.weight)
            table[state.pop("grams.rows").long()] = state.pop("grams.values")
            state["grams.weight"] = table
        model.load_state_dict(state)
        return model.eval()


class EncoderTagger(nn.Module):
    """Encoder + dropout + a linear layer over every token's hidden state."""

    def __init__(self, encoder: nn.Module, labels: Sequence[str], dropout: float | None = None):
        super().__init__()
        config = encoder.config
        if dropout is None:
            dropout = getattr(config, "classifier_dropout", None) or getattr(config, "hidden_dropout_prob", 0.1)
        self.encoder = encoder
        self.labels = list(labels)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(config.hidden_size, len(self.labels))
        nn.init.normal_(self.head.weight, std=getattr(config, "initializer_range", 0.02))
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_preset(cls, preset: str, labels: Sequence[str], *, vocab_size: int, pad_token_id: int = 0,
                    dropout: float | None = None, **overrides) -> "EncoderTagger":
        from transformers import AutoModel

        from malmoi.models.classifier import _without_pooler
        from malmoi.models.presets import hf_config

        config = hf_config(preset, vocab_size=vocab_size, pad_token_id=pad_token_id, **overrides)
        return cls(AutoModel.from_config(config, **_without_pooler(config)), labels, dropout)

    @classmethod
    def from_pretrained_encoder(cls, folder: str | os.PathLike, labels: Sequence[str],
                                dropout: float | None = None) -> "EncoderTagger":
        from malmoi.models.classifier import load_encoder

        return cls(load_encoder(folder), labels, dropout)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None) -> TaggerOutput:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        logits = self.head(self.dropout(hidden))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        return TaggerOutput(loss, logits)

    @torch.no_grad()
    def best_paths(self, logits: torch.Tensor, attention_mask: torch.Tensor) -> list[list[int]]:
        """The best label id of each row's tokens (specials included: the caller maps tokens to characters)."""
        return [row[: int(n)].tolist() for row, n in zip(logits.argmax(-1), attention_mask.sum(1))]

    def save(self, folder: str | os.PathLike) -> None:
        from malmoi.models.classifier import save_encoder

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_encoder(self.encoder, folder)
        tensors = {"weight": self.head.weight.detach().contiguous(), "bias": self.head.bias.detach().contiguous()}
        meta = {"format": "malmoi.EncoderTagger", "labels": json.dumps(self.labels, ensure_ascii=False),
                "dropout": str(self.dropout.p)}
        atomic_write_bytes(folder / HEAD_FILE, safetensors_bytes(tensors, meta))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "EncoderTagger":
        from safetensors import safe_open

        from malmoi.models.classifier import load_encoder

        folder = Path(folder)
        path = folder / HEAD_FILE
        if not path.is_file():
            raise MalmoiError("E403", f"{folder} has no {HEAD_FILE}: not a saved tagger")
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        model = cls(load_encoder(folder), json.loads(meta["labels"]), float(meta.get("dropout", 0.1)))
        model.head.load_state_dict(load_file(str(path)))
        return model.eval()


def load_tagger(folder: str | os.PathLike):
    """Whichever tagger ``folder`` holds."""
    return CharTagger.load(folder) if (Path(folder) / CONFIG_FILE).is_file() else EncoderTagger.load(folder)
