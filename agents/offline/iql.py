"""Implicit Q-learning (IQL; Kostrikov et al. 2022) as the LBM paper uses it for its critic.

Losses (LBM paper Eqs. 7-9, IQL paper Eqs. 5-7), on logged transitions ``(s, a, r, s', d)``:

* value, Eq. (8): ``L_V = E[ L2_tau( Q_target(s, a) - V(s) ) ]`` with the expectile loss
  ``L2_tau(u) = |tau - 1(u < 0)| u^2`` (:func:`expectile_loss`); ``V`` approaches the
  ``tau``-expectile of ``Q`` over the data's actions, an in-sample "max" for ``tau -> 1``;
* Q, Eq. (9): ``L_Q = E[ (r + gamma (1 - d) V(s') - Q(s, a))^2 ]`` for each of twin Q networks;
  ``Q_target`` is the minimum of their Polyak-averaged copies (rate ``tau_target``);
* policy, advantage-weighted regression, Eq. (7): ``max E[ exp(beta (Q_target - V)) log pi(a|s) ]``
  with a deterministic actor, i.e. ``log pi`` a Gaussian of fixed variance around ``pi(s)``: a
  squared error weighted by ``exp(beta A)``, capped at ``max_weight``.

Advantage scale (``normalise_advantages``, on by default; ours): ``beta`` multiplies a unitless
number only if the advantages have a known scale. IQL's locomotion ``beta = 3`` goes with
rewards rescaled so returns span ~1000; our per-advertiser scaled returns lie in ~[0, 1.5], so
raw advantages are ~+-0.05 and ``exp(3 A)`` spans 0.84-1.11 over the batch (5-95%): weighted BC
that is plain BC. We therefore divide ``A`` by a running (exponential moving average, rate
``advantage_scale_rate``) standard deviation of the batch advantages, as AWR-style methods do,
so ``beta`` is in advantage standard deviations: ``beta = 1`` gives an action one standard
deviation better ``e`` times the weight (weights span ~0.2-5 over the batch). The shift of the
advantages is not removed (``A = 0`` keeps weight 1: the expectile value is the baseline).

Defaults follow the LBM paper's Table 9 (batch 128, AdamW lr 1e-4, eps 1e-8, weight decay 1e-2,
hidden 512, gamma 0.99, target rate 0.01, expectile 0.7) except the number of steps (400,000 in
the paper; far fewer suffice on our datasets) and the critic input: ``context_length = 1`` is the
usual MLP critic on the current observation; ``context_length = L > 1`` is Table 9's sequence
critic, a causal transformer over the last ``L`` (observation, previous action) tokens (Table 9:
L = 10, 6 attention layers, 8 heads). Table 9's "scale 2000" divides returns; our
:class:`~agents.offline.data.OfflineData` scales rewards per advertiser instead.

Public API (also used by the LBM bidder's GQPO and by PE-MORL):
:class:`IQLConfig`, :func:`train_iql` -> :class:`IQLResult` (``.bidder``, ``.critic``,
``.learner``), :class:`IQLCritic` (``q``, ``v``, ``advantage`` on observations ``(B, D)`` or
:class:`~agents.offline.data.WindowBatch` histories, unit actions ``(B, 1)``),
:class:`IQLLearner` (``update(TransitionBatch)``: one gradient step on any batch, real or
imaginary), :func:`expectile_loss`, :func:`save_critic` / :func:`load_critic`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from dataclasses import dataclass

import torch
from torch import nn

from agents.offline.data import OfflineData, TransitionBatch
from agents.offline.networks import State, StateEncoder, TwinQ, ValueNet
from agents.offline.policy import CHECKPOINT_FORMAT, Actor, ActorBidder, ActorConfig, load_checkpoint
from agents.offline.training import (
    autocast,
    check_positive,
    check_unit_interval,
    device_generator,
    frozen_copy,
    log_scalars,
    progress_steps,
    resolve_device,
    soft_update,
)
from auctionsim.tracking import ScalarLogger, seed_everything
from auctionsim.errors import ConfigError
from auctionsim.validation import check_int

__all__ = [
    "IQLConfig",
    "IQLCritic",
    "IQLLearner",
    "IQLResult",
    "expectile_loss",
    "load_critic",
    "save_critic",
    "train_iql",
]

def expectile_loss(difference: torch.Tensor, expectile: float) -> torch.Tensor:
    """Mean of ``|tau - 1(u < 0)| u^2`` over ``difference = u`` (LBM Eq. 8). Minimised over a
    constant ``v`` with ``u = x - v``, it gives the ``tau``-expectile of ``x``."""
    weight = torch.where(difference < 0, 1.0 - expectile, expectile)
    return (weight * difference.pow(2)).mean()


@dataclass(frozen=True)
class IQLConfig:
    """IQL hyper-parameters (defaults: LBM paper Table 9 where it gives them).

    Args:
        steps: gradient steps (Table 9: 400,000).
        batch_size: transitions per step (Table 9: 128).
        learning_rate, optimizer_eps, weight_decay: AdamW (Table 9: 1e-4, 1e-8, 1e-2).
        hidden_dim, hidden_layers: MLP heads of Q, V and the actor (Table 9: hidden 512, ReLU).
        gamma: discount (Table 9: 0.99).
        target_rate: Polyak rate of the target Q networks (Table 9's "tau": 0.01).
        expectile: ``tau`` of the expectile loss (Table 9: 0.7).
        temperature: ``beta`` of the advantage weights, in advantage standard deviations when
            ``normalise_advantages`` (see the module docstring; raw-advantage IQL used 3).
        max_weight: cap of ``exp(beta A)``.
        normalise_advantages: divide advantages by their running standard deviation.
        advantage_scale_rate: rate of that running estimate (per step).
        context_length: 1 for an MLP critic on the observation; ``L > 1`` for the transformer
            critic over the last ``L`` ticks (Table 9: 10).
        attention_layers, attention_heads, attention_dim: the sequence critic's transformer
            (Table 9: 6 layers, 8 heads).
        seed: seeds initialisation and sampling.
    """

    steps: int = 20_000
    batch_size: int = 128
    learning_rate: float = 1e-4
    optimizer_eps: float = 1e-8
    weight_decay: float = 1e-2
    hidden_dim: int = 512
    hidden_layers: int = 2
    gamma: float = 0.99
    target_rate: float = 0.01
    expectile: float = 0.7
    temperature: float = 1.0
    max_weight: float = 100.0
    normalise_advantages: bool = True
    advantage_scale_rate: float = 0.01
    context_length: int = 1
    attention_layers: int = 6
    attention_heads: int = 8
    attention_dim: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "hidden_dim", "hidden_layers", "context_length", "attention_layers", "attention_heads", "attention_dim", "seed"):
            check_int(f"IQLConfig.{name}", getattr(self, name), low=0 if name == "seed" else 1)
        check_positive("IQLConfig", learning_rate=self.learning_rate, optimizer_eps=self.optimizer_eps, max_weight=self.max_weight)
        check_unit_interval("IQLConfig", gamma=self.gamma, target_rate=self.target_rate, expectile=self.expectile, advantage_scale_rate=self.advantage_scale_rate)
        if self.temperature < 0 or self.weight_decay < 0:
            raise ConfigError(f"IQLConfig.temperature and weight_decay must be >= 0, got {self.temperature}, {self.weight_decay}")


class IQLCritic(nn.Module):
    """IQL's value functions. States are ``(B, D)`` observations (``context_length == 1``) or
    :class:`WindowBatch` histories; actions are unit actions ``(B, 1)`` (see
    :class:`~agents.offline.data.ActionScale`); values are in scaled-reward units.

    Attributes:
        twin_q: the trained Q networks; target_q: their Polyak average; value: ``V``.
    """

    def __init__(self, observation_dim: int, config: IQLConfig, max_ticks: int = 48) -> None:
        super().__init__()
        self.config = config
        self.observation_dim = observation_dim
        self.max_ticks = max_ticks
        def encoder() -> StateEncoder:
            return StateEncoder(
                observation_dim, config.context_length, max_ticks, config.attention_dim, config.attention_layers, config.attention_heads
            )

        self.twin_q = TwinQ(encoder(), config.hidden_dim, config.hidden_layers)
        self.target_q = frozen_copy(self.twin_q)
        self.value = ValueNet(encoder(), config.hidden_dim, config.hidden_layers)

    def fit_normalizers(self, observations: torch.Tensor) -> None:
        for module in (self.twin_q.encoder, self.target_q.encoder, self.value.encoder):
            module.normalizer.fit(observations)

    def q(self, state: State, actions: torch.Tensor) -> torch.Tensor:
        """``(B,)`` the minimum of the target twin Q values."""
        first, second = self.target_q(state, actions)
        return torch.minimum(first, second)

    def v(self, state: State) -> torch.Tensor:
        """``(B,)`` the expectile value ``V(s)``."""
        return self.value(state)

    def advantage(self, state: State, actions: torch.Tensor) -> torch.Tensor:
        """``(B,)`` ``Q(s, a) - V(s)``."""
        return self.q(state, actions) - self.v(state)


class IQLLearner:
    """IQL's networks, optimisers and one gradient step. Give :meth:`update` any
    :class:`TransitionBatch` (logged, imaginary or mixed): PE-MORL trains through it.

    Args:
        observation_dim: observation features ``D``.
        config: hyper-parameters.
        action_scale_bounds: ``(low, high)`` multipliers of the actor's action scale.
        max_ticks: ticks per episode (size of the sequence critic's tick embedding).
        device: torch device.
    """

    def __init__(self, observation_dim: int, config: IQLConfig, action_scale_bounds: tuple[float, float], max_ticks: int, device: str) -> None:
        self.config = config
        self.device = device
        self.critic = IQLCritic(observation_dim, config, max_ticks).to(device)
        low, high = action_scale_bounds
        self.actor = Actor(ActorConfig(observation_dim, config.hidden_dim, config.hidden_layers, action_low=low, action_high=high)).to(device)

        def adamw(module: nn.Module) -> torch.optim.Optimizer:
            return torch.optim.AdamW(
                module.parameters(), lr=config.learning_rate, eps=config.optimizer_eps, weight_decay=config.weight_decay, foreach=True
            )

        self.advantage_scale: torch.Tensor | None = None
        self.q_optimizer = adamw(self.critic.twin_q)
        self.v_optimizer = adamw(self.critic.value)
        self.actor_optimizer = adamw(self.actor)

    def fit_normalizers(self, observations: torch.Tensor) -> None:
        """Set every normaliser (critic and actor) from ``(M, D)`` observations."""
        self.critic.fit_normalizers(observations)
        self.actor.normalizer.fit(observations)

    def update(self, batch: TransitionBatch) -> dict[str, torch.Tensor]:
        """One step on the V (Eq. 8), Q (Eq. 9) and AWR actor (Eq. 7) losses. Returns detached
        0-d tensors (losses, mean Q, the advantage scale and the 5%/95% quantiles of the AWR
        weights) without reading them back from the device; see
        :func:`~agents.offline.training.log_scalars`."""
        config, critic = self.config, self.critic
        state = batch.observations if config.context_length == 1 else batch.history
        next_state = batch.next_observations if config.context_length == 1 else batch.next_history
        if state is None or next_state is None:
            raise ConfigError(f"context_length={config.context_length} needs batches sampled with histories")
        with autocast(self.device):
            with torch.no_grad():
                target_q = critic.q(state, batch.actions).float()
            value = critic.v(state).float()
            value_loss = expectile_loss(target_q - value, config.expectile)
        self._step(self.v_optimizer, value_loss)

        with autocast(self.device):
            with torch.no_grad():
                target = batch.rewards + config.gamma * (1.0 - batch.dones) * critic.v(next_state).float()
            first, second = critic.twin_q(state, batch.actions)
            q_loss = (first.float() - target).pow(2).mean() + (second.float() - target).pow(2).mean()
        self._step(self.q_optimizer, q_loss)
        soft_update(critic.target_q, critic.twin_q, config.target_rate)

        advantage = target_q - value.detach()
        scale = self._advantage_scale(advantage) if config.normalise_advantages else torch.ones((), device=advantage.device)
        weights = torch.exp(config.temperature * advantage / scale).clamp(max=config.max_weight)
        with autocast(self.device):
            squared_error = (self.actor(batch.observations).float() - batch.actions).pow(2)[:, 0]
            actor_loss = (weights * squared_error).mean()
        self._step(self.actor_optimizer, actor_loss)
        weight_quantiles = torch.quantile(weights, torch.tensor([0.05, 0.95], device=weights.device))
        return {
            "value_loss": value_loss.detach(),
            "q_loss": q_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "mean_q": target_q.mean(),
            "advantage_scale": scale,
            "weight_p05": weight_quantiles[0],
            "weight_p95": weight_quantiles[1],
        }

    @torch.no_grad()
    def _advantage_scale(self, advantage: torch.Tensor) -> torch.Tensor:
        """Running standard deviation of the advantages (the batch's at the first step), kept on
        the device; floored so identical advantages do not divide by zero."""
        spread = advantage.std().clamp(min=1e-6)
        if self.advantage_scale is None:
            self.advantage_scale = spread.clone()
        else:
            self.advantage_scale.lerp_(spread, self.config.advantage_scale_rate)
        return self.advantage_scale.clone()

    @staticmethod
    def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def bidder(self, algorithm: str = "iql") -> ActorBidder:
        """The current actor as a bidder (shares the actor's weights: copy before training on)."""
        return ActorBidder(self.actor, algorithm=algorithm, device=self.device)


@dataclass(frozen=True, eq=False)
class IQLResult:
    """What :func:`train_iql` returns: the bidder, its critic, the learner and the loss history
    (one dict per logged step)."""

    bidder: ActorBidder
    critic: IQLCritic
    learner: IQLLearner
    history: list[dict[str, float]]


def train_iql(
    data: OfflineData, config: IQLConfig = IQLConfig(), progress: bool = False, log_every: int = 100, writer: ScalarLogger | None = None
) -> IQLResult:
    """Train IQL on ``data`` for ``config.steps`` steps (on ``data.device``; bf16 autocast on
    CUDA). Every ``log_every`` steps the losses go to the history and, as ``iql/<name>``, to
    ``writer``."""
    seed_everything(config.seed)
    generator = device_generator(config.seed, data.device)
    learner = IQLLearner(data.observation_dim, config, (data.action_scale.low, data.action_scale.high), data.n_ticks, data.device)
    learner.fit_normalizers(data.flat_observations())
    history = []
    for step in progress_steps(config.steps, "IQL", progress):
        losses = learner.update(data.sample_transitions(config.batch_size, generator, config.context_length))
        if step % log_every == 0 or step == config.steps - 1:
            history.append({"step": step, **log_scalars(writer, "iql", losses, step)})
    learner.actor.eval()
    return IQLResult(bidder=learner.bidder(), critic=learner.critic.eval(), learner=learner, history=history)


def save_critic(critic: IQLCritic, path: str | pathlib.Path) -> pathlib.Path:
    """Write a critic's weights and configuration (read back with ``weights_only=True``)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"iql": dataclasses.asdict(critic.config), "observation_dim": critic.observation_dim, "max_ticks": critic.max_ticks}
    state = {name: tensor.detach().cpu() for name, tensor in critic.state_dict().items()}
    torch.save({"format": CHECKPOINT_FORMAT, "kind": "iql-critic", "config": config, "state_dict": state}, path)
    return path


def load_critic(path: str | pathlib.Path, device: str | None = None) -> IQLCritic:
    """Rebuild a critic written by :func:`save_critic`, in eval mode."""
    checkpoint = load_checkpoint(path)
    if checkpoint.get("kind") != "iql-critic":
        raise ConfigError(f"{path} is not an IQL critic checkpoint")
    config = checkpoint["config"]
    critic = IQLCritic(config["observation_dim"], IQLConfig(**config["iql"]), config["max_ticks"])
    critic.load_state_dict(checkpoint["state_dict"])
    return critic.to(resolve_device(device)).eval()
