"""Named markets: AuctionNet's and large populations.

``get(name, **overrides)`` returns a :class:`Scenario` (market config + population); keyword
overrides replace fields of the market config, and ``scale_budgets=True`` scales the budgets
with the impressions per episode. ``names()`` lists the presets.

* ``auctionnet``: AuctionNet's market, calibrated to its published generator: 48 advertisers =
  6 categories x 8 with AuctionNet's own budgets and CPA targets (category = id // 8), 48 ticks,
  500,000 impressions over AuctionNet's daily traffic curve, its pValue, sigma and conversion
  models (:class:`auctionsim.config.TrafficConfig` defaults), GSP over 3 slots with AuctionNet's
  chained exposure (1.0, 0.8, 0.6 with continuity: slot 3 seen 48% of the time), reserve 0.01
  (AuctionNet's engine default; its evaluation config uses 0.0001), bidding stops below 0.1 of
  budget left. ``benchmarks/fidelity.py`` measures how close it is.
* ``large-1k``: 1,000 advertisers in 20 categories, 1,000,000 impressions, 64 candidates per
  impression.
* ``large-100k``: 100,000 advertisers in 100 categories, 5,000,000 impressions, 64 candidates.

The large presets inherit everything of ``auctionnet`` but the population and the contest: the
traffic curve, pValue/sigma/conversion models (the lowest id of each category follows the
category curve), exposure model, mechanism and reserve. Their categories, budgets and CPA
targets are drawn uniformly, keyed by id, from AuctionNet's ranges (budgets 2,000-4,850, CPA
targets 60-130), budgets scaled by the impressions available per advertiser, ``(impressions /
N) / (500,000 / 48)``, so budgets bind about as often as in AuctionNet whatever the size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from auctionsim import rng
from auctionsim.config import MarketConfig, Population
from auctionsim.errors import ConfigError

__all__ = [
    "AUCTIONNET_BUDGETS",
    "AUCTIONNET_CPA_TARGETS",
    "Scenario",
    "auctionnet_population",
    "large_population",
    "get",
    "names",
]

# AuctionNet's 48 advertisers (category = index // 8), as published with its engine.
AUCTIONNET_BUDGETS = (
    2900, 4350, 3000, 2400, 4800, 2000, 2050, 3500,
    4600, 2000, 2800, 2350, 2050, 2900, 4750, 3450,
    2000, 3500, 2200, 2700, 3100, 2100, 4850, 4100,
    2000, 4800, 3050, 4250, 2850, 2250, 2000, 3900,
    2000, 3250, 4450, 3550, 2700, 2100, 4650, 2000,
    3400, 2650, 2300, 4100, 4800, 4450, 2000, 2050,
)
AUCTIONNET_CPA_TARGETS = (
    100, 70, 90, 110, 60, 130, 120, 80,
    70, 130, 100, 110, 120, 90, 60, 80,
    130, 80, 110, 100, 90, 120, 60, 70,
    120, 60, 90, 70, 100, 110, 130, 80,
    120, 90, 70, 80, 100, 110, 60, 130,
    90, 100, 110, 80, 60, 70, 130, 120,
)
AUCTIONNET_BUDGET_RANGE = (float(min(AUCTIONNET_BUDGETS)), float(max(AUCTIONNET_BUDGETS)))
AUCTIONNET_CPA_RANGE = (float(min(AUCTIONNET_CPA_TARGETS)), float(max(AUCTIONNET_CPA_TARGETS)))
_AUCTIONNET_IMPRESSIONS_PER_ADVERTISER = 500_000 / 48
_POPULATION_SEED = 20241210  # fixed: a preset population is the same in every run


@dataclass(frozen=True, eq=False)
class Scenario:
    """A market configuration together with its advertisers."""

    name: str
    market: MarketConfig
    population: Population
    description: str


def auctionnet_population() -> Population:
    """AuctionNet's 48 advertisers: ids 0..47, category ``id // 8``, AuctionNet's budgets and CPA
    targets (:data:`AUCTIONNET_BUDGETS`, :data:`AUCTIONNET_CPA_TARGETS`)."""
    index = np.arange(48)
    return Population(
        ids=index,
        budgets=np.array(AUCTIONNET_BUDGETS, dtype=np.float64),
        cpa_targets=np.array(AUCTIONNET_CPA_TARGETS, dtype=np.float64),
        categories=index // 8,
        n_categories=6,
    )


def large_population(n_advertisers: int, n_categories: int, impressions_per_episode: int) -> Population:
    """``n_advertisers`` advertisers (ids 0..N-1) with categories, budgets and CPA targets drawn
    uniformly, keyed by id, from AuctionNet's ranges; budgets scaled as described above."""
    if n_advertisers < 1 or n_categories < 1:
        raise ConfigError(f"n_advertisers and n_categories must be >= 1, got {n_advertisers}, {n_categories}")
    ids = np.arange(n_advertisers, dtype=np.int64)
    draws = rng.uniform_array(
        rng.stream_keys(_POPULATION_SEED, 0, 0, ids), np.arange(3, dtype=np.int64)
    )  # (N, 3): category, budget, CPA target
    scale = (impressions_per_episode / n_advertisers) / _AUCTIONNET_IMPRESSIONS_PER_ADVERTISER
    budget_low, budget_high = AUCTIONNET_BUDGET_RANGE
    cpa_low, cpa_high = AUCTIONNET_CPA_RANGE
    return Population(
        ids=ids,
        budgets=scale * (budget_low + (budget_high - budget_low) * draws[:, 1]),
        cpa_targets=np.round(cpa_low + (cpa_high - cpa_low) * draws[:, 2], 2),
        categories=np.minimum((draws[:, 0] * n_categories).astype(np.int64), n_categories - 1),
        n_categories=n_categories,
    )


