"""auctionsim: a fast, reproducible ad-auction simulator for auto-bidding research.

The package is layered the way data flows: configuration (:mod:`auctionsim.config`,
:mod:`auctionsim.presets`) -> traffic (:mod:`auctionsim.traffic`) -> auction kernels
(:mod:`auctionsim.mechanisms`, :mod:`auctionsim.kernel`) -> episode state
(:mod:`auctionsim.market`) -> environments (:mod:`auctionsim.envs`).
"""

from auctionsim.config import ExposureModel, MarketConfig, Mechanism, Population, TrafficConfig
from auctionsim.errors import (
    ActionError,
    ActionTypeError,
    AuctionSimError,
    ConfigError,
    EpisodeOverError,
)
from auctionsim.market import ImpressionLog, Market, MarketTickStats, TickResult, TickValues, warm_up
from auctionsim.metrics import EpisodeMetrics
from auctionsim.presets import Scenario
from auctionsim.traffic import ExplicitTraffic

__version__ = "0.1.0"

__all__ = [
    "ActionError",
    "ActionTypeError",
    "AuctionSimError",
    "ConfigError",
    "EpisodeMetrics",
    "EpisodeOverError",
    "ExplicitTraffic",
    "ExposureModel",
    "ImpressionLog",
    "Market",
    "MarketConfig",
    "MarketTickStats",
    "Mechanism",
    "Population",
    "Scenario",
    "TickResult",
    "TickValues",
    "TrafficConfig",
    "warm_up",
]
