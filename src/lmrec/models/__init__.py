"""Recommenders on one contract: baselines and the language-model interest models."""

from lmrec.models.base import MODEL_REGISTRY, Recommender, load_model, register, top_k
from lmrec.models.ease import EASE
from lmrec.models.itemknn import ItemKNN
from lmrec.models.lm import LMRecommender, LMScenarioRecommender
from lmrec.models.mf import MatrixFactorization
from lmrec.models.popularity import Popularity
from lmrec.models.sasrec import SASRec
from lmrec.models.tfidf import TfidfRecommender

__all__ = [
    "EASE",
    "MODEL_REGISTRY",
    "ItemKNN",
    "LMRecommender",
    "LMScenarioRecommender",
    "MatrixFactorization",
    "Popularity",
    "Recommender",
    "SASRec",
    "TfidfRecommender",
    "load_model",
    "register",
    "top_k",
]
