"""PettingZoo parallel environment: one agent per advertiser, bidding a multiplier every tick."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from auctionsim.errors import ActionError, ActionTypeError, ConfigError, EpisodeOverError, describe
from auctionsim.envs.observations import ObservationBuilder, RewardTracker
from auctionsim.envs.policy import AdvertiserSpec, PolicyContext
from auctionsim.market import Market, TickResult, TickValues
from auctionsim.validation import as_numeric_array, as_single_number, check_bounds, check_choice, check_int

__all__ = ["ACTION_SCALES", "AuctionParallelEnv", "ArrayStep", "agent_name", "unit_to_multiplier", "multiplier_to_unit"]

#: How agents express their action: the multiplier itself, or a number in [-1, 1] mapped onto the
#: multiplier bounds (see :func:`unit_to_multiplier`).
ACTION_SCALES = ("multiplier", "unit")


def _pivot(low: float, high: float) -> float:
    """The multiplier that unit action 0 maps to: 1 (bid the expected value) when it lies
    strictly inside the bounds, else their midpoint."""
    return 1.0 if low < 1.0 < high else 0.5 * (low + high)


def unit_to_multiplier(actions: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map unit actions in ``[-1, 1]`` onto multipliers in ``[low, high]``: -1 -> ``low``,
    0 -> 1 (so an untrained policy whose mean action is 0 bids its expected value), +1 ->
    ``high``, linear on each side (with bounds that exclude 1, 0 maps to their midpoint)."""
    actions = np.asarray(actions, dtype=np.float64)
    pivot = _pivot(low, high)
    multipliers = np.where(actions < 0.0, pivot + actions * (pivot - low), pivot + actions * (high - pivot))
    return np.clip(multipliers, low, high)  # floating-point rounding only: inputs are in [-1, 1]


