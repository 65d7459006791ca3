"""Implicit-feedback matrix factorisation through the ``implicit`` library (CPU): ALS or BPR."""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np

from lmrec.data.dataset import Dataset
from lmrec.models.base import Recommender, register

# implicit (compiled extensions) and threadpoolctl are imported in fit: only MF training needs them.

__all__ = ["MatrixFactorization"]

log = logging.getLogger(__name__)


@register("mf")
class MatrixFactorization(Recommender):
    """``score(u, i) = U_u . V_i`` learned by implicit's ALS (Hu et al. 2008) or BPR (Rendle et al. 2009).

    The training matrix is binary; ALS weighs observed entries with confidence ``1 + alpha``.
    implicit's BPR learns an item bias, kept as the last factor column (the user side holds 1
    there), so the dot product still gives the full score. Note that implicit's BPR draws negative
    items in proportion to their popularity (it samples the item of a random interaction), which
    pushes popular items down (benchmarks/baselines_ml100k.py compares it with uniform-negative BPR
    and ALS).

    ``regularization`` and ``iterations`` default to None, which picks the algorithm's own default
    (ALS: 25.0 and 15; BPR: 0.01 and 150). These, like ``factors``, ``alpha`` and
    ``learning_rate``, were chosen on the validation part of a MovieLens-100K 8:1:1 random split.

    BLAS is limited to one thread while fitting (implicit parallelises itself and warns otherwise).

    Args:
        algorithm: ``"als"`` or ``"bpr"``.
        factors: latent dimensions.
        regularization: L2 penalty (None: 25.0 for ALS, 0.01 for BPR).
        iterations: ALS sweeps or BPR epochs (None: 15 for ALS, 150 for BPR).
        alpha: ALS confidence scaling for observed entries.
        learning_rate: BPR's SGD step size.
        num_threads: implicit's worker threads (0: all cores).
        show_progress: implicit's progress bar.
        random_state: seed for the initial factors and BPR's sampling.
    """

    def __init__(
        self,
        algorithm: Literal["als", "bpr"] = "als",
        factors: int = 64,
        regularization: float | None = None,
        iterations: int | None = None,
        alpha: float = 2.5,
        learning_rate: float = 0.003,
        num_threads: int = 0,
        show_progress: bool = False,
        random_state: int | None = 0,
    ) -> None:
        self.algorithm = algorithm
        self.factors = factors
        self.regularization = regularization
        self.iterations = iterations
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.num_threads = num_threads
        self.show_progress = show_progress
        self.random_state = random_state

    def _validate(self) -> None:
        if self.algorithm not in ("als", "bpr"):
            raise ValueError(f"MatrixFactorization algorithm must be 'als' or 'bpr', got {self.algorithm!r}")
        for name, value in (("factors", self.factors), ("iterations", self._iterations())):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"MatrixFactorization {name} must be an integer >= 1, got {value!r}")
        if self._regularization() < 0:
            raise ValueError(f"MatrixFactorization regularization must be >= 0, got {self.regularization!r}")
        if self.alpha <= 0:
            raise ValueError(f"MatrixFactorization alpha must be > 0, got {self.alpha!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"MatrixFactorization learning_rate must be > 0, got {self.learning_rate!r}")
        if self.num_threads < 0:
            raise ValueError(f"MatrixFactorization num_threads must be >= 0, got {self.num_threads!r}")

    _DEFAULTS = {"als": (25.0, 15), "bpr": (0.01, 150)}  # (regularization, iterations)

    def _regularization(self) -> float:
        return self._DEFAULTS[self.algorithm][0] if self.regularization is None else self.regularization

    def _iterations(self) -> int:
        return self._DEFAULTS[self.algorithm][1] if self.iterations is None else self.iterations

    def _fit(self, dataset: Dataset) -> None:
        self._validate()
        from threadpoolctl import threadpool_limits

        user_items = self.seen_.astype(np.float32).tocsr()
        # implicit checks the BLAS thread count when the model is built and parallelises itself
        with threadpool_limits(limits=1, user_api="blas"):
            model = self._make_model()
            model.fit(user_items, show_progress=self.show_progress)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def _make_model(self):
        if self.algorithm == "als":
            from implicit.cpu.als import AlternatingLeastSquares

            return AlternatingLeastSquares(
                factors=int(self.factors),
                regularization=float(self._regularization()),
                alpha=float(self.alpha),
                iterations=int(self._iterations()),
                num_threads=int(self.num_threads),
                random_state=self.random_state,
            )
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            factors=int(self.factors),
            learning_rate=float(self.learning_rate),
            regularization=float(self._regularization()),
            iterations=int(self._iterations()),
            num_threads=int(self.num_threads),
            random_state=self.random_state,
        )

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        user_idx = self._check_users(user_idx)
        return self.user_factors_[user_idx] @ self.item_factors_.T

    def user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        """(n, d) user factors; ``score_all = user_vectors @ item_vectors().T``."""
        return self.user_factors_[self._check_users(user_idx)]

    def item_vectors(self) -> np.ndarray:
        """(n_items, d) item factors (with BPR's item bias as the last column)."""
        return self.item_factors_

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]
