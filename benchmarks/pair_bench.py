"""What the benchmarks on (source, target) pairs share: the scores of a list of answers, the TF-IDF
retrieval baseline, and training one malmoi preset (seq2seq, or ``lm:PRESET`` for a chat GPT) on
training pairs."""
from __future__ import annotations

import contextlib
import csv
import tempfile
from collections import Counter
from pathlib import Path


def answer_stats(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """BLEU, chrF, ROUGE-L, exact match, distinct-1/2 and the top-5 share of answers against raw references."""
    from malmoi.training.text_metrics import text_scores

    words = [h.split() for h in hypotheses]
    unigrams = [w for ws in words for w in ws]
    bigrams = [tuple(ws[i:i + 2]) for ws in words for i in range(len(ws) - 1)]
    top5 = {a for a, _ in Counter(hypotheses).most_common(5)}
    return {**text_scores(hypotheses, references),
            "distinct1": len(set(unigrams)) / max(1, len(unigrams)),
            "distinct2": len(set(bigrams)) / max(1, len(bigrams)),
            "top5_share": sum(h in top5 for h in hypotheses) / max(1, len(hypotheses))}


def tfidf_baseline(train_sources: list[str], train_targets: list[str], sources: list[str]) -> list[str]:
    """The target of the most similar training source: scikit-learn TF-IDF over character 1-3-grams, cosine."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    x = vectorizer.fit_transform(train_sources)
    best = (vectorizer.transform(sources) @ x.T).toarray().argmax(1)
    return [train_targets[j] for j in best]


def write_pairs(path: Path, source: str, target: str, sources: list[str], targets: list[str]) -> Path:
    """A CSV of the pairs (quoted where needed), for a task that reads its training pairs from a file."""
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([(source, target), *zip(sources, targets)])
    return path


def train_on_pairs(preset: str, data: Path, source: str, target: str, out: Path, **options):
    """``malmoi.train`` of a seq2seq preset on ``data``, or of a chat GPT (``train lm --source --target``)
    for ``lm:PRESET``."""
    import malmoi

    if preset.startswith("lm:"):
        return malmoi.train(task="lm", data=data, source=source, target=target, out=out, preset=preset[3:],
                            **options)
    return malmoi.train(task="seq2seq", data=data, source=source, target=target, out=out, preset=preset, **options)


def print_side_by_side(sources: list[str], references: list[str], answers: dict[str, list[str]], show: int) -> None:
    """The first ``show`` sources with their reference and every model's answer."""
    for i in range(min(show, len(sources))):
        print(f"\n{sources[i]}\n   reference: {references[i]}")
        for name, hyp in answers.items():
            print(f"   {name}: {hyp[i]}")


def add_runs_option(parser) -> None:
    parser.add_argument("--runs", type=Path, default=None,
                        help="keep the trained runs in this new folder (to try other decodings on them later); "
                             "by default they go to a temporary folder")


@contextlib.contextmanager
def runs_folder(runs: Path | None):
    """Where the benchmark's runs go: ``runs`` (created, kept) or a temporary folder removed afterwards."""
    if runs is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
    else:
        runs.mkdir(parents=True)
        yield runs
