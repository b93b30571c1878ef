"""NgramClassifier: a fastText-style bag of hashed n-grams → mean embedding → (hidden layer) → linear.

    input_ids (B, T) ─► n-gram dropout ─► embedding bag, mean over non-padding ids (B, D)
                     ─► [linear (D, H) ─► ReLU] ─► dropout ─► linear ─► logits (B, C)

The ids come from ``text/ngrams.py`` (character, word and morpheme n-grams hashed into
``num_embeddings - 1`` buckets; 0 is padding). With no hidden layer the model is linear in the
n-gram counts, like logistic regression on normalised term frequencies, but it trains through
the same loop as every other model and shares the embedding across n-gram kinds.

Saved as ``model.safetensors`` + ``ngram_model.json`` (the constructor's arguments); loading calls
the constructor again and gives identical logits.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from transformers.modeling_outputs import SequenceClassifierOutput

from ..errors import MalmoiError

CONFIG_FILE = "ngram_model.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "malmoi.NgramClassifier"


@dataclass
class NgramClassifierConfig:
    """Sizes of an ``NgramClassifier`` (saved as ``ngram_model.json``)."""

    num_embeddings: int
    """Rows of the embedding table: the featurizer's buckets + 1 (row 0 is padding)."""
    num_labels: int = 2
    """Classes."""
    dim: int = 64
    """Width of an n-gram embedding."""
    hidden: int = 0
    """Width of a ReLU layer between the mean embedding and the output (0 = none: a linear model)."""
    ngram_dropout: float = 0.0
    """Fraction of a text's n-grams dropped at random in training (the rest are averaged)."""
    dropout: float = 0.0
    """Dropout on the pooled vector (and the hidden layer)."""

    def __post_init__(self) -> None:
        if self.num_embeddings < 2:
            raise MalmoiError("E451", f"num_embeddings must be at least 2, got {self.num_embeddings}")
        if self.num_labels < 2:
            raise MalmoiError("E402", f"a classifier needs at least 2 labels, got {self.num_labels}")
        if self.dim < 1 or self.hidden < 0:
            raise MalmoiError("E451", f"dim must be ≥ 1 and hidden ≥ 0, got {self.dim} and {self.hidden}")
        for name in ("ngram_dropout", "dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise MalmoiError("E451", f"{name} must be in [0, 1), got {getattr(self, name)}")


class NgramClassifier(nn.Module):
    """Mean of n-gram embeddings, an optional ReLU layer, and a linear output; loss only with labels."""

    def __init__(self, config: NgramClassifierConfig):
        super().__init__()
        self.config = config
        self.embed = nn.EmbeddingBag(config.num_embeddings, config.dim, mode="mean", padding_idx=0)
        # fastText's start: small random n-gram vectors, an output layer at zero
        nn.init.uniform_(self.embed.weight, -1.0 / config.dim, 1.0 / config.dim)
        with torch.no_grad():
            self.embed.weight[0].zero_()
        width = config.dim
        self.hidden = None
        if config.hidden:
            self.hidden = nn.Linear(config.dim, config.hidden)
            width = config.hidden
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(width, config.num_labels)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    def pooled(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, D) mean embedding of each row's non-padding ids (zeros for an empty row)."""
        if input_ids.dim() != 2:
            raise MalmoiError("E452", f"input_ids must be (batch, n-grams), got shape {tuple(input_ids.shape)}")
        if self.training and self.config.ngram_dropout:
            drop = torch.rand(input_ids.shape, device=input_ids.device) < self.config.ngram_dropout
            input_ids = input_ids.masked_fill(drop, 0)  # padding id: left out of the mean
        return self.embed(input_ids)  # (B, D)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> SequenceClassifierOutput:
        h = self.dropout(self.pooled(input_ids))  # (B, D); padding (id 0) already marks the mask
        if self.hidden is not None:
            h = self.dropout(F.relu(self.hidden(h)))  # (B, H)
        logits = self.head(h)  # (B, C)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    # -- persistence

    def save(self, folder: str | os.PathLike) -> None:
        """Weights as ``model.safetensors`` and sizes as ``ngram_model.json`` in ``folder``."""
        from ..runs import atomic_write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT})
        atomic_write_json(folder / CONFIG_FILE, {"format": FORMAT, **asdict(self.config)})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "NgramClassifier":
        """Rebuild a saved model (in eval mode)."""
        folder = Path(folder)
        path = folder / CONFIG_FILE
        if not path.is_file() or not (folder / WEIGHTS_FILE).is_file():
            raise MalmoiError("E453", f"{folder} holds no {CONFIG_FILE} and {WEIGHTS_FILE}: not an n-gram classifier")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise MalmoiError("E453", f"{path} is unreadable: {e}") from None
        if data.pop("format", None) != FORMAT:
            raise MalmoiError("E453", f"{path} is not a malmoi n-gram classifier")
        model = cls(NgramClassifierConfig(**data))
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        return model.eval()


