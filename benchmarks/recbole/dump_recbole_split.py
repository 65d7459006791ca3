"""Write RecBole's own split of its ml-100k as benchmark files, so lmrec can test on exactly it.

Runs in the RecBole venv. ``--protocol ro`` is the split behind the quoted RO figures (RS 8:1:1,
order RO, group_by user, seed 2020: the same for Pop, ItemKNN, BPR and EASE, since all four use the
plain Dataset); ``--protocol loo`` is RecBole's LS valid_and_test split with order TO.

    benchmarks/.venv-recbole/bin/python benchmarks/recbole/dump_recbole_split.py --protocol ro

writes ``benchmarks/out/recbole/splits/ml-100k-recbole-ro/ml-100k-recbole-ro.{train,valid,test}.inter``
(raw user and item ids, raw rating and timestamp in seconds) and a ``.yaml`` for run_recbole.py's
``--protocol bench``. lmrec reads them with
``lmrec.data.load_recbole_benchmark(directory, "ml-100k-recbole-ro")``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

LOG = logging.getLogger("dump_recbole_split")
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "out" / "recbole" / "splits"
RECBOLE_ML100K = HERE.parent / ".venv-recbole/lib/python3.11/site-packages/recbole/dataset_example/ml-100k/ml-100k.inter"
EVAL_ARGS = {
    "ro": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
    "loo": {"split": {"LS": "valid_and_test"}, "group_by": "user", "order": "TO", "mode": "full"},
}
PARTS = ("train", "valid", "test")


def recbole_split(protocol: str, model: str = "BPR") -> tuple[Any, list[Any]]:
    """RecBole's (dataset, [train, valid, test]) exactly as run_recbole builds them (seed 2020)."""
    from recbole.config import Config
    from recbole.data import create_dataset
    from recbole.utils import init_seed

    cfg: dict[str, Any] = {
        "eval_args": EVAL_ARGS[protocol], "use_gpu": False, "gpu_id": "", "worker": 0, "seed": 2020,
        "reproducibility": True, "show_progress": False, "state": "WARNING",
    }
    if model == "SASRec":
        cfg["train_neg_sample_args"] = None
    config = Config(model=model, dataset="ml-100k", config_dict=cfg)
    # The calls run_recbole / data_preparation make before the split draws its random numbers.
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    return dataset, dataset.build()


def write_split(protocol: str, out: Path) -> Path:
    """Write the three parts with raw ids and raw values; returns the directory."""
    import pandas as pd

    raw = pd.read_csv(RECBOLE_ML100K, sep="\t", dtype=str)
    raw.columns = [c.split(":")[0] for c in raw.columns]
    raw["row"] = range(len(raw))
    if raw.duplicated(["user_id", "item_id"]).any():
        raise ValueError("duplicate (user, item) rows: raw values cannot be joined back")
    dataset, parts = recbole_split(protocol)
    name = f"ml-100k-recbole-{protocol}"
    target = out / name
    target.mkdir(parents=True, exist_ok=True)
    uid, iid = dataset.uid_field, dataset.iid_field
    for part_name, part in zip(PARTS, parts):
        feat = part.inter_feat
        frame = pd.DataFrame({
            "user_id": dataset.id2token(uid, feat[uid].numpy()).astype(str),
            "item_id": dataset.id2token(iid, feat[iid].numpy()).astype(str),
        })
        full = frame.merge(raw, on=["user_id", "item_id"], how="left", validate="one_to_one")
        if full["timestamp"].isna().any():
            raise ValueError(f"{part_name}: {int(full['timestamp'].isna().sum())} rows not found in the raw file")
        # Rows in the raw file's order: lmrec's time order breaks ties by row, as RecBole does by file order.
        full = full.sort_values("row")
        path = target / f"{name}.{part_name}.inter"
        with path.open("w", encoding="utf-8", newline="\n") as fh:
            fh.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
            for u, i, r, t in full[["user_id", "item_id", "rating", "timestamp"]].itertuples(index=False):
                fh.write(f"{u}\t{i}\t{r}\t{t}\n")
        LOG.info("wrote %s (%d rows)", path, len(full))
    (target / f"{name}.yaml").write_text(
        f"# RecBole's own {protocol} split of ml-100k (dump_recbole_split.py), as benchmark files.\n"
        'field_separator: "\\t"\nUSER_ID_FIELD: user_id\nITEM_ID_FIELD: item_id\nRATING_FIELD: rating\n'
        "TIME_FIELD: timestamp\nload_col:\n  inter: [user_id, item_id, rating, timestamp]\n"
        "benchmark_filename: [train, valid, test]\nnormalize_all: True\n"
    )
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", choices=sorted(EVAL_ARGS), required=True)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    del sys.argv[1:]  # RecBole's Config parses sys.argv too
    write_split(args.protocol, args.out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
