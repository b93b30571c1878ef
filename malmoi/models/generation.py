"""Text generation for Hugging Face models: greedy, sampling (top-k, top-p, temperature),
repetition penalty, per-row ``<eos>``, left-padded batches and streaming.

Semantics follow ``transformers``' ``generate()``: the same logits processors in the same order,
``multinomial`` sampling (so a seed draws what ``torch.manual_seed(seed); model.generate()``
draws), finished rows filled with the pad token, output = prompt + new tokens. GPT-2 models run
on ``gpt2_decoder.GPT2Decoder``, a lean loop over a preallocated cache whose logits equal the
Hugging Face forward's bit for bit (an inference forward: no dropout, as in eval mode); beam
search and every other model type (BART included) go to ``model.generate()``.

    ids = generate(model, input_ids, max_new_tokens=50, greedy=False, top_k=50, seed=0)
    for piece in generate_text(model, tokenizer, "이 영화는", GenerationSettings(), stream=True):
        print(piece, end="", flush=True)
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace

import torch

from malmoi.models.gpt2_decoder import GPT2Decoder, KVCache, supports
from malmoi.errors import MalmoiError


@dataclass(frozen=True)
class GenerationSettings:
    """How to pick each next token; the defaults are greedy decoding of 50 tokens."""

    max_new_tokens: int = 50
    """Most tokens to add after the prompt."""
    greedy: bool = True
    """Pick the most likely token; False samples (with top_k / top_p / temperature)."""
    beams: int = 1
    """Beam search width; above 1 runs Hugging Face beam search."""
    top_k: int = 0
    """Sample only among the k most likely tokens (0 = no limit)."""
    top_p: float = 1.0
    """Sample only from the smallest set of tokens whose probability reaches p (1 = no limit)."""
    temperature: float = 1.0
    """Divide logits by this before sampling (below 1 = sharper)."""
    repetition_penalty: float = 1.0
    """Hugging Face's penalty on every token already present (1 = off; 1.2 is common)."""
    eos_token_id: int | list[int] | None = None
    """Token(s) that end a row; None = the model's generation config; [] = none."""
    pad_token_id: int | None = None
    """Fills rows that ended; None = the model's, else the first eos."""
    seed: int | None = None
    """Seed of the sampling generator: same seed, same text (None = torch's global RNG)."""

    def __post_init__(self):
        checks = [
            (self.max_new_tokens >= 0, f"max_new_tokens must be 0 or more, got {self.max_new_tokens}"),
            (self.beams >= 1, f"beams must be 1 or more, got {self.beams}"),
            (self.top_k >= 0, f"top_k must be 0 (off) or more, got {self.top_k}"),
            (0.0 < self.top_p <= 1.0, f"top_p must be in (0, 1], got {self.top_p}"),
            (self.temperature > 0.0, f"temperature must be above 0, got {self.temperature}"),
            (self.repetition_penalty > 0.0, f"repetition_penalty must be above 0, got {self.repetition_penalty}"),
        ]
        for ok, message in checks:
            if not ok:
                raise MalmoiError("E270", message)

    def hf_kwargs(self) -> dict:
        """The same settings as keyword arguments of Hugging Face ``generate()``."""
        kwargs = dict(
            max_new_tokens=self.max_new_tokens,
            do_sample=not self.greedy,
            num_beams=self.beams,
            repetition_penalty=self.repetition_penalty,
        )
        if not self.greedy:
            kwargs.update(top_k=self.top_k, top_p=self.top_p, temperature=self.temperature)
        if self.eos_token_id == []:
            kwargs["eos_token_id"] = None  # an explicit None turns eos off; a missing key means the model's
        elif self.eos_token_id is not None:
            kwargs["eos_token_id"] = self.eos_token_id
        if self.pad_token_id is not None:
            kwargs["pad_token_id"] = self.pad_token_id
        return kwargs


