"""Subword tokenizers: train WordPiece, BPE or Unigram with `tokenizers`, use them through `transformers`.

The result is a ``transformers.PreTrainedTokenizerFast``; saved, it is a folder that
``AutoTokenizer.from_pretrained(folder)`` loads offline.

One scheme for every kind
    ids 0‒4 are ``[PAD]`` ``[UNK]`` ``[CLS]`` ``[SEP]`` ``[MASK]``. ``[CLS]`` doubles as the BOS
    token and ``[SEP]`` as the EOS token (``bos_token_id == cls_token_id``,
    ``eos_token_id == sep_token_id``), so every encoded sentence reads ``bos … eos``: BERT sees
    ``[CLS] a [SEP] b [SEP]`` (``token_type_ids`` 0 for a, 1 for b), a GPT-style model learns to
    end with ``[SEP]`` and ``generate()`` stops there, a BART-style decoder starts from it.
    Models that take no ``token_type_ids`` (BART, LSTM) call the tokenizer with
    ``return_token_type_ids=False``.

Normalisation is NFC (and every whitespace character becomes a space): no lower-casing and
never accent stripping (BERT's accent stripping runs NFD, which decomposes Hangul syllables
into jamo), so decomposed-jamo input encodes exactly like composed syllables.

How each kind cuts words and what ``decode`` gives back
    * ``wordpiece``: splits on whitespace and punctuation; continuation pieces carry ``##``.
      Decoding joins ``##`` pieces and puts a space between words, then removes the space before
      ``. , ! ?`` and the like; it cannot reproduce spacing exactly (``"(영화)"`` decodes as
      ``"( 영화 )"``, and a space the writer put before ``!`` is lost).
    * ``bpe`` and ``unigram``: Metaspace, i.e. each space becomes ``▁`` in front of the next
      word, so decoding gives the original spacing back (double spaces included); only tabs and
      newlines come back as spaces, and leading whitespace may lose one space.
    * ``morphemes=True``: texts are first cut at Kiwi morpheme boundaries inside words
      (``words.mark_morpheme_boundaries``) and no subword crosses a boundary. BPE and Unigram
      still decode the original spacing; WordPiece puts a space between morphemes
      (``"나 는 너 를"``). The cut happens in Python before the Rust tokenizer, so
      ``load_tokenizer(folder)`` returns a ``MorphemeTokenizerFast`` that cuts every text it
      encodes; a plain ``AutoTokenizer.from_pretrained(folder)`` loads the same vocabulary but
      does not cut (callers then pass ``mark_morpheme_boundaries(texts)`` themselves). Offsets
      refer to the marked text. The folder's ``tokenizer_config.json`` records
      ``"malmoi_morphemes": true``.
"""
from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import Sequence

from transformers import PreTrainedTokenizerFast

from malmoi.errors import MalmoiError
from malmoi.files import atomic_dir, atomic_write_json
from malmoi.text.words import MORPHEME_MARK, mark_morpheme_boundaries

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
"""In id order: ``[PAD]`` is 0."""
KINDS = ("wordpiece", "bpe", "unigram")
MODEL_INPUT_NAMES = ["input_ids", "token_type_ids", "attention_mask"]
MIN_VOCAB = len(SPECIAL_TOKENS) + 10


