"""The project's own small Korean sample sets, written for malmoi (no third-party text).

They are what `make demo` and the fast tests train on:

| name | file | contents |
| --- | --- | --- |
| reviews | reviews.tsv | 616 movie-review-style sentences; columns id, document, label (0 negative, 1 positive) |
| chatbot | chatbot.csv | 217 question/answer pairs; columns Q, A, label (0 everyday, 1 sad/break-up, 2 love/positive) |
| corpus | corpus.txt | 1,154 sentences, one per line, for language-model and MLM demos |
| entities | entities.tsv | 320 sentences tagged character by character (KLUE-NER format, BIO): people PS, places LC, organisations OG, dates DT, times TI, quantities QT |
"""
from __future__ import annotations

from pathlib import Path

from malmoi.errors import MalmoiError

FOLDER = Path(__file__).resolve().parent

SAMPLES: dict[str, str] = {
    "reviews": "reviews.tsv",
    "chatbot": "chatbot.csv",
    "corpus": "corpus.txt",
    "entities": "entities.tsv",
}


def sample_path(name: str) -> Path:
    """Path of a bundled sample file by name (``reviews``, ``chatbot``, ``corpus`` or ``entities``)."""
    if name not in SAMPLES:
        raise MalmoiError("E242", f"no bundled sample {name!r}; samples are: {', '.join(SAMPLES)}")
    return FOLDER / SAMPLES[name]
