"""Produced RESULTS.md §6 (lm): "Wall time of one lm fit", "The content channel" and "Learned attribute embeddings on top".

One lm fit with parameter overrides, on the cold-item or leave-one-out split, seed given.

For quick comparisons of lm settings (for example ``content_weight``) before a full
``lm_bench.py`` run: prints one JSON line with the fit time, epochs, the validation figures and the
test Recall@10 / NDCG@10 over all items (and over the new-items pool on the cold split).

Usage::

    PYTHONPATH=benchmarks python experiments/lm_probe.py '{"content_weight": 3.0}' --split cold --data office --seed 0
    PYTHONPATH=benchmarks python experiments/lm_probe.py '{"_model": "lm-text", "whiten_eps": 10.0}' --split cold
    PYTHONPATH=benchmarks python experiments/lm_probe.py '{"_model": "tfidf"}' --split cold

``_model`` picks the model (``lm`` default; ``lm-text``, ``tfidf``); every other key is an lm
parameter on top of ``lm_bench.LM_PARAMS[data]``.
"""

from __future__ import annotations

import argparse
import json

import common
import lm_bench
import numpy as np

from lmrec.eval import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", help="JSON object of lm parameters (and _model)")
    parser.add_argument("--split", choices=["cold", "loo"], default="cold")
    parser.add_argument("--data", choices=["ml-100k", "office"], default="office")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    common.add_office_arg(parser)
    args = parser.parse_args()
    over = json.loads(args.overrides)
    model_name = over.pop("_model", "lm")
    data = common.load_data(args.data, args.office)
    split = lm_bench.make_split(data, args.split, args.seed)
    rec, _ = lm_bench.build_model(model_name, args.data, args.seed, args.threads, over)
    train = data.with_interactions(split.train)
    with common.Timer() as timer:
        rec.fit(train, valid=split) if model_name.startswith("lm") else rec.fit(train)
    fit_s = timer.seconds
    valid = evaluate(rec, split, phase="valid", ks=(10,), metrics=("recall", "ndcg")).metrics
    rec.observe(split.valid)
    test = evaluate(rec, split, phase="test", ks=(10,), metrics=("recall", "ndcg")).metrics
    pool = np.flatnonzero(np.bincount(split.train.items, minlength=split.train.n_items) == 0)
    new = (
        evaluate(rec, split, phase="test", ks=(10,), metrics=("recall", "ndcg"), item_pool=pool).metrics
        if len(pool)
        else {}
    )
    history = getattr(rec, "train_history_", None) or []
    print(
        json.dumps(
            {
                "model": model_name,
                "overrides": over,
                "split": args.split,
                "data": args.data,
                "seed": args.seed,
                "fit_s": round(fit_s, 1),
                "epochs": len(history),
                "best_epoch": max(history, key=lambda h: h.get("ndcg@10", -1.0))["epoch"] if history else None,
                "valid_recall@10": round(valid["recall@10"], 4),
                "valid_ndcg@10": round(valid["ndcg@10"], 4),
                "test_recall@10": round(test["recall@10"], 4),
                "test_ndcg@10": round(test["ndcg@10"], 4),
                "new_items_recall@10": round(new["recall@10"], 4) if new else None,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
