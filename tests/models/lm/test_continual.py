"""partial_fit of the language-model interest model and of Popularity; replay buffer; regularisers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_model
from lm_helpers import N_ITEMS, N_USERS, genre_dataset

from lmrec.data import ItemCatalog, leave_one_out
from lmrec.models.lm.continual import (
    REPLAYED,
    ReplayBuffer,
    as_raw_frame,
    pull_toward_anchor,
    rows_index,
    target_windows,
    weight_penalty,
)
from lmrec.models.popularity import Popularity


@pytest.fixture(scope="module")
def base():
    """A model fitted on the genre data's training part, and the split (tests update copies)."""
    data = genre_dataset()
    split = leave_one_out(data.interactions)
    model = make_model(epochs=20).fit(data.with_interactions(split.train))
    return data, split, model


def _copy(model, budget: float | None = None):
    """A copy of ``model`` whose updates have no time bound (``budget`` None), so that they run the
    epochs each test asks for whatever the machine's speed; the budget has its own tests."""
    from lmrec.eval.gate import clone_model

    twin = clone_model(model)
    twin.continual = twin.continual.replace(update_budget=budget)
    return twin


NEW_ITEM = ItemCatalog(
    pd.DataFrame(
        {"title": ["horror film", "comedy film"], "genre": ["horror", "comedy"]}, index=["i_new_h", "i_new_c"]
    ),
    text_fields=["title"],
    categorical=["genre"],
)


def test_maps_grow_and_old_indices_stay(base):
    _, split, fitted = base
    model = _copy(fitted)
    old_users, old_items = fitted.user_map_.ids, fitted.item_map_.ids
    frame = pd.DataFrame(
        {
            "user_id": ["u_new", "u_new", "u3"],
            "item_id": ["i0", "i_new_h", "i_new_c"],
            "timestamp": [9e5, 9e5 + 1, 9e5 + 2],
        }
    )
    model.partial_fit(frame, new_items=NEW_ITEM, epochs=0)
    assert model.user_map_.ids[: len(old_users)] == old_users  # old indices unchanged
    assert model.item_map_.ids[: len(old_items)] == old_items
    assert model.user_map_.ids[len(old_users) :] == ["u_new"]
    assert model.item_map_.ids[len(old_items) :] == ["i_new_h", "i_new_c"]
    assert fitted.user_map_.ids == old_users  # the original model's (shared) maps are untouched
    assert model.seen_.shape == (N_USERS + 1, N_ITEMS + 2)
    u = model.user_map_.index("u_new")
    assert model.hist_items_[u].tolist() == [0, model.item_map_.index("i_new_h")]
    assert model.counts_[model.item_map_.index("i_new_c")] == 1 and model.counts_[0] == fitted.counts_[0] + 1
    # the new user is scorable, and seen items are excluded
    items, _ = model.recommend(np.array([u]), 5)
    assert 0 not in items[0] and model.item_map_.index("i_new_h") not in items[0]


def test_absorb_without_training_keeps_old_item_vectors(base):
    _, split, fitted = base
    model = _copy(fitted)
    model.partial_fit(split.valid, new_items=NEW_ITEM, epochs=0)
    np.testing.assert_array_equal(model.item_vectors()[:N_ITEMS], fitted.item_vectors())
    # every weight is as it was (the item table only grew)
    for (name, a), (_, b) in zip(fitted.net_.named_parameters(), model.net_.named_parameters()):
        torch.testing.assert_close(b[: a.shape[0]], a, rtol=0, atol=0, msg=name)


def test_new_item_is_scored_from_text(base):
    _, _, fitted = base
    model = _copy(fitted)
    model.partial_fit(
        pd.DataFrame({"user_id": ["u0"], "item_id": ["i1"], "timestamp": [9e5]}), new_items=NEW_ITEM, epochs=0
    )
    j = model.item_map_.index("i_new_h")
    # its vector is exactly the text path's vector of its text (ID part off: no interactions yet)
    expected = model.encode_items([model.item_text({"title": "horror film", "genre": "horror"})])[0]
    np.testing.assert_allclose(model.item_vectors()[j], expected, atol=1e-6)
    # a horror fan (user 3: genre 3) ranks the new horror item above the new comedy item
    s = model.score(np.array([3, 3]), np.array([j, model.item_map_.index("i_new_c")]))
    assert s[0] > s[1]


