"""Words as numbers: how a run's tokenizer spells each word, its one-hot vector beside its learned
embedding (one-hot vectors of different tokens are orthogonal; learned ones are not), the tokens
nearest to it in the embedding table, and with ``kiwi=True`` what Kiwi's CoNg model thinks.

    view = words_view(malmoi.load("runs/lm"), ["좋다", "싫다", "영화"], kiwi=True)
    print_words(view)
"""
from __future__ import annotations

import torch

from malmoi.errors import MalmoiError
from malmoi.inspect.embeddings import embedding_table, nearest
from malmoi.inspect.record import name_of
from malmoi.inspect.tokens import tokenizer_of

DIGITS = 4
WORD_MARKS = {"\u2581", "\u0120"}
"""Metaspace's and byte-level BPE's word-start marks: as a token of their own they begin every word."""
CONTENT_TAGS = ("NN", "NP", "NR", "VV", "VA", "VX", "MM", "MA", "XR", "IC", "SL", "SH", "SN")
"""Kiwi tags of the morphemes that carry a word's meaning (not particles or endings)."""


# -- the run's tokens, shared with similar.py and embedding_map.py

def table_of(loaded) -> torch.Tensor:
    """The run's (V, D) input embeddings; an n-gram or retrieval run has none and is refused."""
    table = embedding_table(loaded)
    if table is None:
        raise MalmoiError("E483", "this run has no token vectors (an n-gram or retrieval model hashes or counts "
                                  "character n-grams); use a BERT, GPT, MLM, LSTM or BART run")
    return table


def encode(loaded, texts: list[str]) -> list[list[int]]:
    """Token ids of each text as the run's tokenizer spells it, without special tokens."""
    tok = tokenizer_of(loaded)
    if getattr(tok, "is_fast", False):
        return tok(list(texts), add_special_tokens=False)["input_ids"]
    if hasattr(tok, "split") and hasattr(tok, "vocab"):  # an LSTM run's word/syllable/morpheme codec
        return [tok.vocab.encode(units) for units in tok.split(list(texts))]
    raise MalmoiError("E483", "this run has no tokenizer whose tokens have vectors")


def special_ids(loaded) -> set[int]:
    tok = tokenizer_of(loaded)
    return set(tok.all_special_ids) if hasattr(tok, "all_special_ids") else set(tok.vocab.special_ids)


def unk_id(loaded) -> int | None:
    tok = tokenizer_of(loaded)
    return tok.unk_token_id if hasattr(tok, "unk_token_id") else tok.vocab.unk_id


def readable(loaded):
    """id → the piece as plain text: WordPiece's ``##`` and Metaspace's ``▁`` gone; a piece that
    does not decode to text on its own (or a special token) stays as spelled."""
    tok, spell, specials = tokenizer_of(loaded), name_of(loaded), special_ids(loaded)

    def text(i: int) -> str:
        piece = spell(i)
        if i in specials or not hasattr(tok, "convert_tokens_to_string"):
            return piece
        try:
            shown = tok.convert_tokens_to_string([piece])
        except Exception:  # a tokenizer without a decoder: the piece itself is the best we have
            shown = piece
        if not shown.strip() or "\ufffd" in shown:
            shown = piece
        shown = shown.strip().removeprefix("##").replace("\u2581", "").replace("\u0120", "")
        return shown or piece

    return text


# -- the view

def check_words(words) -> list[str]:
    if isinstance(words, str) or not words or any(not isinstance(w, str) or not w.strip() for w in words):
        raise MalmoiError("E481", "give one or more words to look up: an empty or blank word was given")
    return [w.strip() for w in words]


