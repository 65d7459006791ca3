"""Test a RecBole checkpoint (the best epoch so far of a run still training, or of one stopped).

RecBole saves its best model so far to ``<out>/work/saved/<Model>-<date>.pth`` after every epoch
that improves the validation metric. This rebuilds the data and the model from the checkpoint's own
config, loads its weights and runs RecBole's evaluator on the test part, so a run that cannot finish
in the time at hand still yields the test figure of its best epoch so far.

Usage::

    benchmarks/.venv-recbole/bin/python benchmarks/recbole/eval_checkpoint.py \\
        benchmarks/out/recbole/work/saved/SASRec-Dec-01-2026_23-53-53.pth
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    import torch
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    torch.set_num_threads(args.threads)
    path = args.checkpoint.resolve()
    state = torch.load(path, map_location="cpu", weights_only=False)
    config = state["config"]
    config.compatibility_settings()  # RecBole's numpy aliases (np.float etc.), as Config() sets them
    os.chdir(path.parent.parent)  # the run's work directory, as run_recbole.py uses it
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _valid_data, test_data = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data._dataset).to("cpu")
    model.load_state_dict(state["state_dict"])
    model.load_other_parameter(state.get("other_parameter"))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    print(json.dumps({"checkpoint": str(path), "epoch": int(state["epoch"]),
                      "best_valid_score": float(state["best_valid_score"]),
                      "test": {k: float(v) for k, v in dict(result).items()}}))


if __name__ == "__main__":
    main()
