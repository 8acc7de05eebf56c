"""PE-MORL's robust offline Q-learning on real plus uncertainty-penalised model transitions, with
the focal advertiser's model actions drawn from the current policy plus exploration noise.

What the paper states (PE-MORL notes, design 2): the policy is trained on real and model
("imaginary") transitions; model transitions carry a penalty that grows with the model's
uncertainty, real ones none; the Q-learning is "robust offline Q-learning". The full text is not
available here, so the actor-critic and every number below are filled in by us, following the
model-based offline methods the paper builds on (MBPO's branched rollouts and FIFO model buffer,
MOPO's reward penalty ``r - lambda u``), with two policy-improvement operators:

* **AWR** (``policy_improvement="awr"``, the default): IQL
  (:class:`~agents.offline.iql.IQLLearner`: expectile value, twin Q, advantage-weighted
  regression with advantages normalised by their running standard deviation, ``beta = 1``) on
  the mixed batches. Its value is in-sample, so the model's *exploratory* focal actions are what
  lets it move beyond the logged actions: an exploratory action with a positive (penalised)
  advantage pulls the actor towards it, an uncertain one is penalised and loses weight. (In the
  earlier design the imaginary actions were the deterministic actor's own outputs and the raw
  advantages ~+-0.05 at ``beta = 3``: AWR regressed the actor onto itself, and lambda changed
  nothing.)
* **TD3+BC** (``"td3+bc"``; Fujimoto & Gu 2021, as MOPO/MOBILE-style implementations pair a
  Q-maximising actor with model data): twin Q networks regressed on
  ``y = r + gamma (1 - d) min_k Q'_k(s', clip(pi'(s') + clip(eps, -c, c), -1, 1))``,
  ``eps ~ N(0, target_noise^2)``, Polyak-averaged targets; every ``policy_delay`` steps the actor
  maximises ``lambda_q Q_1(s, pi(s)) - (pi(s) - a)^2`` with ``lambda_q = alpha / mean|Q_1|``,
  the Q term over every state of the batch (real and imaginary), the BC term over the real
  transitions only; for the first ``critic_warmup_fraction`` of the steps only the critic learns.
  On validation episodes of the quick training market (before the issue-19 calibration; 5
  validation seeds x 4 focal advertisers; the IQL operator then at learning rate 3e-4) it scored
  6.8 and 9.0 at ``alpha = 0.5`` for training seeds 0 and 1, against 9.7 and 10.0 for AWR (IQL
  9.8 and 8.1): its actor follows the critic's action gradient away from the logs
  (behaviour-cloning error 0.06-0.15 in unit actions) and its mean multiplier swings between
  refreshes (0.97 to 1.5 and back), so AWR is the default.

Both: after a behaviour-cloning warm start of the actor (``warm_start_steps``, so the first
rollouts come from a policy that already bids like the logs) and of a Gaussian behaviour policy
(the other advertisers in rollouts), every ``rollout_every`` steps ``rollouts_per_refresh``
branched rollouts of ``horizon`` ticks start from real logged ticks; the focal advertiser plays
``clip(pi(s) + N(0, exploration_noise^2), -1, 1)``: the *current* policy with exploration, so
the model is asked about actions near the ones the actor is moving to, and the penalty decides
how far it may trust the answers. The FIFO buffer keeps the last ``retain_refreshes`` refreshes
(MBPO's model-retain rule), so rollouts of past policies are evicted. Each batch holds
``real_fraction`` real transitions (COMBO's 0.5; MOPO uses 0.05).

Noise scales are TD3's halved (0.1 and 0.25 instead of 0.2 and 0.5): our unit action spans a
100-fold range of multipliers (:class:`~agents.offline.data.ActionScale`), so 0.1 is already a
factor of ``exp(0.23) = 1.26``, close to the logs' own exploration noise. ``penalty_coefficient``
(``lambda``) and ``horizon`` are chosen on validation episodes by the experiment
(:mod:`experiments.pemorl`), never on reported ones.

The trained bidder is an :class:`~agents.offline.policy.ActorBidder` (``algorithm="pe-morl"``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields

import torch

from agents.offline.bc import BCConfig, train_bc
from agents.offline.data import OfflineData, TransitionBatch
from agents.offline.iql import IQLConfig, IQLLearner
from agents.offline.networks import StateEncoder, TwinQ
from agents.offline.policy import Actor, ActorBidder, ActorConfig
from agents.offline.training import (
    autocast,
    check_positive,
    check_unit_interval,
    device_generator,
    frozen_copy,
    log_scalars,
    progress_steps,
    soft_update,
)
from agents.pemorl.data import GlobalTransitions
from agents.pemorl.model import ModelEnsemble
from agents.pemorl.rollouts import branched_rollouts
from auctionsim.errors import ConfigError, describe
from auctionsim.tracking import ScalarLogger, seed_everything
from auctionsim.validation import check_choice, check_int, check_number

__all__ = ["PEMORLConfig", "PEMORLLearner", "PEMORLResult", "POLICY_IMPROVEMENTS", "train_pemorl"]

POLICY_IMPROVEMENTS = ("td3+bc", "awr")


@dataclass(frozen=True)
class PEMORLConfig:
    """PE-MORL policy-learning hyper-parameters (see the module docstring for their roles).

    Args:
        policy_improvement: ``"awr"`` (IQL: expectile value, advantage-weighted regression with
            normalised advantages, on real and model actions) or ``"td3+bc"`` (Q-maximising
            actor with a BC term); the learning rates, ``gamma``, ``target_rate``,
            ``policy_delay``, ``bc_weight``, the target noise and ``critic_warmup_fraction``
            apply to TD3+BC only.
        iql: the AWR operator's IQL hyper-parameters (its ``steps``, ``batch_size``,
            ``hidden_dim``, ``hidden_layers`` and ``seed`` are replaced by this config's). The
            default is the IQL baseline's, so PE-MORL minus IQL measures what the model data add.
        steps: critic gradient steps (the actor takes one every ``policy_delay``).
        batch_size: transitions per step, real and imaginary together.
        hidden_dim, hidden_layers: MLPs of the actor and the twin critic.
        actor_learning_rate, critic_learning_rate: Adam step sizes (TD3+BC: 3e-4).
        gamma: discount.
        target_rate: Polyak rate of the target networks (TD3: 0.005).
        policy_delay: critic steps per actor step (TD3: 2).
        bc_weight: TD3+BC's ``alpha`` (2.5): the larger, the more the Q term counts against BC.
        target_noise, noise_clip: target policy smoothing in unit actions.
        exploration_noise: std of the focal advertiser's action noise in rollouts (unit actions).
        penalty_coefficient: ``lambda`` of the uncertainty penalty (0 = no pessimism).
        horizon: ticks per branched rollout.
        rollouts_per_refresh: rollouts generated every ``rollout_every`` steps.
        rollout_every: gradient steps between rollout refreshes.
        retain_refreshes: refreshes the FIFO buffer holds (capacity ``rollouts_per_refresh x
            horizon x retain_refreshes`` transitions).
        real_fraction: share of logged transitions in each batch.
        warm_start_steps: behaviour-cloning steps of the actor and of the Gaussian behaviour policy.
        critic_warmup_fraction: share of ``steps`` in which only the critic learns.
        seed: seeds initialisation, sampling and rollouts.
    """

    policy_improvement: str = "awr"
    iql: IQLConfig = field(default_factory=IQLConfig)
    steps: int = 20_000
    batch_size: int = 256
    hidden_dim: int = 256
    hidden_layers: int = 2
    actor_learning_rate: float = 3e-4
    critic_learning_rate: float = 3e-4
    gamma: float = 0.99
    target_rate: float = 0.005
    policy_delay: int = 2
    bc_weight: float = 2.5
    target_noise: float = 0.1
    noise_clip: float = 0.25
    exploration_noise: float = 0.1
    penalty_coefficient: float = 1.0
    horizon: int = 3
    rollouts_per_refresh: int = 1024
    rollout_every: int = 250
    retain_refreshes: int = 5
    real_fraction: float = 0.5
    warm_start_steps: int = 2_000
    critic_warmup_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.iql, IQLConfig):
            raise ConfigError(f"PEMORLConfig.iql must be an IQLConfig, got {describe(self.iql)}")
        if self.iql.context_length != 1:
            raise ConfigError(f"PEMORLConfig.iql.context_length must be 1 (model data has no history), got {self.iql.context_length}")
        check_choice("PEMORLConfig.policy_improvement", self.policy_improvement, POLICY_IMPROVEMENTS)
        for name in ("steps", "batch_size", "hidden_dim", "hidden_layers", "policy_delay", "horizon", "rollouts_per_refresh", "rollout_every",
                     "retain_refreshes", "warm_start_steps"):  # fmt: skip
            check_int(f"PEMORLConfig.{name}", getattr(self, name), low=1)
        check_int("PEMORLConfig.seed", self.seed, low=0)
        check_positive("PEMORLConfig", actor_learning_rate=self.actor_learning_rate, critic_learning_rate=self.critic_learning_rate, bc_weight=self.bc_weight)
        check_unit_interval("PEMORLConfig", gamma=self.gamma, target_rate=self.target_rate, real_fraction=self.real_fraction,
                            critic_warmup_fraction=self.critic_warmup_fraction)  # fmt: skip
        for name in ("penalty_coefficient", "target_noise", "noise_clip", "exploration_noise"):
            check_number(f"PEMORLConfig.{name}", getattr(self, name), low=0.0)
        if self.real_fraction < 1.0 and round(self.real_fraction * self.batch_size) < 1:
            raise ConfigError(f"PEMORLConfig.real_fraction={self.real_fraction} leaves no real transition in a batch of {self.batch_size}")

    @property
    def buffer_size(self) -> int:
        """Imaginary transitions the FIFO buffer holds."""
        return self.rollouts_per_refresh * self.horizon * self.retain_refreshes

    @property
    def real_per_batch(self) -> int:
        return max(1, round(self.real_fraction * self.batch_size))


_FIELDS = tuple(f.name for f in fields(TransitionBatch) if not f.name.endswith("history"))


class _ImaginaryBuffer:
    """FIFO ring of the last ``capacity`` imaginary transitions, on the learner's device, sampled
    uniformly."""

    def __init__(self, capacity: int, observation_dim: int, device: str) -> None:
        self.capacity, self.size, self.position = capacity, 0, 0
        shapes = {"observations": (observation_dim,), "actions": (1,), "rewards": (), "next_observations": (observation_dim,), "dones": ()}
        self.storage = {name: torch.zeros((capacity, *shapes[name]), device=device) for name in _FIELDS}

    def add(self, batch: TransitionBatch) -> None:
        count = min(len(batch.rewards), self.capacity)
        index = (self.position + torch.arange(count, device=batch.rewards.device)) % self.capacity
        for name in _FIELDS:
            self.storage[name][index] = getattr(batch, name)[-count:]
        self.position = (self.position + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> TransitionBatch:
        index = torch.randint(self.size, (batch_size,), generator=generator, device=generator.device).to(self.storage["rewards"].device)
        return TransitionBatch(**{name: tensor[index] for name, tensor in self.storage.items()})


def _concatenate(first: TransitionBatch, second: TransitionBatch) -> TransitionBatch:
    return TransitionBatch(**{name: torch.cat([getattr(first, name), getattr(second, name)]) for name in _FIELDS})


class PEMORLLearner:
    """PE-MORL's actor-critic: networks, optimisers and one gradient step, TD3+BC or (with
    ``policy_improvement="awr"``) IQL's :class:`~agents.offline.iql.IQLLearner` on the mixed batch.

    Args:
        observation_dim: observation features ``D``.
        config: hyper-parameters.
        action_scale_bounds: ``(low, high)`` multipliers of the actor's action scale.
        device: torch device.
    """

    def __init__(self, observation_dim: int, config: PEMORLConfig, action_scale_bounds: tuple[float, float], device: str) -> None:
        self.config, self.device = config, device
        if config.policy_improvement == "awr":
            iql = dataclasses.replace(config.iql, steps=config.steps, batch_size=config.batch_size, hidden_dim=config.hidden_dim, hidden_layers=config.hidden_layers, seed=config.seed)
            self.awr: IQLLearner | None = IQLLearner(observation_dim, iql, action_scale_bounds, 1, device)
            self.actor = self.awr.actor
            return
        self.awr = None
        low, high = action_scale_bounds
        self.actor = Actor(ActorConfig(observation_dim, config.hidden_dim, config.hidden_layers, action_low=low, action_high=high)).to(device)
        self.twin_q = TwinQ(StateEncoder(observation_dim), config.hidden_dim, config.hidden_layers).to(device)
        self.target_actor, self.target_q = frozen_copy(self.actor), frozen_copy(self.twin_q)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_learning_rate, foreach=True)
        self.q_optimizer = torch.optim.Adam(self.twin_q.parameters(), lr=config.critic_learning_rate, foreach=True)

    def fit_normalizers(self, observations: torch.Tensor) -> None:
        """Set every normaliser from ``(M, D)`` observations."""
        if self.awr:
            self.awr.fit_normalizers(observations)
            return
        for module in (self.actor, self.target_actor, self.twin_q.encoder, self.target_q.encoder):
            module.normalizer.fit(observations)

    def warm_start(self, actor: Actor) -> None:
        """Copy a behaviour-cloning actor's weights into the actor (and its target)."""
        self.actor.load_state_dict(actor.state_dict())
        if not self.awr:
            self.target_actor.load_state_dict(actor.state_dict())

    def noisy_actions(self, observations: torch.Tensor, scale: float, clip: float, generator: torch.Generator, actor: Actor | None = None) -> torch.Tensor:
        """``clip(actor(s) + clip(eps, -clip, clip), -1, 1)``, ``eps ~ N(0, scale^2)``: ``(B, 1)``."""
        mean = (actor or self.actor)(observations)
        noise = torch.randn(mean.shape, generator=generator, device=generator.device).to(mean.device) * scale
        return (mean + noise.clamp(-clip, clip)).clamp(-1.0, 1.0)

    def update(self, real: TransitionBatch, imaginary: TransitionBatch | None, generator: torch.Generator, update_actor: bool) -> dict[str, torch.Tensor]:
        """One critic step on ``real`` + ``imaginary`` and, if ``update_actor``, one actor step and
        the target updates. Returns detached 0-d tensors (no device sync)."""
        config = self.config
        batch = real if imaginary is None else _concatenate(real, imaginary)
        if self.awr:
            return self.awr.update(batch)
        with torch.no_grad(), autocast(self.device):
            next_actions = self.noisy_actions(batch.next_observations, config.target_noise, config.noise_clip, generator, self.target_actor)
            next_q = torch.minimum(*self.target_q(batch.next_observations, next_actions)).float()
            target = batch.rewards + config.gamma * (1.0 - batch.dones) * next_q
        with autocast(self.device):
            first, second = self.twin_q(batch.observations, batch.actions)
            critic_loss = (first.float() - target).pow(2).mean() + (second.float() - target).pow(2).mean()
        self._step(self.q_optimizer, critic_loss)
        losses = {"critic_loss": critic_loss.detach(), "mean_q": first.detach().float().mean(), "mean_target": target.mean()}
        if not update_actor:
            return losses
        with autocast(self.device):
            actions = self.actor(batch.observations)
            q_values = self.twin_q(batch.observations, actions)[0].float()
            q_weight = config.bc_weight / q_values.abs().mean().detach().clamp(min=1e-6)
            count = len(real.rewards)
            bc_loss = (actions[:count].float() - real.actions).pow(2).mean()
            actor_loss = -q_weight * q_values.mean() + bc_loss
        self._step(self.actor_optimizer, actor_loss)
        soft_update(self.target_q, self.twin_q, config.target_rate)
        soft_update(self.target_actor, self.actor, config.target_rate)
        return {**losses, "actor_loss": actor_loss.detach(), "bc_loss": bc_loss.detach(), "q_weight": q_weight}

    @staticmethod
    def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def bidder(self) -> ActorBidder:
        """The current actor as a bidder (shares the actor's weights: copy before training on)."""
        return ActorBidder(self.actor, algorithm="pe-morl", device=self.device)


