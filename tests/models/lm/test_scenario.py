"""lm-scenario: scenario-dependent answers, adapters for new scenarios, persistence, evaluation, CLI.

The two-scenario data: 24 items in four genres of six ("action", "comedy" live in scenario A,
"drama", "horror" in scenario B; item text names the genre). User u likes genre ``u % 2`` in A and
genre ``2 + (u // 2) % 2`` in B, and alternates between the two scenarios in a random order, each
scenario's items in a fixed cyclic order. From the history alone the next scenario is a coin flip,
so a model that ignores scenarios cannot put the right genre first in both; told the scenario, the
right answer is the user's genre in that scenario.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lmrec.data import Dataset, IdMap, Interactions, ItemCatalog, Split, leave_one_out
from lmrec.encoders.fake import HashingEncoder
from lmrec.eval import evaluate
from lmrec.models import load_model
from lmrec.models.lm import LMScenarioRecommender

GENRES = ["action", "comedy", "drama", "horror"]
PER, N_USERS, PER_SCENARIO = 6, 48, 5
USERS = np.arange(N_USERS)
SMALL = {
    "dim": 16,
    "user_tower": {"max_len": 8, "n_layers": 1, "n_heads": 2, "dropout": 0.1},
    "optim": {"epochs": 60, "batch_size": 8, "lr": 1e-2},
    "item_tower": {"whiten": False},
    "num_threads": 1,
    "random_state": 0,
    "scenarios": {"adapter_rank": 4},
}


def genre_in(u: np.ndarray, scenario: int) -> np.ndarray:
    return u % 2 if scenario == 0 else 2 + (u // 2) % 2


def two_scenario_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(N_USERS):
        taken = [0, 0]
        for t, s in enumerate(rng.permutation([0] * PER_SCENARIO + [1] * PER_SCENARIO)):
            g = int(genre_in(np.array(u), s))
            rows.append((f"u{u}", f"i{g * PER + (taken[s] + u) % PER}", 1000.0 * t, "AB"[s]))
            taken[s] += 1
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "scenario"])


def two_scenario_dataset() -> Dataset:
    inter = Interactions.from_frame(
        two_scenario_frame(),
        scenario_col="scenario",
        user_map=IdMap(f"u{u}" for u in range(N_USERS)),
        item_map=IdMap(f"i{i}" for i in range(4 * PER)),
    )
    titles = pd.DataFrame(
        {"title": [f"{GENRES[i // PER]} film" for i in range(4 * PER)]}, index=[f"i{i}" for i in range(4 * PER)]
    )
    return Dataset(inter, ItemCatalog(titles, text_fields=["title"]), None, name="two-scenarios")


def make(**overrides) -> LMScenarioRecommender:
    """``overrides`` go through `LMScenarioRecommender.from_params`: dotted keys, components or flat names."""
    return LMScenarioRecommender.from_params({**SMALL, "text_encoder": HashingEncoder(32), **overrides})


@pytest.fixture(scope="module")
def data_split():
    data = two_scenario_dataset()
    return data, leave_one_out(data.interactions)


@pytest.fixture(scope="module")
def fitted(data_split):
    data, split = data_split
    return make().fit(data.with_interactions(split.train))


# ---------------------------------------------------------------------- the right answer depends on the scenario
def test_top_item_follows_the_scenario(fitted) -> None:
    assert fitted.scenario_names_ == ["A", "B"] and fitted.is_scenario_aware
    top_a = fitted.recommend(USERS, 1, scenario=0)[0][:, 0]
    top_b = fitted.recommend(USERS, 1, scenario="B")[0][:, 0]
    # scenario A must put the user's A genre first, B the user's B genre (a different item, in another genre)
    assert (top_a // PER == genre_in(USERS, 0)).mean() >= 0.95
    assert (top_b // PER == genre_in(USERS, 1)).mean() >= 0.95
    assert (top_a != top_b).all()
    # the shared path gives one list whatever the scenario: it cannot be right for both
    shared = fitted.recommend(USERS, 1)[0][:, 0]
    both = (shared // PER == genre_in(USERS, 0)) & (shared // PER == genre_in(USERS, 1))
    assert not both.any()


def test_scenario_forms_agree_and_batch_equals_scalar(fitted) -> None:
    by_id = fitted.score_all(USERS, 1)
    np.testing.assert_array_equal(by_id, fitted.score_all(USERS, "B"))
    np.testing.assert_array_equal(by_id, fitted.score_all(USERS, np.ones(N_USERS, np.int64)))
    mixed = np.where(USERS % 2 == 0, 0, 1)
    got = fitted.score_all(USERS, mixed)
    np.testing.assert_allclose(got[mixed == 0], fitted.score_all(USERS, 0)[mixed == 0], atol=1e-6)
    np.testing.assert_allclose(got[3:4], fitted.score_all(np.array([3]), 1), atol=1e-6)
    # None (and an unknown name) is the shared path: the lm model's own score
    shared = fitted.user_vectors(USERS) @ fitted.item_vectors().T
    np.testing.assert_allclose(fitted.score_all(USERS), shared, atol=1e-6)
    np.testing.assert_array_equal(fitted.score_all(USERS, "no-such-page"), fitted.score_all(USERS))
    # user vectors of a scenario are those of encode_users with the same history
    hist = [fitted.hist_items_[u] for u in (0, 5)]
    times = [fitted.hist_times_[u] for u in (0, 5)]
    np.testing.assert_allclose(
        fitted.encode_users(hist, None, times, known_users=np.array([0, 5]), scenario=1),
        fitted.user_vectors(np.array([0, 5]), scenario=1),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match=r"scenario id 2 out of range \[-1, 2\)"):
        fitted.score_all(USERS[:2], 2)
    with pytest.raises(ValueError, match=r"one id or an \(3,\) array, got shape \(2,\)"):
        fitted.score_all(USERS[:3], np.array([0, 1]))


def test_save_load_gives_identical_scores(fitted, tmp_path) -> None:
    loaded = load_model(fitted.save(tmp_path / "m"))
    assert isinstance(loaded, LMScenarioRecommender) and loaded.scenario_names_ == ["A", "B"]
    for scenario in (None, 0, 1, np.where(USERS % 3 == 0, 0, -1)):
        np.testing.assert_array_equal(loaded.score_all(USERS, scenario), fitted.score_all(USERS, scenario))
    assert json.loads((tmp_path / "m" / "config.json").read_text())["params"]["scenarios"]["adapter_rank"] == 4


def test_a_directory_saved_with_flat_params_loads(fitted, tmp_path) -> None:
    """format_version 1: the flat constructor arguments of before the components (adapter_rank, max_len, ...)."""
    path = fitted.save(tmp_path / "v1")
    config = json.loads((path / "config.json").read_text())
    back = {dotted: flat for flat, dotted in LMScenarioRecommender.flat_names().items()}
    params = config["params"]
    flat = {k: params[k] for k in ("dim", "num_threads", "show_progress", "random_state")}
    for component in LMScenarioRecommender.components:
        # fields added after format 1 (optim.device, optim.precision, ...) have no flat name
        flat.update({back[f"{component}.{f}"]: v for f, v in params[component].items() if f"{component}.{f}" in back})
    assert flat["adapter_rank"] == 4 and flat["max_len"] == params["user_tower"]["max_len"]
    del config["format_version"]
    config["params"] = flat
    (path / "config.json").write_text(json.dumps(config))
    loaded = load_model(path)
    assert loaded.get_params() == fitted.get_params()
    for scenario in (None, 1):
        np.testing.assert_array_equal(loaded.score_all(USERS, scenario), fitted.score_all(USERS, scenario))


def test_bad_settings_are_named(data_split) -> None:
    data, split = data_split
    plain = make(epochs=1).fit(Dataset(Interactions.from_frame(two_scenario_frame()), data.items))
    assert plain.scenario_names_ == ["all"]  # no scenarios: one (with a warning)
    with pytest.raises(ValueError, match=r"unknown scenario\(s\) \['C'\]"):
        make(scenario_weights={"C": 2.0}, epochs=1).fit(data.with_interactions(split.train))
    with pytest.raises(
        ValueError,
        match=r"^LMScenarioRecommender trains with the full softmax; objective.loss must be 'auto' or 'full', got 'bpr'$",
    ):
        make(loss="bpr").fit(data.with_interactions(split.train))


def test_balanced_weights(data_split) -> None:
    data, split = data_split
    model = make(scenario_weights="balanced", epochs=1).fit(data.with_interactions(split.train))
    n = np.bincount((split.train.scenarios == "B").astype(int), minlength=2).astype(float)
    # balanced: sqrt(mean count / own count)
    np.testing.assert_allclose(model.scenario_weights_, np.sqrt(n.mean() / n), rtol=1e-6)


# ---------------------------------------------------------------------- a new scenario with few parameters
def test_adapt_trains_only_the_new_adapter(data_split) -> None:
    data, split = data_split
    only_a = split.train.subset(split.train.scenarios == "A")
    model = make(epochs=20).fit(data.with_interactions(only_a))
    assert model.scenario_names_ == ["A"]
    before = {k: v.clone() for k, v in model.net_.state_dict().items()}
    report = model.adapt(data.with_interactions(split.train), "B", epochs=5)
    after = model.net_.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key  # the shared model (and A's adapter), bitwise
    # new adapter: embedding d + user (r x d, d x r) + item (r x d, d x r) = 16 + 4 * 4 * 16 = 272
    assert report["trainable_params"] == 272
    # full fine-tuning: the backbone + the new adapter (A's adapter is not trained for B):
    # item tower: experts Linear(32, 4*16) 32*64 + 64 = 2112, gate 32*4 = 128, ID table 24*16 = 384 -> 2624
    # user tower: bos 16, positions 9*16 = 144, time gaps 20*16 = 320, input norm 32, out norm 32,
    #   one layer: in_proj 48*16 + 48 = 816, out_proj 16*16 + 16 = 272, ff 16*64 + 64 = 1088 and
    #   64*16 + 16 = 1040, two norms 64 -> 3280; tower 16 + 144 + 320 + 32 + 32 + 3280 = 3824
    # 2624 + 3824 + 272 = 6720
    assert report["full_finetune_params"] == 6720
    assert report["trainable_share"] == pytest.approx(272 / 6720)
    assert report["n_train_positions"] == int((split.train.scenarios == "B").sum())
    assert model.scenario_names_ == ["A", "B"] and model.adapt_reports_ == [report]
    assert model.net_.scenario.adapters[1].user_b.abs().sum() > 0  # the new adapter did learn
    # trained on A alone, the shared path ranks A's items first; B's adapter moves B's items to the top
    # (which B genre a user likes is not separable in a backbone that never saw B: not asserted)
    assert (model.recommend(USERS, 1)[0][:, 0] // PER >= 2).mean() <= 0.1
    assert (model.recommend(USERS, 1, scenario="B")[0][:, 0] // PER >= 2).mean() >= 0.95


def test_adapt_to_a_new_domain(fitted, tmp_path) -> None:
    from dataclasses import replace

    from lm_helpers import COLD, N_ITEMS, genre_dataset, genre_of_user
    from lm_helpers import N_USERS as N_GENRE_USERS

    model = load_model(fitted.save(tmp_path / "m"))
    shared_tower = {k: v.clone() for k, v in model.net_.user_tower.state_dict().items()}
    genres = genre_dataset()
    genres = genres.with_interactions(
        replace(genres.interactions, scenarios=np.full(len(genres.interactions), "films", object))
    )
    report = model.adapt(genres, "films", epochs=5)
    assert report["new_domain"] and report["trainable_params"] == 272
    assert model.n_items == N_ITEMS and model.n_users == N_GENRE_USERS
    assert all(torch.equal(v, model.net_.user_tower.state_dict()[k]) for k, v in shared_tower.items())
    # the new items have no ID part: they are scored from text (through the old adaptor)
    assert not model.net_.item_tower.id_mask.any()
    users = np.arange(N_GENRE_USERS)
    # each user has seen all six warm items of their genre; the unseen cold item of that genre has the
    # same text, so through the text bridge it must come first
    top = model.recommend(users, 1, scenario="films")[0][:, 0]
    assert (top == COLD[[genre_of_user(u) for u in users]]).mean() >= 0.9
    again = load_model(model.save(tmp_path / "moved"))
    np.testing.assert_array_equal(again.score_all(users, 2), model.score_all(users, 2))


def test_adapt_rejects_bad_input(fitted, data_split) -> None:
    data, split = data_split
    with pytest.raises(ValueError, match="no interaction has scenario 'C'"):
        fitted.adapt(data.with_interactions(split.train), "C")
    with pytest.raises(ValueError, match="adapt mode must be 'adapter' or 'full', got 'half'"):
        fitted.adapt(data.with_interactions(split.train), "B", mode="half")
    stranger = Interactions.from_frame(
        pd.DataFrame({"user_id": ["zz"], "item_id": ["i0"], "timestamp": [0.0]}), item_map=fitted.item_map_
    )
    with pytest.raises(ValueError, match="needs the model's user map too"):
        fitted.adapt(stranger, "B")


def test_full_adaptation_anchored_to_its_start(fitted, data_split, tmp_path) -> None:
    """L2-SP in full fine-tuning: at rate 1 the carried-over weights never move, the item-ID table and
    the new adapter still learn; a moderate pull ends nearer the start than no pull."""
    data, split = data_split
    train = data.with_interactions(split.train)
    start = {k: v.clone() for k, v in fitted.net_.state_dict().items()}
    carried = [
        k
        for k in start
        if not k.startswith("scenario.") and "id_emb" not in k and k in dict(fitted.net_.named_parameters())
    ]
    assert carried

    def distance(model) -> float:
        params = dict(model.net_.named_parameters())
        return float(sum((params[k].detach() - start[k]).pow(2).sum() for k in carried))

    lr = SMALL["optim"]["lr"]
    runs = {}
    for anchor in (0.0, 10.0, 1.0 / lr):
        model = load_model(fitted.save(tmp_path / f"a{anchor:g}"))
        report = model.adapt(train, "B", mode="full", epochs=5, lr=lr, anchor=anchor)
        assert report["anchor"] == anchor
        runs[anchor] = model
    pinned = runs[1.0 / lr]
    after = dict(pinned.net_.named_parameters())
    for k in carried:
        torch.testing.assert_close(after[k].detach(), start[k], rtol=0, atol=1e-7, msg=k)
    assert pinned.net_.scenario.adapters[1].user_b.abs().sum() > 0  # the new adapter learned regardless
    assert not torch.equal(after["item_tower.id_emb.weight"].detach(), start["item_tower.id_emb.weight"])
    assert distance(runs[0.0]) > 0
    assert distance(runs[10.0]) < 0.8 * distance(runs[0.0])
    with pytest.raises(
        ValueError, match="adapt anchor pulls the fine-tuned backbone toward its start; it needs mode='full'"
    ):
        fitted.adapt(train, "B", anchor=1.0)
    for bad in (-1.0, float("nan"), True):
        with pytest.raises(ValueError, match="adapt anchor must be a finite number >= 0"):
            fitted.adapt(train, "B", mode="full", anchor=bad)


def test_reset_parts_reinitialise_only_what_is_named(fitted, tmp_path) -> None:
    """A reset part gets a fresh, seed-determined initialisation (SASRec-style N(0, 0.02) in the user
    tower, LayerNorm at 1 / 0); the parts not named keep their trained weights."""
    from lmrec.models.lm.domain import reset_parts

    def state(model, prefix):
        return {k: v.clone() for k, v in model.net_.state_dict().items() if k.startswith(prefix)}

    trained_user, trained_adaptor = state(fitted, "user_tower."), state(fitted, "item_tower.adaptor.")
    resets = []
    for run in range(2):
        model = load_model(fitted.save(tmp_path / f"r{run}"))
        torch.manual_seed(7)
        ids = reset_parts(model.backbone, ("user_tower",))
        assert len(ids) == len(list(model.net_.user_tower.parameters()))
        resets.append(state(model, "user_tower."))
        for k, v in state(model, "item_tower.adaptor.").items():
            assert torch.equal(v, trained_adaptor[k]), k
    for k in resets[0]:
        assert torch.equal(resets[0][k], resets[1][k]), k  # same seed, same fresh weights
    assert not torch.equal(resets[0]["user_tower.pos.weight"], trained_user["user_tower.pos.weight"])
    assert 0.015 < float(resets[0]["user_tower.pos.weight"].std()) < 0.025
    assert torch.equal(
        resets[0]["user_tower.out_norm.weight"], torch.ones_like(trained_user["user_tower.out_norm.weight"])
    )

    model = load_model(fitted.save(tmp_path / "adaptor"))
    reset_parts(model.backbone, ["adaptor"])
    changed = [k for k, v in state(model, "item_tower.adaptor.").items() if not torch.equal(v, trained_adaptor[k])]
    assert changed == list(trained_adaptor)
    for k, v in state(model, "user_tower.").items():
        assert torch.equal(v, trained_user[k]), k


def test_full_adaptation_with_a_fresh_user_tower(fitted, data_split, tmp_path) -> None:
    """reset='user_tower' trains the fresh tower while the L2-SP pull (which skips reset parts) still
    pins the carried-over adaptor; bad names and adapter mode are errors."""
    data, split = data_split
    train = data.with_interactions(split.train)
    lr = SMALL["optim"]["lr"]
    start = {k: v.clone() for k, v in fitted.net_.state_dict().items()}
    model = load_model(fitted.save(tmp_path / "m"))
    report = model.adapt(train, "B", mode="full", epochs=3, lr=lr, anchor=1.0 / lr, reset="user_tower")
    assert report["reset"] == ["user_tower"]
    after = {k: v.detach() for k, v in model.net_.named_parameters()}
    for k in (k for k in after if k.startswith("item_tower.adaptor.")):
        torch.testing.assert_close(after[k], start[k], rtol=0, atol=1e-7, msg=k)
    moved = [k for k in after if k.startswith("user_tower.") and not torch.equal(after[k], start[k])]
    assert "user_tower.pos.weight" in moved and len(moved) == len([k for k in after if k.startswith("user_tower.")])
    with pytest.raises(
        ValueError, match=r"adapt reset names unknown part 'heads'; choose from \['user_tower', 'adaptor'\]"
    ):
        fitted.adapt(train, "B", mode="full", reset=("user_tower", "heads"))
    with pytest.raises(
        ValueError, match="adapt reset re-initialises parts of the backbone, which only mode='full' trains"
    ):
        fitted.adapt(train, "B", reset="adaptor")


# ---------------------------------------------------------------------- evaluation
class SpyModel:
    """Scores item i for user u as 1 when i is u's target under the scenario it is asked for."""

    is_scenario_aware = True
    scenario_names_ = ["A", "B"]

    def __init__(self, answers: dict[int, np.ndarray]) -> None:
        self.answers, self.calls = answers, []

    def score_all(self, users, scenario=None):
        self.calls.append(None if scenario is None else np.asarray(scenario).copy())
        ids = np.full(len(users), -1) if scenario is None else np.asarray(scenario)
        out = np.zeros((len(users), 4), np.float32)
        for row, (u, s) in enumerate(zip(users, ids)):
            out[row, self.answers[int(s)][u]] = 1.0
        return out


