"""What RecBole 1.2.1's Pop actually counts, and what true popularity scores on the same split.

Runs in the RecBole venv. On RecBole's own RO 8:1:1 split of ml-100k (seed 2020) it evaluates,
with RecBole's own evaluator:

1. Pop as RecBole trains it: ``item_cnt[item] = item_cnt[item] + 1`` over each training batch.
   Fancy-index assignment adds 1 per *batch* however often an item occurs in it, and the pointwise
   training loader also carries one uniformly sampled negative per positive (label 0), which Pop
   counts too. The score is thus "number of training batches that contain the item as a positive
   or a sampled negative", which saturates at the number of batches.
2. True popularity: the number of training interactions of each item.

    benchmarks/.venv-recbole/bin/python benchmarks/recbole/check_pop_counts.py
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

LOG = logging.getLogger("check_pop_counts")
OUT = Path(__file__).resolve().parent.parent / "out" / "recbole"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    del sys.argv[1:]  # RecBole's Config parses sys.argv too
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    (OUT / "work").mkdir(parents=True, exist_ok=True)
    cfg = {
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
        "use_gpu": False, "gpu_id": "", "worker": 0, "seed": 2020, "reproducibility": True, "state": "WARNING",
        "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"], "topk": [10], "valid_metric": "NDCG@10",
        "checkpoint_dir": str(OUT / "work" / "saved"), "metric_decimal_place": 6,
    }
    config = Config(model="Pop", dataset="ml-100k", config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _valid_data, test_data = data_preparation(config, dataset)
    positives = train_data._dataset.inter_feat[dataset.iid_field]

    init_seed(config["seed"], config["reproducibility"])
    as_recbole = get_model("Pop")(config, train_data._dataset)
    rows = batches = 0
    for batch in train_data:  # one epoch, as TraditionalTrainer runs it
        as_recbole.calculate_loss(batch)
        rows += len(batch)
        batches += 1
    true_pop = get_model("Pop")(config, train_data._dataset)
    true_pop.item_cnt = torch.bincount(positives, minlength=dataset.item_num).view(-1, 1)
    true_pop.max_cnt = true_pop.item_cnt.max(dim=0)[0]

    report = {
        "train_positives": len(positives),
        "train_loader_rows": rows,
        "train_batches": batches,
        "recbole_pop_max_count": int(as_recbole.max_cnt),
        "items_at_max_count": int((as_recbole.item_cnt == as_recbole.max_cnt).sum()),
        "true_pop_max_count": int(true_pop.max_cnt),
    }
    for label, model in (("recbole_pop", as_recbole), ("true_popularity", true_pop)):
        trainer = get_trainer(config["MODEL_TYPE"], "Pop")(config, model)
        result = trainer.evaluate(test_data, load_best_model=False)
        report[label] = {k: float(v) for k, v in result.items()}
        LOG.info("%s on RecBole's RO split: %s", label, report[label])
    (OUT / "check_pop_counts.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
