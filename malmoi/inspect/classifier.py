"""A transformer classifier's decision for one text: the [CLS] vector → logits → softmax → label
(the probabilities are ``predict``'s), and gradient × input per token: how much each token's
embedding pushed the predicted class's logit."""
from __future__ import annotations

import torch

from malmoi.inspect.transformer import DIGITS, rounded


def encoder_inputs(tokenizer, text: str, pair: str | None, max_length: int) -> dict:
    enc = tokenizer(text, pair, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def decision_stage(classifier, inputs: dict, text: str, pair: str | None) -> dict:
    model = classifier.model
    with torch.inference_mode():
        hidden = model.encoder(**inputs).last_hidden_state[0]  # (T, D)
        logits = model.head(hidden[0])
    if pair is None:  # exactly what `malmoi predict` prints
        prediction = classifier.predict([text])[0]
        probabilities, label, score = prediction.probabilities, prediction.label, prediction.score
    else:
        probs = logits.float().softmax(-1)
        probabilities = {lab: float(p) for lab, p in zip(classifier.labels, probs)}
        label = max(probabilities, key=probabilities.get)
        score = probabilities[label]
    return {
        "pooled": {"token": "[CLS]", "norm": round(float(hidden[0].norm()), DIGITS),
                   "first": rounded(hidden[0][:8])},
        "logits": {lab: round(float(v), DIGITS) for lab, v in zip(classifier.labels, logits)},
        "probabilities": probabilities, "label": label, "score": score,
        "attributions": gradient_x_input(model, inputs, classifier.labels.index(label)),
    }


def gradient_x_input(model, inputs: dict, target: int) -> list[float]:
    """Σ_d (∂ logit_target / ∂ e_td) · e_td for each token t's input embedding e_t."""
    table = model.encoder.get_input_embeddings()
    captured = {}

    def keep(module, args, output):
        output.retain_grad()
        captured["e"] = output

    handle = table.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model.head(model.encoder(**inputs).last_hidden_state[:, 0])
            logits[0, target].backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    e = captured["e"]
    return rounded((e.grad * e).sum(-1)[0].detach())
