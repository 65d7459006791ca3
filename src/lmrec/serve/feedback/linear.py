"""A linear model of the click probability of a shown item, with a Gaussian posterior for exploration.

Bayesian linear regression with a ridge prior centred on ``prior_mean`` (Agrawal & Goyal, 2013,
"Thompson sampling for contextual bandits with linear payoffs")::

    A = l2 * I + sum x x^T          b = l2 * prior_mean + sum r x
    theta_hat = A^-1 b              theta ~ N(theta_hat, noise^2 A^-1)   (a posterior sample)

One model is shared by every item and user (the features carry what is specific to them), so it
learns from the first impressions on and applies to items it never saw. Its state is two arrays and a
count, saved as ``.npz`` with a ``.json`` of the feature names (no pickles).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["LinearThompson"]


class LinearThompson:
    """Online Bayesian linear regression over named features.

    Args:
        features: the feature names (their order is the columns of every ``x``).
        prior_mean: (f,) the weights before any update.
        l2: prior precision (ridge penalty), > 0.
        noise: posterior sample scale, > 0.

    Attributes:
        A_: (f, f) precision matrix.
        b_: (f,) precision-weighted mean.
        n_updates_: rows absorbed so far.
    """

    def __init__(self, features: Sequence[str], prior_mean: np.ndarray, *, l2: float = 1.0, noise: float = 0.1) -> None:
        prior = np.asarray(prior_mean, dtype=np.float64)
        if prior.shape != (len(features),):
            raise ValueError(f"prior_mean has shape {prior.shape}, expected ({len(features)},)")
        if not l2 > 0 or not noise > 0:
            raise ValueError(f"l2 and noise must be > 0, got l2={l2}, noise={noise}")
        self.features = tuple(features)
        self.l2 = float(l2)
        self.noise = float(noise)
        self.A_ = self.l2 * np.eye(len(self.features))
        self.b_ = self.l2 * prior
        self.n_updates_ = 0
        self._refresh()

    def _refresh(self) -> None:
        self._mean = np.linalg.solve(self.A_, self.b_)
        # A^-1 = L^-T L^-1 with A = L L^T: a sample is mean + noise * L^-T z
        self._chol = np.linalg.cholesky(self.A_)

    @property
    def mean(self) -> np.ndarray:
        """(f,) the posterior mean of the weights."""
        return self._mean

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """(f,) one draw of the weights from the posterior."""
        z = rng.standard_normal(len(self.features))
        return self._mean + self.noise * np.linalg.solve(self._chol.T, z)

    def update(self, x: np.ndarray, rewards: np.ndarray) -> None:
        """Absorb rows ``x`` (m, f) with rewards (m,)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, len(self.features))
        r = np.asarray(rewards, dtype=np.float64).reshape(-1)
        if len(r) != len(x):
            raise ValueError(f"update: {len(x)} rows but {len(r)} rewards")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(r))):
            raise ValueError("update: non-finite features or rewards")
        self.A_ += x.T @ x
        self.b_ += x.T @ r
        self.n_updates_ += len(r)
        self._refresh()

    def copy(self) -> LinearThompson:
        """An independent copy (the arrays copied), e.g. to save outside a lock while updates go on."""
        other = LinearThompson.__new__(LinearThompson)
        other.features, other.l2, other.noise = self.features, self.l2, self.noise
        other.A_, other.b_, other.n_updates_ = self.A_.copy(), self.b_.copy(), self.n_updates_
        other._mean, other._chol = self._mean.copy(), self._chol.copy()
        return other

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write ``<path>.npz`` (A, b) and ``<path>.json`` (features, settings, count), each atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, A=self.A_, b=self.b_)
        os.replace(tmp, path.with_suffix(".npz"))
        meta = {"features": list(self.features), "l2": self.l2, "noise": self.noise, "n_updates": self.n_updates_}
        tmp_json = path.with_name(path.name + ".tmp.json")
        tmp_json.write_text(json.dumps(meta))
        os.replace(tmp_json, path.with_suffix(".json"))

    @classmethod
    def load(cls, path: str | Path, features: Sequence[str], *, noise: float = 0.1) -> LinearThompson:
        """Read what `save` wrote.

        Raises:
            ValueError: the files are missing, unreadable, or were written for other features.
        """
        path = Path(path)
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            with np.load(path.with_suffix(".npz"), allow_pickle=False) as arrays:
                a, b = np.asarray(arrays["A"], np.float64), np.asarray(arrays["b"], np.float64)
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"cannot read the re-ranker state {path}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("features") != list(features):
            got = meta.get("features") if isinstance(meta, dict) else meta
            raise ValueError(f"the re-ranker state {path} has features {got}, expected {list(features)}")
        f = len(features)
        if a.shape != (f, f) or b.shape != (f,) or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            raise ValueError(
                f"the re-ranker state {path} holds arrays of shapes {a.shape}, {b.shape}; expected ({f}, {f}), ({f},)"
            )
        out = cls(features, np.zeros(f), l2=float(meta.get("l2", 1.0)), noise=noise)
        out.A_, out.b_, out.n_updates_ = a, b, int(meta.get("n_updates", 0))
        try:
            out._refresh()
        except np.linalg.LinAlgError as exc:
            raise ValueError(f"the re-ranker state {path} is not a valid posterior: {exc}") from exc
        return out
