"""Named small model configs, as plain data with every size spelled out.

This is the one table of every family's presets: a preset is a model family (a Hugging Face
model type, or a malmoi family: ``lstm``, ``ngram``) plus the keyword arguments of its config,
the tasks that train it, and the loop settings it was tuned with. The
vocabulary size and the special-token ids come from the tokenizer at build time
(``hf_config``), so one preset serves any tokenizer. All of them train on a CPU.

| name      | family  | layers    | width | heads | ffn  | params (16k vocab) |
| --------- | ------- | --------- | ----- | ----- | ---- | ------------------ |
| bert-tiny | BERT    | 2         | 128   | 2     | 512  | ~2.5 M             |
| bert-mini | BERT    | 4         | 256   | 4     | 1024 | ~7.4 M             |
| qa-mini   | BERT    | 2         | 128   | 2     | 512  | ~0.8 M (3k vocab)  |
| gpt-mini  | GPT-2   | 4         | 128   | 4     | 512  | ~2.8 M             |
| bart-mini | mBART   | 2 + 2     | 128   | 4     | 512  | ~1.6 M (4k vocab)  |

| name       | family      | input per character                                   | encoder          | output |
| ---------- | ----------- | ----------------------------------------------------- | ---------------- | ------ |
| bilstm-crf | char tagger | character, bigram, Kiwi part of speech, word position | 1-layer BiLSTM 128 | + 2^20 hashed window features → CRF |

| name          | family | encoder        | decoder | embeddings | attention            |
| ------------- | ------ | -------------- | ------- | ---------- | -------------------- |
| lstm          | LSTM   | 1-layer biLSTM | LSTM    | 128        | none                 |
| lstm-bahdanau | LSTM   | 1-layer biLSTM | LSTM    | 128        | Bahdanau (additive)  |
| lstm-luong    | LSTM   | 1-layer biLSTM | LSTM    | 128        | Luong (general)      |

| name        | family | members                                  | buckets | params  |
| ----------- | ------ | ---------------------------------------- | ------- | ------- |
| ngram       | n-gram | attention (4 × 32) + 2 × mean (16) + nb  | 2^22 ¹  | ~210 M  |
| ngram-small | n-gram | mean (16) + nb                           | 2^18 ¹  | ~4.7 M  |

¹ at most: training on fewer texts shrinks the table (``models.ngram.scaled_buckets``). ``ngram`` is the
classify task's default preset.

N-gram classifiers (``models/ngram.py``) are a malmoi family of their own: ``features`` holds the
featurizer's ``NgramConfig`` (``text/ngrams.py``), ``model`` the ``NgramClassifierConfig`` and
their ``train`` settings were tuned on NSMC.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from malmoi.errors import MalmoiError


@dataclass(frozen=True)
class Preset:
    """One named configuration."""

    name: str
    """The name users type (``--preset bert-mini``)."""
    model_type: str
    """The Hugging Face ``model_type`` (``bert``, ``gpt2``, ``bart``) or a malmoi family (``lstm``, ``ngram``)."""
    tasks: tuple[str, ...]
    """The tasks that train it (``classify``, ``seq2seq``, ``lm``, ``mlm``)."""
    config: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the config class, every size explicit."""
    doc: str = ""
    """One line for ``--help`` and the README."""
    train: dict[str, Any] = field(default_factory=dict)
    """Settings it was tuned with (``lr``, ``batch_size``, ``epochs``; a seq2seq preset also ``vocab_size``), used
    where the caller leaves them out."""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "bert-tiny", "bert", ("classify", "mlm", "qa", "tag"),
            dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                 max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
                 hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1),
            "BERT encoder, 2 layers x 128 wide: the fastest, for tests and quick demos",
        ),
        Preset(
            "bert-mini", "bert", ("classify", "mlm", "qa", "tag"),
            dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                 max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
                 hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1),
            "BERT encoder, 4 layers x 256 wide: the default classifier",
        ),
        Preset(
            "qa-mini", "bert", ("qa",),
            dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                 max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
                 hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1),
            "BERT encoder for extractive QA from scratch, 2 layers x 128 wide: the default reader",
            # KorQuAD (101 articles, 3 minutes, one thread; F1 on 28 held-out articles): token-id match flag
            # 9.6, character-bigram match levels 21.4, + a fifth of the unanswered windows 23.1, + a
            # character-sized vocabulary 22.9 in 104 instead of 165 steps (EM 8.3 against 7.0); + the wide match
            # count (data/qa_windows.py) 27.1. 15 minutes, one thread: 25.8 / 26.0 (seeds 42 / 7)
            train=dict(lr=1e-3, batch_size=32),
        ),
        Preset(
            "bilstm-crf", "bilstm-crf", ("tag",),
            dict(char_dim=128, bigram_dim=64, morph_dim=32, word_dim=8, hidden=128, layers=1, dropout=0.5, crf=True,
                 grams=1 << 20, gram_dropout=0.3),
            "BiLSTM over characters, character bigrams and Kiwi parts of speech, with hashed window features "
            "straight to a CRF: the default tagger",
            # KLUE-NER test entity F1 (benchmarks/ner.py, one thread): 5 minutes at lr 1e-2, dropout 0.3: the
            # window features alone 77.2 (CRFsuite over the same kind of features 76.9), with this BiLSTM 80.1;
            # 15 minutes at lr 1e-2 overfit (78.6 / 79.1 at seeds 42 / 7; + gram dropout 0.3, dropout 0.5 79.0,
            # + weight decay 0.1 78.3); lr 3e-3 with gram dropout 0.3 and dropout 0.5: 81.8 / 81.5
            train=dict(lr=3e-3, batch_size=32, epochs=12),
        ),
        Preset(
            "gpt-mini", "gpt2", ("lm",),
            dict(n_embd=128, n_layer=4, n_head=4, n_inner=512, n_positions=512, activation_function="gelu_new",
                 resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True),
            "GPT-2 decoder, 4 layers x 128 wide: causal language modelling",
            # 10 minutes on NSMC's unlabeled reviews (benchmarks/lm_quality.py): 4 x 256 with dropout at
            # batch 32, lr 1e-3 scored 3.485 nats/char; this shape, no dropout, lr 3e-3: batch 32 3.098,
            # batch 16 2.959, batch 8 2.879 (more, smaller steps win when the budget is short)
            train=dict(lr=3e-3, batch_size=8),
        ),
        Preset(
            "bart-mini", "mbart", ("seq2seq",),
            dict(d_model=128, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                 decoder_attention_heads=4, encoder_ffn_dim=512, decoder_ffn_dim=512,
                 max_position_embeddings=512, activation_function="gelu", dropout=0.1,
                 attention_dropout=0.0, activation_dropout=0.0, scale_embedding=False,
                 tie_word_embeddings=True, copy_attention=True, label_smoothing=0.1),
            "BART-style encoder-decoder with pre-norm (mBART) layers, 2+2 x 128 wide, copying from its source: "
            "transformer seq2seq",
            # embeddings scaled by √256 while tied to the output layer kept the decoder from reading its
            # source at all (a 4-word reversal stayed at the unigram loss; every chatbot question got one
            # answer): unscaled, as Hugging Face's BART, it learns the reversal in 150 steps
            # sae4k, 15 minutes on one thread (benchmarks/seq2seq_tasks.py, chrF / exact on 1,000 test pairs): post-norm
            # 3+3 x 256 answered every utterance with one of a few targets (4.5); pre-norm 3+3 x 256 at batch 64
            # 58.0 / 35.6% in 948 steps; this size at batch 32, lr 2e-3, 4,000 subwords 79.1 / 55.3% in 6,552 steps
            # (78.0 when measured again); + label smoothing 0.1: 79.5; + the copy distribution (models/bart.py):
            # 79.7, a validation chrF of 71 after 812 steps where without it 55
            train=dict(lr=2e-3, batch_size=32, epochs=10, vocab_size=4000),
        ),
        *(
            Preset(name, "lstm", ("seq2seq",),
                   dict(emb_dim=128, hidden=256, layers=1, bidirectional=True, dropout=0.2, attention=attention),
                   f"LSTM encoder-decoder (1-layer biLSTM encoder, 256 hidden), {doc}",
                   train=dict(lr=2e-3, batch_size=64, epochs=10))
            for name, attention, doc in [("lstm", "none", "no attention"),
                                         ("lstm-bahdanau", "bahdanau", "Bahdanau (additive) attention"),
                                         ("lstm-luong", "luong-general", "Luong (general) attention")]
        ),
        Preset(
            "retrieval", "retrieval", ("seq2seq",),
            # chosen on the chatbot data's held-out 10% (chrF): character 1-2-grams + jamo 2-3-grams 27.35,
            # character 1-3-grams 26.42 (scikit-learn's TF-IDF of them 25.23), + jamo 2-3-grams 26.96,
            # 1-4-grams 25.39, + words 25.88, + Kiwi morphemes 26.36, morpheme 1-2-grams alone 24.68
            dict(features=dict(buckets=1 << 20, chars=(1, 2), jamo=(2, 3), words=None), sublinear=True),
            "the answer of the most similar training question (TF-IDF over character and jamo n-grams): trains in seconds",
        ),
        Preset(
            "hybrid", "hybrid", ("seq2seq",),
            # reranking weights chosen on the chatbot data's held-out 10% at split seed 7 (chrF 27.41 → 28.86);
            # the generator answers only questions that share almost nothing with any training question
            dict(features=dict(buckets=1 << 20, chars=(1, 2), jamo=(2, 3), words=None), sublinear=True,
                 dual=dict(dim=64, epochs=5, batch_size=256, lr=0.01, scale=20.0), dual_share=0.25,
                 ranking=dict(candidates=10, answer_weight=0.3, question_weight=0.1, fallback_below=0.05),
                 generator="lstm-bahdanau"),
            "retrieved answers reranked by a dual encoder, an LSTM generator where nothing similar is found",
            train=dict(lr=2e-3, batch_size=64, epochs=10),
        ),
    ]
}


