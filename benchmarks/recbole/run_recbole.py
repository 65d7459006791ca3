"""Run RecBole 1.2.1 models on a fixed protocol and write one JSON of results per run.

Runs in the separate RecBole venv (benchmarks/.venv-recbole, made by setup_recbole_env.sh), never
in lmrec's own venv.

Protocols (``--protocol``):
    ro    RecBole's own ml-100k (the atomic files its wheel ships), all 100,000 ratings as implicit
          feedback (RecBole's ml-100k.yaml loads user_id, item_id, rating, timestamp with no
          val_interval / threshold / k-core, so nothing is dropped), eval_args split RS [0.8, 0.1, 0.1],
          order RO, group_by user, mode full.
    loo   the same data, eval_args split LS valid_and_test, order TO, group_by user, mode full
          (RecBole's default for sequential models).
    bench a predefined split read from ``<name>.train.inter``, ``<name>.valid.inter`` and
          ``<name>.test.inter`` in ``--data-dir`` (RecBole's ``benchmark_filename``), as written by
          export_split.py from an lmrec Split; ``<name>.yaml`` beside them is loaded as a config file.

Every run: metrics Recall, MRR, NDCG, Hit, Precision @10; seed 2020; reproducibility True;
valid_metric NDCG@10 (``--valid-metric``); CPU only; worker 0; epochs / stopping_step from RecBole's
defaults (300 / 10) unless overridden with ``--set``. RecBole writes its own log, tensorboard events and
checkpoints under ``<out>/work/`` (the process changes into that directory).

Per-epoch progress (train seconds, valid seconds, valid metrics) is appended to
``<out>/<stem>.curve.jsonl`` as it happens, so a run that is stopped early still leaves a curve.
``--max-train-seconds`` stops training before an epoch that would overrun the budget (estimated from
the slowest epoch so far); the best checkpoint so far is then tested as usual.

Example:
    benchmarks/.venv-recbole/bin/python benchmarks/recbole/run_recbole.py \\
        --protocol ro --models Pop ItemKNN BPR EASE
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import yaml

LOG = logging.getLogger("run_recbole")
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "out" / "recbole"

METRICS = ["Recall", "MRR", "NDCG", "Hit", "Precision"]
EVAL_ARGS = {
    "ro": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
    "loo": {"split": {"LS": "valid_and_test"}, "group_by": "user", "order": "TO", "mode": "full"},
}


class BudgetExhausted(RuntimeError):
    """Raised from inside Trainer.fit when the next epoch would overrun the wall-clock budget."""


def build_config_dict(args: argparse.Namespace, model: str) -> dict[str, Any]:
    """RecBole config for one model; later keys win over RecBole's yaml defaults."""
    cfg: dict[str, Any] = {
        "seed": 2020,
        "reproducibility": True,
        "use_gpu": False,
        "gpu_id": "",
        "worker": 0,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        "checkpoint_dir": str(args.out / "work" / "saved"),
        "metrics": METRICS,
        "topk": [10],
        "valid_metric": args.valid_metric,
        "metric_decimal_place": 6,
    }
    if args.protocol in EVAL_ARGS:
        cfg["eval_args"] = dict(EVAL_ARGS[args.protocol])
    else:
        cfg["benchmark_filename"] = ["train", "valid", "test"]
        # RecBole ignores order/split with benchmark files, but SequentialDataset insists on TO.
        cfg["eval_args"] = {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "TO", "mode": "full"}
        cfg["data_path"] = str(args.data_dir.resolve().parent)
    if model in SEQUENTIAL_CE:
        # RecBole refuses negative sampling together with loss_type CE (its SASRec default).
        cfg["train_neg_sample_args"] = None
    for item in args.set:
        key, _, raw = item.partition("=")
        if not _:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        cfg[key] = yaml.safe_load(raw)
    return cfg


SEQUENTIAL_CE = {"SASRec", "GRU4Rec", "BERT4Rec", "NARM", "STAMP", "Caser", "NextItNet"}


def prepare(config: Any) -> tuple[Any, Any, Any, Any, Any, Any, float]:
    """RecBole's data, model and trainer for ``config``, in the order of calls of
    ``recbole.quick_start.run_recbole`` (so seeds line up with a plain RecBole run).

    Returns:
        ``(dataset, train_data, valid_data, test_data, model, trainer, prep_s)``: ``prep_s`` the seconds the
        data set and its loaders took.
    """
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    t0 = time.perf_counter()
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    prep_s = time.perf_counter() - t0
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    return dataset, train_data, valid_data, test_data, model, trainer, prep_s


