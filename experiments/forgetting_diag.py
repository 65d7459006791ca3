"""Produced RESULTS.md §11 (continual learning): "What the Office forgetting task measures".

What the held-back forgetting task of the streaming protocol rewards: popularity by period.

The forgetting task of `lmrec.eval.stream.prequential` ranks all items for the users with a held-back
window-0 row, from their history up to the end of window 0, with the held-back items relevant. This
script scores that task (same windows, same held-back draw) with item popularity counted over
different periods, and with a time-kernel popularity that counts each row by
``exp(-|t_user - t_row| / h)`` (``t_user`` = the user's last history event), both from the rows the
models have seen "right after" window 0 and from everything up to the last window. No model is fitted.

If popularity counted inside window 0 alone scores most of what a fitted model scores right after
learning window 0, while popularity over any other period scores near zero, then what the task asks a
model to keep is window 0's own item popularity, which a model that follows the stream (the plasticity
target) is built to move away from.

Usage::

    PYTHONPATH=benchmarks python experiments/forgetting_diag.py --data office --forget-seeds 0 1 2
    PYTHONPATH=benchmarks python experiments/forgetting_diag.py --data ml-100k --forget-seeds 0 1 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import common
import numpy as np

from lmrec.data import Interactions, Split
from lmrec.data.splits import holdout_rows, stream_windows
from lmrec.eval import evaluate

DAY = 86_400.0


class PeriodPopularity:
    """Scores every item by ``log(1 + count)`` over the given rows (the same list for every user)."""

    def __init__(self, inter: Interactions, rows: np.ndarray) -> None:
        self.scores = np.log1p(np.bincount(inter.items[rows], minlength=inter.n_items)).astype(np.float32)

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        return np.tile(self.scores, (len(user_idx), 1))


class KernelPopularity:
    """``log(1 + sum_rows exp(-|t_user - t_row| / h))`` per item; ``t_user`` = the user's last event in
    ``history`` (a user without one gets plain counts)."""

    def __init__(self, inter: Interactions, rows: np.ndarray, history: Interactions, h_days: float) -> None:
        self.n_items, self.h = inter.n_items, h_days * DAY
        self.items, self.times = inter.items[rows], inter.timestamps[rows].astype(np.float64)
        self.last = np.full(history.n_users, np.nan)
        order = history.time_order()
        self.last[history.users[order]] = history.timestamps[order]  # the last write per user wins

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(user_idx), self.n_items), np.float32)
        for row, user in enumerate(np.asarray(user_idx)):
            t = self.last[user]
            weights = np.ones(len(self.times)) if np.isnan(t) else np.exp(-np.abs(t - self.times) / self.h)
            out[row] = np.log1p(np.bincount(self.items, weights=weights, minlength=self.n_items))
        return out


def task_ndcg(scorer, history: Interactions, target: Interactions) -> float:
    """NDCG@10 of ``scorer`` on ``target``, ``history`` masked (the forgetting task's evaluation)."""
    split = Split(history, target.subset(np.zeros(0, np.int64)), target)
    return float(evaluate(scorer, split, ks=(10,), metrics=("ndcg",), user_groups=()).metrics["ndcg@10"])


def diagnose(
    data_name: str, forget_seed: int, h_days: tuple[float, ...], office: Path | None = None
) -> dict[str, float]:
    inter = common.load_data(data_name, office).interactions
    initial, windows = stream_windows(inter, train_frac=0.6, n_windows=4, split_by="rows")
    kept0, held0 = holdout_rows(windows[0], 0.2, forget_seed)
    right_after = np.concatenate([initial, kept0])  # what every arm has learned right after window 0
    after_last = np.concatenate([right_after, *windows[1:]])
    history, target = inter.subset(right_after), inter.subset(held0)
    periods = {
        "initial part": initial,
        "window 0 (kept rows)": kept0,
        "initial part + window 0": right_after,
        **{f"window {k}": windows[k] for k in range(1, len(windows))},
        "everything up to the last window": after_last,
    }
    out = {
        f"popularity: {name}": task_ndcg(PeriodPopularity(inter, rows), history, target)
        for name, rows in periods.items()
    }
    for h in h_days:
        for label, rows in (("right after window 0", right_after), ("after the last window", after_last)):
            out[f"time-kernel popularity, h {h:g} days, {label}"] = task_ndcg(
                KernelPopularity(inter, rows, history, h), history, target
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["office", "ml-100k"], default="office")
    parser.add_argument("--forget-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--h-days", type=float, nargs="+", default=[3.0, 30.0, 90.0])
    common.add_office_arg(parser)
    args = parser.parse_args()
    runs = [diagnose(args.data, seed, tuple(args.h_days), args.office) for seed in args.forget_seeds]
    print(
        f"| {args.data}: scorer of the held-back task | NDCG@10, mean over held-back draws {args.forget_seeds} "
        "| per draw |"
    )
    print("|---|---:|---|")
    for key in runs[0]:
        vals = [r[key] for r in runs]
        print(f"| {key} | {np.mean(vals):.4f} | {' / '.join(f'{v:.4f}' for v in vals)} |")


if __name__ == "__main__":
    main()
