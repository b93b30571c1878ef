"""NgramClassifier: fastText-style bags of hashed n-grams → pooled embedding → (hidden layer) → linear.

    input_ids (B, T) ─► n-gram dropout ─► embeddings (B, T, D)
                     ─► pool over non-padding n-grams: mean (B, D) | attention, K heads (B, K·D)
                     ─► [linear ─► ReLU] ─► dropout ─► linear ─► logits (B, C)

The ids come from ``text/ngrams.py`` (character, word and morpheme n-grams hashed into
``num_embeddings - 1`` buckets; 0 is padding). With mean pooling and no hidden layer the model
is fastText: linear in the n-gram frequencies, like logistic regression. ``groups`` > 1 (kinds
told apart by id) averages each kind on its own, so a text's many character n-grams do not
drown its few words and morphemes. Attention pooling lets each head weigh a text's n-grams by a
learned score of their embedding (a softmax within each kind), so a few telling n-grams
(``노잼``, ``최악``) are not averaged away among a long review's hundreds of neutral ones.

An ``nb`` member is NBSVM (Wang & Manning, 2012) in this frame: a linear model over a text's
distinct n-grams, each scaled by its naive Bayes log-count ratio, which ``fit_ratios`` counts from
the training texts before training (a buffer saved with the weights). It is as accurate as a
fastText member on NSMC and errs differently.

Every table gets sparse gradients: a step updates only the rows its batch touched
(``optim.LazyAdamW``), so a 4M-row table costs what its batch uses, not its size.

``members`` lists one ``NgramBagConfig`` per member, each with its own embedding table, pooling,
n-gram kinds and head, trained side by side on the same batches (the loss is the mean of the
members' losses); the prediction is the mean of their probabilities, returned as
log-probabilities. Differently pooled members make different mistakes, so together they beat
each alone.

Saved as ``model.safetensors`` + ``ngram_model.json`` (the constructor's arguments); loading calls
the constructor again and gives identical logits.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from malmoi.errors import MalmoiError
from malmoi.files import atomic_path, atomic_write_bytes, atomic_write_json, safetensors_bytes

CONFIG_FILE = "ngram_model.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "malmoi.NgramClassifier"
POOLINGS = ("mean", "attention", "nb")


@dataclass
class NgramBagConfig:
    """One member of an ``NgramClassifier``: which n-grams it reads and how it pools them."""

    pooling: str = "mean"
    """``mean`` (fastText), ``attention`` (learned weights over a text's n-grams) or ``nb`` (a linear model
    over the text's distinct n-grams scaled by their naive Bayes log-count ratios, as NBSVM)."""
    dim: int = 16
    """Width of this member's n-gram embeddings."""
    heads: int = 1
    """Attention heads, each with its own learned scoring vector (``attention`` only)."""
    per_kind: bool = True
    """Pool each n-gram kind on its own and add the kinds' vectors, so a text's many character
    n-grams do not drown its few words and morphemes (needs the model's ``groups`` > 1)."""
    kinds: list[int] | None = None
    """The kinds (``(id - 1) % groups``) this member reads; None reads them all."""
    rows: int = 0
    """Rows of this member's embedding table, ids folded into it (0 = the model's ``num_embeddings``)."""
    kept: int = 0
    """Rows a compact model kept of that table (0 = all of them; ``models/compact.py``): the table then
    holds padding, the ``kept`` rows (the sorted row ids they stand for come with them) and one zero
    row that every id left out reads."""

    def check(self, groups: int, num_embeddings: int) -> None:
        if self.pooling not in POOLINGS:
            raise MalmoiError("E451", f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.dim < 1 or self.heads < 1:
            raise MalmoiError("E451", f"dim and heads must be ≥ 1, got {self.dim} and {self.heads}")
        if self.kinds is not None and (not self.kinds or any(not 0 <= k < groups for k in self.kinds)):
            raise MalmoiError("E451", f"kinds must be a non-empty list of group numbers below {groups}, got {self.kinds}")
        # folding keeps (id - 1) % groups only when the table holds whole rounds of the groups
        if self.rows and (self.rows % groups or not groups <= self.rows < num_embeddings):
            raise MalmoiError("E451", f"rows must be a multiple of {groups} below {num_embeddings}, got {self.rows}")
        if not 0 <= self.kept <= self.table_rows(num_embeddings) - 1:
            raise MalmoiError("E451", f"kept must be between 0 and the table's rows, got {self.kept}")

    def table_rows(self, num_embeddings: int) -> int:
        """Rows of the full table, the padding row included."""
        return (self.rows or num_embeddings - 1) + 1


@dataclass
class NgramClassifierConfig:
    """Sizes of an ``NgramClassifier`` (saved as ``ngram_model.json``)."""

    num_embeddings: int
    """Ids the featurizer emits: its buckets + 1 (id 0 is padding)."""
    num_labels: int = 2
    """Classes."""
    groups: int = 1
    """N-gram kinds told apart by id: ``(id - 1) % groups``, as ``NgramConfig.separate_kinds`` hashes them."""
    members: list[NgramBagConfig] = field(default_factory=lambda: [NgramBagConfig()])
    """The ensemble's members; their mean probability is the prediction."""
    hidden: int = 0
    """Width of a ReLU layer between a member's pooled vector and its output (0 = none)."""
    ngram_dropout: float = 0.0
    """Fraction of a text's n-grams dropped at random in training (the rest are pooled)."""
    dropout: float = 0.0
    """Dropout on the pooled vector (and the hidden layer)."""

    def __post_init__(self) -> None:
        if self.num_embeddings < 2:
            raise MalmoiError("E451", f"num_embeddings must be at least 2, got {self.num_embeddings}")
        if self.num_labels < 2:
            raise MalmoiError("E402", f"a classifier needs at least 2 labels, got {self.num_labels}")
        if self.groups < 1 or self.hidden < 0:
            raise MalmoiError("E451", f"groups must be ≥ 1 and hidden ≥ 0, got {self.groups} and {self.hidden}")
        if not self.members:
            raise MalmoiError("E451", "an n-gram classifier needs at least one member")
        self.members = [m if isinstance(m, NgramBagConfig) else NgramBagConfig(**m) for m in self.members]
        for member in self.members:
            member.check(self.groups, self.num_embeddings)
        for name in ("ngram_dropout", "dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise MalmoiError("E451", f"{name} must be in [0, 1), got {getattr(self, name)}")


def distinct(ids: torch.Tensor) -> torch.Tensor:
    """(B, T) ids with each row's repeats set to the padding id 0: a text's n-grams counted once."""
    ids = ids.sort(dim=1).values
    repeat = torch.zeros_like(ids, dtype=torch.bool)
    repeat[:, 1:] = ids[:, 1:] == ids[:, :-1]
    return ids.masked_fill(repeat, 0)


def log_count_ratios(ids: torch.Tensor, doc: torch.Tensor, label_ids: torch.Tensor, rows: int, classes: int,
                     smoothing: float = 1.0) -> torch.Tensor:
    """(rows, C) one-vs-rest naive Bayes log-count ratios: log p(n-gram | class) / p(n-gram | other classes),
    from the number of texts of each class that contain each row (NBSVM's binarized counts). ``ids`` are
    flat row ids (0 = not read), ``doc`` the text each belongs to, ``label_ids`` one per text."""
    # each (text, row) once: sort and mask over ~90M pairs, with numpy's sort (5 times torch's on CPU;
    # np.unique is 100 times slower)
    pairs = torch.from_numpy(np.sort((doc * rows + ids)[ids != 0].numpy()))
    first = torch.ones_like(pairs, dtype=torch.bool)
    first[1:] = pairs[1:] != pairs[:-1]
    pairs = pairs[first]
    counts = torch.bincount((pairs % rows) * classes + label_ids[pairs // rows], minlength=rows * classes)
    counts = counts.view(rows, classes)[1:].double()
    inside = counts + smoothing
    outside = counts.sum(1, keepdim=True) - counts + smoothing
    ratios = torch.zeros(rows, classes)
    ratios[1:] = ((inside / inside.sum(0)).log() - (outside / outside.sum(0)).log()).float()
    return ratios


def kept_positions(ids: torch.Tensor, kept_ids: torch.Tensor) -> torch.Tensor:
    """Row ids → their row in a compact table: 1 + position in the sorted ``kept_ids``, the zero row
    after them if not kept, 0 for padding. A left-out n-gram still counts in its text's mean (as a
    zero vector): reading it as padding instead would rescale every mean, and costs accuracy."""
    pos = torch.searchsorted(kept_ids, ids.to(kept_ids.dtype)).clamp_max(len(kept_ids) - 1)
    found = torch.where(kept_ids[pos] == ids, pos + 1, len(kept_ids) + 1)
    return torch.where(ids != 0, found, 0)


class NgramBag(nn.Module):
    """One member: an embedding table pooled one way, an optional ReLU layer, a linear head."""

    def __init__(self, config: NgramClassifierConfig, bag: NgramBagConfig, init: bool = True):
        super().__init__()
        self.config, self.bag = config, bag
        # without ``init`` the tables are left unwritten (loading replaces them): untouched pages cost no memory
        table = (lambda width: None) if init else (lambda width: torch.empty(rows, width))
        rows = bag.kept + 2 if bag.kept else bag.table_rows(config.num_embeddings)
        # a compact table's row ids (filled by ``compact.load_compact``); not a parameter: never trained
        self.register_buffer("kept_ids", torch.zeros(bag.kept, dtype=torch.int32) if bag.kept else None,
                             persistent=False)
        if bag.pooling == "nb":
            self._init_nb(rows, config.num_labels, table(config.num_labels))
            return
        # sparse tables: a step touches only its batch's rows (training uses optim.LazyAdamW)
        if bag.pooling == "mean":
            # a weighted sum: 1 / (n-grams of the kind) per n-gram is the per-kind mean
            self.embed = nn.EmbeddingBag(rows, bag.dim, mode="sum", padding_idx=0, sparse=True, _weight=table(bag.dim))
            self.score = None
            width = bag.dim
        else:
            self.embed = nn.Embedding(rows, bag.dim, padding_idx=0, sparse=True, _weight=table(bag.dim))
            self.score = nn.Linear(bag.dim, bag.heads)  # one scoring vector per head
            nn.init.zeros_(self.score.weight)  # start as the mean
            nn.init.zeros_(self.score.bias)
            width = bag.dim * bag.heads
        # fastText's start: small random n-gram vectors, an output layer at zero
        if init:
            nn.init.uniform_(self.embed.weight, -1.0 / bag.dim, 1.0 / bag.dim)
            with torch.no_grad():
                self.embed.weight[0].zero_()
        self.hidden = None
        if config.hidden:
            self.hidden = nn.Linear(width, config.hidden)
            width = config.hidden
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(width, config.num_labels)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _init_nb(self, rows: int, classes: int, weight: torch.Tensor | None) -> None:
        # per n-gram and class: a learned weight on the fixed log-count ratio (``fit_ratios``)
        self.embed = nn.Embedding(rows, classes, padding_idx=0, sparse=True, _weight=weight)
        if weight is None:
            nn.init.zeros_(self.embed.weight)
        self.register_buffer("ratio", torch.zeros(rows, classes) if weight is None else torch.empty(rows, classes))
        self.bias = nn.Parameter(torch.zeros(classes))

    def read_rows(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, keep, kind): ids folded into this member's rows, 0 where the member does not read them."""
        bag, groups = self.bag, self.config.groups
        keep = input_ids != 0  # (B, T)
        kind = (input_ids - 1).remainder(groups)  # (B, T); padding falls in some group but is masked
        if bag.kinds is not None:
            keep &= torch.isin(kind, torch.tensor(bag.kinds, device=input_ids.device))
        ids = input_ids.masked_fill(~keep, 0)  # left out: the padding id
        if bag.rows:
            ids = torch.where(keep, (ids - 1).remainder(bag.rows) + 1, 0)  # folding keeps the kind
        if self.kept_ids is not None:  # a compact table
            ids = kept_positions(ids, self.kept_ids)
        return ids, keep, kind

    def member_ids(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``read_rows`` with n-gram dropout in training."""
        ids, keep, kind = self.read_rows(input_ids)
        if self.training and self.config.ngram_dropout:
            keep &= torch.rand(input_ids.shape, device=input_ids.device) >= self.config.ngram_dropout
            ids = ids.masked_fill(~keep, 0)
        return ids, keep, kind

    def fit_ratios(self, encoded, label_ids) -> None:
        """An ``nb`` member's log-count ratios from training texts (``text.ngrams.Encoded``) and their label ids."""
        lengths = torch.from_numpy(encoded.lengths)
        ids = self.read_rows(torch.from_numpy(encoded.ids)[None])[0][0]
        doc = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
        labels = torch.as_tensor(label_ids, dtype=torch.long)
        self.ratio.copy_(log_count_ratios(ids, doc, labels, *self.ratio.shape))

    def nb_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, C): the sum over a text's distinct n-grams of weight × log-count ratio, plus the bias."""
        ids = distinct(self.member_ids(input_ids)[0])
        terms = self.embed(ids) * F.embedding(ids, self.ratio)  # (B, T, C); row 0 is zero in both
        return terms.sum(1) + self.bias

    def pooled(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, D) mean or (B, K·D) attention-pooled embedding of each row's n-grams (zeros for none)."""
        bag, groups = self.bag, self.config.groups
        ids, keep, kind = self.member_ids(input_ids)
        if not bag.per_kind:
            kind = torch.zeros_like(kind)
        parts = groups if bag.per_kind else 1
        if self.score is None:
            counts = torch.zeros(len(ids), parts, device=ids.device).scatter_add_(1, kind, keep.float())  # (B, G)
            weights = keep / counts.gather(1, kind).clamp_min(1)  # (B, T)
            return self.embed(ids, per_sample_weights=weights)  # (B, D)
        vectors = self.embed(ids)  # (B, T, D)
        scores = self.score(vectors)  # (B, T, K)
        pooled = 0
        for g in range(parts):  # a softmax within each kind, then the kinds added
            mine = (keep & (kind == g))[..., None]  # (B, T, 1)
            # -1e9, not -inf: a row without this kind then spreads its weight evenly and the
            # mask zeroes it, instead of a NaN
            weights = torch.softmax(scores.masked_fill(~mine, -1e9), dim=1) * mine  # (B, T, K)
            pooled = pooled + torch.einsum("btk,btd->bkd", weights, vectors)  # (B, K, D)
        return pooled.flatten(1)  # (B, K·D)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.bag.pooling == "nb":
            return self.nb_logits(input_ids)
        h = self.dropout(self.pooled(input_ids))
        if self.hidden is not None:
            h = self.dropout(F.relu(self.hidden(h)))  # (B, H)
        return self.head(h)  # (B, C)


@dataclass
class NgramOutput:
    """What ``NgramClassifier`` returns, read by attribute as transformers' outputs are (whose import
    alone would double a cold ``malmoi predict``)."""

    loss: torch.Tensor | None
    """Mean cross-entropy of the members, when labels are given."""
    logits: torch.Tensor
    """(B, C) the prediction; the ensemble's is its mean probability as log-probabilities."""


class NgramClassifier(nn.Module):
    """One or more ``NgramBag`` members over the same n-gram ids; loss only when labels are given."""

    def __init__(self, config: NgramClassifierConfig, init: bool = True):
        """``init=False`` leaves the tables unwritten, for weights about to be loaded."""
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(NgramBag(config, bag, init) for bag in config.members)
        self.storage_bits = 32
        """Bits per stored table value (``models/quantize.py``); a compact model's, or 32."""

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    def fit_ratios(self, encoded, label_ids) -> int:
        """Set each ``nb`` member's log-count ratios from the training texts' n-grams and label ids;
        returns how many members have them."""
        members = [m for m in self.members if m.bag.pooling == "nb"]
        for member in members:
            member.fit_ratios(encoded, label_ids)
        return len(members)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> NgramOutput:
        """``attention_mask`` is accepted and ignored: id 0 already marks padding."""
        if input_ids.dim() != 2:
            raise MalmoiError("E452", f"input_ids must be (batch, n-grams), got shape {tuple(input_ids.shape)}")
        each = [member(input_ids) for member in self.members]  # M × (B, C)
        loss = None
        if labels is not None:
            loss = sum(F.cross_entropy(logits, labels) for logits in each) / len(each)
        if len(each) == 1:
            return NgramOutput(loss=loss, logits=each[0])
        # the members' mean probability, as log-probabilities: softmax / argmax give the ensemble's answer
        logits = torch.logsumexp(torch.stack([F.log_softmax(x, -1) for x in each]), 0) - math.log(len(each))
        return NgramOutput(loss=loss, logits=logits)

    # -- persistence

    def save(self, folder: str | os.PathLike) -> None:
        """Weights as ``model.safetensors`` and sizes as ``ngram_model.json`` in ``folder``."""
        from malmoi.models.compact import compact_tensors

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.is_compact:  # small: built in memory, with its metadata in a fixed order
            metadata = {"format": FORMAT, "bits": str(self.storage_bits)}
            tensors = compact_tensors(self)
            atomic_write_bytes(folder / WEIGHTS_FILE, safetensors_bytes(tensors, metadata))
        else:  # up to a gigabyte: written by the library straight to a temporary file
            tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
            with atomic_path(folder / WEIGHTS_FILE) as tmp:
                save_file(tensors, str(tmp), metadata={"format": FORMAT})
        atomic_write_json(folder / CONFIG_FILE, {"format": FORMAT, **asdict(self.config)})

    @property
    def is_compact(self) -> bool:
        """Whether the model keeps only some table rows or stores them below 32 bits (``models/compact.py``)."""
        return self.storage_bits != 32 or any(m.kept_ids is not None for m in self.members)

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
        model = cls(NgramClassifierConfig(**data), init=False)
        tensors, metadata = _read_weights(folder / WEIGHTS_FILE)
        if "bits" in metadata or any(m.bag.kept for m in model.members):
            from malmoi.models.compact import load_compact

            return load_compact(model, tensors, _bits(metadata, folder), folder / WEIGHTS_FILE).eval()
        try:
            model.load_state_dict(tensors, assign=True)
        except RuntimeError as e:
            raise MalmoiError("E453", f"{folder / WEIGHTS_FILE} does not fit {CONFIG_FILE}: {str(e).splitlines()[0]}") from None
        return model.eval()


def _read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise MalmoiError("E453", f"{path} is unreadable: {e}") from None


def _bits(metadata: dict[str, str], folder: Path) -> int:
    try:
        return int(metadata.get("bits", "32"))
    except ValueError:
        raise MalmoiError("E453", f"{folder / WEIGHTS_FILE} gives its bits as {metadata['bits']!r}") from None


def is_ngram_model_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a saved ``NgramClassifier``."""
    return (Path(folder) / CONFIG_FILE).is_file()


class NgramDataset:
    """Texts (and label ids) → n-gram id rows, featurized once in one batch: what ``fit`` trains an
    ``NgramClassifier`` on. Items are ``{"input_ids": int64 array, "labels": int}``; ``PadCollator``
    pads them with 0, ``lengths`` feeds the length-bucketed sampler."""

    def __init__(self, featurizer, texts, label_ids=None):
        if label_ids is not None and len(label_ids) != len(texts):
            raise MalmoiError("E115", f"{len(texts)} texts but {len(label_ids)} labels")
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
    from malmoi.models.presets import PRESETS

    return name in PRESETS and PRESETS[name].model_type == "ngram"


def _split_overrides(overrides: dict | None) -> tuple[dict, dict]:
    """(featurizer settings, model settings) from one ``model_overrides`` dict."""
    from malmoi.text.ngrams import NgramConfig

    features, model = {}, {}
    model_fields = set(NgramClassifierConfig.__dataclass_fields__) - {"num_embeddings", "num_labels", "groups"}
    for key, value in (overrides or {}).items():
        if key in NgramConfig.__dataclass_fields__:
            features[key] = value
        elif key in model_fields:
            model[key] = value
        else:
            raise MalmoiError("E451", f"unknown n-gram model setting {key!r}")
    return features, model


BUCKETS_PER_TEXT = 32
"""Hashed buckets a training text earns: distinct n-grams grow with the data, so a small table serves a
small dataset as well as a large one, and a 600-row CSV does not get a 4M-row model."""
MIN_BUCKETS = 1 << 16


def scaled_buckets(preset_buckets: int, texts: int) -> int:
    """The preset's bucket count, or a power of two ≥ ``BUCKETS_PER_TEXT`` × ``texts`` if that is smaller."""
    wanted = max(MIN_BUCKETS, BUCKETS_PER_TEXT * texts)
    return min(preset_buckets, 1 << (wanted - 1).bit_length())


def featurizer_for_preset(name: str, overrides: dict | None = None, texts: int | None = None):
    """The featurizer a preset trains on. ``overrides`` may change its settings; without a ``buckets``
    override, ``texts`` (the number of training texts) shrinks the preset's buckets to fit the data."""
    from malmoi.text.ngrams import NgramConfig, NgramFeaturizer
    from malmoi.models.presets import get_preset

    preset, changes = get_preset(name).config["features"], _split_overrides(overrides)[0]
    features = {**preset, **changes}
    if texts is not None and "buckets" not in changes:
        features["buckets"] = scaled_buckets(preset["buckets"], texts)
    return NgramFeaturizer(NgramConfig.from_dict(features))


def classifier_for_preset(name: str, featurizer, num_labels: int, dropout: float | None = None,
                          overrides: dict | None = None) -> NgramClassifier:
    """A freshly initialised ``NgramClassifier`` of a preset's sizes, for ``featurizer``'s ids.

    A member's ``kinds`` are written by name in the preset (``["chars", "words"]``) and become the
    featurizer's group numbers here; a member's ``rows`` shrink to fit a smaller featurizer."""
    from malmoi.models.presets import get_preset

    features = featurizer.config
    settings = {**get_preset(name).config["model"], **_split_overrides(overrides)[1]}
    if dropout is not None:
        settings["dropout"] = dropout
    members = []
    for member in settings.pop("members", [{}]):
        member = dict(asdict(member) if isinstance(member, NgramBagConfig) else member)
        if member.get("kinds") is not None:
            missing = [k for k in member["kinds"] if isinstance(k, str) and k not in features.kinds]
            if missing:
                raise MalmoiError("E451", f"a member reads n-gram kinds the featurizer does not make: {missing}")
            member["kinds"] = [features.slot(k) if isinstance(k, str) else k for k in member["kinds"]]
        rows = member.get("rows", 0)
        member["rows"] = 0 if rows >= features.buckets else rows - rows % features.groups
        members.append(member)
    return NgramClassifier(NgramClassifierConfig(num_embeddings=len(featurizer), num_labels=num_labels,
                                                 groups=features.groups, members=members, **settings))


def load_ngram_run(run: str | os.PathLike):
    """(model, featurizer) of a run directory trained with an n-gram preset, or None for other runs."""
    from malmoi.text.ngrams import NgramFeaturizer, is_featurizer_folder

    if not is_featurizer_folder(run):
        return None
    if not is_ngram_model_folder(run):
        raise MalmoiError("E406", f"{run} has no trained model yet (training did not finish; use --resume)")
    return NgramClassifier.load(run), NgramFeaturizer.from_pretrained(run)