def is_ngram_model_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a saved ``NgramClassifier``."""
    return (Path(folder) / CONFIG_FILE).is_file()


class NgramDataset:
    """Texts (and label ids) → n-gram id rows, featurized once in one batch: what ``fit`` trains an
    ``NgramClassifier`` on. Items are ``{"input_ids": int64 array, "labels": int}``; ``PadCollator``
    pads them with 0, ``lengths`` feeds the length-bucketed sampler."""

    def __init__(self, featurizer, texts, label_ids=None):
        if label_ids is not None and len(label_ids) != len(texts):
            raise MalmoiError("E103", f"{len(texts)} texts but {len(label_ids)} labels")
        self.encoded = featurizer.encode(list(texts))
        self.labels = None if label_ids is None else [int(y) for y in label_ids]
        self.lengths = self.encoded.lengths.tolist()

    @property
    def seconds(self) -> float:
        """Time spent featurizing (Kiwi's part in ``encoded.morpheme_seconds``)."""
        return self.encoded.seconds

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> dict:
        item = {"input_ids": self.encoded.row(i)}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        return item


# ------------------------------------------------------------------------------------- presets


def is_ngram_preset(name: str | None) -> bool:
    """Whether ``name`` is one of the n-gram presets in ``presets.PRESETS``."""
    from .presets import PRESETS

    return name in PRESETS and PRESETS[name].model_type == "ngram"


def _split_overrides(overrides: dict | None) -> tuple[dict, dict]:
    """(featurizer settings, model settings) from one ``model_overrides`` dict."""
    from ..text.ngrams import NgramConfig

    features, model = {}, {}
    model_fields = set(NgramClassifierConfig.__dataclass_fields__) - {"num_embeddings", "num_labels"}
    for key, value in (overrides or {}).items():
        if key in NgramConfig.__dataclass_fields__:
            features[key] = value
        elif key in model_fields:
            model[key] = value
        else:
            raise MalmoiError("E451", f"unknown n-gram model setting {key!r}")
    return features, model


def featurizer_for_preset(name: str, overrides: dict | None = None):
    """The featurizer a preset trains on (``overrides`` may change its settings, e.g. ``buckets``)."""
    from ..text.ngrams import NgramConfig, NgramFeaturizer
    from .presets import get_preset

    features = {**get_preset(name).config["features"], **_split_overrides(overrides)[0]}
    return NgramFeaturizer(NgramConfig.from_dict(features))


def classifier_for_preset(name: str, num_embeddings: int, num_labels: int, dropout: float | None = None,
                          overrides: dict | None = None) -> NgramClassifier:
    """A freshly initialised ``NgramClassifier`` of a preset's sizes."""
    from .presets import get_preset

    settings = {**get_preset(name).config["model"], **_split_overrides(overrides)[1]}
    if dropout is not None:
        settings["dropout"] = dropout
    return NgramClassifier(NgramClassifierConfig(num_embeddings=num_embeddings, num_labels=num_labels, **settings))


def load_ngram_run(run: str | os.PathLike):
    """(model, featurizer) of a run directory trained with an n-gram preset, or None for other runs."""
    from ..text.ngrams import NgramFeaturizer, is_featurizer_folder

    if not is_featurizer_folder(run):
        return None
    if not is_ngram_model_folder(run):
        raise MalmoiError("E406", f"{run} has no trained model yet (training did not finish; use --resume)")
    return NgramClassifier.load(run), NgramFeaturizer.from_pretrained(run)
