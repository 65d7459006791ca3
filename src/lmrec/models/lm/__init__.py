"""The language-model user-interest model: ``I(u, i) = cos(v_u, v_i)`` in a pretrained LM's space."""

from lmrec.models.lm.config import (
    ContinualConfig,
    EncoderConfig,
    FusionConfig,
    ItemTowerConfig,
    ObjectiveConfig,
    OptimConfig,
    ScenarioConfig,
    UserTowerConfig,
)
from lmrec.models.lm.explain import explain_recommendation
from lmrec.models.lm.item_tower import ItemTower, MoEAdaptor, fit_whitening
from lmrec.models.lm.model import LMRecommender
from lmrec.models.lm.scenario import LMScenarioRecommender
from lmrec.models.lm.user_tower import UserTower, time_buckets

__all__ = [
    "ContinualConfig",
    "EncoderConfig",
    "FusionConfig",
    "ItemTower",
    "ItemTowerConfig",
    "LMRecommender",
    "LMScenarioRecommender",
    "MoEAdaptor",
    "ObjectiveConfig",
    "OptimConfig",
    "ScenarioConfig",
    "UserTower",
    "UserTowerConfig",
    "explain_recommendation",
    "fit_whitening",
    "time_buckets",
]
