"""BPG (Algorithm 1 of the BPG paper) as an RLlib Algorithm on the new API stack.

One training iteration (``Algorithm.train()``) is one iteration ``k`` of Algorithm 1:

0. *Pre-training* (before the first dual step only): ``xstar_pretrain_updates`` updates of the
   unified solution x* against the initial population policy, so that the first dual step
   measures a real best response rather than x*'s initial weights (x*, theta and nu-bar have
   initial weights of their own: seeds ``(seed, MODULE_INIT, module)``).
1. *Unified solution* (lines 1-2): ``xstar_updates`` rounds of sampling ``xstar_episodes``
   weighted-POMDP episodes (one advertiser ``i ~ q^k`` plays ``x*``, the others ``theta``)
   and a PPO update of ``x*`` alone.
2. *Dual update* (line 3, Eq. 13): the returns ``G_i(theta)`` of *all* advertisers come from
   the same ``dual_episodes`` population episodes; the unified solution's deviations
   ``G_i(x*; theta)`` are measured for ``dual_deviators`` advertisers per iteration on the same
   market seeds (common random numbers), in parallel Ray tasks when ``dual_workers > 0``.
   Deterministic rollouts through the env's array API, no RLlib (this is measurement, not
   sampling for gradients). Then ``lambda_i = [G_i(x*) - G_i(theta) - epsilon SW]_+`` in
   mean-advertiser units (see :mod:`agents.bpg.duals`).
3. *Primal update* (line 4, Eqs. 11 and 14): ``episodes_per_kind`` episodes of each kind the
   gradient needs (cooperative; deviation to ``nu-bar``; weighted POMDP with ``x*``), one PPO
   update of ``theta`` on all of them and one of ``nu-bar`` on the deviation episodes, each
   episode weighted by its coefficient in gradient (11). Deviation and weighted episodes are
   paired (common random numbers): episode ``e`` of both kinds has the same market seed, the
   same deviator and the same exploration noise for theta's rows, so the difference of their
   terms in gradient (11), ``(xi - lambda_bar) grad G_i(nu) - xi grad G_i(x*)``, is estimated
   from paired episodes. With ``lambda_bar = 0`` only cooperative episodes are sampled and
   ``nu-bar`` is not updated (Appendix C.2.1). Each update divides its coefficients by the
   largest one (at least 1), a step size that keeps Adam's steps the same size whether lambda
   is 0 or not (:meth:`~agents.bpg.learner.BPGTorchLearner.set_primal_weights`).
4. *Sampling ratios* (line 5): ``kappa = lambda / lambda_bar`` (mixed with a little uniform,
   ``kappa_uniform_mix``) becomes ``q^{k+1}``.

Cost in N. Sampling and learning cost one RLlib step per tick whatever N is (the population is
one RLlib agent with N rows, see :mod:`agents.bpg.env`); the dual step measures a fixed number of
deviators (``dual_deviators``), not N. What still grows with N is the market itself: an episode
with N times the traffic costs N times as much to simulate (``benchmarks/bpg.py``).

Which deviators the dual step measures (when ``dual_deviators < N``): half of them are the
advertisers with the largest current gain estimates (so the leaders, which decide the Max
Exploitability and the lambdas that matter, are re-measured every iteration), the rest the
next advertisers of a fixed seeded round robin (so every advertiser is measured every
``ceil(N / (dual_deviators / 2))`` iterations at the latest). The others keep their last
measured gain; the maximum of these estimates is the reported x*-based Max Exploitability.

The paper takes one gradient step per primal update; we take PPO's few clipped epochs on the
fresh episodes (a trust-region version of the same step). The baselines run through the same
loop with another ``objective`` (see :data:`agents.bpg.duals.POPULATION_OBJECTIVES`); for them
the dual quantities are only measured (they make the exploitability curves), never used.

Randomness is keyed by ``(seed, iteration, phase)`` (:class:`SeedPhase`): market seeds,
deviators, exploration noise and minibatch shuffling, so a run restored from a checkpoint
continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import copy
import enum
import functools
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, LEARNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME

from agents.base import TorchPolicy
from agents.bpg.duals import DualState, check_objective, dual_update, is_constrained, primal_weights
from agents.bpg.env import AUX_COLUMNS, GROUP, NU_BAR, POPULATION, ROLE, X_STAR, BPGMarketEnv
from agents.bpg.learner import ADVANTAGE_ESTIMATORS, BPGTorchLearner
from agents.bpg.module import ActorDeviation, RowPolicyModule
from agents.equilibrium import DeviationEvaluator, MarketSpec, as_market_spec, play_population
from auctionsim.errors import ConfigError, describe
from auctionsim.validation import check_int
from auctionsim.tracking import seed_everything

__all__ = ["BPG", "BPGConfig", "BPGState", "SeedPhase", "derive_seed", "deviation_returns", "group_shards"]

MODULES = (POPULATION, NU_BAR, X_STAR)
#: Seconds to wait for remote EnvRunners to take new weights (a set_state takes milliseconds).
WEIGHT_SYNC_TIMEOUT_S = 600.0


class SeedPhase(enum.IntEnum):
    """Keys of BPG's random streams: ``derive_seed(seed, iteration, phase, ...)`` (per-iteration
    phases) or ``derive_seed(seed, phase, ...)`` (per-run ones). A checkpoint resumes exactly
    only under the values it was written with: add new phases, never renumber."""

    XSTAR_SAMPLE = 0  # (seed, iteration, XSTAR_SAMPLE, update): weighted episodes of the x* phase
    XSTAR_UPDATE = 1  # (seed, iteration, XSTAR_UPDATE, update): x*'s minibatch shuffling
    PRIMAL_SAMPLE = 2  # (seed, iteration, PRIMAL_SAMPLE, stream): primal episodes (see PrimalStream)
    PRIMAL_UPDATE = 3  # (seed, iteration, PRIMAL_UPDATE): theta's minibatch shuffling
    NU_BAR_UPDATE = 4  # (seed, iteration, NU_BAR_UPDATE): nu-bar's minibatch shuffling
    DUAL_MARKETS = 7  # (seed, DUAL_MARKETS, episode): the dual step's market seeds (every iteration)
    MODULE_INIT = 11  # (seed, MODULE_INIT, module index): initial weights of theta, nu-bar, x*
    DUAL_ROUND_ROBIN = 12  # (seed, DUAL_ROUND_ROBIN): order in which deviators are measured
    XSTAR_PRETRAIN = 13  # (seed, XSTAR_PRETRAIN, update, 0 sample / 1 shuffle): x* pre-training


class PrimalStream(enum.IntEnum):
    """Sub-streams of :attr:`SeedPhase.PRIMAL_SAMPLE`: deviation and weighted episodes share one
    (paired episodes, common random numbers)."""

    ALL_THETA = 0  # cooperative or selfish episodes
    PAIRED_DEVIATIONS = 1  # deviation (nu-bar) and weighted (x*) episodes


def map_agent_to_module(agent_id: str, episode: Any = None, **kwargs) -> str:
    """RLlib's policy mapping: each role has its own module (agent ids are the role names)."""
    return agent_id


