"""A reader's (question-answering run's) view of one question and its context: the first window as the
encoder reads it, each context token's question-match level and its start and end probabilities, and
the answer ``malmoi answer`` gives (over every window)."""
from __future__ import annotations

import torch

from malmoi.inspect.transformer import DIGITS


def reading_inputs(reader, question: str, context: str) -> tuple[dict, list]:
    """(the model inputs of the first window, each of its tokens' character span in the context or None)."""
    from malmoi.data.qa_windows import tokenize_windows

    meta = reader.meta
    windows = tokenize_windows(reader.tokenizer, [question], [context], max_length=int(meta["max_length"]),
                               stride=int(meta["doc_stride"]), max_question_length=int(meta["max_question_length"]))
    inputs = {"input_ids": torch.tensor([windows.input_ids[0]]),
              "token_type_ids": torch.tensor([windows.token_type_ids[0]]),
              "attention_mask": torch.ones(1, len(windows.input_ids[0]), dtype=torch.long),
              "question_match": torch.tensor([windows.question_match[0]])}
    return inputs, windows.offsets[0], len(windows)


def reading_stage(reader, question: str, context: str) -> dict:
    answer = reader.answer([question], context)[0]
    inputs, offsets, count = reading_inputs(reader, question, context)
    with torch.inference_mode():
        out = reader.model(**inputs)
    starts, ends = out.start_logits[0].softmax(-1), out.end_logits[0].softmax(-1)
    tokens = reader.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    units = [{"token": tokens[i], "text": context[o[0]:o[1]], "start": o[0], "end": o[1],
              "match": int(inputs["question_match"][0, i]), "p_start": round(float(starts[i]), DIGITS),
              "p_end": round(float(ends[i]), DIGITS)} for i, o in enumerate(offsets) if o is not None]
    return {"question": question, "context": context, "windows": count, "tokens": units,
            "answer": {"text": answer.text, "start": answer.start, "end": answer.end,
                       "score": round(float(answer.score), DIGITS)}}