def words_view(loaded, words: list[str], kiwi: bool = False, top_k: int = 5) -> dict:
    """Each word's tokens, one-hot and learned vectors compared pairwise, and its nearest tokens."""
    words = check_words(words)
    table = table_of(loaded)
    ids = encode(loaded, words)
    empty = [w for w, i in zip(words, ids) if not i]
    if empty:
        raise MalmoiError("E481", f"the run's tokenizer gives no tokens for {empty[0]!r}")
    spell, vocabulary = name_of(loaded), int(table.shape[0])
    kept = [vector_ids(i, spell) for i in ids]
    learned = torch.stack([table[torch.tensor(i)].float().mean(0) for i in kept])  # (W, D): a word's mean token
    sims, near = nearest(table, learned, top_k)
    rows = [{"word": w, "tokens": [spell(t) for t in i], "ids": list(i), "vector_ids": k, "one_hot_size": vocabulary,
             "pooled": f"mean of its {len(k)} token vectors" if len(k) > 1 else None,
             "nearest": [{"token": spell(t), "id": t, "cosine": round(c, DIGITS)} for t, c in zip(n, s)]}
            for w, i, k, n, s in zip(words, ids, kept, near.tolist(), sims.tolist())]
    view = {"vocabulary": vocabulary, "dimension": int(table.shape[1]), "words": rows,
            "one_hot_cosine": _rounded(cosine_matrix(one_hot_bags(kept, vocabulary))),
            "learned_cosine": _rounded(cosine_matrix(learned)), "notes": _notes(words, ids, kept, loaded)}
    if kiwi:
        view["kiwi"] = cong_view(words, top_k)
    return view


def vector_ids(ids: list[int], spell) -> list[int]:
    """The ids a word's vectors are built from: all but a bare word-start mark, which every word
    begins with and which would make any two words look alike."""
    return [t for t in ids if spell(t) not in WORD_MARKS] or list(ids)


def one_hot_bags(ids: list[list[int]], vocabulary: int) -> torch.Tensor:
    """(W, V): each word's one-hot vector, or the sum of its tokens' one-hot vectors (a bag)."""
    return torch.stack([torch.nn.functional.one_hot(torch.tensor(i), vocabulary).double().sum(0) for i in ids])


def cosine_matrix(vectors: torch.Tensor) -> torch.Tensor:
    unit = torch.nn.functional.normalize(vectors.double(), dim=-1)
    return unit @ unit.T


def _rounded(matrix: torch.Tensor) -> list[list[float]]:
    return [[round(float(v), DIGITS) for v in row] for row in matrix]


def _notes(words: list[str], ids: list[list[int]], kept: list[list[int]], loaded) -> list[str]:
    notes = []
    if any(len(i) > len(k) for i, k in zip(ids, kept)):
        notes.append("the bare word-start mark that begins every word (▁) is left out of the vectors")
    if any(len(k) > 1 for k in kept):
        notes.append("a word of several tokens is the mean of their vectors (learned) or the normalised sum of "
                     "their one-hot vectors (one-hot), so words that share a token have a one-hot cosine above 0")
    unk = unk_id(loaded)
    unknown = [w for w, i in zip(words, ids) if unk is not None and unk in i]
    if unknown:
        notes.append(f"unknown to the tokenizer (read as its unknown token): {', '.join(unknown)}")
    return notes


# -- Kiwi's CoNg model

_CONG: dict = {}


def cong_kiwi():
    """Kiwi with its CoNg language model: the shared analyser where it already runs on CoNg (the
    default since kiwipiepy 0.22), else one built once (loading it takes a few seconds)."""
    if "kiwi" not in _CONG:
        try:
            from kiwipiepy import Kiwi

            from malmoi.text.words import kiwi as shared

            kiwi = shared()
            if kiwi.model_type not in ("cong", "cong-global"):
                kiwi = Kiwi(num_workers=1, model_type="cong")
            if not hasattr(kiwi, "most_similar_morphemes"):
                raise RuntimeError("this kiwipiepy has no most_similar_morphemes")
        except Exception as e:  # a missing or old model file surfaces as many exception types
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise MalmoiError("E482", f"Kiwi's CoNg model is not available ({reason}); install kiwipiepy and "
                                      "kiwipiepy-model 0.21 or newer") from None
        _CONG["kiwi"] = kiwi
    return _CONG["kiwi"]


