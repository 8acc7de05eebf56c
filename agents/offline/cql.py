"""Conservative Q-learning, CQL(H) on soft actor-critic (Kumar et al. 2020, Eq. 4).

Critic loss for each of twin Q networks:
``alpha_cql x E_s[ log sum_a exp Q(s, a) - E_{a ~ data} Q(s, a) ] + Bellman error``, where the
log-sum-exp over the (1-D) action space is estimated by importance sampling from ``n_actions``
uniform actions and ``n_actions`` policy actions at ``s`` and at ``s'`` (the CQL paper's
Appendix F). The Bellman target is SAC's, ``r + gamma (1 - d) (min Q_target(s', a') - alpha
log pi(a'|s'))`` with ``a' ~ pi``. The actor is a tanh-squashed Gaussian trained by SAC's loss,
``E[alpha log pi(a|s) - min Q(s, a)]``, with the entropy weight ``alpha`` tuned to a target
entropy. Acting uses the policy's mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from agents.offline.data import OfflineData, TransitionBatch
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
from auctionsim.tracking import ScalarLogger, seed_everything
from auctionsim.errors import ConfigError
from auctionsim.validation import check_int

__all__ = ["CQLConfig", "CQLLearner", "train_cql"]


@dataclass(frozen=True)
class CQLConfig:
    """CQL hyper-parameters (the CQL paper's continuous-control defaults where they apply).

    Args:
        steps: gradient steps.
        batch_size: transitions per step.
        critic_learning_rate, actor_learning_rate: Adam step sizes (3e-4, 1e-4).
        hidden_dim, hidden_layers: MLPs of Q and the actor.
        gamma: discount.
        target_rate: Polyak rate of the target Q networks.
        conservative_weight: ``alpha_cql``, the weight of the conservative penalty.
        n_actions: sampled actions per source (uniform, pi(s), pi(s')) in the log-sum-exp.
        target_entropy: entropy the SAC temperature is tuned to (-1 = -action dimension).
        seed: seeds initialisation and sampling.
    """

    steps: int = 20_000
    batch_size: int = 256
    critic_learning_rate: float = 3e-4
    actor_learning_rate: float = 1e-4
    hidden_dim: int = 256
    hidden_layers: int = 2
    gamma: float = 0.99
    target_rate: float = 0.005
    conservative_weight: float = 1.0
    n_actions: int = 10
    target_entropy: float = -1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "hidden_dim", "hidden_layers", "n_actions"):
            check_int(f"CQLConfig.{name}", getattr(self, name), low=1)
        check_positive("CQLConfig", critic_learning_rate=self.critic_learning_rate, actor_learning_rate=self.actor_learning_rate)
        check_unit_interval("CQLConfig", gamma=self.gamma, target_rate=self.target_rate)
        if not (math.isfinite(self.conservative_weight) and self.conservative_weight >= 0):
            raise ConfigError(f"CQLConfig.conservative_weight must be finite and >= 0, got {self.conservative_weight}")


class CQLLearner:
    """CQL's networks, optimisers and one gradient step (:meth:`update`)."""

    def __init__(self, observation_dim: int, config: CQLConfig, action_scale_bounds: tuple[float, float], device: str) -> None:
        self.config = config
        self.device = device
        self.twin_q = TwinQ(StateEncoder(observation_dim), config.hidden_dim, config.hidden_layers).to(device)
        self.target_q = frozen_copy(self.twin_q)
        low, high = action_scale_bounds
        self.actor = Actor(
            ActorConfig(observation_dim, config.hidden_dim, config.hidden_layers, stochastic=True, action_low=low, action_high=high)
        ).to(device)
        self.log_entropy_weight = torch.zeros((), device=device, requires_grad=True)
        self.q_optimizer = torch.optim.Adam(self.twin_q.parameters(), lr=config.critic_learning_rate, foreach=True)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_learning_rate, foreach=True)
        self.entropy_optimizer = torch.optim.Adam([self.log_entropy_weight], lr=config.actor_learning_rate)

    def fit_normalizers(self, observations: torch.Tensor) -> None:
        for module in (self.twin_q.encoder, self.target_q.encoder, self.actor):
            module.normalizer.fit(observations)

    def _sampled_q(self, observations: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Twin Q of ``(B, n, 1)`` actions at ``(B, D)`` observations, each ``(B, n)``."""
        batch, count = actions.shape[:2]
        repeated = observations.repeat_interleave(count, dim=0)
        first, second = self.twin_q(repeated, actions.reshape(batch * count, 1))
        return first.reshape(batch, count), second.reshape(batch, count)

    def _policy_actions(self, observations: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_actions`` policy draws per observation ``(B, n, 1)`` and their log-densities ``(B, n)``."""
        count = self.config.n_actions
        with torch.no_grad():
            actions, log_prob = self.actor.rsample(observations.repeat_interleave(count, dim=0), generator)
        return actions.reshape(-1, count, 1), log_prob.reshape(-1, count)

    def update(self, batch: TransitionBatch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One critic, actor and temperature step (forward passes under bf16 autocast on CUDA);
        returns detached 0-d tensors (no device sync)."""
        config = self.config
        entropy_weight = self.log_entropy_weight.exp().detach()
        with autocast(self.device):
            bellman, penalty = self._critic_losses(batch, generator, entropy_weight)
        self._step(self.q_optimizer, bellman + config.conservative_weight * penalty)
        soft_update(self.target_q, self.twin_q, config.target_rate)

        with autocast(self.device):
            actions, log_prob = self.actor.rsample(batch.observations, generator)
            actor_loss = (entropy_weight * log_prob - torch.minimum(*self.twin_q(batch.observations, actions))).float().mean()
        self._step(self.actor_optimizer, actor_loss)
        entropy_loss = -(self.log_entropy_weight * (log_prob.detach().float() + config.target_entropy)).mean()
        self._step(self.entropy_optimizer, entropy_loss)
        return {"bellman": bellman.detach(), "conservative_penalty": penalty.detach(), "actor_loss": actor_loss.detach(), "entropy_weight": entropy_weight}

    def _critic_losses(self, batch: TransitionBatch, generator: torch.Generator, entropy_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Bellman error of both Q networks and the conservative penalty (module docstring)."""
        config = self.config
        with torch.no_grad():
            next_actions, next_log_prob = self.actor.rsample(batch.next_observations, generator)
            next_q = torch.minimum(*self.target_q(batch.next_observations, next_actions)) - entropy_weight * next_log_prob
            target = batch.rewards + config.gamma * (1.0 - batch.dones) * next_q.float()
        first, second = self.twin_q(batch.observations, batch.actions)
        bellman = (first.float() - target).pow(2).mean() + (second.float() - target).pow(2).mean()

        size = batch.observations.shape[0]
        uniform = torch.rand((size, config.n_actions, 1), generator=generator, device=generator.device).to(self.device) * 2.0 - 1.0
        current, current_log_prob = self._policy_actions(batch.observations, generator)
        following, following_log_prob = self._policy_actions(batch.next_observations, generator)
        uniform_log_density = math.log(0.5)  # uniform on [-1, 1]
        penalty = torch.zeros((), device=self.device)
        sampled = zip(
            self._sampled_q(batch.observations, uniform), self._sampled_q(batch.observations, current), self._sampled_q(batch.observations, following)
        )
        for (q_uniform, q_current, q_following), q_data in zip(sampled, (first, second)):
            importance = torch.cat(
                [q_uniform.float() - uniform_log_density, q_current.float() - current_log_prob, q_following.float() - following_log_prob], dim=1
            )
            penalty = penalty + (torch.logsumexp(importance, dim=1) - math.log(3 * config.n_actions) - q_data.float()).mean()
        return bellman, penalty

    @staticmethod
    def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def train_cql(data: OfflineData, config: CQLConfig = CQLConfig(), progress: bool = False, writer: ScalarLogger | None = None, log_every: int = 100) -> ActorBidder:
    """Train CQL on ``data`` (on ``data.device``; bf16 autocast on CUDA); returns the actor
    (acting with its mean) as a bidder. ``writer`` receives ``cql/<loss>`` every ``log_every`` steps."""
    seed_everything(config.seed)
    generator = device_generator(config.seed, data.device)
    learner = CQLLearner(data.observation_dim, config, (data.action_scale.low, data.action_scale.high), data.device)
    learner.fit_normalizers(data.flat_observations())
    for step in progress_steps(config.steps, "CQL", progress):
        losses = learner.update(data.sample_transitions(config.batch_size, generator), generator)
        if writer is not None and (step % log_every == 0 or step == config.steps - 1):
            log_scalars(writer, "cql", losses, step)
    return ActorBidder(learner.actor, algorithm="cql", device=data.device)