def multiplier_to_unit(multipliers: np.ndarray, low: float, high: float) -> np.ndarray:
    """Inverse of :func:`unit_to_multiplier` (multipliers within the bounds)."""
    multipliers = np.asarray(multipliers, dtype=np.float64)
    pivot = _pivot(low, high)
    below = (multipliers - pivot) / (pivot - low) if pivot > low else np.zeros_like(multipliers)
    return np.where(multipliers < pivot, below, (multipliers - pivot) / (high - pivot))


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
        terminated: ``(N,)`` advertisers whose budget ran out this tick, and, when this tick was
            the day's last, every advertiser that acted in it (see the env's Episode End).
        truncated: ``(N,)`` when this tick was the day's last, every advertiser that acted in it.
        live: ``(N,)`` advertisers still acting after this tick.
        result: the market's :class:`~auctionsim.market.TickResult`.
        values: the tick's per-impression pValues, when requested.
        impression_bids: ``{row: (n,) bids}`` the per-impression bids played, if any.
    """

    observations: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    live: np.ndarray
    result: TickResult
    values: TickValues | None = None
    impression_bids: Mapping[int, np.ndarray] | None = None

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
        ``[0, 5]``) rounded to float32: exactly the space's own bounds are accepted (an agent
        that clips to its space is never refused). With ``action_scale="unit"``, ``Box(-1, 1, (1,), float32)`` mapped onto
        the bounds by :func:`unit_to_multiplier` (0 bids the expected value, multiplier 1):
        the normalised space that SB3, CleanRL and RLlib's Gaussian policies start from.
        Out-of-bounds, NaN or infinite actions are rejected, not clipped. The array API
        (:meth:`step_arrays`) always takes multipliers (:meth:`to_multipliers` converts).

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
        (it can no longer bid) and leaves ``agents``. The last tick ends the day for every
        agent that acted in it: each is then both terminated (a terminal state: nothing
        follows the day, and the time left is part of the observation, so there is no value to
        bootstrap) and truncated (the day's time limit). The flags of one step are therefore
        never mixed (some agents terminated, the others only truncated), and the episode ends
        exactly when ``agents`` becomes empty for every common consumer: RLlib's stock
        ``ParallelPettingZooEnv`` (it ends an episode when all agents of a step are terminated
        or all truncated), PettingZoo's ``parallel_api_test``, SuperSuit's ``black_death``
        (which, in SuperSuit 3.11, needs both flags) and vector-env wrappers, and
        Gymnasium-style ``terminated or truncated`` loops (SB3 does not bootstrap a terminated
        step). Whether an agent ran out of budget is ``infos[agent]["budget_left"]`` below
        ``market.budget_floor``.

    Arguments:
        market: a :class:`~auctionsim.market.Market` or a preset name (see
            :func:`auctionsim.presets.names`).
        reward: reward kind.
        multiplier_bounds: ``(low, high)`` multipliers an agent can bid, ``0 <= low < high``;
            stored in :attr:`multiplier_bounds` rounded to float32, the action space's dtype
            (``0.7`` becomes ``0.699999988...``), and exactly that closed interval is accepted.
        action_scale: ``"multiplier"`` (actions are multipliers) or ``"unit"`` (actions in
            ``[-1, 1]``, see Action Space).
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
        action_scale: str = "multiplier",
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
        self.action_scale = check_choice("action_scale", action_scale, ACTION_SCALES)
        self.render_mode = None  # nothing to render; PettingZoo wrappers (SuperSuit) read it
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
        self._values: TickValues | None = None  # the next tick's values, computed on first request

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
            low, high = self.action_bounds
            self._action_spaces[name] = spaces.Box(np.float32(low), np.float32(high), shape=(1,), dtype=np.float32)
        return self._action_spaces[name]

    @property
    def action_bounds(self) -> tuple[float, float]:
        """``(low, high)`` of an agent's action: the multiplier bounds, or ``(-1, 1)`` with
        ``action_scale="unit"``."""
        return (-1.0, 1.0) if self.action_scale == "unit" else self.multiplier_bounds

    def to_multipliers(self, actions: object) -> np.ndarray:
        """Agents' actions (in the action space's units) -> bid multipliers, float64."""
        actions = np.asarray(actions, dtype=np.float64)
        if self.action_scale == "unit":
            return unit_to_multiplier(actions, *self.multiplier_bounds)
        return actions.copy()

    def advertiser_spec(self, agent: str | int) -> AdvertiserSpec:
        """The :class:`~auctionsim.envs.policy.AdvertiserSpec` of an agent (by name or
        advertiser id): what a one-advertiser bidder is told at reset."""
        name = agent_name(agent) if not isinstance(agent, str) else agent
        return self.policy_context(self.market.seed).advertiser_spec(self._row_of[self._check_agent(name)])

    def policy_context(self, seed: int | None, rows: Sequence[int] | np.ndarray | None = None) -> PolicyContext:
        """The :class:`~auctionsim.envs.policy.PolicyContext` of this market's episode for the
        advertisers at ``rows`` (default: all), as drivers reset policies with."""
        return PolicyContext.of(self.market, self.feature_names, seed, rows)

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
        self._values = None
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
        :attr:`multiplier_bounds`; ``multipliers[k]`` is the multiplier of the agent in row ``rows[k]``."""
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

    def tick_values(self) -> TickValues:
        """The next tick's per-impression pValues, sigmas and candidacy of every advertiser
        (population order), computed once per tick however often it is asked for."""
        if self.market.done:
            raise ActionError("the episode is over; call reset()")
        if self._values is None:
            self._values = self.market.tick_values()
        return self._values

    def _live_impression_bids(self, impression_bids: Mapping[int, object]) -> dict[int, object]:
        """The entries of ``{row: bids}`` that belong to live advertisers (rows checked)."""
        if not isinstance(impression_bids, Mapping):
            raise ActionTypeError(f"impression_bids must map rows to bids, got {describe(impression_bids)}")
        size = self._live.shape[0]
        live = {}
        for row, bids in impression_bids.items():
            check_int("impression_bids key (a row)", row, low=0, high=size - 1, error=ActionError)
            if self._live[row]:
                live[int(row)] = bids
        return live

    def step_arrays(
        self,
        multipliers: object,
        *,
        impression_bids: Mapping[int, object] | None = None,
        with_values: bool = False,
        log_impressions: bool = False,
    ) -> ArrayStep:
        """Play one tick with ``(N,)`` multipliers (population order).

        Args:
            multipliers: bid multipliers; entries of finished advertisers are ignored (the market
                can be played to its end after every advertiser has finished).
            impression_bids: ``{row: (n,) bids}`` (currency) for advertisers that bid per
                impression this tick (their multiplier is then ignored; see
                :meth:`tick_values` for the pValues they bid on). Entries of finished
                advertisers are ignored.
            with_values: also return the tick's per-impression pValues (before the auction).
            log_impressions: ask the market for the per-impression log.
        """
        self.check_reset()
        if self.market.done:
            raise ActionError("the episode is over; call reset()")
        played = self._live_impression_bids(impression_bids) if impression_bids is not None else {}
        if played:
            # Rows bidding per impression need no multiplier: any in-bounds value passes the
            # check, and the market is given 0 (it ignores their multipliers).
            multipliers = as_numeric_array("multipliers", multipliers).copy()
            if multipliers.shape == self._live.shape:
                multipliers[list(played)] = self.multiplier_bounds[0]
        multipliers = self.validate_multipliers(multipliers)
        if played:
            multipliers[list(played)] = 0.0
        ids = self.market.population.ids
        values = self.tick_values() if with_values else None
        by_id = {int(ids[row]): bids for row, bids in played.items()}
        result = self.market.step(multipliers, impression_bids=by_id or None, log_impressions=log_impressions)
        self._values = None
        self.observations.update(result)
        rewards = np.where(self._live, self._rewards.rewards(result), 0.0)
        truncated = self._live & self.market.done  # see Episode End: the last tick ends everyone's day
        terminated = truncated | (self._live & (result.budget_left < self.market.budget_floor))
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
            impression_bids={row: np.asarray(bids, dtype=np.float64) for row, bids in played.items()} or None,
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
        values = self._action_values(actions)
        if self.action_scale == "unit":
            values = self.actions_to_multipliers(values, [f"action of {name}" for name in actions])
        multipliers[rows] = values
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

    def actions_to_multipliers(self, actions: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Agents' actions -> multipliers. With ``action_scale="unit"`` each action must lie in
        ``[-1, 1]`` (``names[i]`` names action ``i`` in the error); multipliers are checked
        against their bounds by :meth:`step_arrays`."""
        if self.action_scale != "unit":
            return actions
        bad = ~(np.isfinite(actions) & (np.abs(actions) <= 1.0))
        if bad.any():
            index = int(np.argmax(bad))
            raise ActionError(f"{names[index]} must be a finite number in [-1, 1] (action_scale='unit'), got {actions[index]}")
        return self.to_multipliers(actions)

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
