"""auctionsim: a fast, reproducible ad-auction simulator for auto-bidding research.

The package is layered the way data flows: configuration (:mod:`auctionsim.config`,
:mod:`auctionsim.presets`) -> traffic (:mod:`auctionsim.traffic`) -> auction kernels
(:mod:`auctionsim.mechanisms`, :mod:`auctionsim.kernel`) -> episode state
(:mod:`auctionsim.market`) -> environments (:mod:`auctionsim.envs`). Property checks for users'
own mechanisms and bidders live in :mod:`auctionsim.testing` (needs ``hypothesis``, the
``testing`` extra; not imported here).
"""

from auctionsim.config import (
    CustomMechanism,
    ExposureModel,
    MarketConfig,
    Mechanism,
    Population,
    TrafficConfig,
    mechanism_names,
    register_mechanism,
)
from auctionsim.errors import (
    ActionError,
    ActionTypeError,
    AuctionSimError,
    ConfigError,
    EpisodeOverError,
    MechanismError,
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
    "CustomMechanism",
    "EpisodeMetrics",
    "EpisodeOverError",
    "ExplicitTraffic",
    "ExposureModel",
    "ImpressionLog",
    "Market",
    "MarketConfig",
    "MarketTickStats",
    "Mechanism",
    "MechanismError",
    "Population",
    "Scenario",
    "TickResult",
    "TickValues",
    "TrafficConfig",
    "mechanism_names",
    "register_mechanism",
    "warm_up",
]