def test_partial_fit_learns_the_new_window(base):
    """Training on the held-out rows must raise their scores: the update does learn."""
    _, split, fitted = base
    model = _copy(fitted)
    before = model.score(split.test.users, split.test.items)
    model.partial_fit(split.test, epochs=10)
    after = model.score(split.test.users, split.test.items)
    assert after.mean() > before.mean() + 0.05
    assert model.last_update_["rows"] == len(split.test) and model.last_update_["replayed"] > 0


def test_interactions_on_a_grown_map_are_accepted(base):
    _, split, fitted = base
    model = _copy(fitted)
    grown = split.test.user_map.copy().fit_partial(["u_zz"])
    inter = split.test.with_maps(grown, split.test.item_map)
    assert as_raw_frame(inter)["user_id"].tolist() == as_raw_frame(split.test)["user_id"].tolist()
    model.partial_fit(inter, epochs=0)
    assert model.n_users == N_USERS  # u_zz has no rows, so it is not added


def test_huge_l2sp_keeps_weights_near_the_previous_ones(base):
    _, split, fitted = base

    def drift(**kw):
        model = _copy(fitted)
        model.continual = model.continual.replace(**kw)
        model.partial_fit(split.test, epochs=10)
        return max(
            float((b.detach()[: a.shape[0]] - a.detach()).abs().max())
            for a, b in zip(fitted.net_.parameters(), model.net_.parameters())
        )

    free = drift(regularizer="none", update_lr=1e-2)
    held = drift(regularizer="l2sp", reg_strength=1e6, update_lr=1e-2)
    # the decoupled pull shrinks the distance to the anchor by min(1, lr * strength) = 1 after each
    # step: held weights stay at the anchor, free ones walk away
    assert held < 1e-6 < 0.05 < free, (held, free)


def _update_gain(fitted, rows, **kw):
    model = _copy(fitted)
    model.continual = model.continual.replace(**kw)
    before = model.score(rows.users, rows.items)
    model.partial_fit(rows, epochs=10)
    return float((model.score(rows.users, rows.items) - before).mean())


def test_default_regulariser_does_not_stop_learning(base):
    """The bug on Amazon Office: L2-SP added to the loss dominated Adam's rescaled gradient wherever
    the data's gradient is small, so an update at the default strength jittered around the old
    weights and learnt little (here L2-SP kept 0.45 of the unregularised update's gain). Decoupled,
    the default pull keeps most of it (0.92 for L2-SP; 0.81 for EWC, whose Fisher weights pull the
    parameters that matter most harder)."""
    _, split, fitted = base
    free = _update_gain(fitted, split.test, regularizer="none")
    l2sp = _update_gain(fitted, split.test, regularizer="l2sp")
    ewc = _update_gain(fitted, split.test, regularizer="ewc")
    assert free > 0.05 and l2sp > 0.8 * free and ewc > 0.6 * free, (free, l2sp, ewc)


