"""Ray on one machine: catalogue encoding with Ray Data and SASRec training with Ray Train.

``encode``: the Office catalogue through the packaged MiniLM, locally (1 thread) and on a local Ray
cluster with 1 and with 2 encoder actors (1 thread each); prints items/s of each and the largest
absolute difference from the local vectors (no cache, so every run encodes every item).

``train``: SASRec on ML-100K (leave-one-out, early stopping on validation NDCG@10) with Ray Train
on 1 worker and on 2 workers (1 thread each) at the same global batch, per seed; prints test
NDCG@10, epochs, seconds and training examples (target positions) per second of each.

Usage (from the repository root)::

    nice python benchmarks/ray_scale.py encode [--office DIR]
    nice python benchmarks/ray_scale.py train --seeds 0 1 2

Both start a local Ray cluster with 2 CPUs. Timings on a machine other processes load are noisy:
say so next to any figure.
"""

from __future__ import annotations

import argparse
import json
import time

import common
import numpy as np


def run_encode(args: argparse.Namespace) -> None:
    import torch

    from lmrec.encoders import encode_catalog, make_text_encoder
    from lmrec.encoders.ray_encode import RayEncoder, connect_ray

    dataset = common.load_data("office", args.office)
    n = dataset.n_items
    torch.set_num_threads(1)
    start = time.perf_counter()
    local = encode_catalog(dataset, encoder=make_text_encoder(None, "torch"), show_progress=False).vectors
    rows = {"local (1 thread)": (n / (time.perf_counter() - start), 0.0)}
    connect_ray("local", num_cpus=2)
    for workers in (1, 2):
        encoder = RayEncoder(None, "torch", workers=workers, batch_size=64, address="local")
        start = time.perf_counter()
        vectors = encode_catalog(dataset, encoder=encoder, batch_size=10**9, show_progress=False).vectors
        rows[f"ray, {workers} actor(s)"] = (n / (time.perf_counter() - start), float(np.abs(vectors - local).max()))
    print(f"Office catalogue: {n} items, packaged MiniLM")
    for name, (rate, diff) in rows.items():
        print(f"  {name:20s} {rate:8.1f} items/s   max |diff| vs local {diff:.2e}")


def run_train(args: argparse.Namespace) -> None:
    from lmrec.data import leave_one_out
    from lmrec.encoders.ray_encode import connect_ray
    from lmrec.eval import evaluate
    from lmrec.models import SASRec
    from lmrec.models.bundle import ModelBundle
    from lmrec.train.ray_train import ray_train

    dataset = common.load_data("ml-100k")
    split = leave_one_out(dataset.interactions)
    train_data = dataset.with_interactions(split.train)
    connect_ray("local", num_cpus=2)
    out = common.OUT / "ray_scale"
    results = []
    for seed in args.seeds:
        for workers in (1, 2):

            def fit(seed: int = seed) -> ModelBundle:
                model = SASRec(epochs=args.epochs, num_threads=1, device="cpu", random_state=seed)
                start = time.perf_counter()
                model.fit(train_data, valid=split)
                info = {"fit_s": time.perf_counter() - start, "epochs": len(model.train_history_)}
                return ModelBundle(model, None, None, info)

            target = out / f"sasrec_seed{seed}_w{workers}"
            ray_train(fit, target, workers=workers, address="local")
            bundle = ModelBundle.load(target)
            model = bundle.model
            model.observe(split.valid)
            ndcg = evaluate(model, split, ks=(10,)).metrics["ndcg@10"]
            targets = sum(max(0, len(s) - 1) for s in split.train.sequences())  # target positions per epoch
            rate = targets * bundle.info["epochs"] / bundle.info["fit_s"]
            row = {"seed": seed, "workers": workers, "ndcg@10": ndcg, **bundle.info, "examples_per_s": rate}
            results.append(row)
            print(json.dumps(row))
    (out / "train.json").write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode")
    common.add_office_arg(enc)
    train = sub.add_parser("train")
    train.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    train.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()
    common.setup_logging()
    if args.command == "encode":
        run_encode(args)
    else:
        run_train(args)


if __name__ == "__main__":
    main()
