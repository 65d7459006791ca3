"""lmrec: a recommender system in which pretrained language models are first-class.

The names a user needs most are importable from here; they load lazily, so ``import lmrec`` does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Dataset": "lmrec.data",
    "Interactions": "lmrec.data",
    "ItemCatalog": "lmrec.data",
    "Split": "lmrec.data",
    "leave_one_out": "lmrec.data",
    "load_dataset": "lmrec.data.loaders:load",
    "Recommender": "lmrec.models",
    "load_model": "lmrec.models",
    "evaluate": "lmrec.eval",
    "make_text_encoder": "lmrec.encoders",
    "create_app": "lmrec.serve",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'lmrec' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr or name)