def test_pull_toward_anchor_values():
    net = torch.nn.Linear(2, 1, bias=False)
    anchor = {"weight": torch.tensor([[0.0, 1.0]])}

    def pulled(rate, fisher=None):
        with torch.no_grad():
            net.weight[:] = torch.tensor([[1.0, 3.0]])
        pull_toward_anchor(net, anchor, rate, fisher)
        return net.weight.detach().tolist()[0]

    # distance (1, 2) shrinks by a quarter: (1 - 0.25, 3 - 0.25 * 2) = (0.75, 2.5)
    assert pulled(0.25) == pytest.approx([0.75, 2.5])
    # Fisher (2, 8): shares 0.5 and min(1, 2) = 1 -> (0.5, 1.0), never past the anchor
    assert pulled(0.25, {"weight": torch.tensor([[2.0, 8.0]])}) == pytest.approx([0.5, 1.0])
    assert pulled(0.0) == pytest.approx([1.0, 3.0])
    # a grown table is pulled on its old rows only, and ``rows`` leaves the others alone
    emb = torch.nn.Embedding(3, 1)
    with torch.no_grad():
        emb.weight[:] = torch.tensor([[1.0], [2.0], [100.0]])
    pull_toward_anchor(emb, {"weight": torch.zeros(2, 1)}, 0.5, rows={"weight": torch.tensor([True, False])})
    assert emb.weight.detach().flatten().tolist() == pytest.approx([0.5, 2.0, 100.0])


def test_weight_penalty_values():
    net = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight[:] = torch.tensor([[1.0, 3.0]])
    anchor = {"weight": torch.tensor([[0.0, 1.0]])}
    # (1 - 0)^2 + (3 - 1)^2 = 5; with Fisher (2, 0.5): 2 * 1 + 0.5 * 4 = 4
    assert float(weight_penalty(net, anchor).detach()) == pytest.approx(5.0)
    assert float(weight_penalty(net, anchor, {"weight": torch.tensor([[2.0, 0.5]])}).detach()) == pytest.approx(4.0)
    # a grown table is compared on its old rows only
    emb = torch.nn.Embedding(3, 1)
    with torch.no_grad():
        emb.weight[:] = torch.tensor([[1.0], [2.0], [100.0]])
    assert float(weight_penalty(emb, {"weight": torch.tensor([[0.0], [0.0]])}).detach()) == pytest.approx(1 + 4)
    # rows restricted to the first one (an item trained before): only (1 - 0)^2 counts
    rows = {"weight": torch.tensor([True, False, False])}
    assert float(weight_penalty(emb, {"weight": torch.zeros(3, 1)}, rows=rows).detach()) == pytest.approx(1.0)


def test_ewc_runs_and_reports(base):
    _, split, fitted = base
    model = _copy(fitted)
    model.continual = model.continual.replace(regularizer="ewc", replay="recency")
    model.partial_fit(split.test, epochs=2)
    assert model.last_update_["epochs"] == 2 and np.isfinite(model.item_vectors()).all()


# ---------------------------------------------------------------------- replay buffer
def test_reservoir_inclusion_is_uniform():
    n, size, reps = 1000, 100, 300
    counts = np.zeros(n)
    for seed in range(reps):
        buf = ReplayBuffer(size, "reservoir", random_state=seed)
        for start in range(0, n, 100):  # streamed in 10 chunks
            rows = np.arange(start, start + 100)
            buf.add(rows, rows, rows.astype(float))
        assert len(buf) == size and buf.n_seen == n
        counts[buf.items] += 1
    freq = counts / reps  # each row should be kept with probability 100 / 1000 = 0.1
    deciles = freq.reshape(10, 100).mean(axis=1)
    # a decile mean averages 100 rows x 300 draws: sd ~ sqrt(0.1 * 0.9 / 30000) ~ 0.0017
    np.testing.assert_allclose(deciles, 0.1, atol=0.01)
    assert abs(freq.mean() - 0.1) < 1e-12  # exactly size rows each time


def test_recency_weighting_favours_recent_rows():
    n, size, reps = 1000, 100, 200
    counts = np.zeros(n)
    for seed in range(reps):
        buf = ReplayBuffer(size, "recency", half_life=100.0, random_state=seed)
        rows = np.arange(n)
        buf.add(rows, rows, rows.astype(float))  # row r has time r seconds
        counts[buf.items] += 1
    freq = counts / reps
    first, last = freq[:100].mean(), freq[-100:].mean()
    # weights double every 100 rows: the newest tenth carries half of all weight, the oldest 1/1024 of it
    assert last > 0.3 and first < 0.01, (first, last)
    assert np.all(np.diff(freq.reshape(10, 100).mean(axis=1)) >= -0.01)  # non-decreasing with time


