"""Hand-computed values for the training losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lmrec.train import BPRLoss, FullSoftmaxCE, InfoNCE, SampledSoftmax


def test_full_softmax_ce_uniform_logits_and_ignored_rows() -> None:
    # equal logits over 3 items: -log(1/3) = ln 3 = 1.0986; the second row is padding and must not count
    logits = torch.tensor([[0.0, 0.0, 0.0], [100.0, -100.0, 0.0]])
    target = torch.tensor([1, -100])
    assert FullSoftmaxCE()(logits, target).item() == pytest.approx(math.log(3), abs=1e-6)


def test_full_softmax_ce_accepts_sequences() -> None:
    # (B=1, L=2, n=2): position 0 logits (ln 3, 0) target 0 -> -log(3/4) = 0.28768; position 1 target 1
    # with logits (0, 0) -> ln 2 = 0.69315; mean = 0.49041
    logits = torch.tensor([[[math.log(3), 0.0], [0.0, 0.0]]])
    target = torch.tensor([[0, 1]])
    expected = (-math.log(0.75) + math.log(2)) / 2
    assert FullSoftmaxCE()(logits, target).item() == pytest.approx(expected, abs=1e-6)


def test_in_batch_softmax_hand_computed() -> None:
    # orthonormal queries and positives: in-batch logits are the identity matrix, so each row is
    # -log(e / (e + 1)) = log(1 + e^-1) = 0.31326
    q = torch.eye(2)
    loss = SampledSoftmax()(q, q.clone())
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)


def test_log_q_correction_shifts_logits_by_minus_log_q() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    neg = torch.tensor([[0.5, 0.5]])
    log_q_pos = torch.log(torch.tensor([0.5, 0.25]))
    log_q_neg = torch.log(torch.tensor([0.125]))
    loss = SampledSoftmax()(q, pos, neg, pos_log_q=log_q_pos, neg_log_q=log_q_neg)
    # row 0 logits: [1 - ln .5, 0 - ln .25, 0.5 - ln .125] = [1.6931, 1.3863, 2.5794], target 0
    # row 1 logits: [0 - ln .5, 1 - ln .25, 0.5 - ln .125] = [0.6931, 2.3863, 2.5794], target 1
    shifted = torch.tensor(
        [[1 + math.log(2), math.log(4), 0.5 + math.log(8)], [math.log(2), 1 + math.log(4), 0.5 + math.log(8)]]
    )
    expected = F.cross_entropy(shifted, torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    # row 0 by hand: -(1.6931 - log(e^1.6931 + e^1.3863 + e^2.5794)) = 1.3027
    row0 = -(1 + math.log(2) - math.log(math.exp(1 + math.log(2)) + 4 + math.exp(0.5) * 8))
    assert F.cross_entropy(shifted[:1], torch.tensor([0])).item() == pytest.approx(row0, abs=1e-6)
    # a uniform q shifts every logit equally and changes nothing
    flat = torch.log(torch.full((2,), 0.3))
    assert SampledSoftmax()(q, pos, pos_log_q=flat).item() == pytest.approx(SampledSoftmax()(q, pos).item(), abs=1e-6)


def test_temperature_divides_before_the_correction() -> None:
    q = torch.eye(2)
    # logits I / 0.5 = 2 I: row loss -log(e^2 / (e^2 + 1)) = log(1 + e^-2) = 0.12693
    assert InfoNCE(temperature=0.5)(q, q).item() == pytest.approx(math.log(1 + math.exp(-2)), abs=1e-6)
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        SampledSoftmax(temperature=0)


def test_accidental_hits_are_masked() -> None:
    # both rows have the same positive item 5: the other row's column is not a negative, so each
    # row's softmax holds its own positive alone and the loss is 0
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ids = torch.tensor([5, 5])
    assert SampledSoftmax()(q, q, pos_ids=ids).item() == pytest.approx(0.0, abs=1e-7)
    # a sampled negative equal to row 0's positive is masked for row 0 only
    neg = torch.tensor([[3.0, 3.0]])
    masked = SampledSoftmax()(q, q, neg, pos_ids=torch.tensor([1, 2]), neg_ids=torch.tensor([1]))
    # row 0: logits [1, 0] -> 0.31326; row 1: [0, 1, 3] target 1 -> -(1 - log(1 + e + e^3)) = 2.1698
    row1 = -(1 - math.log(1 + math.e + math.exp(3)))
    assert masked.item() == pytest.approx((math.log(1 + math.exp(-1)) + row1) / 2, abs=1e-6)


def test_sampled_only_without_in_batch() -> None:
    # one row, positive logit 2, two negatives with logits 0 and 1: -log(e^2 / (e^2 + 1 + e)) = 0.40761
    q = torch.tensor([[1.0]])
    loss = SampledSoftmax(in_batch=False)(q, torch.tensor([[2.0]]), torch.tensor([[0.0], [1.0]]))
    assert loss.item() == pytest.approx(-(2 - math.log(math.exp(2) + 1 + math.e)), abs=1e-6)


def test_bpr_loss_hand_computed() -> None:
    # -log sigmoid(2 - 0) = log(1 + e^-2) = 0.12693; -log sigmoid(0) = ln 2 = 0.69315
    loss = BPRLoss()(torch.tensor([2.0, 1.0]), torch.tensor([0.0, 1.0]))
    assert loss.item() == pytest.approx((math.log(1 + math.exp(-2)) + math.log(2)) / 2, abs=1e-6)
    # (N, M) negatives pair with their row's positive: pos 1 vs negs (1, 1) -> ln 2 each
    assert BPRLoss()(torch.tensor([1.0]), torch.tensor([[1.0, 1.0]])).item() == pytest.approx(math.log(2), abs=1e-6)


def test_losses_have_gradients() -> None:
    q = torch.randn(4, 3, requires_grad=True)
    SampledSoftmax()(q, torch.randn(4, 3), torch.randn(5, 3), neg_log_q=torch.zeros(5)).backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def _reference_sampled_softmax(q, pos, neg, pos_log_q, neg_log_q, pos_ids, neg_ids, temperature):
    """The loss written out term by term: in-batch block, negative block, corrections, masks."""
    in_batch = q @ pos.T / temperature - pos_log_q.reshape(1, -1)
    same = pos_ids.reshape(-1, 1) == pos_ids.reshape(1, -1)
    same.fill_diagonal_(False)
    in_batch = in_batch.masked_fill(same, float("-inf"))
    sampled = q @ neg.T / temperature - neg_log_q.reshape(1, -1)
    sampled = sampled.masked_fill(pos_ids.reshape(-1, 1) == neg_ids.reshape(1, -1), float("-inf"))
    return F.cross_entropy(torch.cat([in_batch, sampled], dim=1), torch.arange(len(q)))


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_sampled_softmax_matches_the_term_by_term_reference_with_gradients(temperature: float) -> None:
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(12, 5, generator=gen, requires_grad=True)
    table = torch.randn(9, 5, generator=gen, requires_grad=True)
    # repeated positives (accidental in-batch hits) and negatives that hit some rows' positives
    pos_ids = torch.tensor([0, 1, 2, 2, 3, 4, 4, 4, 5, 6, 7, 8])
    neg_ids = torch.tensor([8, 2, 2, 0, 6, 1])
    pos_log_q = -torch.rand(9, generator=gen)[pos_ids] * 5
    neg_log_q = -torch.rand(6, generator=gen) * 5
    ours = SampledSoftmax(temperature=temperature)(
        q, table[pos_ids], table[neg_ids], pos_log_q=pos_log_q, neg_log_q=neg_log_q, pos_ids=pos_ids, neg_ids=neg_ids
    )
    grads = torch.autograd.grad(ours, [q, table])
    args = (q, table[pos_ids], table[neg_ids], pos_log_q, neg_log_q, pos_ids, neg_ids)
    reference = _reference_sampled_softmax(*args, temperature)
    expected = torch.autograd.grad(reference, [q, table])
    assert ours.item() == pytest.approx(reference.item(), rel=1e-6)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_negatives_without_ids_are_never_masked() -> None:
    # row 0's positive id is given, the negatives' ids are not: the negative column stays a negative
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    neg = torch.tensor([[1.0, 0.0]])
    loss = SampledSoftmax()(q, q, neg, pos_ids=torch.tensor([1, 2]))
    # row 0: logits [1, 0, 1] target 0 -> log(2e + 1) - 1 = 0.86199; row 1: [0, 1, 0] -> log(e + 2) - 1
    expected = (math.log(2 * math.e + 1) - 1 + math.log(math.e + 2) - 1) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
