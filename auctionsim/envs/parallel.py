"""PettingZoo parallel environment: one agent per advertiser, bidding a multiplier every tick."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from auctionsim.errors import ActionError, ActionTypeError, ConfigError, EpisodeOverError, describe
from auctionsim.envs.observations import ObservationBuilder, RewardTracker
from auctionsim.market import Market, TickResult, TickValues
from auctionsim.validation import as_numeric_array, as_single_number, check_bounds

__all__ = ["AuctionParallelEnv", "ArrayStep", "agent_name"]


def agent_name(advertiser_id: int) -> str:
    """The PettingZoo name of an advertiser's agent: ``adv_<id>``."""
    return f"adv_{int(advertiser_id)}"


@dataclass(frozen=True, eq=False)
class ArrayStep:
    """One tick of :meth:`AuctionParallelEnv.step_arrays`, every array in population order.

    Attributes:
        observations: ``(N, D)`` float32 observations for the next tick (also for finished
            advertisers, whose rows keep evolving but are no longer acted on).
        rewards: ``(N,)`` rewards of the tick (0 for advertisers already finished before it).
        terminated: ``(N,)`` advertisers whose budget ran out this tick.
        truncated: ``(N,)`` advertisers still live when the last tick ended.
        live: ``(N,)`` advertisers still acting after this tick.
        result: the market's :class:`~auctionsim.market.TickResult`.
        values: the tick's per-impression pValues, when requested.
    """

    observations: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    live: np.ndarray
    result: TickResult
    values: TickValues | None = None

    def info(self, row: int) -> dict[str, float]:
        """The PettingZoo ``infos`` entry of one advertiser."""
        return self.infos([row])[0]

    def infos(self, rows: Sequence[int]) -> list[dict[str, float]]:
        """The ``infos`` entries of several advertisers (each column converted once, which
        matters with thousands of agents)."""
        result = self.result
        columns = {
            "spend": result.spend[rows].tolist(),
            "wins": result.wins[rows].tolist(),
            "conversions": result.conversions[rows].tolist(),
            "value_won": result.value_won[rows].tolist(),
            "budget_left": result.budget_left[rows].tolist(),
            "multiplier": result.multipliers[rows].tolist(),
        }
        return [dict(zip(columns, values)) for values in zip(*columns.values())]