def tiny_split() -> Split:
    users, items = IdMap(["u0", "u1", "u2"]), IdMap(["i0", "i1", "i2", "i3"])

    def part(rows):
        frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "s"])
        return Interactions.from_frame(frame, scenario_col="s", user_map=users, item_map=items)

    train = part([("u0", "i0", 0.0, "A"), ("u1", "i0", 0.0, "A"), ("u2", "i0", 0.0, "A")])
    # u2 has two targets; the later one (i3, scenario B) decides the scenario it is scored under
    test = part([("u0", "i1", 5.0, "A"), ("u1", "i2", 5.0, "B"), ("u2", "i1", 5.0, "A"), ("u2", "i3", 6.0, "B")])
    return Split(train, part([]), test, "tiny")


def test_evaluator_scores_each_user_under_the_target_scenario() -> None:
    split = tiny_split()
    # under A the model answers i1 for everyone, under B i2 for u1 and i3 for u2, shared: i0 (masked)
    spy = SpyModel({0: np.array([1, 1, 1]), 1: np.array([2, 2, 3]), -1: np.array([0, 0, 0])})
    res = evaluate(spy, split, ks=(1,), metrics=("hit", "recall"), user_groups=())
    np.testing.assert_array_equal(spy.calls[0], [0, 1, 1])
    # every user's top-1 is a relevant item: hit@1 = 1 for all; u2's recall@1 = 1/2 -> mean (1 + 1 + 0.5) / 3
    assert res.metrics["hit@1"] == 1.0 and res.metrics["recall@1"] == pytest.approx(2.5 / 3)
    # by scenario: A's users are u0 (i1 hit) and u2 (relevant in A: i1; ranked i3 -> miss) -> 0.5; B: u1, u2 -> 1
    assert res.by_scenario["A"]["hit@1"] == 0.5 and res.by_scenario["B"]["hit@1"] == 1.0


