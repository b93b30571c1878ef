"""Compressing an n-gram classifier run (``models/compact.py``, ``models/compact_rows.py``)."""
from __future__ import annotations

DEFAULT_BITS = 8
"""Bits for a --target-size without --bits (see ``benchmarks/compact.py``)."""


def compress_ngram(classifier, split, target: int | None, bits: int | None, say):
    """(compact model, bits, rows kept per member) of a classifier run's ``NgramClassifier``: the
    largest share of rows that fits ``target`` bytes, or every row the training texts hold; given
    neither, what training exports (the smallest share that keeps the validation accuracy)."""
    from malmoi.models.compact import compact_model
    from malmoi.models.compact_rows import Ranking, fit_share, row_counts, row_scores

    model = classifier.model
    if target is None and bits is None:
        return _as_training_does(classifier, split, say)
    counts = None
    if split is not None:
        say(f"counting which table rows the {len(split.train_texts)} training texts hold")
        counts = row_counts(model, classifier.tokenizer.encode(split.train_texts))
    ranking = Ranking(row_scores(model, counts))
    bits = bits or min(DEFAULT_BITS, model.storage_bits)
    share = fit_share(model, ranking, bits, target) if target is not None else 1.0
    masks = ranking.masks(share)
    return compact_model(model, masks, bits), bits, [int(m.sum()) for m in masks]


def _as_training_does(classifier, split, say):
    from malmoi.data.batching import PadCollator
    from malmoi.models.ngram import NgramDataset
    from malmoi.tasks.classify import compact_for_export

    say(f"featurizing {len(split.train_texts)} training and {len(split.valid_texts)} validation texts")
    train = NgramDataset(classifier.tokenizer, split.train_texts)
    valid = NgramDataset(classifier.tokenizer, split.valid_texts, split.valid_ids)
    small, record = compact_for_export(classifier.model, train, valid, PadCollator(pad_id=0), say)
    return small, record["bits"], record["kept"]
