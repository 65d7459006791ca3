"""`lmrec.pipeline` on a six-user data set whose answers are worked out by hand below.

Rows (user: first item at t=1, second at t=2): u1 A,B  u2 A,C  u3 A,B  u4 B,A  u5 C,A  u6 B,D.
Leave-one-out keeps each user's first row for training and tests the second (two rows per user:
no validation row). Training counts: A=3 (u1,u2,u3), B=2 (u4,u6), C=1 (u5), D=0.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from lmrec.config import DataConfig, ExperimentConfig, ModelConfig, SplitConfig
from lmrec.data import Dataset
from lmrec.models.base import MODEL_REGISTRY
from lmrec.pipeline import (
    load_dataset,
    load_dataset_and_split,
    make_model,
    make_split,
    recommend_for,
    run_config,
    run_stream_config,
    train_bundle,
)

ROWS = [
    ("u1", "A"),
    ("u1", "B"),
    ("u2", "A"),
    ("u2", "C"),
    ("u3", "A"),
    ("u3", "B"),
    ("u4", "B"),
    ("u4", "A"),
    ("u5", "C"),
    ("u5", "A"),
    ("u6", "B"),
    ("u6", "D"),
]


@pytest.fixture
def files(tmp_path):
    inter = tmp_path / "tiny.csv"
    inter.write_text("user_id,item_id,timestamp\n" + "".join(f"{u},{i},{1 + n % 2}\n" for n, (u, i) in enumerate(ROWS)))
    items = tmp_path / "items.csv"
    items.write_text(
        'item_id,title,genres\nA,Alpha film,"Drama, War"\nB,Beta film,Comedy\n'
        'C,Gamma film,"Horror, Thriller"\nD,Delta film,\n'
    )
    return inter, items


def _tiny(files, **kw) -> Dataset:
    inter, items = files
    return load_dataset(DataConfig(source=str(inter), items_path=str(items), **kw))


def test_load_dataset_reads_the_table_and_its_item_file(files):
    ds = _tiny(files, text_fields=("title",))
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (12, 6, 4)
    assert ds.name == "tiny"
    assert ds.items.text_fields == ["title"]
    assert ds.items.texts(ds.interactions.item_map) == ["Alpha film", "Beta film", "Gamma film", "Delta film"]


def test_load_dataset_scenarios_from_an_item_column_level_1(files):
    ds = _tiny(files, scenario_field="genres", scenario_level=1)
    inter = ds.interactions
    items = inter.item_map.to_ids(inter.items)
    # level 1 = the second comma-separated value: A "Drama, War" -> War, C "Horror, Thriller" -> Thriller,
    # B has one value and D none -> "unknown"
    expected = {"A": "War", "B": "unknown", "C": "Thriller", "D": "unknown"}
    assert list(inter.scenarios) == [expected[i] for i in items]


def test_load_dataset_kcore(files):
    # kcore=2: D has one row -> dropped; then u6 has one row (B) -> dropped; A=5, B=3, C=2 rows remain
    ds = _tiny(files, kcore=2)
    inter = ds.interactions
    assert (len(inter), inter.n_users, inter.n_items) == (10, 5, 3)
    assert sorted(inter.item_map.ids) == ["A", "B", "C"] and "u6" not in inter.user_map.ids


def test_load_dataset_errors_name_the_problem(files, tmp_path):
    with pytest.raises(
        ValueError, match=r"^text_fields \['nope'\] are not item columns; item columns: \['title', 'genres'\]$"
    ):
        _tiny(files, text_fields=("title", "nope"))
    with pytest.raises(ValueError, match=r"^text_fields \['title'\] given but data set 'tiny' has no item catalogue$"):
        load_dataset(DataConfig(source=str(files[0]), text_fields=("title",)))
    with pytest.raises(
        ValueError,
        match=r"^scenario field 'nope' is neither an interaction column \[\] nor an item "
        r"column \['title', 'genres'\]$",
    ):
        _tiny(files, scenario_field="nope")
    missing = str(tmp_path / "absent")
    with pytest.raises(
        ValueError,
        match=rf"^'{missing}' is neither a known data set \(\['clothing-reviews', 'ml-100k', "
        r"'ml-1m'\]\) nor an existing path$",
    ):
        load_dataset(DataConfig(source=missing))


def test_make_split_kinds(files):
    ds = _tiny(files)
    loo = make_split(ds, SplitConfig(kind="loo"))
    assert loo.sizes() == {"train": 6, "valid": 0, "test": 6}
    # every test row is its user's t=2 row
    assert set(loo.test.item_map.to_ids(loo.test.items)) == {"B", "C", "A", "D"} and (loo.test.timestamps == 2).all()
    for kind in ("ratio", "temporal", "cold-items"):
        split = make_split(ds, SplitConfig(kind=kind))  # type: ignore[arg-type]
        assert sum(split.sizes().values()) == 12, kind
    temporal = make_split(ds, SplitConfig(kind="temporal", ratios=(0.5, 0.0, 0.5)))
    assert (temporal.train.timestamps == 1).all() and (temporal.test.timestamps == 2).all()  # 6 rows each side
    with pytest.raises(
        ValueError,
        match=r"^split kind 'predefined' cannot be made from loaded interactions; "
        r"use load_dataset_and_split$",
    ):
        make_split(ds, SplitConfig(kind="predefined"))
    with pytest.raises(
        ValueError,
        match=r"^split 'predefined' needs RecBole benchmark files "
        r"<name>.train.inter/.valid.inter/.test.inter in ",
    ):
        load_dataset_and_split(DataConfig(source=str(files[0])), SplitConfig(kind="predefined"))


def test_make_model_unknown_name_lists_the_registry():
    with pytest.raises(ValueError, match=r"^unknown model 'nope'; available: \['ease', 'itemknn', 'lm', "):
        make_model(ModelConfig("nope"))


class _Plain:
    """A registered class without ``from_params``: built from keyword arguments."""

    def __init__(self, alpha: float = 1.0, random_state: int | None = None) -> None:
        self.alpha, self.random_state = alpha, random_state


class _WithFromParams:
    """A registered class with ``from_params``: gets the parameter dict (dotted keys included)."""

    def __init__(self, random_state: int | None = None, **components: object) -> None:
        self.random_state, self.components = random_state, components

    @classmethod
    def from_params(cls, params: dict[str, object]) -> _WithFromParams:
        obj = cls(random_state=params.get("random_state"))  # type: ignore[arg-type]
        obj.received = dict(params)
        return obj


def test_make_model_keyword_path_adds_random_state_and_rejects_unknown(monkeypatch):
    monkeypatch.setitem(MODEL_REGISTRY, "plain", _Plain)
    model = make_model(ModelConfig("plain", {"alpha": 2.5}), random_state=7)
    assert (model.alpha, model.random_state) == (2.5, 7)
    assert make_model(ModelConfig("plain", {"random_state": 3}), random_state=7).random_state == 3  # explicit wins
    assert make_model(ModelConfig("plain")).random_state is None
    with pytest.raises(
        ValueError, match=r"^model 'plain' has no parameter 'beta'; valid: \['alpha', 'random_state'\]$"
    ):
        make_model(ModelConfig("plain", {"beta": 1}))


def test_make_model_uses_from_params_with_dotted_keys(monkeypatch):
    monkeypatch.setitem(MODEL_REGISTRY, "fp", _WithFromParams)
    model = make_model(ModelConfig("fp", {"objective.loss": "bpr", "epochs": 3}), random_state=11)
    assert model.received == {"objective.loss": "bpr", "epochs": 3, "random_state": 11}


def test_make_model_builds_registered_models_with_their_parameters():
    ease = make_model(ModelConfig("ease", {"reg_weight": 10.0}), random_state=5)
    assert type(ease).__name__ == "EASE" and ease.reg_weight == 10.0
    sasrec = make_model(ModelConfig("sasrec", {"epochs": 1}), random_state=5)
    assert (sasrec.epochs, sasrec.random_state) == (1, 5)
    if "random_state" in inspect.signature(type(ease).__init__).parameters:
        assert ease.random_state == 5
    with pytest.raises(
        ValueError,
        match=r"^model 'ease' has no parameter 'nope'; valid: \['max_items', 'random_state', "
        r"'reg_weight'\]$",
    ):
        make_model(ModelConfig("ease", {"nope": 1}))


def test_run_config_pop_known_answer(files):
    cfg = ExperimentConfig(
        data=DataConfig(source=str(files[0])), split=SplitConfig(kind="loo"), models=(ModelConfig("pop"),)
    )
    result = run_config(cfg, show_progress=False)
    assert result["sizes"] == {"train": 6, "valid": 0, "test": 6}
    pop = result["results"]["pop"]
    # Each user's training item is masked; the rest ranked A(3) > B(2) > C(1) > D(0):
    #   u1 test B: B,C,D -> rank 1   u2 test C: B,C,D -> rank 2   u3 test B -> rank 1
    #   u4 test A: A,C,D -> rank 1   u5 test A: A,B,D -> rank 1   u6 test D: A,C,D -> rank 3
    # NDCG@10 = (4 * 1 + 1/log2(3) + 1/log2(4)) / 6 = (4 + 0.630930 + 0.5) / 6 = 0.855155
    # MRR@10 = (4 + 1/2 + 1/3) / 6 = 0.805556
    assert pop["ndcg@10"] == pytest.approx((4 + 1 / np.log2(3) + 0.5) / 6, abs=1e-9)
    assert pop["mrr@10"] == pytest.approx((4 + 1 / 2 + 1 / 3) / 6, abs=1e-9)
    assert pop["recall@10"] == 1.0 and pop["n_eval_users"] == 6


def test_train_bundle_and_recommend_for(files):
    ds = load_dataset(DataConfig(source=str(files[0])))
    bundle = train_bundle(make_model(ModelConfig("pop")), ds)
    # pop fits on every row: A=5, B=4, C=2, D=1; u2 has A and C
    assert [r["item_id"] for r in recommend_for(bundle, user_id="u2", k=3)] == ["B", "D"]  # only two unseen
    rows = recommend_for(bundle, user_id="stranger", k=3)
    assert [(r["item_id"], r["score"], r["title"]) for r in rows] == [("A", 5.0, ""), ("B", 4.0, ""), ("C", 2.0, "")]
    with pytest.raises(ValueError, match=r"^k must be positive, got 0$"):
        recommend_for(bundle, user_id="u2", k=0)
    with pytest.raises(ValueError, match=r"^model 'pop' has no text space for queries; train the 'lm' model$"):
        recommend_for(bundle, query="a war film")


def test_run_stream_config_reports_every_window(files):
    cfg = ExperimentConfig(data=DataConfig(source=str(files[0])), models=(ModelConfig("pop"),))
    result = run_stream_config(cfg, windows=2, train_frac=0.5)
    assert result["protocol"] == "stream" and result["n_interactions"] == 12
    windows = result["results"]["pop"]["stream"]
    # rows by time: the six t=1 rows form the initial half; the t=2 rows are cut into 3 + 3
    assert [w["n_rows"] for w in windows] == [3, 3] and result["results"]["pop"]["initial"]["n_rows"] == 6


def test_experiment_yaml_data_block_takes_every_data_config_key(tmp_path):
    from lmrec.config import ConfigError, load_config

    (tmp_path / "clicks.tsv").write_text("uid\tpid\twhen\n1\tp1\t2020-01-01\n2\tp2\t2020-01-02\n")
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"data:\n  source: {tmp_path / 'clicks.tsv'}\n  format: tsv\n  name: clicks\n"
        "  columns: {user: uid, item: pid, timestamp: when}\nmodels: [pop]\n"
    )
    cfg = load_config(exp)
    assert cfg.data.format == "tsv" and cfg.models == (ModelConfig("pop"),)
    ds = load_dataset(cfg.data)
    assert ds.name == "clicks" and ds.interactions.user_map.ids == ["1", "2"]
    np.testing.assert_array_equal(ds.interactions.timestamps, [1577836800, 1577923200])  # 2020-01-01/02 UTC
    exp.write_text("data:\n  source: x.tsv\n  colums: {user: uid}\n")
    with pytest.raises(ConfigError, match=r"^unknown config key 'data.colums'; valid keys under data: \['columns', "):
        load_config(exp)
