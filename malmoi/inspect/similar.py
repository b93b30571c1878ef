"""How alike two sentences are to a run: the cosine of their mean-pooled final hidden states (a BERT
classifier's or MLM's encoder, a GPT decoder, an LSTM seq2seq's encoder outputs, BART's encoder).

Only the sentence's own tokens are pooled: padding is masked out, and so are [CLS]/[SEP]/[PAD],
which every sentence shares (a GPT's [CLS] state is even identical for every input) and which
would pull any two sentences together.

    sentence_similarity(malmoi.load("runs/lm"), "영화가 재밌다", "영화가 지루하다")["cosine"]
"""
from __future__ import annotations

import torch

from malmoi.errors import MalmoiError
from malmoi.inspect.record import family_of, name_of
from malmoi.inspect.words import special_ids, unk_id

DIGITS = 6
WHAT = {
    "bert": "the classifier encoder's last layer",
    "mlm": "the encoder's last layer",
    "gpt": "the decoder's last layer (after its final layer norm)",
    "lstm": "the LSTM encoder's outputs (its top layer at every position)",
    "bart": "the BART encoder's last layer",
}


def check_pair(a, b) -> list[str]:
    for name, text in (("A", a), ("B", b)):
        if not isinstance(text, str) or not text.strip():
            raise MalmoiError("E480", f"sentence {name} is empty or blank: give two sentences to compare")
    return [a, b]


def sentence_similarity(loaded, a: str, b: str) -> dict:
    """Cosine of the two sentences' pooled vectors, and what was pooled (which states, which tokens)."""
    texts = check_pair(a, b)
    family = family_of(loaded)
    if family not in WHAT:
        kind = {"ngram": "an n-gram"}.get(family, f"a {family}")
        raise MalmoiError("E483", f"{kind} run has no hidden states to compare sentences by; "
                                  "use a BERT, GPT, MLM, LSTM or BART run")
    ids, notes = model_inputs(loaded, family, texts)
    hidden, layers = final_states(loaded, family, ids)
    keep = pooled_positions(ids, hidden.shape[1], special_ids(loaded) - {unk_id(loaded)})
    vectors = (hidden.double() * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)  # (2, D)
    cosine = torch.nn.functional.cosine_similarity(vectors[0], vectors[1], dim=0)
    spell = name_of(loaded)
    pooled = [[spell(t) for t, k in zip(row, mask) if k] for row, mask in zip(ids, keep.tolist())]
    left_out = sorted({spell(t) for row, mask in zip(ids, keep.tolist()) for t, k in zip(row, mask) if not k})
    return {"family": family, "a": a, "b": b, "cosine": round(float(cosine), DIGITS),
            "pooled": {"states": WHAT[family], "layer": layers, "dimension": int(hidden.shape[-1]),
                       "tokens": {"a": pooled[0], "b": pooled[1]}, "left_out": left_out},
            "notes": notes}


def model_inputs(loaded, family: str, texts: list[str]) -> tuple[list[list[int]], list[str]]:
    """Each sentence's ids as the model reads it (with its special tokens), cut to what it takes."""
    from malmoi.models.presets import max_positions

    if family in ("lstm", "bart"):  # what answering reads; a too-long input is refused there, as here
        from malmoi.use.seq2seq import encode_sources

        limit = loaded.model.config.max_source_len if family == "lstm" else loaded.max_source_length
        return encode_sources(loaded.codec, texts, limit), []
    tok = loaded.tokenizer
    if family == "gpt":
        from malmoi.models.generation import encode_prompt

        full = [encode_prompt(tok, t) for t in texts]  # [CLS] + tokens, as training read its documents
        limit = max_positions(loaded.model.config)
    else:
        full = tok(texts)["input_ids"]
        limit = loaded.max_length if family == "bert" else max_positions(loaded.model.config)
    notes = [f"sentence {name} is {len(ids)} tokens; the model reads the first {limit}"
             for name, ids in zip("AB", full) if len(ids) > limit]
    return [ids[:limit] for ids in full], notes


@torch.inference_mode()
def final_states(loaded, family: str, ids: list[list[int]]) -> tuple[torch.Tensor, int]:
    """(2, T, D) final hidden states of the right-padded batch, and the layer they come from."""
    from malmoi.data.batching import pad_with_mask

    pad = getattr(getattr(loaded, "codec", None), "pad_id", None)
    if pad is None:
        pad = loaded.tokenizer.pad_token_id or 0
    src, mask = pad_with_mask(ids, pad)
    if family == "lstm":
        memory, *_ = loaded.model.encode(src, torch.tensor([len(row) for row in ids]))
        return memory, loaded.model.config.layers
    if family == "bart":
        encoder = loaded.model.get_encoder()
        return encoder(input_ids=src, attention_mask=mask).last_hidden_state, loaded.model.config.encoder_layers
    model = loaded.model.encoder if family == "bert" else loaded.model
    hidden = model(input_ids=src, attention_mask=mask, output_hidden_states=True).hidden_states
    return hidden[-1], len(hidden) - 1


def pooled_positions(ids: list[list[int]], width: int, left_out: set[int]) -> torch.Tensor:
    """(B, T) 1.0 where a position is one of the sentence's own tokens (not padding, not a special
    token); a sentence of special tokens only keeps them all rather than pool nothing."""
    keep = torch.zeros(len(ids), width, dtype=torch.float64)
    for r, row in enumerate(ids):
        own = [i for i, t in enumerate(row) if t not in left_out] or list(range(len(row)))
        keep[r, own] = 1.0
    return keep
