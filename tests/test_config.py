from __future__ import annotations

import pytest

from lmrec.config import ConfigError, DataConfig, ExperimentConfig, ModelConfig, SplitConfig, from_dict, load_config


def test_defaults_build_without_a_file():
    cfg = load_config(None)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.split == SplitConfig()
    assert cfg.data.source == "ml-100k"


def test_yaml_file_and_dotted_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        "data:\n  source: /data/office\n  text_fields: [title, brand]\n"
        "split:\n  kind: ratio\n  seed: 7\n"
        "models:\n  - pop\n  - name: ease\n    params: {reg_weight: 100.0}\n"
    )
    cfg = load_config(path, ["split.seed=11", "eval.ks=5,10"])
    assert cfg.data == DataConfig(source="/data/office", text_fields=("title", "brand"))
    assert cfg.split.kind == "ratio" and cfg.split.seed == 11
    assert cfg.eval.ks == (5, 10)
    assert cfg.models == (ModelConfig("pop"), ModelConfig("ease", {"reg_weight": 100.0}))


def test_misspelled_key_names_the_key_and_the_valid_ones():
    with pytest.raises(
        ConfigError, match=r"unknown config key 'split\.sede'; valid keys under split: \['cold_test_frac'"
    ):
        load_config(None, ["split.sede=1"])


def test_top_level_typo_is_rejected(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("modles: [pop]\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'modles'"):
        load_config(path)


def test_literal_and_type_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"split\.kind: 'random' is not one of"):
        load_config(None, ["split.kind=random"])
    with pytest.raises(ConfigError, match=r"split\.seed: expected an integer"):
        from_dict(ExperimentConfig, {"split": {"seed": "abc"}})
    with pytest.raises(ConfigError, match=r"split\.ratios: expected 3 values, got 2"):
        from_dict(ExperimentConfig, {"split": {"ratios": [0.9, 0.1]}})


def test_configs_are_frozen():
    cfg = load_config(None)
    with pytest.raises(AttributeError):
        cfg.split.seed = 3  # type: ignore[misc]


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="must look like key.sub=value"):
        load_config(None, ["split.seed"])
