"""A pretrained MLM run, used the way it was trained: fill in ``[MASK]`` in a sentence."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from malmoi.errors import MalmoiError
from malmoi.use.results import Filling


class MaskFiller:
    """A pretrained MLM run, used the way it was trained: fill in ``[MASK]`` in a sentence."""

    def __init__(self, model: nn.Module, tokenizer):
        self.model, self.tokenizer = model.eval(), tokenizer

    @classmethod
    def from_run(cls, run: str | os.PathLike) -> "MaskFiller":
        from transformers import AutoModelForMaskedLM

        from malmoi.models.classifier import quiet_transformers
        from malmoi.text.subword import load_tokenizer

        run = Path(run)
        if not (run / "config.json").is_file():
            raise MalmoiError("E401", f"{run} is not a Hugging Face model folder (no config.json)")
        with quiet_transformers():
            model = AutoModelForMaskedLM.from_pretrained(run, dtype=torch.float32)
        return cls(model, load_tokenizer(run))

    @torch.inference_mode()
    def fill(self, text: str, top_k: int = 5) -> list[Filling]:
        """The ``top_k`` most likely pieces for the first ``[MASK]`` of ``text``."""
        tok = self.tokenizer
        if tok.mask_token not in text:
            raise MalmoiError("E441", f"the text holds no {tok.mask_token}: {text!r}")
        enc = tok(text, return_tensors="pt", return_token_type_ids=False)
        where = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
        probs = self.model(**enc).logits[0, where].softmax(-1)  # (V,)
        scores, ids = probs.topk(top_k)
        out = []
        for score, i in zip(scores.tolist(), ids.tolist()):
            piece = tok.convert_ids_to_tokens(i)
            out.append(Filling(piece, score, text.replace(tok.mask_token, piece.removeprefix("##"), 1)))
        return out