def _auctionnet() -> Scenario:
    return Scenario("auctionnet", MarketConfig(), auctionnet_population(), "AuctionNet: 48 advertisers, 500k impressions, GSP")


def _large(name: str, n_advertisers: int, n_categories: int, impressions: int) -> Callable[[], Scenario]:
    def build() -> Scenario:
        market = MarketConfig(impressions_per_episode=impressions, candidates_per_impression=64)
        population = large_population(n_advertisers, n_categories, impressions)
        description = f"{n_advertisers:,} advertisers, {impressions:,} impressions, 64 candidates per impression"
        return Scenario(name, market, population, description)

    return build


_PRESETS: dict[str, Callable[[], Scenario]] = {
    "auctionnet": _auctionnet,
    "large-1k": _large("large-1k", 1_000, 20, 1_000_000),
    "large-100k": _large("large-100k", 100_000, 100, 5_000_000),
}


def names() -> list[str]:
    """Names of the presets."""
    return list(_PRESETS)


def get(name: str, scale_budgets: bool = False, **overrides: object) -> Scenario:
    """The preset ``name``, with ``overrides`` replacing fields of its :class:`MarketConfig`.

    Args:
        name: one of :func:`names`.
        scale_budgets: multiply every budget by ``impressions_per_episode`` (after overrides)
            over the preset's own, so that budgets bind about as often as in the full preset
            when a market is shrunk (or grown); CPA targets are unchanged.
        overrides: :class:`MarketConfig` fields, e.g. ``impressions_per_episode=24_000``.
    """
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(_PRESETS)}")
    if not isinstance(scale_budgets, bool):
        raise ConfigError(f"scale_budgets must be True or False, got {scale_budgets!r}")
    scenario = _PRESETS[name]()
    if not overrides:
        return scenario
    fields = {f.name for f in dataclasses.fields(MarketConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown MarketConfig field {unknown[0]!r} in overrides; fields are {', '.join(sorted(fields))}")
    market = dataclasses.replace(scenario.market, **overrides)
    if market.candidates_per_impression is not None and market.candidates_per_impression > len(scenario.population):
        raise ConfigError(
            f"candidates_per_impression={market.candidates_per_impression} exceeds the preset's "
            f"{len(scenario.population)} advertisers"
        )
    population = scenario.population
    if scale_budgets:
        scale = market.impressions_per_episode / scenario.market.impressions_per_episode
        population = dataclasses.replace(population, budgets=population.budgets * scale)
    return dataclasses.replace(scenario, market=market, population=population)
