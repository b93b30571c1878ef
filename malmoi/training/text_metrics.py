"""Scores of generated text against raw reference strings: what summarisation, translation and
chatbot answers are judged by.

* BLEU and chrF: sacrebleu's corpus scores (0–100), its default tokenisation;
* exact match: the share of answers equal to their reference after NFC and whitespace folding;
* ROUGE-L on characters (0–100): the F-measure of the longest common subsequence of the two texts'
  characters, spaces left out, averaged over pairs. Korean words carry particles (오늘은 / 오늘),
  so characters rather than words are the unit, as KLUE and Korean summarisation papers do for
  Korean text; spaces are left out because Korean spacing varies freely between writers.
"""
from __future__ import annotations

import unicodedata
from typing import Sequence


def _chars(text: str) -> str:
    return "".join(unicodedata.normalize("NFC", text).split())


def lcs_length(a: str, b: str) -> int:
    """Length of the longest common subsequence of ``a`` and ``b`` (dynamic programming, one row)."""
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for ca in a:
        diagonal = 0
        for j, cb in enumerate(b, start=1):
            diagonal, row[j] = row[j], diagonal + 1 if ca == cb else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1 of one pair on characters without spaces, in [0, 1]; two empty texts score 1."""
    h, r = _chars(hypothesis), _chars(reference)
    if not h or not r:
        return float(h == r)
    common = lcs_length(h, r)
    if not common:
        return 0.0
    precision, recall = common / len(h), common / len(r)
    return 2 * precision * recall / (precision + recall)


def exact_match(hypothesis: str, reference: str) -> bool:
    """Equal after NFC and with runs of whitespace folded to one space."""
    def fold(text: str) -> str:
        return " ".join(unicodedata.normalize("NFC", text).split())

    return fold(hypothesis) == fold(reference)


def text_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """``bleu``, ``chrf`` and ``rouge_l`` (0–100) and ``exact`` (a fraction) of the hypotheses against
    the raw reference strings, pair by pair."""
    import sacrebleu

    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not hypotheses:
        return {"bleu": 0.0, "chrf": 0.0, "rouge_l": 0.0, "exact": 0.0}
    return {"bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "rouge_l": 100 * sum(map(rouge_l, hypotheses, references)) / len(hypotheses),
            "exact": sum(map(exact_match, hypotheses, references)) / len(hypotheses)}
