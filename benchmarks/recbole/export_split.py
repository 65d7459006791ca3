"""Write an lmrec `Split` as RecBole benchmark files, so RecBole trains and tests on exactly that split.

Runs in lmrec's venv (``.venv/bin/python``). Output, for ``--name NAME``:

    <out>/NAME/NAME.train.inter, NAME.valid.inter, NAME.test.inter   (RecBole's benchmark_filename)
    <out>/NAME/NAME.yaml                                             (config run_recbole.py loads)

General models read ``user_id:token item_id:token rating:float timestamp:float`` rows (rating only
where the interactions have ratings). Sequential models (``--sequential``) cannot read raw rows from
benchmark files: RecBole skips its prefix augmentation there and expects each row to be a
``(history -> target)`` example, so the files hold ``user_id:token item_id_list:token_seq
item_id:token timestamp:float``, built exactly as RecBole's own LS split builds them: one training
row per training interaction after a user's first (history = the up to ``max_seq_len`` preceding
training items), the valid row with the whole training sequence as history, the test row with
training + valid. Order within a user is lmrec's (time, ties in file order).

Example (lmrec's leave-one-out of RecBole's ml-100k, then RecBole's SASRec on it):
    .venv/bin/python benchmarks/recbole/export_split.py --split loo --sequential --name ml100k-lmrec-loo-seq
    benchmarks/.venv-recbole/bin/python benchmarks/recbole/run_recbole.py --protocol bench \\
        --data-dir benchmarks/out/recbole/splits/ml100k-lmrec-loo-seq --models SASRec
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from lmrec.data import Interactions, Split, leave_one_out, ratio_split

LOG = logging.getLogger("export_split")
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "out" / "recbole" / "splits"
RECBOLE_ML100K = HERE.parent / ".venv-recbole/lib/python3.11/site-packages/recbole/dataset_example/ml-100k/ml-100k.inter"
PARTS = ("train", "valid", "test")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def _general_rows(inter: Interactions) -> tuple[list[str], list[list[str]]]:
    header = ["user_id:token", "item_id:token"]
    cols = [inter.user_map.to_ids(inter.users), inter.item_map.to_ids(inter.items)]
    if inter.ratings is not None:
        header.append("rating:float")
        cols.append([_num(r) for r in inter.ratings])
    header.append("timestamp:float")
    cols.append([_num(t) for t in inter.timestamps])
    return header, [list(map(str, row)) for row in zip(*cols)]


def _sequences(inter: Interactions) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per user index: (items, timestamps) in lmrec's time order (ties keep row order)."""
    order = inter.time_order()
    users, items, ts = inter.users[order], inter.items[order], inter.timestamps[order]
    bounds = np.searchsorted(users, np.arange(inter.n_users + 1))
    return [(items[bounds[u] : bounds[u + 1]], ts[bounds[u] : bounds[u + 1]]) for u in range(inter.n_users)]


def _sequential_rows(split: Split, max_seq_len: int) -> dict[str, list[list[str]]]:
    """(history -> target) rows per part, as RecBole's LS split over augmented sequences gives them."""
    train_seq = _sequences(split.train)
    valid_seq = _sequences(split.valid)
    test_seq = _sequences(split.test)
    uids = split.train.user_map.ids
    iids = np.asarray(split.train.item_map.ids, dtype=object)
    rows: dict[str, list[list[str]]] = {p: [] for p in PARTS}
    dropped = {p: 0 for p in PARTS}

    def row(u: int, history: np.ndarray, target: int, t: float) -> list[str]:
        return [uids[u], " ".join(iids[history[-max_seq_len:]]), str(iids[target]), _num(t)]

    for u in range(split.train.n_users):
        items, ts = train_seq[u]
        for j in range(1, len(items)):
            rows["train"].append(row(u, items[:j], items[j], ts[j]))
        history = items
        for part, seqs in (("valid", valid_seq), ("test", test_seq)):
            for item, t in zip(*seqs[u]):
                if len(history) == 0:
                    dropped[part] += 1  # no history to predict from (RecBole cannot hold such a row)
                else:
                    rows[part].append(row(u, history, item, t))
                history = np.append(history, item)
    for part, n in dropped.items():
        if n:
            LOG.warning("%s: %d rows had an empty history and were left out", part, n)
    return rows


