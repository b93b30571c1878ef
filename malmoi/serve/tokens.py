"""What ``POST /v1/tokenize`` shows: a run's tokens with ids, type ids, mask and character
offsets into the input; for an n-gram run its n-grams with kind, hashed id and character span."""
from __future__ import annotations

from malmoi.errors import MalmoiError


def tokenizer_of(loaded):
    """The tokenizer (or featurizer, or codec) a loaded run reads text with; None for retrieval."""
    codec = getattr(loaded, "codec", None)
    return getattr(loaded, "tokenizer", None) or getattr(codec, "tokenizer", None) or codec


def tokenize(loaded, text: str) -> dict:
    from malmoi.text.ngrams import NgramFeaturizer

    tok = tokenizer_of(loaded)
    if isinstance(tok, NgramFeaturizer):
        return {"kind": "ngrams", "ngrams": [{"kind": g.kind, "text": g.text, "id": g.id, "start": g.start,
                                              "end": g.end} for g in tok.ngrams(text)]}
    if getattr(tok, "is_fast", False):
        return _subwords(tok, text)
    if hasattr(tok, "split") and hasattr(tok, "vocab"):  # an LSTM run's vocabulary codec
        return _units(tok, text)
    raise MalmoiError("E605", "this model has no tokenizer to show (a retrieval run compares character n-grams)")


def _subwords(tok, text: str) -> dict:
    enc = tok(text, return_offsets_mapping=True, return_token_type_ids=True, return_attention_mask=True)
    ids = enc["input_ids"]
    return {"kind": "subwords", "tokens": tok.convert_ids_to_tokens(ids), "input_ids": ids,
            "token_type_ids": enc.get("token_type_ids") or [0] * len(ids),
            "attention_mask": enc["attention_mask"], "offsets": [list(o) for o in enc["offset_mapping"]]}


def _units(codec, text: str) -> dict:
    """Characters, words or morphemes with their vocabulary ids; a unit's offsets are where it
    is found in the input after the previous one (None for a morpheme that is not spelled there)."""
    units = codec.split([text])[0]
    ids = codec.vocab.encode(units)
    offsets, cursor = [], 0
    for unit in units:
        at = text.find(unit, cursor)
        offsets.append([at, at + len(unit)] if at >= 0 else None)
        cursor = at + len(unit) if at >= 0 else cursor
    return {"kind": "units", "tokens": units, "input_ids": ids, "token_type_ids": [0] * len(ids),
            "attention_mask": [1] * len(ids), "offsets": offsets}
