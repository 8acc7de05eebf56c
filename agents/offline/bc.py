"""Behaviour cloning: regress the logged actions on the observations.

Deterministic BC minimises the squared error in unit action space; ``stochastic=True`` fits a
tanh-squashed Gaussian by maximum likelihood instead, which also models the exploration noise
of the logs (PE-MORL uses that as the "logged-behaviour policy" of the other advertisers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agents.offline.data import OfflineData
from agents.offline.policy import Actor, ActorBidder, ActorConfig
from agents.offline.training import autocast, check_positive, device_generator, log_scalars, progress_steps
from auctionsim.tracking import ScalarLogger, seed_everything
from auctionsim.errors import ConfigError

__all__ = ["BCConfig", "train_bc"]


@dataclass(frozen=True)
class BCConfig:
    """Behaviour-cloning hyper-parameters.

    Args:
        steps: gradient steps.
        batch_size: transitions per step.
        learning_rate: Adam step size.
        hidden_dim, hidden_layers: the actor MLP.
        stochastic: Gaussian maximum likelihood instead of squared error.
        seed: seeds initialisation and batch sampling.
    """

    steps: int = 5_000
    batch_size: int = 256
    learning_rate: float = 3e-4
    hidden_dim: int = 256
    hidden_layers: int = 2
    stochastic: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive("BCConfig", steps=self.steps, batch_size=self.batch_size, learning_rate=self.learning_rate)
        if not isinstance(self.steps, int) or not isinstance(self.batch_size, int):
            raise ConfigError(f"BCConfig.steps and batch_size must be integers, got {self.steps!r}, {self.batch_size!r}")


def train_bc(data: OfflineData, config: BCConfig = BCConfig(), progress: bool = False, writer: ScalarLogger | None = None, log_every: int = 100) -> ActorBidder:
    """Fit an actor to the logged actions of ``data`` (on ``data.device``; bf16 autocast on CUDA);
    returns it as a bidder. ``writer`` receives ``bc/loss`` every ``log_every`` steps."""
    seed_everything(config.seed)
    generator = device_generator(config.seed, data.device)
    actor = Actor(
        ActorConfig(
            data.observation_dim,
            config.hidden_dim,
            config.hidden_layers,
            stochastic=config.stochastic,
            action_low=data.action_scale.low,
            action_high=data.action_scale.high,
        )
    ).to(data.device)
    actor.normalizer.fit(data.flat_observations())
    optimizer = torch.optim.Adam(actor.parameters(), lr=config.learning_rate)
    for step in progress_steps(config.steps, "BC", progress):
        batch = data.sample_transitions(config.batch_size, generator)
        with autocast(data.device):
            if config.stochastic:
                loss = -actor.log_prob(batch.observations, batch.actions).mean()
            else:
                loss = (actor(batch.observations).float() - batch.actions).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if writer is not None and (step % log_every == 0 or step == config.steps - 1):
            log_scalars(writer, "bc", {"loss": loss.detach()}, step)
    return ActorBidder(actor, algorithm="bc-gaussian" if config.stochastic else "bc", device=data.device)
