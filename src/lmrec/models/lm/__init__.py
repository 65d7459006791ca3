"""The language-model user-interest model: ``I(u, i) = cos(v_u, v_i)`` in a pretrained LM's space."""

from lmrec.models.lm.explain import explain
from lmrec.models.lm.item_tower import ItemTower, MoEAdaptor, fit_whitening
from lmrec.models.lm.model import LMRecommender
from lmrec.models.lm.scenario import LMScenarioRecommender
from lmrec.models.lm.user_tower import UserTower, time_buckets

__all__ = [
    "ItemTower", "LMRecommender", "LMScenarioRecommender", "MoEAdaptor", "UserTower", "explain", "fit_whitening",
    "time_buckets",
]