# n-gram presets: hashed character / jamo / word / morpheme n-grams, three differently pooled members
BASE_KINDS = ["chars", "joined", "words", "morphemes", "tagged"]
NGRAM_PRESETS = [
    Preset(
        "ngram", "ngram", ("classify",),
        dict(features=dict(buckets=1 << 22, chars=(1, 4), joined=(2, 4), jamo=(3, 5), words=(1, 2),
                           morphemes=(1, 3), tagged=(1, 2), tail_chars=(1, 4), tail_tagged=(1, 2)),
             model=dict(ngram_dropout=0.3, dropout=0.0, hidden=0, members=[
                 # attention over all n-grams of the plain kinds together
                 dict(pooling="attention", heads=4, dim=32, per_kind=False, kinds=BASE_KINDS, rows=1 << 21),
                 # fastText with each kind averaged apart, plus the text's ending …
                 dict(pooling="mean", dim=16, per_kind=True, kinds=BASE_KINDS + ["tail_chars", "tail_tagged"]),
                 # … and plus jamo
                 dict(pooling="mean", dim=16, per_kind=True, kinds=BASE_KINDS + ["jamo"]),
                 # NBSVM: a linear model over every distinct n-gram, scaled by its naive Bayes ratio
                 dict(pooling="nb"),
             ])),
        "three fastText-style members and an NBSVM member over hashed character, jamo, word and "
        "Kiwi-morpheme n-grams: the most accurate classifier in 10 CPU minutes",
        train=dict(lr=7e-3, batch_size=512, epochs=2),
    ),
    Preset(
        "ngram-small", "ngram", ("classify",),
        dict(features=dict(buckets=1 << 18, chars=(1, 4), joined=(2, 4), words=(1, 2), morphemes=None,
                           tagged=None),
             model=dict(ngram_dropout=0.3, dropout=0.0, hidden=0, members=[
                 dict(pooling="mean", dim=16, per_kind=True),
                 dict(pooling="nb"),
             ])),
        "a fastText and an NBSVM member over character and word n-grams, no Kiwi: small, instant to featurize",
        train=dict(lr=1e-2, batch_size=256, epochs=3),
    ),
]
PRESETS.update({p.name: p for p in NGRAM_PRESETS})


