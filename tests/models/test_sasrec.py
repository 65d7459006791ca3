"""SASRec beyond the shared contract: sequences, validation, observe, RNG and thread hygiene."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from lmrec.data import Dataset, IdMap, Interactions, leave_one_out
from lmrec.models import SASRec, load_model

N_ITEMS = 10


def cyclic(n_users: int = 30, length: int = 8, seed: int = 0) -> Interactions:
    """User u watches items s, s+1, ..., s+length-1 (mod 10) in that order, from a random start s."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = int(rng.integers(N_ITEMS))
        rows += [(f"u{u}", f"i{(start + t) % N_ITEMS}", float(t)) for t in range(length)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return Interactions.from_frame(
        frame, user_map=IdMap(f"u{u}" for u in range(n_users)), item_map=IdMap(f"i{i}" for i in range(N_ITEMS))
    )


def fast(**kw) -> SASRec:
    params = dict(
        max_len=6,
        hidden=16,
        n_layers=1,
        n_heads=1,
        dropout=0.1,
        epochs=40,
        batch_size=16,
        lr=1e-2,
        num_threads=1,
        random_state=0,
    )
    return SASRec(**{**params, **kw})


def test_windows_cover_every_target_once() -> None:
    model = fast(max_len=3)
    inputs, targets = model._windows([np.array([10, 11, 12, 13, 14])])
    # tokens are item + 1; windows from the newest end: inputs (12, 13, 14) -> targets (12, 13, 14)
    # as items, then the rest: input (11) -> target 11; -100 marks positions without a target
    np.testing.assert_array_equal(inputs, [[12, 13, 14], [0, 0, 11]])
    np.testing.assert_array_equal(targets, [[12, 13, 14], [-100, -100, 11]])
    # with an rng the second window ends 1..max_len items before the newest; every target is still
    # trained exactly once, and the newest window masks the targets the next one trains
    seq = np.arange(10, 18)
    layouts = set()
    for seed in range(8):
        inputs, targets = model._windows([seq], np.random.default_rng(seed))
        assert sorted(targets[targets >= 0].tolist()) == list(range(11, 18))
        # each target's input is the item just before it; the items are consecutive and tokens are
        # item + 1, so the input token equals the target item
        rows, cols = np.nonzero(targets >= 0)
        np.testing.assert_array_equal(inputs[rows, cols], targets[rows, cols])
        layouts.add(targets.tobytes())
    assert len(layouts) > 1
    with pytest.raises(ValueError, match="at least one user with two or more"):
        model._windows([np.array([1]), np.array([], dtype=np.int64)])


def test_learns_the_next_item_of_a_cycle() -> None:
    inter = cyclic()
    model = fast().fit(inter)
    last = np.array([seq[-1] for seq in inter.sequences()])
    items, _ = model.recommend(np.arange(inter.n_users), k=1, exclude_seen=False)
    np.testing.assert_array_equal(items[:, 0], (last + 1) % N_ITEMS)


def test_observe_appends_to_the_input_sequence() -> None:
    inter = cyclic()
    split = leave_one_out(inter)
    model = fast().fit(Dataset(split.train))
    before = [h.copy() for h in model.histories_]
    model.observe(split.valid)
    for u, seq in enumerate(split.valid.sequences()):
        np.testing.assert_array_equal(model.histories_[u], np.concatenate([before[u], seq]))
    # the valid item is now the newest input, so the test item (its successor) comes first
    items, _ = model.recommend(np.arange(inter.n_users), k=1)
    test_item = np.full(inter.n_users, -1)
    test_item[split.test.users] = split.test.items
    np.testing.assert_array_equal(items[:, 0], test_item)
    assert model.seen_[0, split.valid.items[split.valid.users == 0][0]] == 1


def test_validation_early_stopping_keeps_the_best_weights() -> None:
    split = leave_one_out(cyclic(length=10))
    model = fast(epochs=30, patience=2, dropout=0.3, lr=3e-2)
    model.fit(Dataset(split.train), valid=split)
    history = model.train_history_
    assert all("ndcg@10" in row for row in history)
    best = max(row["ndcg@10"] for row in history)
    # the restored weights give the best validation NDCG again, not the last epoch's
    validate = model._validation_fn(split.valid)
    assert validate()["ndcg@10"] == pytest.approx(best, abs=1e-9)
    assert best > 0.9  # the valid item is the successor of the last train item


def test_valid_with_other_maps_is_rejected() -> None:
    other = cyclic(n_users=5)
    with pytest.raises(ValueError, match="valid interactions use different id maps"):
        fast(epochs=1).fit(cyclic(), valid=other)


def test_global_rng_and_threads_are_left_alone() -> None:
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model = fast(epochs=2, num_threads=1).fit(cyclic())
    model.score_all(np.arange(3))
    np.testing.assert_array_equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_same_seed_same_model_other_seed_other_model() -> None:
    inter = cyclic()
    a = fast(epochs=3).fit(inter).score_all(np.arange(5))
    b = fast(epochs=3).fit(inter).score_all(np.arange(5))
    c = fast(epochs=3, random_state=1).fit(inter).score_all(np.arange(5))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_round_trip_keeps_histories(tmp_path) -> None:
    split = leave_one_out(cyclic())
    model = fast(epochs=3).fit(Dataset(split.train)).observe(split.valid)
    loaded = load_model(model.save(tmp_path / "sasrec"))
    assert [h.tolist() for h in loaded.histories_] == [h.tolist() for h in model.histories_]
    np.testing.assert_array_equal(loaded.score_all(np.arange(30)), model.score_all(np.arange(30)))
    product = loaded.user_vectors(np.arange(3)) @ loaded.item_vectors().T
    np.testing.assert_allclose(product, loaded.score_all(np.arange(3)), rtol=1e-5, atol=1e-6)


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"^device 'cuda' asked for, but CUDA is not available on this machine"):
        fast(epochs=1, device="cuda").fit(cyclic())