def test_replay_buffer_validation():
    with pytest.raises(ValueError, match="size must be an integer >= 1, got 0"):
        ReplayBuffer(0)
    with pytest.raises(ValueError, match="kind must be 'reservoir' or 'recency', got 'lifo'"):
        ReplayBuffer(5, "lifo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs half_life > 0 seconds, got None"):
        ReplayBuffer(5, "recency")


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("replay", "fifo", "replay must be one of \\['none', 'reservoir', 'recency'\\], got 'fifo'"),
        ("regularizer", "l1", "regularizer must be one of \\['none', 'l2sp', 'ewc'\\], got 'l1'"),
        ("replay_size", 0, "replay_size must be an integer >= 1, got 0"),
        ("update_epochs", 1.5, "update_epochs must be an integer >= 1, got 1.5"),
        ("reg_strength", -1.0, "reg_strength must be a number >= 0, got -1.0"),
        ("distill", -0.5, "distill must be a number >= 0, got -0.5"),
        ("distill_rows", "new", "distill_rows must be one of \\['all', 'replayed'\\], got 'new'"),
        ("replay_half_life", 0, "replay_half_life must be None or a number > 0, got 0"),
        ("update_lr", -1e-3, "update_lr must be None or a number > 0, got -0.001"),
    ],
)
def test_continual_params_are_validated(param, value, message):
    data = genre_dataset()
    with pytest.raises(ValueError, match=message):
        make_model(epochs=1, **{param: value}).fit(data)


def test_distilling_replayed_rows_needs_replay():
    with pytest.raises(ValueError, match="distill_rows='replayed' distils the replayed rows, but replay='none'"):
        make_model(epochs=1, distill=1.0, distill_rows="replayed", replay="none").fit(genre_dataset())


def test_partial_fit_input_errors(base):
    _, _, fitted = base
    model = _copy(fitted)
    with pytest.raises(ValueError, match="lacks columns \\['item_id'\\]"):
        model.partial_fit(pd.DataFrame({"user_id": ["u0"]}))
    with pytest.raises(ValueError, match="epochs must be >= 0, got -1"):
        model.partial_fit(pd.DataFrame({"user_id": ["u0"], "item_id": ["i0"]}), epochs=-1)


# ---------------------------------------------------------------------- Popularity
def test_popularity_partial_fit_equals_fit_on_everything():
    data = genre_dataset()
    split = leave_one_out(data.interactions)
    inc = Popularity().fit(split.train).partial_fit(split.valid).partial_fit(split.test)
    full = Popularity().fit(data.interactions)
    np.testing.assert_array_equal(inc.counts_, full.counts_)
    assert (inc.seen_ != full.seen_).nnz == 0
    # a new item and user: counts add up, old indices stay
    frame = pd.DataFrame({"user_id": ["zz", "zz", "u0"], "item_id": ["new", "i0", "new"], "timestamp": [1.0, 2.0, 3.0]})
    inc.partial_fit(frame, new_items=ItemCatalog(pd.DataFrame({"title": ["x", "y"]}, index=["new", "cold"])))
    assert inc.item_map_.ids[-2:] == ["new", "cold"] and inc.user_map_.ids[-1] == "zz"
    assert inc.counts_[-2:].tolist() == [2.0, 0.0] and inc.counts_[0] == full.counts_[0] + 1
    assert inc.score_all(np.array([0])).shape == (1, N_ITEMS + 2)