def run_one(args: argparse.Namespace, model_name: str) -> dict[str, Any]:
    import numpy as np
    import recbole
    import torch
    from recbole.config import Config

    if args.threads:
        torch.set_num_threads(args.threads)
    dataset_name = "ml-100k" if args.protocol in EVAL_ARGS else args.data_dir.name
    stem = f"{args.tag}_{dataset_name}_{model_name}" if args.tag else f"{args.protocol}_{dataset_name}_{model_name}"
    curve_path = args.out / f"{stem}.curve.jsonl"
    curve_path.unlink(missing_ok=True)

    config_files = None
    if args.protocol == "bench":
        yaml_path = args.data_dir / f"{dataset_name}.yaml"
        if not yaml_path.is_file():
            raise ValueError(f"benchmark config {yaml_path} not found (export_split.py writes it)")
        config_files = [str(yaml_path)]
    cfg = build_config_dict(args, model_name)
    config = Config(model=model_name, dataset=dataset_name, config_file_list=config_files, config_dict=cfg)
    dataset, train_data, valid_data, test_data, model, trainer, prep_s = prepare(config)

    epochs: list[dict[str, Any]] = []
    state = {"fit_start": 0.0, "slowest": 0.0, "epoch_start": 0.0, "train_s": 0.0}
    orig_train, orig_valid = trainer._train_epoch, trainer._valid_epoch

    def timed_train(train_data, epoch_idx, *a, **kw):  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        elapsed = now - state["fit_start"]
        if args.max_train_seconds and epochs and elapsed + state["slowest"] > args.max_train_seconds:
            raise BudgetExhausted(f"{elapsed:.0f}s used, next epoch ~{state['slowest']:.0f}s")
        state["epoch_start"] = now
        loss = orig_train(train_data, epoch_idx, *a, **kw)
        state["train_s"] = time.perf_counter() - now
        rec = {"epoch": epoch_idx, "train_s": round(state["train_s"], 3), "loss": _to_float(loss)}
        epochs.append(rec)
        if trainer.eval_step <= 0 or (epoch_idx + 1) % trainer.eval_step != 0:
            _append_jsonl(curve_path, rec)
            state["slowest"] = max(state["slowest"], state["train_s"])
        return loss

    def timed_valid(valid_data, *a, **kw):  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        score, result = orig_valid(valid_data, *a, **kw)
        rec = epochs[-1]
        rec["valid_s"] = round(time.perf_counter() - now, 3)
        rec["valid_score"] = float(score)
        rec["valid"] = {k: float(v) for k, v in result.items()}
        rec["elapsed_s"] = round(time.perf_counter() - state["fit_start"], 3)
        _append_jsonl(curve_path, rec)
        state["slowest"] = max(state["slowest"], time.perf_counter() - state["epoch_start"])
        LOG.info("%s epoch %d: train %.1fs valid %.1fs %s=%.4f", model_name, rec["epoch"], rec["train_s"],
                 rec["valid_s"], args.valid_metric, score)
        return score, result

    trainer._train_epoch = timed_train
    trainer._valid_epoch = timed_valid

    stopped_by = "max_epochs"
    state["fit_start"] = time.perf_counter()
    try:
        best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
        if len(epochs) < trainer.epochs:
            stopped_by = "early_stopping"
    except BudgetExhausted as exc:
        LOG.info("%s: wall-clock budget reached (%s)", model_name, exc)
        stopped_by = "wall_budget"
        best_valid_score, best_valid_result = trainer.best_valid_score, trainer.best_valid_result
    fit_s = time.perf_counter() - state["fit_start"]

    t1 = time.perf_counter()
    have_ckpt = os.path.isfile(trainer.saved_model_file)
    test_result = trainer.evaluate(test_data, load_best_model=have_ckpt, show_progress=False)
    test_s = time.perf_counter() - t1

    train_times = [e["train_s"] for e in epochs]
    valid_times = [e["valid_s"] for e in epochs if "valid_s" in e]
    scored = [e for e in epochs if "valid_score" in e]
    best_epoch = max(scored, key=lambda e: e["valid_score"])["epoch"] if scored else None
    result = {
        "tool": "recbole",
        "recbole_version": recbole.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "model": model_name,
        "dataset": dataset_name,
        "protocol": args.protocol,
        "eval_args": config["eval_args"],
        "benchmark_filename": config["benchmark_filename"],
        "valid_metric": config["valid_metric"],
        "seed": config["seed"],
        # knowledge-based loaders keep the data set as ``_dataset``
        "sizes": {
            part: len(getattr(loader, "dataset", None) or loader._dataset)
            for part, loader in (("train", train_data), ("valid", valid_data), ("test", test_data))
        },
        "n_users": int(dataset.user_num),
        "n_items": int(dataset.item_num),
        "test_result": {k: float(v) for k, v in test_result.items()},
        "best_valid_score": _to_float(best_valid_score),
        "best_valid_result": None if best_valid_result is None else {k: float(v) for k, v in best_valid_result.items()},
        "best_epoch": best_epoch,
        "epochs_run": len(epochs),
        "epochs_max": trainer.epochs,
        "stopping_step": config["stopping_step"],
        "stopped_by": stopped_by,
        "train_wall_s": round(fit_s, 3),
        "train_only_s": round(sum(train_times), 3),
        "sec_per_epoch": round(sum(train_times) / len(train_times), 3) if train_times else None,
        "valid_s_per_epoch": round(sum(valid_times) / len(valid_times), 3) if valid_times else None,
        "data_prep_s": round(prep_s, 3),
        "test_eval_s": round(test_s, 3),
        "max_train_seconds": args.max_train_seconds,
        "model_config": {k: _jsonable(config[k]) for k in MODEL_KEYS if k in config.final_config_dict},
        "torch_threads": torch.get_num_threads(),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "loadavg_at_end": list(os.getloadavg())},
        "argv": args.argv,
        "curve_file": curve_path.name,
    }
    out_path = args.out / f"{stem}.json"
    out_path.write_text(json.dumps(result, indent=2))
    LOG.info("%s test %s -> %s", model_name, result["test_result"], out_path)
    return result


