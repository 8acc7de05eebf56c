"""Bidders: the plug-in API (:mod:`agents.base`), baselines (:mod:`agents.baselines`), the
hindsight oracle (:mod:`agents.oracle`) and offline datasets (:mod:`agents.datasets`)."""

from agents.base import (
    AdvertiserFeedback,
    AdvertiserSpec,
    Bidder,
    BidderPolicy,
    FixedMultipliers,
    FunctionPolicy,
    MixedPopulation,
    PopulationPolicy,
    TorchPolicy,
)
from agents.baselines import CPAPacing, OnlineLP, PIDPacing

__all__ = [
    "AdvertiserFeedback",
    "AdvertiserSpec",
    "Bidder",
    "BidderPolicy",
    "CPAPacing",
    "FixedMultipliers",
    "FunctionPolicy",
    "MixedPopulation",
    "OnlineLP",
    "PIDPacing",
    "PopulationPolicy",
    "TorchPolicy",
]
