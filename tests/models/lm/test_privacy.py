"""User-level DP-SGD of the ``lm`` model (`lmrec.models.lm.privacy`): settings, accounting against
Opacus, exact per-user gradients, clipping, and the non-private path left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_model
from lm_helpers import N_USERS, genre_dataset

from lmrec.config import ModelConfig
from lmrec.data import leave_one_out
from lmrec.models import load_model
from lmrec.models.lm import LMRecommender, LMScenarioRecommender
from lmrec.models.lm.config import PrivacyConfig
from lmrec.models.lm.privacy import (
    UserExamples,
    UserLoss,
    check_private_settings,
    clip_factors,
    per_user_gradients,
    plan_privacy,
    spent_epsilon,
)
from lmrec.models.lm.training import training_windows
from lmrec.pipeline import make_model as pipeline_model

accountants = pytest.importorskip("opacus.accountants")
opacus_utils = pytest.importorskip("opacus.accountants.utils")

FAST = {"optim.epochs": 2}


@pytest.fixture(scope="module")
def genre_train():
    data = genre_dataset()
    split = leave_one_out(data.interactions)
    return data.with_interactions(split.train), split


@pytest.fixture(scope="module")
def private_fit(genre_train):
    train, _ = genre_train
    return make_model(**{"privacy.epsilon": 3.0, **FAST}).fit(train)


# ---------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epsilon", 0, "PrivacyConfig.epsilon must be None or a number > 0, got 0"),
        ("epsilon", "3", "PrivacyConfig.epsilon must be None or a number > 0, got '3'"),
        ("delta", 1.0, r"PrivacyConfig.delta must be a number in \(0, 1\), got 1.0"),
        ("delta", 0, r"PrivacyConfig.delta must be a number in \(0, 1\), got 0"),
        ("max_grad_norm", 0.0, "PrivacyConfig.max_grad_norm must be a number > 0, got 0.0"),
        ("accountant", "gdp", r"PrivacyConfig.accountant must be one of \['rdp', 'prv'\], got 'gdp'"),
        ("chunk_size", 0, "PrivacyConfig.chunk_size must be an integer >= 1, got 0"),
    ],
)
def test_privacy_config_rejects_bad_values(field, value, message) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        PrivacyConfig(**{field: value})


def test_privacy_config_defaults_and_unknown_key() -> None:
    config = PrivacyConfig()
    assert (config.epsilon, config.delta, config.max_grad_norm, config.accountant) == (None, 1e-5, 1.0, "rdp")
    assert not config.enabled and PrivacyConfig(epsilon=1.0).enabled
    with pytest.raises(ValueError, match=r"^PrivacyConfig has no field 'eps' \(lm.privacy.eps\); valid: "):
        PrivacyConfig.from_dict({"eps": 1.0})


def test_dotted_key_reaches_privacy() -> None:
    model = LMRecommender.from_params({"privacy.epsilon": 3, "privacy.accountant": "prv"})
    assert model.privacy == PrivacyConfig(epsilon=3, accountant="prv")
    assert model.get_params()["privacy"] == {
        "epsilon": 3,
        "delta": 1e-5,
        "max_grad_norm": 1.0,
        "accountant": "prv",
        "chunk_size": 32,
    }
    # as `lmrec train --param lm.privacy.epsilon=3` builds it
    assert pipeline_model(ModelConfig("lm", {"privacy.epsilon": 3}), 0).privacy.epsilon == 3
    assert LMRecommender().privacy == PrivacyConfig()  # off by default
    # the multi-scenario model has no private path, so it has no privacy component
    with pytest.raises(ValueError, match="model 'lm-scenario' has no parameter 'privacy.epsilon'"):
        LMScenarioRecommender.from_params({"privacy.epsilon": 3})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"objective.loss": "sampled"}, "needs objective.loss='full' .* got 'sampled': it shares sampled negatives"),
        ({"objective.loss": "bpr"}, "needs objective.loss='full' .* got 'bpr'"),
        (
            {"objective.loss": "auto", "objective.full_softmax_max_items": 5},
            "needs objective.loss='full' .* got 'sampled'",
        ),
        ({"objective.rating_weight": 0.1}, "does not support objective.rating_weight > 0"),
    ],
)
def test_losses_that_couple_users_are_rejected(genre_train, override, message) -> None:
    train, _ = genre_train
    model = make_model(**{"privacy.epsilon": 3.0, **FAST, **override})
    with pytest.raises(ValueError, match=f"^LMRecommender privacy \\(DP-SGD\\) {message}"):
        model.fit(train)


# ---------------------------------------------------------------------- accounting
def test_noise_multiplier_and_spent_epsilon_agree_with_opacus() -> None:
    config = PrivacyConfig(epsilon=3.0, delta=1e-5)
    plan = plan_privacy(config, n_users=943, batch_size=128, epochs=5)
    # q = 128 / 943; an epoch is round(943 / 128) = round(7.37) = 7 steps; 5 epochs = 35 steps
    assert plan.sample_rate == pytest.approx(128 / 943)
    assert (plan.steps_per_epoch, plan.steps) == (7, 35)
    sigma = opacus_utils.get_noise_multiplier(
        target_epsilon=3.0, target_delta=1e-5, sample_rate=128 / 943, steps=35, accountant="rdp"
    )
    assert plan.noise_multiplier == sigma
    acc = accountants.RDPAccountant()
    for _ in range(35):
        acc.step(noise_multiplier=sigma, sample_rate=128 / 943)
    eps = acc.get_epsilon(delta=1e-5)
    assert spent_epsilon(sigma, 128 / 943, 35, 1e-5, "rdp") == pytest.approx(eps, rel=1e-12)
    # Opacus' search stops within its tolerance (0.01) below the target
    assert 3.0 - 0.011 <= eps <= 3.0
    assert spent_epsilon(sigma, 128 / 943, 0, 1e-5, "rdp") == 0.0


def test_smaller_epsilon_means_more_noise() -> None:
    sigmas = [plan_privacy(PrivacyConfig(epsilon=e), 943, 128, 5).noise_multiplier for e in (8.0, 3.0, 1.0)]
    assert sigmas[0] < sigmas[1] < sigmas[2]
    # the PRV accountant is tighter than RDP: the same steps spend less of the budget
    rdp = plan_privacy(PrivacyConfig(epsilon=3.0), 943, 128, 5)
    prv_eps = spent_epsilon(rdp.noise_multiplier, rdp.sample_rate, rdp.steps, 1e-5, "prv")
    assert 0.5 < prv_eps < spent_epsilon(rdp.noise_multiplier, rdp.sample_rate, rdp.steps, 1e-5, "rdp")


def test_fit_reports_the_epsilon_spent(private_fit, genre_train, tmp_path) -> None:
    report = private_fit.privacy_report_
    # 32 users with training rows, batch 8: q = 8 / 32 = 0.25, 4 steps an epoch, 2 epochs = 8 steps
    assert (report["n_users"], report["sample_rate"], report["steps"], report["epochs"]) == (N_USERS, 0.25, 8, 2)
    sigma = opacus_utils.get_noise_multiplier(
        target_epsilon=3.0, target_delta=1e-5, sample_rate=0.25, steps=8, accountant="rdp"
    )
    acc = accountants.RDPAccountant()
    acc.history = [(sigma, 0.25, 8)]
    assert report["noise_multiplier"] == sigma
    assert report["epsilon"] == pytest.approx(acc.get_epsilon(delta=1e-5))
    assert report["epsilon"] <= 3.0
    assert (report["delta"], report["max_grad_norm"], report["accountant"]) == (1e-5, 1.0, "rdp")
    assert len(private_fit.train_history_) == 2  # fixed epochs, no early stopping
    loaded = load_model(private_fit.save(tmp_path / "m"))
    assert loaded.privacy_report_ == report
    assert loaded.privacy.epsilon == 3.0
    np.testing.assert_array_equal(loaded.item_vectors(), private_fit.item_vectors())


def test_validation_is_not_used_under_privacy(genre_train) -> None:
    train, split = genre_train
    a = make_model(**{"privacy.epsilon": 3.0, **FAST}).fit(train, valid=split)
    b = make_model(**{"privacy.epsilon": 3.0, **FAST}).fit(train)
    np.testing.assert_array_equal(a.item_vectors(), b.item_vectors())
    assert len(a.train_history_) == 2 and "ndcg@10" not in a.train_history_[-1]
    with pytest.raises(ValueError, match="partial_fit is not private"):
        a.partial_fit(split.valid)


def test_private_model_uses_no_count_over_users(private_fit) -> None:
    # the non-private model drops the ID part of items without training rows; the private one
    # may not tell them apart (it is a count over users)
    assert bool(private_fit.net_.item_tower.id_mask.all())


# ---------------------------------------------------------------------- per-user gradients
def _examples(model: LMRecommender, train) -> UserExamples:
    inter = train.interactions
    windows = training_windows(inter, model.hist_items_, model.hist_times_, model.user_tower, 0.0, [])
    return UserExamples(windows)


@pytest.mark.parametrize("content_weight", [0.0, 2.0])
def test_per_user_gradient_is_that_users_own_gradient(private_fit, genre_train, content_weight) -> None:
    """vmap over users equals ordinary autograd of each user's loss alone (eval mode: no dropout)."""
    train, _ = genre_train
    net = private_fit.net_
    net.eval()
    examples = _examples(private_fit, train)
    chosen = np.array([0, 5, 17])
    content = net.item_tower.content() if content_weight else None
    grads, losses = per_user_gradients(net, examples.batch(chosen), content_weight=content_weight, content=content)
    params = dict(net.named_parameters())
    assert set(grads) == set(params)  # every parameter, the item-ID table included
    for j, e in enumerate(chosen):
        one = examples.batch(np.array([e]))
        net.zero_grad()
        vecs = net.item_tower()
        loss = UserLoss(net, content, content_weight)(
            vecs, one["tokens"][0], one["buckets"][0], one["targets"][0], one["lengths"][0], one["users"][0]
        )
        loss.backward()
        assert float(losses[j]) == pytest.approx(float(loss.detach()), rel=1e-5)
        for name, p in params.items():
            torch.testing.assert_close(grads[name][j], p.grad, rtol=1e-4, atol=1e-6, msg=name)
    # the ID rows of items a user never read nor targets still get a gradient (full softmax), and
    # the rows of other users' items do not depend on which users share the chunk
    alone, _ = per_user_gradients(net, examples.batch(chosen[:1]), content_weight=content_weight, content=content)
    torch.testing.assert_close(alone["item_tower.id_emb.weight"][0], grads["item_tower.id_emb.weight"][0])
    net.zero_grad()


