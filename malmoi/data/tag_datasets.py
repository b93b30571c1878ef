"""Tagged sentences → the items a tagger trains on, and the mapping between characters and tokens.

``CharTagDataset``  one item per sentence: the four character-feature id lists (``text/char_features``),
                    ``attention_mask`` and, when labelled, one label id per character.
``TokenTagDataset`` one item per sentence for an encoder: subword ``input_ids`` and one label per
                    token: the entities, as character spans, carried to the tokens whose first
                    character they hold, then written in the scheme (``token_tags``).
``char_tags_from_tokens`` carries a token-level prediction back to the characters of the text.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from malmoi.data.batching import LABEL_PAD, PadCollator
from malmoi.data.tagging import Entity, entities, tags_for
from malmoi.errors import MalmoiError



class CharTagCollator:
    """``PadCollator`` for character items, with their (units × features) ``grams`` padded to (B, T, F)."""

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch = PadCollator(pad_id=0)([{k: v for k, v in item.items() if k != "grams"} for item in items])
        if "grams" in items[0]:
            width = len(items[0]["grams"][0]) if items[0]["grams"] else 0
            grams = torch.zeros(len(items), batch["chars"].shape[1], width, dtype=torch.long)
            for row, item in enumerate(items):
                if item["grams"]:
                    grams[row, :len(item["grams"])] = torch.tensor(item["grams"])
            batch["grams"] = grams
        return batch


class CharTagDataset(Dataset):
    """Character features (and labels) of each sentence, cut at ``max_length`` characters."""

    def __init__(self, featurizer, texts: Sequence[str], tags: Sequence[Sequence[str]] | None,
                 labels: Sequence[str], max_length: int):
        if tags is not None and len(tags) != len(texts):
            raise MalmoiError("E115", f"{len(texts)} sentences but {len(tags)} tag sequences")
        index = {lab: i for i, lab in enumerate(labels)}
        self.items = []
        for i, feats in enumerate(featurizer.encode_many([t[:max_length] for t in texts])):
            item: dict[str, Any] = dict(feats, attention_mask=[1] * len(feats["chars"]))
            if tags is not None:
                item["labels"] = [index[t] for t in tags[i][:max_length]]
            self.items.append(item)
        self.lengths = [len(item["chars"]) for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def token_spans(tokenizer, texts: Sequence[str], max_length: int) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """(input_ids, character offsets) of each text; special tokens have the offset (0, 0)."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, return_offsets_mapping=True)
    return list(zip(enc["input_ids"], [[tuple(o) for o in offs] for offs in enc["offset_mapping"]]))


def token_tags(offsets: Sequence[tuple[int, int]], spans: Sequence[Entity], scheme: str) -> list[str | None]:
    """The tag of each token (None for a special token): an entity covers the tokens that start inside it."""
    real = [i for i, (s, e) in enumerate(offsets) if e > s]
    first = {offsets[i][0]: k for k, i in enumerate(real)}
    token_entities = []
    for span in spans:
        inside = [k for c, k in first.items() if span.start <= c < span.end]
        if inside:
            token_entities.append(Entity(min(inside), max(inside) + 1, span.type))
    tags = tags_for(token_entities, len(real), scheme)
    out: list[str | None] = [None] * len(offsets)
    for k, i in enumerate(real):
        out[i] = tags[k]
    return out


def char_tags_from_tokens(text: str, offsets: Sequence[tuple[int, int]], tags: Sequence[str],
                          scheme: str) -> list[str]:
    """One tag per character of ``text`` from one tag per token: each predicted entity spans its
    tokens' characters (the spaces between them included)."""
    real = [i for i, (s, e) in enumerate(offsets) if e > s]
    spans = [Entity(offsets[real[e.start]][0], offsets[real[e.end - 1]][1], e.type)
             for e in entities([tags[i] for i in real])]
    return tags_for(spans, len(text), scheme)


class TokenTagDataset(Dataset):
    """Subword tokens (and their labels) of each sentence for an ``EncoderTagger``."""

    def __init__(self, tokenizer, texts: Sequence[str], tags: Sequence[Sequence[str]] | None,
                 labels: Sequence[str], scheme: str, max_length: int):
        index = {lab: i for i, lab in enumerate(labels)}
        names = getattr(tokenizer, "model_input_names", ["input_ids", "attention_mask"])
        self.offsets, self.items = [], []
        for i, (ids, offsets) in enumerate(token_spans(tokenizer, texts, max_length)):
            item: dict[str, Any] = {"input_ids": ids, "attention_mask": [1] * len(ids)}
            if "token_type_ids" in names:
                item["token_type_ids"] = [0] * len(ids)
            if tags is not None:
                per_token = token_tags(offsets, entities(tags[i]), scheme)
                item["labels"] = [LABEL_PAD if t is None else index[t] for t in per_token]
            self.offsets.append(offsets)
            self.items.append(item)
        self.lengths = [len(item["input_ids"]) for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]