@dataclass(frozen=True, eq=False)
class PEMORLResult:
    """The trained bidder, its learner and one history row per rollout refresh (losses, model
    reward and penalty of the new rollouts, buffer size, mean multiplier the actor bids on the
    real states of the batch)."""

    bidder: ActorBidder
    learner: PEMORLLearner
    history: list[dict[str, float]] = field(default_factory=list)


def train_pemorl(
    data: OfflineData,
    transitions: GlobalTransitions,
    ensemble: ModelEnsemble,
    config: PEMORLConfig = PEMORLConfig(),
    progress: bool = False,
    writer: ScalarLogger | None = None,
) -> PEMORLResult:
    """Train PE-MORL's actor-critic on ``data`` (the logged per-advertiser transitions) and
    imaginary rollouts of ``ensemble`` branched from ``transitions`` (the same logs as global
    ticks); see the module docstring. ``writer`` receives ``pemorl/<name>`` at every refresh."""
    if data.action_scale != transitions.action_scale:
        raise ConfigError(f"data and transitions use different action scales: {data.action_scale} vs {transitions.action_scale}")
    warm = BCConfig(steps=config.warm_start_steps, hidden_dim=config.hidden_dim, hidden_layers=config.hidden_layers, seed=config.seed)
    behaviour = train_bc(data, dataclasses.replace(warm, stochastic=True)).actor
    learner = PEMORLLearner(data.observation_dim, config, (data.action_scale.low, data.action_scale.high), data.device)
    learner.fit_normalizers(data.flat_observations())
    learner.warm_start(train_bc(data, warm).actor)
    seed_everything(config.seed)
    generator = device_generator(config.seed, data.device)
    buffer = _ImaginaryBuffer(config.buffer_size, data.observation_dim, data.device)
    real_size = config.real_per_batch
    warmup = int(config.critic_warmup_fraction * config.steps)

    def explore(observations: torch.Tensor) -> torch.Tensor:
        return learner.noisy_actions(observations, config.exploration_noise, math.inf, generator)

    history = []
    for step in progress_steps(config.steps, "PE-MORL", progress):
        if step % config.rollout_every == 0:
            imaginary = branched_rollouts(ensemble, transitions, explore, behaviour, config.rollouts_per_refresh, config.horizon, config.penalty_coefficient, generator)
            buffer.add(imaginary.transitions)
            refresh = {"model_reward": imaginary.raw_rewards.mean(), "penalty": imaginary.penalties.mean(), "imaginary": buffer.size}
        real = data.sample_transitions(real_size, generator)
        fake = buffer.sample(config.batch_size - real_size, generator) if real_size < config.batch_size else None
        update_actor = step >= warmup and step % config.policy_delay == 0
        losses = learner.update(real, fake, generator, update_actor)
        if step % config.rollout_every == 0:
            with torch.no_grad():
                multiplier = data.action_scale.to_multiplier(learner.actor(real.observations)).mean()
            history.append({"step": step, **log_scalars(writer, "pemorl", {**refresh, **losses, "mean_multiplier": multiplier}, step)})
    learner.actor.eval()
    return PEMORLResult(bidder=learner.bidder(), learner=learner, history=history)