def content_morpheme(kiwi, word: str) -> tuple[str, str] | None:
    """The (form, tag) Kiwi's own analysis gives the word's meaning to: 좋다 → ('좋', 'VA'). A bare
    form would be ambiguous ("multiple morphemes") or missing ("no morpheme") for CoNg."""
    tokens = kiwi.tokenize(word)
    chosen = next((t for t in tokens if t.tag.startswith(CONTENT_TAGS)), tokens[0] if tokens else None)
    return None if chosen is None else (chosen.form, chosen.tag)


def _cong_call(call, *morphemes):
    """``call`` on the morphemes as tagged, then without an irregular mark (VA-I → VA); None if CoNg lacks them."""
    tried = [morphemes, tuple((f, t.split("-")[0]) for f, t in morphemes)]
    for args in dict.fromkeys(tried):
        try:
            return call(*args)
        except (ValueError, KeyError, IndexError, RuntimeError):
            continue
    return None


def cong_view(words: list[str], top_k: int = 5) -> dict:
    kiwi = cong_kiwi()
    morphemes = [content_morpheme(kiwi, w) for w in words]
    rows = []
    for word, m in zip(words, morphemes):
        found = _cong_call(lambda x: kiwi.most_similar_morphemes(x, top_n=top_k), m) if m else None
        rows.append({"word": word, "morpheme": f"{m[0]}/{m[1]}" if m else None,
                     "neighbours": None if found is None else
                     [{"form": s.form, "tag": s.tag, "score": round(float(s.score), DIGITS)} for s in found],
                     "note": "not in CoNg" if found is None else None})
    known = [r["neighbours"] is not None for r in rows]
    similarity = [[_similarity(kiwi, a, b) if ka and kb else None for b, kb in zip(morphemes, known)]
                  for a, ka in zip(morphemes, known)]
    return {"model": "CoNg", "words": rows, "similarity": similarity}


def _similarity(kiwi, a, b) -> float | None:
    value = _cong_call(kiwi.morpheme_similarity, a, b)
    return None if value is None else round(float(value), DIGITS)


# -- the terminal

def print_words(view: dict, console=None) -> None:
    """The view as rich tables: tokens and nearest tokens, then the cosine matrices."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    words = [r["word"] for r in view["words"]]
    table = Table(title=f"words (vocabulary {view['vocabulary']}, vectors of {view['dimension']})",
                  title_justify="left")
    for name in ("word", "tokens", "ids", "one-hot size", "nearest tokens (cosine)"):
        table.add_column(name)
    for r in view["words"]:
        near = ", ".join(f"{n['token']} {n['cosine']:.2f}" for n in r["nearest"])
        table.add_row(r["word"], " ".join(r["tokens"]) + (f"\n({r['pooled']})" if r["pooled"] else ""),
                      " ".join(map(str, r["ids"])), str(r["one_hot_size"]), near)
    console.print(table)
    console.print(_matrix("one-hot cosine", words, view["one_hot_cosine"], "different tokens are orthogonal"))
    console.print(_matrix("learned embedding cosine", words, view["learned_cosine"]))
    for note in view["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
    if view.get("kiwi"):
        _print_cong(view["kiwi"], words, console)


def _matrix(title: str, names: list[str], values: list[list[float | None]], caption: str | None = None):
    from rich.table import Table

    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("")
    for name in names:
        table.add_column(name, justify="right")
    for name, row in zip(names, values):
        table.add_row(name, *("–" if v is None else f"{v:.3f}" for v in row))
    return table


def _print_cong(cong: dict, words: list[str], console) -> None:
    from rich.table import Table

    table = Table(title="Kiwi CoNg neighbours", title_justify="left")
    for name in ("word", "morpheme", "nearest morphemes (score)"):
        table.add_column(name)
    for r in cong["words"]:
        near = r["note"] if r["neighbours"] is None else \
            ", ".join(f"{n['form']}/{n['tag']} {n['score']:.2f}" for n in r["neighbours"])
        table.add_row(r["word"], r["morpheme"] or "–", near)
    console.print(table)
    console.print(_matrix("Kiwi CoNg similarity", words, cong["similarity"]))