def generate(
    model,
    input_ids: torch.Tensor,
    settings: GenerationSettings | None = None,
    *,
    attention_mask: torch.Tensor | None = None,
    stream: bool = False,
    **fields,
) -> torch.Tensor | Iterator[torch.Tensor]:
    """Continue ``input_ids`` (B, T0), left-padded where ``attention_mask`` (B, T0) has zeros.

    Returns the sequences (B, T0 + new) like ``model.generate()`` (for encoder-decoder models, the
    decoder's tokens); with ``stream=True``, an iterator of each step's new tokens (B,).
    ``fields`` override ``settings`` (``generate(model, ids, max_new_tokens=20, greedy=False)``).
    """
    settings = replace(settings or GenerationSettings(), **fields)
    if input_ids.dim() != 2:
        raise MalmoiError("E271", f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise MalmoiError("E271", "attention_mask must have the shape of input_ids")
    if settings.beams == 1 and supports(model):
        loop = _DecodeLoop(GPT2Decoder(model), model, input_ids, attention_mask, settings)
        return _stream_fast(loop) if stream else loop.run()
    if stream:
        return _stream_hf(model, input_ids, attention_mask, settings)
    return _generate_hf(model, input_ids, attention_mask, settings)


class _DecodeLoop:
    """State of one fast generation: token buffer, cache, finished rows, sampling generator."""

    def __init__(self, decoder: GPT2Decoder, model, input_ids, attention_mask, s: GenerationSettings):
        B, T0 = input_ids.shape
        if T0 == 0:
            raise MalmoiError("E271", "the prompt is empty: give at least one token")
        if T0 + s.max_new_tokens > decoder.max_positions:
            raise MalmoiError(
                "E470",
                f"prompt ({T0} tokens) + max_new_tokens ({s.max_new_tokens}) exceeds the model's "
                f"{decoder.max_positions} positions",
            )
        device = input_ids.device
        self.decoder, self.s = decoder, s
        self.eos = _eos_tensor(model, s, device)
        self.pad = _pad_id(model, s, self.eos)
        self.prompt_len = T0
        self.tokens = torch.empty(B, T0 + s.max_new_tokens, dtype=torch.long, device=device)
        self.tokens[:, :T0] = input_ids
        self.produced = 0
        self.unfinished = torch.ones(B, dtype=torch.bool, device=device)
        self.done = s.max_new_tokens == 0
        self.generator = None
        if not s.greedy and s.seed is not None:
            self.generator = torch.Generator(device=device).manual_seed(s.seed)
        # Hugging Face positions: count real tokens only, so a left-padded row starts at 0.
        if attention_mask is None:
            positions = torch.arange(T0, device=device).expand(B, T0)
        else:
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        self.prompt_positions = positions
        self.position = positions[:, -1].clone()
        self.seen = None
        if s.repetition_penalty != 1.0:
            # Tokens already present, as a (B, V) mask; padding is not counted (as in HF).
            V = decoder.lm_head.shape[0]
            self.seen = torch.zeros(B, V + 1, dtype=torch.bool, device=device)
            prompt = input_ids if attention_mask is None else input_ids.masked_fill(attention_mask == 0, V)
            self.seen.scatter_(1, prompt, True)
            self.seen = self.seen[:, :V]
        self.cache: KVCache | None = None
        self._attention_mask = attention_mask
        self.logits: torch.Tensor | None = None

    def run(self) -> torch.Tensor:
        """Generate to the end; the sequences (B, T0 + new)."""
        with torch.inference_mode():
            while self.advance() is not None:
                pass
        return self.tokens[:, : self.prompt_len + self.produced].clone()

    def advance(self) -> torch.Tensor | None:
        """Pick one more token per row (B,), or None when generation has ended."""
        if self.done:
            return None
        if self.logits is None:
            B = self.tokens.shape[0]
            self.cache = self.decoder.new_cache(self._attention_mask, B, self.tokens.shape[1])
            prompt = self.tokens[:, : self.prompt_len]
            self.logits = self.decoder.prefill(prompt, self.prompt_positions, self.cache)
        else:
            t = self.prompt_len + self.produced - 1  # slot of the last picked token
            self.position += 1
            self.logits = self.decoder.step(self.tokens[:, t], self.position, self.cache, t)
        token = self._pick(self.logits.float())
        if self.eos is not None:
            token = torch.where(self.unfinished, token, self.pad)
            self.unfinished &= ~torch.isin(token, self.eos)
        self.tokens[:, self.prompt_len + self.produced] = token
        self.produced += 1
        if self.seen is not None:
            self.seen.scatter_(1, token.unsqueeze(1), True)
        if self.produced == self.s.max_new_tokens or (self.eos is not None and not bool(self.unfinished.any())):
            self.done = True
        return token

    def _pick(self, logits: torch.Tensor) -> torch.Tensor:
        """Next token from last-position logits (B, V): HF's processors, then argmax or a draw."""
        s = self.s
        if self.seen is not None:
            penalised = torch.where(logits < 0, logits * s.repetition_penalty, logits / s.repetition_penalty)
            logits = torch.where(self.seen, penalised, logits)
        if s.greedy:
            return logits.argmax(-1)
        logits = _warp(logits, s)
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1)


