"""A tagger's reading of one sentence: for each unit (a character for ``bilstm-crf``, a subword token for
an encoder) the features it reads, its most probable tags (softmax of the tagger's scores) and the tag
the decoder chose, then the entities as character spans (``malmoi predict``'s)."""
from __future__ import annotations

from dataclasses import asdict

import torch

from malmoi.inspect.transformer import DIGITS

TOP = 3


def tagging_stage(tagger, text: str) -> dict:
    tagging = tagger.tag(text)[0]  # the path exactly as `malmoi predict` decodes it
    with torch.inference_mode():
        units = _char_units(tagger, text, tagging.tags) if tagger.char_model else _token_units(tagger, text)
    return {"scheme": tagger.scheme, "unit": "character" if tagger.char_model else "token",
            "units": units, "tags": tagging.tags, "entities": [asdict(e) for e in tagging.entities]}


def _top(probs: torch.Tensor, labels: list[str]) -> list[dict]:
    p, i = probs.topk(min(TOP, len(labels)))
    return [{"tag": labels[int(j)], "p": round(float(q), DIGITS)} for q, j in zip(p, i)]


def _char_units(tagger, text: str, chosen: list[str]) -> list[dict]:
    """Each character's features as the model reads them (spelled from their ids: a bigram training never
    saw reads ``<unk>``), its top tags and the chosen one."""
    feats = tagger.features.encode(text)
    batch = {k: torch.tensor([v]) for k, v in feats.items()}
    probs = tagger.model(**batch, attention_mask=torch.ones_like(batch["chars"])).logits[0].softmax(-1)
    spelled = {name: [tagger.features.tables[name][i] for i in feats[name]] for name in ("bigrams", "morphs", "words")}
    return [{"text": c, "start": i, "end": i + 1,
             "features": {"bigram": spelled["bigrams"][i], "morpheme": spelled["morphs"][i],
                          "word": spelled["words"][i]},
             "top": _top(probs[i], tagger.labels), "tag": chosen[i]} for i, c in enumerate(text)]


def _token_units(tagger, text: str) -> list[dict]:
    enc = tagger.features(text, truncation=True, max_length=tagger.max_length, return_offsets_mapping=True,
                          return_tensors="pt")
    inputs = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    probs = tagger.model(**inputs).logits[0].softmax(-1)
    tokens = tagger.features.convert_ids_to_tokens(enc["input_ids"][0])
    units = []
    for k, ((s, e), token) in enumerate(zip(enc["offset_mapping"][0].tolist(), tokens)):
        if e > s:
            top = _top(probs[k], tagger.labels)
            units.append({"text": text[s:e], "token": token, "start": s, "end": e, "top": top, "tag": top[0]["tag"]})
    return units
