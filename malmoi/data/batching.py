"""Examples → batches: dynamic padding, MLM masking, and a length-bucketed batch sampler.

A collator turns a list of dataset items (dicts of lists of ints, or ints) into a dict of
tensors padded only to the longest member of that batch. ``BucketSampler`` groups examples
of similar length into the same batch so that little padding is needed, while the order of
batches stays random, reproducible from ``seed`` + epoch, shardable across processes and
resumable in the middle of an epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from malmoi.errors import MalmoiError

LABEL_PAD = -100  # ignored by torch's cross-entropy, so padded label positions add no loss


def pad_value(key: str, pad_id: int, label_pad_id: int = LABEL_PAD) -> int:
    """What a padded position of ``key`` holds: masks and segment ids 0, labels -100, ids ``pad_id``."""
    if key.endswith("attention_mask") or key.endswith("token_type_ids") or key.endswith("special_tokens_mask"):
        return 0
    if key.endswith("labels"):
        return label_pad_id
    return pad_id


def pad_sequences(seqs: Sequence[Sequence[int]], value: int, multiple_of: int = 1) -> torch.Tensor:
    """Stack ``seqs`` into a (B, T) long tensor, T = longest member rounded up to ``multiple_of``."""
    longest = max((len(s) for s in seqs), default=0)
    if multiple_of > 1:
        longest = -(-longest // multiple_of) * multiple_of
    out = torch.full((len(seqs), longest), value, dtype=torch.long)
    for row, s in enumerate(seqs):
        if len(s):
            out[row, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


def pad_with_mask(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of a right-padded batch: what an encoder needs for ``seqs``."""
    return pad_sequences(seqs, pad_id), pad_sequences([[1] * len(s) for s in seqs], 0)


@dataclass
class PadCollator:
    """Pads every sequence field of a batch to the batch's longest member; scalars are stacked."""

    pad_id: int = 0
    """Id written into padded ``input_ids`` (and other id fields)."""
    label_pad_id: int = LABEL_PAD
    """Value for padded token labels; -100 is ignored by the loss."""
    pad_to_multiple_of: int = 1
    """Round the padded length up to a multiple of this (8 can help vectorised kernels)."""

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not items:
            raise MalmoiError("E114", "cannot collate an empty batch")
        batch: dict[str, torch.Tensor] = {}
        for key in items[0]:
            values = [item[key] for item in items]
            first = values[0]
            if isinstance(first, torch.Tensor) and first.dim() == 0:
                batch[key] = torch.stack(values)
            elif isinstance(first, (int, float, np.number)):
                batch[key] = torch.tensor(values)  # ints → int64, floats → float32
            else:
                batch[key] = pad_sequences(values, pad_value(key, self.pad_id, self.label_pad_id), self.pad_to_multiple_of)
        return batch


