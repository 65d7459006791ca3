"""Produced RESULTS.md §6 (lm), cold-item split: the learned-metric row of "How far content alone goes".

Can a metric learned on warm items improve frozen content similarity for cold items?

On the cold-item split of Amazon Office (seed 0), user = unit mean of the whitened frozen MiniLM
vectors of their history, item = its whitened vector, and a learned map ``f`` is applied to both
before the cosine: ``diag`` (a per-dimension scale, as many parameters as dimensions: it cannot
memorise items), ``lowrank`` (identity + a rank-r correction) or ``both``. ``f`` is trained with the
full softmax over warm items on every (history prefix -> next item) pair of the training rows, and
the epoch with the best validation Recall@10 (validation items are cold too) is tested. Epoch -1 is
the untrained identity.

Usage: ``PYTHONPATH=benchmarks python experiments/cold_metric_probe.py diag --epochs 15``
"""

from __future__ import annotations

import argparse
import json

import common
import lm_bench
import numpy as np
import torch
import torch.nn.functional as F

from lmrec.eval import evaluate
from lmrec.models.base import Recommender
from lmrec.models.lm import persist
from lmrec.models.lm.item_tower import fit_whitening
from lmrec.models.lm.text import encode_texts, item_fields, item_texts


class Metric(torch.nn.Module):
    def __init__(self, k: int, mode: str, rank: int) -> None:
        super().__init__()
        self.mode = mode
        self.log_scale = torch.nn.Parameter(torch.zeros(k))
        self.a = torch.nn.Parameter(torch.zeros(k, rank))
        self.b = torch.nn.Parameter(torch.randn(k, rank, generator=torch.Generator().manual_seed(0)) * 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x * self.log_scale.exp() if self.mode in ("diag", "both") else x
        if self.mode in ("lowrank", "both"):
            out = out + (x @ self.b) @ self.a.T
        return F.normalize(out, dim=-1)


class Probe(Recommender):
    def __init__(self, x: np.ndarray, metric: Metric) -> None:
        self.x, self.metric = x, metric

    def _fit(self, dataset) -> None:
        pass

    @torch.no_grad()
    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        users = torch.from_numpy(np.asarray(self.seen_[user_idx] @ self.x, dtype=np.float32))
        items = self.metric(torch.from_numpy(self.x))
        return (self.metric(F.normalize(users, dim=-1)) @ items.T).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["diag", "lowrank", "both"])
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--max-len", type=int, default=50)
    common.add_office_arg(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = common.load_data("office", args.office)
    split = lm_bench.make_split(data, "cold", 0)
    texts, _ = item_texts(data.items, data.interactions.item_map, item_fields(data.items, None))
    vec = encode_texts(persist.build_encoder(None, None, "torch", None), texts, cache_dir=str(lm_bench.CACHE))
    mean, proj = fit_whitening(vec, eps=0.1)
    x = (vec - mean) @ proj
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    train = split.train
    order = train.time_order()
    users, items = train.users[order], train.items[order]
    bounds = np.searchsorted(users, np.arange(train.n_users + 1))
    prefixes, targets = [], []
    for u in range(train.n_users):
        seq = items[bounds[u] : bounds[u + 1]]
        for j in range(1, len(seq)):
            prefixes.append(x[seq[max(0, j - args.max_len) : j]].sum(axis=0))
            targets.append(seq[j])
    prefix = F.normalize(torch.from_numpy(np.stack(prefixes)), dim=-1)
    target = torch.as_tensor(np.asarray(targets))
    warm = torch.from_numpy(np.bincount(train.items, minlength=len(x)) > 0)
    xt = torch.from_numpy(x)
    metric = Metric(x.shape[1], args.mode, args.rank)
    probe = Probe(x, metric).fit(data.with_interactions(train))
    pool = np.flatnonzero(~warm.numpy())

    def recall(phase: str, item_pool=None) -> float:
        return evaluate(probe, split, phase=phase, ks=(10,), metrics=("recall",), item_pool=item_pool).metrics[
            "recall@10"
        ]

    best = (recall("valid"), {k: v.clone() for k, v in metric.state_dict().items()}, -1)
    print(f"epoch -1 (identity): valid recall@10 {best[0]:.4f}; {len(target)} training pairs", flush=True)
    optimizer = torch.optim.Adam(metric.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(args.epochs):
        total = 0.0
        for batch in torch.randperm(len(target), generator=gen).split(512):
            logits = (metric(prefix[batch]) @ metric(xt).T / 0.07).masked_fill(~warm, float("-inf"))
            loss = F.cross_entropy(logits, target[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss) * len(batch)
        valid = recall("valid")
        print(f"epoch {epoch}: loss {total / len(target):.4f} valid recall@10 {valid:.4f}", flush=True)
        if valid > best[0]:
            best = (valid, {k: v.clone() for k, v in metric.state_dict().items()}, epoch)
    metric.load_state_dict(best[1])
    probe.observe(split.valid)
    print(
        json.dumps(
            {
                "mode": args.mode,
                "rank": args.rank,
                "best_epoch": best[2],
                "valid_recall@10": round(best[0], 4),
                "test_recall@10": round(recall("test"), 4),
                "new_items_recall@10": round(recall("test", pool), 4),
            }
        )
    )


if __name__ == "__main__":
    main()