def derive_seed(*keys: int) -> int:
    """A 32-bit seed from integer keys (NumPy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def deviation_returns(market: MarketSpec, population, deviation, advertiser_ids, seeds) -> np.ndarray:
    """``(k, S)`` returns of ``deviation`` played by each advertiser alone against ``population``
    on each market seed (one dual-step task; also run in-process)."""
    torch.set_num_threads(1)
    return np.stack([DeviationEvaluator(market, population, int(i)).returns(deviation, seeds) for i in advertiser_ids])


def group_shards(episodes: list, count: int) -> list[list]:
    """Split ``episodes`` into ``count`` contiguous shards without splitting an episode group (the
    consecutive episodes with the same group and kind, read from the population's first
    observation), as equal in groups as possible. Raises if there are fewer groups than shards."""
    keys = []
    for episode in episodes:
        first = np.asarray(episode.agent_episodes[POPULATION].get_observations(0))
        n_features = first.shape[-1] - len(AUX_COLUMNS)
        keys.append((int(round(first[:, n_features + ROLE].max())), int(round(first[0, n_features + GROUP]))))
    starts = [index for index in range(len(episodes)) if index == 0 or keys[index] != keys[index - 1]]
    if len(starts) < count:
        raise ConfigError(f"{len(episodes)} episodes in {len(starts)} groups cannot be shared by {count} learners: sample at least one group per learner (episodes_per_kind and xstar_episodes >= num_learners x group_size)")
    bounds = [starts[chunk[0]] for chunk in np.array_split(np.arange(len(starts)), count)] + [len(episodes)]
    return [episodes[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]


class BPGConfig(PPOConfig):
    """Configuration of :class:`BPG`: PPO's settings plus :meth:`bpg`'s.

    Example::

        config = BPGConfig().bpg(market=market_spec(10, impressions_per_episode=20_000), epsilon=0.04, seed=1)
        algo = config.build_algo()
        for _ in range(20):
            result = algo.train()
    """

    def __init__(self, algo_class=None) -> None:
        super().__init__(algo_class=algo_class or BPG)
        self.market: MarketSpec = as_market_spec("auctionnet")
        self.objective = "bpg"
        self.epsilon = 0.08
        self.xi: float | None = None
        self.kappa_uniform_mix = 0.2
        self.dual_step: float | None = None
        self.lambda_max: float | None = None
        self.episodes_per_kind = 4
        self.xstar_episodes = 4
        self.xstar_updates = 2
        self.xstar_pretrain_updates = 6
        self.xstar_lr: float | None = None
        self.dual_episodes = 2
        self.dual_deviators: int | None = None
        self.dual_workers = 0
        self.track_exploitability = True
        self.log_multiplier_low = -3.0
        self.seed_bpg = 0
        self.nu_minibatch_size = 64
        self.group_size = 2
        self.advantages = "group"
        self.learner_rows: int | None = 128
        self.progress = False
        # PPO settings that suit one-day auction episodes.
        self.gamma = 1.0
        self.lambda_ = 0.95
        self.lr = 1e-3
        self.num_epochs = 4
        self.minibatch_size = 64
        self.entropy_coeff = 0.0
        self.use_kl_loss = False
        self.vf_clip_param = 1e6
        self.batch_mode = "complete_episodes"
        # The module's action is the log multiplier the env plays, in training as in evaluation
        # (the deterministic RowActor). RLlib's default, normalize_actions=True, maps actions
        # from [-1, 1] onto [low, high] in its env runners only: training then bid
        # exp(-0.69 + 2.3 a) while evaluation bid exp(a), and the noise was 2.3x wider.
        self.normalize_actions = False
        self.clip_actions = False  # the env clips to its bounds itself
        self.num_env_runners = 0
        self.multi_agent(policies=MODULES, policy_mapping_fn=map_agent_to_module, count_steps_by="agent_steps")
        self._model_settings: dict[str, Any] = {"hidden": [64, 64], "critic_hidden": [64, 64]}
        self._sync_modules()
        self._sync_env()

    def bpg(
        self,
        *,
        market: MarketSpec | str = NotProvided,
        objective: str = NotProvided,
        epsilon: float = NotProvided,
        xi: float | None = NotProvided,
        kappa_uniform_mix: float = NotProvided,
        dual_step: float | None = NotProvided,
        lambda_max: float | None = NotProvided,
        episodes_per_kind: int = NotProvided,
        xstar_episodes: int = NotProvided,
        xstar_updates: int = NotProvided,
        xstar_pretrain_updates: int = NotProvided,
        xstar_lr: float | None = NotProvided,
        dual_episodes: int = NotProvided,
        dual_deviators: int | None = NotProvided,
        dual_workers: int = NotProvided,
        track_exploitability: bool = NotProvided,
        log_multiplier_low: float = NotProvided,
        seed: int = NotProvided,
        nu_minibatch_size: int = NotProvided,
        group_size: int = NotProvided,
        advantages: str = NotProvided,
        learner_rows: int | None = NotProvided,
        model: dict | None = NotProvided,
        progress: bool = NotProvided,
    ) -> "BPGConfig":
        """BPG settings.

        Args:
            market: the market: an :class:`~agents.equilibrium.MarketSpec` (see
                :func:`agents.bpg.env.market_spec` for other population sizes) or a preset name.
            objective: ``"bpg"``, ``"bpg_zero"`` (Section 6.3 ablation), ``"cooperative"``
                (social welfare) or ``"selfish"`` (SAB).
            epsilon: constraint level as a share of social welfare (the paper's Table 1; see
                :func:`agents.bpg.duals.resolve_epsilon` for the relative scale).
            xi: penalty weight of gradient (11), in mean-advertiser units; ``None`` uses N.
                Theorem 5.2 wants it large; nu-bar ascends only while ``xi > lambda_bar``.
            kappa_uniform_mix: uniform share of the deviator sampling (0 is the paper's kappa).
            dual_step: ``None`` (default): Eq. 13's closed-form dual; a number: projected
                gradient ascent on lambda with this step (our option, see
                :func:`agents.bpg.duals.dual_update`).
            lambda_max: cap on each ``lambda_i`` in mean-advertiser units (``None``: no cap).
            episodes_per_kind: primal episodes of each kind per iteration.
            xstar_episodes, xstar_updates: weighted-POMDP episodes per x* update, and updates
                per iteration (Algorithm 1, line 2).
            xstar_pretrain_updates: x* updates against the initial population before the
                first dual step (0: none).
            xstar_lr: learning rate of x* (``None``: ``lr``, theta's and nu-bar's).
            dual_episodes: market seeds averaged in each dual evaluation.
            dual_deviators: advertisers whose x* deviation is measured per iteration (``None``:
                all; see the module doc for which). The others keep their last measured gain.
            dual_workers: parallel Ray tasks of the dual step (0: in this process).
            track_exploitability: learn x* and measure the duals also for the baselines.
            log_multiplier_low: lower bound of the log bid multiplier action.
            seed: seed of the run (initial weights, markets, deviators, exploration, shuffling).
            nu_minibatch_size: minibatch size (timesteps) of the nu-bar and x* updates.
            group_size: consecutive sampled episodes that replay one market seed and deviator
                (common random numbers; the ``"group"`` advantages' baseline).
            advantages: ``"group"`` (leave-one-out baseline over each group, the default) or
                ``"gae"`` (per-row critic); see :mod:`agents.bpg.learner`.
            learner_rows: above this many advertisers, theta's loss is estimated per tick from
                this many sampled rows (unbiased; ``None``: all rows); see :mod:`agents.bpg.learner`.
            model: network sizes: ``hidden`` (actor) and ``critic_hidden`` layer widths,
                ``log_std_init`` (see :class:`~agents.bpg.module.RowPolicyModule`).
            progress: show a progress bar over the phases of each iteration.
        """
        settings = {
            "objective": objective, "epsilon": epsilon, "xi": xi, "kappa_uniform_mix": kappa_uniform_mix,
            "dual_step": dual_step, "lambda_max": lambda_max, "episodes_per_kind": episodes_per_kind, "xstar_episodes": xstar_episodes, "xstar_updates": xstar_updates,
            "xstar_pretrain_updates": xstar_pretrain_updates, "xstar_lr": xstar_lr,
            "dual_episodes": dual_episodes, "dual_deviators": dual_deviators, "dual_workers": dual_workers,
            "track_exploitability": track_exploitability, "log_multiplier_low": log_multiplier_low,
            "seed_bpg": seed, "nu_minibatch_size": nu_minibatch_size, "group_size": group_size,
            "advantages": advantages, "learner_rows": learner_rows, "progress": progress,
        }  # fmt: skip
        for name, value in settings.items():
            if value is not NotProvided:
                setattr(self, name, value)
        if market is not NotProvided:
            self.market = as_market_spec(market)
        if model is not NotProvided:
            self._model_settings = {**self._model_settings, **dict(model or {})}
        if seed is not NotProvided:
            self.debugging(seed=seed)
        self._sync_modules()
        self._sync_env()
        return self

    def _sync_modules(self) -> None:
        """One RLModule spec per module, each with initial weights of its own (seed
        ``(seed, MODULE_INIT, index)``), and x*'s learning rate."""
        specs = {
            module_id: RLModuleSpec(
                module_class=RowPolicyModule,
                model_config={**self._model_settings, "init_seed": derive_seed(self.seed_bpg, SeedPhase.MODULE_INIT, index)},
            )
            for index, module_id in enumerate(MODULES)
        }
        overrides = {X_STAR: {"lr": self.xstar_lr}} if self.xstar_lr is not None else {}
        self.rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs), algorithm_config_overrides_per_module=overrides)

    def module_config(self, module_id: str) -> dict:
        """The ``model_config`` of one module (its network sizes and initial-weight seed)."""
        return dict(self.rl_module_spec.rl_module_specs[module_id].model_config)

    def _sync_env(self) -> None:
        self.environment(env=BPGMarketEnv, env_config={"market": self.market, "log_multiplier_low": self.log_multiplier_low})

    def get_default_learner_class(self):
        return BPGTorchLearner

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.market, MarketSpec):
            raise ConfigError(f"market must be a MarketSpec, got {describe(self.market)}")
        check_objective(self.objective)
        if not (np.isfinite(self.epsilon) and self.epsilon >= 0):
            raise ConfigError(f"epsilon must be a finite number >= 0, got {describe(self.epsilon)}")
        if self.xi is not None and not (np.isfinite(self.xi) and self.xi > 0):
            raise ConfigError(f"xi must be a finite number > 0 or None, got {describe(self.xi)}")
        for name in ("dual_step", "lambda_max"):
            if getattr(self, name) is not None and not (np.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ConfigError(f"{name} must be a finite number > 0 or None, got {describe(getattr(self, name))}")
        if self.xstar_lr is not None and not (np.isfinite(self.xstar_lr) and self.xstar_lr > 0):
            raise ConfigError(f"xstar_lr must be a finite number > 0 or None, got {describe(self.xstar_lr)}")
        if not 0.0 <= self.kappa_uniform_mix <= 1.0:
            raise ConfigError(f"kappa_uniform_mix must be in [0, 1], got {describe(self.kappa_uniform_mix)}")
        if self.advantages not in ADVANTAGE_ESTIMATORS:
            raise ConfigError(f"advantages must be one of {', '.join(ADVANTAGE_ESTIMATORS)}, got {describe(self.advantages)}")
        for name, low in (("episodes_per_kind", 1), ("xstar_episodes", 1), ("dual_episodes", 1), ("nu_minibatch_size", 1), ("group_size", 1),
                          ("xstar_updates", 0), ("xstar_pretrain_updates", 0), ("dual_workers", 0)):  # fmt: skip
            check_int(name, getattr(self, name), low=low)
        for name in ("learner_rows", "dual_deviators"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), low=1)
        if is_constrained(self.objective) and not self.track_exploitability:
            raise ConfigError(f"objective {self.objective!r} needs the unified solution: track_exploitability must be True")
        if self.num_envs_per_env_runner != 1:
            raise ConfigError(f"num_envs_per_env_runner must be 1 (BPG seeds every episode itself; add env runners instead), got {describe(self.num_envs_per_env_runner)}")
        if self.num_learners > 1:
            groups = min(-(-self.episodes_per_kind // self.group_size), -(-self.xstar_episodes // self.group_size))
            if groups < self.num_learners:
                raise ConfigError(f"num_learners = {self.num_learners} needs at least one episode group per learner in every update: episodes_per_kind and xstar_episodes must be >= num_learners x group_size = {self.num_learners * self.group_size}, got {self.episodes_per_kind} and {self.xstar_episodes}")


@dataclass
class BPGState:
    """What BPG carries between iterations besides the networks (saved in checkpoints).

    Attributes:
        iteration: completed BPG iterations.
        gains: ``(N,)`` last measured ``G_i(x*; theta) - G_i(theta)`` (currency).
        measured: ``(N,)`` whether each advertiser's gain has been measured at least once.
        sampling: ``(N,)`` deviator sampling distribution ``q`` for the next x* phase.
        lambdas: ``(N,)`` the last multipliers (the ascent dual's memory; ``None`` in
            checkpoints written before it existed, read as zeros).
        reward_scale: currency per signal unit (a mean advertiser's return at iteration 0).
        dual_cursor: position in the round robin of the dual step's deviators.
        history: one dict per iteration (see :meth:`BPG.training_step`).
    """

    iteration: int = 0
    gains: np.ndarray | None = None
    measured: np.ndarray | None = None
    sampling: np.ndarray | None = None
    reward_scale: float | None = None
    dual_cursor: int = 0
    history: list = field(default_factory=list)
    lambdas: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {
            "iteration": self.iteration,
            "gains": None if self.gains is None else self.gains.copy(),
            "measured": None if self.measured is None else self.measured.copy(),
            "sampling": None if self.sampling is None else self.sampling.copy(),
            "reward_scale": self.reward_scale,
            "dual_cursor": self.dual_cursor,
            "history": copy.deepcopy(self.history),
            "lambdas": None if self.lambdas is None else self.lambdas.copy(),
        }

    @classmethod
    def from_dict(cls, state: dict) -> "BPGState":
        return cls(**copy.deepcopy(state))


class BPG(PPO):
    """The Bi-level Policy Gradient framework (see module doc). Build with :class:`BPGConfig`."""

    @classmethod
    def get_default_config(cls) -> BPGConfig:
        return BPGConfig()

    def _setup_logdir(self) -> None:
        # Ray Tune's Trainable makes an (unused) trial folder under ~/ray_results; BPG writes its
        # results where the caller saves them, so its trial folder is a temporary one removed
        # by stop().
        if self._storage:
            return super()._setup_logdir()
        self._logdir = tempfile.mkdtemp(prefix="bpg-trial-")
        self._owns_logdir = True

    def stop(self) -> None:
        super().stop()
        if getattr(self, "_owns_logdir", False):
            shutil.rmtree(self._logdir, ignore_errors=True)

    def setup(self, config: BPGConfig) -> None:
        torch.set_num_threads(1)
        super().setup(config)
        self.market_env = BPGMarketEnv(dict(config.env_config))
        self.n_advertisers = n = self.market_env.n
        self.xi = float(config.xi) if config.xi is not None else float(n)
        self._eval_modules = {
            module_id: RowPolicyModule(
                observation_space=self.market_env.observation_spaces[module_id],
                action_space=self.market_env.action_spaces[module_id],
                inference_only=True,
                model_config=config.module_config(module_id),
            )
            for module_id in (POPULATION, X_STAR)
        }
        self.bpg_state = BPGState(gains=np.zeros(n), measured=np.zeros(n, dtype=bool), sampling=np.full(n, 1.0 / n), lambdas=np.zeros(n))
        self.duals: DualState | None = None
        self._last_revenue = float("nan")
        self._round_robin = np.random.default_rng(derive_seed(config.seed_bpg, SeedPhase.DUAL_ROUND_ROBIN)).permutation(n)

    # ------------------------------------------------------------------ one iteration
    def training_step(self) -> None:
        config: BPGConfig = self.config
        state = self.bpg_state
        started = time.perf_counter()
        iteration = state.iteration
        constrained = is_constrained(config.objective)
        phases = self._phase_bar(iteration)
        timings: dict[str, float] = {}
        if state.reward_scale is None:
            # The signal unit: a mean advertiser's return under the initial population policy.
            returns = play_population(config.market, self._population_policy(), self._episode_seeds()).returns
            state.reward_scale = max(float(returns.mean()), 1e-9)

        # Algorithm 1, lines 1-2: the unified solution x* of the weighted POMDP (q^k), pre-trained
        # against the initial population before the first dual step.
        clock = time.perf_counter()
        if config.track_exploitability:
            if iteration == 0:
                for update in range(config.xstar_pretrain_updates):
                    self._xstar_update(derive_seed(config.seed_bpg, SeedPhase.XSTAR_PRETRAIN, update, 0), derive_seed(config.seed_bpg, SeedPhase.XSTAR_PRETRAIN, update, 1))
                    phases.set_postfix_str(f"x* pre-training {update + 1}/{config.xstar_pretrain_updates}")
            for update in range(config.xstar_updates):
                self._xstar_update(derive_seed(config.seed_bpg, iteration, SeedPhase.XSTAR_SAMPLE, update), derive_seed(config.seed_bpg, iteration, SeedPhase.XSTAR_UPDATE, update))
        timings["xstar_seconds"] = time.perf_counter() - clock
        phases.update(1)

        # Line 3: dual update, Eq. 13.
        clock = time.perf_counter()
        duals = self._dual_step()
        self.duals = duals
        timings["dual_seconds"] = time.perf_counter() - clock
        phases.update(1)

        # Line 4: primal update with gradient (11) (or the objective's variant).
        clock = time.perf_counter()
        weights = primal_weights(duals, config.objective, self.xi)
        primal_episodes: dict[str, list] = {}
        for kind in weights.episode_kinds:
            stream = PrimalStream.PAIRED_DEVIATIONS if kind in ("deviation", "weighted") else PrimalStream.ALL_THETA
            primal_episodes[kind] = self._sample(
                kind,
                config.episodes_per_kind,
                derive_seed(config.seed_bpg, iteration, SeedPhase.PRIMAL_SAMPLE, stream),
                team_weights=weights.team_weights,
                sampling=duals.sampling,
            )
        coefficients = {"deviation": weights.deviation, "weighted": weights.weighted, "nu_bar": weights.nu_bar}
        all_episodes = [episode for episodes in primal_episodes.values() for episode in episodes]
        self._update(all_episodes, [POPULATION], coefficients, config.minibatch_size, derive_seed(config.seed_bpg, iteration, SeedPhase.PRIMAL_UPDATE))
        if "deviation" in primal_episodes:
            self._update(primal_episodes["deviation"], [NU_BAR], coefficients, config.nu_minibatch_size, derive_seed(config.seed_bpg, iteration, SeedPhase.NU_BAR_UPDATE))
        timings["primal_seconds"] = time.perf_counter() - clock
        phases.update(1)
        phases.close()

        # Line 5: kappa from lambda; q^{k+1} drives the next x* phase.
        state.sampling = duals.sampling.copy()
        state.iteration += 1
        record = {
            "iteration": state.iteration,
            "objective": config.objective,
            "epsilon": duals.epsilon,
            **duals.summary(),
            "lambda_active": bool(constrained and duals.lambda_sum > 0),
            "revenue": self._last_revenue,
            **timings,
            "time_s": time.perf_counter() - started,
        }
        state.history.append(record)
        for key, value in record.items():
            if key != "objective":
                self.metrics.log_value(("bpg", key), float(value), window=1)

    def _phase_bar(self, iteration: int):
        from tqdm.auto import tqdm

        return tqdm(total=3, desc=f"BPG iteration {iteration + 1}: x*, dual, primal", unit="phase", leave=False, disable=not self.config.progress)

    def _xstar_update(self, sample_seed: int, update_seed: int) -> None:
        """One x* update (Algorithm 1, line 2): weighted-POMDP episodes with deviators drawn from
        the current ``q``, then PPO on x* alone."""
        episodes = self._sample("weighted", self.config.xstar_episodes, sample_seed)
        self._update(episodes, [X_STAR], None, self.config.nu_minibatch_size, update_seed)

    # ------------------------------------------------------------------ sampling and updates
    def _sample(self, kind: str, n_episodes: int, seed: int, *, team_weights=None, sampling=None) -> list:
        """``n_episodes`` episodes of ``kind``, split across the EnvRunners (remote ones when there
        are any, else the local one), in episode order.

        Episode ``e`` of the call draws everything from ``seed`` and ``e``: its market seed and
        deviator from ``(seed, e // group_size)`` (the env's phase), its exploration noise and
        torch's global generator from ``derive_seed(seed, e)``. So the episodes do not depend on
        how many runners there are, or on which node each runs (runner ``r`` of ``R`` plays a
        contiguous share of ``0..n_episodes-1``), and two calls with the same seed replay the same
        episodes (the primal step pairs deviation and weighted episodes this way)."""
        state = self.bpg_state
        sampling = state.sampling if sampling is None else sampling
        phase = dict(team_weights=team_weights, sampling=sampling, reward_scale=state.reward_scale, seed=seed, group_size=self.config.group_size)
        runners = self.env_runner_group.num_remote_env_runners()
        shares = np.array_split(np.arange(n_episodes), max(runners, 1))

        def sample(env_runner):
            # Torch on one thread: the networks are small, and on a busy 2-core machine
            # multi-threaded torch is ~50x slower per call (measured).
            episodes = []
            for episode in shares[max(env_runner.worker_index - 1, 0)]:
                episode_seed = derive_seed(seed, int(episode))
                seed_everything(episode_seed, torch_threads=1)
                for index, module_id in enumerate(MODULES):
                    env_runner.module[module_id].set_exploration_seed(derive_seed(episode_seed, 100 + index))
                env_runner.env.envs[0].unwrapped.set_phase(kind, first_episode=int(episode), **phase)
                episodes += env_runner.sample(num_episodes=1, explore=True)
            return env_runner.worker_index, episodes, env_runner.get_metrics()

        results = sorted(self.env_runner_group.foreach_env_runner(sample, local_env_runner=runners == 0), key=lambda result: result[0])
        episodes = [episode for _, runner_episodes, _ in results for episode in runner_episodes]
        self.metrics.aggregate([metrics for _, _, metrics in results], key=ENV_RUNNER_RESULTS)
        return episodes

    def _update(self, episodes: list, module_ids: list[str], coefficients: dict | None, minibatch_size: int, seed: int) -> None:
        """One PPO update of ``module_ids`` on ``episodes`` with the primal coefficients."""

        def prepare(learner) -> None:
            seed_everything(seed, torch_threads=1)
            learner.set_modules_to_update(module_ids)
            if coefficients is not None:
                learner.set_primal_weights(coefficients)

        self.learner_group.foreach_learner(prepare)
        timesteps = {NUM_ENV_STEPS_SAMPLED_LIFETIME: self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0)}
        settings = dict(timesteps=timesteps, num_epochs=self.config.num_epochs, minibatch_size=minibatch_size, shuffle_batch_per_epoch=True)
        learners = len(self.learner_group) if self.learner_group.is_remote else 1
        if learners == 1:
            results = self.learner_group.update(episodes=episodes, **settings)
        else:
            # Data-parallel learners: each gets whole episode groups (the group baseline needs
            # every member of a group), and all take the same number of minibatch steps (their
            # gradients are averaged at every step), as RLlib computes it for its own shards.
            import ray
            from ray.rllib.core.learner.training_data import TrainingData

            shards = [ray.put(shard) for shard in group_shards(episodes, learners)]
            steps = TrainingData._compute_num_total_minibatches(episodes, learners, minibatch_size, self.config.num_epochs)
            results = self.learner_group.update(episodes_refs=shards, num_total_minibatches=steps, **settings)
        self.metrics.aggregate(results, key=LEARNER_RESULTS)
        # Wait for the previous weight sync: RLlib drops a sync to a remote EnvRunner that still
        # has one in flight (max_requests_in_flight_per_env_runner), which left a runner sampling
        # with stale weights when updates followed each other quickly (x*, theta, nu_bar).
        self.env_runner_group.sync_weights(from_worker_or_learner_group=self.learner_group, policies=module_ids, inference_only=True, timeout_seconds=WEIGHT_SYNC_TIMEOUT_S)

    # ------------------------------------------------------------------ dual step (measurement)
    def _refresh_eval_modules(self) -> None:
        weights = self.learner_group.get_weights(module_ids=list(self._eval_modules))
        for module_id, module in self._eval_modules.items():
            module.set_state(weights[module_id])

    def _population_policy(self) -> TorchPolicy:
        self._refresh_eval_modules()
        return TorchPolicy(self._eval_modules[POPULATION].actor)

    def _episode_seeds(self) -> list[int]:
        """Market seeds of the dual measurements: the same every iteration, so that the curves
        over iterations compare policies on the same days (and G_i(theta), G_i(x*; theta) are
        measured with common random numbers)."""
        return [derive_seed(self.config.seed_bpg, SeedPhase.DUAL_MARKETS, episode) for episode in range(self.config.dual_episodes)]

    def _dual_deviators(self) -> np.ndarray:
        """Rows whose x* deviation the dual step measures (see the module doc)."""
        config: BPGConfig = self.config
        state, n = self.bpg_state, self.n_advertisers
        count = n if config.dual_deviators is None else min(config.dual_deviators, n)
        if count == n:
            return np.arange(n)
        measured = np.flatnonzero(state.measured)
        leaders = measured[np.argsort(-state.gains[measured], kind="stable")][: count // 2]
        chosen = list(leaders)
        while len(chosen) < count:
            row = int(self._round_robin[state.dual_cursor])
            state.dual_cursor = (state.dual_cursor + 1) % n
            if row not in chosen:
                chosen.append(row)
        return np.sort(np.array(chosen, dtype=np.int64))

    def _dual_step(self) -> DualState:
        """Eq. 13 from measured returns: the population's own play (all advertisers, shared
        episodes) and the unified solution's unilateral deviations, on the same market seeds
        (the equilibrium tooling's :func:`~agents.equilibrium.play_population` and
        :class:`~agents.equilibrium.DeviationEvaluator`)."""
        config: BPGConfig = self.config
        state = self.bpg_state
        population = self._population_policy()
        seeds = self._episode_seeds()
        episodes = play_population(config.market, population, seeds)
        base = episodes.returns.mean(axis=0)
        self._last_revenue = float(episodes.revenue.mean())
        if config.track_exploitability:
            rows = self._dual_deviators()
            ids = episodes.advertiser_ids[rows]
            unified = ActorDeviation(self._eval_modules[X_STAR].actor)  # modules refreshed above
            returns = self._deviation_returns(population, unified, ids, seeds)
            state.gains[rows] = returns.mean(axis=1) - base[rows]
            state.measured[rows] = True
        constrained = is_constrained(config.objective)
        if state.lambdas is None:
            state.lambdas = np.zeros(self.n_advertisers)
        duals = dual_update(
            base, state.gains, config.epsilon if constrained else 0.0, config.kappa_uniform_mix,
            previous_lambdas=state.lambdas, dual_step=config.dual_step, lambda_max=config.lambda_max,
        )
        if not constrained:
            # Baselines only measure: report their epsilon-free gains, train without lambda.
            n = self.n_advertisers
            duals = DualState(duals.gains, duals.welfare, duals.epsilon, np.zeros(n), np.full(n, 1.0 / n), duals.sampling)
        state.lambdas = duals.lambdas.copy()
        return duals

    def _deviation_returns(self, population, deviation, ids: np.ndarray, seeds: list[int]) -> np.ndarray:
        """``(k, S)`` returns of ``deviation`` for each advertiser id: in this process, or in
        ``dual_workers`` parallel Ray tasks (each plays a contiguous share of the advertisers)."""
        workers = min(self.config.dual_workers, len(ids))
        if workers <= 1:
            return deviation_returns(self.config.market, population, deviation, ids, seeds)
        from auctionsim.cluster import map_tasks

        chunks = [chunk for chunk in np.array_split(ids, workers) if chunk.size]
        task = functools.partial(deviation_returns, seeds=list(seeds))
        returns, _ = map_tasks(task, chunks, shared=(self.config.market, population, deviation))
        return np.concatenate(returns)

    # ------------------------------------------------------------------ results and checkpoints
    @property
    def history(self) -> list[dict]:
        """One record per completed iteration (welfare, lambda statistics, x*-based gains...)."""
        return self.bpg_state.history

    def population_policy(self) -> TorchPolicy:
        """The trained population policy ``theta`` (deterministic) as a population policy."""
        return self._population_policy()

    def actor(self, module_id: str = POPULATION):
        """The deterministic actor (:class:`~agents.bpg.module.RowActor`) of ``theta``
        (``"population"``) or ``x*`` (``"x_star"``), e.g. to export its weights."""
        if module_id not in self._eval_modules:
            raise ConfigError(f"module_id must be one of {', '.join(self._eval_modules)}, got {describe(module_id)}")
        self._refresh_eval_modules()
        return self._eval_modules[module_id].actor

    def unified_solution_policy(self) -> TorchPolicy:
        """The unified solution ``x*`` (deterministic) as a population policy."""
        self._refresh_eval_modules()
        return TorchPolicy(self._eval_modules[X_STAR].actor)

    def unified_solution_deviation(self) -> ActorDeviation:
        """The unified solution ``x*`` played by one advertiser against the others (an
        :mod:`agents.equilibrium` ``Deviation``), as in the dual step."""
        self._refresh_eval_modules()
        return ActorDeviation(self._eval_modules[X_STAR].actor)

    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict:
        state = super().get_state(components, not_components=not_components, **kwargs)
        state["bpg"] = self.bpg_state.to_dict()
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if "bpg" in state:
            self.bpg_state = BPGState.from_dict(state["bpg"])
