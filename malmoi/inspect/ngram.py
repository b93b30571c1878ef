"""An n-gram classifier's decision for one text, member by member, as exact sums over its n-grams.

Every member is linear in its n-grams once the text is fixed: a mean member pools with weights
1 / (n-grams of the kind), an attention member with its softmax weights, an nb member adds
weight × log-count ratio per distinct row, and a hidden ReLU layer is linear at the text's own
on/off pattern. So each n-gram's share of a member's logits is exact: the shares plus the bias
are the member's logits. The unit is the row of the member's table an n-gram reads (ids folded
by ``rows``, left out by ``kinds``), listed once with every n-gram of the text that reads it.
"""
from __future__ import annotations

from collections import Counter

import torch

ENSEMBLE = "mean of the members' softmaxes (the model's logits are its log)"
SINGLE = "the single member's softmax"
DIGITS = 7  # significant: float32 holds no more, and rounding to decimals would lose small shares


def _num(x) -> float:
    return float(f"{float(x):.{DIGITS}g}")


def _by_label(labels: list[str], values) -> dict:
    return {lab: _num(v) for lab, v in zip(labels, values.tolist())}


def ngram_decision(classifier, text: str) -> dict:
    """The record's ``classifier`` stage for a ``TextClassifier`` of the n-gram family."""
    model, featurizer, labels = classifier.model, classifier.tokenizer, classifier.labels
    prediction = classifier.predict([text])[0]  # exactly what `malmoi predict` prints
    target = labels.index(prediction.label)
    device = next(model.parameters()).device
    ids = featurizer([text], return_tensors="pt")["input_ids"].to(device)  # what predict feeds the model
    found = featurizer.ngrams(text)
    names = _names([m.bag.pooling for m in model.members])
    with torch.inference_mode():
        members = [_member(m, name, ids, found, featurizer.config, labels, target)
                   for m, name in zip(model.members, names)]
    return {"members": members, "ensemble": ENSEMBLE if len(members) > 1 else SINGLE,
            "probabilities": prediction.probabilities, "label": prediction.label, "score": prediction.score}


def _names(poolings: list[str]) -> list[str]:
    """``attention 1``, ``mean 1``, ``mean 2``, ``nb``: nb numbered only when there are several."""
    total, seen, out = Counter(poolings), Counter(), []
    for p in poolings:
        seen[p] += 1
        out.append(p if p == "nb" and total[p] == 1 else f"{p} {seen[p]}")
    return out


def _member(member, name: str, ids: torch.Tensor, found: list, config, labels: list[str], target: int) -> dict:
    logits = member(ids)[0]  # the model's own forward
    rows = member.read_rows(ids)[0][0]  # (T,) the row each position reads, 0 = not read
    nb = member.bag.pooling == "nb"
    unique, counts, shares, bias, extra = (_nb_shares if nb else _pooled_shares)(member, ids, rows)
    by_row = _ngrams_by_row(member, found, ids.device)
    order = sorted(range(len(unique)), key=lambda i: -abs(float(shares[i, target])))
    entries = []
    for i in order:
        entry = _entry(by_row.get(int(unique[i]), []), int(counts[i]), _by_label(labels, shares[i].cpu()))
        if nb:  # the fixed naive Bayes ratio the learned weight scales
            entry["ratio"] = _by_label(labels, extra[i].cpu())
        entries.append(entry)
    out = {"name": name, "kind": member.bag.pooling, "reads": _kind_names(member, config),
           "once_per_row": nb,  # nb counts a row once however often the text has it; the others per occurrence
           "bias": _by_label(labels, bias.cpu()), "logits": _by_label(labels, logits.cpu()),
           "probabilities": _by_label(labels, logits.float().softmax(-1).cpu()), "contributions": entries}
    if member.bag.pooling == "attention":  # per listed row, aligned with contributions: its weight in each head
        out["attention"] = [[_num(w) for w in extra[i].tolist()] for i in order]
    return out


