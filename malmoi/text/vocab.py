"""Vocab: word-level integer encoding with special tokens, and one-hot vectors.

Integer ids are names, not meanings: id 7 is no closer to id 8 than to id 700. One-hot vectors
make that visible, since any two different words' one-hot vectors are orthogonal (cosine 0).
Embeddings, learned by the models in later stages, are what put related words near each other.

>>> v = Vocab.build([["나는", "너를", "좋아해"], ["너를", "싫어해"]])
>>> v.encode(["나는", "너를", "미워해"], add_bos=True, add_eos=True)
[2, 5, 4, 1, 3]
>>> v.decode([2, 5, 4, 1, 3])
['나는', '너를', '<unk>']
>>> one_hot_cosine(v, "나는", "너를"), one_hot_cosine(v, "나는", "나는")
(0.0, 1.0)
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from malmoi.errors import MalmoiError
from malmoi.files import atomic_write_json

if TYPE_CHECKING:
    import torch

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = [PAD, UNK, BOS, EOS]
"""In id order: ``<pad>`` is 0, so zero-filled batches are padding."""
BERT_SPECIALS = ["[CLS]", "[SEP]", "[MASK]"]
"""Appended after ``SPECIALS`` with ``bert=True``."""
FORMAT = "malmoi.vocab/1"


class Vocab:
    """A token ↔ id table whose first entries are the special tokens."""

    def __init__(self, tokens: Sequence[str], specials: Sequence[str] = SPECIALS):
        """``tokens`` in id order, starting with ``specials`` (which must start with ``SPECIALS``)."""
        if list(specials[: len(SPECIALS)]) != SPECIALS or list(tokens[: len(specials)]) != list(specials):
            raise MalmoiError("E412", f"a vocabulary must start with the special tokens {SPECIALS}")
        if len(set(tokens)) != len(tokens):
            raise MalmoiError("E412", "a vocabulary lists a token twice")
        self.itos: list[str] = list(tokens)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        self.specials: list[str] = list(specials)

    @classmethod
    def build(cls, tokenized: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None,
              bert: bool = False) -> "Vocab":
        """From tokenised texts: words seen at least ``min_freq`` times, the ``max_size`` most
        frequent (specials not counted; ties keep first-seen order), after the special tokens."""
        if min_freq < 1:
            raise MalmoiError("E213", f"min_freq must be at least 1, got {min_freq}")
        if max_size is not None and max_size < 0:
            raise MalmoiError("E213", f"max_size must be 0 or more, got {max_size}")
        specials = SPECIALS + (BERT_SPECIALS if bert else [])
        counts = Counter(t for tokens in tokenized for t in tokens)
        words = [w for w, c in counts.most_common() if c >= min_freq and w not in specials]
        return cls(specials + words[:max_size], specials)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        """The id of ``token``; ``unk_id`` for a word the vocabulary has not seen."""
        return self.stoi.get(token, self.unk_id)

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens, {len(self.specials)} special)"

    @property
    def pad_id(self) -> int:
        return self.stoi[PAD]

    @property
    def unk_id(self) -> int:
        return self.stoi[UNK]

    @property
    def bos_id(self) -> int:
        return self.stoi[BOS]

    @property
    def eos_id(self) -> int:
        return self.stoi[EOS]

    @property
    def special_ids(self) -> set[int]:
        return {self.stoi[s] for s in self.specials}

    def encode(self, tokens: Sequence[str], add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Ids of ``tokens`` (unknown words → ``unk_id``), optionally wrapped in ``<bos>``/``<eos>``."""
        ids = [self[t] for t in tokens]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Iterable[int], skip_specials: bool = True) -> list[str]:
        """Tokens of ``ids`` (join them as the splitter did: ``" ".join`` for words, ``""`` for
        characters); ``<unk>`` stays, the other specials are dropped unless ``skip_specials=False``."""
        skip = self.special_ids - {self.unk_id} if skip_specials else set()
        return [self.itos[i] for i in map(int, ids) if i not in skip]

    def one_hot(self, ids: Sequence[int] | "torch.Tensor") -> "torch.Tensor":
        """Float one-hot rows, shape ``(*ids.shape, len(self))``."""
        import torch

        ids = torch.as_tensor(ids, dtype=torch.long)
        return torch.nn.functional.one_hot(ids, num_classes=len(self)).float()

    def to_json(self) -> dict:
        return {"format": FORMAT, "specials": self.specials, "tokens": self.itos}

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocab":
        path = Path(path)
        if not path.is_file():
            raise MalmoiError("E412", f"vocabulary file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MalmoiError("E412", f"{path} is not a vocabulary file: {e}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise MalmoiError("E412", f"{path} is not a malmoi vocabulary ({FORMAT})")
        return cls(data["tokens"], data["specials"])


def one_hot_cosine(vocab: Vocab, a: str, b: str) -> float:
    """Cosine similarity of two words' one-hot vectors: 1.0 for the same word, 0.0 for any two
    different ones in the vocabulary (unknown words all share `<unk>`), so one-hot vectors,
    like integer ids, say nothing about how words relate."""
    import torch

    va, vb = vocab.one_hot([vocab[a], vocab[b]])
    return float(torch.nn.functional.cosine_similarity(va, vb, dim=0))
