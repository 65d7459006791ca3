"""Encoding throughput and fidelity: PyTorch fp32 vs ONNX Runtime int8 on the Amazon Office items.

Encodes every item text of ``Office.item`` (template ``"{title}. {brand}. {categories}. {description}"``)
with the packaged all-MiniLM-L6-v2, once per backend, in one process, and reports items/s, the cosine
of each item's int8 vector to its fp32 vector, and how well the int8 top-10 neighbours of each item
recover the fp32 ones. Export and quantisation happen before timing (they are cached on disk).

Targets: int8 at least 2x faster; cosine >= 0.98 on every item; top-10 neighbour recall >= 0.9.

    .venv/bin/python benchmarks/encode_throughput.py                       # all 2,420 items
    .venv/bin/python benchmarks/encode_throughput.py --recipes all keep-down-proj --onnx-fp32

Writes ``benchmarks/out/encode_throughput.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import common
import numpy as np

TEMPLATE = "{title}. {brand}. {categories}. {description}"

log = logging.getLogger("encode_throughput")


def load_office_catalog(data_dir: Path):
    """The Office item catalogue in item-id order: lmrec's RecBole loader, else a direct pandas parse."""
    import pandas as pd

    from lmrec.data.catalog import ItemCatalog
    from lmrec.data.idmap import IdMap

    data_dir = common.office_dir(data_dir)
    try:
        from lmrec.data.loaders import load_recbole

        dataset = load_recbole(data_dir)
        catalog = dataset.items
        if catalog is None or not {"title", "brand", "categories", "description"} <= set(catalog.frame.columns):
            raise ValueError("catalogue without the expected text fields")
        source = "lmrec.data.loaders.load_recbole"
    except Exception as err:  # noqa: BLE001 - the loader is optional here
        log.info("load_recbole unavailable (%s); parsing Office.item with pandas", err)
        frame = pd.read_csv(
            data_dir / "Office.item", sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False
        )
        frame.columns = [c.split(":")[0] for c in frame.columns]
        frame = frame.set_index("item_id")
        catalog = ItemCatalog(frame, text_fields=["title", "brand", "categories", "description"])
        source = "pandas"
    ids = sorted(catalog.frame.index, key=lambda x: (len(x), x))  # numeric ids in numeric order
    return catalog, IdMap(ids), source


def neighbour_recall(reference: np.ndarray, candidate: np.ndarray, k: int = 10) -> np.ndarray:
    """Per item: share of its ``k`` nearest fp32 neighbours (itself excluded) found among the candidate's ``k``.

    Args:
        reference, candidate: (n, dim) unit rows.

    Returns:
        (n,) recall in [0, 1].
    """

    def topk(x: np.ndarray) -> np.ndarray:
        sims = x @ x.T  # (n, n)
        np.fill_diagonal(sims, -np.inf)
        return np.argpartition(-sims, k, axis=1)[:, :k]

    a, b = topk(reference), topk(candidate)
    return np.array([len(set(ra) & set(rb)) / k for ra, rb in zip(a, b)])