def _pooled_shares(member, ids: torch.Tensor, rows: torch.Tensor):
    """(rows, (U,) counts, (U, C) shares, (C,) bias, (U, K) weights) of a mean or attention member:
    position t adds Σ_k weight_tk · (head block k · vector_t), summed over the positions of a row."""
    weights = _pool_weights(member, ids)  # (T, K)
    matrix, bias = _head(member, ids)
    vectors = member.embed.weight[rows].double()  # (T, D)
    blocks = matrix.view(matrix.shape[0], weights.shape[1], -1)  # (C, K, D)
    per_position = torch.einsum("ckd,td,tk->tc", blocks, vectors, weights.double())
    read = rows != 0
    unique, where = torch.unique(rows[read], return_inverse=True)
    shares = torch.zeros(len(unique), matrix.shape[0], dtype=torch.double, device=ids.device)
    shares.index_add_(0, where, per_position[read])
    attention = torch.zeros(len(unique), weights.shape[1], device=ids.device).index_add_(0, where, weights[read])
    return unique, torch.bincount(where, minlength=len(unique)), shares, bias, attention.cpu()


def _pool_weights(member, ids: torch.Tensor) -> torch.Tensor:
    """(T, K) each position's weight in the pooled vector, as ``NgramBag.pooled`` computes it (K = 1 for mean)."""
    rows, keep, kind = member.member_ids(ids)
    if not member.bag.per_kind:
        kind = torch.zeros_like(kind)
    if member.score is None:  # 1 / (n-grams of the kind)
        counts = torch.bincount(kind[keep], minlength=member.config.groups).float()
        return (keep / counts[kind].clamp_min(1))[0, :, None]
    scores = member.score(member.embed(rows))  # (1, T, K)
    weights = torch.zeros_like(scores)
    for g in kind[keep].unique().tolist():  # a softmax within each kind, as the model pools
        mine = (keep & (kind == g))[..., None]
        weights += torch.softmax(scores.masked_fill(~mine, -1e9), dim=1) * mine
    return weights[0]


def _head(member, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, width) and (C,) taking the pooled vector to the logits; through a hidden layer, its ReLU
    held at this text's on/off pattern, which is exact for this text."""
    weight, bias = member.head.weight.double(), member.head.bias.double()
    if member.hidden is None:
        return weight, bias
    on = (member.hidden(member.pooled(ids))[0] > 0).double()
    return (weight * on) @ member.hidden.weight.double(), weight @ (on * member.hidden.bias.double()) + bias


def _nb_shares(member, ids: torch.Tensor, rows: torch.Tensor):
    """(rows, (U,) counts, (U, C) shares, (C,) bias, (U, C) ratios): each distinct row once, as
    ``NgramBag.nb_logits`` adds it: learned weight × log-count ratio."""
    unique, counts = torch.unique(rows[rows != 0], return_counts=True)
    ratio = member.ratio[unique]
    return unique, counts, member.embed.weight[unique].double() * ratio.double(), member.bias, ratio


def _ngrams_by_row(member, found: list, device) -> dict[int, list]:
    """The text's n-grams grouped by the member row their id reads (n-grams it does not read left out)."""
    if not found:
        return {}
    rows = member.read_rows(torch.tensor([[g.id for g in found]], device=device))[0][0].tolist()
    out: dict[int, list] = {}
    for g, r in zip(found, rows):
        if r:
            out.setdefault(r, []).append(g)
    return out


def _entry(grams: list, count: int, contribution: dict) -> dict:
    """One row: its first n-gram on top, every n-gram of the text that reads it in ``ngrams``."""
    first = grams[0] if grams else None
    return {"kind": first.kind if first else "", "text": first.text if first else "",
            "id": first.id if first else 0, "start": first.start if first else 0, "end": first.end if first else 0,
            "count": count, "contribution": contribution,
            "ngrams": [{"kind": g.kind, "text": g.text, "id": g.id, "start": g.start, "end": g.end} for g in grams]}


def _kind_names(member, config) -> list[str]:
    kinds = config.kinds
    if member.bag.kinds is None or member.config.groups == 1:
        return list(kinds)
    return [kinds[k] for k in member.bag.kinds]