def _warp(logits: torch.Tensor, s: GenerationSettings) -> torch.Tensor:
    """Temperature, top-k, top-p, in HF's order and with HF's tie rules."""
    if s.temperature != 1.0:
        logits = logits / s.temperature
    if s.top_k:
        kth = torch.topk(logits, min(s.top_k, logits.shape[-1]))[0][..., -1, None]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if s.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False)
        remove = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= (1 - s.top_p)
        remove[..., -1:] = False  # always keep the most likely token
        logits = logits.masked_fill(remove.scatter(1, order, remove), float("-inf"))
    return logits


def _stream_fast(loop: _DecodeLoop) -> Iterator[torch.Tensor]:
    # inference_mode is entered per step so that it never leaks into the caller between yields.
    while True:
        with torch.inference_mode():
            token = loop.advance()
        if token is None:
            return
        yield token.clone()


def _eos_tensor(model, s: GenerationSettings, device) -> torch.Tensor | None:
    eos = s.eos_token_id
    if eos is None:
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None or eos == []:
        return None
    return torch.tensor([eos] if isinstance(eos, int) else list(eos), dtype=torch.long, device=device)


def _pad_id(model, s: GenerationSettings, eos: torch.Tensor | None) -> int:
    if s.pad_token_id is not None:
        return s.pad_token_id
    pad = getattr(getattr(model, "generation_config", None), "pad_token_id", None)
    if pad is not None:
        return int(pad)
    return int(eos[0]) if eos is not None else 0


def _hf_call(model, input_ids, attention_mask, s: GenerationSettings, **extra):
    kwargs = s.hf_kwargs()
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if kwargs.get("pad_token_id") is None and model.generation_config.pad_token_id is None:
        kwargs["pad_token_id"] = _pad_id(model, s, _eos_tensor(model, s, input_ids.device))
    with torch.random.fork_rng(devices=[]):
        if s.seed is not None:
            torch.manual_seed(s.seed)
        with torch.inference_mode():
            return model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs, **extra)


def _generate_hf(model, input_ids, attention_mask, s: GenerationSettings) -> torch.Tensor:
    """Beam search and unsupported models: Hugging Face ``generate()`` with the same settings."""
    if s.max_new_tokens == 0:
        return input_ids.clone()
    return _hf_call(model, input_ids, attention_mask, s)


class _QueueStreamer:
    """Hugging Face streamer protocol (``put``/``end``) feeding a queue; skips the prompt."""

    def __init__(self):
        self.queue: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # the first put is the prompt (or the decoder start token)
            self._prompt_seen = True
            return
        self.queue.put(value.reshape(-1).clone())

    def end(self) -> None:
        self.queue.put(None)


def _stream_hf(model, input_ids, attention_mask, s: GenerationSettings) -> Iterator[torch.Tensor]:
    if input_ids.shape[0] != 1:
        raise MalmoiError("E271", "streaming this model supports one prompt at a time")
    if s.beams > 1:
        # Beam search only knows its tokens at the end: yield them one by one.
        sequences = _generate_hf(model, input_ids, attention_mask, s)
        start = 0 if model.config.is_encoder_decoder else input_ids.shape[1]
        for token in sequences[0, start:]:
            yield token.reshape(1)
        return
    streamer = _QueueStreamer()
    failure: list[BaseException] = []

    def work():
        try:
            _hf_call(model, input_ids, attention_mask, s, streamer=streamer)
        except BaseException as e:  # re-raised in the consuming thread
            failure.append(e)
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while (token := streamer.queue.get()) is not None:
        yield token
    thread.join()
    if failure:
        raise failure[0]


