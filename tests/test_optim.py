"""LazyAdamW and clip_grad_norm: AdamW's update where every row is touched, nothing where none is."""
from __future__ import annotations

import torch
from torch import nn

from malmoi.training.optim import LazyAdamW, clip_grad_norm, has_sparse_gradients


def twins() -> tuple[nn.Embedding, nn.Embedding]:
    """A dense table and a sparse one with the same weights."""
    torch.manual_seed(0)
    dense = nn.Embedding(6, 3)
    other = nn.Embedding(6, 3, sparse=True)
    other.load_state_dict(dense.state_dict())
    return dense, other


def test_dense_parameters_get_adamws_update():
    torch.manual_seed(0)
    a, b = nn.Linear(5, 3), nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.AdamW(a.parameters(), lr=1e-2, weight_decay=0.1)
    opt_b = LazyAdamW(b.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(5):
        x = torch.randn(4, 5)
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    assert torch.allclose(a.weight, b.weight, atol=1e-6) and torch.allclose(a.bias, b.bias, atol=1e-6)


def test_sparse_rows_touched_every_step_match_dense_adamw_with_clipping():
    dense, sparse = twins()
    opt_d = torch.optim.AdamW(dense.parameters(), lr=1e-2, weight_decay=0.1)
    opt_s = LazyAdamW(sparse.parameters(), lr=1e-2, weight_decay=0.1)
    ids = torch.tensor([0, 1, 2, 3, 4, 5, 1, 1])  # repeated rows: the gradient is uncoalesced
    for step in range(6):
        w = torch.randn(len(ids), 3, generator=torch.Generator().manual_seed(step))
        norms = []
        for emb, opt, clip in ((dense, opt_d, torch.nn.utils.clip_grad_norm_), (sparse, opt_s, clip_grad_norm)):
            opt.zero_grad()
            (emb(ids) * w).sum().backward()
            norms.append(clip(emb.parameters(), 0.5))
            opt.step()
        assert torch.allclose(norms[0], norms[1], atol=1e-5)
        assert norms[0] > 0.5  # clipping really happened
    assert sparse.weight.grad is None or sparse.weight.grad.is_sparse
    assert torch.allclose(dense.weight, sparse.weight, atol=1e-6)


def test_untouched_rows_do_not_move_or_decay():
    _, emb = twins()
    before = emb.weight.detach().clone()
    opt = LazyAdamW(emb.parameters(), lr=0.1, weight_decay=0.5)
    for _ in range(3):
        opt.zero_grad()
        emb(torch.tensor([1, 4])).sum().backward()
        opt.step()
    moved = (emb.weight != before).any(1).tolist()
    assert moved == [False, True, False, False, True, False]


def test_state_dict_round_trip_continues_identically():
    _, a = twins()
    _, b = twins()
    opt_a, opt_b = LazyAdamW(a.parameters(), lr=0.05), LazyAdamW(b.parameters(), lr=0.05)

    def step(emb, opt, ids):
        opt.zero_grad()
        emb(torch.tensor(ids)).pow(2).sum().backward()
        opt.step()

    for ids in ([1, 2], [2, 3]):
        step(a, opt_a, ids)
        step(b, opt_b, ids)
    restored = LazyAdamW(b.parameters(), lr=0.05)
    restored.load_state_dict(opt_b.state_dict())
    step(a, opt_a, [1, 3])
    step(b, restored, [1, 3])
    assert torch.equal(a.weight, b.weight)


def test_dense_only_clipping_is_torchs():
    torch.manual_seed(0)
    layer = nn.Linear(4, 4)
    layer(torch.randn(3, 4)).sum().mul(100).backward()
    norm = clip_grad_norm(layer.parameters(), 1.0)
    total = torch.cat([p.grad.flatten() for p in layer.parameters()]).norm()
    assert norm > 1.0 and torch.isclose(total, torch.tensor(1.0), atol=1e-4)


def test_has_sparse_gradients():
    assert has_sparse_gradients(nn.Sequential(nn.EmbeddingBag(5, 2, sparse=True), nn.Linear(2, 2)))
    assert not has_sparse_gradients(nn.Sequential(nn.Embedding(5, 2), nn.Linear(2, 2)))
