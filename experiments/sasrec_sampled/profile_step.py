"""Where one SASRec training step's time goes on a 100,000-item catalogue (full vs sampled softmax).

Builds the network and one batch of windows the way `SASRec.fit` does (random tokens, 128 windows
of 50, every position a target) and times forward, loss, backward and the AdamW step separately,
then prints torch.profiler's top operators for the sampled step.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python experiments/sasrec_sampled/profile_step.py --threads 1

Finding (2026-12-06, one thread): the sampled step took 2.7 s against the full softmax's 15 s, and
most of the 2.7 s was element-wise passes over the (6,400, 6,912) logits (division by the
temperature, two concatenations, out-of-place masks), not the product. Building the logits once
and in place (`SampledSoftmax`) brought the step to 0.94 s (full: 12-13.6 s).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lmrec.models.sasrec_net import SASRecNet
from lmrec.train.losses import FullSoftmaxCE, SampledSoftmax
from lmrec.train.negatives import PopularityNegatives


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    counts = rng.zipf(1.3, args.items).clip(max=10_000)
    net = SASRecNet(args.items)
    x = torch.from_numpy(rng.integers(1, args.items + 1, (128, 50)))
    y = torch.from_numpy(rng.integers(0, args.items, (128, 50)))
    negatives = PopularityNegatives(counts, 512)
    gen = torch.Generator().manual_seed(0)
    ce, sampled = FullSoftmaxCE(), SampledSoftmax()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def sampled_loss(states: torch.Tensor, w: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        neg, log_q = negatives.draw(gen)
        q = negatives.log_pos_q[target]
        return sampled(states, w[target], w[neg], pos_log_q=q, neg_log_q=log_q, pos_ids=target, neg_ids=neg)

    for mode in ("sampled", "full"):
        parts = {"forward": 0.0, "loss": 0.0, "backward": 0.0, "step": 0.0}
        for step in range(args.steps):
            t0 = time.perf_counter()
            hidden = net(x)
            t1 = time.perf_counter()
            keep = y >= 0
            target, w = y[keep], net.item_weights()
            loss = ce(hidden[keep] @ w.T, target) if mode == "full" else sampled_loss(hidden[keep], w, target)
            t2 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t3 = time.perf_counter()
            opt.step()
            t4 = time.perf_counter()
            if step:
                for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                    parts[k] += v / (args.steps - 1)
        print(mode, {k: round(v, 3) for k, v in parts.items()}, "total", round(sum(parts.values()), 3))
    with torch.profiler.profile() as prof:
        for _ in range(2):
            hidden = net(x)
            target, w = y[y >= 0], net.item_weights()
            loss = sampled_loss(hidden[y >= 0], w, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))


if __name__ == "__main__":
    main()