def _backend(kind: str, morphemes: bool):
    """An untrained `tokenizers.Tokenizer` for ``kind`` and its trainer class."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers import Regex

    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
        words = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
        trainer = trainers.WordPieceTrainer
    else:
        if kind == "bpe":
            tok = Tokenizer(models.BPE(unk_token="[UNK]", fuse_unk=True))
            trainer = trainers.BpeTrainer
        else:
            tok = Tokenizer(models.Unigram())
            trainer = trainers.UnigramTrainer
        words = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    # Tabs and newlines become spaces: Metaspace only knows " ", and would glue the words together.
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s"), " ")])
    if morphemes:
        # Cut at the marks after the word split, so ▁ still marks only real word starts.
        cut = pre_tokenizers.Split(Regex(MORPHEME_MARK), behavior="removed")
        tok.pre_tokenizer = pre_tokenizers.Sequence([words, cut])
    else:
        tok.pre_tokenizer = words
    return tok, trainer


def _trainer(trainer_cls, kind: str, vocab_size: int, min_frequency: int, show_progress: bool,
             first: Sequence[str] = ()):
    """``first``: tokens placed right after the special tokens, in this order (see ``_train_backend``)."""
    common = dict(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS) + list(first),
                  show_progress=show_progress)
    if kind == "unigram":
        return trainer_cls(unk_token="[UNK]", max_piece_length=16, **common)
    return trainer_cls(min_frequency=min_frequency, **common)


# The same texts must give the same tokenizer in every process. The Rust trainers count words in a
# hash map whose order is random in each process, and what that order decides is made canonical here:
# * WordPiece numbers the characters in code point order but the continuation pieces (``##가``) after
#   them in the order it meets the words, and merges of equal counts go to the pair of smaller ids,
#   so each process merged a different choice of the ties. The trainer now gets the characters and
#   then every continuation piece, each in code point order, as extra special tokens (ids right after
#   the five specials, where it would put them itself), dropped from the added tokens after.
# * BPE (no prefix) numbers its alphabet in code point order before any merge, so its ties already
#   break the same way everywhere.
# * Unigram sums its EM statistics in the map's order (scores differ in the last bits, up to ~1e-11)
#   and gives the characters it must keep but had pruned the scores min + k · 0.0001 in that order.
#   Those characters get the same scores in code point order, scores are rounded to 1e-5, and the
#   pieces are ordered by (score, piece).

_WHITE_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
                         + "".join(map(chr, range(0x2000, 0x200B))))
"""Unicode White_Space, where the normaliser puts spaces and the WordPiece pre-tokenizer cuts."""
UNIGRAM_DIGITS = 5
"""Decimals a trained Unigram score keeps."""
_UNIGRAM_PENALTY = 0.0001
"""tokenizers' UnigramTrainer: the k-th character put back gets the model's lowest score + k times this."""


def _word_cut(c: str, morphemes: bool) -> bool:
    """Whether the WordPiece pre-tokenizer ends a word at ``c``: whitespace and with ``morphemes`` the
    morpheme mark (removed), BERT punctuation (a word of its own: ASCII punctuation and category P*)."""
    o = ord(c)
    return (c in _WHITE_SPACE or (morphemes and c == MORPHEME_MARK) or 33 <= o <= 47 or 58 <= o <= 64
            or 91 <= o <= 96 or 123 <= o <= 126 or unicodedata.category(c).startswith("P"))


def _wordpiece_alphabet(texts: Sequence[str], morphemes: bool, chunk: int = 50000) -> tuple[list[str], list[str]]:
    """(characters, ``"##" + c`` for every character ``c`` that follows another inside a word), each in
    code point order: the pieces the WordPiece trainer starts from, words cut as it cuts them (NFC,
    then whitespace and punctuation)."""
    import numpy as np

    cut: dict[int, bool] = {}
    chars: set[int] = set()
    inner: set[int] = set()
    for start in range(0, len(texts), chunk):
        text = "\n".join(unicodedata.normalize("NFC", t) for t in texts[start:start + chunk])
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        present = np.flatnonzero(np.bincount(codes)).tolist()
        if not present:
            continue
        for c in present:
            if c not in cut:
                cut[c] = _word_cut(chr(c), morphemes)
        chars.update(present)
        is_cut = np.zeros(present[-1] + 1, dtype=bool)
        is_cut[[c for c in present if cut[c]]] = True
        in_word = ~is_cut[codes]
        inner.update(np.flatnonzero(np.bincount(codes[1:][in_word[1:] & in_word[:-1]])).tolist())
    removed = {c for c in chars if cut[c] and (chr(c) in _WHITE_SPACE or chr(c) == MORPHEME_MARK)}
    return [chr(c) for c in sorted(chars - removed)], ["##" + chr(c) for c in sorted(inner)]


def _canonical_unigram(model: dict) -> None:
    """Make a trained Unigram model's vocabulary (``[[piece, score], …]``, specials first) independent
    of the trainer's hash-map order: see the note above."""
    specials, pieces = model["vocab"][:len(SPECIAL_TOKENS)], model["vocab"][len(SPECIAL_TOKENS):]
    if not pieces:
        return
    low = min(score for _, score in pieces)
    penalties, penalty = [], 0.0
    for _ in pieces:  # the trainer's own float arithmetic
        penalties.append(low + penalty)
        penalty += _UNIGRAM_PENALTY

    def put_back(piece: str, score: float) -> bool:
        k = round((score - low) / _UNIGRAM_PENALTY)
        return len(piece) == 1 and 0 <= k < len(penalties) and abs(score - penalties[k]) < 1e-7

    scores = dict(pieces)
    chars = sorted(piece for piece, score in pieces if put_back(piece, score))
    scores.update(zip(chars, sorted((scores[c] for c in chars), reverse=True)))
    ranked = sorted(((round(score, UNIGRAM_DIGITS), piece) for piece, score in scores.items()),
                    key=lambda sp: (-sp[0], sp[1]))
    model["vocab"] = specials + [[piece, score] for score, piece in ranked]