def test_save_load_after_growth_round_trips(base, tmp_path):
    from lmrec.models.lm import LMRecommender

    _, split, fitted = base
    model = _copy(fitted)
    frame = pd.DataFrame({"user_id": ["u_new", "u_new"], "item_id": ["i2", "i_new_h"], "timestamp": [9e5, 9e5 + 1]})
    model.partial_fit(frame, new_items=NEW_ITEM, epochs=2)
    model.save(tmp_path / "m")
    loaded = LMRecommender.load(tmp_path / "m")
    users = np.arange(model.n_users)
    np.testing.assert_allclose(loaded.score_all(users), model.score_all(users), atol=1e-5)
    assert loaded.item_map_ == model.item_map_ and loaded.user_map_ == model.user_map_
    # a loaded model keeps updating (its replay buffer is rebuilt from the saved histories)
    loaded.partial_fit(split.test, epochs=1)
    assert loaded.last_update_["replayed"] > 0


def test_update_windows_train_only_on_new_and_replayed_rows(base):
    _, _, fitted = base
    # three chosen rows: user 0's 2nd item, user 5's last item and user 6's first item
    picks = [(0, 1), (5, len(fitted.hist_items_[5]) - 1), (6, 0)]
    users = [u for u, _ in picks]
    items = [int(fitted.hist_items_[u][j]) for u, j in picks]
    times = [float(fitted.hist_times_[u][j]) for u, j in picks]
    win = _windows_of(fitted, rows_index(users, items, times))
    keep = win.targets >= 0
    assert keep.sum() == 3
    assert sorted(zip(np.repeat(win.users, keep.sum(axis=1)).tolist(), win.targets[keep].tolist())) == sorted(
        zip(users, items)
    )
    assert set(win.users.tolist()) == {0, 5, 6}  # users without a chosen row contribute no window
    assert (win.events == -100).all()


def _windows_of(model, targets, replayed=None):
    """`target_windows` over a model's histories with its window settings."""
    return target_windows(
        model.hist_items_,
        model.hist_times_,
        targets,
        replayed,
        max_len=model.user_tower.max_len,
        n_time_buckets=model.user_tower.n_time_buckets,
    )


def _window_cut(split):
    """The valid and test rows as one update window (two rows per user), each user's last row held out."""
    from lmrec.data.splits import last_row_split

    return last_row_split(split.valid.concat(split.test))


def test_partial_fit_with_valid_keeps_its_best_epoch_then_observes_the_rows(base):
    data, split, _ = base
    cut = _window_cut(split)
    # one epoch of fitting leaves room to learn: on this data the update's best epoch is 2 of 4
    fitted = make_model(epochs=1).fit(data.with_interactions(split.train))
    model = _copy(fitted)
    model.partial_fit(cut.train, valid=cut.valid, epochs=4)
    rep = model.last_update_
    curve = [h["ndcg@10"] for h in model.update_history_]
    assert (rep["rows"], rep["valid_rows"], len(curve)) == (len(cut.train), len(cut.valid), 4)
    before = rep["valid_ndcg@10_before"]
    assert rep["valid_ndcg@10"] == pytest.approx(max(before, *curve))
    best = 0 if before >= max(curve) else int(np.argmax(curve)) + 1
    assert rep["best_epoch"] == best and 0 < best < 4  # neither the old weights nor the last epoch
    # the kept weights are exactly those after `best` epochs of the same update without validation
    # (same seed, same targets: the validation rows are not trained on)
    other = _copy(fitted)
    if best:
        other.partial_fit(cut.train, epochs=best)
    reference = other.net_.state_dict()
    for name, value in model.net_.state_dict().items():
        if name != "item_tower.id_mask":
            torch.testing.assert_close(value, reference[name], rtol=0, atol=0, msg=name)
    # afterwards the validation rows are history: in the sequences and masked as seen
    for u, i in zip(cut.valid.users.tolist(), cut.valid.items.tolist()):
        assert i in model.hist_items_[u].tolist() and model.seen_[u, i] == 1