def preset_training(name: str) -> dict[str, Any]:
    """Settings a preset was tuned with (``lr``, ``batch_size``, ``epochs`` …); empty for some."""
    return dict(get_preset(name).train)


def presets_for(task: str) -> list[str]:
    """The names of the presets ``task`` trains, in table order."""
    return [name for name, p in PRESETS.items() if task in p.tasks]


def get_preset(name: str, task: str | None = None) -> Preset:
    """The preset called ``name``; with ``task``, refused unless that task trains it."""
    names = presets_for(task) if task else list(PRESETS)
    if name not in names:
        what = f"{task} preset" if task else "preset"
        raise MalmoiError("E220", f"unknown {what} {name!r}; choose one of: {', '.join(names)}")
    return PRESETS[name]


def presets_help(task: str, sep: str = "; ") -> str:
    """One line per preset of ``task`` with the loop settings it was tuned with, for ``--help``,
    joined by ``sep``."""
    def line(p: Preset) -> str:
        tuned = ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in p.train.items())
        return f"{p.name}: {p.doc}" + (f" ({tuned})" if tuned else "")

    return sep.join(line(PRESETS[name]) for name in presets_for(task))


def hf_config(name: str, *, vocab_size: int, pad_token_id: int | None = None, bos_token_id: int | None = None,
              eos_token_id: int | None = None, decoder_start_token_id: int | None = None, **overrides: Any):
    """The ``transformers`` config of a preset, sized for a tokenizer; ``overrides`` replace preset fields
    (tests use them to shrink a model to hidden size 32)."""
    from transformers import AutoConfig

    preset = get_preset(name)
    if preset.model_type not in ("bert", "gpt2", "bart", "mbart"):
        raise MalmoiError("E221", f"preset {name!r} is a {preset.model_type} model, not a transformers config")
    ids = dict(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
               decoder_start_token_id=decoder_start_token_id)
    kwargs = {**preset.config, **{k: v for k, v in ids.items() if v is not None}, **overrides}
    return AutoConfig.for_model(preset.model_type, vocab_size=vocab_size, **kwargs)


def max_positions(config) -> int:
    """The longest input a config's position embeddings allow."""
    for key in ("max_position_embeddings", "n_positions"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    return 1 << 16


def check_max_length(config, max_length: int) -> None:
    """Refuse a ``--max-length`` longer than the model's position embeddings."""
    limit = max_positions(config)
    if max_length > limit:
        raise MalmoiError("E222", f"--max-length {max_length} exceeds the model's {limit} positions")
