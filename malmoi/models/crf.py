"""A linear-chain conditional random field over per-position tag scores: the negative log-likelihood
for training (the forward algorithm) and the best tag path for prediction (Viterbi).

The tag scheme's impossible transitions (``O`` → ``I-PS``, ``B-PS`` → ``I-LC`` …) are not learned
but forbidden: ``allowed_transitions`` marks them and they score ``-inf``-like, so every decoded path
is a well-formed sequence.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

FORBIDDEN = -1e4
"""The score of a forbidden transition: far below any learned one, yet finite so sums stay finite."""


def allowed_transitions(labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(start, transition, end) masks of which tags may open a sentence, follow each other and close
    one, for BIO or BIOES labels (``O``, ``B-X``, ``I-X``, ``E-X``, ``S-X``)."""
    parts = [(lab, "") if lab == "O" else tuple(lab.split("-", 1)) for lab in labels]

    def may_follow(a: tuple[str, str], b: tuple[str, str]) -> bool:
        if b[0] in ("I", "E"):
            return a[0] in ("B", "I") and a[1] == b[1]
        return a[0] not in ("B", "I") or not bioes  # a BIOES entity closes with E- before anything else

    bioes = any(p[0] in ("E", "S") for p in parts)
    start = torch.tensor([p[0] not in ("I", "E") for p in parts])
    end = torch.tensor([p[0] not in ("B", "I") or not bioes for p in parts])
    trans = torch.tensor([[may_follow(a, b) for b in parts] for a in parts])
    return start, trans, end


class CRF(nn.Module):
    """Transition scores between ``len(labels)`` tags, with the scheme's forbidden moves masked."""

    def __init__(self, labels: Sequence[str]):
        super().__init__()
        k = len(labels)
        self.transitions = nn.Parameter(torch.zeros(k, k))
        self.start = nn.Parameter(torch.zeros(k))
        self.end = nn.Parameter(torch.zeros(k))
        start, trans, end = allowed_transitions(labels)
        # masks are derived from the labels, so they are rebuilt on load rather than saved
        self.register_buffer("start_mask", start, persistent=False)
        self.register_buffer("trans_mask", trans, persistent=False)
        self.register_buffer("end_mask", end, persistent=False)

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.start.masked_fill(~self.start_mask, FORBIDDEN),
                self.transitions.masked_fill(~self.trans_mask, FORBIDDEN),
                self.end.masked_fill(~self.end_mask, FORBIDDEN))

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of ``tags`` (B, T) under ``emissions`` (B, T, K); ``mask`` (B, T)
        marks real positions, which come first in every row."""
        start, trans, end = self._scores()
        mask = mask.bool()
        b = torch.arange(emissions.shape[0], device=emissions.device)
        tags = tags.masked_fill(~mask, 0)
        # the gold path's score
        gold = start[tags[:, 0]] + emissions[b, 0, tags[:, 0]]
        for t in range(1, emissions.shape[1]):
            step = trans[tags[:, t - 1], tags[:, t]] + emissions[b, t, tags[:, t]]
            gold = gold + step * mask[:, t]
        last = tags.gather(1, (mask.sum(1, keepdim=True) - 1).clamp(min=0)).squeeze(1)
        gold = gold + end[last]
        # every path's (the forward algorithm)
        alpha = start + emissions[:, 0]
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans + emissions[:, t].unsqueeze(1), dim=1)
            alpha = torch.where(mask[:, t:t + 1], nxt, alpha)
        total = torch.logsumexp(alpha + end, dim=1)
        return (total - gold).mean()

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The best tag path of each row (Viterbi), as many tags as the row has real positions."""
        start, trans, end = self._scores()
        mask = mask.bool()
        score = start + emissions[:, 0]
        back = []
        for t in range(1, emissions.shape[1]):
            best, idx = (score.unsqueeze(2) + trans).max(dim=1)
            nxt = best + emissions[:, t]
            back.append(idx)
            score = torch.where(mask[:, t:t + 1], nxt, score)
        score = score + end
        lengths = mask.sum(1).tolist()
        paths = []
        for row, n in enumerate(lengths):
            tag = int(score[row].argmax())
            path = [tag]
            for t in range(n - 1, 0, -1):
                tag = int(back[t - 1][row, tag])
                path.append(tag)
            paths.append(path[::-1])
        return paths
