"""One generic training loop with callbacks, and losses as separate modules."""

from lmrec.train.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    LogMetrics,
    ProgressBar,
    TrainState,
)
from lmrec.train.loop import fit_loop
from lmrec.train.losses import BPRLoss, FullSoftmaxCE, InfoNCE, SampledSoftmax
from lmrec.train.seeding import seeded

__all__ = [
    "BPRLoss",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "FullSoftmaxCE",
    "InfoNCE",
    "LogMetrics",
    "ProgressBar",
    "SampledSoftmax",
    "TrainState",
    "fit_loop",
    "seeded",
]
