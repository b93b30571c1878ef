"""The text stage's token view (also what ``POST /v1/tokenize`` answers): a run's tokens with ids,
type ids, mask and character offsets into the input; for an n-gram run its n-grams with kind,
hashed id and character span."""
from __future__ import annotations

from malmoi.errors import MalmoiError


def tokenizer_of(loaded):
    """The tokenizer (or featurizer, or codec) a loaded run reads text with; None for retrieval."""
    codec = getattr(loaded, "codec", None)
    return getattr(loaded, "tokenizer", None) or getattr(codec, "tokenizer", None) or codec


def tokenize(loaded, text: str, pair: str | None = None) -> dict:
    """The token view of ``text`` (and ``pair``, read as the second sequence, for subword tokenizers)."""
    from malmoi.text.char_features import CharFeaturizer
    from malmoi.text.ngrams import NgramFeaturizer

    tok = tokenizer_of(loaded)
    if pair is not None and not getattr(tok, "is_fast", False):
        raise MalmoiError("E605", "a sentence pair needs a subword tokenizer (a BERT, GPT or BART run)")
    if isinstance(tok, NgramFeaturizer):
        return {"kind": "ngrams", "ngrams": [{"kind": g.kind, "text": g.text, "id": g.id, "start": g.start,
                                              "end": g.end} for g in tok.ngrams(text)]}
    if getattr(tok, "is_fast", False):
        return _subwords(tok, text, pair)
    if hasattr(tok, "split") and hasattr(tok, "vocab"):  # an LSTM run's vocabulary codec
        return _units(tok, text)
    if isinstance(tok, CharFeaturizer):  # a character tagger's featurizer: every character, spaces included
        ids = tok.encode(text)["chars"]
        return {"kind": "units", "tokens": list(text), "input_ids": ids, "token_type_ids": [0] * len(ids),
                "attention_mask": [1] * len(ids), "offsets": [[i, i + 1] for i in range(len(text))],
                "display": [c if not c.isspace() else "␣" for c in text]}
    raise MalmoiError("E605", "this model has no tokenizer to show (a retrieval run compares character n-grams)")


def _subwords(tok, text: str, pair: str | None = None) -> dict:
    enc = tok(text, pair, return_offsets_mapping=True, return_token_type_ids=True, return_attention_mask=True)
    ids = enc["input_ids"]
    tokens = tok.convert_ids_to_tokens(ids)
    sequences = enc.sequence_ids()  # 0 / 1 per token of the first / second text, None for specials
    offsets = [list(o) if s is not None else [0, 0] for o, s in zip(enc["offset_mapping"], sequences)]
    view = {"kind": "subwords", "tokens": tokens, "input_ids": ids,
            "token_type_ids": enc.get("token_type_ids") or [0] * len(ids),
            "attention_mask": enc["attention_mask"], "offsets": offsets,
            "display": [readable(t, (pair if s == 1 else text), o, s) for t, o, s in zip(tokens, offsets, sequences)]}
    if pair is not None:
        view["sequence_ids"] = sequences
    return view


def readable(token: str, text: str, offset: list[int], sequence: int | None) -> str:
    """A token as the reader should see it: the characters of the input it covers (WordPiece's
    ``##``, Metaspace's ``▁`` and byte-level pieces of one syllable all become plain Hangul);
    special tokens as themselves."""
    start, end = offset
    if sequence is None or end <= start:
        return token
    if not token.removeprefix("##").strip("▁Ġ "):  # a piece that is only a word-start mark
        return "␣"
    return text[start:end]


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
            "attention_mask": [1] * len(ids), "offsets": offsets, "display": list(units)}
