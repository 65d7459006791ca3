"""Produced RESULTS.md §6 (lm), cold-item split: "Tuning the encoder on co-purchases".

Does tuning the text encoder on co-purchases lift content scoring of cold items? (a probe)

On the cold-item split of Amazon Office (as ``lm_bench.py cold``), MiniLM (`TrainableTextEncoder`, fully
or with LoRA adapters) is trained contrastively on pairs of warm items that follow each other in a
user's training sequence (in-batch negatives, symmetric InfoNCE, a repeated item in the batch masked
out as a negative); cold items never occur in a pair. Afterwards every item text is encoded and scored
as in ``cold_content_check.py`` (whitened, user = mean of the history's vectors), next to the untuned
encoder at the same token length and TF-IDF.

Usage::

    PYTHONPATH=benchmarks python experiments/cold_encoder_probe.py --seed 0 --pairs 4096 --max-len 64 --mode full --lr 2e-5
    PYTHONPATH=benchmarks python experiments/cold_encoder_probe.py --seed 0 --pairs 4096 --max-len 64 --mode lora --lr 1e-4
"""

from __future__ import annotations

import argparse
import time

import common
import lm_bench
import numpy as np
import torch
import torch.nn.functional as F
from cold_content_check import FrozenContent
from cold_transfer_probe import figures
from tqdm.auto import tqdm

from lmrec.encoders.trainable import TrainableTextEncoder
from lmrec.models import TfidfRecommender
from lmrec.models.lm.text import item_fields, item_texts


def copurchase_pairs(train) -> np.ndarray:
    """(n, 2) distinct unordered pairs of different items that follow each other in a user's sequence."""
    order = train.time_order()
    users, items = train.users[order], train.items[order]
    same = users[1:] == users[:-1]
    pairs = np.stack([items[:-1][same], items[1:][same]], axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(np.sort(pairs, axis=1), axis=0)


def tune(
    encoder: TrainableTextEncoder, texts: list[str], pairs: np.ndarray, lr: float, batch: int, scale: float
) -> list[float]:
    """One pass of symmetric in-batch InfoNCE over ``pairs``; the loss of every step."""
    opt = torch.optim.AdamW(encoder.trainable_parameters(), lr=lr, weight_decay=0.01)
    losses = []
    for start in tqdm(range(0, len(pairs), batch), desc="tune", unit="step"):
        b = pairs[start : start + batch]
        left = encoder(**encoder.tokenize([texts[i] for i in b[:, 0]]))  # (B, D) unit
        right = encoder(**encoder.tokenize([texts[i] for i in b[:, 1]]))
        logits = scale * left @ right.T  # (B, B)
        repeat = torch.from_numpy(b[:, 1][None, :] == b[:, 1][:, None]) & ~torch.eye(len(b), dtype=torch.bool)
        logits = logits.masked_fill(repeat, -1e4)
        target = torch.arange(len(b))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=4096, help="co-purchase pairs drawn for the one pass")
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--mode", choices=["full", "lora"], default="full")
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--scale", type=float, default=20.0, help="inverse temperature of the InfoNCE logits")
    parser.add_argument("--threads", type=int, default=1)
    common.add_office_arg(parser)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    data = common.load_data("office", args.office)
    split = lm_bench.make_split(data, "cold", args.seed)
    texts, _ = item_texts(data.items, data.interactions.item_map, item_fields(data.items, None))
    train = data.with_interactions(split.train)
    pool = np.flatnonzero(np.bincount(split.train.items, minlength=split.train.n_items) == 0)
    all_pairs = copurchase_pairs(split.train)
    pairs = all_pairs[np.random.default_rng(args.seed).permutation(len(all_pairs))[: args.pairs]]

    base = TrainableTextEncoder(None, max_seq_length=args.max_len)
    with torch.no_grad():
        sample = pairs[: args.batch]
        left = base(**base.tokenize([texts[i] for i in sample[:, 0]]))
        right = base(**base.tokenize([texts[i] for i in sample[:, 1]]))
    paired, every = float((left * right).sum(1).mean()), float((left @ right.T).mean())
    print(
        f"{len(all_pairs)} co-purchase pairs; untuned cosine of a batch: pairs {paired:.3f}, "
        f"all combinations {every:.3f}",
        flush=True,
    )
    rows = {
        "TF-IDF": figures(TfidfRecommender().fit(train), split, pool),
        f"MiniLM untuned, {args.max_len} tokens": figures(
            FrozenContent(base.encode(texts), whiten=True).fit(train), split, pool
        ),
    }
    encoder = TrainableTextEncoder(None, max_seq_length=args.max_len)
    encoder.train_mode(lora=args.mode == "lora", r=8, alpha=16)
    start = time.perf_counter()
    losses = tune(encoder, texts, pairs, args.lr, args.batch, args.scale)
    tune_s = time.perf_counter() - start
    print(
        f"tuned in {tune_s:.0f} s; InfoNCE loss first step {losses[0]:.3f}, mean of the last ten "
        f"{np.mean(losses[-10:]):.3f} (chance: log {args.batch} = {np.log(args.batch):.3f})",
        flush=True,
    )
    rows[f"MiniLM tuned ({args.mode}, lr {args.lr:g}, {len(pairs)} pairs)"] = figures(
        FrozenContent(encoder.encode(texts), whiten=True).fit(train), split, pool
    )
    print(f"| scorer (cold split, seed {args.seed}) | valid Recall@10 | Recall@10, all items | Recall@10, new items |")
    print("|---|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['valid']:.4f} | {r['all']:.4f} | {r['new']:.4f} |")


if __name__ == "__main__":
    main()