MODEL_KEYS = (
    "epochs", "train_batch_size", "learning_rate", "learner", "weight_decay", "embedding_size", "hidden_size",
    "n_layers", "n_heads", "inner_size", "hidden_dropout_prob", "attn_dropout_prob", "loss_type",
    "MAX_ITEM_LIST_LENGTH", "k", "shrink", "reg_weight", "train_neg_sample_args", "normalize_all", "load_col",
)


def _to_float(x: Any) -> float | None:
    if x is None:
        return None
    if isinstance(x, tuple):
        return float(sum(x))
    return float(x)


def _jsonable(x: Any) -> Any:
    try:
        json.dumps(x)
        return x
    except TypeError:
        return str(x)


def _append_jsonl(path: Path, rec: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(rec) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", choices=["ro", "loo", "bench"], required=True)
    p.add_argument("--models", nargs="+", required=True, help="RecBole model names, e.g. Pop ItemKNN BPR EASE SASRec")
    p.add_argument("--data-dir", type=Path, help="bench: directory <name>/ holding <name>.{train,valid,test}.inter")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--tag", default="", help="prefix of the output file names (default: the protocol)")
    p.add_argument("--valid-metric", default="NDCG@10")
    p.add_argument("--max-train-seconds", type=float, default=0.0, help="wall-clock cap on training (0: none)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch.set_num_threads before training (0: torch's default, one per core)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra RecBole config, value parsed as YAML (e.g. --set epochs=2)")
    args = p.parse_args(argv)
    if args.protocol == "bench" and args.data_dir is None:
        p.error("--protocol bench needs --data-dir")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv)
    # RecBole's Config also parses sys.argv ("--key=value" becomes a config key); keep it out.
    del sys.argv[1:]
    # torch>=2.6 loads checkpoints with weights_only=True by default; RecBole 1.2.1 pickles its Config
    # into every checkpoint and calls torch.load without weights_only, so loading the best model fails.
    # The checkpoints are this script's own files, so torch's documented switch is safe here.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    # CPU only: RecBole picks CUDA whenever torch sees a device.
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.out = args.out.resolve()
    if args.data_dir is not None:
        args.data_dir = args.data_dir.resolve()
    (args.out / "work").mkdir(parents=True, exist_ok=True)
    # RecBole writes ./log, ./log_tensorboard relative to the working directory.
    os.chdir(args.out / "work")
    for name in args.models:
        run_one(args, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
