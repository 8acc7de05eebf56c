"""BPG (Algorithm 1 of the BPG paper) as an RLlib Algorithm on the new API stack.

One training iteration (``Algorithm.train()``) is one iteration ``k`` of Algorithm 1:

1. *Unified solution* (lines 1-2): ``xstar_updates`` rounds of sampling ``xstar_episodes``
   weighted-POMDP episodes (one advertiser ``i ~ q^k`` plays ``x*``, the others ``theta``)
   and a PPO update of ``x*`` alone.
2. *Dual update* (line 3, Eq. 13): the returns ``G_i(theta)`` and ``G_i(x*; theta)`` are
   measured by deterministic rollouts with common random numbers (the env's array API, no
   RLlib: this is measurement, not sampling for gradients), and
   ``lambda_i = [G_i(x*) - G_i(theta) - epsilon SW]_+`` in mean-advertiser units
   (see :mod:`agents.bpg.duals`).
3. *Primal update* (line 4, Eqs. 11 and 14): ``episodes_per_kind`` episodes of each kind the
   gradient needs (cooperative; deviation to ``nu-bar``; weighted POMDP with ``x*``), one PPO
   update of ``theta`` on all of them and one of ``nu-bar`` on the deviation episodes, each
   episode weighted by its coefficient in gradient (11). With ``lambda_bar = 0`` only
   cooperative episodes are sampled and ``nu-bar`` is not updated (Appendix C.2.1).
4. *Sampling ratios* (line 5): ``kappa = lambda / lambda_bar`` (mixed with a little uniform,
   ``kappa_uniform_mix``) becomes ``q^{k+1}``.

The paper takes one gradient step per primal update; we take PPO's few clipped epochs on the
fresh episodes (a trust-region version of the same step). The baselines run through the same
loop with another ``objective`` (see :data:`agents.bpg.duals.OBJECTIVES`); for them the dual
quantities are only measured (they make the exploitability curves), never used.

Randomness is keyed by ``(seed, iteration, phase)``: market seeds, deviators, exploration
noise and minibatch shuffling, so a run restored from a checkpoint continues exactly as the
uninterrupted run would have.
"""

from __future__ import annotations

import copy
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, LEARNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME

from agents.base import TorchPolicy
from agents.bpg.duals import OBJECTIVES, DualState, dual_update, primal_weights
from agents.bpg.env import EPISODE_KINDS, NU_BAR, POPULATION, X_STAR, BPGMarketEnv
from agents.bpg.learner import BPGTorchLearner
from agents.bpg.module import ActorDeviation, RowPolicyModule
from agents.equilibrium import DeviationEvaluator, MarketSpec, as_market_spec, play_population
from auctionsim.errors import ConfigError, describe
from auctionsim.validation import check_int

__all__ = ["BPG", "BPGConfig", "BPGState"]

MODULES = (POPULATION, NU_BAR, X_STAR)


def map_agent_to_module(agent_id: str, episode: Any = None, **kwargs) -> str:
    """RLlib's policy mapping: each role has its own module (agent ids are the role names)."""
    return agent_id


