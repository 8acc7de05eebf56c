"""One engine for "a focal bidder against the population".

A *focal episode* is one market episode of a :class:`~auctionsim.envs.single.SingleBidderEnv`:
one advertiser (the focal advertiser) bids by a *focal bidder* while the env's population policy
bids for every other advertiser. Every tool that measures a bidder in someone else's market is
this, and all of them run :func:`play_focal`:

* :func:`play_focal_episode`: one episode of an offline-RL / PE-MORL bidder (AuctionNet's score);
* :func:`agents.lbm.evaluate_focal`: LBM's evaluation cases (budgets scaled, many cases at once);
* :class:`agents.equilibrium.DeviationEvaluator`: a unilateral deviation, on the very market
  episodes the population played (common random numbers).

Episode ``seed`` is market episode ``seed`` (``reset(seed=seed, options={"market_seed": seed})``,
the episode that :func:`~auctionsim.envs.play_episode` plays with ``seed``), so a focal bidder
is always compared with the population's own play on common random numbers.

Batching. :func:`play_focal` plays ``M`` episodes (any mix of focal advertisers, seeds and
markets, one env each) in lockstep. Each tick the focal bidder, a
:class:`~auctionsim.envs.policy.PopulationPolicy` whose rows are the ``M`` focal advertisers, is
called *once* with the ``(M, D)`` observations, and it observes the ``M`` rows' feedback at
once: a torch or language-model bidder makes one batched (GPU) call per tick whatever ``M`` is,
and the markets (CPU work) are stepped one after the other. Per-impression bidders (and those
that read per-impression feedback) need each market's own impressions, which differ between
episodes: they are played with one copy of the bidder per episode (``copy.deepcopy``, one row
each). A bidder's multiplier is clipped into the env's multiplier bounds.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from auctionsim.config import Population
from auctionsim.envs.policy import PolicyContext, PopulationPolicy, TickFeedback
from auctionsim.envs.single import SingleBidderEnv
from auctionsim.errors import ActionError, ConfigError, describe
from auctionsim.metrics import cpa_ratio, score

__all__ = ["FocalEpisodes", "FocalResult", "FocalTick", "play_focal", "play_focal_episode"]


@dataclass(frozen=True, eq=False)
class FocalTick:
    """One tick of :func:`play_focal`, for ``on_tick`` callbacks (``(M,)`` arrays; rows of cases
    that had finished before the tick are ``acted == False`` and zero).

    Attributes:
        tick: index of the tick just played.
        observations: ``(M, D)`` the observations the bidder acted on.
        multipliers: the multipliers played; value_won, spend: the tick's outcomes (currency);
        rewards: the env's rewards; done: whether each case's episode ended with this tick.
    """

    tick: int
    acted: np.ndarray
    observations: np.ndarray
    multipliers: np.ndarray
    value_won: np.ndarray
    spend: np.ndarray
    rewards: np.ndarray
    done: np.ndarray


@dataclass(frozen=True, eq=False)
class FocalEpisodes:
    """``M`` focal episodes, tick by tick (``(M,)`` and ``(M, T)`` arrays; money in currency).

    Attributes:
        advertiser_ids, market_seeds: who bid, in which market episode.
        budget, cpa_target: the focal advertisers' (as their markets had them).
        acted: ``(M, T)`` whether the focal advertiser bid in each tick.
        multipliers: ``(M, T)`` multipliers played (0 when it did not act or bid per impression).
        mean_bid: ``(M, T)`` its mean bid per contested impression.
        spend, value_won: ``(M, T)``; conversions: ``(M, T)`` realised.
        rewards: ``(M, T)`` the env's rewards (its ``reward`` kind).
        terminated: ``(M,)`` whether its budget ran out (before or in the last tick).
    """

    advertiser_ids: np.ndarray
    market_seeds: np.ndarray
    budget: np.ndarray
    cpa_target: np.ndarray
    acted: np.ndarray
    multipliers: np.ndarray
    mean_bid: np.ndarray
    spend: np.ndarray
    value_won: np.ndarray
    conversions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray

    @staticmethod
    def total(per_tick: np.ndarray) -> np.ndarray:
        """``(M,)`` sums over ticks in tick order (the market's own order: equal to its totals)."""
        return np.cumsum(per_tick, axis=1)[:, -1] if per_tick.shape[1] else np.zeros(per_tick.shape[0])

    def returns(self, objective: str = "value") -> np.ndarray:
        """``(M,)`` value won (``"value"``), or value won minus spend (``"utility"``)."""
        if objective not in ("value", "utility"):
            raise ConfigError(f"objective must be 'value' or 'utility', got {describe(objective)}")
        value = self.total(self.value_won)
        return value - self.total(self.spend) if objective == "utility" else value

    @property
    def expected_conversions(self) -> np.ndarray:
        """``(M, T)`` value won / CPA target: conversions in expectation (the LBM paper's)."""
        return self.value_won / self.cpa_target[:, None]

    def score(self, exponent: float = 2.0, expected: bool = False) -> np.ndarray:
        """``(M,)`` AuctionNet's score ``C x min(1, (1 / CPA ratio)^exponent)`` (exponent 2 in its
        competition, 1 in the LBM paper), over realised or ``expected`` conversions."""
        conversions = self.total(self.expected_conversions if expected else self.conversions)
        return score(conversions, cpa_ratio(self.total(self.spend), conversions, self.cpa_target), exponent)


def _focal_population(envs: Sequence[SingleBidderEnv]) -> Population:
    """The focal advertisers as one population, rows in case order. Ids are the advertisers' own
    when distinct, else case indices (one advertiser may play several cases)."""
    rows = [(env.market.population, env.focal_row) for env in envs]
    ids = np.array([population.ids[row] for population, row in rows], dtype=np.int64)
    return Population(
        ids=ids if np.unique(ids).size == ids.size else np.arange(ids.size),
        budgets=np.array([population.budgets[row] for population, row in rows]),
        cpa_targets=np.array([population.cpa_targets[row] for population, row in rows]),
        categories=np.array([population.categories[row] for population, row in rows]),
        n_categories=rows[0][0].n_categories,
    )


def play_focal(
    bidder: PopulationPolicy,
    envs: Sequence[SingleBidderEnv],
    seeds: Sequence[int],
    *,
    on_tick: Callable[[FocalTick], None] | None = None,
    progress: bool = False,
    description: str = "focal episodes",
) -> FocalEpisodes:
    """Play market episode ``seeds[m]`` of ``envs[m]`` with ``bidder`` bidding for its focal
    advertiser, for every ``m`` in lockstep (module docstring).

    Args:
        bidder: the focal bidder; reset once with the ``M`` focal advertisers as its rows (or,
            per-impression bidders, copied and reset per episode).
        envs: one env per episode (distinct objects: they are stepped side by side), all with
            the same number of ticks; each env's population bids for its other advertisers.
        seeds: market seed of each episode.
        on_tick: called after every tick with a :class:`FocalTick`.
    """
    if not isinstance(bidder, PopulationPolicy):
        raise ConfigError(f"bidder must be a PopulationPolicy, got {describe(bidder)}")
    envs, seeds = list(envs), [int(seed) for seed in seeds]
    if not envs or len(envs) != len(seeds):
        raise ConfigError(f"need one seed per env and at least one env, got {len(envs)} envs and {len(seeds)} seeds")
    if len({id(env) for env in envs}) != len(envs) or not all(isinstance(env, SingleBidderEnv) for env in envs):
        raise ConfigError("envs must be distinct SingleBidderEnv objects (one per episode)")
    n_ticks = envs[0].market.n_ticks
    if any(env.market.n_ticks != n_ticks for env in envs):
        raise ConfigError("every env must have the same number of ticks")
    for env, seed in zip(envs, seeds):
        env.reset(seed=seed, options={"market_seed": seed})
    size = len(envs)
    focal = _focal_population(envs)
    first = envs[0]
    context = PolicyContext(focal, first.market.config, first.market.n_advertisers, first.core.feature_names, seeds[0])
    bidder.reset(context)
    per_episode = bidder.wants_impressions  # known after the reset (e.g. for a BidderPolicy)
    if per_episode:  # one copy per episode, each with its own (real) advertiser
        bidders = [copy.deepcopy(bidder) for _ in envs]
        for m, (copied, env) in enumerate(zip(bidders, envs)):
            copied.reset(env.core.policy_context(seeds[m], [env.focal_row]))
    observes = type(bidder).observe is not PopulationPolicy.observe

    shape = (size, n_ticks)
    acted = np.zeros(shape, dtype=bool)
    records = {name: np.zeros(shape) for name in ("multipliers", "mean_bid", "spend", "value_won", "conversions", "rewards")}
    terminated = np.zeros(size, dtype=bool)
    live = np.ones(size, dtype=bool)
    observations = np.stack([env.observation for env in envs])
    for tick in tqdm(range(n_ticks), desc=description, disable=not progress, unit="tick"):
        if not per_episode:
            actions = np.asarray(bidder.act(observations), dtype=np.float64).reshape(-1)
            if actions.shape != (size,):
                raise ActionError(f"{type(bidder).__name__}.act returned {actions.shape[0]} multipliers for {size} focal advertisers")
        acting = observations.copy() if on_tick is not None else observations
        parts: list[TickFeedback] = []
        done = np.zeros(size, dtype=bool)
        for m in range(size):
            env, row = envs[m], envs[m].focal_row
            if not live[m]:
                parts.append(TickFeedback.idle(tick, n_ticks, env.market.budget_left[row : row + 1]))
                continue
            low, high = env.core.multiplier_bounds
            if per_episode:
                own = bidders[m]
                multiplier = float(np.clip(np.asarray(own.act(observations[m : m + 1]), dtype=np.float64).reshape(-1)[0], low, high))
                bids = own.impression_bids(observations[m : m + 1], env.focal_values()).get(0) if own.bids_per_impression else None
                step = env.step_focal(multiplier, bids, with_values=True, log_impressions=True)
                own.observe(TickFeedback.from_result(step.result, n_ticks, step.values).subset([row]))
            else:
                step = env.step_focal(float(np.clip(actions[m], low, high)))
                if observes:
                    parts.append(TickFeedback.from_result(step.result, n_ticks).subset([row]))
            result = step.result
            acted[m, tick] = True
            records["multipliers"][m, tick] = result.multipliers[row]
            records["mean_bid"][m, tick] = result.mean_bid[row]
            records["spend"][m, tick] = result.spend[row]
            records["value_won"][m, tick] = result.value_won[row]
            records["conversions"][m, tick] = result.conversions[row]
            records["rewards"][m, tick] = step.rewards[row]
            terminated[m] = bool(result.budget_left[row] < env.market.budget_floor)
            done[m] = bool(step.terminated[row] or step.truncated[row])
            observations[m] = step.observations[row]
        live &= ~done
        if observes and not per_episode:
            bidder.observe(TickFeedback.concatenate(parts))
        if on_tick is not None:
            on_tick(FocalTick(tick, acted[:, tick].copy(), acting, records["multipliers"][:, tick].copy(), records["value_won"][:, tick].copy(),
                              records["spend"][:, tick].copy(), records["rewards"][:, tick].copy(), done))
        if not live.any():
            break
    return FocalEpisodes(
        advertiser_ids=np.array([env.focal_id for env in envs], dtype=np.int64),
        market_seeds=np.array(seeds, dtype=np.int64),
        budget=focal.budgets.copy(),
        cpa_target=focal.cpa_targets.copy(),
        acted=acted,
        terminated=terminated,
        **records,
    )


@dataclass(frozen=True)
class FocalResult:
    """The focal advertiser's episode (money in currency).

    Attributes:
        advertiser_id, budget, cpa_target: who it bid for.
        conversions, spend: realised totals.
        cpa_ratio: realised CPA / CPA target (0 without conversions and spend).
        score: AuctionNet's ``conversions x min(1, (1 / cpa_ratio)^2)``.
        budget_utilisation: spend / budget.
        episode_return: sum of the env's rewards.
        mean_multiplier: mean multiplier the bidder played over the ticks it acted.
    """

    advertiser_id: int
    budget: float
    cpa_target: float
    conversions: float
    spend: float
    cpa_ratio: float
    score: float
    budget_utilisation: float
    episode_return: float
    mean_multiplier: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def play_focal_episode(env: SingleBidderEnv, bidder: PopulationPolicy, seed: int = 0) -> FocalResult:
    """Play market episode ``seed`` of ``env`` with ``bidder`` bidding for its focal advertiser
    (one :func:`play_focal` episode)."""
    if not isinstance(env, SingleBidderEnv):
        raise ConfigError(f"env must be a SingleBidderEnv, got {describe(env)}")
    episodes = play_focal(bidder, [env], [seed])
    spend, conversions = episodes.total(episodes.spend), episodes.total(episodes.conversions)
    ratio = cpa_ratio(spend, conversions, episodes.cpa_target)
    return FocalResult(
        advertiser_id=int(episodes.advertiser_ids[0]),
        budget=float(episodes.budget[0]),
        cpa_target=float(episodes.cpa_target[0]),
        conversions=float(conversions[0]),
        spend=float(spend[0]),
        cpa_ratio=float(ratio[0]),
        score=float(episodes.score(2.0)[0]),
        budget_utilisation=float(spend[0] / episodes.budget[0]),
        episode_return=float(episodes.total(episodes.rewards)[0]),
        mean_multiplier=float(episodes.multipliers[0, episodes.acted[0]].mean()),
    )
