"""A seq2seq run's answer step by step: the source tokens, the encoder's states, and at each greedy
decoding step the top-k next tokens, the one chosen and where the decoder looked in the source.

The steps decode greedily as ``generate`` does by default (beams=1), with the run's own encoder and
decoder step, so their tokens and text are ``generate([text])[0]``'s. Inputs go through the
generator's own encoding, so a text over the run's --max-source-length is refused the same way
(E423) rather than inspected against an answer ``generate`` would never give.
"""
from __future__ import annotations

import torch

from malmoi.inspect.gpt import top
from malmoi.inspect.transformer import DIGITS, eager_attention

FIRST = 8  # values shown of a state vector


def rounded(x: torch.Tensor) -> list[float]:
    """A vector as JSON floats of 4 digits (rounding in float32 would print 0.5630000233650208)."""
    return [round(v, DIGITS) for v in x.double().tolist()]


def vector(x: torch.Tensor) -> dict:
    return {"norm": round(float(x.float().norm()), DIGITS), "first": rounded(x[:FIRST])}


def _step_record(step: int, logits: torch.Tensor, top_k: int, name_of) -> tuple[dict, int]:
    """The record of one step and its greedy choice; argmax of log_softmax, as the decoders pick."""
    logp = torch.log_softmax(logits.float(), -1)
    chosen = int(logp.argmax())
    probs = logp.exp()
    record = {"step": step, "top": top(probs, top_k, name_of),
              "chosen": {"token": name_of(chosen), "id": chosen, "p": round(float(probs[chosen]), DIGITS)}}
    return record, chosen


def _answer(steps: list[dict], eos: int) -> list[int]:
    ids = [s["chosen"]["id"] for s in steps]
    return ids[: ids.index(eos)] if eos in ids else ids


# ------------------------------------------------------------------------------ LSTM


@torch.inference_mode()
def lstm_stages(generator, text: str, top_k: int = 5) -> dict:
    """The stages of ``text`` through an LSTM seq2seq run (``Seq2SeqGenerator``)."""
    model, codec, cfg = generator.model, generator.codec, generator.model.config
    ids = generator._encode([text])[0]  # refuses what generate refuses (too long, no tokens)
    src = torch.tensor([ids], device=next(model.parameters()).device)
    memory, keys, mask, state = model.encode(src, torch.tensor([len(ids)]))
    name_of = lambda i: codec.pieces([i])[0]  # noqa: E731
    contexts = []
    hook = None
    if cfg.attention != "none":
        # the context vector is internal to the decoder step: read it off the attention module's output
        hook = model.decoder.attention.register_forward_hook(lambda m, args, out: contexts.append(out[0]))
    try:
        steps = _lstm_steps(model, memory, keys, mask, state, contexts, top_k, name_of)
    finally:
        if hook is not None:
            hook.remove()
    return {"source_tokens": codec.pieces(ids),
            "encoder": {"norms": rounded(memory[0].norm(dim=-1)), "final": vector(state.h[-1, 0])},
            "steps": steps, "text": codec.decode(_answer(steps, cfg.eos_id)), "decoding": "greedy"}


def _lstm_steps(model, memory, keys, mask, state, contexts: list, top_k: int, name_of) -> list[dict]:
    """Greedy steps through the model's own ``decoder.step``, up to max_len tokens as ``greedy`` runs."""
    cfg = model.config
    y = torch.tensor([cfg.bos_id], device=memory.device)
    steps = []
    for step in range(1, cfg.max_len + 1):
        logits, state, weights = model.decoder.step(model._embed_step(y), state, memory, keys, mask)
        record, chosen = _step_record(step, logits[0], top_k, name_of)
        if weights is not None:
            record["attention"] = rounded(weights[0])
            record["context"] = vector(contexts[-1][0])
        steps.append(record)
        if chosen == cfg.eos_id:
            break
        y = torch.tensor([chosen], device=memory.device)
    return steps


# ------------------------------------------------------------------------------ BART


@torch.inference_mode()
def bart_stages(generator, text: str, top_k: int = 5) -> dict:
    """The stages of ``text`` through a BART run (``BartGenerator``). Cross-attention is each decoder
    layer's, averaged over its heads (as ``BartGenerator.cross_attention``): (layers, steps, source)."""
    model, codec = generator.model, generator.codec
    settings = generator.settings()  # generate's defaults: greedy, max_target_length new tokens
    ids = generator._encode([text])[0]
    src, mask = (t.to(model.device) for t in generator._batch([ids]))
    name_of = lambda i: codec.pieces([i])[0]  # noqa: E731
    with eager_attention(model):  # sdpa computes no attention weights to return
        encoded = model.get_encoder()(input_ids=src, attention_mask=mask)
        steps, cross = _bart_steps(model, src, encoded, mask, settings, top_k, name_of)
    return {"source_tokens": codec.pieces(ids),
            "encoder": {"norms": rounded(encoded.last_hidden_state[0].norm(dim=-1))},
            "steps": steps, "cross_attention": cross, "cross_attention_heads": "mean",
            "text": codec.decode(_answer(steps, settings.eos_token_id)), "decoding": "greedy"}


def _bart_steps(model, src, encoded, mask, settings, top_k: int, name_of) -> tuple[list[dict], list]:
    """Greedy steps, one full decoder pass over the answer so far each (answers are short): the last
    position's logits and, per layer, its cross-attention. The source ids go along with its encoding,
    which is not recomputed: a copying model scatters onto them."""
    decoder_ids = [model.config.decoder_start_token_id]
    steps, rows = [], []  # rows: per step, per layer (source,)
    for step in range(1, settings.max_new_tokens + 1):
        out = model(input_ids=src, encoder_outputs=encoded, attention_mask=mask, output_attentions=True,
                    decoder_input_ids=torch.tensor([decoder_ids], device=mask.device))
        record, chosen = _step_record(step, out.logits[0, -1], top_k, name_of)
        steps.append(record)
        rows.append([a[0, :, -1].float().mean(0) for a in out.cross_attentions])  # (heads, T, S) → (S,)
        if chosen == settings.eos_token_id:
            break
        decoder_ids.append(chosen)
    cross = [[rounded(step_rows[layer]) for step_rows in rows] for layer in range(len(rows[0]))]
    return steps, cross
