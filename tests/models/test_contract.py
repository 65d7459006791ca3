"""The one contract test every registered recommender must pass.

A checkerboard data set has a known right answer: users of group A interacted only with block-A
items and users of group B only with block-B items; each user is missing exactly one item of their
own block (withheld). A personalised model, with seen items excluded, must put that withheld item
first: it is the only unseen in-block item, and nothing in the data links a user to the other
block. Popularity must instead rank by training counts. For the text model, each item's text names
its block.

Every model in ``MODEL_REGISTRY`` needs an entry in ``SPECS`` (fast hyper-parameters and one bad
one); `test_every_registered_model_has_a_spec` fails otherwise, so a new model cannot skip this file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest

from lmrec.data import Dataset, Interactions, ItemCatalog
from lmrec.models import (
    EASE,
    MODEL_REGISTRY,
    ItemKNN,
    MatrixFactorization,
    Popularity,
    Recommender,
    SASRec,
    TfidfRecommender,
    load_model,
)

BLOCK = 6  # items per block: A = 0..5, B = 6..11
N_A, N_B = 16, 8  # users per group; unequal so block A is more popular (Popularity's check)
N_USERS, N_ITEMS = N_A + N_B, 2 * BLOCK


@dataclass(frozen=True)
class Spec:
    """How the contract test builds one model.

    Attributes:
        model: the registry name.
        make: builds an unfitted model with fast hyper-parameters; keyword overrides allowed.
        bad: one bad hyper-parameter (None when the model has none) and ``bad_match``, a regex the
            ValueError message must match (it must name the parameter).
        kind: "personalised" models must rank the withheld item first; "popularity" ranks by count.
    """

    model: str
    make: Callable[..., Recommender]
    bad: dict[str, Any] | None = None
    bad_match: str = ""
    kind: Literal["personalised", "popularity"] = "personalised"
    fit_kwargs: dict[str, Any] = field(default_factory=dict)


def _lm(_cls: str = "LMRecommender", **kw: Any) -> Recommender:
    """The language-model interest model with a tiny hashing encoder (imported lazily, so a problem
    there fails only its own cases)."""
    from lmrec.encoders.fake import HashingEncoder
    from lmrec.models.lm import LMRecommender

    params: dict[str, Any] = dict(
        dim=16,
        item_tower={"whiten": False},
        user_tower={"max_len": 8, "n_layers": 1, "n_heads": 2, "dropout": 0.3},
        optim={"epochs": 30, "batch_size": 8, "lr": 1e-2},
        num_threads=1,
        text_encoder=HashingEncoder(32),
    )
    if _cls == "LMScenarioRecommender":
        from lmrec.models.lm import LMScenarioRecommender

        return LMScenarioRecommender(**{**params, **kw})
    return LMRecommender(**{**params, **kw})


SPECS: dict[str, Spec] = {
    "pop": Spec("pop", lambda **kw: Popularity(**kw), kind="popularity"),
    "itemknn": Spec(
        "itemknn", lambda **kw: ItemKNN(**{"k": 5, **kw}), {"k": 0}, r"ItemKNN k must be an integer >= 1, got 0"
    ),
    "ease": Spec(
        "ease",
        lambda **kw: EASE(**{"reg_weight": 1.0, **kw}),
        {"reg_weight": -1.0},
        r"EASE reg_weight must be > 0, got -1.0",
    ),
    "mf-als": Spec(
        "mf",
        lambda **kw: MatrixFactorization(
            **{
                "algorithm": "als",
                "factors": 2,
                "regularization": 0.1,
                "alpha": 5.0,
                "iterations": 10,
                "num_threads": 1,
                **kw,
            }
        ),
        {"algorithm": "svd"},
        r"algorithm must be 'als' or 'bpr', got 'svd'",
    ),
    "mf-bpr": Spec(
        "mf",
        lambda **kw: MatrixFactorization(
            **{
                "algorithm": "bpr",
                "factors": 2,
                "learning_rate": 0.05,
                "regularization": 0.001,
                "iterations": 200,
                "num_threads": 1,
                **kw,
            }
        ),
        {"factors": 0},
        r"factors must be an integer >= 1, got 0",
    ),
    "sasrec": Spec(
        "sasrec",
        # dropout matters: without it the tiny net memorises transitions instead of learning blocks
        lambda **kw: SASRec(
            **{
                "max_len": 8,
                "hidden": 16,
                "n_layers": 1,
                "n_heads": 2,
                "dropout": 0.3,
                "epochs": 30,
                "batch_size": 8,
                "lr": 1e-2,
                "num_threads": 1,
                **kw,
            }
        ),
        {"n_heads": 3},
        r"hidden \(16\) must be divisible by n_heads \(3\)",
    ),
    "lm": Spec("lm", _lm, {"dim": 0}, r"dim must be an integer >= 1, got 0"),
    # the contract data carry no scenarios: lm-scenario puts them all in one ("all")
    "lm-scenario": Spec(
        "lm-scenario",
        lambda **kw: _lm(_cls="LMScenarioRecommender", **kw),
        {"scenarios": {"adapter_rank": 0}},
        r"adapter_rank must be an integer >= 1, got 0",
    ),
    "tfidf": Spec(
        "tfidf", lambda **kw: TfidfRecommender(**kw), {"analyzer": "words"}, r"analyzer must be .*got 'words'"
    ),
}


def checkerboard() -> tuple[Dataset, np.ndarray]:
    """The contract data set and each user's withheld item (shape (N_USERS,))."""
    rng = np.random.default_rng(0)
    rows, withheld = [], []
    for u in range(N_USERS):
        block = 0 if u < N_A else 1
        held = block * BLOCK + u % BLOCK
        withheld.append(held)
        items = [i for i in range(block * BLOCK, (block + 1) * BLOCK) if i != held]
        for t, i in enumerate(rng.permutation(items)):  # a different order per user, for SASRec
            rows.append((f"u{u}", f"i{i}", float(t)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    # the item map lists every item in index order, so item index i is "i{i}"
    from lmrec.data import IdMap

    inter = Interactions.from_frame(
        frame,
        user_map=IdMap(f"u{u}" for u in range(N_USERS)),
        item_map=IdMap(f"i{i}" for i in range(N_ITEMS)),
    )
    names = {0: "alpha widget", 1: "omega gizmo"}
    texts = [f"{names[i // BLOCK]} model{i}" for i in range(N_ITEMS)]
    frame = pd.DataFrame({"title": texts}, index=[f"i{i}" for i in range(N_ITEMS)])
    catalog = ItemCatalog(frame, text_fields=["title"])
    return Dataset(inter, catalog, name="checkerboard"), np.asarray(withheld)


DATA, WITHHELD = checkerboard()
USERS = np.arange(N_USERS)


def test_checkerboard_is_what_the_docstring_says() -> None:
    seen = DATA.interactions.to_csr().toarray()
    assert seen.shape == (N_USERS, N_ITEMS)
    assert seen.sum(axis=1).tolist() == [BLOCK - 1] * N_USERS
    assert not seen[USERS, WITHHELD].any()
    assert not seen[:N_A, BLOCK:].any() and not seen[N_A:, :BLOCK].any()


def _import_every_model_module() -> None:
    """Import every module under lmrec.models, so models register whatever else was imported first."""
    import importlib
    import pkgutil

    import lmrec.models

    for info in pkgutil.walk_packages(lmrec.models.__path__, "lmrec.models."):
        importlib.import_module(info.name)


def test_every_registered_model_has_a_spec() -> None:
    _import_every_model_module()
    covered = {spec.model for spec in SPECS.values()}
    missing = sorted(set(MODEL_REGISTRY) - covered)
    assert not missing, f"registered models without an entry in tests/models/test_contract.py SPECS: {missing}"


_FITTED: dict[str, Recommender] = {}


@pytest.fixture(params=list(SPECS), scope="module")
def case(request: pytest.FixtureRequest) -> tuple[str, Spec, Recommender]:
    name = request.param
    spec = SPECS[name]
    if name not in _FITTED:
        _FITTED[name] = spec.make(random_state=0) if name != "pop" else spec.make()
        _FITTED[name].fit(DATA, **spec.fit_kwargs)
    return name, spec, _FITTED[name]


def test_known_answer(case: tuple[str, Spec, Recommender]) -> None:
    name, spec, model = case
    items, scores = model.recommend(USERS, k=3)
    if spec.kind == "personalised":
        # the withheld item is the only unseen in-block item: it must come first for every user
        np.testing.assert_array_equal(items[:, 0], WITHHELD, err_msg=f"{name} missed the withheld item")
        assert (scores[:, 0] > scores[:, 1]).all(), f"{name}: an out-of-block item ties the withheld one"
    else:
        # user u withholds item u % 6 of its block. Block A (users 0-15): items 0-3 are withheld by
        # 3 users each (13 = 16 - 3), items 4-5 by 2 (14). Block B (users 16-23 withhold 10, 11, 6,
        # 7, 8, 9, 10, 11): items 6-9 by 1 (7 = 8 - 1), items 10-11 by 2 (6)
        counts = np.array([13, 13, 13, 13, 14, 14, 7, 7, 7, 7, 6, 6], dtype=np.float32)
        np.testing.assert_array_equal(DATA.interactions.item_counts(), counts)
        seen = DATA.interactions.to_csr().toarray() > 0
        for u in USERS:
            masked = np.where(seen[u], -np.inf, counts)
            expected = np.lexsort((np.arange(N_ITEMS), -masked))[:3]  # by count, ties to the lower index
            np.testing.assert_array_equal(items[u], expected)
            np.testing.assert_array_equal(scores[u], counts[expected])


def test_recommend_shapes_padding_and_exclusion(case: tuple[str, Spec, Recommender]) -> None:
    name, _, model = case
    seen = DATA.interactions.to_csr().toarray() > 0
    items, scores = model.recommend(USERS[:4], k=N_ITEMS)
    assert items.shape == scores.shape == (4, N_ITEMS)
    assert items.dtype == np.int64 and scores.dtype == np.float32
    for row, u in enumerate(USERS[:4]):
        valid = items[row] >= 0
        # BLOCK - 1 items are seen, so exactly that many slots are padding, at the end
        assert valid.sum() == N_ITEMS - (BLOCK - 1)
        assert valid[: N_ITEMS - (BLOCK - 1)].all()
        assert np.isneginf(scores[row, ~valid]).all()
        assert not seen[u, items[row, valid]].any()
        assert (np.diff(scores[row, valid]) <= 0).all(), f"{name}: scores not in descending order"
    all_items, all_scores = model.recommend(USERS[:4], k=N_ITEMS, exclude_seen=False)
    assert (all_items >= 0).all() and np.isfinite(all_scores).all()
    assert sorted(all_items[0].tolist()) == list(range(N_ITEMS))
    # a scalar user is one row; k beyond the catalogue is clipped
    one, _ = model.recommend(3, k=100)
    assert one.shape == (1, N_ITEMS)


def test_recommend_with_candidates(case: tuple[str, Spec, Recommender]) -> None:
    _, _, model = case
    u = 0
    candidates = np.array([WITHHELD[u], 7, 9, 1 if WITHHELD[u] != 1 else 2])  # the last one is seen
    items, scores = model.recommend(u, k=4, candidates=candidates)
    got = items[0][items[0] >= 0]
    assert set(got.tolist()) == {int(WITHHELD[u]), 7, 9}
    assert items[0, 3] == -1 and np.isneginf(scores[0, 3])
    with_seen, _ = model.recommend(u, k=4, candidates=candidates, exclude_seen=False)
    assert set(with_seen[0].tolist()) == set(candidates.tolist())


def test_score_matches_score_all_batch_and_scalar(case: tuple[str, Spec, Recommender]) -> None:
    _, _, model = case
    full = np.asarray(model.score_all(USERS))
    assert full.shape == (N_USERS, N_ITEMS) and full.dtype == np.float32
    rng = np.random.default_rng(1)
    users = rng.integers(0, N_USERS, 40)
    items = rng.integers(0, N_ITEMS, 40)
    batch = model.score(users, items)
    np.testing.assert_allclose(batch, full[users, items], rtol=1e-5, atol=1e-6)
    scalar = np.array([model.score(np.array([u]), np.array([i]))[0] for u, i in zip(users[:8], items[:8])])
    np.testing.assert_allclose(scalar, batch[:8], rtol=1e-5, atol=1e-6)
    single_rows = np.vstack([model.score_all(np.array([u])) for u in USERS[:5]])
    np.testing.assert_allclose(single_rows, full[:5], rtol=1e-5, atol=1e-6)


def test_similar_items_excludes_the_item(case: tuple[str, Spec, Recommender]) -> None:
    name, spec, model = case
    query = np.arange(N_ITEMS)
    items, scores = model.similar_items(query, k=4)
    assert items.shape == scores.shape == (N_ITEMS, 4)
    for i in query:
        assert i not in items[i].tolist(), f"{name}: item {i} is among its own similar items"
    if name in ("itemknn", "ease", "tfidf", "mf-als"):
        # nothing links the two blocks, so an item's nearest neighbour is in its own block
        np.testing.assert_array_equal(items[:, 0] // BLOCK, query // BLOCK)
    with pytest.raises(IndexError, match="out of range"):
        model.similar_items(N_ITEMS)


def test_save_load_round_trip(case: tuple[str, Spec, Recommender], tmp_path) -> None:
    name, _, model = case
    path = model.save(tmp_path / name)
    config = json.loads((path / "config.json").read_text())
    assert config["model"] == model.model_name
    loaded = load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_params() == json.loads(json.dumps(model.get_params()))
    np.testing.assert_array_equal(loaded.score_all(USERS), model.score_all(USERS))
    for a, b in zip(loaded.recommend(USERS, k=5), model.recommend(USERS, k=5)):
        np.testing.assert_array_equal(a, b)
    everything = np.arange(N_ITEMS)
    np.testing.assert_array_equal(loaded.similar_items(everything, 3)[0], model.similar_items(everything, 3)[0])
    with np.load(path / "state.npz", allow_pickle=False) as arrays:  # no pickled objects anywhere
        assert all(arrays[key].dtype != object for key in arrays.files)


def test_bad_hyper_parameter_raises(case: tuple[str, Spec, Recommender]) -> None:
    name, spec, _ = case
    if spec.bad is None:
        pytest.skip(f"{name} has no hyper-parameters")
    with pytest.raises(ValueError, match=spec.bad_match):
        spec.make(**spec.bad).fit(DATA)


def test_out_of_range_user_raises(case: tuple[str, Spec, Recommender]) -> None:
    _, _, model = case
    with pytest.raises(IndexError, match=rf"user index {N_USERS} out of range \[0, {N_USERS}\)"):
        model.recommend(np.array([0, N_USERS]))
    with pytest.raises(IndexError, match="user index -1 out of range"):
        model.score(np.array([-1]), np.array([0]))


def test_unfitted_model_says_so() -> None:
    for spec in SPECS.values():
        with pytest.raises(RuntimeError, match="is not fitted"):
            spec.make().recommend(0)