class AuctionParallelEnv(ParallelEnv):
    """An ad market as a PettingZoo ``ParallelEnv``.

    Description:
        Every advertiser of a :class:`~auctionsim.market.Market` is an agent named ``adv_<id>``.
        Each tick (AuctionNet: 48 per day) every live agent sets a bid multiplier ``m``; the
        market then auctions the tick's impressions, each agent bidding
        ``m x CPA target x pValue``. Agents see only their own observation (partial
        observability, as in the BPG paper).

    Action Space:
        ``Box(low, high, (1,), float32)``: the bid multiplier, ``multiplier_bounds`` (default
        ``[0, 5]``) rounded to float32. Exactly the space's own bounds are accepted (an agent that
        clips to its space is never refused); out-of-bounds, NaN or infinite actions are
        rejected, not clipped.

    Observation Space:
        ``Box(0, high, (D,), float32)`` with ``D = 18 + categories``: AuctionNet's 16 state
        features, budget and CPA target, and the category one-hot. Each feature is named and
        defined in :mod:`auctionsim.envs.observations`.

    Rewards:
        ``reward``: ``"value"`` (value won, default), ``"expected_conversions"``,
        ``"conversions"`` or ``"score"`` (see :mod:`auctionsim.envs.observations`).

    Starting State:
        Full budgets, no history; the traffic of the episode is drawn from the seed.

    Episode End:
        An agent terminates when its remaining budget falls below the market's budget floor
        (it can no longer bid). All live agents are truncated after the last tick.

    Arguments:
        market: a :class:`~auctionsim.market.Market` or a preset name (see
            :func:`auctionsim.presets.names`).
        reward: reward kind.
        multiplier_bounds: ``(low, high)`` of the action space, ``0 <= low < high``; stored in
            :attr:`multiplier_bounds` rounded to float32, the space's dtype (``0.7`` becomes
            ``0.699999988...``), and exactly that closed interval is accepted.
        market_overrides: fields of the preset's market config to replace (preset name only).

    Besides the dict API, :meth:`step_arrays` takes and returns population-ordered arrays; the
    dict API is a thin layer over it, and large populations should use it directly.
    """

    metadata = {"name": "auctionsim_parallel_v0", "render_modes": []}

    def __init__(
        self,
        market: Market | str = "auctionnet",
        reward: str = "value",
        multiplier_bounds: tuple[float, float] = (0.0, 5.0),
        **market_overrides: Any,
    ) -> None:
        if isinstance(market, str):
            market = Market.from_preset(market, **market_overrides)
        elif market_overrides:
            raise ConfigError(f"market overrides need a preset name, got a Market and {sorted(market_overrides)}")
        if not isinstance(market, Market):
            raise ConfigError(f"market must be a Market or a preset name, got {describe(market)}")
        low, high = check_bounds("multiplier_bounds", multiplier_bounds, low=0.0, strict=True)
        with np.errstate(over="ignore"):
            low32, high32 = float(np.float32(low)), float(np.float32(high))
        if not (np.isfinite(high32) and low32 < high32):
            raise ConfigError(
                f"multiplier_bounds must stay finite and distinct in float32 (the action space's dtype), got "
                f"{describe(multiplier_bounds)} -> ({low32}, {high32})"
            )
        self.market = market
        self.multiplier_bounds = (low32, high32)
        self.observations = ObservationBuilder(market)
        self._rewards = RewardTracker(reward, market.population.cpa_targets)
        self.reward_kind = reward
        self.possible_agents = [agent_name(i) for i in market.population.ids]
        self.agents: list[str] = []
        self._row_of = {name: row for row, name in enumerate(self.possible_agents)}
        self._live = np.zeros(len(self.possible_agents), dtype=bool)
        obs_low, obs_high = self.observations.low_high()
        self._observation_space = spaces.Box(obs_low, obs_high, dtype=np.float32)
        # Per-agent spaces are built on first request (a Box costs ~1 ms: 10,000 agents would
        # spend seconds building spaces nobody asks for), then cached so that repeated calls
        # return the same object, as PettingZoo expects.
        self._observation_spaces: dict[str, spaces.Box] = {}
        self._action_spaces: dict[str, spaces.Box] = {}
        self._last_observations = np.zeros((len(self.possible_agents), self.observations.dimension), dtype=np.float32)

    # ------------------------------------------------------------------ spaces
    def observation_space(self, agent: str) -> spaces.Box:
        """The agent's observation space (the same object on every call)."""
        name = self._check_agent(agent)
        if name not in self._observation_spaces:
            self._observation_spaces[name] = spaces.Box(self._observation_space.low, self._observation_space.high, dtype=np.float32)
        return self._observation_spaces[name]

    def action_space(self, agent: str) -> spaces.Box:
        """The agent's action space (the same object on every call, so seeding it sticks)."""
        name = self._check_agent(agent)
        if name not in self._action_spaces:
            low, high = self.multiplier_bounds
            self._action_spaces[name] = spaces.Box(np.float32(low), np.float32(high), shape=(1,), dtype=np.float32)
        return self._action_spaces[name]

    @property
    def single_observation_space(self) -> spaces.Box:
        """The observation space shared by every agent."""
        return self._observation_space

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.observations.names

    @property
    def live(self) -> np.ndarray:
        """``(N,)`` whether each advertiser is still acting (a copy)."""
        return self._live.copy()

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def max_num_agents(self) -> int:
        return len(self.possible_agents)

    def _check_agent(self, agent: str) -> str:
        if agent not in self._row_of:
            raise ActionError(f"unknown agent name {describe(agent)}; agents are named adv_<advertiser id>")
        return agent

    def state(self) -> np.ndarray:
        """Global state: every advertiser's last observation, ``(N, D)`` float32."""
        return self._last_observations.copy()

    # ------------------------------------------------------------------ array API
    def reset_arrays(self, seed: int | None = None) -> np.ndarray:
        """Start an episode; returns the ``(N, D)`` observations."""
        self.market.reset(seed)
        self.observations.reset()
        self._rewards.reset()
        self._live[:] = True
        self._last_observations = self.observations.observe()
        return self._last_observations.copy()

    def validate_multipliers(self, multipliers: object) -> np.ndarray:
        """Check an ``(N,)`` multiplier array: numbers, finite and within the action bounds for
        live advertisers (entries of finished advertisers are ignored). Returns a float64 copy
        with finished advertisers' entries set to 0."""
        array = as_numeric_array("multipliers", multipliers)
        if array.shape != self._live.shape:
            raise ActionError(f"multipliers must have shape {self._live.shape}, got {array.shape}")
        rows = np.flatnonzero(self._live)
        self.check_in_bounds(array[rows], rows)
        return np.where(self._live, array, 0.0)

    def check_in_bounds(self, multipliers: np.ndarray, rows: np.ndarray) -> None:
        """Raise ``ActionError`` naming the agent if a multiplier is not finite and within
        :attr:`multiplier_bounds`; ``multipliers[k]`` is the action of the agent in row ``rows[k]``."""
        low, high = self.multiplier_bounds
        bad = ~(np.isfinite(multipliers) & (multipliers >= low) & (multipliers <= high))
        if bad.any():
            index = int(np.argmax(bad))
            raise ActionError(
                f"action of {self.possible_agents[int(rows[index])]} must be a finite multiplier in [{low}, {high}], "
                f"got {multipliers[index]}"
            )

    def check_reset(self) -> None:
        """Raise ``EpisodeOverError`` if the environment was never reset."""
        if self.market.seed is None:
            raise EpisodeOverError("the environment has not been reset; call reset() before step()")

    def step_arrays(self, multipliers: object, *, with_values: bool = False, log_impressions: bool = False) -> ArrayStep:
        """Play one tick with ``(N,)`` multipliers (population order).

        Args:
            multipliers: bid multipliers; entries of finished advertisers are ignored (the market
                can be played to its end after every advertiser has finished).
            with_values: also return the tick's per-impression pValues (before the auction).
            log_impressions: ask the market for the per-impression log.
        """
        self.check_reset()
        if self.market.done:
            raise ActionError("the episode is over; call reset()")
        multipliers = self.validate_multipliers(multipliers)
        values = self.market.tick_values() if with_values else None
        result = self.market.step(multipliers, log_impressions=log_impressions)
        self.observations.update(result)
        rewards = np.where(self._live, self._rewards.rewards(result), 0.0)
        terminated = self._live & (result.budget_left < self.market.budget_floor)
        truncated = self._live & ~terminated & self.market.done
        self._live &= ~(terminated | truncated)
        self._last_observations = self.observations.observe()
        return ArrayStep(
            observations=self._last_observations.copy(),
            rewards=rewards,
            terminated=terminated,
            truncated=truncated,
            live=self._live.copy(),
            result=result,
            values=values,
        )

    # ------------------------------------------------------------------ PettingZoo dict API
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        observations = self.reset_arrays(seed)
        self.agents = list(self.possible_agents)
        obs = {name: observations[row] for row, name in enumerate(self.possible_agents)}
        return obs, {name: {} for name in self.agents}

    def step(self, actions: Mapping[str, object]):
        """PettingZoo step: ``actions`` maps every live agent's name to its multiplier."""
        self.check_reset()
        if not isinstance(actions, Mapping):
            raise ActionTypeError(f"actions must map agent names to multipliers, got {describe(actions)}")
        # Set and array checks first (thousands of agents); the lists for the messages only on error.
        if not actions.keys() <= self._row_of.keys():
            unknown = [name for name in actions if name not in self._row_of]
            raise ActionError(f"unknown agent name {describe(unknown[0])}; agents are named adv_<advertiser id>")
        rows = np.array([self._row_of[name] for name in actions], dtype=np.int64)
        if not self._live[rows].all():
            finished = [name for name in actions if not self._live[self._row_of[name]]]
            raise ActionError(f"agent {finished[0]} has already finished this episode and cannot act")
        if len(actions) < len(self.agents):  # every name acting is live, so some live agent is missing
            missing = [name for name in self.agents if name not in actions]
            raise ActionError(f"missing actions for {len(missing)} live agents, e.g. {missing[0]}")
        multipliers = np.zeros(len(self.possible_agents))
        multipliers[rows] = self._action_values(actions)
        acting = [self._row_of[name] for name in self.agents]
        step = self.step_arrays(multipliers)
        names = [self.possible_agents[row] for row in acting]
        observations = dict(zip(names, step.observations[acting]))
        rewards = dict(zip(names, step.rewards[acting].astype(np.float64).tolist()))
        terminations = dict(zip(names, step.terminated[acting].tolist()))
        truncations = dict(zip(names, step.truncated[acting].tolist()))
        infos = dict(zip(names, step.infos(acting)))
        self.agents = [name for name, live in zip(names, step.live[acting].tolist()) if live]
        return observations, rewards, terminations, truncations, infos

    @staticmethod
    def _action_values(actions: Mapping[str, object]) -> np.ndarray:
        """The actions' multipliers in ``actions`` order: all at once when they stack into a
        numeric ``(k,)`` or ``(k, 1)`` array (the usual case), else one by one, which names the
        agent whose action is not one number."""
        try:
            stacked = np.asarray(list(actions.values()))
        except (TypeError, ValueError):
            stacked = None
        if stacked is not None and stacked.dtype.kind in "iuf" and stacked.shape in ((len(actions),), (len(actions), 1)):
            return stacked.reshape(-1).astype(np.float64)
        return np.array([as_single_number(f"action of {name}", action) for name, action in actions.items()])

    def render(self) -> None:
        return None

    def close(self) -> None:
        return None