def test_clipping_bounds_each_users_contribution(private_fit, genre_train) -> None:
    train, _ = genre_train
    net = private_fit.net_
    net.eval()
    examples = _examples(private_fit, train)
    grads, _ = per_user_gradients(net, examples.batch(np.arange(8)))
    _, norms = clip_factors(grads, 1.0)
    c = float(norms.min()) / 4  # every user's gradient is at least 4 times longer than the bound
    factors, norms = clip_factors(grads, c)
    clipped = {k: g * factors.view(-1, *[1] * (g.dim() - 1)) for k, g in grads.items()}
    _, after = clip_factors(clipped, c)
    assert (norms > c).all()
    assert (after <= c * (1 + 1e-5)).all() and (after >= c * (1 - 1e-3)).all()
    # a bound above every norm leaves the gradients as they are
    factors, _ = clip_factors(grads, float(norms.max()) * 2)
    assert torch.equal(factors, torch.ones(8))


def test_unsupported_settings_named() -> None:
    model = LMRecommender.from_params({"fusion.mode": "mean", "privacy.epsilon": 1.0})
    with pytest.raises(ValueError, match=r"does not support fusion.mode='mean'; use 'none'$"):
        check_private_settings(model.objective, model.fusion, "none")
    with pytest.raises(ValueError, match=r"does not support encoder.finetune='lora'; use 'none'$"):
        check_private_settings(model.objective, LMRecommender().fusion, "lora")


# ---------------------------------------------------------------------- privacy off
def test_privacy_off_is_the_training_of_before(genre_train) -> None:
    train, _ = genre_train
    base = make_model(**FAST).fit(train)  # built without any privacy key
    assert base.privacy == PrivacyConfig()
    off = make_model(**{**FAST, "privacy": {"epsilon": None, "max_grad_norm": 0.5}}).fit(train)
    np.testing.assert_array_equal(base.item_vectors(), off.item_vectors())
    np.testing.assert_array_equal(base.user_vectors(np.arange(N_USERS)), off.user_vectors(np.arange(N_USERS)))
    assert base.privacy_report_ is None
    assert "privacy" not in base.get_params()  # config.json of a non-private model is as before
    # the non-private model still masks the ID part of items without training rows (the cold items)
    assert not bool(base.net_.item_tower.id_mask.all())