def _train_backend(texts: Sequence[str], kind: str, vocab_size: int, morphemes: bool, min_frequency: int,
                   show_progress: bool):
    """A trained `tokenizers.Tokenizer` (no post-processor yet), the same in every process."""
    from tokenizers import Tokenizer

    alphabet, continuations = _wordpiece_alphabet(texts, morphemes) if kind == "wordpiece" else ([], [])
    for _ in range(2):
        first = alphabet + continuations
        tok, trainer_cls = _backend(kind, morphemes)
        trainer = _trainer(trainer_cls, kind, vocab_size, min_frequency, show_progress, first)
        tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
        if kind != "wordpiece":
            break
        # A continuation the scan missed (a character Rust classifies differently) got a random id: again.
        missed = {t for t in tok.get_vocab() if len(t) == 3 and t.startswith("##")} - set(continuations)
        if not missed:
            break
        continuations = sorted(set(continuations) | missed)
    if kind == "bpe":
        return tok
    data = json.loads(tok.to_str())
    if first:
        dropped = set(first)
        data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in dropped]
    if kind == "unigram":
        _canonical_unigram(data["model"])
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def _post_processor(tok):
    from tokenizers import processors

    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    return processors.TemplateProcessing(
        single="[CLS] $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )


def _check_args(texts: Sequence[str], kind: str, vocab_size: int) -> None:
    if kind not in KINDS:
        raise MalmoiError("E210", f"unknown tokenizer kind {kind!r}; choose one of: {', '.join(KINDS)}")
    if vocab_size < MIN_VOCAB:
        raise MalmoiError("E211", f"vocab size {vocab_size} is too small; use at least {MIN_VOCAB}")
    if not any(t.strip() for t in texts):
        raise MalmoiError("E102", "no non-empty texts to train a tokenizer on")


def train_tokenizer(
    texts: Sequence[str],
    kind: str = "wordpiece",
    vocab_size: int = 16000,
    morphemes: bool = False,
    out: str | os.PathLike | None = None,
    show_progress: bool = False,
    min_frequency: int = 2,
    model_max_length: int = 512,
):
    """Train a ``kind`` tokenizer of at most ``vocab_size`` tokens on ``texts``.

    ``morphemes=True`` cuts the texts at Kiwi morpheme boundaries first (batched) and returns a
    ``MorphemeTokenizerFast`` that cuts at encode time too (see the module doc for spacing).
    ``out`` saves the folder atomically (an existing one is replaced). ``min_frequency`` applies
    to WordPiece and BPE merges; ``model_max_length`` is what ``truncation=True`` cuts to.
    The same texts and settings give the same files in every process (``_train_backend``).

    >>> tok = train_tokenizer(["나는 너를 좋아해"] * 4, kind="bpe", vocab_size=60)
    >>> tok.decode(tok("나는 너를 좋아해")["input_ids"], skip_special_tokens=True)
    '나는 너를 좋아해'
    """
    texts = list(texts)
    _check_args(texts, kind, vocab_size)
    if morphemes:
        texts = mark_morpheme_boundaries(texts, show_progress=show_progress)
    tok = _train_backend(texts, kind, vocab_size, morphemes, min_frequency, show_progress)
    tok.post_processor = _post_processor(tok)

    cls = MorphemeTokenizerFast if morphemes else PreTrainedTokenizerFast
    fast = cls(
        tokenizer_object=tok,
        pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
        bos_token="[CLS]", eos_token="[SEP]",
        model_input_names=list(MODEL_INPUT_NAMES),
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,  # the decoders already place spaces; cleanup would eat real ones
        malmoi_kind=kind,
        malmoi_morphemes=morphemes,
    )
    if out is not None:
        with atomic_dir(out) as tmp:
            fast.save_pretrained(tmp)
    return fast


def _morpheme_cut(text, keep: Sequence[str]):
    """Mark morpheme boundaries in a text, a batch of texts or of pairs (never inside ``keep``);
    leave anything else (pre-split words) as it is."""
    if isinstance(text, str):
        return mark_morpheme_boundaries([text], keep=keep)[0]
    if isinstance(text, (list, tuple)) and text and all(isinstance(t, str) for t in text):
        return mark_morpheme_boundaries(list(text), keep=keep)
    if isinstance(text, (list, tuple)) and text and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(t, str) for t in p) for p in text):
        flat = mark_morpheme_boundaries([t for p in text for t in p], keep=keep)  # a batch of pairs
        return list(zip(flat[0::2], flat[1::2]))
    return text


