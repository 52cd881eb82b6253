"""The models of the study: fully connected networks and random-features regression."""

from widthlab.models.mlp import MLP
from widthlab.models.random_features import RandomFeaturesModel, draw_features, feature_map

__all__ = ["MLP", "RandomFeaturesModel", "draw_features", "feature_map"]
