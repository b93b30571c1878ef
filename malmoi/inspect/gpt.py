"""A GPT run's generation step by step: at each step the top-k next tokens with probabilities, the
one chosen (greedy: the first step's choice is ``generate``'s first token), and how temperature,
top-k and top-p change the first step's distribution."""
from __future__ import annotations

import torch

from malmoi.inspect.transformer import DIGITS

TEMPERATURES = (0.5, 1.0, 1.5)
TOP_KS = (5, 50)
TOP_P = 0.9


def top(probs: torch.Tensor, k: int, name_of) -> list[dict]:
    p, ids = probs.topk(min(k, probs.shape[-1]))
    return [{"token": name_of(i), "id": i, "p": round(v, DIGITS)} for i, v in zip(ids.tolist(), p.tolist())]


@torch.inference_mode()
def generation_stage(generator, text: str, *, steps: int, top_k: int, name_of) -> dict:
    from malmoi.models.generation import continuation, encode_prompt, encode_turn

    model, tok = generator.model, generator.tokenizer
    chat = getattr(generator, "chat", False)  # a chat run answers: its prompt is one turn's question
    prompt = (encode_turn if chat else encode_prompt)(tok, text)
    ids = list(prompt)
    eos = tok.eos_token_id
    limit = getattr(model.config, "n_positions", 1024)
    records, first = [], None
    for step in range(steps):
        if len(ids) >= limit:
            break
        logits = model(torch.tensor([ids])).logits[0, -1].float()
        probs = logits.softmax(-1)
        chosen = int(probs.argmax())
        if first is None:
            first = logits
        records.append({"step": step + 1, "top": top(probs, top_k, name_of),
                        "chosen": {"token": name_of(chosen), "id": chosen, "p": round(float(probs[chosen]), DIGITS)}})
        ids.append(chosen)
        if chosen == eos:
            break
    said = continuation(tok, [] if chat else prompt, [i for i in ids[len(prompt):] if i != eos])
    return {"prompt_tokens": len(prompt), "steps": records, "decoding": "greedy",
            "text": said,
            "sampling": sampling_effects(first, top_k, name_of) if first is not None else None}


def sampling_effects(logits: torch.Tensor, top_k: int, name_of) -> dict:
    """How the first step's distribution changes: softmax(logits / T); top-k keeps the k best and
    renormalises; top-p keeps the fewest best tokens whose probability reaches p."""
    probs = logits.softmax(-1)
    sorted_p = probs.sort(descending=True).values
    kept = int((sorted_p.cumsum(0) < TOP_P).sum()) + 1
    return {
        "temperature": [{"temperature": t, "top": top((logits / t).softmax(-1), top_k, name_of),
                         "entropy": round(float(_entropy((logits / t).softmax(-1))), DIGITS)} for t in TEMPERATURES],
        "top_k": [{"k": k, "mass": round(float(sorted_p[:k].sum()), DIGITS)} for k in TOP_KS],
        "top_p": {"p": TOP_P, "tokens_kept": kept, "of": int(probs.shape[0])},
    }


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-12).log()).sum()
