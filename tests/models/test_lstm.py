"""The from-scratch LSTM seq2seq: shapes, masked attention, decoding, a learned copy task, persistence."""
from __future__ import annotations

import pytest
import torch

from malmoi.errors import MalmoiError
from malmoi.models.lstm import ATTENTION_KINDS, LSTMConfig, LSTMSeq2Seq

pytestmark = pytest.mark.usefixtures("one_thread")

PAD, BOS, EOS, FIRST = 0, 2, 3, 4
VOCAB = 12  # ids 4..11 are the copyable symbols
ATTENDING = [k for k in ATTENTION_KINDS if k != "none"]


def tiny(attention: str = "bahdanau", **kw) -> LSTMSeq2Seq:
    torch.manual_seed(0)
    cfg = dict(vocab_size=VOCAB, emb_dim=16, hidden=32, attention=attention, dropout=0.0, max_len=10,
               pad_id=PAD, bos_id=BOS, eos_id=EOS)
    return LSTMSeq2Seq(LSTMConfig(**{**cfg, **kw}))


def copy_batch(n: int, generator: torch.Generator, lo: int = 2, hi: int = 5):
    """Random symbol sequences; the target is the source followed by <eos>, padded with PAD."""
    lengths = torch.randint(lo, hi + 1, (n,), generator=generator)
    src = torch.full((n, hi), PAD)
    labels = torch.full((n, hi + 1), PAD)
    for i, length in enumerate(lengths.tolist()):
        seq = torch.randint(FIRST, VOCAB, (length,), generator=generator)
        src[i, :length] = seq
        labels[i, :length] = seq
        labels[i, length] = EOS
    return src, lengths, labels


def ragged():
    """Three sources of different lengths, padded: the padding must never matter."""
    src = torch.tensor([[5, 6, 7, 8, 9], [5, 6, PAD, PAD, PAD], [11, 4, 10, PAD, PAD]])
    return src, torch.tensor([5, 2, 3])


@pytest.mark.parametrize("attention", ATTENTION_KINDS)
@pytest.mark.parametrize("bidirectional,layers", [(True, 1), (False, 2)])
def test_forward_shapes(attention, bidirectional, layers):
    model = tiny(attention, bidirectional=bidirectional, layers=layers)
    src, lengths = ragged()
    labels = torch.tensor([[4, 5, 6, 7, EOS, PAD, PAD], [8, EOS, PAD, PAD, PAD, PAD, PAD], [9, 9, 9, 9, 9, 9, EOS]])
    out = model(input_ids=src, lengths=lengths, labels=labels)
    assert out.logits.shape == (3, 7, VOCAB)
    assert out.loss.ndim == 0 and out.loss.item() > 0
    if attention == "none":
        assert out.attentions is None
    else:
        assert out.attentions.shape == (3, 7, 5)


def test_pad_labels_and_minus_100_give_the_same_loss():
    model = tiny("bahdanau")
    src, lengths = ragged()
    labels = torch.tensor([[4, 5, EOS, PAD], [8, EOS, PAD, PAD], [9, 9, 9, EOS]])
    a = model(input_ids=src, lengths=lengths, labels=labels).loss
    b = model(input_ids=src, lengths=lengths, labels=labels.masked_fill(labels == PAD, -100)).loss
    c = model(input_ids=src, attention_mask=(src != PAD).long(), labels=labels).loss
    assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("attention", ATTENDING)
def test_attention_rows_sum_to_one_and_ignore_padding(attention):
    model = tiny(attention)
    src, lengths = ragged()
    labels = torch.tensor([[4, 5, 6, EOS], [8, EOS, PAD, PAD], [9, 9, 9, EOS]])
    att = model(input_ids=src, lengths=lengths, labels=labels).attentions  # (B, T, S)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(att[b, :, :n].sum(-1), torch.ones(att.size(1)), atol=1e-5)
        assert torch.all(att[b, :, n:] == 0.0)  # exactly zero, not merely small
    for gen in (model.greedy(src, lengths), model.beam_search(src, lengths, beams=3)):
        for b, n in enumerate(lengths.tolist()):
            rows = gen.attentions[b]
            assert rows.shape == (len(gen.tokens[b]), n)
            assert torch.allclose(rows.sum(-1), torch.ones(rows.size(0)), atol=1e-5)


