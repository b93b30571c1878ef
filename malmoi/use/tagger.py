"""A trained tagger run: the entities of new texts as character spans, and scores on tagged sentences.

A character tagger reads every character of a text; an encoder tagger reads subword tokens, in
overlapping windows when a text is longer than its ``max_length``, each token taking the prediction
of the window where it sits farthest from an edge. Either way the tags come back one per character
of the input, so an entity is ``text[start:end]``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from malmoi.data.tagging import TaggedText, entities
from malmoi.errors import MalmoiError
from malmoi.runs import read_meta
from malmoi.use.results import EntitySpan, Tagging

MAX_CHARS = 20_000
"""The longest text ``tag`` takes: longer ones are refused rather than left to exhaust memory."""


def _checked_texts(texts: str | Sequence[str]) -> list[str]:
    texts = [texts] if isinstance(texts, str) else list(texts)
    for t in texts:
        if not isinstance(t, str):
            raise MalmoiError("E404", f"texts must be strings, got {type(t).__name__}")
        if not t.strip():
            raise MalmoiError("E235", "a text to tag is empty")
        if len(t) > MAX_CHARS:
            raise MalmoiError("E235", f"a text to tag has {len(t)} characters; the most is {MAX_CHARS}")
    return texts


class Tagger:
    """A trained tagger with its featurizer (or tokenizer), labels and scheme, loaded from a run."""

    def __init__(self, model, features, labels: Sequence[str], scheme: str, max_length: int, run: Path | None = None):
        self.model = model.eval()
        self.features = features
        self.labels = list(labels)
        self.scheme = scheme
        self.max_length = max_length
        self.run = run

    @property
    def tokenizer(self):
        return self.features

    @classmethod
    def from_run(cls, run: str | os.PathLike) -> "Tagger":
        from malmoi.models.tagger import CONFIG_FILE, HEAD_FILE, load_tagger
        from malmoi.text.char_features import CharFeaturizer, is_char_featurizer_folder

        run = Path(run)
        meta = read_meta(run)
        if meta.get("task") != "tag":
            raise MalmoiError("E486", f"{run} holds a {meta.get('task')!r} model, not a tagger")
        if not any((run / f).is_file() for f in (CONFIG_FILE, HEAD_FILE)):  # written last when a model is saved
            raise MalmoiError("E406", f"{run} has no trained model yet (training did not finish; use --resume)")
        if is_char_featurizer_folder(run):
            features = CharFeaturizer.from_pretrained(run)
        else:
            from malmoi.text.subword import load_tokenizer

            features = load_tokenizer(run)
        model = load_tagger(run)
        if list(model.labels) != list(meta["labels"]):
            raise MalmoiError("E407", f"{run}: malmoi.json lists tags {meta['labels']}, the model has {model.labels}")
        return cls(model, features, meta["labels"], meta.get("scheme", "BIO"), int(meta.get("max_length", 256)), run)

    @property
    def char_model(self) -> bool:
        """Whether the tagger reads characters (``bilstm-crf``) rather than subword tokens."""
        from malmoi.text.char_features import CharFeaturizer

        return isinstance(self.features, CharFeaturizer)

    @torch.inference_mode()
    def tag(self, texts: str | Sequence[str], batch_size: int = 32) -> list[Tagging]:
        """One ``Tagging`` per text (a single string counts as one text)."""
        texts = _checked_texts(texts)
        per_char = self._char_tags_and_scores(texts, batch_size)
        out = []
        for text, (tags, scores) in zip(texts, per_char):
            found = [EntitySpan(text[e.start:e.end], e.type, e.start, e.end,
                                round(sum(scores[e.start:e.end]) / (e.end - e.start), 4)) for e in entities(tags)]
            out.append(Tagging(text, found, tags))
        return out

    def evaluate(self, sentences: Sequence[TaggedText], batch_size: int = 32):
        """``EntityReport`` (entity precision/recall/F1, per type, KLUE character F1) on tagged sentences."""
        from malmoi.training.entity_metrics import entity_report

        texts = [s.text for s in sentences]
        predicted = [tags for tags, _ in self._char_tags_and_scores(_checked_texts(texts), batch_size)]
        return entity_report(texts, [s.tags for s in sentences], predicted)

    def _char_tags_and_scores(self, texts: list[str], batch_size: int) -> list[tuple[list[str], list[float]]]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = [texts[i] for i in idx]
            results = self._char_batch(batch) if self.char_model else [self._encoder_text(t) for t in batch]
            for i, r in zip(idx, results):
                out[i] = r
        return out

    def _char_batch(self, texts: list[str]) -> list[tuple[list[str], list[float]]]:
        from malmoi.data.tag_datasets import CharTagCollator

        items = [dict(f, attention_mask=[1] * len(f["chars"])) for f in self.features.encode_many(texts)]
        batch = CharTagCollator()(items)
        logits = self.model(**batch).logits
        paths = self.model.best_paths(logits, batch["attention_mask"])
        probs = logits.softmax(-1)
        return [([self.labels[j] for j in path], probs[row, torch.arange(len(path)), path].tolist())
                for row, path in enumerate(paths)]

    def _encoder_text(self, text: str) -> tuple[list[str], list[float]]:
        """Tags of one text's characters from the token predictions of its windows."""
        from malmoi.data.tag_datasets import char_tags_from_tokens

        enc = self.features(text, truncation=True, max_length=self.max_length, stride=self.max_length // 4,
                            return_overflowing_tokens=True, return_offsets_mapping=True, padding=True,
                            return_tensors="pt")
        inputs = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        probs = self.model(**inputs).logits.softmax(-1)
        best: dict[tuple[int, int], tuple[int, int, float]] = {}  # offset → (distance to an edge, label, p)
        for w, offsets in enumerate(enc["offset_mapping"].tolist()):
            n = int(enc["attention_mask"][w].sum())
            for k, (s, e) in enumerate(offsets[:n]):
                if e <= s:
                    continue
                p, label = probs[w, k].max(-1)
                central = min(k, n - 1 - k)
                if (s, e) not in best or central > best[(s, e)][0]:
                    best[(s, e)] = (central, int(label), float(p))
        spans = sorted(best)
        tags = char_tags_from_tokens(text, spans, [self.labels[best[o][1]] for o in spans], self.scheme)
        scores = [1.0] * len(text)
        for o in spans:
            for c in range(o[0], o[1]):
                scores[c] = best[o][2]
        return tags, scores
