"""The transformer encoder-decoders of ``train seq2seq``: Hugging Face BART (post-norm layers) or
its pre-norm variant (``mbart`` layers: layer norm before each block, a final one after the stack).

From scratch on a CPU budget the pre-norm layers are the ones that learn to read the source: on
sae4k, 2 + 2 layers of 128 reached a training loss of 1.0 in 1,200 steps where the same sizes with
BART's post-norm layers were still at 3.7, answering every utterance with one of a few training
targets.

``PreNormBart`` keeps BART's decoder inputs: Hugging Face's mBART shifts its labels by wrapping the
last token round to the front (its language id), which would train the decoder to start from
``[SEP]`` (or from the last word of a truncated target) while ``generate()`` starts it from
``[CLS]``.

A config may ask for a copy distribution (``copy_attention``, See et al.'s pointer-generator): one
more attention from the decoder's output to the encoder's picks a source position, and a gate mixes
"copy that source token" with the vocabulary's softmax. Rewriting jobs such as sentence compression
keep most of their source's tokens, and copying them needs no learned output embedding for each.
The returned logits are then log-probabilities of that mixture (``generate()`` softmaxes them back).

A config may carry ``label_smoothing`` (a preset field): the training loss then spreads that share
of each target's probability over the vocabulary, as Vaswani et al. trained their transformer. It
applies in training mode only, so validation still reports the plain loss and perplexity.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from transformers import BartForConditionalGeneration, MBartForConditionalGeneration
from transformers.models.bart.modeling_bart import shift_tokens_right


class PreNormBart(MBartForConditionalGeneration):
    """mBART's pre-norm layers with BART's decoder inputs (the decoder start, then the labels), an
    optional copy distribution over the source and optional label smoothing."""

    def __init__(self, config):
        super().__init__(config)
        if self.copies:
            self.copy_query = nn.Linear(config.d_model, config.d_model, bias=False)
            self.copy_gate = nn.Linear(2 * config.d_model, 1)
            self.post_init()

    @property
    def copies(self) -> bool:
        """Whether this model mixes a copy distribution over its source into its output."""
        return bool(getattr(self.config, "copy_attention", False))

    def forward(self, input_ids=None, attention_mask=None, *, labels=None, decoder_input_ids=None,
                decoder_inputs_embeds=None, source_ids=None, **kwargs):
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id,
                                                   self.config.decoder_start_token_id)
        copying = self.copies
        smoothing = getattr(self.config, "label_smoothing", 0.0) if self.training else 0.0
        if copying:
            kwargs["output_hidden_states"] = True  # the decoder's last layer feeds the copy attention
        out = super().forward(input_ids, attention_mask, labels=None if copying or smoothing else labels,
                              decoder_input_ids=decoder_input_ids, decoder_inputs_embeds=decoder_inputs_embeds,
                              **kwargs)
        if copying:
            source = input_ids if input_ids is not None else source_ids
            if source is None:
                raise ValueError("a copying model needs the source ids (input_ids or source_ids) to copy from")
            out.logits = self._copy_mixture(out, source, attention_mask)
        if labels is not None and (copying or smoothing):
            out.loss = nn.functional.cross_entropy(out.logits.flatten(0, 1).float(), labels.flatten(),
                                                   ignore_index=-100, label_smoothing=smoothing)
        return out

    def _copy_mixture(self, out, source: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """log(p_gen · softmax(logits) + (1 − p_gen) · copy), the copy attention scattered onto the
        source tokens' ids: (B, T, V)."""
        decoded = out.decoder_hidden_states[-1]  # (B, T, d), after the decoder's final layer norm
        encoded = out.encoder_last_hidden_state  # (B, S, d)
        scores = self.copy_query(decoded) @ encoded.transpose(1, 2) / math.sqrt(encoded.shape[-1])
        if attention_mask is not None:
            scores = scores.masked_fill(attention_mask[:, None, :] == 0, float("-inf"))
        attention = scores.softmax(-1)  # (B, T, S)
        gate = torch.sigmoid(self.copy_gate(torch.cat([decoded, attention @ encoded], -1)))  # (B, T, 1)
        copied = torch.zeros_like(out.logits).scatter_add_(
            2, source[:, None, :].expand(-1, attention.shape[1], -1), attention)
        mixed = gate * out.logits.softmax(-1) + (1 - gate) * copied
        return mixed.clamp_min(1e-9).log()

    def _prepare_text_encoder_decoder_kwargs_for_generation(self, inputs_tensor, model_kwargs, *args, **kwargs):
        model_kwargs = super()._prepare_text_encoder_decoder_kwargs_for_generation(
            inputs_tensor, model_kwargs, *args, **kwargs)
        if self.copies:
            model_kwargs["source_ids"] = inputs_tensor  # every decoding step copies from the source's ids
        return model_kwargs


def model_class(config):
    """The class that builds and loads a seq2seq transformer of this config."""
    return PreNormBart if config.model_type == "mbart" else BartForConditionalGeneration
