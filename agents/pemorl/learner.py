"""PE-MORL's robust offline Q-learning: IQL on real plus uncertainty-penalised imaginary data.

The PE-MORL notes (design 2) state only that model transitions carry a penalty growing with the
model's uncertainty and real ones none; the choice of the actor-critic is ours. We use
:class:`~agents.offline.iql.IQLLearner` (expectile value, twin Q, advantage-weighted actor):
its in-sample value makes imaginary actions of the learning policy count as "logged" ones, so
the model is what lets the policy leave the data's support, and the penalty (MOPO-style,
:mod:`agents.pemorl.rollouts`) is what keeps it from exploiting model errors.

Loop: fit a Gaussian behaviour-cloning actor (the other advertisers in rollouts); every
``rollout_every`` steps, add branched rollouts of the current actor to a FIFO buffer; each
gradient step trains on ``real_fraction`` logged transitions and the rest imaginary ones.
The trained bidder is an :class:`~agents.offline.policy.ActorBidder` (``algorithm="pe-morl"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from agents.offline.bc import BCConfig, train_bc
from agents.offline.data import OfflineData, TransitionBatch
from agents.offline.iql import IQLConfig, IQLLearner
from agents.offline.policy import ActorBidder
from agents.offline.training import check_unit_interval, progress_steps, seed_everything
from agents.pemorl.data import GlobalTransitions
from agents.pemorl.model import ModelEnsemble
from agents.pemorl.rollouts import branched_rollouts
from auctionsim.errors import ConfigError, describe
from auctionsim.validation import check_int, check_number

__all__ = ["PEMORLConfig", "PEMORLResult", "train_pemorl"]


@dataclass(frozen=True)
class PEMORLConfig:
    """PE-MORL policy-learning hyper-parameters.

    Args:
        iql: the actor-critic (``context_length`` must be 1: imaginary data has no history).
        penalty_coefficient: ``lambda`` of the uncertainty penalty (0 = no pessimism).
        horizon: ticks per branched rollout.
        rollouts_per_refresh: rollouts generated every ``rollout_every`` steps.
        rollout_every: gradient steps between rollout refreshes.
        buffer_size: imaginary transitions kept (oldest dropped first).
        real_fraction: share of logged transitions in each batch.
        behaviour_steps: gradient steps of the Gaussian behaviour-cloning actor.
    """

    iql: IQLConfig = field(default_factory=IQLConfig)
    penalty_coefficient: float = 1.0
    horizon: int = 3
    rollouts_per_refresh: int = 256
    rollout_every: int = 250
    buffer_size: int = 50_000
    real_fraction: float = 0.5
    behaviour_steps: int = 2_000

    def __post_init__(self) -> None:
        if not isinstance(self.iql, IQLConfig):
            raise ConfigError(f"PEMORLConfig.iql must be an IQLConfig, got {describe(self.iql)}")
        if self.iql.context_length != 1:
            raise ConfigError(f"PEMORLConfig.iql.context_length must be 1, got {self.iql.context_length}")
        check_number("PEMORLConfig.penalty_coefficient", self.penalty_coefficient, low=0.0)
        for name in ("horizon", "rollouts_per_refresh", "rollout_every", "buffer_size", "behaviour_steps"):
            check_int(f"PEMORLConfig.{name}", getattr(self, name), low=1)
        check_unit_interval("PEMORLConfig", real_fraction=self.real_fraction)


@dataclass(frozen=True, eq=False)
class PEMORLResult:
    """The trained bidder, its learner and one history row per rollout refresh."""

    bidder: ActorBidder
    learner: IQLLearner
    history: list[dict[str, float]]


_FIELDS = ("observations", "actions", "rewards", "next_observations", "dones")


class _ImaginaryBuffer:
    """FIFO of the last ``capacity`` imaginary transitions, sampled uniformly."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.contents: TransitionBatch | None = None

    @property
    def size(self) -> int:
        return 0 if self.contents is None else len(self.contents.rewards)

    def add(self, batch: TransitionBatch) -> None:
        merged = batch if self.contents is None else _concatenate(self.contents, batch)
        self.contents = TransitionBatch(**{name: getattr(merged, name)[-self.capacity :] for name in _FIELDS})

    def sample(self, batch_size: int, generator: torch.Generator) -> TransitionBatch:
        index = torch.randint(self.size, (batch_size,), generator=generator).to(self.contents.rewards.device)
        return TransitionBatch(**{name: getattr(self.contents, name)[index] for name in _FIELDS})


def _concatenate(first: TransitionBatch, second: TransitionBatch) -> TransitionBatch:
    return TransitionBatch(**{name: torch.cat([getattr(first, name), getattr(second, name)]) for name in _FIELDS})


def train_pemorl(
    data: OfflineData,
    transitions: GlobalTransitions,
    ensemble: ModelEnsemble,
    config: PEMORLConfig = PEMORLConfig(),
    progress: bool = False,
) -> PEMORLResult:
    """Train the PE-MORL actor-critic on ``data`` (the logged per-advertiser transitions) and
    imaginary rollouts of ``ensemble`` branched from ``transitions`` (the same logs as global
    ticks)."""
    iql = config.iql
    if data.action_scale != transitions.action_scale:
        raise ConfigError(f"data and transitions use different action scales: {data.action_scale} vs {transitions.action_scale}")
    behaviour = train_bc(data, BCConfig(steps=config.behaviour_steps, batch_size=256, hidden_dim=iql.hidden_dim, hidden_layers=iql.hidden_layers, stochastic=True, seed=iql.seed)).actor
    generator = seed_everything(iql.seed)
    learner = IQLLearner(data.observation_dim, iql, (data.action_scale.low, data.action_scale.high), data.n_ticks, data.device)
    learner.fit_normalizers(data.flat_observations())
    buffer = _ImaginaryBuffer(config.buffer_size)
    real_size = max(1, round(config.real_fraction * iql.batch_size)) if config.real_fraction > 0 else 0
    history = []
    for step in progress_steps(iql.steps, "PE-MORL", progress):
        if step % config.rollout_every == 0:
            imaginary = branched_rollouts(
                ensemble, transitions, learner.actor, behaviour, config.rollouts_per_refresh, config.horizon, config.penalty_coefficient, generator
            )
            buffer.add(imaginary.transitions)
            history.append(
                {"step": step, "imaginary": buffer.size, "model_reward": imaginary.raw_rewards.mean().item(), "penalty": imaginary.penalties.mean().item()}
            )
        real = data.sample_transitions(real_size, generator) if real_size else None
        fake = buffer.sample(iql.batch_size - real_size, generator) if real_size < iql.batch_size else None
        batch = fake if real is None else real if fake is None else _concatenate(real, fake)
        losses = learner.update(batch)
        if step % config.rollout_every == 0:
            history[-1].update(losses)
    learner.actor.eval()
    return PEMORLResult(bidder=learner.bidder("pe-morl"), learner=learner, history=history)
