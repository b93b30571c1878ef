"""One sentence through a run, every stage in one record (a dict that is the ``--json`` output,
and what the terminal and HTML views are rendered from; its schema is ``schema.json``)."""
from __future__ import annotations

from malmoi.errors import MalmoiError
from malmoi.inspect.text import check_sentence, text_stage

SCHEMA_VERSION = 1


def family_of(loaded) -> str:
    from malmoi.text.ngrams import NgramFeaturizer
    from malmoi.use import (BartGenerator, LMGenerator, MaskFiller, QuestionAnswerer, RetrievalGenerator,
                            Seq2SeqGenerator, Tagger, TextClassifier)

    if isinstance(loaded, TextClassifier):
        return "ngram" if isinstance(loaded.tokenizer, NgramFeaturizer) else "bert"
    for cls, name in ((LMGenerator, "gpt"), (MaskFiller, "mlm"), (BartGenerator, "bart"),
                      (Seq2SeqGenerator, "lstm"), (RetrievalGenerator, "retrieval"), (Tagger, "tagger"),
                      (QuestionAnswerer, "qa")):
        if isinstance(loaded, cls):
            return name
    raise MalmoiError("E485", f"cannot inspect a {type(loaded).__name__}")


def name_of(loaded):
    """id → the vocabulary entry's spelling, for whatever tokenizer or codec the run reads with."""
    from malmoi.inspect.tokens import tokenizer_of

    tok = tokenizer_of(loaded)
    if hasattr(tok, "convert_ids_to_tokens"):
        return lambda i: tok.convert_ids_to_tokens(int(i))
    return lambda i: tok.pieces([int(i)])[0]


def inspect_text(loaded, text: str, *, pair: str | None = None, top_k: int = 5, max_tokens: int = 64,
                 steps: int = 8) -> dict:
    """Every stage of ``text`` through a loaded run (``malmoi.load``)."""
    text = check_sentence(text)
    if pair is not None:
        check_sentence(pair)
    family = family_of(loaded)
    if family == "qa" and pair is None:
        raise MalmoiError("E492", "a question-answering run reads a question and its context: give the context "
                                  "as the pair (malmoi inspect RUN \"질문\" --pair \"context\")")
    meta = getattr(loaded, "meta", None) or {}
    stage, notes = text_stage(loaded, text, pair, max_tokens)
    record = {"schema_version": SCHEMA_VERSION, "run": str(getattr(loaded, "run", "") or ""), "family": family,
              "task": meta.get("task"), "preset": meta.get("preset"), "text": text, "pair": pair,
              "notes": notes, "text_stage": stage}
    build = {"bert": _bert, "gpt": _gpt, "mlm": _mlm, "ngram": _ngram, "lstm": _lstm, "bart": _bart,
             "retrieval": _retrieval, "tagger": _tagger, "qa": _qa}[family]
    record.update(build(loaded, record, top_k=top_k, steps=steps))
    return record


def _embeddings(loaded, ids: list[int], top_k: int) -> dict | None:
    from malmoi.inspect.embeddings import embedding_stage, embedding_table

    table = embedding_table(loaded)
    return None if table is None else embedding_stage(table, ids, name_of(loaded), top_k)


def _tensor_inputs(stage: dict) -> dict:
    import torch

    return {k: torch.tensor([stage[k]]) for k in ("input_ids", "attention_mask", "token_type_ids")}


def _bert(loaded, record: dict, *, top_k: int, steps: int) -> dict:
    from malmoi.inspect.classifier import decision_stage
    from malmoi.inspect.transformer import layers_stage, run_layers

    stage = record["text_stage"]
    inputs = _tensor_inputs(stage)
    hidden, attentions = run_layers(loaded.model.encoder, inputs)
    return {"embeddings": _embeddings(loaded, stage["input_ids"], top_k),
            "layers": layers_stage(hidden, attentions),
            "classifier": decision_stage(loaded, inputs, record["text"], record["pair"])}


def _gpt(loaded, record: dict, *, top_k: int, steps: int) -> dict:
    import torch

    from malmoi.inspect.gpt import generation_stage
    from malmoi.inspect.transformer import layers_stage, logit_lens, run_layers

    stage = record["text_stage"]
    # the layers read exactly the text stage's ids: [CLS] + tokens + [SEP], as training read documents
    inputs = {k: torch.tensor([stage[k]]) for k in ("input_ids", "attention_mask")}
    model = loaded.model
    hidden, attentions = run_layers(model, inputs)
    spell = name_of(loaded)
    return {"embeddings": _embeddings(loaded, stage["input_ids"], top_k),
            "layers": {**layers_stage(hidden, attentions),
                       "logit_lens": logit_lens(hidden, model.transformer.ln_f, model.lm_head, spell,
                                                last_is_normed=True)},
            "generation": generation_stage(loaded, record["text"], steps=steps, top_k=top_k, name_of=spell)}