def test_a_model_saved_for_cuda_loads_on_the_cpu(tmp_path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    model = fast(epochs=2).fit(cyclic())
    path = model.save(tmp_path / "sasrec")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = path / "config.json"
    config.write_text(config.read_text().replace('"device": "auto"', '"device": "cuda"'))
    with caplog.at_level(logging.WARNING, logger="lmrec.models.sasrec"):
        loaded = load_model(path)
    assert loaded.device == "cuda" and next(loaded.net_.parameters()).device.type == "cpu"
    assert "loading on the CPU" in caplog.text
    np.testing.assert_array_equal(loaded.score_all(np.arange(30)), model.score_all(np.arange(30)))


def test_auto_device_and_fp32_on_the_cpu_match_the_explicit_cpu_run() -> None:
    # "auto" is the CPU here (asserted), and "auto" precision is fp32 on the CPU: the same weights
    if torch.cuda.is_available():
        pytest.skip("'auto' means the GPU on this machine")
    a = fast(epochs=3, device="auto").fit(cyclic())
    b = fast(epochs=3, device="cpu", precision="fp32").fit(cyclic())
    np.testing.assert_array_equal(a.score_all(np.arange(30)), b.score_all(np.arange(30)))


def test_bf16_autocast_on_the_cpu_still_learns_the_cycle() -> None:
    # CPU autocast lowers the matmuls to bf16; the weights stay fp32 and the next item still comes first
    inter = cyclic()
    model = fast(precision="bf16").fit(inter)
    assert next(model.net_.parameters()).dtype == torch.float32
    last = np.array([seq[-1] for seq in inter.sequences()])
    items, _ = model.recommend(np.arange(inter.n_users), k=1, exclude_seen=False)
    np.testing.assert_array_equal(items[:, 0], (last + 1) % N_ITEMS)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"max_len": 0}, r"SASRec max_len must be an integer >= 1, got 0"),
        ({"dropout": 1.0}, r"SASRec dropout must be in \[0, 1\), got 1.0"),
        ({"lr": 0.0}, r"SASRec lr must be > 0, got 0.0"),
        ({"device": "tpu"}, r"SASRec device must be one of \['auto', 'cpu', 'cuda', 'cuda:N', 'mps'\], got 'tpu'"),
        ({"precision": "fp8"}, r"SASRec precision must be one of \['auto', 'fp32', 'bf16', 'fp16'\], got 'fp8'"),
        ({"num_threads": 0}, r"SASRec num_threads must be >= 1 or None, got 0"),
        ({"loss": "bpr"}, r"SASRec loss must be one of 'auto', 'full', 'sampled', got 'bpr'"),
        ({"n_negatives": 0}, r"SASRec n_negatives must be an integer >= 1, got 0"),
        ({"full_softmax_max_items": 0}, r"SASRec full_softmax_max_items must be an integer >= 1, got 0"),
    ],
)
def test_bad_parameters(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fast(**params).fit(cyclic(n_users=3))


def test_user_without_history_gets_finite_scores() -> None:
    inter = cyclic(n_users=6)
    # a seventh user who is known to the map but has no interaction at all
    extra = Interactions.from_frame(
        inter.to_frame(), user_map=IdMap([*inter.user_map.ids, "new"]), item_map=inter.item_map
    )
    model = fast(epochs=2).fit(extra)
    scores = model.score_all(np.array([6, 0]))
    assert np.isfinite(scores).all()
    assert model.histories_[6].size == 0


def test_sampled_softmax_learns_the_next_item_of_a_cycle() -> None:
    inter = cyclic()
    # 4 negatives per step out of 10 items: the in-batch positives and the samples carry the signal
    model = fast(loss="sampled", n_negatives=4).fit(inter)
    assert model.loss_ == "sampled"
    last = np.array([seq[-1] for seq in inter.sequences()])
    items, _ = model.recommend(np.arange(inter.n_users), k=1, exclude_seen=False)
    np.testing.assert_array_equal(items[:, 0], (last + 1) % N_ITEMS)


@pytest.mark.parametrize(("threshold", "expected"), [(10, "full"), (9, "sampled")])
def test_auto_loss_switches_above_the_catalogue_threshold(threshold: int, expected: str) -> None:
    model = fast(epochs=1, full_softmax_max_items=threshold).fit(cyclic(n_users=4))
    assert model.loss_ == expected  # the catalogue has 10 items: sampled only above the threshold
    assert model.resolved_loss(10) == expected


@pytest.mark.parametrize(("loss", "moved"), [("sampled", False), ("full", True)])
def test_an_item_without_events_is_never_a_sampled_negative(loss: str, moved: bool) -> None:
    # item i9 is in the catalogue but nobody has it: the full softmax pushes its logit down at every
    # step (its embedding moves); the sampled softmax never draws it, so its row keeps its initial value
    inter = cyclic(n_users=12).to_frame()
    inter = inter[inter["item_id"] != "i9"]
    data = Interactions.from_frame(inter, item_map=IdMap(f"i{i}" for i in range(N_ITEMS)))
    model = fast(epochs=3, loss=loss, n_negatives=8).fit(data)
    torch.manual_seed(0)  # fit seeds the initial weights with random_state=0 the same way
    initial = model._make_net(N_ITEMS).item_weights()[9]
    trained = model.net_.item_weights()[9]
    assert torch.equal(trained, initial) is not moved