def test_partial_fit_with_valid_keeps_the_old_weights_when_every_epoch_is_worse(base):
    _, split, fitted = base
    cut = _window_cut(split)
    model = _copy(fitted)
    model.continual = model.continual.replace(update_lr_scale=1.0)  # at the fit's rate every epoch overshoots
    model.partial_fit(cut.train, valid=cut.valid, epochs=2)
    rep = model.last_update_
    # the fixture's model (20 epochs) already ranks every validation row first; both epochs lose some
    assert rep["valid_ndcg@10_before"] == pytest.approx(1.0)
    assert max(h["ndcg@10"] for h in model.update_history_) < 0.9
    assert rep["best_epoch"] == 0 and rep["valid_ndcg@10"] == rep["valid_ndcg@10_before"]
    for (name, a), (_, b) in zip(fitted.net_.named_parameters(), model.net_.named_parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)


def test_replayed_rows_of_observed_but_untrained_items_train_finitely(base):
    """After ``fit`` + ``observe`` (early stopping), a history holds rows of items with no training count;
    replaying them made targets outside the softmax (infinite loss). They now count once replayed."""
    data, split, _ = base
    x = int(split.train.items[0])
    rows_x = split.train.items == x
    model = make_model(epochs=2, replay_size=100_000).fit(data.with_interactions(split.train.subset(~rows_x)))
    assert model.counts_[x] == 0
    model.observe(split.train.subset(rows_x))  # in the histories, never trained on
    model.partial_fit(split.test, epochs=1)  # the buffer holds every history row, item x's among them
    assert np.isfinite(model.update_history_[0]["loss"])
    # item x counts its replayed rows (all of them: the buffer is larger than the history)
    assert model.counts_[x] == rows_x.sum() + (split.test.items == x).sum()


# ---------------------------------------------------------------------- distillation (LwF)
def _next_item_kl(a, b, users) -> float:
    """Mean KL(a || b) of two models' softmax over all items for ``users`` (at their temperatures)."""
    la = torch.log_softmax(torch.from_numpy(a.score_all(users)) / float(a.net_.temperature), -1)
    lb = torch.log_softmax(torch.from_numpy(b.score_all(users)) / float(b.net_.temperature), -1)
    return float((la.exp() * (la - lb)).sum(-1).mean())


def test_distillation_term_values(base):
    """The term is KL(teacher || student) over the trainable items: 0 against itself, and by hand
    against a perturbed student."""
    from lmrec.models.lm.training import Objective, batches_of

    _, split, fitted = base
    model = _copy(fitted)
    windows = _windows_of(model, rows_index(split.train.users, split.train.items, split.train.timestamps))
    batch = next(iter(batches_of(windows, 16, 0)(0)))
    net = model.net_.eval()
    objective = Objective("full", model.counts_)
    objective.teacher, objective.distill = _copy(fitted).net_.eval(), 1.0
    with torch.no_grad():
        _, _, u_s, v_s, target = objective._retrieval(net, batch)
        assert objective._distillation(net, batch, u_s, v_s, target) == pytest.approx(0.0, abs=1e-6)
        shift = torch.randn(v_s.shape, generator=torch.Generator().manual_seed(0))
        got = objective._distillation(net, batch, u_s, v_s + 0.3 * shift, target)
        tau = float(net.temperature)
        cand = objective.trainable_idx
        t = torch.log_softmax(u_s @ v_s[cand].T / tau, -1)
        s = torch.log_softmax(u_s @ (v_s + 0.3 * shift)[cand].T / tau, -1)
        expected = (t.exp() * (t - s)).sum(-1).mean()
    assert float(expected) > 1e-3
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


def test_distillation_keeps_old_answers(base):
    """A strong distillation weight keeps the updated model's next-item distributions near the old
    model's (here KL 0.12 against 0.73 without it; the rest is the ID dropout the student trains
    under), and a moderate one still lets the update learn."""
    _, split, fitted = base
    users = np.unique(split.train.users)
    old = _copy(fitted)
    old.observe(split.test)  # the old weights reading the same, grown histories
    moved = {}
    for weight in (0.0, 20.0):
        model = _copy(fitted)
        model.continual = model.continual.replace(regularizer="none", update_lr=1e-2, distill=weight)
        model.partial_fit(split.test, epochs=10)
        moved[weight] = _next_item_kl(old, model, users)
    assert moved[20.0] < 0.3 * moved[0.0], moved
    assert _update_gain(fitted, split.test, regularizer="none", distill=1.0) > 0.02


