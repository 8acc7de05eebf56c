"""Unilateral deviations: one advertiser bids its own way while the population policy bids for
everyone else, compared with the population's own play on the same market episodes.

Notation (BPG paper, Section 2.2; "the paper" below): the population policy ``pi_theta`` bids
for every advertiser. ``G_i(theta)`` is advertiser ``i``'s expected return when everyone follows
it, ``G_i(pi_i; theta)`` its expected return when it alone follows ``pi_i``. Both are
estimated by averaging over market episodes (seeds). Every deviation is played on exactly the
market episodes the population played (common random numbers: same seed, same traffic, same
exposure and conversion draws), so the gain ``G_i(pi_i; theta) - G_i(theta)`` is estimated
from paired differences, with far less noise than either return.

Returns (``objective``):

* ``"value"``: value won, ``sum pValue x CPA target`` over exposed wins, with the budget as a
  hard cap: the paper's ``G_i`` (its reward ``r(s_t, a_t, i)``).
* ``"utility"``: value won minus spend (quasi-linear utility, also under the budget cap): the
  payoff of classical auction theory, used for the truthfulness and first-price checks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from agents.evaluation import FocalTick, play_focal
from agents.oracle import OBJECTIVES, check_objective, episode_returns, hindsight_oracle
from auctionsim import presets
from auctionsim.config import MarketConfig
from auctionsim.envs import AuctionParallelEnv, PolicyContext, PopulationPolicy, SingleBidderEnv, play_episode
from auctionsim.errors import ConfigError, describe
from auctionsim.market import Market
from auctionsim.validation import check_seed

__all__ = [
    "OBJECTIVES",
    "WIDE_BOUNDS",
    "MarketSpec",
    "as_market_spec",
    "Deviation",
    "ScheduleDeviation",
    "period_of_tick",
    "DeviationEvaluator",
    "PopulationEpisodes",
    "play_population",
    "check_seeds",
]


# Multiplier bounds of the envs used here: wide, so that they only reject nonsense.
WIDE_BOUNDS = (0.0, 1e6)


@dataclass(frozen=True, eq=False)
class MarketSpec:
    """How to build a market: a preset with overrides, or a factory. Picklable (with a
    module-level or cloudpickle-able factory), so Ray can rebuild the market in its workers.

    Attributes:
        preset: a preset name (:func:`auctionsim.presets.names`), or ``None`` with ``factory``.
        overrides: fields of the preset's :class:`~auctionsim.config.MarketConfig` to replace.
        factory: a callable returning a fresh :class:`~auctionsim.market.Market`.
        label: a short name for outputs (default: the preset name or ``"custom"``).
    """

    preset: str | None = "auctionnet"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    factory: Callable[[], Market] | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if (self.preset is None) == (self.factory is None):
            raise ConfigError(f"give exactly one of preset and factory, got preset={self.preset!r}, factory={describe(self.factory)}")
        if self.factory is not None:
            if not callable(self.factory):
                raise ConfigError(f"factory must be callable, got {describe(self.factory)}")
            if self.overrides:
                raise ConfigError(f"overrides apply to presets only, got {dict(self.overrides)} with a factory")
        else:
            if self.preset not in presets.names():
                raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(presets.names())}")
            fields = {f.name for f in dataclasses.fields(MarketConfig)}
            unknown = sorted(set(self.overrides) - fields)
            if unknown:
                raise ConfigError(f"unknown MarketConfig field {unknown[0]!r} in overrides")
        object.__setattr__(self, "overrides", dict(self.overrides))

    @property
    def name(self) -> str:
        return self.label or (self.preset if self.preset is not None else "custom")

    def build(self) -> Market:
        """A fresh market (history recording off: the tooling keeps what it needs itself)."""
        if self.factory is not None:
            market = self.factory()
            if not isinstance(market, Market):
                raise ConfigError(f"factory must return a Market, got {describe(market)}")
            return market
        scenario = presets.get(self.preset, **self.overrides)
        return Market(scenario.market, scenario.population, record_history=False)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for outputs."""
        return {"name": self.name, "preset": self.preset, "overrides": {k: _jsonable(v) for k, v in self.overrides.items()}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return str(value)


def as_market_spec(market: "MarketSpec | str | Callable[[], Market]", **overrides: Any) -> MarketSpec:
    """A :class:`MarketSpec` from a spec, a preset name (with overrides) or a factory."""
    if isinstance(market, MarketSpec):
        if overrides:
            raise ConfigError("give overrides inside the MarketSpec, not beside it")
        return market
    if isinstance(market, str):
        return MarketSpec(preset=market, overrides=overrides)
    if callable(market):
        return MarketSpec(preset=None, factory=market, overrides=overrides)
    raise ConfigError(f"market must be a MarketSpec, a preset name or a factory, got {describe(market)}")


def check_seeds(name: str, seeds: object) -> tuple[int, ...]:
    """A non-empty tuple of distinct market seeds in ``[0, 2**63)``."""
    try:
        values = tuple(seeds)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(f"{name} must be a sequence of integer seeds, got {describe(seeds)}") from None
    if not values:
        raise ConfigError(f"{name} must not be empty")
    for seed in values:
        check_seed(f"{name} entry", seed)
    if len(set(values)) != len(values):
        raise ConfigError(f"{name} must be distinct, got {describe(values)}")
    return tuple(int(seed) for seed in values)


@runtime_checkable
class Deviation(Protocol):
    """A one-advertiser bidding strategy played against the population."""

    def act(self, tick: int, observation: np.ndarray) -> float:
        """Bid multiplier for ``tick`` (0-based) given the advertiser's ``(D,)`` observation."""
        ...


def period_of_tick(tick: int, n_ticks: int, n_periods: int) -> int:
    """Period of a tick when ``n_ticks`` ticks are split into ``n_periods`` contiguous,
    (near-)equal periods: ``tick x n_periods // n_ticks``."""
    return tick * n_periods // n_ticks


@dataclass(frozen=True)
class ScheduleDeviation:
    """Piecewise-constant multipliers: ``multipliers[p]`` during period ``p`` of the day (one
    entry: a constant multiplier). Ignores observations: an open-loop plan.

    Attributes:
        multipliers: one multiplier per period (finite, >= 0).
        n_ticks: ticks per episode (periods split them as :func:`period_of_tick`).
    """

    multipliers: tuple[float, ...]
    n_ticks: int

    def __post_init__(self) -> None:
        values = tuple(float(m) for m in self.multipliers)
        if not values or not all(math.isfinite(m) and m >= 0 for m in values):
            raise ConfigError(f"multipliers must be finite and >= 0, got {describe(self.multipliers)}")
        if len(values) > self.n_ticks:
            raise ConfigError(f"{len(values)} periods need at least as many ticks, got n_ticks={self.n_ticks}")
        object.__setattr__(self, "multipliers", values)

    def act(self, tick: int, observation: np.ndarray) -> float:
        return self.multipliers[period_of_tick(tick, self.n_ticks, len(self.multipliers))]


class _DeviationPolicy(PopulationPolicy):
    """A :class:`Deviation` as a one-row focal bidder. It counts the ticks by its ``act`` calls
    (the focal engine calls it once per tick), so it needs no feedback at all."""

    def __init__(self, deviation: Deviation) -> None:
        self.deviation = deviation
        self._tick = 0

    def reset(self, context: PolicyContext) -> None:
        self._tick = 0

    def act(self, observations: np.ndarray) -> np.ndarray:
        multiplier = float(self.deviation.act(self._tick, observations[0]))
        self._tick += 1
        return np.array([multiplier])


class DeviationEvaluator:
    """Plays deviations of one advertiser against a population policy on chosen market seeds.

    A deviation is a focal episode (:func:`agents.evaluation.play_focal`) of a
    :class:`~auctionsim.envs.SingleBidderEnv` whose focal advertiser is ``advertiser_id``;
    episode ``seed`` here is market episode ``seed`` of :func:`play_population` (common random
    numbers).

    Args:
        market: the market to build.
        population: the policy of every other advertiser (its own action for the focal
            advertiser is computed and discarded, so stateful policies see the same rows).
        advertiser_id: the deviating advertiser.
        objective: ``"value"`` or ``"utility"`` (module docstring).
        multiplier_bounds: the env's action bounds; deviations are clipped into them, and the
            population's own multipliers must lie inside them (the default is wide: it only
            rejects nonsense).
    """

    def __init__(
        self,
        market: MarketSpec,
        population: PopulationPolicy,
        advertiser_id: int,
        objective: str = "value",
        multiplier_bounds: tuple[float, float] = WIDE_BOUNDS,
    ) -> None:
        self.objective = check_objective(objective)
        self.env = SingleBidderEnv(market.build(), population, focal=int(advertiser_id), multiplier_bounds=multiplier_bounds)
        self.advertiser_id = int(advertiser_id)
        self.bounds = self.env.core.multiplier_bounds
        self.episodes_played = 0

    @property
    def n_ticks(self) -> int:
        return self.env.market.n_ticks

    @property
    def budget(self) -> float:
        return float(self.env.market.population.budgets[self.env.focal_row])

    def rollout(self, deviation: Deviation, seed: int, on_step: Callable[..., None] | None = None) -> float:
        """Play market episode ``seed`` with the advertiser following ``deviation``; return its
        return. ``on_step(tick, observation, multiplier, reward, done)`` is called after every
        tick (used by the RL estimator to record transitions)."""
        utility = self.objective == "utility"

        def record(tick: FocalTick) -> None:
            reward = float(tick.value_won[0] - (tick.spend[0] if utility else 0.0))
            on_step(tick.tick, tick.observations[0], float(tick.multipliers[0]), reward, bool(tick.done[0]))

        episodes = play_focal(_DeviationPolicy(deviation), [self.env], [seed], on_tick=record if on_step is not None else None)
        self.episodes_played += 1
        return float(episodes.returns(self.objective)[0])

    def returns(self, deviation: Deviation, seeds: Sequence[int]) -> np.ndarray:
        """``(S,)`` returns of ``deviation`` on each market seed."""
        return np.array([self.rollout(deviation, seed) for seed in seeds])


@dataclass(frozen=True, eq=False)
class PopulationEpisodes:
    """The population's own play on some market seeds (``S`` seeds, ``N`` advertisers, population
    order). Money in currency.

    Attributes:
        seeds: ``(S,)`` market seeds.
        advertiser_ids: ``(N,)``.
        returns: ``(S, N)`` each advertiser's return ``G_i(theta)`` under ``objective``.
        value_won, spend: ``(S, N)``.
        oracle_ids: ``(k,)`` advertisers the hindsight oracle evaluated (may be empty).
        oracle_upper, oracle_achievable: ``(S, k)`` the oracle's bounds on their best return.
    """

    objective: str
    seeds: np.ndarray
    advertiser_ids: np.ndarray
    returns: np.ndarray
    value_won: np.ndarray
    spend: np.ndarray
    oracle_ids: np.ndarray
    oracle_upper: np.ndarray
    oracle_achievable: np.ndarray

    @property
    def social_welfare(self) -> np.ndarray:
        """``(S,)`` ``sum_i G_i(theta)`` per seed: the paper's social welfare (objective ``value``)."""
        return np.array([math.fsum(row) for row in self.returns.tolist()])

    @property
    def revenue(self) -> np.ndarray:
        """``(S,)`` platform revenue per seed (total spend)."""
        return np.array([math.fsum(row) for row in self.spend.tolist()])

    def columns(self, advertiser_ids: Sequence[int]) -> np.ndarray:
        """Column indices of some advertisers."""
        order = {int(i): column for column, i in enumerate(self.advertiser_ids)}
        return np.array([order[int(i)] for i in advertiser_ids], dtype=np.int64)


def play_population(
    market: MarketSpec,
    population: PopulationPolicy,
    seeds: Sequence[int],
    objective: str = "value",
    oracle_ids: Sequence[int] | None = None,
) -> PopulationEpisodes:
    """Play the population policy for every advertiser on each seed; optionally run the
    hindsight oracle (:func:`agents.oracle.hindsight_oracle`) for ``oracle_ids`` on each episode."""
    objective = check_objective(objective)
    seeds = check_seeds("seeds", seeds)
    env = AuctionParallelEnv(market.build(), multiplier_bounds=WIDE_BOUNDS)
    oracle_ids = np.asarray([] if oracle_ids is None else oracle_ids, dtype=np.int64)
    rows: dict[str, list[np.ndarray]] = {"returns": [], "value_won": [], "spend": [], "upper": [], "achievable": []}
    for seed in seeds:
        record = play_episode(env, population, seed=seed, log_impressions=oracle_ids.size > 0)
        metrics = record.metrics
        rows["returns"].append(episode_returns(metrics.value_won, metrics.spend, objective))
        rows["value_won"].append(metrics.value_won)
        rows["spend"].append(metrics.spend)
        if oracle_ids.size:
            results = hindsight_oracle(env.market, record.ticks, oracle_ids, objective=objective)
            rows["upper"].append(np.array([r.upper_bound for r in results]))
            rows["achievable"].append(np.array([r.achievable for r in results]))
        else:
            rows["upper"].append(np.zeros(0))
            rows["achievable"].append(np.zeros(0))
    return PopulationEpisodes(
        objective=objective,
        seeds=np.array(seeds, dtype=np.int64),
        advertiser_ids=env.market.population.ids.copy(),
        returns=np.stack(rows["returns"]),
        value_won=np.stack(rows["value_won"]),
        spend=np.stack(rows["spend"]),
        oracle_ids=oracle_ids,
        oracle_upper=np.stack(rows["upper"]),
        oracle_achievable=np.stack(rows["achievable"]),
    )
