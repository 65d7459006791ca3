"""Recommenders on one contract: baselines and the language-model interest models."""

from lmrec.models.base import MODEL_REGISTRY, Recommender, load_model, register, top_k
from lmrec.models.bundle import ModelBundle, VectorRecommender
from lmrec.models.popularity import Popularity

__all__ = ["MODEL_REGISTRY", "ModelBundle", "Popularity", "VectorRecommender", "Recommender", "load_model", "register", "top_k"]