# ---- text ---------------------------------------------------------------------------------


def decode(tokenizer, ids) -> str:
    """Text of ``ids`` without special tokens; no space clean-up, so that decoding a longer
    sequence only ever appends to the text of a shorter one (what streaming relies on)."""
    return tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)


def stream_text(tokenizer, prompt_ids: list[int], tokens: Iterator[int],
                eos_id: int | None = None) -> Generator[str, None, str]:
    """Text pieces as ``tokens`` arrive after ``prompt_ids``; concatenated, they equal the
    continuation ``generate_text`` returns. The generator returns why it stopped: ``"eos"`` when
    the last token was ``eos_id``, else ``"length"`` (what a server reports as the finish reason).

    Byte-level BPE can split one UTF-8 character (every Hangul syllable is three bytes) over
    several tokens; the partial decode then ends in U+FFFD. Like transformers' ``TextStreamer``,
    the whole sequence is decoded each step and only the new, complete suffix is emitted.
    """
    ids = list(prompt_ids)
    base = decode(tokenizer, ids)
    emitted = 0  # characters of the continuation already yielded
    for token in tokens:
        ids.append(int(token))
        text = decode(tokenizer, ids)
        stable = text.rstrip("\ufffd")
        if len(stable) - len(base) > emitted and stable.startswith(base):
            yield stable[len(base) + emitted :]
            emitted = len(stable) - len(base)
    rest = continuation(tokenizer, prompt_ids, ids[len(prompt_ids) :])[emitted:]
    if rest:
        yield rest
    return "eos" if eos_id is not None and len(ids) > len(prompt_ids) and ids[-1] == eos_id else "length"


def continuation(tokenizer, prompt_ids: list[int], new_ids: list[int]) -> str:
    """The text ``new_ids`` add after the prompt (decoded together, so spacing at the seam is
    what the tokenizer produces for the whole)."""
    base = decode(tokenizer, prompt_ids)
    text = decode(tokenizer, list(prompt_ids) + list(new_ids))
    return text[len(base) :] if text.startswith(base) else decode(tokenizer, new_ids)


def encode_prompt(tokenizer, prompt: str, device=None) -> list[int]:
    """Token ids of ``prompt`` as the model reads it (with a leading BOS when the tokenizer has one
    and does not add it itself)."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos] + ids
    return ids


def encode_turn(tokenizer, question: str) -> list[int]:
    """A chat language model's prompt: ``bos question eos``, after which it writes the answer and an
    eos (the turn format of ``data.datasets.ChatDataset``)."""
    return encode_prompt(tokenizer, question) + [tokenizer.eos_token_id]


def generate_text(
    model, tokenizer, prompt: str, settings: GenerationSettings | None = None, *, stream: bool = False,
    reply: bool = False,
) -> str | Iterator[str]:
    """Continue ``prompt``; the new text, or with ``stream=True`` an iterator of its pieces. With
    ``reply`` a decoder-only model answers the prompt as a chat turn (``encode_turn``)."""
    settings = settings or GenerationSettings()
    if settings.eos_token_id is None and tokenizer.eos_token_id is not None:
        settings = replace(settings, eos_token_id=tokenizer.eos_token_id)
    if settings.pad_token_id is None and tokenizer.pad_token_id is not None:
        settings = replace(settings, pad_token_id=tokenizer.pad_token_id)
    prompt_ids = encode_turn(tokenizer, prompt) if reply else encode_prompt(tokenizer, prompt)
    if not prompt_ids:
        raise MalmoiError("E271", "the prompt is empty and the tokenizer has no BOS token to start from")
    device = next(model.parameters()).device
    input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    # A decoder-only model continues the prompt's text; an encoder-decoder starts a new one.
    context = [] if model.config.is_encoder_decoder or reply else prompt_ids
    start = 0 if model.config.is_encoder_decoder else len(prompt_ids)  # a decoder-only model returns the prompt too
    if stream:
        tokens = (int(t[0]) for t in generate(model, input_ids, settings, stream=True))
        return stream_text(tokenizer, context, tokens, settings.eos_token_id)
    new_ids = generate(model, input_ids, settings)[0, start:].tolist()
    return continuation(tokenizer, context, new_ids)
