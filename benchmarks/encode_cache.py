"""Incremental re-encoding through the embedding cache on the Amazon Office items.

1. full encode of every item text into a fresh cache;
2. change 1% of the item texts (a seeded random choice of items gets a new title suffix) and
   encode the catalogue again: only the changed texts should be encoded;
3. encode once more with nothing changed (pure cache read).

Target: step 2 costs about 1% of step 1 (the report gives the time ratio and the hit rate).

    .venv/bin/python benchmarks/encode_cache.py                      # packaged MiniLM, PyTorch
    .venv/bin/python benchmarks/encode_cache.py --backend onnx-int8

Writes ``benchmarks/out/encode_cache.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

import common
import numpy as np
from encode_throughput import TEMPLATE, load_office_catalog

log = logging.getLogger("encode_cache")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_office_arg(parser, "--data")
    parser.add_argument("--model", default=None, help="model path or name (default: packaged MiniLM)")
    parser.add_argument("--backend", default="torch", choices=["torch", "hf", "onnx", "onnx-int8"])
    parser.add_argument("--changed", type=float, default=0.01, help="share of item texts to change")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export-dir", type=Path, default=common.OUT / "onnx")
    parser.add_argument("--out", type=Path, default=common.OUT / "encode_cache.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from lmrec.data.catalog import ItemCatalog
    from lmrec.encoders import encode_catalog, make_text_encoder

    catalog, item_map, source = load_office_catalog(args.office)
    encoder = make_text_encoder(args.model, args.backend, export_dir=args.export_dir)
    encoder.encode(["warm-up text"] * 4)  # thread pools and allocator, outside the timings

    rng = np.random.default_rng(args.seed)
    n_changed = max(1, round(args.changed * len(item_map)))
    changed_ids = rng.choice(np.asarray(item_map.ids, dtype=object), size=n_changed, replace=False)
    frame = catalog.frame.copy()
    frame.loc[list(changed_ids), "title"] = frame.loc[list(changed_ids), "title"].astype(str) + " (2025 edition)"
    edited = ItemCatalog(
        frame, text_fields=catalog.text_fields, categorical=catalog.categorical, numeric=catalog.numeric
    )

    runs = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        for label, cat in (("full", catalog), ("one_percent_changed", edited), ("unchanged", edited)):
            result = encode_catalog(
                cat,
                item_map,
                encoder=encoder,
                template=TEMPLATE,
                cache_dir=cache_dir,
                batch_size=args.batch_size,
                show_progress=False,
            )
            runs[label] = {
                "seconds": result.seconds,
                "items_per_s": result.items_per_second,
                "cache_hits": result.cache_hits,
                "cache_misses": result.cache_misses,
                "hit_rate": result.cache_hit_rate,
            }
            log.info("%-20s %s", label, result.summary())
            if label == "full":
                full_vectors = result.vectors
            elif label == "one_percent_changed":
                changed_rows = item_map.to_index(changed_ids)
                same = np.setdiff1d(np.arange(len(item_map)), changed_rows)
                assert np.array_equal(result.vectors[same], full_vectors[same]), "unchanged items moved"
    ratio = runs["one_percent_changed"]["seconds"] / runs["full"]["seconds"]
    report = {
        "benchmark": "encode_cache",
        "encoder": encoder.name,
        "backend": args.backend,
        "item_source": source,
        "n_items": len(item_map),
        "n_changed": int(n_changed),
        "runs": runs,
        "changed_over_full_time_ratio": ratio,
        "unchanged_over_full_time_ratio": runs["unchanged"]["seconds"] / runs["full"]["seconds"],
        "load_average_end": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