def _mlm(loaded, record: dict, *, top_k: int, steps: int) -> dict:
    from malmoi.inspect.transformer import layers_stage, logit_lens, run_layers

    stage = record["text_stage"]
    model = loaded.model
    hidden, attentions = run_layers(model, _tensor_inputs(stage))
    head = getattr(model, "cls", None) or model.get_output_embeddings()  # BERT's MLM head: transform + decoder
    out = {"embeddings": _embeddings(loaded, stage["input_ids"], top_k),
           "layers": {**layers_stage(hidden, attentions),
                      "logit_lens": logit_lens(hidden, lambda h: h, head, name_of(loaded))}}
    if loaded.tokenizer.mask_token in record["text"]:
        out["fillings"] = [f.__dict__ for f in loaded.fill(record["text"], top_k=top_k)]
    return out


def _ngram(loaded, record: dict, *, top_k: int, steps: int) -> dict:
    from malmoi.inspect.ngram import ngram_decision

    return {"classifier": ngram_decision(loaded, record["text"])}


def _lstm(loaded, record: dict, *, top_k: int, steps: int) -> dict:
    from malmoi.inspect.seq2seq import lstm_stages

    return {"embeddings": _embeddings(loaded, record["text_stage"]["input_ids"], top_k),
            "seq2seq": _fitting(lambda text: lstm_stages(loaded, text, top_k=top_k), record)}


def _bart(loaded, record: dict, *, top_k: int, steps: int) -> dict:
    from malmoi.inspect.seq2seq import bart_stages

    out = {"embeddings": _embeddings(loaded, record["text_stage"]["input_ids"], top_k),
           "seq2seq": _fitting(lambda text: bart_stages(loaded, text, top_k=top_k), record)}
    layers = _bart_encoder_layers(loaded, record)
    if layers is not None:
        out["layers"] = layers
    return out


def _bart_encoder_layers(loaded, record: dict) -> dict | None:
    """The encoder's layers over the source, when the source it reads is the text stage's tokens
    (the views label rows and columns with them)."""
    import torch

    from malmoi.inspect.transformer import layers_stage, run_layers

    ids = record["text_stage"]["input_ids"]
    try:
        encoded = loaded._encode([record["text"]])[0]
    except MalmoiError:
        return None  # past the run's source length: the seq2seq stage answered a part
    if list(encoded) != list(ids):
        record["notes"].append("the encoder's layers are not shown: it reads other tokens than the text stage's")
        return None
    inputs = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    return layers_stage(*run_layers(loaded.model.get_encoder(), inputs))


def _fitting(stages, record: dict) -> dict:
    """A seq2seq run refuses a source past its --max-source-length (E423): answer the longest
    leading part of the words that fits, and say so."""
    words = record["text"].split()
    for keep in range(len(words), 0, -1):
        try:
            out = stages(" ".join(words[:keep]))
        except MalmoiError as e:
            if e.code != "E423":
                raise
            continue
        if keep < len(words):
            record["notes"].append(f"the run reads at most its --max-source-length: the answer is to the first "
                                   f"{keep} of {len(words)} words")
        return out
    raise MalmoiError("E423", "even the first word is longer than the run's --max-source-length")


def _retrieval(loaded, record: dict, *, top_k: int, steps: int) -> dict:
    answer = loaded.generate([record["text"]])[0]
    return {"retrieval": {"answer": answer.text, "matched": answer.matched, "similarity": answer.similarity}}


def _tagger(loaded, record: dict, *, top_k: int, steps: int) -> dict:
    from malmoi.inspect.tagging import tagging_stage

    stage = record["text_stage"]
    out = {"embeddings": _embeddings(loaded, stage["input_ids"], top_k),
           "tagging": tagging_stage(loaded, record["text"])}
    if not loaded.char_model:  # an encoder's layers and attention, as for a classifier
        from malmoi.inspect.transformer import layers_stage, run_layers

        out["layers"] = layers_stage(*run_layers(loaded.model.encoder, _tensor_inputs(stage)))
    return out


def _qa(loaded, record: dict, *, top_k: int, steps: int) -> dict:
    """The encoder's layers over the tokens shown (with the question-match embedding the reader adds),
    and the reading: match levels, start and end probabilities, the answer."""
    import torch

    from malmoi.inspect.reading import reading_inputs, reading_stage
    from malmoi.inspect.transformer import layers_stage, run_layers

    stage = record["text_stage"]
    inputs, _, _ = reading_inputs(loaded, record["text"], record["pair"])
    n = min(len(stage["input_ids"]), inputs["input_ids"].shape[1])
    out = {"embeddings": _embeddings(loaded, stage["input_ids"], top_k),
           "reading": reading_stage(loaded, record["text"], record["pair"])}
    if inputs["input_ids"][0, :n].tolist() != stage["input_ids"][:n]:  # the question was cut to its limit
        record["notes"].append("the reader cut the question to its --max-question-length: no layer view")
        return out
    model, inputs = loaded.model, {k: v[:, :n] for k, v in inputs.items()}
    with torch.inference_mode():
        read = model.encoder_inputs(inputs["input_ids"], inputs["question_match"])
        out["layers"] = layers_stage(*run_layers(model.encoder, {
            **read, "attention_mask": inputs["attention_mask"], "token_type_ids": inputs["token_type_ids"]}))
    return out
