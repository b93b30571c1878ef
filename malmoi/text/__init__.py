"""Text → numbers: words and morphemes, vocabularies, subword tokenizers.

Names load lazily, so that ``import malmoi.text`` pulls in neither transformers nor Kiwi.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "split_words": "words", "split_chars": "words", "split_morphemes": "words", "morphemes": "words",
    "Morpheme": "words", "mark_morpheme_boundaries": "words",
    "Vocab": "vocab", "one_hot_cosine": "vocab",
    "train_tokenizer": "subword", "load_tokenizer": "subword", "MorphemeTokenizerFast": "subword",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'malmoi.text' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
