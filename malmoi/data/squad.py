"""SQuAD v1.1 files (KorQuAD 1.0 uses the format) → articles → question-answering examples.

    {"version": …, "data": [{"title": …, "paragraphs": [{"context": …,
        "qas": [{"id": …, "question": …, "answers": [{"text": …, "answer_start": 17}]}]}]}]}

Every answer is checked against its context (``context[start:start + len(text)] == text``), so a
model never trains on a span that points elsewhere. Held-out splits are by article
(``split_articles``), seeded, at run time: KorQuAD's licence allows sharing only the unchanged
file, so a re-split copy is never written.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from typing import Any, Sequence

from malmoi.errors import MalmoiError


@dataclass(frozen=True)
class SquadAnswer:
    """One gold answer: its text and where it starts in the context (characters)."""

    text: str
    start: int

    @property
    def end(self) -> int:
        """One past the answer's last character."""
        return self.start + len(self.text)


@dataclass(frozen=True)
class SquadExample:
    """One question about one context, with its gold answers (empty for a file read without them)."""

    id: str
    title: str
    context: str
    question: str
    answers: tuple[SquadAnswer, ...]


@dataclass(frozen=True)
class SquadArticle:
    """One article: its title and the examples of all its paragraphs, in file order."""

    title: str
    examples: tuple[SquadExample, ...]


def _field(obj: Any, key: str, kind: type, where: str, path) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get(key), kind):
        what = getattr(kind, "__name__", "text")
        raise MalmoiError("E131", f"{path}: {where} has no {what} field {key!r}; expected SQuAD v1.1 JSON "
                                  "(data → paragraphs → context, qas → id, question, answers)")
    return obj[key]


def _answers(qa: dict, context: str, qid: str, path, need_answers: bool) -> tuple[SquadAnswer, ...]:
    answers = []
    for a in qa.get("answers") or []:
        text = _field(a, "text", str, f"an answer of question {qid!r}", path)
        start = _field(a, "answer_start", int, f"an answer of question {qid!r}", path)
        if context[start:start + len(text)] != text or not text:
            found = context[max(0, start):start + len(text)]
            raise MalmoiError("E133", f"{path}: question {qid!r}: answer {text!r} is not at answer_start {start} "
                                      f"of its context (found {found!r})")
        answers.append(SquadAnswer(text, start))
    if need_answers and not answers:
        raise MalmoiError("E132", f"{path}: question {qid!r} has no answers; a training file needs at least one "
                                  "per question")
    return tuple(answers)


def parse_squad(doc: Any, path: str | os.PathLike = "<json>", need_answers: bool = True) -> list[SquadArticle]:
    """The articles of a parsed SQuAD v1.1 document; ``need_answers`` refuses questions without answers."""
    articles = []
    for i, article in enumerate(_field(doc, "data", list, "the top level", path)):
        title = str(article.get("title", "")) if isinstance(article, dict) else ""
        examples = []
        for paragraph in _field(article, "paragraphs", list, f"article {i}", path):
            context = _field(paragraph, "context", str, f"a paragraph of article {i}", path)
            for qa in _field(paragraph, "qas", list, f"a paragraph of article {i}", path):
                qid = str(_field(qa, "id", (str, int), f"a question of article {i}", path))
                question = _field(qa, "question", str, f"question {qid!r}", path)
                examples.append(SquadExample(qid, title, context, question,
                                             _answers(qa, context, qid, path, need_answers)))
        articles.append(SquadArticle(title, tuple(examples)))
    if not any(a.examples for a in articles):
        raise MalmoiError("E102", f"{path} holds no questions")
    return articles


def read_squad(path: str | os.PathLike, need_answers: bool = True) -> list[SquadArticle]:
    """The articles of a SQuAD v1.1 / KorQuAD 1.0 JSON file."""
    from malmoi.data.readers import _read_text

    text = _read_text(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise MalmoiError("E130", f"{path}: not JSON (line {e.lineno}: {e.msg}); expected SQuAD v1.1 JSON") from None
    return parse_squad(doc, path, need_answers)


def examples_of(articles: Sequence[SquadArticle]) -> list[SquadExample]:
    """Every example of ``articles``, in order."""
    return [ex for article in articles for ex in article.examples]


def split_articles(articles: Sequence[SquadArticle], fraction: float,
                   seed: int) -> tuple[list[SquadArticle], list[SquadArticle]]:
    """(train, valid): a seeded ``fraction`` of the articles held out whole, so that no context is
    seen on both sides; both keep the file's order."""
    from malmoi.data.splits import held_out_count

    if len(articles) < 2:
        raise MalmoiError("E134", f"{len(articles)} article cannot be split by article; pass --valid FILE")
    held = set(random.Random(seed).sample(range(len(articles)), held_out_count(len(articles), fraction)))
    return ([a for i, a in enumerate(articles) if i not in held], [a for i, a in enumerate(articles) if i in held])
