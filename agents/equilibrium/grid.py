"""Grid best responses: the best constant, or piecewise-constant, bid multiplier on a grid.

For advertiser ``i`` facing the population policy, search open-loop schedules of multipliers
(constant over the day, or constant within each of ``P`` equal periods of the day) for the
highest mean return over the fit seeds. Any schedule is a strategy the advertiser could play,
so its return on held-out evaluation seeds estimates a *lower bound* on the best response
``max_pi G_i(pi; theta)`` (BPG paper, Section 2.2). Cheap, and exact when the best response is
a constant multiplier on the grid (e.g. truthful bidding in a second-price auction).

Search: the constant grid exhaustively; then the piecewise schedules exhaustively when there
are at most ``exhaustive_limit`` of them, else by coordinate ascent from the best constant
(each sweep tries every grid value in every period, keeping strict improvements, until a sweep
changes nothing or ``rounds`` sweeps are done). Every schedule's returns are cached, and a
schedule with equal entries is the constant one (the same episodes).

Also here: :func:`grid_best_response_dynamics`, iterated (Gauss-Seidel) best responses over
constant multipliers, whose fixed points are pure Nash equilibria of the grid game; and
:func:`best_uniform_multiplier`, the one multiplier for everyone with the highest social welfare
(how much a cooperative population could gain by shading together).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from agents.equilibrium.deviation import DeviationEvaluator, MarketSpec, ScheduleDeviation, as_market_spec, check_seeds, play_population
from agents.equilibrium.estimator import AdvertiserBestResponse
from auctionsim.envs import FixedMultipliers
from auctionsim.errors import ConfigError, describe
from auctionsim.validation import check_int

__all__ = ["DEFAULT_GRID", "GridBestResponse", "GridSearchResult", "BestResponseDynamics", "UniformSearch", "best_uniform_multiplier", "grid_best_response_dynamics"]

# Multipliers searched by default: shading (< 1), truthful value bidding (1) and overbidding,
# which pays off for a value maximiser whose budget would otherwise go unspent.
DEFAULT_GRID = (0.25, 0.5, 0.7, 0.85, 1.0, 1.15, 1.3, 1.6, 2.0, 3.0, 5.0)
_IMPROVEMENT = 1e-9  # relative: a schedule must beat the incumbent by more than this


def _canonical(schedule: Sequence[float]) -> tuple[float, ...]:
    """A schedule with all entries equal is the constant schedule."""
    schedule = tuple(float(m) for m in schedule)
    return schedule[:1] if len(set(schedule)) == 1 else schedule


def _better(candidate: float, incumbent: float) -> bool:
    return candidate > incumbent + _IMPROVEMENT * max(1.0, abs(incumbent))


@dataclass(frozen=True)
class GridSearchResult:
    """Outcome of a grid search (values are mean returns on the fit seeds)."""

    constant: tuple[float, ...]
    constant_value: float
    piecewise: tuple[float, ...]
    piecewise_value: float
    evaluations: int


@dataclass(frozen=True)
class GridBestResponse:
    """Grid best-response estimator (reports ``grid-constant`` and ``grid-piecewise``).

    Attributes:
        multipliers: the grid (finite, >= 0, distinct).
        periods: periods of the piecewise-constant schedules (1: constant only).
        rounds: coordinate-ascent sweeps over the periods at most.
        exhaustive_limit: enumerate every piecewise schedule when there are at most this many
            (``len(multipliers) ** periods``); coordinate ascent otherwise.
    """

    multipliers: tuple[float, ...] = DEFAULT_GRID
    periods: int = 4
    rounds: int = 2
    exhaustive_limit: int = 0
    names: tuple[str, ...] = field(default=("grid-constant", "grid-piecewise"), init=False)

    def __post_init__(self) -> None:
        try:
            grid = tuple(float(m) for m in self.multipliers)
        except (TypeError, ValueError):
            raise ConfigError(f"multipliers must be numbers, got {describe(self.multipliers)}") from None
        if not grid or not all(np.isfinite(m) and m >= 0 for m in grid) or len(set(grid)) != len(grid):
            raise ConfigError(f"multipliers must be distinct, finite and >= 0, got {describe(self.multipliers)}")
        object.__setattr__(self, "multipliers", grid)
        for name, low in (("periods", 1), ("rounds", 1), ("exhaustive_limit", 0)):
            check_int(name, getattr(self, name), low=low)

    def search(self, evaluate: Callable[[tuple[float, ...]], float]) -> GridSearchResult:
        """Search with ``evaluate(schedule) -> mean fit return`` (a canonical schedule: one
        entry for constants). ``evaluate`` should cache; the search asks for each schedule once."""
        seen: dict[tuple[float, ...], float] = {}

        def value(schedule: Sequence[float]) -> float:
            key = _canonical(schedule)
            if key not in seen:
                seen[key] = float(evaluate(key))
            return seen[key]

        best = (self.multipliers[0],)
        for multiplier in self.multipliers:
            if _better(value((multiplier,)), value(best)):
                best = (multiplier,)
        constant, constant_value = best, value(best)
        schedule = list(constant * self.periods)
        if self.periods > 1 and len(self.multipliers) ** self.periods <= self.exhaustive_limit:
            for candidate in itertools.product(self.multipliers, repeat=self.periods):
                if _better(value(candidate), value(schedule)):
                    schedule = list(candidate)
        elif self.periods > 1:
            for _ in range(self.rounds):
                improved = False
                for period in range(self.periods):
                    for multiplier in self.multipliers:
                        candidate = schedule[:period] + [multiplier] + schedule[period + 1 :]
                        if _better(value(candidate), value(schedule)):
                            schedule, improved = candidate, True
                if not improved:
                    break
        piecewise = _canonical(schedule)
        return GridSearchResult(constant, constant_value, piecewise, value(piecewise), len(seen))

    def estimate(
        self,
        evaluator: DeviationEvaluator,
        fit_seeds: Sequence[int],
        eval_seeds: Sequence[int],
        previous: Mapping[str, AdvertiserBestResponse] | None = None,
    ) -> dict[str, AdvertiserBestResponse]:
        start, episodes_before = time.perf_counter(), evaluator.episodes_played
        fit_cache: dict[tuple[float, ...], np.ndarray] = {}
        eval_cache: dict[tuple[float, ...], np.ndarray] = {}

        def returns(schedule: tuple[float, ...], seeds: Sequence[int], cache: dict) -> np.ndarray:
            if schedule not in cache:
                cache[schedule] = evaluator.returns(ScheduleDeviation(schedule, evaluator.n_ticks), seeds)
            return cache[schedule]

        result = self.search(lambda schedule: float(returns(schedule, fit_seeds, fit_cache).mean()))
        same_seeds = tuple(fit_seeds) == tuple(eval_seeds)
        eval_cache = fit_cache if same_seeds else eval_cache
        responses = {}
        for name, schedule, fit_value in (
            ("grid-constant", result.constant, result.constant_value),
            ("grid-piecewise", result.piecewise, result.piecewise_value),
        ):
            responses[name] = AdvertiserBestResponse(
                fit_return=fit_value,
                eval_returns=returns(schedule, eval_seeds, eval_cache).copy(),
                details={"schedule": list(schedule), "periods": len(schedule), "schedules_tried": result.evaluations},
            )
        seconds, episodes = time.perf_counter() - start, evaluator.episodes_played - episodes_before
        # Time and episodes are shared by both (one search); report them on each.
        return {name: _with_cost(response, seconds, episodes) for name, response in responses.items()}


def _with_cost(response: AdvertiserBestResponse, seconds: float, episodes: int) -> AdvertiserBestResponse:
    return AdvertiserBestResponse(response.fit_return, response.eval_returns, response.details, seconds, episodes, response.artifact)


@dataclass(frozen=True)
class BestResponseDynamics:
    """Outcome of :func:`grid_best_response_dynamics`.

    Attributes:
        multipliers: advertiser id -> multiplier after the last round.
        converged: whether the last round changed nothing (a fixed point: every advertiser's
            multiplier is a grid best response to the others', on the seeds used).
        rounds: rounds played.
        changes: ``(round, advertiser id, old multiplier, new multiplier)`` in order.
    """

    multipliers: dict[int, float]
    converged: bool
    rounds: int
    changes: tuple[tuple[int, int, float, float], ...]


def grid_best_response_dynamics(
    market: MarketSpec | str,
    initial: Mapping[int, float] | float,
    grid: Sequence[float],
    seeds: Sequence[int],
    objective: str = "value",
    max_rounds: int = 20,
) -> BestResponseDynamics:
    """Iterated best responses over constant multipliers (Gauss-Seidel, advertisers in id order).

    Every advertiser bids a fixed multiplier. In each round, each advertiser in turn switches to
    the grid multiplier with the highest mean return over ``seeds`` against the others' current
    multipliers, if it strictly beats its current one. Stops after a round without a switch (a
    fixed point) or ``max_rounds`` rounds (best-response dynamics may cycle).
    """
    spec = as_market_spec(market)
    seeds = check_seeds("seeds", seeds)
    search = GridBestResponse(tuple(grid), periods=1)
    ids = np.sort(spec.build().population.ids)
    if isinstance(initial, Mapping):
        current = {int(i): float(initial.get(int(i), 1.0)) for i in ids}
    else:
        current = {int(i): float(initial) for i in ids}
    changes: list[tuple[int, int, float, float]] = []
    for round_index in range(1, max_rounds + 1):
        switched = False
        for advertiser in current:
            evaluator = DeviationEvaluator(spec, FixedMultipliers(dict(current)), advertiser, objective)
            incumbent = float(evaluator.returns(ScheduleDeviation((current[advertiser],), evaluator.n_ticks), seeds).mean())
            result = search.search(lambda schedule: float(evaluator.returns(ScheduleDeviation(schedule, evaluator.n_ticks), seeds).mean()))
            if _better(result.constant_value, incumbent):
                changes.append((round_index, advertiser, current[advertiser], result.constant[0]))
                current[advertiser] = result.constant[0]
                switched = True
        if not switched:
            return BestResponseDynamics(current, True, round_index, tuple(changes))
    return BestResponseDynamics(current, False, max_rounds, tuple(changes))


@dataclass(frozen=True)
class UniformSearch:
    """Outcome of :func:`best_uniform_multiplier`.

    Attributes:
        multiplier: the grid multiplier with the highest mean social welfare on the seeds.
        welfare: grid multiplier -> mean social welfare (currency) on the seeds, in grid order.
    """

    multiplier: float
    welfare: dict[float, float]


def best_uniform_multiplier(market: MarketSpec | str, seeds: Sequence[int], grid: Sequence[float] = DEFAULT_GRID) -> UniformSearch:
    """The multiplier which, bid by every advertiser, gives the highest mean social welfare
    (value won, the BPG paper's welfare) on ``seeds``; ties go to the multiplier nearest 1
    (value bidding). Every advertiser shading together keeps the ranking and lowers second
    prices, so budgets last longer: the gain over multiplier 1 measures how much a cooperative
    population could win without any state-dependent policy. Choose on validation seeds and
    report on others."""
    spec = as_market_spec(market)
    seeds = check_seeds("seeds", seeds)
    values = [float(m) for m in grid]
    if not values or not all(np.isfinite(m) and m > 0 for m in values):
        raise ConfigError(f"grid must hold finite multipliers > 0, got {describe(grid)}")
    welfare = {m: float(play_population(spec, FixedMultipliers(m), seeds).social_welfare.mean()) for m in values}
    best = max(values, key=lambda m: (welfare[m], -abs(np.log(m))))
    return UniformSearch(best, welfare)