def test_models_that_ignore_scenarios_are_called_as_before(fitted, data_split) -> None:
    data, split = data_split

    class Plain:
        def __init__(self, model):
            self.model = model

        def score_all(self, users):  # no scenario keyword: would raise if the evaluator passed one
            return self.model.score_all(users)

    plain = evaluate(Plain(fitted), split, phase="valid", ks=(10,), user_groups=())
    aware = evaluate(fitted, split, phase="valid", ks=(10,), user_groups=())
    # told the target's scenario, the model does better than its own shared path
    assert aware.metrics["ndcg@10"] > plain.metrics["ndcg@10"]
    assert set(aware.by_scenario) == {"A", "B"}


# ---------------------------------------------------------------------- the command line
def test_cli_acceptance_on_a_recbole_directory(tmp_path) -> None:
    from typer.testing import CliRunner

    from lmrec.cli import app

    d = tmp_path / "shop"
    d.mkdir()
    frame = two_scenario_frame()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"{r.user_id}\t{r.item_id}\t{r.timestamp}" for r in frame.itertuples()]
    (d / "shop.inter").write_text("\n".join(lines) + "\n")
    # a list-valued item column: the first element (the scenario) is "A" or "B", the second the genre
    items = ["item_id:token\ttitle:token_seq\tcategories:token_seq"]
    items += [f"i{i}\t{GENRES[i // PER]} film\t{'AB'[i // (2 * PER)]}, {GENRES[i // PER]}" for i in range(4 * PER)]
    (d / "shop.item").write_text("\n".join(items) + "\n")
    out = tmp_path / "out.json"
    args = [
        "evaluate",
        "--data",
        str(d),
        "--models",
        "lm,lm-scenario",
        "--scenario-field",
        "categories",
        "--split",
        "loo",
        "--json",
        str(out),
    ]
    for model in ("lm", "lm-scenario"):
        for p in (
            "encoder_backend=fake",
            "epochs=3",
            "dim=16",
            "n_layers=1",
            "max_len=8",
            "num_threads=1",
            "whiten=false",
        ):
            args += ["--param", f"{model}.{p}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())["results"]
    for model in ("lm", "lm-scenario"):
        assert set(results[model]["by_scenario"]) == {"A", "B"}
        assert 0.0 <= results[model]["by_scenario"]["A"]["ndcg@10"] <= 1.0
    # --scenario-level 1 takes the genre instead
    level = CliRunner().invoke(app, [*args[:-2], "--json", str(out), "--scenario-level", "1"])
    assert level.exit_code == 0, level.output
    assert set(json.loads(out.read_text())["results"]["lm-scenario"]["by_scenario"]) == set(GENRES)


# ---------------------------------------------------------------------- the adapter's text-path correction
@pytest.fixture(scope="module")
def only_a(data_split, tmp_path_factory):
    """A model that never saw scenario B (B's items have no trained ID row), saved once."""
    data, split = data_split
    model = make(epochs=20).fit(data.with_interactions(split.train.subset(split.train.scenarios == "A")))
    return model.save(tmp_path_factory.mktemp("only_a") / "m")


def test_text_adapter_starts_as_the_identity(only_a) -> None:
    model = load_model(only_a)
    net = model.net_
    adapter = net.scenario.add(torch.Generator().manual_seed(1), text_rank=3)
    assert adapter.text_a.shape == (3, 32) and adapter.text_b.shape == (16, 3)  # (r_t, k), (d, r_t)
    assert adapter.text_a.abs().sum() > 0 and not adapter.text_b.any()  # A random, B zero: LoRA init
    with torch.no_grad():
        p = net.project(net.item_tower())  # (24, 16) shared unit item vectors
        u = net.project(torch.randn(5, 16, generator=torch.Generator().manual_seed(2)))
        assert torch.equal(adapter.item(p, net.item_tower), p)  # bitwise: the correction adds exact zeros
        assert torch.equal(adapter.user(u), u)
    with pytest.raises(ValueError, match="needs the item tower's text path"):
        adapter.item(p)
    with pytest.raises(ValueError, match="text correction: 23 item vectors but 24 item texts"):
        adapter.item(p[:23], net.item_tower)


def test_adapt_with_text_rank(only_a, data_split, tmp_path) -> None:
    data, split = data_split
    model = load_model(only_a)
    before = {k: v.clone() for k, v in model.net_.state_dict().items()}
    report = model.adapt(data.with_interactions(split.train), "B", epochs=5, text_rank=3)
    after = model.net_.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key  # shared weights (and A's adapter), bitwise
    # d + 4 r d + r_t (k + d) = 16 + 4 * 4 * 16 + 3 * (32 + 16) = 16 + 256 + 144 = 416
    assert report["trainable_params"] == 416 and report["text_rank"] == 3 and report["best_valid_ndcg@10"] is None
    assert report["trainable_params"] == type(model.net_.scenario.adapters[1]).n_params(16, 4, 3, 32)
    # full fine-tuning: 6720 as in test_adapt_trains_only_the_new_adapter, with this adapter's 416 for 272
    assert report["full_finetune_params"] == 6720 - 272 + 416
    adapter = model.net_.scenario.adapters[1]
    assert adapter.text_b.abs().sum() > 0  # the correction did learn
    # B's item vectors move through the text path: zeroing the correction gives other vectors
    with_text, learned = model.scenario_item_vectors("B"), adapter.text_b.detach().clone()
    with torch.no_grad():
        adapter.text_b.zero_()
    model.refresh_vectors()
    without = model.scenario_item_vectors("B")
    assert np.abs(with_text - without)[2 * PER :].max() > 1e-2  # B's items (genres 2, 3) changed
    with torch.no_grad():
        adapter.text_b.copy_(learned)
    model.refresh_vectors()
    np.testing.assert_array_equal(model.scenario_item_vectors("B"), with_text)
    # save / load: the adapter's text rank is read back from its arrays; scores are identical
    loaded = load_model(model.save(tmp_path / "adapted"))
    assert loaded.net_.scenario.adapters[1].text_rank == 3 and loaded.net_.scenario.adapters[0].text_rank == 0
    for scenario in (None, 0, 1):
        np.testing.assert_array_equal(loaded.score_all(USERS, scenario), model.score_all(USERS, scenario))
    with pytest.raises(ValueError, match="adapt text_rank must be an integer >= 0, got -1"):
        model.adapt(data.with_interactions(split.train), "B", text_rank=-1)


def test_text_rank_in_joint_fitting(data_split, tmp_path) -> None:
    data, split = data_split
    model = make(epochs=2, adapter_text_rank=2).fit(data.with_interactions(split.train))
    assert [a.text_rank for a in model.net_.scenario.adapters] == [2, 2]
    loaded = load_model(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.score_all(USERS, 1), model.score_all(USERS, 1))
    with pytest.raises(ValueError, match="adapter_text_rank=2 needs a text path; item_repr='id' has none"):
        make(epochs=1, adapter_text_rank=2, item_repr="id").fit(data.with_interactions(split.train))


def test_adapt_with_text_history(only_a, data_split, tmp_path) -> None:
    data, split = data_split
    model = load_model(only_a)
    report = model.adapt(data.with_interactions(split.train), "B", epochs=5, text_rank=3, text_history=True)
    assert report["text_history"] is True
    assert report["trainable_params"] == 416  # the history side reuses the correction: no extra parameters
    adapter = model.net_.scenario.adapters[1]
    assert adapter.text_history and not model.net_.scenario.adapters[0].text_history
    # B's users are encoded from the corrected items: by hand, the shared encoder over raw + B^t A^t w
    with torch.no_grad():
        table = model.item_raw_ + adapter.text_term(model.net_.item_tower, model.n_items)
    hist = [model.hist_items_[u] for u in USERS]
    times = [model.hist_times_[u] for u in USERS]
    by_hand = model.backbone.encode_users(hist, None, times, known_users=USERS, item_raw=table)
    net = model.net_
    with torch.no_grad():
        expected = net.scenario.users(torch.from_numpy(by_hand), torch.full((len(USERS),), 1), net.project).numpy()
    np.testing.assert_allclose(model.user_vectors(USERS, "B"), expected, rtol=1e-5, atol=1e-6)
    # ... which differs from reading the shared items (the correction learned something)
    plain = model.backbone.encode_users(hist, None, times, known_users=USERS)
    assert np.abs(by_hand - plain).max() > 1e-3
    # scenario A (no history correction) and the shared path are unchanged by B's flag
    np.testing.assert_array_equal(model.user_vectors(USERS, None), plain)
    loaded = load_model(model.save(tmp_path / "adapted"))
    assert [a.text_history for a in loaded.net_.scenario.adapters] == [False, True]
    for scenario in (None, 0, 1):
        np.testing.assert_array_equal(loaded.score_all(USERS, scenario), model.score_all(USERS, scenario))
    with pytest.raises(ValueError, match="adapt text_history=True needs a text-path correction"):
        model.adapt(data.with_interactions(split.train), "C", text_rank=0, text_history=True)
    with pytest.raises(ValueError, match="adapter_text_history must be True or False, got 'yes'"):
        make(epochs=1, adapter_text_rank=2, adapter_text_history="yes").fit(data.with_interactions(split.train))


def test_refit_whitening_like_whitens_the_new_vectors_at_the_old_width() -> None:
    from lmrec.models.lm.domain import refit_whitening_like

    rng = np.random.default_rng(0)
    # 200 vectors in 8 dimensions with scales 1..8 and an offset: after a ridge-free whitening their
    # mean is 0 and their covariance the identity
    x = rng.normal(size=(200, 8)) * np.arange(1, 9) + 5.0
    old = (np.zeros(8, np.float32), np.eye(8, dtype=np.float32))
    mean, proj = refit_whitening_like(x, old, eps=0.0)
    assert proj.shape == (8, 8)
    w = (x - mean) @ proj
    np.testing.assert_allclose(w.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(w.T @ w / len(x), np.eye(8), atol=1e-3)
    # three vectors span two directions once centred: two whitened columns, the other six are zero so
    # that the adaptor after it still reads 8 inputs
    mean3, proj3 = refit_whitening_like(x[:3], old, eps=0.0)
    assert proj3.shape == (8, 8)
    assert np.abs(proj3[:, :2]).sum(axis=0).min() > 0 and not proj3[:, 2:].any()
    np.testing.assert_allclose(mean3, x[:3].mean(axis=0), rtol=1e-5)


def test_adapt_to_a_new_domain_refits_the_whitening(data_split, tmp_path) -> None:
    from dataclasses import replace

    from lm_helpers import genre_dataset

    data, split = data_split
    model = make(whiten=True, epochs=3).fit(data.with_interactions(split.train))
    old_mean = model.net_.item_tower.white_mean.clone()
    genres = genre_dataset()
    genres = genres.with_interactions(
        replace(genres.interactions, scenarios=np.full(len(genres.interactions), "films", object))
    )
    kept = load_model(model.save(tmp_path / "m"))
    # adapter mode keeps the old statistics unless told otherwise; full fine-tuning re-fits them
    report = kept.adapt(genres, "films", epochs=1)
    assert report["refit_whitening"] is False
    assert torch.equal(kept.net_.item_tower.white_mean, old_mean)
    report = model.adapt(genres, "films", epochs=1, mode="full")
    assert report["refit_whitening"] is True
    tower = model.net_.item_tower
    # the re-fitted statistics are the new catalogue's: its whitened text vectors have mean 0, at the
    # width the old adaptor reads
    assert tower.white_proj.shape == kept.net_.item_tower.white_proj.shape
    np.testing.assert_allclose(tower.whiten(tower.text).mean(0).numpy(), 0.0, atol=1e-4)
    assert not torch.allclose(tower.white_mean, old_mean)
    forced = load_model(tmp_path / "m")
    assert forced.adapt(genres, "films", epochs=1, refit_whitening=True)["refit_whitening"] is True
    torch.testing.assert_close(forced.net_.item_tower.white_mean, tower.white_mean)
    again = load_model(model.save(tmp_path / "moved"))
    users = np.arange(4)
    np.testing.assert_array_equal(again.score_all(users, 2), model.score_all(users, 2))


# ---------------------------------------------------------------------- the adapter's item-ID residual
def test_id_residual_starts_as_the_identity_and_touches_only_its_rows(only_a) -> None:
    model = load_model(only_a)
    net = model.net_
    rows = np.array([13, 2, 20])
    adapter = net.scenario.add(torch.Generator().manual_seed(1), id_rows=rows, id_rank=2)
    assert adapter.id_u.shape == (3, 2) and adapter.id_v.shape == (2, 16)  # (n_id, r_id), (r_id, d)
    assert not adapter.id_u.any() and adapter.id_v.abs().sum() > 0  # U zero, V random: starts as the identity
    assert type(adapter).n_params(16, 4, id_rank=2, n_id=3) == 16 + 256 + 2 * (3 + 16)
    with torch.no_grad():
        p = net.project(net.item_tower())  # (24, 16)
        assert torch.equal(adapter.item(p), p)
        adapter.id_u.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
        moved = adapter.item(p)
        v = adapter.id_v
    torch.testing.assert_close(moved[rows], p[rows] + torch.stack([v[0], 2 * v[1], v[0] + v[1]]))
    others = np.setdiff1d(np.arange(24), rows)
    assert torch.equal(moved[others], p[others])  # items without a residual row stay exactly where they were
    with pytest.raises(ValueError, match="item-ID residual: row 20 but only 20 item vectors"):
        adapter.item(p[:20])
    for bad, match in (
        (None, "needs a non-empty 1-d integer array"),
        (np.array([1, 1]), "distinct"),
        (np.array([0.5]), "integer array"),
    ):
        with pytest.raises(ValueError, match=match):
            net.scenario.make(id_rows=bad, id_rank=1)


def test_adapt_with_id_rank(only_a, data_split, tmp_path) -> None:
    data, split = data_split
    model = load_model(only_a)
    before = {k: v.clone() for k, v in model.net_.state_dict().items()}
    report = model.adapt(data.with_interactions(split.train), "B", epochs=5, text_rank=3, text_history=True, id_rank=2)
    after = model.net_.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key  # shared weights (and A's adapter), bitwise
    b_items = np.unique(split.train.items[split.train.scenarios == "B"])
    assert len(b_items) == 2 * PER  # every item of genres 2 and 3
    adapter = model.net_.scenario.adapters[1]
    np.testing.assert_array_equal(adapter.id_rows.numpy(), b_items)
    # 416 as in test_adapt_with_text_rank, plus r_id (n_id + d) = 2 * (12 + 16) = 56
    assert report["trainable_params"] == 416 + 56 and report["id_rank"] == 2 and report["id_items"] == 12
    # full fine-tuning trains every ID row itself, so its count holds no residual: as with text rank 3
    assert report["full_finetune_params"] == 6720 - 272 + 416
    assert adapter.id_u.abs().sum() > 0  # the residual did learn
    # the residual moves B's items only (under B), on the target side and on the history side
    with_ids, learned = model.scenario_item_vectors("B"), adapter.id_u.detach().clone()
    users_with = model.user_vectors(USERS, "B")
    with torch.no_grad():
        adapter.id_u.zero_()
    model.refresh_vectors()
    without = model.scenario_item_vectors("B")
    assert np.abs(with_ids - without)[b_items].max() > 1e-3
    np.testing.assert_array_equal(with_ids[: 2 * PER], without[: 2 * PER])  # A's items: no residual row
    assert np.abs(users_with - model.user_vectors(USERS, "B")).max() > 1e-4  # histories read the residual
    with torch.no_grad():
        adapter.id_u.copy_(learned)
    model.refresh_vectors()
    # save / load rebuilds the residual's shape and rows; scores are identical
    loaded = load_model(model.save(tmp_path / "adapted"))
    assert [a.id_rank for a in loaded.net_.scenario.adapters] == [0, 2]
    np.testing.assert_array_equal(loaded.net_.scenario.adapters[1].id_rows.numpy(), b_items)
    for scenario in (None, 0, 1):
        np.testing.assert_array_equal(loaded.score_all(USERS, scenario), model.score_all(USERS, scenario))
    with pytest.raises(ValueError, match="adapt id_rank must be an integer >= 0, got -1"):
        model.adapt(data.with_interactions(split.train), "B", id_rank=-1)
    with pytest.raises(ValueError, match="id_rank is for adapter mode"):
        model.adapt(data.with_interactions(split.train), "B", id_rank=2, mode="full")


def test_domain_move_drops_id_residuals(only_a, data_split, tmp_path) -> None:
    from dataclasses import replace

    from lm_helpers import genre_dataset

    data, split = data_split
    model = load_model(only_a)
    model.adapt(data.with_interactions(split.train), "B", epochs=1, text_rank=3, id_rank=2)
    genres = genre_dataset()
    genres = genres.with_interactions(
        replace(genres.interactions, scenarios=np.full(len(genres.interactions), "films", object))
    )
    model.adapt(genres, "films", epochs=1)
    # B's residual named rows of the old catalogue; on the new one it is gone (B is scored without it)
    assert [a.id_rank for a in model.net_.scenario.adapters] == [0, 0, 0]
    assert not hasattr(model.net_.scenario.adapters[1], "id_u")
    again = load_model(model.save(tmp_path / "moved"))
    users = np.arange(4)
    np.testing.assert_array_equal(again.score_all(users, 1), model.score_all(users, 1))
