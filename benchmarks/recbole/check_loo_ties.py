"""Does lmrec's leave-one-out pick the same valid/test interactions as RecBole's LS split?

Two steps in two venvs:

1. ``dump`` (RecBole venv) builds RecBole 1.2.1's own leave-one-out split of its ml-100k (eval_args
   split LS valid_and_test, order TO, as its sequential models use) and writes it as benchmark files
   ``<out>/<name>/<name>.{train,valid,test}.inter`` with raw ids and the raw timestamps
   (dump_recbole_split.py), plus the per-user picks in ``<name>.picks.json``. It builds the split
   twice, once through SequentialDataset (SASRec: every prefix is a row) and once through the plain
   Dataset (BPR), and checks that both pick the same targets.

2. ``compare`` (lmrec venv) runs ``lmrec.data.leave_one_out`` on the same atomic file and reports
   per user whether valid/test agree; it then repeats lmrec's split on RecBole's *stored* timestamps
   (min-max normalised, float32) to show what causes any difference.

    benchmarks/.venv-recbole/bin/python benchmarks/recbole/check_loo_ties.py dump
    .venv/bin/python benchmarks/recbole/check_loo_ties.py compare

The files from ``dump`` can be fed to lmrec (``lmrec.data.load_recbole_benchmark``) so both tools
see RecBole's exact LS split.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

LOG = logging.getLogger("check_loo_ties")
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "out" / "recbole" / "splits"
NAME = "ml-100k-recbole-loo"
RECBOLE_ML100K = HERE.parent / ".venv-recbole/lib/python3.11/site-packages/recbole/dataset_example/ml-100k/ml-100k.inter"


def dump(out: Path) -> None:
    import numpy as np
    import pandas as pd

    from dump_recbole_split import recbole_split, write_split  # a sibling: the script's folder is on sys.path

    target = write_split("loo", out)  # RecBole's LS split as benchmark files, raw ids and values
    picks: dict[str, dict[str, dict[str, str]]] = {}
    for model in ("SASRec", "BPR"):
        dataset, parts = recbole_split("loo", model)
        uid, iid = dataset.uid_field, dataset.iid_field
        picks[model] = {}
        for name, part in zip(("valid", "test"), parts[1:]):
            feat = part.inter_feat
            users = dataset.id2token(uid, feat[uid].numpy()).astype(str)
            items = dataset.id2token(iid, feat[iid].numpy()).astype(str)
            picks[model][name] = dict(zip(users, items))
    same = picks["SASRec"] == picks["BPR"]
    LOG.info("SequentialDataset (SASRec) and Dataset (BPR) pick the same valid/test targets: %s", same)
    if not same:
        raise SystemExit("RecBole's two LS paths disagree; inspect the picks")
    # RecBole's stored timestamp of every row (min-max normalised, float32) for the compare step.
    dataset, _ = recbole_split("loo", "BPR")
    stored = dataset.inter_feat  # after build(): an Interaction sorted by time
    pd.DataFrame({
        "user_id": dataset.id2token(dataset.uid_field, stored[dataset.uid_field].numpy()).astype(str),
        "item_id": dataset.id2token(dataset.iid_field, stored[dataset.iid_field].numpy()).astype(str),
        "stored_ts": stored[dataset.time_field].numpy().astype(np.float64),
    }).to_csv(target / f"{NAME}.stored_ts.csv", index=False)
    (target / f"{NAME}.picks.json").write_text(json.dumps(picks["BPR"]))


def compare(out: Path) -> None:
    import numpy as np
    import pandas as pd

    from lmrec.data import Interactions, leave_one_out

    target = out / NAME
    picks = json.loads((target / f"{NAME}.picks.json").read_text())
    raw = pd.read_csv(RECBOLE_ML100K, sep="\t")
    raw.columns = [c.split(":")[0] for c in raw.columns]
    stored = pd.read_csv(target / f"{NAME}.stored_ts.csv", dtype={"user_id": str, "item_id": str})
    raw_s = raw.astype({"user_id": str, "item_id": str}).merge(stored, on=["user_id", "item_id"], how="left",
                                                                 validate="one_to_one")

    def lmrec_picks(ts_col: str) -> dict[str, dict[str, str]]:
        inter = Interactions.from_frame(raw_s, time_col=ts_col)
        split = leave_one_out(inter)
        res = {}
        for name in ("valid", "test"):
            part = getattr(split, name)
            res[name] = dict(zip(part.user_map.to_ids(part.users), part.item_map.to_ids(part.items)))
        return res

    report: dict[str, object] = {}
    for label, col in (("raw seconds (lmrec as it is)", "timestamp"),
                       ("RecBole's stored float32 normalised time", "stored_ts")):
        mine = lmrec_picks(col)
        diff = {name: sorted(u for u in picks[name] if mine[name].get(u) != picks[name][u]) for name in picks}
        report[label] = {name: len(v) for name, v in diff.items()}
        LOG.info("lmrec leave_one_out on %s: users whose pick differs from RecBole: valid %d, test %d (of %d)",
                 label, len(diff["valid"]), len(diff["test"]), len(picks["test"]))
        if col == "timestamp":
            examples = diff["test"][:5]
            for u in examples:
                rows = raw_s[raw_s.user_id == u].sort_values("timestamp", kind="stable").tail(4)
                LOG.info("user %s last rows (raw ts, stored ts):\n%s\n lmrec test %s, RecBole test %s", u,
                         rows[["item_id", "timestamp", "stored_ts"]].to_string(index=False),
                         mine["test"][u], picks["test"][u])
    # Count same-second ties at the end of each user's history.
    g = raw_s.groupby("user_id")["timestamp"]
    last_tie = int(g.apply(lambda s: (np.sort(s.values) == np.sort(s.values)[-1]).sum() > 1).sum())
    second_tie = int(g.apply(lambda s: (np.sort(s.values) == np.sort(s.values)[-2]).sum() > 1).sum())
    report["users_with_same_second_tie_at_last"] = last_tie
    report["users_with_same_second_tie_at_second_last"] = second_tie
    (target / f"{NAME}.compare.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["dump", "compare"])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    del sys.argv[1:]  # RecBole's Config parses sys.argv too
    if args.step == "dump":
        dump(args.out.resolve())
    else:
        compare(args.out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
