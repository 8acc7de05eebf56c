"""Gymnasium environment: one learning bidder facing a population of other bidders."""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from auctionsim.errors import ActionError, ConfigError, describe
from auctionsim.envs.parallel import ArrayStep, AuctionParallelEnv
from auctionsim.envs.policy import AdvertiserSpec, FixedMultipliers, PopulationPolicy, select_values
from auctionsim.envs.rollout import policy_step
from auctionsim.market import Market, TickValues
from auctionsim.validation import as_numeric_array, as_single_number, check_id, check_int, check_seed, is_integer

__all__ = ["SingleBidderEnv", "DEFAULT_BID_GRID"]

# Bid multipliers of the discrete variant: 14 levels, finer at the low end (as the 14-bid grid
# of the Batch EXP3 paper).
DEFAULT_BID_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 3.0)


class SingleBidderEnv(gym.Env):
    """One focal advertiser learns to bid while a population policy bids for all the others.

    Description:
        Wraps :class:`~auctionsim.envs.parallel.AuctionParallelEnv`. Each tick the population
        policy sets every advertiser's multiplier from their observations, then the focal
        advertiser's multiplier is replaced by the action. The focal advertiser is fixed
        (``focal``) or drawn at every reset with probabilities ``focal_weights``: the BPG
        paper's weighted POMDP (Section 5.2), whose initial distribution is
        ``sum_i kappa_i phi_i``. The observation says which advertiser the agent bids for
        through its budget, CPA target and category features.

    Action Space:
        ``Box(low, high, (1,), float32)`` bid multiplier (``multiplier_bounds``); with
        ``action_scale="unit"``, ``Box(-1, 1, (1,), float32)`` mapped onto the bounds so that 0
        bids the expected value (see :func:`~auctionsim.envs.parallel.unit_to_multiplier`: use
        it with SB3, CleanRL and other loops whose untrained Gaussian policy has mean 0); or,
        with ``bid_grid``, ``Discrete(len(bid_grid))`` choosing ``bid_grid[action]``.

    Observation Space:
        The focal advertiser's row of the parallel env's observations (see
        :mod:`auctionsim.envs.observations`).

    Rewards:
        The focal advertiser's reward of kind ``reward``.

    Starting State:
        Full budgets; the market's seed for the episode is drawn from the env's ``np_random``.

    Episode End:
        Terminated when the focal advertiser's budget runs out; both terminated and truncated
        after the last tick (the day's end is a terminal state, see
        :class:`~auctionsim.envs.parallel.AuctionParallelEnv`).

    Arguments:
        market: a :class:`~auctionsim.market.Market` or a preset name.
        population: the others' :class:`~auctionsim.envs.policy.PopulationPolicy` (default:
            everyone bids multiplier 1.0, i.e. its expected value).
        focal: advertiser id of the learner, or ``None`` to draw it every episode.
        focal_weights: sampling weights over the population (array order), default uniform.
        reward, multiplier_bounds, action_scale, market_overrides: as for the parallel env.
        bid_grid: multipliers of the discrete variant.

    :meth:`advertiser_spec` says whom the agent bids for (with a drawn focal advertiser: after
    :meth:`reset`), and
    :meth:`step_focal` plays a tick with a multiplier or per-impression bids and returns the whole
    :class:`~auctionsim.envs.parallel.ArrayStep` (for evaluation tools).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        market: Market | str = "auctionnet",
        population: PopulationPolicy | None = None,
        focal: int | None = None,
        focal_weights: Sequence[float] | np.ndarray | None = None,
        reward: str = "value",
        multiplier_bounds: tuple[float, float] = (0.0, 5.0),
        bid_grid: Sequence[float] | None = None,
        action_scale: str = "multiplier",
        **market_overrides: Any,
    ) -> None:
        self.core = AuctionParallelEnv(market, reward, multiplier_bounds, action_scale, **market_overrides)
        self.population = FixedMultipliers(1.0) if population is None else population
        if not isinstance(self.population, PopulationPolicy):
            raise ConfigError(f"population must be a PopulationPolicy, got {describe(population)}")
        advertisers = self.core.market.population
        self._focal_fixed = None if focal is None else int(advertisers.positions_of([check_id("focal", focal)])[0])
        self._weights = np.full(len(advertisers), 1.0 / len(advertisers))
        if focal_weights is not None:
            self.set_focal_weights(focal_weights)
        low, high = self.core.multiplier_bounds
        if bid_grid is not None and action_scale != "multiplier":
            raise ConfigError(f"bid_grid chooses multipliers itself; it cannot be combined with action_scale={action_scale!r}")
        if bid_grid is not None:
            grid = as_numeric_array("bid_grid", bid_grid, error=ConfigError)
            if grid.ndim != 1 or grid.size == 0 or not np.all((grid >= low) & (grid <= high)):
                raise ConfigError(f"bid_grid must be a non-empty list of multipliers in [{low}, {high}], got {describe(bid_grid)}")
            self.bid_grid: np.ndarray | None = grid
            self.action_space = spaces.Discrete(grid.size)
        else:
            self.bid_grid = None
            action_low, action_high = self.core.action_bounds
            self.action_space = spaces.Box(np.float32(action_low), np.float32(action_high), shape=(1,), dtype=np.float32)
        self.observation_space = self.core.single_observation_space
        self.focal_row = self._focal_fixed if self._focal_fixed is not None else 0
        self._observations = np.zeros((len(advertisers), self.core.observations.dimension), dtype=np.float32)

    @property
    def market(self) -> Market:
        return self.core.market

    @property
    def focal_id(self) -> int:
        """Advertiser id of this episode's learner."""
        return int(self.market.population.ids[self.focal_row])

    def advertiser_spec(self) -> AdvertiserSpec:
        """The :class:`~auctionsim.envs.policy.AdvertiserSpec` of this episode's focal advertiser
        (budget, CPA target, category, the market's day, feature names)."""
        return self.core.advertiser_spec(self.focal_id)

    def focal_values(self) -> TickValues:
        """The focal advertiser's pValues, sigmas and candidacy for the next tick (``(n, 1)``),
        for a focal bidder that bids per impression."""
        return select_values(self.core.tick_values(), [self.focal_row])

    def set_focal_weights(self, weights: Sequence[float] | np.ndarray) -> None:
        """Sampling weights of the focal advertiser (array order); normalised to sum to 1."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != self._weights.shape or not np.all(np.isfinite(weights)) or (weights < 0).any() or weights.sum() <= 0:
            raise ConfigError(
                f"focal_weights must be {self._weights.shape[0]} finite non-negative numbers with a positive sum, got {describe(weights)}"
            )
        self._weights = weights / weights.sum()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode. ``options={"market_seed": s}`` plays market episode ``s`` exactly
        (the episode :func:`~auctionsim.envs.play_episode` plays with ``seed=s``), so a deviation
        can be compared with the population's own play on common random numbers."""
        market_seed = None if not options or "market_seed" not in options else options["market_seed"]
        if market_seed is not None:
            check_seed("options['market_seed']", market_seed)
        if seed is not None:
            check_int("seed", seed, low=0)  # Gymnasium's own check comes after it has cleared state
        super().reset(seed=seed)
        drawn_seed = int(self.np_random.integers(0, 2**62))
        market_seed = drawn_seed if market_seed is None else int(market_seed)
        if self._focal_fixed is None:
            self.focal_row = int(self.np_random.choice(self._weights.shape[0], p=self._weights))
        self._observations = self.core.reset_arrays(market_seed)
        self.population.reset(self.core.policy_context(market_seed))
        return self._observations[self.focal_row].copy(), {"advertiser_id": self.focal_id, "market_seed": market_seed}

    def _multiplier(self, action: object) -> float:
        if self.bid_grid is not None:
            if isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu":
                action = action.item()  # a 0-d integer array, as some samplers return
            if not is_integer(action) or not 0 <= int(action) < self.bid_grid.size:  # type: ignore[arg-type]
                raise ActionError(f"action must be an integer in [0, {self.bid_grid.size}), got {describe(action)}")
            return float(self.bid_grid[int(action)])  # type: ignore[arg-type]
        return float(self.core.actions_to_multipliers(np.array([as_single_number("action", action)]), ["action"])[0])

    @property
    def observation(self) -> np.ndarray:
        """The focal advertiser's current observation (a copy)."""
        return self._observations[self.focal_row].copy()

    def step_focal(
        self, multiplier: float = 0.0, bids: np.ndarray | None = None, *, with_values: bool = False, log_impressions: bool = False
    ) -> ArrayStep:
        """Play the next tick with the focal advertiser bidding ``multiplier`` (a multiplier, not
        an action), or ``bids`` per impression of the tick (see :meth:`focal_values`), while the
        population bids for everyone else; returns the whole tick. :meth:`step` is this plus the
        Gymnasium tuple. Both are checked in full before the population acts, so a rejected call
        changes nothing."""
        self.core.check_reset()
        if not self.core.live[self.focal_row]:
            raise ActionError("the episode is over; call reset()")
        if bids is None:
            self.core.check_in_bounds(np.array([as_single_number("multiplier", multiplier)]), np.array([self.focal_row]))
        else:
            self.market.validate_impression_bids({self.focal_id: bids})
        step = policy_step(
            self.core,
            self.population,
            self._observations,
            focal_row=self.focal_row,
            focal_multiplier=multiplier,
            focal_bids=bids,
            with_values=with_values,
            log_impressions=log_impressions,
        )
        self._observations = step.observations
        return step

    def step(self, action: object):
        self.core.check_reset()
        if not self.core.live[self.focal_row]:
            raise ActionError("the episode is over; call reset()")
        step = self.step_focal(self._multiplier(action))
        row = self.focal_row
        info = step.info(row)
        info["advertiser_id"] = self.focal_id
        return (
            self._observations[row].copy(),
            float(step.rewards[row]),
            bool(step.terminated[row]),
            bool(step.truncated[row]),
            info,
        )