def interleaved_encode(
    encoders: dict, texts: list[str], batch_size: int, rounds: int
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Encode ``texts`` with every encoder, timing them in alternation.

    The texts are cut into ``rounds`` interleaved slices (every ``rounds``-th text, so each slice has
    the same length mix); each slice is encoded by every encoder in turn, the order rotating per round.
    On a shared CPU, load changes then hit every backend alike; the sum over slices is each backend's
    time for the whole catalogue.

    Returns:
        ``(vectors, seconds)`` per encoder key; vectors in text order.
    """
    keys = list(encoders)
    for enc in encoders.values():
        enc.encode(texts[:batch_size], batch_size=batch_size)  # warm-up: allocator, thread pools
    vectors = {k: np.zeros((len(texts), encoders[k].dim), np.float32) for k in keys}
    seconds = dict.fromkeys(keys, 0.0)
    for r in range(rounds):
        idx = np.arange(r, len(texts), rounds)
        chunk = [texts[i] for i in idx]
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            start = time.perf_counter()
            vectors[key][idx] = encoders[key].encode(chunk, batch_size=batch_size)
            seconds[key] += time.perf_counter() - start
        log.info("round %d/%d: %s", r + 1, rounds, {k: round(v, 1) for k, v in seconds.items()})
    return vectors, seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_office_arg(parser, "--data")
    parser.add_argument("--model", default=None, help="model path or name (default: packaged MiniLM)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="encode only the first N items")
    parser.add_argument("--recipes", nargs="+", default=["keep-down-proj", "all"], choices=["all", "keep-down-proj"])
    parser.add_argument("--onnx-fp32", action="store_true", help="also time the fp32 ONNX export")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved timing rounds")
    parser.add_argument("--export-dir", type=Path, default=common.OUT / "onnx")
    parser.add_argument("--out", type=Path, default=common.OUT / "encode_throughput.json")
    args = parser.parse_args(argv)
    # ONNX Runtime's quantiser logs every tensor at INFO on the root logger: keep the root at WARNING
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from lmrec.encoders import make_text_encoder
    from lmrec.encoders.templates import render_item_texts

    catalog, item_map, source = load_office_catalog(args.office)
    texts = render_item_texts(catalog, item_map, template=TEMPLATE)
    if args.limit:
        texts = texts[: args.limit]
    log.info("%d item texts from %s (mean %.0f characters)", len(texts), source, np.mean([len(t) for t in texts]))
    load_start = os.getloadavg()

    torch_enc = make_text_encoder(args.model, "torch")
    encoders = {"torch-fp32": torch_enc}
    export_seconds = {}
    if args.onnx_fp32:
        start = time.perf_counter()
        encoders["onnx-fp32"] = make_text_encoder(
            args.model, "onnx", export_dir=args.export_dir, num_threads=args.threads
        )
        export_seconds["onnx-fp32"] = time.perf_counter() - start
    for recipe in args.recipes:
        key = f"onnx-int8-{recipe}"
        start = time.perf_counter()
        encoders[key] = make_text_encoder(
            args.model, "onnx-int8", export_dir=args.export_dir, num_threads=args.threads, int8_recipe=recipe
        )
        export_seconds[key] = time.perf_counter() - start

    vectors, seconds = interleaved_encode(encoders, texts, args.batch_size, args.rounds)
    results: dict[str, dict] = {}
    for key, enc in encoders.items():
        results[key] = {"name": enc.name, "seconds": seconds[key], "items_per_s": len(texts) / seconds[key]}
        log.info("%-28s %7.1f items/s (%.1f s)", key, len(texts) / seconds[key], seconds[key])
    ref = vectors["torch-fp32"]
    norms = np.linalg.norm(ref, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4), "fp32 rows are not unit vectors"
    for key in encoders:
        if key == "torch-fp32":
            continue
        cos = (vectors[key] * ref).sum(axis=1)
        recall = neighbour_recall(ref, vectors[key], k=10)
        results[key].update(
            speedup_vs_torch=results["torch-fp32"]["seconds"] / results[key]["seconds"],
            cosine_min=float(cos.min()),
            cosine_p01=float(np.quantile(cos, 0.01)),
            cosine_mean=float(cos.mean()),
            items_below_0_98=int((cos < 0.98).sum()),
            top10_recall_mean=float(recall.mean()),
            items_with_top10_recall_ge_0_9=float((recall >= 0.9).mean()),
            items_with_identical_top10=float((recall == 1.0).mean()),
            export_seconds=export_seconds.get(key),
        )
    report = {
        "benchmark": "encode_throughput",
        "data": str(args.office),
        "item_source": source,
        "n_items": len(texts),
        "template": TEMPLATE,
        "batch_size": args.batch_size,
        "timing": f"{args.rounds} interleaved rounds, backend order rotating; warm-up excluded",
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg(),
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(results, indent=2))
    print(f"load average start {load_start}, end {os.getloadavg()}; written {args.out}")
    return report


if __name__ == "__main__":
    main()