class MorphemeTokenizerFast(PreTrainedTokenizerFast):
    """A fast tokenizer trained with ``morphemes=True``: it cuts texts at Kiwi morpheme
    boundaries before encoding. Saved, it loads as a plain fast tokenizer (without the cut)
    through ``AutoTokenizer`` and as itself through ``load_tokenizer``.

    Every encoding path of transformers 5 (``__call__``, ``encode``, ``tokenize``) goes through
    ``_encode_plus``, which is where the cut happens; pre-split input
    (``is_split_into_words=True``) is taken as it is."""

    def _encode_plus(self, text, text_pair=None, *args, is_split_into_words=False, **kwargs):
        if not is_split_into_words:
            keep = self.all_special_tokens  # "[MASK]" in a text must stay one piece
            text, text_pair = _morpheme_cut(text, keep), _morpheme_cut(text_pair, keep)
        return super()._encode_plus(text, text_pair, *args, is_split_into_words=is_split_into_words, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        files = super().save_pretrained(save_directory, *args, **kwargs)
        # Name the stock class, so that AutoTokenizer needs no malmoi code to load the folder.
        config_file = Path(save_directory) / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config["tokenizer_class"] = "TokenizersBackend"
        config["malmoi_morphemes"] = True
        atomic_write_json(config_file, config)
        return files


def load_tokenizer(folder: str | os.PathLike):
    """The tokenizer saved in ``folder`` (a tokenizer folder or a run directory), offline.

    A tokenizer trained with ``morphemes=True`` comes back as ``MorphemeTokenizerFast``."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not folder.is_dir():
        raise MalmoiError("E410", f"tokenizer folder not found: {folder}")
    config_file = folder / "tokenizer_config.json"
    if not (folder / "tokenizer.json").is_file() and not config_file.is_file():
        raise MalmoiError("E411", f"{folder} holds no tokenizer (no tokenizer.json or tokenizer_config.json)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        if config.get("malmoi_morphemes"):
            return MorphemeTokenizerFast.from_pretrained(str(folder), local_files_only=True)
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except MalmoiError:
        raise
    except Exception as e:  # json, OSError, ValueError from transformers: one line for the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MalmoiError("E411", f"cannot load the tokenizer in {folder}: {first}") from None