def test_update_windows_mark_the_replayed_targets(base):
    """Exactly the replayed rows' target positions carry the REPLAYED mark; the distillation over
    those positions is the by-hand KL over those rows only."""
    from lmrec.models.lm.training import Objective, batches_of

    _, split, fitted = base
    model = _copy(fitted)
    model.observe(split.test)
    old = split.train.subset(np.arange(0, len(split.train), 7))  # every 7th training row, "replayed"
    new = rows_index(split.test.users, split.test.items, split.test.timestamps)
    replayed = rows_index(old.users, old.items, old.timestamps)
    win = _windows_of(model, new.append(replayed), replayed)
    trained = win.targets >= 0
    marked = win.events == REPLAYED
    assert marked.any() and (marked <= trained).all() and set(np.unique(win.events)) <= {REPLAYED, -100}
    users = np.repeat(win.users[:, None], win.targets.shape[1], axis=1)
    got = set(zip(users[marked].tolist(), win.targets[marked].tolist()))
    assert got == set(zip(old.users.tolist(), old.items.tolist()))  # each (user, item) is one row here
    assert int(trained.sum()) == len(split.test) + len(old)
    batch = next(iter(batches_of(win, 64, 0)(0)))
    net = model.net_.eval()
    objective = Objective("full", model.counts_)
    objective.teacher = _copy(fitted).net_.eval()
    with torch.no_grad():
        _, _, u_s, v_s, target = objective._retrieval(net, batch)
        rows = batch["events"][batch["targets"] >= 0] == REPLAYED
        assert 0 < int(rows.sum()) < len(rows)
        shift = 0.3 * torch.randn(v_s.shape, generator=torch.Generator().manual_seed(0))
        got = objective._distillation(net, batch, u_s, v_s + shift, target, rows)
        cand, tau = objective.trainable_idx, float(net.temperature)
        t = torch.log_softmax(u_s[rows] @ v_s[cand].T / tau, -1)
        s = torch.log_softmax(u_s[rows] @ (v_s + shift)[cand].T / tau, -1)
    assert float(got) == pytest.approx(float((t.exp() * (t - s)).sum(-1).mean()), rel=1e-5)


def test_an_update_learns_at_a_share_of_the_fit_rate_unless_told(base):
    _, split, fitted = base
    assert fitted.continual.update_lr_scale == 0.3 and fitted.optim.lr == pytest.approx(1e-2)  # the fixture's rate
    default = _copy(fitted)
    default.partial_fit(split.test, epochs=1)
    assert default.last_update_["lr"] == pytest.approx(3e-3)  # 0.3 x optim.lr 1e-2
    scaled = _copy(fitted)
    scaled.continual = scaled.continual.replace(update_lr_scale=1.0)
    scaled.partial_fit(split.test, epochs=1)
    assert scaled.last_update_["lr"] == pytest.approx(1e-2)
    fixed = _copy(fitted)
    fixed.continual = fixed.continual.replace(update_lr=5e-3, update_lr_scale=0.1)  # an explicit rate wins
    fixed.partial_fit(split.test, epochs=1)
    assert fixed.last_update_["lr"] == pytest.approx(5e-3)
    # the rate is the one the update trained with: one epoch at 0.3x moves the weights less than at 1x
    moved = [
        max(
            float((b.detach()[: a.shape[0]] - a.detach()).abs().max())
            for a, b in zip(fitted.net_.parameters(), m.net_.parameters())
        )
        for m in (default, scaled)
    ]
    assert moved[0] < moved[1]
    with pytest.raises(ValueError, match="update_lr_scale must be a number > 0, got 0"):
        fitted.continual.replace(update_lr_scale=0)