def derive_seed(*keys: int) -> int:
    """A 32-bit seed from integer keys (NumPy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (RLlib samples exploration noise and
    shuffles minibatches with them), and keep torch on one thread: the networks are small, and
    on a busy 2-core machine multi-threaded torch is ~50x slower per call (measured)."""
    torch.set_num_threads(1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
        self.episodes_per_kind = 4
        self.xstar_episodes = 4
        self.xstar_updates = 2
        self.dual_episodes = 2
        self.dual_advertisers: int | None = None
        self.track_exploitability = True
        self.log_multiplier_low = -3.0
        self.seed_bpg = 0
        self.nu_minibatch_size = 64
        # PPO settings that suit one-day auction episodes.
        self.gamma = 1.0
        self.lambda_ = 0.95
        self.lr = 3e-4
        self.num_epochs = 4
        self.minibatch_size = 64
        self.entropy_coeff = 0.0
        self.use_kl_loss = False
        self.vf_clip_param = 1e6
        self.batch_mode = "complete_episodes"
        self.num_env_runners = 0
        self.multi_agent(policies=MODULES, policy_mapping_fn=map_agent_to_module, count_steps_by="agent_steps")
        self.rl_module(rl_module_spec=RLModuleSpec(module_class=RowPolicyModule), model_config={"hidden": [64, 64], "critic_hidden": [64, 64], "init_seed": derive_seed(0, 11)})
        self._sync_env()

    def bpg(
        self,
        *,
        market: MarketSpec | str = NotProvided,
        objective: str = NotProvided,
        epsilon: float = NotProvided,
        xi: float | None = NotProvided,
        kappa_uniform_mix: float = NotProvided,
        episodes_per_kind: int = NotProvided,
        xstar_episodes: int = NotProvided,
        xstar_updates: int = NotProvided,
        dual_episodes: int = NotProvided,
        dual_advertisers: int | None = NotProvided,
        track_exploitability: bool = NotProvided,
        log_multiplier_low: float = NotProvided,
        seed: int = NotProvided,
        nu_minibatch_size: int = NotProvided,
    ) -> "BPGConfig":
        """BPG settings.

        Args:
            market: the market: an :class:`~agents.equilibrium.MarketSpec` (see
                :func:`agents.bpg.env.market_spec` for other population sizes) or a preset name.
            objective: ``"bpg"``, ``"bpg_zero"`` (Section 6.3 ablation), ``"cooperative"``
                (social welfare) or ``"selfish"`` (SAB).
            epsilon: constraint level, normalised by social welfare (the paper's Table 1).
            xi: penalty weight of gradient (11), in mean-advertiser units; ``None`` uses N.
                Theorem 5.2 wants it large; nu-bar ascends only while ``xi > lambda_bar``.
            kappa_uniform_mix: uniform share of the deviator sampling (0 is the paper's kappa).
            episodes_per_kind: primal episodes of each kind per iteration.
            xstar_episodes, xstar_updates: weighted-POMDP episodes per x* update, and updates
                per iteration (Algorithm 1, line 2).
            dual_episodes: market seeds averaged in each dual evaluation.
            dual_advertisers: advertisers whose gain is re-measured per iteration (round
                robin; ``None``: all). The others keep their last measured gain.
            track_exploitability: learn x* and measure the duals also for the baselines.
            log_multiplier_low: lower bound of the log bid multiplier action.
            seed: seed of the run (markets, deviators, exploration, shuffling).
            nu_minibatch_size: minibatch size (timesteps) of the nu-bar and x* updates.
        """
        settings = {
            "objective": objective, "epsilon": epsilon, "xi": xi, "kappa_uniform_mix": kappa_uniform_mix,
            "episodes_per_kind": episodes_per_kind, "xstar_episodes": xstar_episodes, "xstar_updates": xstar_updates,
            "dual_episodes": dual_episodes, "dual_advertisers": dual_advertisers,
            "track_exploitability": track_exploitability, "log_multiplier_low": log_multiplier_low,
            "seed_bpg": seed, "nu_minibatch_size": nu_minibatch_size,
        }
        for name, value in settings.items():
            if value is not NotProvided:
                setattr(self, name, value)
        if market is not NotProvided:
            self.market = as_market_spec(market)
        if seed is not NotProvided:
            self.debugging(seed=seed)
            self.rl_module(model_config={**self._model_config, "init_seed": derive_seed(seed, 11)})
        self._sync_env()
        return self

    def _sync_env(self) -> None:
        self.environment(env=BPGMarketEnv, env_config={"market": self.market, "log_multiplier_low": self.log_multiplier_low})

    def get_default_learner_class(self):
        return BPGTorchLearner

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.market, MarketSpec):
            raise ConfigError(f"market must be a MarketSpec, got {describe(self.market)}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {describe(self.objective)}")
        if not (np.isfinite(self.epsilon) and self.epsilon >= 0):
            raise ConfigError(f"epsilon must be a finite number >= 0, got {describe(self.epsilon)}")
        if self.xi is not None and not (np.isfinite(self.xi) and self.xi > 0):
            raise ConfigError(f"xi must be a finite number > 0 or None, got {describe(self.xi)}")
        if not 0.0 <= self.kappa_uniform_mix <= 1.0:
            raise ConfigError(f"kappa_uniform_mix must be in [0, 1], got {describe(self.kappa_uniform_mix)}")
        for name in ("episodes_per_kind", "xstar_episodes", "dual_episodes", "nu_minibatch_size"):
            check_int(name, getattr(self, name), low=1)
        check_int("xstar_updates", self.xstar_updates, low=0)
        if self.dual_advertisers is not None:
            check_int("dual_advertisers", self.dual_advertisers, low=1)
        if self.objective in ("bpg", "bpg_zero") and not self.track_exploitability:
            raise ConfigError(f"objective {self.objective!r} needs the unified solution: track_exploitability must be True")


