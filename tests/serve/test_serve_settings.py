from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lmrec.serve.settings import DEFAULT_EVENT_WEIGHTS, ServeSettings


def test_defaults_and_state_dir() -> None:
    s = ServeSettings(model_dir=Path("/m"))
    assert (s.host, s.port, s.profile_store, s.index, s.sqlite_synchronous) == ("127.0.0.1", 8000, "sqlite", "auto", "FULL")
    assert s.resolved_state_dir == Path("/m/serve_state")
    assert ServeSettings(model_dir=Path("/m"), state_dir=Path("/s")).resolved_state_dir == Path("/s")
    assert s.event_weights == DEFAULT_EVENT_WEIGHTS


def test_unknown_keys_are_rejected_with_the_valid_ones() -> None:
    with pytest.raises(ValidationError, match=r"unknown serve setting\(s\) \['prot'\]; valid: \['candidate_pool'"):
        ServeSettings(model_dir=Path("/m"), prot=80)


def test_bad_values_name_the_field() -> None:
    with pytest.raises(ValidationError, match="profile_store"):
        ServeSettings(model_dir=Path("/m"), profile_store="memcached")
    with pytest.raises(ValidationError, match=r"event_weights must lie in \[0, 10\]; got \{'view': -1.0\}"):
        ServeSettings(model_dir=Path("/m"), event_weights={"view": -1.0})
    with pytest.raises(ValidationError, match="rules must be 'package.module:function'"):
        ServeSettings(model_dir=Path("/m"), rules=("mymodule.rule",))
    with pytest.raises(ValidationError, match="query_weight"):
        ServeSettings(model_dir=Path("/m"), query_weight=1.5)


def test_settings_are_frozen() -> None:
    s = ServeSettings(model_dir=Path("/m"))
    with pytest.raises(ValidationError, match="frozen"):
        s.port = 1  # type: ignore[misc]


def test_from_env_reads_only_known_lmrec_variables_and_overrides_win() -> None:
    env = {
        "LMREC_PORT": "9001",
        "LMREC_PROFILE_STORE": "redis",
        "LMREC_EVENT_WEIGHTS": '{"view": 0.1, "buy": 1.0}',
        "LMREC_RULES": '["shop.rules:boost"]',
        "LMREC_CACHE_DIR": "/elsewhere",  # another part of lmrec's variable: ignored here
        "PORT": "1",
    }
    s = ServeSettings.from_env(env, model_dir="/m", port=9002)
    assert (s.port, s.profile_store, s.rules) == (9002, "redis", ("shop.rules:boost",))
    assert s.event_weights == {"view": 0.1, "buy": 1.0}
    assert ServeSettings.from_env({"LMREC_MODEL_DIR": "/x"}).model_dir == Path("/x")
