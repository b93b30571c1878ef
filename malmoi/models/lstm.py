"""LSTM sequence-to-sequence model with optional Bahdanau or Luong attention, written from scratch.

Read top to bottom: config → encoder → attention → decoder → the model (training forward,
greedy decoding, batched beam search, save/load). The model only sees integer ids: source and
target share one vocabulary (a word/morpheme ``Vocab`` or a subword tokenizer), and turning
text into ids and back is the caller's job.

Shapes: B batch, S source length, T target length, E embedding size, H hidden size,
L layers, V vocabulary size, K beams.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from malmoi.errors import MalmoiError
from malmoi.files import atomic_write_json

ATTENTION_KINDS = ("none", "bahdanau", "luong-dot", "luong-general")
ARCHITECTURE = "lstm-seq2seq"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
IGNORE_INDEX = -100


@dataclass
class LSTMConfig:
    vocab_size: int
    """Number of ids shared by source and target (one embedding table serves both)."""
    emb_dim: int = 128
    """Embedding size E."""
    hidden: int = 256
    """Hidden size H of the decoder and of each encoder direction."""
    layers: int = 1
    """Stacked LSTM layers in the encoder and in the decoder."""
    bidirectional: bool = True
    """Read the source in both directions; the two final states are projected to H."""
    dropout: float = 0.1
    """Dropout on embeddings, between LSTM layers and before the output layer."""
    attention: str = "bahdanau"
    """One of none, bahdanau, luong-dot, luong-general."""
    pad_id: int = 0
    """Padding id: never attended to, never counted in the loss."""
    bos_id: int = 2
    """Id that starts every decoded sequence."""
    eos_id: int = 3
    """Id that ends a decoded sequence."""
    max_len: int = 64
    """Most tokens generated for one source (without <bos>/<eos>)."""
    max_source_len: int = 256
    """Longest source accepted by generation; longer inputs are refused with a clear error."""
    teacher_forcing: float = 1.0
    """Probability of feeding the gold previous token (rather than the model's own) in training."""

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_KINDS:
            raise MalmoiError("E420", f"unknown attention {self.attention!r}; choose one of {', '.join(ATTENTION_KINDS)}")
        for name in ("vocab_size", "emb_dim", "hidden", "layers", "max_len", "max_source_len"):
            if getattr(self, name) <= 0:
                raise MalmoiError("E420", f"LSTM config: {name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise MalmoiError("E420", f"LSTM config: teacher_forcing must lie in [0, 1], got {self.teacher_forcing}")
        if not 0.0 <= self.dropout < 1.0:
            raise MalmoiError("E420", f"LSTM config: dropout must lie in [0, 1), got {self.dropout}")
        for name in ("pad_id", "bos_id", "eos_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise MalmoiError("E420", f"LSTM config: {name}={getattr(self, name)} is outside the vocabulary")


# ----------------------------------------------------------------------------- encoder


class Encoder(nn.Module):
    """(bi)LSTM over packed sequences: per-position states for attention, final state for the decoder."""

    def __init__(self, cfg: LSTMConfig):
        super().__init__()
        dirs = 2 if cfg.bidirectional else 1
        self.rnn = nn.LSTM(cfg.emb_dim, cfg.hidden, cfg.layers, batch_first=True,
                           bidirectional=cfg.bidirectional, dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.bidirectional = cfg.bidirectional
        if cfg.bidirectional:
            # the decoder is one-directional with H units: squeeze both directions into it
            self.bridge_h = nn.Linear(2 * cfg.hidden, cfg.hidden)
            self.bridge_c = nn.Linear(2 * cfg.hidden, cfg.hidden)
            self.to_memory = nn.Linear(2 * cfg.hidden, cfg.hidden, bias=False)
        self.dirs = dirs

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        B, S, _ = x.shape
        # packing keeps padding out of the recurrence: the final state is that of the last real token
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, c) = self.rnn(packed)  # h, c: (L*dirs, B, H)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=S)  # (B, S, dirs*H)
        if self.bidirectional:
            L = h.size(0) // 2
            h = h.view(L, 2, B, -1).transpose(1, 2).reshape(L, B, -1)  # (L, B, 2H): [forward; backward]
            c = c.view(L, 2, B, -1).transpose(1, 2).reshape(L, B, -1)  # (L, B, 2H)
            h, c = torch.tanh(self.bridge_h(h)), self.bridge_c(c)  # (L, B, H)
            out = self.to_memory(out)  # (B, S, H)
        return out, (h.contiguous(), c.contiguous())


# ----------------------------------------------------------------------------- attention


class Attention(nn.Module):
    """Scores every source position against a decoder query; padding gets exactly zero weight.

    bahdanau:      score = vᵀ tanh(W_q q + W_k m)   (additive; q is the previous decoder state)
    luong-dot:     score = qᵀ m                     (q is the current decoder output)
    luong-general: score = qᵀ W m
    """

    def __init__(self, kind: str, hidden: int):
        super().__init__()
        self.kind = kind
        if kind == "bahdanau":
            self.w_q = nn.Linear(hidden, hidden, bias=False)
            self.w_k = nn.Linear(hidden, hidden)
            self.v = nn.Linear(hidden, 1, bias=False)
        elif kind == "luong-general":
            self.w = nn.Linear(hidden, hidden, bias=False)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """The query-independent half of the score, computed once per source rather than per step."""
        if self.kind == "bahdanau":
            return self.w_k(memory)  # (B, S, H)
        if self.kind == "luong-general":
            return self.w(memory)  # (B, S, H)
        return memory

    def forward(self, query: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor):
        if self.kind == "bahdanau":
            scores = self.v(torch.tanh(self.w_q(query).unsqueeze(1) + keys)).squeeze(-1)  # (B, S)
        else:
            scores = torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)  # (B, S)
        # exp(-inf) is exactly 0, so padded positions carry no weight at all
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # (B, S)
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)  # (B, H)
        return context, weights


# ----------------------------------------------------------------------------- decoder


@dataclass
class DecoderState:
    h: torch.Tensor
    """LSTM hidden state, (L, B, H)."""
    c: torch.Tensor
    """LSTM cell state, (L, B, H)."""
    feed: torch.Tensor
    """Luong's previous attentional state h̃, fed back as input (zeros for other kinds), (B, H)."""

    def select(self, index: torch.Tensor) -> "DecoderState":
        """Reorder/expand along the batch (beam search)."""
        return DecoderState(self.h.index_select(1, index), self.c.index_select(1, index), self.feed.index_select(0, index))


class Decoder(nn.Module):
    """One LSTM step at a time: previous token (+ context) → next-token logits.

    bahdanau: c_t = attn(s_{t-1}); s_t = LSTM([y_{t-1}; c_t]); logits = W_o tanh(W_c [s_t; c_t])
    luong:    h_t = LSTM([y_{t-1}; h̃_{t-1}]); c_t = attn(h_t); h̃_t = tanh(W_c [c_t; h_t]); logits = W_o h̃_t
    none:     h_t = LSTM(y_{t-1}); logits = W_o h_t   (the source reaches the decoder only via s_0)
    """

    def __init__(self, cfg: LSTMConfig):
        super().__init__()
        self.kind = cfg.attention
        H = cfg.hidden
        in_dim = cfg.emb_dim + (0 if cfg.attention == "none" else H)
        # cells rather than nn.LSTM: the decoder runs one step per call, where a cell has less overhead
        self.cells = nn.ModuleList([nn.LSTMCell(in_dim if i == 0 else H, H) for i in range(cfg.layers)])
        if cfg.attention != "none":
            self.attention = Attention(cfg.attention, H)
            self.combine = nn.Linear(2 * H, H, bias=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(H, cfg.vocab_size)

    def step(self, y_emb: torch.Tensor, state: DecoderState, memory: torch.Tensor, keys: torch.Tensor,
             mask: torch.Tensor):
        """y_emb (B, E) → logits (B, V), new state, attention weights (B, S) or None."""
        weights = None
        if self.kind == "none":
            out, h, c = self._rnn(y_emb, state)  # out: (B, H)
            hidden, feed = out, state.feed
        elif self.kind == "bahdanau":
            context, weights = self.attention(state.h[-1], memory, keys, mask)  # (B, H), (B, S)
            out, h, c = self._rnn(torch.cat([y_emb, context], -1), state)  # (B, H)
            hidden = torch.tanh(self.combine(torch.cat([out, context], -1)))  # (B, H)
            feed = state.feed
        else:  # luong-dot, luong-general
            out, h, c = self._rnn(torch.cat([y_emb, state.feed], -1), state)  # (B, H)
            context, weights = self.attention(out, memory, keys, mask)  # (B, H), (B, S)
            hidden = torch.tanh(self.combine(torch.cat([context, out], -1)))  # (B, H)
            feed = hidden
        logits = self.out(self.drop(hidden))  # (B, V)
        return logits, DecoderState(h, c, feed), weights

    def _rnn(self, x: torch.Tensor, state: DecoderState):
        """One step through the stacked cells: x (B, in) → top output (B, H), h and c (L, B, H)."""
        hs, cs = [], []
        for i, cell in enumerate(self.cells):
            h_i, c_i = cell(x, (state.h[i], state.c[i]))  # (B, H)
            hs.append(h_i)
            cs.append(c_i)
            x = self.drop(h_i) if i + 1 < len(self.cells) else h_i
        return x, torch.stack(hs), torch.stack(cs)


# ----------------------------------------------------------------------------- the model


@dataclass
class Seq2SeqOutput:
    loss: torch.Tensor | None
    """Mean cross-entropy over non-padding target tokens (None without labels)."""
    logits: torch.Tensor
    """Next-token scores, (B, T, V)."""
    attentions: torch.Tensor | None
    """Attention weights, (B, T, S); None for attention="none"."""


@dataclass
class Generation:
    tokens: list[list[int]]
    """Generated ids for each source, without <bos> and <eos>."""
    attentions: list[torch.Tensor | None]
    """For each source, weights (len(tokens), source length) or None without attention."""
    scores: list[float]
    """Sum of token log-probabilities (divided by length**length_penalty for beam search)."""


class LSTMSeq2Seq(nn.Module):
    def __init__(self, cfg: LSTMConfig):
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.emb_dim, padding_idx=cfg.pad_id)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    # -- shared by training and decoding

    def _lengths(self, input_ids, lengths, attention_mask) -> torch.Tensor:
        if lengths is None:
            lengths = attention_mask.sum(-1) if attention_mask is not None else (input_ids != self.config.pad_id).sum(-1)
        lengths = lengths.long()
        if lengths.numel() and int(lengths.min()) == 0:
            raise MalmoiError("E421", "empty source: every input needs at least one token")
        return lengths

    def encode(self, input_ids: torch.Tensor, lengths: torch.Tensor):
        """Source ids (B, S) → memory (B, S, H), attention keys (B, S, H), mask (B, S), initial decoder state."""
        B, S = input_ids.shape
        memory, (h, c) = self.encoder(self.drop(self.embed(input_ids)), lengths)  # (B, S, H)
        mask = torch.arange(S, device=input_ids.device)[None, :] < lengths.to(input_ids.device)[:, None]  # (B, S)
        keys = self.decoder.attention.keys(memory) if self.config.attention != "none" else memory
        feed = memory.new_zeros(B, self.config.hidden)  # (B, H)
        return memory, keys, mask, DecoderState(h, c, feed)

    def _embed_step(self, y: torch.Tensor) -> torch.Tensor:
        return self.drop(self.embed(y))  # (B, E)

    # -- training

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                decoder_input_ids: torch.Tensor | None = None,
                decoder_attention_mask: torch.Tensor | None = None) -> Seq2SeqOutput:
        """Teacher-forced pass. ``labels`` (B, T) are the target ids ending in <eos>, padded with
        pad_id or -100; ``decoder_input_ids`` defaults to labels shifted right behind <bos>.
        ``decoder_attention_mask`` is accepted for collators that send it; padding is read off the labels."""
        cfg = self.config
        if labels is None and decoder_input_ids is None:
            raise MalmoiError("E422", "LSTMSeq2Seq.forward needs labels or decoder_input_ids; use generate() to decode")
        lengths = self._lengths(input_ids, lengths, attention_mask)
        if labels is not None:
            labels = labels.masked_fill(labels == cfg.pad_id, IGNORE_INDEX)  # (B, T)
        if decoder_input_ids is None:
            shifted = labels[:, :-1].masked_fill(labels[:, :-1] == IGNORE_INDEX, cfg.pad_id)  # (B, T-1)
            decoder_input_ids = torch.cat([torch.full_like(labels[:, :1], cfg.bos_id), shifted], 1)  # (B, T)
        memory, keys, mask, state = self.encode(input_ids, lengths)
        ratio = cfg.teacher_forcing if self.training else 1.0
        B, T = decoder_input_ids.shape
        y = decoder_input_ids[:, 0]  # (B,)
        all_logits, all_weights = [], []
        for t in range(T):
            logits, state, weights = self.decoder.step(self._embed_step(y), state, memory, keys, mask)  # (B, V)
            all_logits.append(logits)
            all_weights.append(weights)
            if t + 1 < T:
                y = decoder_input_ids[:, t + 1]
                if ratio < 1.0:
                    # per example: with probability 1 - ratio feed the model's own guess instead of the gold token
                    own = torch.rand(B, device=y.device) >= ratio  # (B,)
                    y = torch.where(own, logits.argmax(-1).detach(), y)
        logits = torch.stack(all_logits, 1)  # (B, T, V)
        attentions = None if cfg.attention == "none" else torch.stack(all_weights, 1)  # (B, T, S)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return Seq2SeqOutput(loss, logits, attentions)

    # -- decoding

    def _prepare(self, input_ids, lengths, attention_mask):
        lengths = self._lengths(input_ids, lengths, attention_mask)
        longest = int(lengths.max()) if lengths.numel() else 0
        if longest > self.config.max_source_len:
            raise MalmoiError("E423", f"input has {longest} tokens; this model accepts at most "
                                      f"{self.config.max_source_len} (max_source_len)")
        return lengths

    @torch.no_grad()
    def greedy(self, input_ids: torch.Tensor, lengths: torch.Tensor | None = None,
               attention_mask: torch.Tensor | None = None, max_len: int | None = None) -> Generation:
        """Pick the most likely token at each step, for a whole batch of sources at once."""
        cfg = self.config
        lengths = self._prepare(input_ids, lengths, attention_mask)
        was_training = self.training
        self.eval()
        try:
            memory, keys, mask, state = self.encode(input_ids, lengths)
            B = input_ids.size(0)
            y = input_ids.new_full((B,), cfg.bos_id)  # (B,)
            done = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
            steps, rows, score = [], [], torch.zeros(B, device=input_ids.device)
            for _ in range(max_len or cfg.max_len):
                logits, state, weights = self.decoder.step(self._embed_step(y), state, memory, keys, mask)  # (B, V)
                logp = torch.log_softmax(logits.float(), -1)  # (B, V)
                y = logp.argmax(-1)  # (B,)
                score += torch.where(done, 0.0, logp.gather(1, y[:, None]).squeeze(1))
                steps.append(torch.where(done, cfg.eos_id, y))
                rows.append(weights)
                done |= y == cfg.eos_id
                if bool(done.all()):
                    break
            ids = torch.stack(steps, 1).tolist()  # (B, T)
            tokens, attentions = [], []
            for b in range(B):
                n = ids[b].index(cfg.eos_id) if cfg.eos_id in ids[b] else len(ids[b])
                tokens.append(ids[b][:n])
                if rows[0] is None:
                    attentions.append(None)
                else:
                    att = torch.stack([r[b] for r in rows], 0)[:n, : lengths[b]]  # (n, S_b)
                    attentions.append(att.cpu())
            return Generation(tokens, attentions, score.tolist())
        finally:
            self.train(was_training)

    @torch.no_grad()
    def beam_search(self, input_ids: torch.Tensor, lengths: torch.Tensor | None = None,
                    attention_mask: torch.Tensor | None = None, beams: int = 4, length_penalty: float = 1.0,
                    max_len: int | None = None) -> Generation:
        """Keep the ``beams`` best partial answers per source (all sources decoded together).

        A hypothesis that ends in <eos> leaves the beam with score sum(log p) / length**length_penalty
        (length counts the <eos>); a source is done once it holds ``beams`` finished hypotheses.
        With beams=1 this is exactly greedy decoding.
        """
        cfg = self.config
        if beams < 1:
            raise MalmoiError("E424", f"beams must be at least 1, got {beams}")
        lengths = self._prepare(input_ids, lengths, attention_mask)
        was_training = self.training
        self.eval()
        try:
            B, S, K, V = input_ids.size(0), input_ids.size(1), beams, cfg.vocab_size
            memory, keys, mask, state = self.encode(input_ids, lengths)
            expand = torch.arange(B, device=input_ids.device).repeat_interleave(K)  # (B*K,)
            memory, keys, mask, state = memory[expand], keys[expand], mask[expand], state.select(expand)  # (B*K, S, H)…
            # only beam 0 is alive at the start, so the first step does not pick K copies of one token
            scores = torch.full((B, K), float("-inf"), device=input_ids.device)
            scores[:, 0] = 0.0
            y = input_ids.new_full((B * K,), cfg.bos_id)  # (B*K,)
            history = input_ids.new_zeros(B * K, 0)  # (B*K, t)
            rows = memory.new_zeros(B * K, 0, S)  # (B*K, t, S)
            finished: list[list[tuple[float, list[int], torch.Tensor]]] = [[] for _ in range(B)]
            done = [False] * B
            steps = max_len or cfg.max_len
            for t in range(steps):
                logits, state, weights = self.decoder.step(self._embed_step(y), state, memory, keys, mask)  # (B*K, V)
                logp = torch.log_softmax(logits.float(), -1)  # (B*K, V)
                cand = (scores.view(-1, 1) + logp).view(B, K * V)  # (B, K*V)
                top_scores, top_idx = cand.topk(min(2 * K, K * V), dim=1)  # (B, 2K)
                top_beam, top_tok = (top_idx // V).tolist(), (top_idx % V).tolist()
                top_scores_l = top_scores.tolist()
                next_beam = [[0] * K for _ in range(B)]
                next_tok = [[cfg.pad_id] * K for _ in range(B)]
                next_score = [[float("-inf")] * K for _ in range(B)]
                for b in range(B):
                    if done[b]:
                        continue
                    k = 0
                    for rank, s in enumerate(top_scores_l[b]):
                        if s == float("-inf"):
                            break
                        beam, tok = top_beam[b][rank], top_tok[b][rank]
                        if tok == cfg.eos_id:
                            if rank < K:  # an <eos> below the top K would not have survived the beam
                                i = b * K + beam
                                finished[b].append((s / (t + 1) ** length_penalty, history[i].tolist(), rows[i]))
                            continue
                        next_beam[b][k], next_tok[b][k], next_score[b][k] = beam, tok, s
                        k += 1
                        if k == K:
                            break
                    done[b] = len(finished[b]) >= K
                if all(done):
                    break
                index = (torch.arange(B)[:, None] * K + torch.tensor(next_beam)).view(-1).to(input_ids.device)  # (B*K,)
                y = torch.tensor(next_tok, device=input_ids.device).view(-1)  # (B*K,)
                scores = torch.tensor(next_score, device=input_ids.device)  # (B, K)
                state = state.select(index)
                history = torch.cat([history[index], y[:, None]], 1)  # (B*K, t+1)
                step_rows = weights[index] if weights is not None else memory.new_zeros(B * K, S)
                rows = torch.cat([rows[index], step_rows[:, None]], 1)  # (B*K, t+1, S)
            # sources still open at the length limit keep their live hypotheses
            for b in range(B):
                if not done[b]:
                    for k in range(K):
                        s = float(scores[b, k])
                        if s > float("-inf"):
                            n = history.size(1)
                            finished[b].append((s / max(n, 1) ** length_penalty, history[b * K + k].tolist(),
                                                rows[b * K + k]))
            tokens, attentions, best_scores = [], [], []
            for b in range(B):
                s, toks, att = max(finished[b], key=lambda f: f[0])
                tokens.append(toks)
                best_scores.append(s)
                attentions.append(None if cfg.attention == "none" else att[:, : lengths[b]].cpu())
            return Generation(tokens, attentions, best_scores)
        finally:
            self.train(was_training)

    def generate(self, input_ids: torch.Tensor, lengths: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, beams: int = 1, length_penalty: float = 1.0,
                 max_len: int | None = None) -> Generation:
        """Greedy for beams=1, beam search otherwise."""
        if beams == 1:
            return self.greedy(input_ids, lengths, attention_mask, max_len)
        return self.beam_search(input_ids, lengths, attention_mask, beams, length_penalty, max_len)

    # -- persistence: config.json + model.safetensors, loading calls the constructor again

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_model

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / CONFIG_FILE, {"architecture": ARCHITECTURE, **asdict(self.config)})
        save_model(self, str(folder / WEIGHTS_FILE))

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> "LSTMSeq2Seq":
        from safetensors.torch import load_model

        folder = Path(folder)
        cfg_path, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        if not cfg_path.is_file() or not weights.is_file():
            raise MalmoiError("E425", f"{folder} holds no LSTM model ({CONFIG_FILE} and {WEIGHTS_FILE} expected)")
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
        if raw.get("architecture") != ARCHITECTURE:
            raise MalmoiError("E425", f"{cfg_path} describes {raw.get('architecture')!r}, not {ARCHITECTURE!r}")
        known = {f.name for f in fields(LSTMConfig)}
        model = cls(LSTMConfig(**{k: v for k, v in raw.items() if k in known}))
        load_model(model, str(weights), device=str(device))
        return model.eval()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ----------------------------------------------------------------------------- presets


def config_from_preset(name: str, **fields_: object) -> LSTMConfig:
    """The config of a preset; ``fields_`` supply the vocabulary size and ids, and may replace preset sizes."""
    from malmoi.models.presets import get_preset

    preset = get_preset(name)
    if preset.model_type != "lstm":
        raise MalmoiError("E221", f"preset {name!r} is a {preset.model_type} model, not an LSTM seq2seq")
    return LSTMConfig(**{**preset.config, **fields_})