@dataclass
class BPGState:
    """What BPG carries between iterations besides the networks (saved in checkpoints).

    Attributes:
        iteration: completed BPG iterations.
        gains: ``(N,)`` last measured ``G_i(x*; theta) - G_i(theta)`` (currency).
        sampling: ``(N,)`` deviator sampling distribution ``q`` for the next x* phase.
        reward_scale: currency per signal unit (a mean advertiser's return at iteration 0).
        dual_cursor: next advertiser of the round-robin dual measurement.
        history: one dict per iteration (see :meth:`BPG.training_step`).
    """

    iteration: int = 0
    gains: np.ndarray | None = None
    sampling: np.ndarray | None = None
    reward_scale: float | None = None
    dual_cursor: int = 0
    history: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "iteration": self.iteration,
            "gains": None if self.gains is None else self.gains.copy(),
            "sampling": None if self.sampling is None else self.sampling.copy(),
            "reward_scale": self.reward_scale,
            "dual_cursor": self.dual_cursor,
            "history": copy.deepcopy(self.history),
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
        self.n_advertisers = self.market_env.n
        self.xi = float(config.xi) if config.xi is not None else float(self.n_advertisers)
        self._eval_modules = {
            module_id: RowPolicyModule(
                observation_space=self.market_env.observation_spaces[module_id],
                action_space=self.market_env.action_spaces[module_id],
                inference_only=True,
                model_config=dict(config.model_config),
            )
            for module_id in (POPULATION, X_STAR)
        }
        self.bpg_state = BPGState(gains=np.zeros(self.n_advertisers), sampling=np.full(self.n_advertisers, 1.0 / self.n_advertisers))
        self.duals: DualState | None = None
        self._last_revenue = float("nan")

    # ------------------------------------------------------------------ one iteration
    def training_step(self) -> None:
        config: BPGConfig = self.config
        state = self.bpg_state
        started = time.perf_counter()
        iteration = state.iteration
        if state.reward_scale is None:
            # The signal unit: a mean advertiser's return under the initial population policy.
            returns = play_population(config.market, self._population_policy(), self._episode_seeds()).returns
            state.reward_scale = max(float(returns.mean()), 1e-9)

        # Algorithm 1, lines 1-2: the unified solution x* of the weighted POMDP (q^k).
        if config.track_exploitability:
            for update in range(config.xstar_updates):
                episodes = self._sample("weighted", config.xstar_episodes, derive_seed(config.seed_bpg, iteration, 0, update))
                self._update(episodes, [X_STAR], None, config.nu_minibatch_size, derive_seed(config.seed_bpg, iteration, 1, update))

        # Line 3: dual update, Eq. 13.
        duals = self._dual_step(iteration)
        self.duals = duals

        # Line 4: primal update with gradient (11) (or the objective's variant).
        weights = primal_weights(duals, config.objective, self.xi)
        primal_episodes: dict[str, list] = {}
        for kind in weights.episode_kinds:
            primal_episodes[kind] = self._sample(
                kind,
                config.episodes_per_kind,
                derive_seed(config.seed_bpg, iteration, 2, EPISODE_KINDS.index(kind)),
                team_weights=weights.team_weights,
                sampling=duals.sampling,
            )
        coefficients = {"deviation": weights.deviation, "weighted": weights.weighted, "nu_bar": weights.nu_bar}
        all_episodes = [episode for episodes in primal_episodes.values() for episode in episodes]
        self._update(all_episodes, [POPULATION], coefficients, config.minibatch_size, derive_seed(config.seed_bpg, iteration, 3))
        if "deviation" in primal_episodes:
            self._update(primal_episodes["deviation"], [NU_BAR], coefficients, config.nu_minibatch_size, derive_seed(config.seed_bpg, iteration, 4))

        # Line 5: kappa from lambda; q^{k+1} drives the next x* phase.
        state.sampling = duals.sampling.copy()
        state.iteration += 1
        record = {
            "iteration": state.iteration,
            "objective": config.objective,
            "epsilon": duals.epsilon,
            **duals.summary(),
            "revenue": self._last_revenue,
            "time_s": time.perf_counter() - started,
        }
        state.history.append(record)
        for key, value in record.items():
            if key != "objective":
                self.metrics.log_value(("bpg", key), float(value), window=1)

    # ------------------------------------------------------------------ sampling and updates
    def _sample(self, kind: str, n_episodes: int, seed: int, *, team_weights=None, sampling=None) -> list:
        """``n_episodes`` (or a few more with vector envs) episodes of ``kind`` from the EnvRunners."""
        state = self.bpg_state
        sampling = state.sampling if sampling is None else sampling
        reward_scale = state.reward_scale

        def set_phase(env_runner) -> None:
            runner_seed = derive_seed(seed, env_runner.worker_index)
            seed_everything(runner_seed)
            for index, module_id in enumerate(MODULES):
                env_runner.module[module_id].set_exploration_seed(derive_seed(runner_seed, 100 + index))
            for index, env in enumerate(env_runner.env.envs):
                env.unwrapped.set_phase(
                    kind, team_weights=team_weights, sampling=sampling, reward_scale=reward_scale, seed=derive_seed(runner_seed, index)
                )

        remote = self.env_runner_group.num_remote_env_runners() > 0
        self.env_runner_group.foreach_env_runner(set_phase, local_env_runner=not remote)
        per_runner = n_episodes if not remote else -(-n_episodes // self.env_runner_group.num_remote_env_runners())

        def sample(env_runner):
            return env_runner.sample(num_episodes=per_runner, explore=True), env_runner.get_metrics()

        results = self.env_runner_group.foreach_env_runner(sample, local_env_runner=not remote)
        episodes = [episode for runner_episodes, _ in results for episode in runner_episodes]
        self.metrics.aggregate([metrics for _, metrics in results], key=ENV_RUNNER_RESULTS)
        return episodes

    def _update(self, episodes: list, module_ids: list[str], coefficients: dict | None, minibatch_size: int, seed: int) -> None:
        """One PPO update of ``module_ids`` on ``episodes`` with the primal coefficients."""

        def prepare(learner) -> None:
            seed_everything(seed)
            learner.set_modules_to_update(module_ids)
            if coefficients is not None:
                learner.set_primal_weights(coefficients)

        self.learner_group.foreach_learner(prepare)
        results = self.learner_group.update(
            episodes=episodes,
            timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0)},
            num_epochs=self.config.num_epochs,
            minibatch_size=minibatch_size,
            shuffle_batch_per_epoch=True,
        )
        self.metrics.aggregate(results, key=LEARNER_RESULTS)
        self.env_runner_group.sync_weights(from_worker_or_learner_group=self.learner_group, policies=module_ids, inference_only=True)

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
        return [derive_seed(self.config.seed_bpg, 7, episode) for episode in range(self.config.dual_episodes)]

    def _dual_step(self, iteration: int) -> DualState:
        """Eq. 13 from measured returns: the population's own play and the unified solution's
        unilateral deviations, on the same market seeds (the equilibrium tooling's
        :func:`~agents.equilibrium.play_population` and
        :class:`~agents.equilibrium.DeviationEvaluator`)."""
        config: BPGConfig = self.config
        state = self.bpg_state
        population = self._population_policy()
        seeds = self._episode_seeds()
        episodes = play_population(config.market, population, seeds)
        base = episodes.returns.mean(axis=0)
        self._last_revenue = float(episodes.revenue.mean())
        if config.track_exploitability:
            count = self.n_advertisers if config.dual_advertisers is None else min(config.dual_advertisers, self.n_advertisers)
            rows = [(state.dual_cursor + offset) % self.n_advertisers for offset in range(count)]
            state.dual_cursor = (state.dual_cursor + count) % self.n_advertisers
            unified = ActorDeviation(self._eval_modules[X_STAR].actor)  # modules refreshed above
            for row in rows:
                evaluator = DeviationEvaluator(config.market, population, int(episodes.advertiser_ids[row]))
                state.gains[row] = evaluator.returns(unified, seeds).mean() - base[row]
        epsilon = config.epsilon if config.objective in ("bpg", "bpg_zero") else 0.0
        duals = dual_update(base, state.gains, epsilon, config.kappa_uniform_mix)
        if config.objective not in ("bpg", "bpg_zero"):
            # Baselines only measure: report their epsilon-free gains, train without lambda.
            duals = DualState(duals.gains, duals.welfare, duals.epsilon, np.zeros_like(duals.lambdas), np.full_like(duals.kappa, 1 / self.n_advertisers), duals.sampling)
        return duals

    # ------------------------------------------------------------------ results and checkpoints
    @property
    def history(self) -> list[dict]:
        """One record per completed iteration (welfare, lambda statistics, x*-based gains...)."""
        return self.bpg_state.history

    def population_policy(self) -> TorchPolicy:
        """The trained population policy ``theta`` (deterministic) as a population policy."""
        return self._population_policy()

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
