"""Item tower, user tower and their pieces, on hand-built inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmrec.models.lm.item_tower import ItemTower, MoEAdaptor, fit_whitening
from lmrec.models.lm.user_tower import UserTower, time_buckets

BOS, PAD = -1, -2


def test_fit_whitening_known_answer() -> None:
    # four points (+-2, 0), (0, +-1): mean 0, covariance diag(8/4, 2/4) = diag(2, 0.5)
    x = np.array([[2, 0], [-2, 0], [0, 1], [0, -1]], dtype=np.float32)
    mean, proj = fit_whitening(x, eps=0.0)
    np.testing.assert_allclose(mean, [0, 0], atol=1e-7)
    white = (x - mean) @ proj
    np.testing.assert_allclose(white.T @ white / 4, np.eye(2), atol=1e-6)
    # eps=0.1: ridge = 0.1 * mean eigenvalue = 0.125, variances 2 / 2.125 and 0.5 / 0.625
    mean, proj = fit_whitening(x, eps=0.1)
    white = (x - mean) @ proj
    np.testing.assert_allclose(np.sort(np.diag(white.T @ white / 4)), [0.8, 2 / 2.125], rtol=1e-5)
    assert fit_whitening(x, eps=0.0, max_dim=1)[1].shape == (2, 1)
    # a single item still gives one direction, and nothing divides by zero
    mean, proj = fit_whitening(x[:1])
    assert proj.shape == (2, 1) and np.isfinite(proj).all()
    with pytest.raises(ValueError, match=r"non-empty \(n, D\) array, got shape \(0, 2\)"):
        fit_whitening(np.zeros((0, 2)))


def test_moe_with_identical_experts_is_that_expert() -> None:
    torch.manual_seed(0)
    moe = MoEAdaptor(5, 3, n_experts=4, dropout=0.0).eval()
    single = MoEAdaptor(5, 3, n_experts=1, dropout=0.0).eval()
    with torch.no_grad():
        moe.experts.weight.copy_(single.experts.weight.repeat(4, 1))
        moe.experts.bias.copy_(single.experts.bias.repeat(4))
    x = torch.randn(7, 5)
    # gate weights sum to one, so a mixture of identical experts is the expert
    torch.testing.assert_close(moe(x), single(x))
    torch.testing.assert_close(single(x), x @ single.experts.weight.T + single.experts.bias)


def _tower(item_repr: str = "hybrid", id_dropout: float = 0.5) -> ItemTower:
    torch.manual_seed(0)
    text = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    id_mask = np.array([1, 1, 1, 0, 0], dtype=bool)  # items 3 and 4 are cold
    return ItemTower(text if item_repr != "id" else None, id_mask, 4, item_repr=item_repr, id_dropout=id_dropout)


def test_item_tower_cold_items_are_text_only_and_warm_items_add_their_id() -> None:
    tower = _tower().eval()
    with torch.no_grad():
        out = tower()
        text_only = tower.encode_text(tower.text)
    torch.testing.assert_close(out[3:], text_only[3:])
    torch.testing.assert_close(out[:3], text_only[:3] + tower.id_emb.weight[:3])


def test_item_tower_id_dropout_only_in_training() -> None:
    tower = _tower(id_dropout=0.5)
    tower.adaptor.dropout.p = 0.0  # isolate the ID dropout
    with torch.no_grad():
        text_only = tower.encode_text(tower.text)
        full = text_only + tower.id_emb.weight * tower.id_mask[:, None]
        tower.train()
        outs = [tower(torch.Generator().manual_seed(s)) for s in range(20)]
        tower.eval()
        torch.testing.assert_close(tower(), full)
    # in training each warm item is either whole or text-only, and both happen over 20 steps
    for i in range(3):
        states = {
            "full" if torch.allclose(o[i], full[i]) else "text" if torch.allclose(o[i], text_only[i]) else "?"
            for o in outs
        }
        assert states == {"full", "text"}


def test_item_tower_modes() -> None:
    text_tower = _tower("text")
    assert not hasattr(text_tower, "id_emb")
    id_tower = _tower("id").eval()
    with torch.no_grad():
        out = id_tower()
    assert torch.equal(out[3:], torch.zeros(2, 4))  # cold items have nothing in an ID-only model
    with pytest.raises(ValueError, match="item_repr='id': it has no text path"):
        id_tower.encode_text(torch.zeros(1, 8))
    with pytest.raises(ValueError, match="item_repr must be 'hybrid', 'text' or 'id', got 'both'"):
        ItemTower(None, np.ones(2, bool), 4, item_repr="both")
    with pytest.raises(ValueError, match="needs text vectors for all 2 items"):
        ItemTower(None, np.ones(2, bool), 4)


def test_item_tower_grow_appends_text_only_items() -> None:
    tower = _tower().eval()
    new = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    with torch.no_grad():
        before = tower()
        tower.grow(new, 2)
        after = tower()
        expected_new = tower.encode_text(torch.from_numpy(new))
    assert after.shape == (7, 4)
    torch.testing.assert_close(after[:5], before)
    torch.testing.assert_close(after[5:], expected_new)


def test_time_buckets_known_answer() -> None:
    # gaps 0 s, 60 s, 1 h, 1 day -> minutes 0, 1, 60, 1440 -> floor(log2(1 + m)) = 0, 1, 5, 10 -> +1
    ts = np.array([0, 0, 60, 3660, 3660 + 86400], dtype=np.float64)
    np.testing.assert_array_equal(time_buckets(ts, 20), [0, 1, 2, 6, 11])
    # with 5 buckets the largest gap bucket is 1 + 3 = 4
    np.testing.assert_array_equal(time_buckets(ts, 5), [0, 1, 2, 4, 4])
    np.testing.assert_array_equal(time_buckets(np.array([5.0]), 20), [0])


def _user_tower(text_dim: int = 0) -> UserTower:
    torch.manual_seed(0)
    return UserTower(8, 6, n_layers=2, n_heads=2, dropout=0.0, n_time_buckets=4, text_dim=text_dim).eval()


def test_user_tower_is_causal() -> None:
    tower = _user_tower()
    vecs = torch.randn(5, 8)
    a = torch.tensor([[BOS, 0, 1, 2]])
    b = torch.tensor([[BOS, 0, 1, 3]])
    lengths = torch.tensor([4])
    with torch.no_grad():
        ha, hb = tower(vecs, a, lengths), tower(vecs, b, lengths)
    # the last input differs; every earlier position has read the same prefix
    torch.testing.assert_close(ha[:, :3], hb[:, :3])
    assert not torch.allclose(ha[:, 3], hb[:, 3])


def test_user_tower_padding_changes_nothing() -> None:
    tower = _user_tower()
    vecs = torch.randn(5, 8)
    short = torch.tensor([[BOS, 0, 1]])
    padded = torch.tensor([[BOS, 0, 1, PAD, PAD], [BOS, 2, 3, 4, 0]])
    buckets = torch.tensor([[0, 0, 1, 0, 0], [0, 0, 3, 2, 1]])
    with torch.no_grad():
        h_short = tower(vecs, short, torch.tensor([3]), buckets[:1, :3])
        h_pad = tower(vecs, padded, torch.tensor([3, 5]), buckets)
    torch.testing.assert_close(h_pad[:1, :3], h_short)


def test_user_tower_text_gate_only_for_users_with_text() -> None:
    tower = _user_tower(text_dim=6)
    vecs = torch.randn(5, 8)
    tokens = torch.tensor([[BOS, 0, 1], [BOS, 2, PAD]])
    lengths = torch.tensor([3, 2])
    text = torch.randn(2, 6)
    with torch.no_grad():
        plain = tower(vecs, tokens, lengths)
        gated = tower(vecs, tokens, lengths, text=text, has_text=torch.tensor([True, False]))
    torch.testing.assert_close(gated[1], plain[1])  # no text: the sequence state as it is
    assert not torch.allclose(gated[0], plain[0])
    # a BOS-only user with text is the learned empty-user state fused with their text
    with torch.no_grad():
        empty = tower(vecs, torch.tensor([[BOS]]), torch.tensor([1]))
        with_text = tower(vecs, torch.tensor([[BOS]]), torch.tensor([1]), text=text[:1], has_text=torch.tensor([True]))
        g = torch.sigmoid(tower.gate(torch.cat([empty, tower.text_proj(text[:1]).unsqueeze(1)], -1)))
    torch.testing.assert_close(with_text, g * empty + (1 - g) * tower.text_proj(text[:1]).unsqueeze(1))
