from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lmrec.serve.settings import DEFAULT_EVENT_WEIGHTS, ServeSettings


def test_defaults_and_state_dir() -> None:
    s = ServeSettings(model_dir=Path("/m"))
    assert (s.host, s.port, s.profile_store, s.index, s.sqlite_synchronous) == (
        "127.0.0.1",
        8000,
        "sqlite",
        "auto",
        "FULL",
    )
    assert s.resolved_state_dir == Path("/m/serve_state")
    assert ServeSettings(model_dir=Path("/m"), state_dir=Path("/s")).resolved_state_dir == Path("/s")
    assert s.event_weights == DEFAULT_EVENT_WEIGHTS


def test_unknown_keys_are_rejected_with_the_valid_ones() -> None:
    with pytest.raises(
        ValidationError,
        match=r"unknown serve setting\(s\) \['prot'\]; valid: \['api_keys', 'api_keys_file', 'candidate_pool'",
    ):
        ServeSettings(model_dir=Path("/m"), prot=80)


def test_bad_values_name_the_field() -> None:
    with pytest.raises(ValidationError, match="profile_store"):
        ServeSettings(model_dir=Path("/m"), profile_store="memcached")
    with pytest.raises(
        ValidationError,
        match=r"event_weights must lie in \[-10, 10\] \(negative: away from the item\); got \{'view': -11.0\}",
    ):
        ServeSettings(model_dir=Path("/m"), event_weights={"view": -11.0})
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


def test_from_env_reads_nested_feedback_settings_as_json() -> None:
    env = {"LMREC_MODEL_DIR": "/m", "LMREC_FEEDBACK": '{"reranker": "thompson", "explore_rate": 0.2}'}
    s = ServeSettings.from_env(env)
    assert (s.feedback.reranker, s.feedback.explore_rate, s.feedback.rerank_pool) == ("thompson", 0.2, 50)
    with pytest.raises(ValueError, match=r"^LMREC_FEEDBACK must be JSON, got 'thompson'"):
        ServeSettings.from_env({"LMREC_MODEL_DIR": "/m", "LMREC_FEEDBACK": "thompson"})


def test_lmrec_serve_wires_every_setting_through(tmp_path: Path, monkeypatch) -> None:
    """Options, ``--set NAME=VALUE`` and ``LMREC_<NAME>`` variables all reach the settings (options win)."""
    from typer.testing import CliRunner

    import lmrec.serve
    from lmrec.cli import app

    got: list[ServeSettings] = []
    monkeypatch.setattr(lmrec.serve, "run_server", got.append)
    keys = tmp_path / "keys.json"
    args = [
        "serve",
        "--model",
        str(tmp_path),
        "--max-k",
        "20",
        "--max-events-per-batch",
        "5",
        "--keys-file",
        str(keys),
        "--models-root",
        str(tmp_path / "models"),
        "--set",
        "candidate_pool=200",
        "--set",
        'retention_days={"view": 2}',
        "--set",
        "store_queries=raw",
        "--insecure",
    ]
    env = {"LMREC_MAX_QUERY_CHARS": "77", "LMREC_MAX_K": "99", "LMREC_HOST": "127.0.0.2"}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    (s,) = got
    assert (s.max_k, s.max_events_per_batch, s.candidate_pool, s.max_query_chars, s.host) == (
        20,
        5,
        200,
        77,
        "127.0.0.2",
    )
    assert (s.api_keys_file, s.models_root, s.insecure) == (keys, tmp_path / "models", True)
    assert (s.retention_days, s.store_queries, s.port) == ({"view": 2.0}, "raw", 8000)
    bad = CliRunner().invoke(app, ["serve", "--model", str(tmp_path), "--set", "max_kk=3"])
    assert bad.exit_code != 0 and "unknown serve setting(s) ['max_kk']" in bad.output