def export_split(split: Split, out: str | Path, name: str, *, sequential: bool = False,
                 max_seq_len: int = 50) -> list[Path]:
    """Write ``split`` as ``<out>/<name>/<name>.{train,valid,test}.inter`` plus ``<name>.yaml``.

    Args:
        split: the lmrec split; ids are written as the raw external ids.
        out: parent directory; a directory named ``name`` is made in it (RecBole's data_path layout).
        name: data set name RecBole sees.
        sequential: write (history -> target) rows for RecBole's sequential models.
        max_seq_len: longest history kept (RecBole's MAX_ITEM_LIST_LENGTH, 50 by default).

    Returns:
        the files written.
    """
    if not name or "/" in name or "." in name:
        raise ValueError(f"name must be a plain file stem without '.' or '/', got {name!r}")
    directory = Path(out) / name
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if sequential:
        header = ["user_id:token", "item_id_list:token_seq", "item_id:token", "timestamp:float"]
        per_part = _sequential_rows(split, max_seq_len)
        load_cols = ["user_id", "item_id_list", "item_id", "timestamp"]
    else:
        per_part = {}
        header = []
        for part in PARTS:
            header, per_part[part] = _general_rows(getattr(split, part))
        load_cols = [h.split(":")[0] for h in header]
    for part in PARTS:
        path = directory / f"{name}.{part}.inter"
        with path.open("w", encoding="utf-8", newline="\n") as fh:
            fh.write("\t".join(header) + "\n")
            for r in per_part[part]:
                fh.write("\t".join(r) + "\n")
        written.append(path)
        LOG.info("wrote %s (%d rows)", path, len(per_part[part]))
    yaml_lines = [
        f"# RecBole config for the benchmark files beside it (export_split.py, lmrec split {split.name!r}).",
        'field_separator: "\\t"',
        'seq_separator: " "',
        "USER_ID_FIELD: user_id",
        "ITEM_ID_FIELD: item_id",
        "TIME_FIELD: timestamp",
        f"RATING_FIELD: {'rating' if 'rating' in load_cols else '~'}",
        "load_col:",
        f"  inter: [{', '.join(load_cols)}]",
        "benchmark_filename: [train, valid, test]",
        # As RecBole's own ml-100k.yaml; with benchmark files RecBole does no filtering of its own.
        "normalize_all: True",
    ]
    if sequential:
        yaml_lines += [
            f"MAX_ITEM_LIST_LENGTH: {max_seq_len}",
            # history tokens must share the item id space with the targets
            "alias_of_item_id: [item_id_list]",
        ]
    yaml_path = directory / f"{name}.yaml"
    yaml_path.write_text("\n".join(yaml_lines) + "\n")
    written.append(yaml_path)
    return written


def read_atomic_inter(path: Path) -> Interactions:
    """A RecBole ``.inter`` file as lmrec Interactions (rows in file order, ratings kept if present)."""
    frame = pd.read_csv(path, sep="\t", dtype=str)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    rating = "rating" if "rating" in frame.columns else None
    if rating:
        frame[rating] = frame[rating].astype(float)
    return Interactions.from_frame(frame, user_col="user_id", item_col="item_id", time_col="timestamp",
                                   rating_col=rating)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inter", type=Path, default=RECBOLE_ML100K,
                   help="RecBole .inter file to split (default: the ml-100k RecBole's wheel ships)")
    p.add_argument("--split", choices=["loo", "ratio"], required=True,
                   help="loo: lmrec.data.leave_one_out; ratio: ratio_split 8:1:1 per user, random order")
    p.add_argument("--seed", type=int, default=0, help="random_state of ratio_split")
    p.add_argument("--name", required=True)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--sequential", action="store_true", help="(history -> target) rows for SASRec & co")
    p.add_argument("--max-seq-len", type=int, default=50)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    inter = read_atomic_inter(args.inter)
    if args.split == "loo":
        split = leave_one_out(inter)
    else:
        split = ratio_split(inter, (0.8, 0.1, 0.1), order="random", random_state=args.seed)
    LOG.info("%s split of %s: %s", args.split, args.inter, split.sizes())
    export_split(split, args.out, args.name, sequential=args.sequential, max_seq_len=args.max_seq_len)
    return 0


if __name__ == "__main__":
    sys.exit(main())
