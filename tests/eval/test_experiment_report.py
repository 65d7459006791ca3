"""run_experiment's protocol (train-only fit, valid early-stop hook, observe for sequential models) and reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_helpers import RecordingModel, random_split, tiny_split

from lmrec.eval import ExperimentResult, evaluate, markdown_table, run_experiment, write_report
from lmrec.models import Popularity


def test_run_experiment_protocol() -> None:
    dataset, split = tiny_split()
    pop, rec = Popularity(), RecordingModel()
    exp = run_experiment({"pop": pop, "rec": rec}, dataset, split, ks=(3,), user_groups=(1,))
    assert isinstance(exp, ExperimentResult) and list(exp.runs) == ["pop", "rec"]
    # fitted on train only: counts are train counts (item 4 once in train, not 2 with the test repeat)
    np.testing.assert_array_equal(pop.counts_, split.train.item_counts())
    assert pop.counts_[4] == 1 and rec.n_train_ == len(split.train) == 6  # 6 train rows in ROWS
    # fit(valid=...) is used when the signature has it
    assert rec.valid_seen_ is split
    # the sequential model observed valid after the valid evaluation: u0's valid item 1 is now seen
    assert rec.seen_[0, 1] == 1 and rec.seen_[1, 3] == 1
    # the evaluator masks by the split, so the test figures equal a direct evaluate on the final model
    direct = evaluate(rec, split, ks=(3,), user_groups=(1,))
    assert exp.runs["rec"].test.metrics == direct.metrics
    # the result is the report dict itself; to_json_dict is a plain deep copy
    assert isinstance(exp, dict) and exp["results"]["pop"] == exp.results["pop"]
    out = exp.to_json_dict()
    assert type(out) is dict and out == dict(exp)
    assert out["split"] == "hand" and out["n_users"] == 4 and out["n_items"] == 6 and out["n_interactions"] == 12
    row = out["results"]["pop"]
    assert set(row) >= {"ndcg@3", "recall@3", "coverage@3", "valid", "fit_s", "by_scenario", "by_user_group"}
    assert row["valid"]["ndcg@3"] == exp.runs["pop"].valid.metrics["ndcg@3"]
    assert row["fit_s"] >= 0.0 and set(row["by_scenario"]) == {"home", "search"}
    assert out["settings"]["primary"] == "ndcg@3" and out["settings"]["ks"] == [3]
    json.dumps(exp)  # JSON-able as is


def test_run_experiment_compare_and_item_map_check() -> None:
    dataset, split = random_split(n_users=30, n_items=60)
    exp = run_experiment({"pop": Popularity(), "rec": RecordingModel()}, dataset, split, ks=(5, 10))
    cmp = exp.compare("pop", "rec")
    assert cmp["metric"] == "ndcg@10" and cmp["n_users"] == exp.runs["pop"].test.n_users
    assert cmp["mean_diff"] == pytest.approx(cmp["mean_a"] - cmp["mean_b"])
    with pytest.raises(KeyError, match="no model 'bpr'"):
        exp.compare("pop", "bpr")
    other, _ = tiny_split()
    with pytest.raises(ValueError, match="different item map"):
        run_experiment({"pop": Popularity()}, other, split)


def test_markdown_table_formats_and_bolds_best() -> None:
    results = {"a": {"ndcg@10": 0.1234567, "recall@10": 0.5}, "b": {"ndcg@10": 0.2, "recall@10": 0.25}}
    text = markdown_table(results, metrics=("ndcg@10", "recall@10", "mrr@10"))
    lines = text.strip().split("\n")
    assert lines[0] == "| model | ndcg@10 | recall@10 | mrr@10 |"
    assert lines[1] == "|---|---:|---:|---:|"
    assert lines[2] == "| a | 0.1235 | **0.5000** | – |"
    assert lines[3] == "| b | **0.2000** | 0.2500 | – |"


def test_write_report_files(tmp_path) -> None:
    dataset, split = tiny_split()
    exp = run_experiment({"pop": Popularity(), "rec": RecordingModel()}, dataset, split, ks=(3, 10))
    paths = write_report(exp, tmp_path / "reports" / "tiny")
    assert [p.name for p in paths] == ["tiny.json", "tiny.md", "tiny.png"]
    data = json.loads(paths.json.read_text())
    assert data == json.loads(json.dumps(exp.to_json_dict()))
    md = paths.md.read_text()
    assert "| model | ndcg@10 | recall@10 | mrr@10 | hit@10 |" in md and "| pop |" in md
    assert "By scenario" in md and "home (n=2)" in md
    png = paths.png.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    # a directory gives report.* inside it; the plain dict form works too
    paths2 = write_report(exp.to_json_dict(), tmp_path)
    assert paths2.md == tmp_path / "report.md" and paths2.png.exists()