@dataclass
class MLMCollator:
    """Pads like ``PadCollator`` then masks for masked-language modelling (BERT recipe).

    Of the non-special, non-padding tokens, ``mlm_probability`` are chosen; of those 80% become
    ``mask_id``, 10% a random ordinary token and 10% stay unchanged. ``labels`` hold the
    original id at chosen positions and -100 elsewhere. Randomness comes from torch's global
    generator, which the training loop seeds and checkpoints, so resumed runs mask identically.
    """

    mask_id: int
    """Id of the [MASK] token."""
    vocab_size: int
    """Random replacements are drawn from ids below this that are not special."""
    special_ids: tuple[int, ...] = ()
    """Ids that are never chosen nor drawn as replacements ([CLS], [SEP], [PAD], …)."""
    pad_id: int = 0
    """Padding id; padding is never chosen."""
    mlm_probability: float = 0.15
    """Fraction of eligible tokens to predict."""
    mask_fraction: float = 0.8
    """Of the chosen tokens, the fraction replaced by [MASK]."""
    random_fraction: float = 0.1
    """Of the chosen tokens, the fraction replaced by a random token (the rest stay unchanged)."""

    def __post_init__(self) -> None:
        if not 0 < self.mlm_probability < 1:
            raise MalmoiError("E201", f"mlm_probability must be in (0, 1), got {self.mlm_probability}")
        if self.mask_fraction < 0 or self.random_fraction < 0 or self.mask_fraction + self.random_fraction > 1:
            raise MalmoiError("E201", "mask_fraction and random_fraction must be ≥ 0 and sum to at most 1")
        specials = set(self.special_ids) | {self.pad_id, self.mask_id}
        self._replacements = torch.tensor([i for i in range(self.vocab_size) if i not in specials], dtype=torch.long)
        self._specials = torch.tensor(sorted(specials), dtype=torch.long)
        if len(self._replacements) == 0:
            raise MalmoiError("E442", "vocabulary has no ordinary tokens to draw replacements from")

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, **kwargs: Any) -> "MLMCollator":
        """Read mask/pad/special ids and the vocabulary size off a Hugging Face tokenizer."""
        if tokenizer.mask_token_id is None:
            raise MalmoiError("E462", "the tokenizer has no mask token; MLM needs one")
        return cls(
            mask_id=tokenizer.mask_token_id,
            vocab_size=len(tokenizer),
            special_ids=tuple(tokenizer.all_special_ids),
            pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
            **kwargs,
        )

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = PadCollator(pad_id=self.pad_id)(
            [{k: v for k, v in item.items() if k != "labels"} for item in items]
        )
        batch["input_ids"], batch["labels"] = self.mask(batch["input_ids"])
        return batch

    def mask(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (masked input ids, labels) for a (B, T) tensor of ids."""
        ids = input_ids.clone()
        labels = input_ids.clone()
        eligible = ~torch.isin(ids, self._specials)
        chosen = (torch.rand(ids.shape) < self.mlm_probability) & eligible
        labels[~chosen] = LABEL_PAD
        roll = torch.rand(ids.shape)
        to_mask = chosen & (roll < self.mask_fraction)
        to_random = chosen & (roll >= self.mask_fraction) & (roll < self.mask_fraction + self.random_fraction)
        ids[to_mask] = self.mask_id
        picks = torch.randint(len(self._replacements), (int(to_random.sum()),))
        ids[to_random] = self._replacements[picks]
        return ids, labels


class BucketSampler:
    """Yields lists of indices: batches of similar-length examples in a random batch order.

    Each epoch the indices are shuffled (seeded by ``seed`` and the epoch), cut into chunks of
    ``batch_size * chunk_batches`` examples, each chunk is sorted by length (longest first), the
    concatenation is cut into batches and the batch order is shuffled again. Without
    ``shuffle`` the whole set is sorted by length once (good for evaluation). With
    ``lengths=None`` every example counts as equally long, which gives plain random batches.

    Distributed: with ``num_replicas > 1`` the batch list is padded (by repeating its first
    batches) to a multiple of ``num_replicas`` and process ``rank`` takes every
    ``num_replicas``-th batch, so every process runs the same number of steps.
    ``skip(k)`` starts the current epoch after this process's first ``k`` batches (resume).
    """

    def __init__(
        self,
        lengths: Sequence[int] | None,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        *,
        size: int | None = None,
        drop_last: bool = False,
        chunk_batches: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        if batch_size <= 0:
            raise MalmoiError("E201", f"batch_size must be positive, got {batch_size}")
        if lengths is None and size is None:
            raise MalmoiError("E205", "BucketSampler needs lengths or size")
        if not 0 <= rank < num_replicas:
            raise MalmoiError("E201", f"rank {rank} is outside 0..{num_replicas - 1}")
        self.lengths = np.asarray(lengths if lengths is not None else np.zeros(size, dtype=np.int64))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.chunk_batches = max(1, chunk_batches)
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order is produced next; also clears ``skip``."""
        self.epoch = epoch
        self.start = 0

    def skip(self, batches: int) -> None:
        """Start the current epoch after this process's first ``batches`` batches."""
        self.start = batches

    def global_batches(self) -> list[np.ndarray]:
        """All batches of the current epoch, before sharding across processes."""
        n = len(self.lengths)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = rng.permutation(n)
            chunk = self.batch_size * self.chunk_batches
            # a stable sort keeps the shuffled order among equal lengths
            pieces = [
                order[i : i + chunk][np.argsort(-self.lengths[order[i : i + chunk]], kind="stable")]
                for i in range(0, n, chunk)
            ]
            order = np.concatenate(pieces) if pieces else order
        else:
            order = np.argsort(-self.lengths, kind="stable")
        batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            rng.shuffle(batches)  # permutes the list of batches in place
        if self.num_replicas > 1 and batches:
            extra = -len(batches) % self.num_replicas
            batches += [batches[i % len(batches)] for i in range(extra)]
        return batches

    @property
    def num_batches(self) -> int:
        """Batches this process gets in a whole epoch (ignoring ``skip``)."""
        n = len(self.lengths) // self.batch_size if self.drop_last else -(-len(self.lengths) // self.batch_size)
        return -(-n // self.num_replicas)

    def __iter__(self) -> Iterator[list[int]]:
        mine = self.global_batches()[self.rank :: self.num_replicas]
        for batch in mine[self.start :]:
            yield batch.tolist()

    def __len__(self) -> int:
        return max(0, self.num_batches - self.start)


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of the padded (B × longest) cells that are padding, over all ``batches``."""
    lengths = np.asarray(lengths)
    cells = sum(len(b) * lengths[list(b)].max() for b in batches if len(b))
    real = sum(lengths[list(b)].sum() for b in batches if len(b))
    return float(1 - real / cells) if cells else 0.0