@pytest.mark.parametrize("attention", ATTENTION_KINDS)
def test_padding_does_not_change_what_a_source_generates(attention):
    model = tiny(attention)
    src, lengths = ragged()
    together = model.greedy(src, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone = model.greedy(src[b : b + 1, :n], lengths[b : b + 1])
        assert alone.tokens[0] == together.tokens[b]


@pytest.mark.parametrize("attention", ATTENTION_KINDS)
def test_beam_width_one_equals_greedy(attention):
    model = tiny(attention)
    # a few training steps give the model preferences (and some <eos>) worth comparing
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        src, lengths, labels = copy_batch(32, g)
        loss = model(input_ids=src, lengths=lengths, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    src, lengths, _ = copy_batch(16, g)
    greedy = model.greedy(src, lengths)
    beam = model.beam_search(src, lengths, beams=1, length_penalty=0.0)  # raw log-prob sums, as greedy reports
    assert beam.tokens == greedy.tokens
    assert beam.scores == pytest.approx(greedy.scores, abs=1e-4)
    if attention != "none":
        for a, b in zip(beam.attentions, greedy.attentions):
            assert torch.allclose(a, b, atol=1e-6)


def test_wider_beam_never_scores_worse_than_greedy_without_length_penalty():
    model = tiny("luong-general")
    src, lengths = ragged()
    greedy = model.greedy(src, lengths, max_len=6)
    beam = model.beam_search(src, lengths, beams=4, length_penalty=0.0, max_len=6)
    for g, b in zip(greedy.scores, beam.scores):
        assert b >= g - 1e-4


def exact_match(model: LSTMSeq2Seq, n: int = 200) -> float:
    src, lengths, _ = copy_batch(n, torch.Generator().manual_seed(123))
    gen = model.greedy(src, lengths)
    return sum(gen.tokens[i] == src[i, : lengths[i]].tolist() for i in range(n)) / n


@pytest.mark.parametrize("attention,max_steps", [("none", 600), ("bahdanau", 300), ("luong-dot", 300),
                                                 ("luong-general", 300)])
def test_copy_task_is_learned(attention, max_steps):
    model = tiny(attention, hidden=48)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    accuracy = 0.0
    for step in range(1, max_steps + 1):
        src, lengths, labels = copy_batch(64, g)
        loss = model(input_ids=src, lengths=lengths, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            accuracy = exact_match(model)
            if accuracy >= 0.95:
                break
    assert accuracy >= 0.95, f"{attention}: exact match {accuracy:.2f} after {step} steps"


@pytest.mark.parametrize("attention", ATTENTION_KINDS)
def test_save_then_load_generates_identically(attention, tmp_path):
    model = tiny(attention, bidirectional=True, layers=2, dropout=0.2, teacher_forcing=0.7)
    src, lengths = ragged()
    model.save(tmp_path / "m")
    loaded = LSTMSeq2Seq.load(tmp_path / "m")
    assert loaded.config == model.config
    for beams in (1, 3):
        a = model.generate(src, lengths, beams=beams)
        b = loaded.generate(src, lengths, beams=beams)
        assert a.tokens == b.tokens and a.scores == b.scores


def test_teacher_forcing_ratio_feeds_own_predictions_only_in_training():
    model = tiny("bahdanau", teacher_forcing=0.0)
    src, lengths = ragged()
    labels = torch.tensor([[4, 5, 6, EOS], [8, EOS, PAD, PAD], [9, 9, 9, EOS]])
    forced = tiny("bahdanau", teacher_forcing=1.0)
    forced.load_state_dict(model.state_dict())
    model.eval(), forced.eval()
    assert torch.equal(model(input_ids=src, lengths=lengths, labels=labels).loss,
                       forced(input_ids=src, lengths=lengths, labels=labels).loss)
    model.train(), forced.train()
    assert not torch.equal(model(input_ids=src, lengths=lengths, labels=labels).loss,
                           forced(input_ids=src, lengths=lengths, labels=labels).loss)


@pytest.mark.parametrize("src,lengths,code", [
    (torch.tensor([[PAD, PAD]]), None, "E421"),                     # empty input
    (torch.tensor([[5, 6], [PAD, PAD]]), torch.tensor([2, 0]), "E421"),
    (torch.full((1, 9), 5), None, "E423"),                          # longer than max_source_len
])
def test_bad_sources_get_clear_errors(src, lengths, code):
    model = tiny("bahdanau", max_source_len=8)
    for decode in (model.greedy, model.beam_search):
        with pytest.raises(MalmoiError) as e:
            decode(src, lengths)
        assert e.value.code == code


@pytest.mark.parametrize("changes", [dict(attention="luong"), dict(hidden=0), dict(teacher_forcing=1.5),
                                     dict(eos_id=VOCAB)])
def test_bad_config_is_refused(changes):
    with pytest.raises(MalmoiError) as e:
        tiny(**{"attention": "bahdanau", **changes})
    assert e.value.code == "E420"


def test_load_refuses_a_folder_without_a_model(tmp_path):
    with pytest.raises(MalmoiError) as e:
        LSTMSeq2Seq.load(tmp_path)
    assert e.value.code == "E425"
