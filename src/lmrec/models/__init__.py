"""Recommenders on one contract: baselines and the language-model interest models."""

from lmrec.models.base import MODEL_REGISTRY, Recommender, load_model, register, top_k
from lmrec.models.popularity import Popularity

__all__ = ["MODEL_REGISTRY", "Popularity", "Recommender", "load_model", "register", "top_k"]
