"""Continual learning of the language-model interest model: streaming (prequential) benchmark.

For each data set: order interactions by time, fit on the first 60% of the rows, then for each of
4 windows rank with three arms (no update, incremental ``partial_fit`` on each past window, full
retrain on everything before the window), recording NDCG@10 / Recall@10 and training seconds, and
measure forgetting on a held-back share of window 0's rows (never trained on by any arm) with and
without replay, against a full retrain (see `lmrec.eval.stream`).

Targets (issue 7): incremental >= 95% of full-retrain NDCG@10 on each window after an update, at
< 25% of its training time; forgetting <= 5% with replay.

Usage (one data set per process; ``nice`` on a shared machine)::

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 nice -n 10 python benchmarks/continual_bench.py run --data ml-100k
    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 nice -n 10 python benchmarks/continual_bench.py run --data office
    python benchmarks/continual_bench.py report      # -> benchmarks/results/continual.md (overwrites it)
    python benchmarks/continual_bench.py forgetting  # held-back forgetting tables of every run, to stdout
    # early-stopped refits and updates (as `lmrec evaluate --protocol stream`), then one setting over seeds
    python benchmarks/continual_bench.py run --data office --seed 0 --forget-seed 0 --epochs 100 --update-epochs 10 \
        --early-stopping --tag _es
    python benchmarks/continual_bench.py summary --data office --tag _es --seeds 0 1 2
    # the acceptance runs (`lmrec evaluate --protocol stream --json F`, package defaults), per window and seed
    python benchmarks/continual_bench.py cli-summary F1.json F2.json ...
    # forgetting against update quality over anti-forgetting settings (incremental-only runs borrow the
    # no-update / full-retrain arms of the --base-tag run of the same seed), as a plot
    python benchmarks/continual_bench.py frontier --data office --base-tag _es --seeds 0 \
        --settings _es=default _es_rs5000="replay 5000" --out benchmarks/results/continual_frontier_office.png
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import common
from common import load_data  # the same data sets as the lm benchmark

RUNS = common.OUT / "continual"
CACHE = common.EMBED_CACHE
RESULTS = common.RESULTS_DIR / "continual.md"

#: capped settings (a fixed number of epochs, no early stopping: every arm trains the same way)
LM_PARAMS: dict[str, dict[str, Any]] = {
    "ml-100k": {"max_len": 50, "dropout": 0.2},
    "office": {"max_len": 50, "dropout": 0.3},
}

log = logging.getLogger("continual_bench")


def run(
    data_name: str,
    seed: int,
    epochs: int,
    update_epochs: int,
    windows: int,
    train_frac: float,
    replay: str,
    replay_size: int,
    regularizer: str,
    reg_strength: float,
    arms: tuple[str, ...],
    tag: str,
    forget_holdout: float = 0.2,
    forget_seed: int = 0,
    early_stopping: bool = False,
    distill: float = 0.0,
    distill_rows: str = "all",
    office: Path | None = None,
    update_budget: float | None = None,
) -> Path:
    from lmrec.eval.stream import prequential

    data = load_data(data_name, office)
    params = {
        **LM_PARAMS[data_name],
        "epochs": epochs,
        "update_epochs": update_epochs,
        # the earlier runs' update: --update-epochs also caps an early-stopped one, with the fit's
        # patience and no time budget (the package defaults differ: see ContinualConfig)
        "continual.update_max_epochs": update_epochs,
        "continual.update_patience": None,
        "continual.update_budget": update_budget,
        "replay": replay,
        "replay_size": replay_size,
        "regularizer": regularizer,
        "reg_strength": reg_strength,
        "distill": distill,
        "distill_rows": distill_rows,
    }

    def make():
        return common.make_lm({"cache_dir": str(CACHE), "num_threads": 1, **params}, seed)

    with common.Timer() as timer:
        res = prequential(
            data,
            make,
            train_frac=train_frac,
            n_windows=windows,
            arms=arms,
            forget_holdout=forget_holdout,
            forget_seed=forget_seed,
            early_stopping=early_stopping,
        )
    record = {
        "data": data_name,
        "seed": seed,
        "params": params,
        "early_stopping": early_stopping,
        "wall_s": timer.seconds,
        "n_interactions": len(data.interactions),
        **res.to_dict(),
    }
    RUNS.mkdir(parents=True, exist_ok=True)
    path = RUNS / f"{data_name}_s{seed}{tag}.json"
    path.write_text(json.dumps(record, indent=2, default=float))
    log.info("wrote %s (%.0fs)", path, record["wall_s"])
    return path


def cli_summary(files: list[Path], model: str = "lm") -> str:
    """Per window and file: inc / full NDCG@10, the update's share of the refit's time, its epochs, what
    stopped it, then each file's forgetting (replay, no replay, full retrain), as Markdown."""
    lines = [
        "| file | data | seed | window | incremental | full retrain | inc / full | inc s | full s | time share | "
        "epochs | best | stopped by |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    forget = ["", "| file | forgetting, replay | no replay | full retrain |", "|---|---:|---:|---:|"]
    for path in files:
        r = json.loads(Path(path).read_text())
        res = r["results"][model]
        for w in res["stream"][1:]:
            inc, full = w["incremental"], w["full_retrain"]
            lines.append(
                f"| {Path(path).name} | {r['data']} | {r['settings']['seed']} | {w['window']} | "
                f"{inc['ndcg@10']:.4f} | {full['ndcg@10']:.4f} | {inc['ndcg@10'] / full['ndcg@10']:.3f} | "
                f"{inc['train_s']:.1f} | {full['train_s']:.1f} | {inc.get('time_share', float('nan')):.1%} | "
                f"{inc.get('epochs_run', '–')} | {inc.get('best_epoch', '–')} | {inc.get('stopped_by', '–')} |"
            )
        f = res.get("forgetting", {})
        cells = [
            f"{f[k]['forgetting']:+.1%}" if isinstance(f.get(k), dict) else "–"
            for k in ("replay", "no_replay", "full_retrain")
        ]
        forget.append(f"| {Path(path).name} | " + " | ".join(cells) + " |")
    return "\n".join(lines + forget) + "\n"


def report() -> str:
    lines = ["# Continual learning (issue 7): streaming evaluation of the `lm` model", ""]
    for path in sorted(RUNS.glob("*.json")):
        r = json.loads(path.read_text())
        p = r["params"]
        tag = path.stem.split(f"_s{r['seed']}", 1)[1]
        borrowed = ""
        if tag and any(arm not in w for w in r["stream"] for arm in ("no_update", "full_retrain")):
            # a run of the incremental arms only: no update and full retrain come from the untagged run
            # (same seed, so the same initial model; window 0 agrees in every arm)
            _borrow_arms(r, json.loads((RUNS / f"{r['data']}_s{r['seed']}.json").read_text()))
            borrowed = (
                " No-update and full-retrain columns are those of the untagged run (same seed and initial model)."
            )
        lines += [
            f"## {r['data']} (seed {r['seed']}, {r['n_interactions']:,} interactions){' ' + tag if tag else ''}",
            "",
            f"Settings: {json.dumps(p)}; initial fit on {r['initial']['n_rows']:,} rows "
            f"({r['initial']['train_frac']:.0%} of the time-ordered rows, split_by={r['initial']['split_by']}) "
            f"in {r['initial']['fit_s']:.0f} s; whole run {r['wall_s']:.0f} s.{borrowed}",
            "",
            "| window | rows | users | no update | incremental | inc (no replay) | full retrain | inc / full | "
            "inc train s | full train s | time ratio |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for w in r["stream"]:
            inc, full, nu = w["incremental"], w["full_retrain"], w["no_update"]
            nr = w.get("incremental_no_replay", {})
            ratio = inc["ndcg@10"] / full["ndcg@10"] if full["ndcg@10"] > 0 else float("nan")
            tr = inc["train_s"] / full["train_s"] if w["window"] > 0 else float("nan")
            lines.append(
                f"| {w['window']} | {w['n_rows']:,} | {inc['n_users']} | {nu['ndcg@10']:.4f} | {inc['ndcg@10']:.4f} | "
                f"{nr.get('ndcg@10', float('nan')):.4f} | {full['ndcg@10']:.4f} | {ratio:.3f} | {inc['train_s']:.1f} | "
                f"{full['train_s']:.1f} | {tr:.3f} |"
            )
        lines += [
            "",
            "Recall@10 per window (no update / incremental / full retrain): "
            + "; ".join(
                f"w{w['window']} {w['no_update']['recall@10']:.4f} / {w['incremental']['recall@10']:.4f} / "
                f"{w['full_retrain']['recall@10']:.4f}"
                for w in r["stream"]
            ),
            "",
        ]
        f = r["forgetting"]
        if "skipped" in f:
            lines.append(f"Forgetting: skipped ({f['skipped']})")
        elif f.get("protocol") == "held-back":
            lines += forgetting_section(f)
        else:  # the earlier definition (window 0's own training rows), kept readable for old runs
            lines += [
                f"Forgetting (earlier definition) on window 0's {f['n_users']} users:",
                "",
                "| variant | right after | after last | forgetting |",
                "|---|---:|---:|---:|",
            ]
            for name in ("replay", "no_replay"):
                if name in f:
                    v = f[name]
                    lines.append(
                        f"| {name} | {v['right_after']:.4f} | {v['after_last']:.4f} | {v['forgetting']:+.1%} |"
                    )
        lines.append("")
    return "\n".join(lines)


def forgetting_section(f: dict[str, Any]) -> list[str]:
    """Markdown lines of a held-back forgetting block (see `lmrec.eval.stream`)."""
    lines = [
        f"Forgetting, held-back protocol: {f['n_rows']:,} of window 0's rows ({f['holdout']:.0%}, seed "
        f"{f['seed']}) held back from every arm, {f['n_users']:,} users; NDCG@10 on them from the users' "
        f"pre-window-0 and kept window-0 rows. The initial model (never saw window 0) scores "
        f"{f['initial']:.4f}.",
        "",
        "| variant | right after window 0 | after last window | forgetting |",
        "|---|---:|---:|---:|",
    ]
    labels = {
        "replay": f"incremental, replay ({f.get('replay_kind')})",
        "no_replay": "incremental, no replay",
        "full_retrain": "full retrain (reference)",
    }
    for name, label in labels.items():
        if name in f:
            v = f[name]
            lines.append(f"| {label} | {v['right_after']:.4f} | {v['after_last']:.4f} | {v['forgetting']:+.1%} |")
    if "catalogue0" in f:
        c = f["catalogue0"]
        lines += [
            "",
            f"The same task ranked over window 0's catalogue only ({c['n_items']:,} items with a row before "
            f"the end of window 0; initial model {c['initial']:.4f}):",
            "",
            "| variant | right after window 0 | after last window | forgetting |",
            "|---|---:|---:|---:|",
        ]
        for name, label in labels.items():
            if name in f:
                v = f[name]["catalogue0"]
                lines.append(f"| {label} | {v['right_after']:.4f} | {v['after_last']:.4f} | {v['forgetting']:+.1%} |")
    if "full_retrain" in f and f["full_retrain"].get("last_stream_refit") is not None:
        lines += [
            "",
            f"Full retrain: right after = the refit that ranks window 1; after last = a final refit on "
            f"everything ({f['full_retrain']['final_refit_s']:.0f} s); the refit that ranked the last window "
            f"scores {f['full_retrain']['last_stream_refit']:.4f}.",
        ]
    return lines


def forgetting_tables() -> str:
    """The held-back forgetting table of every run in ``benchmarks/out/continual``."""
    lines: list[str] = []
    runs: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for path in sorted(RUNS.glob("*.json")):
        r = json.loads(path.read_text())
        f = r["forgetting"]
        if f.get("protocol") != "held-back":
            continue
        lines += [
            f"### {path.stem} ({r['data']}, seed {r['seed']}, whole run {r['wall_s']:.0f} s)",
            "",
            *forgetting_section(f),
            "",
        ]
        tag = path.stem.split(f"_s{r['seed']}", 1)[-1]  # runs of one tag share their settings
        runs.setdefault(f"{r['data']}{tag}", []).append((r["seed"], f))
    labels = {
        "replay": "incremental, replay",
        "no_replay": "incremental, no replay",
        "full_retrain": "full retrain (reference)",
    }
    lines += [
        "### Mean over seeds (model seed = held-back seed)",
        "",
        "| data | variant | seeds | right after (mean) | after last (mean) | forgetting per seed | mean forgetting |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for data, seeded in sorted(runs.items()):
        seeded.sort(key=lambda sf: sf[0])
        for (name, label), view in [(nl, v) for v in ("all", "catalogue0") for nl in labels.items()]:
            got = [
                (seed, f[name] if view == "all" else f[name][view])
                for seed, f in seeded
                if name in f and (view == "all" or view in f[name])
            ]
            label = label if view == "all" else f"{label}, window-0 catalogue"
            if not got:
                continue
            mean = {k: sum(v[k] for _, v in got) / len(got) for k in ("right_after", "after_last", "forgetting")}
            per = ", ".join(f"{v['forgetting']:+.1%}" for _, v in got)
            lines.append(
                f"| {data} | {label} | {','.join(str(seed) for seed, _ in got)} | {mean['right_after']:.4f} | "
                f"{mean['after_last']:.4f} | {per} | {mean['forgetting']:+.1%} |"
            )
    return "\n".join(lines)


def _load_run(data: str, seed: int, tag: str, base_tag: str | None) -> dict[str, Any] | None:
    """One run's record; arms it lacks (an incremental-only run) are taken from ``base_tag``'s run of
    the same seed, which has the same initial model."""
    path = RUNS / f"{data}_s{seed}{tag}.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    if base_tag is not None and any("full_retrain" not in w for w in r["stream"]):
        base_path = RUNS / f"{data}_s{seed}{base_tag}.json"
        if not base_path.exists():
            return None
        base = json.loads(base_path.read_text())
        _borrow_arms(r, base)
        r["forgetting"].setdefault("full_retrain", base["forgetting"].get("full_retrain"))
    return r


def _borrow_arms(r: dict[str, Any], base: dict[str, Any]) -> None:
    """Fill an incremental-only run's missing no-update / full-retrain arms from ``base`` (same seed,
    so the same initial model; window 0 agrees in every arm)."""
    for mine, theirs in zip(r["stream"], base["stream"]):
        for arm in ("no_update", "full_retrain"):
            mine.setdefault(arm, theirs[arm])


def run_summary(r: dict[str, Any]) -> dict[str, Any]:
    """Per-window incremental / full-retrain NDCG@10 and time ratios (windows 1+), forgetting."""
    later = [w for w in r["stream"] if w["window"] > 0]
    f = r["forgetting"]
    return {
        "ratio": [w["incremental"]["ndcg@10"] / w["full_retrain"]["ndcg@10"] for w in later],
        "time_ratio": [w["incremental"]["train_s"] / w["full_retrain"]["train_s"] for w in later],
        "best_epoch": [w["incremental"].get("best_epoch") for w in later],
        "forgetting": {k: f[k]["forgetting"] for k in ("replay", "no_replay", "full_retrain") if f.get(k)},
        "forgetting_cat0": {
            k: f[k]["catalogue0"]["forgetting"]
            for k in ("replay", "no_replay", "full_retrain")
            if f.get(k) and "catalogue0" in f[k]
        },
    }


def summary(data: str, tag: str, seeds: list[int], base_tag: str | None = None) -> str:
    """A markdown table of one setting over seeds: inc / full per window, time ratio, forgetting."""
    rows, got = [], []
    for seed in seeds:
        r = _load_run(data, seed, tag, base_tag)
        if r is None:
            continue
        s = run_summary(r)
        got.append(s)
        rows.append(
            f"| {seed} | {' / '.join(f'{x:.3f}' for x in s['ratio'])} | "
            f"{' / '.join(f'{x:.3f}' for x in s['time_ratio'])} | {s['best_epoch']} | "
            + " | ".join(
                f"{s['forgetting'].get(k, float('nan')):+.1%}" for k in ("replay", "no_replay", "full_retrain")
            )
            + " |"
        )
    if not got:
        return f"no runs for {data}{tag}"
    n_w = len(got[0]["ratio"])
    mean_ratio = [sum(g["ratio"][i] for g in got) / len(got) for i in range(n_w)]
    mean_time = [sum(g["time_ratio"][i] for g in got) / len(got) for i in range(n_w)]
    mean_f = {k: sum(g["forgetting"][k] for g in got) / len(got) for k in got[0]["forgetting"]}
    lines = [
        f"{data}{tag}: seeds {seeds[: len(got)]}",
        "",
        "| seed | inc / full, windows 1.. | update / refit time | update's best epoch | forgetting, replay | "
        "no replay | full retrain |",
        "|---|---|---|---|---:|---:|---:|",
        *rows,
        f"| mean | {' / '.join(f'{x:.3f}' for x in mean_ratio)} | {' / '.join(f'{x:.3f}' for x in mean_time)} | "
        f"| "
        + " | ".join(f"{mean_f.get(k, float('nan')):+.1%}" for k in ("replay", "no_replay", "full_retrain"))
        + " |",
    ]
    return "\n".join(lines)


def frontier(data: str, settings: list[tuple[str, str]], seeds: list[int], base_tag: str, out: Path) -> str:
    """Forgetting (with replay) against the update's quality (mean inc / full over windows 1..), one point
    per setting (``(tag, label)``), means over ``seeds``; a plot to ``out`` and a markdown table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, lines = (
        [],
        [
            "| setting | seeds | mean inc / full (windows 1..) | worst window (mean over seeds) | "
            "forgetting, replay | forgetting, window-0 catalogue |",
            "|---|---|---:|---:|---:|---:|",
        ],
    )
    retrain = []
    for tag, label in settings:
        got = [run_summary(r) for r in (_load_run(data, s, tag, base_tag) for s in seeds) if r is not None]
        if not got:
            continue
        per_window = [sum(g["ratio"][i] for g in got) / len(got) for i in range(len(got[0]["ratio"]))]
        quality = sum(per_window) / len(per_window)
        forget = sum(g["forgetting"]["replay"] for g in got) / len(got)
        forget0 = sum(g["forgetting_cat0"]["replay"] for g in got) / len(got)
        retrain += [g["forgetting"]["full_retrain"] for g in got if "full_retrain" in g["forgetting"]]
        points.append((quality, forget, label))
        lines.append(
            f"| {label} | {len(got)} | {quality:.3f} | {min(per_window):.3f} | {forget:+.1%} | {forget0:+.1%} |"
        )
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for q, f, label in points:
        ax.scatter(q, 100 * f, color="tab:blue")
        ax.annotate(label, (q, 100 * f), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if retrain:
        ax.axhline(
            100 * sum(retrain) / len(retrain),
            color="tab:red",
            ls="--",
            lw=1,
            label=f"full retrain's forgetting ({100 * sum(retrain) / len(retrain):.0f} %)",
        )
    ax.axhline(5, color="tab:green", ls=":", lw=1, label="target: forgetting <= 5 %")
    ax.axvline(0.95, color="tab:gray", ls=":", lw=1, label="target: >= 95 % of full retrain")
    ax.set_xlabel("incremental / full-retrain NDCG@10, mean of windows 1-3")
    ax.set_ylabel("forgetting with replay, % (held-back window-0 rows)")
    ax.set_title(f"{data}: forgetting against plasticity (seeds {','.join(map(str, seeds))})")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", required=True, choices=["ml-100k", "office"])
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--epochs", type=int, default=20)
    r.add_argument("--update-epochs", type=int, default=5)
    r.add_argument("--windows", type=int, default=4)
    r.add_argument("--train-frac", type=float, default=0.6)
    r.add_argument("--replay", default="reservoir", choices=["none", "reservoir", "recency"])
    r.add_argument("--replay-size", type=int, default=1000)
    r.add_argument("--regularizer", default="l2sp", choices=["none", "l2sp", "ewc"])
    r.add_argument("--reg-strength", type=float, default=1.0)
    r.add_argument("--distill", type=float, default=0.0, help="LwF distillation weight of the updates (0: off)")
    r.add_argument("--distill-rows", default="all", choices=["all", "replayed"], help="positions distilled")
    r.add_argument("--arms", default="no_update,incremental,full_retrain", help="comma-separated arms")
    r.add_argument("--tag", default="", help="suffix of the output file, e.g. _fix")
    r.add_argument("--forget-holdout", type=float, default=0.2, help="share of window 0's rows held back")
    r.add_argument("--forget-seed", type=int, default=0, help="seed of the held-back draw")
    r.add_argument(
        "--early-stopping",
        action="store_true",
        help="fresh fits and updates early-stop on each user's last row, as `lmrec evaluate "
        "--protocol stream` does (--epochs / --update-epochs are then caps); off by default: "
        "the earlier runs in RESULTS.md train a fixed --epochs / --update-epochs",
    )
    r.add_argument(
        "--update-budget",
        type=float,
        default=None,
        help="time budget of each update as a share of the last fit's time (default: none, as the earlier runs)",
    )
    common.add_office_arg(r)
    cs = sub.add_parser("cli-summary", help="per-window table of `lmrec evaluate --protocol stream --json` files")
    cs.add_argument("files", type=Path, nargs="+")
    sub.add_parser("report")
    sub.add_parser("forgetting")
    sm = sub.add_parser("summary", help="one setting over seeds: inc / full per window, time ratio, forgetting")
    sm.add_argument("--data", required=True, choices=["ml-100k", "office"])
    sm.add_argument("--tag", required=True)
    sm.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sm.add_argument(
        "--base-tag",
        default=None,
        help="run whose no-update / full-retrain arms an incremental-only run borrows (same seed)",
    )
    fr = sub.add_parser("frontier", help="forgetting against update quality over settings, as a plot")
    fr.add_argument("--data", required=True, choices=["ml-100k", "office"])
    fr.add_argument("--settings", nargs="+", required=True, help="TAG=LABEL pairs")
    fr.add_argument("--seeds", type=int, nargs="+", default=[0])
    fr.add_argument("--base-tag", required=True)
    fr.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    common.setup_logging(fmt="%(asctime)s %(name)s: %(message)s")
    if args.cmd == "run":
        run(
            args.data,
            args.seed,
            args.epochs,
            args.update_epochs,
            args.windows,
            args.train_frac,
            args.replay,
            args.replay_size,
            args.regularizer,
            args.reg_strength,
            tuple(args.arms.split(",")),
            args.tag,
            args.forget_holdout,
            args.forget_seed,
            args.early_stopping,
            args.distill,
            args.distill_rows,
            args.office,
            args.update_budget,
        )
    elif args.cmd == "cli-summary":
        print(cli_summary(args.files))
    elif args.cmd == "forgetting":
        print(forgetting_tables())
    elif args.cmd == "summary":
        print(summary(args.data, args.tag, args.seeds, args.base_tag))
    elif args.cmd == "frontier":
        pairs = [tuple(x.split("=", 1)) if "=" in x else (x, x) for x in args.settings]
        print(frontier(args.data, pairs, args.seeds, args.base_tag, args.out))
    else:
        text = report()
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
        print(text)


if __name__ == "__main__":
    main()
