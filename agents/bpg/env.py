"""The RLlib multi-agent view of the PettingZoo market used to train BPG.

:class:`BPGMarketEnv` wraps :class:`~auctionsim.envs.parallel.AuctionParallelEnv` (the PettingZoo
env) and drives it through its array API. RLlib agents are *roles*, not advertisers:

* ``population``: every advertiser that follows the shared policy ``pi_theta(a | s_i, i)``, as
  one RLlib agent whose observation stacks their rows, ``(N, C)``, and whose action is ``(N,)``;
* ``nu_bar``: the one advertiser that deviates to the unified optimizer in a deviation episode;
* ``x_star``: the one advertiser that plays the unified solution in a weighted-POMDP episode.

Why roles: RLlib's per-agent bookkeeping costs ~0.2 ms per agent-step on this machine (measured
in ``benchmarks/bpg.py``), so one RLlib agent per advertiser would make every tick of a
100-advertiser market cost ~20 ms before the auction runs (the engine needs ~1 ms). As a stacked
agent, the population costs one RLlib step per tick whatever N is, and its RLModule applies the
same per-advertiser network to every row, so the policy is exactly the paper's shared
``pi_theta(a | s_i, i)`` and each advertiser still sees only its own row (partial observability).

Observation rows (float32), ``C = D + 5``: the ``D`` features of
:mod:`auctionsim.envs.observations` (the policy sees only these), then five bookkeeping columns
the policy network never reads:

* ``role``: 0 finished, 1 bids with theta, 2 deviates to nu-bar, 3 plays x*;
* ``row``: the advertiser's position in the population (to look up per-advertiser weights);
* ``signal``: the return signal the previous tick earned for this row's policy-gradient term
  (0 at reset). The learner rebuilds per-row rewards from it (see :mod:`agents.bpg.learner`);
* ``group``: the episode's group in its phase: the ``group_size`` episodes of a group replay the
  same market seed and deviator with their own exploration noise (common random numbers; the
  learner's baseline is the other members' return);
* ``tick``: ticks played before this observation (0 at reset).

Episode kinds (set by the algorithm before sampling, see :meth:`BPGMarketEnv.set_phase`), and
the signal each row's policy is credited with (Table 4 of the paper):

* ``cooperative``: all on theta; every row gets ``sum_j (1 + lambda_j) r_j`` (L1's Q_theta);
* ``selfish``: all on theta; row j gets ``r_j`` (SAB: each advertiser its own return);
* ``deviation``: advertiser i ~ q deviates to nu-bar; every row gets ``r_i`` (L_s, L'_g);
* ``weighted``: advertiser i ~ q plays x* (the weighted POMDP); every row gets ``r_i`` (L*_w
  for theta, the standard policy gradient for x*).

Signals are divided by ``reward_scale`` (a mean advertiser's return) to keep them O(1).

Actions are log bid multipliers in ``[log_multiplier_low, log(high bound)]``; the env bids
``exp(action)``, so a Gaussian policy explores multiplicatively around its mean.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from agents.equilibrium import MarketSpec, as_market_spec
from auctionsim import presets
from auctionsim.envs.parallel import AuctionParallelEnv
from auctionsim.errors import ConfigError, describe
from auctionsim.market import Market
from auctionsim.validation import check_int, check_number

__all__ = [
    "market_spec",
    "sized_market",
    "BPGMarketEnv",
    "POPULATION",
    "NU_BAR",
    "X_STAR",
    "EPISODE_KINDS",
    "ROLE_FINISHED",
    "ROLE_THETA",
    "ROLE_NU_BAR",
    "ROLE_X_STAR",
    "AUX_COLUMNS",
    "ROLE",
    "ROW",
    "SIGNAL",
    "GROUP",
    "TICK",
]

POPULATION, NU_BAR, X_STAR = "population", "nu_bar", "x_star"
EPISODE_KINDS = ("cooperative", "selfish", "deviation", "weighted")
ROLE_FINISHED, ROLE_THETA, ROLE_NU_BAR, ROLE_X_STAR = 0, 1, 2, 3
AUX_COLUMNS = ("role", "row", "signal", "group", "tick")
ROLE, ROW, SIGNAL, GROUP, TICK = range(len(AUX_COLUMNS))  # positions after the D features
_DEVIATOR_OF_KIND = {"deviation": (NU_BAR, ROLE_NU_BAR), "weighted": (X_STAR, ROLE_X_STAR)}


def _check_size(n_advertisers: object) -> None:
    check_int("n_advertisers", n_advertisers, low=2)


def sized_market(n_advertisers: int, n_categories: int = 6, preset: str = "auctionnet", **overrides: Any) -> Market:
    """A market with the config of ``preset`` (plus ``overrides``) and a population of
    ``n_advertisers`` drawn by :func:`auctionsim.presets.large_population` (AuctionNet's budget
    and CPA ranges, budgets scaled by impressions per advertiser). History recording is off."""
    _check_size(n_advertisers)
    scenario = presets.get(preset, **overrides)
    population = presets.large_population(n_advertisers, n_categories, scenario.market.impressions_per_episode)
    return Market(scenario.market, population, record_history=False)


def market_spec(n_advertisers: int | None = None, preset: str = "auctionnet", n_categories: int = 6, **overrides: Any) -> MarketSpec:
    """The :class:`~agents.equilibrium.MarketSpec` of a preset market (``n_advertisers=None``)
    or of a preset's market config with a drawn population of another size (picklable, so
    RLlib's EnvRunners and the equilibrium tooling's Ray tasks can rebuild it)."""
    if n_advertisers is None:
        return MarketSpec(preset=preset, overrides=overrides)
    _check_size(n_advertisers)
    presets.get(preset, **overrides)  # fail now on a bad preset or override, not in a worker
    factory = functools.partial(sized_market, n_advertisers, n_categories, preset, **overrides)
    return MarketSpec(preset=None, factory=factory, label=f"{preset} N={n_advertisers}")


class BPGMarketEnv(MultiAgentEnv):
    """RLlib ``MultiAgentEnv`` with the roles ``population``, ``nu_bar`` and ``x_star`` (see module doc).

    Args:
        config: RLlib env config with ``market`` (an :class:`~agents.equilibrium.MarketSpec`,
            a preset name or a market factory; rewards are value won, BPG's return),
            ``log_multiplier_low`` (default -3: multipliers from 0.05 up to the env's bound)
            and, optionally, the first phase (keys of :meth:`set_phase`).
    """

    def __init__(self, config: dict | None = None) -> None:
        super().__init__()
        config = dict(config or {})
        self.spec = as_market_spec(config.get("market", "auctionnet"))
        self.core = AuctionParallelEnv(self.spec.build(), reward="value")
        self.n = self.core.max_num_agents
        self.n_features = self.core.observations.dimension
        high = float(np.log(self.core.multiplier_bounds[1]))
        low = float(config.get("log_multiplier_low", -3.0))
        if not np.isfinite(low) or low >= high:
            raise ConfigError(f"log_multiplier_low must be finite and below log(max multiplier) = {high:.3f}, got {describe(low)}")
        self.action_bounds = (low, high)
        columns = self.n_features + len(AUX_COLUMNS)
        self.possible_agents = [POPULATION, NU_BAR, X_STAR]
        self.agents = []
        rows = {POPULATION: self.n, NU_BAR: 1, X_STAR: 1}
        self.observation_spaces = {
            agent: gym.spaces.Box(-np.inf, np.inf, (k, columns), np.float32) for agent, k in rows.items()
        }
        self.action_spaces = {agent: gym.spaces.Box(low, high, (k,), np.float32) for agent, k in rows.items()}
        self.observation_space = gym.spaces.Dict(self.observation_spaces)
        self.action_space = gym.spaces.Dict(self.action_spaces)
        self.kind = "cooperative"
        self._team_weights = np.ones(self.n)
        self._sampling = np.full(self.n, 1.0 / self.n)
        self._reward_scale = 1.0
        self._phase_seed = 0
        self._group_size = 1
        self._episode_in_phase = 0
        self._group = 0
        self._tick = 0
        self._deviator = -1
        self._roles = np.zeros(self.n)
        self._signal = np.zeros(self.n)
        self._features = np.zeros((self.n, self.n_features), dtype=np.float32)
        phase = {key: config[key] for key in ("kind", "team_weights", "sampling", "reward_scale", "seed", "group_size") if key in config}
        if phase:
            self.set_phase(**phase)

    # ------------------------------------------------------------------ phase control
    def set_phase(
        self,
        kind: str = "cooperative",
        *,
        team_weights: np.ndarray | None = None,
        sampling: np.ndarray | None = None,
        reward_scale: float = 1.0,
        seed: int = 0,
        group_size: int = 1,
        first_episode: int = 0,
    ) -> None:
        """Set the kind of the next episodes and what their signals need.

        Args:
            kind: one of :data:`EPISODE_KINDS`.
            team_weights: ``(N,)`` weights ``1 + lambda_i`` of the cooperative signal.
            sampling: ``(N,)`` distribution the deviator of deviation/weighted episodes is drawn from.
            reward_scale: currency per unit of signal (a mean advertiser's return), > 0.
            seed: seed of this phase; episode ``e`` of the phase uses ``(seed, e // group_size)``
                for its market seed and its deviator, so a phase replays exactly.
            group_size: consecutive episodes that share a market seed and a deviator (>= 1).
            first_episode: index in the phase of the next episode (>= 0): a runner that plays
                episodes ``a, a+1, ...`` of a phase split across runners starts at ``a``.
        """
        if kind not in EPISODE_KINDS:
            raise ConfigError(f"kind must be one of {', '.join(EPISODE_KINDS)}, got {describe(kind)}")
        check_number("reward_scale", reward_scale, low=0.0, low_open=True)
        check_int("group_size", group_size, low=1)
        check_int("first_episode", first_episode, low=0)
        if team_weights is not None:
            team_weights = np.asarray(team_weights, dtype=np.float64)
            if team_weights.shape != (self.n,) or not np.all(np.isfinite(team_weights)):
                raise ConfigError(f"team_weights must be {self.n} finite numbers, got {describe(team_weights)}")
            self._team_weights = team_weights
        if sampling is not None:
            sampling = np.asarray(sampling, dtype=np.float64)
            if sampling.shape != (self.n,) or not np.all(np.isfinite(sampling)) or (sampling < 0).any() or sampling.sum() <= 0:
                raise ConfigError(f"sampling must be {self.n} non-negative numbers with a positive sum, got {describe(sampling)}")
            self._sampling = sampling / sampling.sum()
        self.kind = kind
        self._reward_scale = float(reward_scale)
        self._phase_seed = int(seed)
        self._group_size = int(group_size)
        self._episode_in_phase = int(first_episode)

    @property
    def deviator(self) -> int:
        """Row of this episode's deviating advertiser (-1 in cooperative/selfish episodes)."""
        return self._deviator

    # ------------------------------------------------------------------ MultiAgentEnv API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._group = self._episode_in_phase // self._group_size
        generator = np.random.default_rng([self._phase_seed, self._group])
        self._episode_in_phase += 1
        self._tick = 0
        market_seed = int(generator.integers(0, 2**62))
        self._features = self.core.reset_arrays(market_seed)
        self._signal = np.zeros(self.n)
        self._roles = np.full(self.n, float(ROLE_THETA))
        self._deviator = -1
        self.agents = [POPULATION]
        if self.kind in _DEVIATOR_OF_KIND:
            agent, role = _DEVIATOR_OF_KIND[self.kind]
            self._deviator = int(generator.choice(self.n, p=self._sampling))
            self._roles[self._deviator] = role
            self.agents.append(agent)
        infos = {agent: {"market_seed": market_seed, "deviator": self._deviator} for agent in self.agents}
        return self._observations(self.agents), infos

    def step(self, action_dict: dict):
        low, high = self.action_bounds
        multipliers = np.exp(np.clip(np.asarray(action_dict[POPULATION], dtype=np.float64).reshape(self.n), low, high))
        deviating_agent = None
        if self._deviator >= 0:
            deviating_agent = self.agents[1]
            deviation = np.asarray(action_dict[deviating_agent], dtype=np.float64).reshape(())
            multipliers[self._deviator] = np.exp(np.clip(deviation, low, high))
        step = self.core.step_arrays(multipliers)
        self._tick += 1
        self._features = step.observations
        self._signal = self._signals(step.rewards)
        finished = ~step.live
        self._roles[finished] = ROLE_FINISHED
        over = bool(self.core.market.done) or bool(finished.all())
        rewards = {POPULATION: float(self._signal.mean())}
        terminateds = {POPULATION: False}
        truncateds = {POPULATION: False}
        if deviating_agent is not None:
            rewards[deviating_agent] = float(self._signal[self._deviator])
            deviator_done = bool(finished[self._deviator])
            # Out of budget (the parallel env also reports the day's end as terminated).
            terminateds[deviating_agent] = bool(step.result.budget_left[self._deviator] < self.core.market.budget_floor)
            truncateds[deviating_agent] = deviator_done and not terminateds[deviating_agent]
            if deviator_done and not over:
                # Nothing the others do later changes the deviator's return: their signal is 0
                # from here on, so the episode ends (terminated: nothing left to bootstrap).
                terminateds[POPULATION] = True
        if over:
            truncateds[POPULATION] = not terminateds[POPULATION]
        observations = self._observations(self.agents)
        done = terminateds[POPULATION] or truncateds[POPULATION]
        terminateds["__all__"] = done
        truncateds["__all__"] = False
        if done:
            self.agents = []
        return observations, rewards, terminateds, truncateds, {}

    # ------------------------------------------------------------------ helpers
    def _signals(self, rewards: np.ndarray) -> np.ndarray:
        """Per-row return signal of one tick (see module doc), in mean-advertiser units."""
        if self.kind == "cooperative":
            signal = np.full(self.n, float(self._team_weights @ rewards))
        elif self.kind == "selfish":
            signal = rewards.astype(np.float64)
        else:
            signal = np.full(self.n, float(rewards[self._deviator]))
        return signal / self._reward_scale

    def _observations(self, agents: list[str]) -> dict[str, np.ndarray]:
        rows = np.empty((self.n, self.n_features + len(AUX_COLUMNS)), dtype=np.float32)
        rows[:, : self.n_features] = self._features
        aux = rows[:, self.n_features :]
        aux[:, ROLE] = self._roles
        aux[:, ROW] = np.arange(self.n)
        aux[:, SIGNAL] = self._signal
        aux[:, GROUP] = self._group
        aux[:, TICK] = self._tick
        observations = {}
        for agent in agents:
            if agent == POPULATION:
                # The deviator's row keeps its role (2 or 3): the population acts only on
                # role-1 rows, and the learner reads the episode kind from the roles.
                observations[agent] = rows.copy()
            else:
                observations[agent] = rows[self._deviator : self._deviator + 1].copy()
        return observations
