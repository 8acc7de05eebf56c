"""The contract between environments and the bidders that drive many advertisers at once.

A :class:`PopulationPolicy` maps the observations of the advertisers it manages, an ``(n, D)``
float32 array (see :mod:`auctionsim.envs.observations`), to their bid multipliers, an ``(n,)``
array; after each tick it may read its advertisers' results as a :class:`TickFeedback`. One
array call per tick serves 100,000 advertisers. Bidders live in the ``agents`` package; this
module only defines what environments expect of them, plus the simplest policy,
:class:`FixedMultipliers`, which environments use as their default population.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, replace

import numpy as np

from auctionsim.config import MarketConfig, Population
from auctionsim.market import ImpressionLog, TickResult, TickValues

__all__ = ["PolicyContext", "TickFeedback", "PopulationPolicy", "FixedMultipliers"]


@dataclass(frozen=True, eq=False)
class PolicyContext:
    """What a policy is told at the start of an episode.

    Attributes:
        population: the advertisers it manages, in the order of its observation rows.
        market: the market's configuration (ticks, impressions, mechanism, ...).
        market_size: number of advertisers in the whole market (the policy may manage a subset).
        feature_names: names of the observation columns.
        seed: the episode's seed, for the policy's own randomness (``None`` if unseeded).
    """

    population: Population
    market: MarketConfig
    market_size: int
    feature_names: tuple[str, ...]
    seed: int | None

    @property
    def expected_opportunities(self) -> float:
        """Impressions each advertiser is expected to contest in an episode:
        ``M x min(1, K / market_size)``."""
        candidates = self.market.candidates_per_impression
        share = 1.0 if candidates is None else candidates / self.market_size
        return self.market.impressions_per_episode * share


@dataclass(frozen=True, eq=False)
class TickFeedback:
    """A tick's results for the advertisers a policy manages (``(k,)`` arrays, its row order).

    The per-impression fields are filled only for policies with ``needs_impression_values``:
    ``impression_pvalues``/``impression_candidate`` are ``(n_impressions, k)``, and
    ``impression_log`` is the market-wide :class:`~auctionsim.market.ImpressionLog`.
    """

    tick: int
    n_ticks: int
    multipliers: np.ndarray
    opportunities: np.ndarray
    wins: np.ndarray
    exposures: np.ndarray
    conversions: np.ndarray
    spend: np.ndarray
    value_won: np.ndarray
    mean_bid: np.ndarray
    mean_pvalue: np.ndarray
    mean_least_winning_cost: np.ndarray
    budget_left: np.ndarray
    impression_pvalues: np.ndarray | None = None
    impression_candidate: np.ndarray | None = None
    impression_log: ImpressionLog | None = None

    _PER_ADVERTISER = (
        "multipliers", "opportunities", "wins", "exposures", "conversions", "spend", "value_won",
        "mean_bid", "mean_pvalue", "mean_least_winning_cost", "budget_left",
    )

    @classmethod
    def from_result(cls, result: TickResult, n_ticks: int, values: TickValues | None = None) -> "TickFeedback":
        """Feedback for every advertiser of the market, in population order."""
        per_advertiser = {name: getattr(result, name) for name in cls._PER_ADVERTISER}
        return cls(
            tick=result.tick,
            n_ticks=n_ticks,
            impression_pvalues=None if values is None else values.pvalues,
            impression_candidate=None if values is None else values.is_candidate,
            impression_log=result.log,
            **per_advertiser,
        )

    def subset(self, rows: np.ndarray) -> "TickFeedback":
        """The same feedback restricted to some advertisers (by row)."""
        changes = {name: getattr(self, name)[rows] for name in self._PER_ADVERTISER}
        if self.impression_pvalues is not None:
            changes["impression_pvalues"] = self.impression_pvalues[:, rows]
            changes["impression_candidate"] = self.impression_candidate[:, rows]
        return replace(self, **changes)


class PopulationPolicy(abc.ABC):
    """Bids for many advertisers at once. Subclass and implement :meth:`act`.

    Attributes:
        needs_impression_values: set to ``True`` to receive, in :meth:`observe`, the tick's
            per-impression pValues of the managed advertisers and the market's impression log
            (costs an extra pass over the tick's traffic).
    """

    needs_impression_values: bool = False

    def reset(self, context: PolicyContext) -> None:
        """Start an episode for ``context.population`` (default: nothing to do)."""

    @abc.abstractmethod
    def act(self, observations: np.ndarray) -> np.ndarray:
        """``(k, D)`` float32 observations -> ``(k,)`` bid multipliers (finite, >= 0)."""

    def observe(self, feedback: TickFeedback) -> None:
        """Read the tick's results (default: ignore them)."""


class FixedMultipliers(PopulationPolicy):
    """Every advertiser bids the same fixed multiplier all episode (per advertiser if an array).

    Args:
        multipliers: one value for everyone, or ``{advertiser id: multiplier}`` with ``default``
            for the others.
        default: multiplier of advertisers missing from the mapping.
    """

    def __init__(self, multipliers: float | dict[int, float] = 1.0, default: float = 1.0) -> None:
        self._multipliers = multipliers
        self._default = float(default)
        self._current = np.zeros(0)

    def reset(self, context: PolicyContext) -> None:
        ids = context.population.ids
        if isinstance(self._multipliers, dict):
            self._current = np.array([self._multipliers.get(int(i), self._default) for i in ids], dtype=np.float64)
        else:
            self._current = np.full(len(ids), float(self._multipliers))

    def act(self, observations: np.ndarray) -> np.ndarray:
        return self._current.copy()

