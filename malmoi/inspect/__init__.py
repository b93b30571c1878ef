"""``malmoi inspect``: every stage of one sentence through a trained run, as one record.

    text.py        words, morphemes, tokens, ids/type ids/mask, spans     tokens.py      the token view
    embeddings.py  token vectors and nearest tokens                       transformer.py layers, attention, logit lens
    classifier.py  [CLS] → logits → softmax, gradient × input             ngram.py       n-gram contributions
    gpt.py         generation steps and sampling effects                  seq2seq.py     LSTM and BART decoding
    record.py      the record (``schema.json``)                           terminal.py    rich tables

    from malmoi.inspect import inspect_text
    record = inspect_text(malmoi.load("runs/nsmc"), "정말 재밌어요")
"""
from malmoi.inspect.record import SCHEMA_VERSION, family_of, inspect_text

__all__ = ["inspect_text", "family_of", "SCHEMA_VERSION"]
