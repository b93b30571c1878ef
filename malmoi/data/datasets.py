"""Examples → token ids, once: map-style Datasets whose items are dicts of lists of ints.

Every dataset tokenizes all its texts up front (one batched call to a fast tokenizer) and keeps
only the id lists, so an epoch costs no tokenization. ``lengths`` (one int per item) feeds
``batching.BucketSampler``. Padding and tensors are the collator's job (``batching.py``).

An *encoder* is either a Hugging Face tokenizer or a callable ``text -> list[int]`` (e.g. a
``Vocab``'s encode), so the same datasets serve subword models and the word-level LSTM.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, Union

from torch.utils.data import Dataset

from malmoi.data.batching import LABEL_PAD
from malmoi.errors import MalmoiError

Encoder = Union[Callable[[str], Sequence[int]], Any]
"""A Hugging Face tokenizer, or a callable turning one text into ids."""


def _is_hf_tokenizer(encoder: Any) -> bool:
    return hasattr(encoder, "convert_tokens_to_ids") and callable(encoder)


def _check_max_length(name: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise MalmoiError("E202", f"{name} must be positive, got {value}")


def encode_all(texts: Sequence[str], encoder: Encoder, max_length: int | None = None,
               special_tokens: bool = True) -> list[list[int]]:
    """Ids for every text. A tokenizer truncates itself (keeping its special tokens); for a
    callable, over-long id lists keep their last id (usually ``<eos>``) after truncation."""
    _check_max_length("max_length", max_length)
    texts = list(texts)
    if _is_hf_tokenizer(encoder):
        if not texts:
            return []
        out = encoder(texts, truncation=max_length is not None, max_length=max_length,
                      add_special_tokens=special_tokens, return_attention_mask=False,
                      return_token_type_ids=False)
        return [list(ids) for ids in out["input_ids"]]
    ids = [list(encoder(t)) for t in texts]
    if max_length is not None:
        ids = [s if len(s) <= max_length else s[: max_length - 1] + s[-1:] for s in ids]
    return ids


class ClassificationDataset(Dataset):
    """Texts and label ids → ``{input_ids, attention_mask, token_type_ids?, labels?}``."""

    def __init__(self, texts: Sequence[str], label_ids: Sequence[int] | None, tokenizer: Any,
                 max_length: int = 128):
        _check_max_length("max_length", max_length)
        if label_ids is not None and len(label_ids) != len(texts):
            raise MalmoiError("E115", f"{len(texts)} texts but {len(label_ids)} labels")
        self.input_ids = encode_all(texts, tokenizer, max_length)
        self.labels = None if label_ids is None else [int(y) for y in label_ids]
        names = getattr(tokenizer, "model_input_names", ["input_ids", "attention_mask"])
        # masks and segment ids of a single sentence are all 1s / 0s: rebuilt per item, not stored
        self.with_mask = "attention_mask" in names
        self.with_types = "token_type_ids" in names
        self.lengths = [len(ids) for ids in self.input_ids]

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ids = self.input_ids[i]
        item: dict[str, Any] = {"input_ids": ids}
        if self.with_mask:
            item["attention_mask"] = [1] * len(ids)
        if self.with_types:
            item["token_type_ids"] = [0] * len(ids)
        if self.labels is not None:
            item["labels"] = self.labels[i]
        return item


class Seq2SeqDataset(Dataset):
    """Source/target pairs → ``{input_ids, attention_mask?, labels}``; labels are target ids.

    The model derives its decoder inputs from ``labels`` (shifted right behind ``<bos>``, as
    BART and ``LSTMSeq2Seq`` do), so targets should end with ``<eos>``: a Hugging Face
    tokenizer's post-processor adds it, a callable encoder must return it.
    """

    def __init__(self, sources: Sequence[str], targets: Sequence[str], encode_source: Encoder,
                 encode_target: Encoder | None = None, max_source_length: int | None = 128,
                 max_target_length: int | None = 128, attention_mask: bool = True):
        if len(sources) != len(targets):
            raise MalmoiError("E115", f"{len(sources)} sources but {len(targets)} targets")
        self.sources = encode_all(sources, encode_source, max_source_length)
        self.targets = encode_all(targets, encode_target or encode_source, max_target_length)
        self.attention_mask = attention_mask
        self.lengths = [len(s) + len(t) for s, t in zip(self.sources, self.targets)]

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {"input_ids": self.sources[i], "labels": self.targets[i]}
        if self.attention_mask:
            item["attention_mask"] = [1] * len(self.sources[i])
        return item


class LanguageModelDataset(Dataset):
    """Texts packed into blocks of ``block_size`` ids, ``eos_id`` after every document.

    Items are ``{input_ids, labels}`` with equal lists (causal LMs shift labels inside). The
    tail that does not fill a block is dropped, unless the whole corpus is shorter than one block.
    """

    def __init__(self, texts: Sequence[str], tokenizer: Encoder, block_size: int,
                 eos_id: int | None = None, bos_id: int | None = None):
        _check_max_length("block_size", block_size)
        if eos_id is None:
            eos_id = getattr(tokenizer, "eos_token_id", None)
        if eos_id is None:
            raise MalmoiError("E471", "LanguageModelDataset needs an eos_id (the tokenizer has none)")
        stream: list[int] = []
        for ids in encode_all(texts, tokenizer, special_tokens=False):
            if bos_id is not None:
                stream.append(bos_id)
            stream.extend(ids)
            stream.append(eos_id)
        n = max(1, len(stream) // block_size) if stream else 0
        self.blocks = [stream[i * block_size : (i + 1) * block_size] for i in range(n)]
        self.lengths = [len(b) for b in self.blocks]
        self.num_tokens = len(stream)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.blocks[i], "labels": self.blocks[i]}


class ChatDataset(Dataset):
    """(question, answer) pairs in one turn format, ``bos question eos answer eos``, packed whole
    into blocks of at most ``block_size`` ids (a turn longer than a block loses its end).

    Items are ``{input_ids, labels}``; with ``answer_only`` the labels of the question part are
    -100, so the model learns to answer rather than to ask (the question is still read)."""

    def __init__(self, pairs: Sequence[tuple[str, str]], tokenizer: Encoder, block_size: int, *,
                 bos_id: int, eos_id: int, answer_only: bool = True):
        _check_max_length("block_size", block_size)
        questions = encode_all([q for q, _ in pairs], tokenizer, special_tokens=False)
        answers = encode_all([a for _, a in pairs], tokenizer, special_tokens=False)
        self.blocks: list[list[int]] = []
        self.labels: list[list[int]] = []
        ids: list[int] = []
        labels: list[int] = []
        for q, a in zip(questions, answers):
            turn = [bos_id, *q, eos_id, *a, eos_id][:block_size]
            asked = turn[: len(q) + 2]
            told = [LABEL_PAD] * len(asked) if answer_only else asked
            if ids and len(ids) + len(turn) > block_size:
                self.blocks.append(ids)
                self.labels.append(labels)
                ids, labels = [], []
            ids += turn
            labels += told + turn[len(asked):]
        if ids:
            self.blocks.append(ids)
            self.labels.append(labels)
        self.lengths = [len(b) for b in self.blocks]
        self.num_tokens = sum(self.lengths)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ids = self.blocks[i]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": self.labels[i]}


class TextDataset(Dataset):
    """Texts → ``{input_ids, attention_mask}``, one item per text (for MLM with ``MLMCollator``)."""

    def __init__(self, texts: Sequence[str], tokenizer: Encoder, max_length: int = 128):
        self.input_ids = encode_all(texts, tokenizer, max_length)
        self.lengths = [len(ids) for ids in self.input_ids]

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ids = self.input_ids[i]
        return {"input_ids": ids, "attention_mask": [1] * len(ids)}


def pack_blocks(docs: Sequence[Sequence[int]], max_length: int, cls_id: int, sep_id: int,
                pack: bool = True) -> list[list[int]]:
    """Blocks of at most ``max_length`` ids, each ``[CLS] doc [SEP] doc [SEP] …``.

    With ``pack`` whole documents are appended while they fit (RoBERTa's FULL-SENTENCES) and a
    document longer than a block is cut into block-sized pieces; without it every document is
    one block, truncated. Empty documents are dropped.
    """
    room = max_length - 2  # [CLS] and one [SEP]
    if room < 1:
        raise MalmoiError("E222", f"max_length {max_length} leaves no room for tokens between [CLS] and [SEP]")
    blocks: list[list[int]] = []
    current: list[int] = [cls_id]
    for doc in docs:
        if not doc:
            continue
        if not pack:
            blocks.append([cls_id, *doc[:room], sep_id])
            continue
        pieces = [doc[i : i + room] for i in range(0, len(doc), room)]
        for piece in pieces:
            if len(current) + len(piece) + 1 > max_length:
                blocks.append(current)
                current = [cls_id]
            current += [*piece, sep_id]
    if len(current) > 1:
        blocks.append(current)
    return blocks


class PackedTextDataset(Dataset):
    """Texts → packed blocks → ``{input_ids, attention_mask}`` items (masking is the collator's job)."""

    def __init__(self, texts: Sequence[str], tokenizer, max_length: int, pack: bool = True):
        docs = encode_all(texts, tokenizer, special_tokens=False)
        self.num_tokens = sum(len(d) for d in docs)
        self.blocks = pack_blocks(docs, max_length, tokenizer.cls_token_id, tokenizer.sep_token_id, pack)
        self.lengths = [len(b) for b in self.blocks]

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ids = self.blocks[i]
        return {"input_ids": ids, "attention_mask": [1] * len(ids)}
