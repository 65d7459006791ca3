"""Fingerprint of lm-scenario fit + adapt on ML-100K genres (seeded); prints JSON (RESULTS.md §12)."""

import argparse
import json

import numpy as np

from lmrec.config import DataConfig, ModelConfig
from lmrec.data.splits import leave_one_out
from lmrec.pipeline import load_dataset, make_model

parser = argparse.ArgumentParser()
parser.add_argument("--cache", default=None)
args = parser.parse_args()
ds = load_dataset(DataConfig(source="ml-100k", scenario_field="genres", scenario_level=0))
split = leave_one_out(ds.interactions)
train = ds.with_interactions(split.train)
out = {}
m = make_model(
    ModelConfig("lm-scenario", {"epochs": 2, "cache_dir": args.cache, "num_threads": 1, "adapter_text_rank": 4}), 0
)
m.fit(train, valid=split)
users = np.arange(30)
out["fit_shared"] = float(np.round(m.score_all(users).sum(), 3))
out["fit_drama"] = float(np.round(m.score_all(users, scenario="Drama").sum(), 3))
r = m.adapt(train, "Drama", epochs=1, text_rank=4, id_rank=2, text_history=True)
out["adapt_params"] = r["trainable_params"]
out["adapt_drama"] = float(np.round(m.score_all(users, scenario="Drama").sum(), 3))
r = m.adapt(train, "Comedy", epochs=1, mode="full", anchor=1.0)
out["full_comedy"] = float(np.round(m.score_all(users, scenario="Comedy").sum(), 3))
out["rec_u0"] = m.recommend(np.array([0]), 10, scenario="Comedy")[0].tolist()
print(json.dumps(out))
