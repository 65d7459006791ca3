"""The typed component configs of the ``lm`` model, `from_params` and reading old saved models."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import make_model
from lm_helpers import N_USERS

from lmrec.encoders.fake import HashingEncoder
from lmrec.models.base import Recommender
from lmrec.models.ease import EASE
from lmrec.models.lm import LMRecommender, LMScenarioRecommender
from lmrec.models.lm.config import (
    FLAT_NAMES,
    ContinualConfig,
    EncoderConfig,
    FusionConfig,
    ItemTowerConfig,
    ObjectiveConfig,
    OptimConfig,
    ScenarioConfig,
    UserTowerConfig,
)

DATA = Path(__file__).parent / "data"

#: the constructor defaults of the flat ``LMRecommender`` before the components (read off its signature)
OLD_DEFAULTS = {
    "dim": 64,
    "max_len": 50,
    "n_layers": 2,
    "n_heads": 2,
    "dropout": 0.2,
    "item_repr": "hybrid",
    "adaptor": "moe",
    "n_experts": 4,
    "adaptor_dropout": 0.1,
    "id_dropout": 0.3,
    "whiten": True,
    "whiten_eps": 0.1,
    "n_time_buckets": 20,
    "use_user_text": True,
    "user_text_kinds": None,
    "text_fields": None,
    "loss": "auto",
    "full_softmax_max_items": 50000,
    "n_negatives": 512,
    "similarity": "cosine",
    "temperature": 0.07,
    "learn_temperature": False,
    "content_weight": 0.0,
    "rating_weight": 0.0,
    "event_weight": 0.0,
    "lr": 0.001,
    "weight_decay": 0.0,
    "batch_size": 128,
    "epochs": 200,
    "patience": 10,
    "grad_clip": 5.0,
    "finetune_lm": "none",
    "lora_rank": 8,
    "lora_items_per_step": 32,
    "lora_lr": 0.0001,
    "encoder": None,
    "encoder_model": None,
    "encoder_backend": "torch",
    "cache_dir": None,
    "num_threads": None,
    "show_progress": False,
    "random_state": 0,
    "replay": "reservoir",
    "replay_size": 1000,
    "replay_half_life": None,
    "regularizer": "l2sp",
    "reg_strength": 1.0,
    "update_epochs": 5,
    "update_lr": None,
    "distill": 0.0,
    "distill_rows": "all",
    "fusion": "none",
    "fusion_categorical": None,
    "fusion_numeric": None,
    "fusion_image": False,
    "image_model": None,
    "image_encoder": None,
}
TOP_LEVEL = {"dim", "num_threads", "show_progress", "random_state"}
OBJECTS = {"encoder": "text_encoder", "image_encoder": "image_encoder"}  # objects, not saved


def _lookup(params: dict, dotted: str):
    component, field = dotted.split(".")
    return params[component][field]


# ---------------------------------------------------------------------- the mapping table
def test_every_old_name_has_a_place_and_keeps_its_default() -> None:
    assert len(OLD_DEFAULTS) == 57
    flat = set(OLD_DEFAULTS) - TOP_LEVEL - set(OBJECTS)
    assert set(FLAT_NAMES) == flat  # 51 settings moved into components, none lost, none invented
    defaults = LMRecommender().get_params()
    for name in flat:
        assert _lookup(defaults, FLAT_NAMES[name]) == OLD_DEFAULTS[name], name
    for name in TOP_LEVEL:
        assert defaults[name] == OLD_DEFAULTS[name]
    # the renamed ones
    assert {k: FLAT_NAMES[k] for k in ("item_repr", "finetune_lm", "encoder_model", "fusion", "fusion_image")} == {
        "item_repr": "item_tower.repr",
        "finetune_lm": "encoder.finetune",
        "encoder_model": "encoder.model",
        "fusion": "fusion.mode",
        "fusion_image": "fusion.image",
    }


def test_constructor_is_short() -> None:
    assert len(inspect.signature(LMRecommender).parameters) <= 15  # 13 + privacy, cold_start
    assert len(inspect.signature(LMScenarioRecommender).parameters) <= 15
    assert not hasattr(LMScenarioRecommender.__init__, "__signature__")  # no patched signature


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: ObjectiveConfig(loss="softmax"),
            "ObjectiveConfig.loss must be one of ['auto', 'full', 'sampled', 'bpr'], got 'softmax'",
        ),
        (lambda: ObjectiveConfig(temperature=-1), "ObjectiveConfig.temperature must be a number > 0, got -1"),
        (
            lambda: ItemTowerConfig(adaptor="rnn"),
            "ItemTowerConfig.adaptor must be one of ['moe', 'mlp', 'linear'], got 'rnn'",
        ),
        (lambda: ItemTowerConfig(n_experts=2.0), "ItemTowerConfig.n_experts must be an integer >= 1, got 2.0"),
        (lambda: ItemTowerConfig(whiten="yes"), "ItemTowerConfig.whiten must be True or False, got 'yes'"),
        (
            lambda: ItemTowerConfig(text_fields="title"),
            "ItemTowerConfig.text_fields must be None or a list of column names, got 'title'",
        ),
        (lambda: UserTowerConfig(dropout=1.5), "UserTowerConfig.dropout must be a number in [0, 1), got 1.5"),
        (lambda: UserTowerConfig(n_time_buckets=-1), "UserTowerConfig.n_time_buckets must be an integer >= 0, got -1"),
        (lambda: OptimConfig(batch_size=True), "OptimConfig.batch_size must be an integer >= 1, got True"),
        (lambda: OptimConfig(grad_clip=0), "OptimConfig.grad_clip must be None or a number > 0, got 0"),
        (lambda: EncoderConfig(finetune="full"), "EncoderConfig.finetune must be one of ['none', 'lora'], got 'full'"),
        (
            lambda: FusionConfig(image=True),
            "FusionConfig ['image'] need mode='concat', 'mean' or 'gated'; mode is 'none'",
        ),
        (
            lambda: ContinualConfig(replay="fifo"),
            "ContinualConfig.replay must be one of ['none', 'reservoir', 'recency'], got 'fifo'",
        ),
        (lambda: ContinualConfig(update_lr=0.0), "ContinualConfig.update_lr must be None or a number > 0, got 0.0"),
        (
            lambda: ScenarioConfig(shared_dropout=1.0),
            "ScenarioConfig.shared_dropout must be a number in [0, 1), got 1.0",
        ),
        (
            lambda: ScenarioConfig(scenario_weights={"a": -1.0}),
            "ScenarioConfig.scenario_weights must be >= 0, got {'a': -1.0}",
        ),
    ],
)
def test_a_bad_value_names_the_field_the_value_and_the_choices(make, message) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        make()


def test_from_dict_rejects_unknown_keys_naming_the_valid_ones() -> None:
    valid = ["lr", "weight_decay", "batch_size", "epochs", "patience", "grad_clip", "device", "precision"]
    with pytest.raises(
        ValueError, match="^" + re.escape(f"OptimConfig has no field 'epoch' (lm.optim.epoch); valid: {valid}") + "$"
    ):
        OptimConfig.from_dict({"epoch": 3})
    assert OptimConfig.from_dict({"epochs": 3}) == OptimConfig(epochs=3)


def test_configs_are_frozen_and_replace_validates() -> None:
    config = ObjectiveConfig()
    with pytest.raises(AttributeError):
        config.loss = "bpr"  # type: ignore[misc]
    assert config.replace(loss="bpr").loss == "bpr" and config.loss == "auto"
    with pytest.raises(ValueError, match="ObjectiveConfig.loss must be one of"):
        config.replace(loss="nope")
    assert ItemTowerConfig(text_fields=["title"]).text_fields == ("title",)  # stored immutable
    assert ItemTowerConfig(text_fields=["title"]).to_dict()["text_fields"] == ["title"]  # JSON as a list


def test_objective_resolves_auto_by_catalogue_size() -> None:
    config = ObjectiveConfig(full_softmax_max_items=10)
    assert (config.resolved_loss(10), config.resolved_loss(11)) == ("full", "sampled")
    assert ObjectiveConfig(loss="bpr").resolved_loss(5) == "bpr"


# ---------------------------------------------------------------------- constructor and from_params
def test_components_accept_dataclass_dict_or_none() -> None:
    a = LMRecommender(objective=ObjectiveConfig(loss="bpr"))
    b = LMRecommender(objective={"loss": "bpr"})
    assert a.objective == b.objective == ObjectiveConfig(loss="bpr")
    assert LMRecommender(objective=None).objective == ObjectiveConfig()
    with pytest.raises(ValueError, match="^lm objective must be a ObjectiveConfig, a dict or None, got list$"):
        LMRecommender(objective=["bpr"])


def test_old_flat_keywords_build_the_same_model_through_from_params_only() -> None:
    encoder = HashingEncoder(32)
    old = LMRecommender.from_params(
        {
            "dim": 16,
            "max_len": 8,
            "loss": "bpr",
            "item_repr": "text",
            "fusion": "mean",
            "fusion_numeric": ["price"],
            "encoder": encoder,
            "cache_dir": "/c",
            "replay": "none",
            "update_epochs": 2,
        }
    )
    new = LMRecommender(
        dim=16,
        user_tower={"max_len": 8},
        objective={"loss": "bpr"},
        item_tower={"repr": "text"},
        fusion={"mode": "mean", "numeric": ["price"]},
        text_encoder=encoder,
        encoder={"cache_dir": "/c"},
        continual={"replay": "none", "update_epochs": 2},
    )
    assert old.get_params() == new.get_params()
    assert old.text_encoder is encoder and old.encoder == EncoderConfig(cache_dir="/c")
    with pytest.raises(ValueError, match=r"^model 'lm' has no parameter 'epoch'; valid: \['cold_start', 'continual', "):
        LMRecommender.from_params({"epoch": 3})
    # the constructor takes components only: an old flat name there is a TypeError
    with pytest.raises(TypeError, match="unexpected keyword argument 'loss'"):
        LMRecommender(loss="bpr")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'adapter_rank'"):
        LMScenarioRecommender(adapter_rank=3)  # type: ignore[call-arg]


def test_from_params_dotted_nested_flat_and_shortcuts() -> None:
    model = LMRecommender.from_params(
        {
            "objective.loss": "bpr",  # dotted, as --param lm.objective.loss=bpr
            "item_tower": {"repr": "text", "n_experts": 2},  # nested, as YAML
            "epochs": 3,
            "lr": 0.01,
            "batch_size": 16,
            "max_len": 9,
            "patience": 2,
            "dim": 32,  # everyday shortcuts
            "content_weight": 0.5,
            "finetune_lm": "none",
            "fusion_categorical": ["genre"],
            "fusion": "gated",  # old flat
            "update_epochs": 7,
            "encoder_backend": "fake",
            "random_state": 3,
        }
    )
    p = model.get_params()
    assert p["objective"]["loss"] == "bpr" and p["item_tower"]["repr"] == "text" and p["item_tower"]["n_experts"] == 2
    assert (p["optim"]["epochs"], p["optim"]["lr"], p["optim"]["batch_size"], p["optim"]["patience"]) == (
        3,
        0.01,
        16,
        2,
    )
    assert p["user_tower"]["max_len"] == 9 and p["dim"] == 32 and p["random_state"] == 3
    assert p["item_tower"]["content_weight"] == 0.5 and p["fusion"] == {
        "mode": "gated",
        "categorical": ["genre"],
        "numeric": None,
        "image": False,
        "image_model": None,
        "graph": False,
        "graph_relations": None,
        "graph_hops": 1,
        "graph_hop_weight": 0.5,
        "graph_min_items": 2,
        "graph_neighbor_text": True,
    }
    assert p["continual"]["update_epochs"] == 7 and p["encoder"]["backend"] == "fake"
    # a dotted key overrides the same field of a nested dict
    assert LMRecommender.from_params({"optim": {"epochs": 4, "lr": 0.5}, "optim.epochs": 6}).optim == OptimConfig(
        epochs=6, lr=0.5
    )


@pytest.mark.parametrize("key", ["objective.los", "objectives.loss", "epoch", "loss_fn"])
def test_from_params_unknown_key_names_it_and_the_valid_keys(key) -> None:
    valid = LMRecommender.valid_keys()
    assert {"objective.loss", "optim.epochs", "epochs", "loss", "item_repr", "dim", "objective"} <= set(valid)
    with pytest.raises(ValueError, match="^" + re.escape(f"model 'lm' has no parameter {key!r}; valid: {valid}") + "$"):
        LMRecommender.from_params({key: 1})


def test_from_params_round_trips_get_params() -> None:
    model = LMRecommender(dim=32, objective={"loss": "sampled"}, fusion={"mode": "mean", "categorical": ["g"]})
    assert LMRecommender.from_params(model.get_params()).get_params() == model.get_params()
    scen = LMScenarioRecommender.from_params({"adapter_rank": 4, "scenarios.shared_dropout": 0.2, "epochs": 2})
    assert scen.scenarios == ScenarioConfig(adapter_rank=4, shared_dropout=0.2) and scen.optim.epochs == 2
    assert LMScenarioRecommender.from_params(scen.get_params()).get_params() == scen.get_params()


def test_base_from_params_names_unknown_keys() -> None:
    assert EASE.from_params({"reg_weight": 50.0}).get_params()["reg_weight"] == 50.0
    valid = sorted(p for p in inspect.signature(EASE.__init__).parameters if p != "self")
    with pytest.raises(
        ValueError, match="^" + re.escape(f"model 'ease' has no parameter 'lambda'; valid: {valid}") + "$"
    ):
        EASE.from_params({"lambda": 1.0})


# ---------------------------------------------------------------------- saved models of before
def test_real_format_1_config_maps_every_value_to_its_place() -> None:
    """config.json of a model saved by the flat code (ML-100K, 1 epoch, seed 2020, `lmrec train`)."""
    config = json.loads((DATA / "before_v1_config.json").read_text())
    assert "format_version" not in config
    params = LMRecommender.params_from_saved(config)
    for name, value in config["params"].items():
        assert (params[name] if name in TOP_LEVEL else _lookup(params, FLAT_NAMES[name])) == value, name
    assert params["optim"]["epochs"] == 1 and params["random_state"] == 2020
    assert params["encoder"]["cache_dir"] == "/tmp/ref/cache"


def _flatten(params: dict) -> dict:
    """The format-1 layout of nested params (the inverse of `FLAT_NAMES`)."""
    back = {v: k for k, v in FLAT_NAMES.items()}
    flat = {k: v for k, v in params.items() if k in TOP_LEVEL}
    for component, fields in params.items():
        if isinstance(fields, dict):
            # fields added after format 1 (optim.device, optim.precision) have no flat name
            flat.update({back[f"{component}.{f}"]: v for f, v in fields.items() if f"{component}.{f}" in back})
    return flat


def test_a_directory_saved_in_format_1_loads_with_the_same_scores(fitted, tmp_path) -> None:
    path = fitted.save(tmp_path / "v1")
    config = json.loads((path / "config.json").read_text())
    assert config["format_version"] == 2
    del config["format_version"]
    config["params"] = _flatten(config["params"])
    assert len(config["params"]) == 55 and "item_repr" in config["params"]  # 57 minus the two objects
    (path / "config.json").write_text(json.dumps(config))
    loaded = Recommender.load(path)
    assert loaded.get_params() == fitted.get_params()
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(loaded.score_all(users), fitted.score_all(users))


def test_an_unknown_format_version_is_named(fitted, tmp_path) -> None:
    path = fitted.save(tmp_path / "v3")
    config = json.loads((path / "config.json").read_text())
    config["format_version"] = 3
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError,
        match=r"^LMRecommender cannot read a model saved with format_version 3; "
        r"this lmrec reads format_version 1 and 2$",
    ):
        Recommender.load(path)
    del config["format_version"]  # format 1: flat names, one of them unknown
    config["params"] = {**_flatten(config["params"]), "item_rep": "text"}
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError,
        match=r"^model saved with format_version 1 \(flat parameters\) does not load: "
        r"model 'lm' has no parameter 'item_rep'; valid: ",
    ):
        Recommender.load(path)


def test_saved_params_rebuild_the_same_training(genre_split) -> None:
    """``from_params(get_params())`` trains exactly the same network (same seed, same settings)."""
    data, split = genre_split
    train = data.with_interactions(split.train)
    flat = make_model(epochs=2).fit(train)
    nested = LMRecommender.from_params({**flat.get_params(), "text_encoder": HashingEncoder(32)}).fit(train)
    np.testing.assert_array_equal(flat.item_vectors(), nested.item_vectors())


def test_the_scenario_model_composes_an_lm_model() -> None:
    model = LMScenarioRecommender(
        dim=32, scenarios={"adapter_rank": 3}, optim={"epochs": 4}, text_encoder=HashingEncoder(16)
    )
    assert not isinstance(model, LMRecommender) and isinstance(model.backbone, LMRecommender)
    # the backbone owns the settings; the scenario model reads and writes them through
    assert model.backbone.optim.epochs == 4 and model.optim is model.backbone.optim and model.dim == 32
    assert model.text_encoder is model.backbone.text_encoder
    model.random_state = 9
    assert model.backbone.random_state == 9
    assert model.scenarios == ScenarioConfig(adapter_rank=3) and not hasattr(model.backbone, "scenarios")
    params = model.get_params()
    assert params["scenarios"]["adapter_rank"] == 3 and params["optim"]["epochs"] == 4 and params["random_state"] == 9
    with pytest.raises(
        ValueError, match=r"^model 'lm-scenario' has no parameter 'adapter_rnk'; valid: .*'adapter_rank'"
    ):
        LMScenarioRecommender.from_params({"adapter_rnk": 3})
