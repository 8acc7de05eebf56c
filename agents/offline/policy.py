"""Trained offline-RL bidders as :class:`~auctionsim.envs.policy.PopulationPolicy` objects, and
their checkpoints.

A checkpoint is a plain dict ``{"format", "kind", "config", "state_dict"}`` of strings, numbers and
tensors, written with ``torch.save`` and read back with ``torch.load(weights_only=True)`` (no
pickled code). :func:`load_bidder` rebuilds any bidder of this package from its file; a loaded
bidder acts exactly like the saved one (same weights, same normaliser, same action scale).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import pickle
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from agents.offline.data import ActionScale
from agents.offline.networks import Normalizer, mlp
from agents.offline.training import resolve_device
from auctionsim.envs.policy import PopulationPolicy
from auctionsim.errors import ConfigError
from auctionsim.validation import check_int

__all__ = ["ActorConfig", "Actor", "ActorBidder", "CheckpointBidder", "load_bidder", "load_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "auctionsim.offline.v1"
LOG_STD_RANGE = (-5.0, 1.0)


@dataclass(frozen=True)
class ActorConfig:
    """Shape of an :class:`Actor`.

    Args:
        observation_dim: observation features ``D``.
        hidden_dim, hidden_layers: the MLP's width and depth.
        stochastic: also output a state-dependent log standard deviation (Gaussian policy in unit
            action space), e.g. for behaviour models and CQL; acting always uses the mean.
        action_low, action_high: the :class:`~agents.offline.data.ActionScale` bounds.
    """

    observation_dim: int
    hidden_dim: int = 256
    hidden_layers: int = 2
    stochastic: bool = False
    action_low: float = ActionScale.low
    action_high: float = ActionScale.high

    def __post_init__(self) -> None:
        for name in ("observation_dim", "hidden_dim", "hidden_layers"):
            check_int(name, getattr(self, name), low=1)
        ActionScale(self.action_low, self.action_high)

    @property
    def action_scale(self) -> ActionScale:
        return ActionScale(self.action_low, self.action_high)


class Actor(nn.Module):
    """Observation -> unit action ``tanh(mu(normalise(s)))`` in ``[-1, 1]``. With ``stochastic``,
    the policy is the tanh-squashed Gaussian ``a = tanh(u), u ~ N(mu, sigma^2)`` (as in SAC), with
    exact log-densities; acting always uses the deterministic ``tanh(mu)``.
    ``(B, D)`` float32 in, ``(B, 1)`` out."""

    def __init__(self, config: ActorConfig) -> None:
        super().__init__()
        self.config = config
        self.normalizer = Normalizer(config.observation_dim)
        self.net = mlp(config.observation_dim, config.hidden_dim, 2 if config.stochastic else 1, config.hidden_layers)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(self.normalizer(observations))[:, :1])

    def distribution(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-squash ``(mu, log_sigma)``, each ``(B, 1)``; needs ``stochastic``."""
        if not self.config.stochastic:
            raise ConfigError("distribution() needs an Actor built with stochastic=True")
        output = self.net(self.normalizer(observations))
        return output[:, :1], output[:, 1:].clamp(*LOG_STD_RANGE)

    def log_prob(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``(B,)`` log-density of unit ``actions`` ``(B, 1)`` (clipped just inside ``(-1, 1)``)."""
        mean, log_std = self.distribution(observations)
        squashed = actions.clamp(-1.0 + SQUASH_EPS, 1.0 - SQUASH_EPS)
        return _squashed_log_prob(torch.atanh(squashed), squashed, mean, log_std)

    def rsample(self, observations: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised draw: unit actions ``(B, 1)`` and their log-densities ``(B,)``."""
        mean, log_std = self.distribution(observations)
        noise = torch.randn(mean.shape, generator=generator, device=generator.device if generator is not None else mean.device).to(mean.device)
        pre_squash = mean + log_std.exp() * noise
        actions = torch.tanh(pre_squash)
        return actions, _squashed_log_prob(pre_squash, actions, mean, log_std)

    @torch.no_grad()
    def sample(self, observations: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A draw from the policy, ``(B, 1)`` (the mean if not stochastic)."""
        if not self.config.stochastic:
            return self(observations)
        return self.rsample(observations, generator)[0]


SQUASH_EPS = 1e-3


def _squashed_log_prob(pre_squash: torch.Tensor, actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(u; mu, sigma) - log(1 - tanh(u)^2): the density of ``a = tanh(u)``."""
    gaussian = -0.5 * ((pre_squash - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    return (gaussian - torch.log(1.0 - actions.pow(2) + 1e-6)).sum(dim=1)


class CheckpointBidder(PopulationPolicy):
    """A bidder that saves to and loads from a weights-only checkpoint. Subclasses set ``kind``
    and implement :meth:`checkpoint_config`, :meth:`modules_state` and :meth:`from_checkpoint`."""

    kind: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type["CheckpointBidder"]]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            CheckpointBidder._registry[cls.kind] = cls

    def checkpoint_config(self) -> dict:
        raise NotImplementedError

    def modules_state(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @classmethod
    def from_checkpoint(cls, config: dict, state_dict: dict[str, torch.Tensor], device: str) -> "CheckpointBidder":
        raise NotImplementedError

    def save(self, path: str | pathlib.Path) -> pathlib.Path:
        """Write the bidder's weights and configuration (tensors on CPU)."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.detach().cpu() for name, tensor in self.modules_state().items()}
        torch.save({"format": CHECKPOINT_FORMAT, "kind": self.kind, "config": self.checkpoint_config(), "state_dict": state}, path)
        return path


def load_checkpoint(path: str | pathlib.Path) -> dict:
    """Read a checkpoint of this package with ``torch.load(weights_only=True)``: tensors, numbers,
    strings and containers only. A file that would need to unpickle code (a crafted or foreign
    pickle) is refused with a ``ConfigError``; nothing in it is executed."""
    try:
        checkpoint = torch.load(pathlib.Path(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{path} is not a weights-only checkpoint: refusing to unpickle it ({first_line})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} is not an auctionsim offline-RL checkpoint (format {CHECKPOINT_FORMAT})")
    return checkpoint


def load_bidder(path: str | pathlib.Path, device: str | None = None) -> CheckpointBidder:
    """Rebuild a bidder saved with :meth:`CheckpointBidder.save` (see :func:`load_checkpoint`)."""
    checkpoint = load_checkpoint(path)
    kind = checkpoint["kind"]
    if kind not in CheckpointBidder._registry:
        raise ConfigError(f"unknown bidder kind {kind!r} in {path}; known: {sorted(CheckpointBidder._registry)}")
    return CheckpointBidder._registry[kind].from_checkpoint(checkpoint["config"], checkpoint["state_dict"], resolve_device(device))


class ActorBidder(CheckpointBidder):
    """Bids ``multiplier = scale^{-1}(actor(observation))`` for every advertiser it manages, in one
    batched forward pass per tick (the trained policy of BC, IQL, CQL and PE-MORL).

    Args:
        actor: the trained :class:`Actor`.
        algorithm: name of the algorithm that trained it (kept in the checkpoint).
        device: where to run the actor (default: cuda if available).
    """

    kind = "actor"

    def __init__(self, actor: Actor, algorithm: str = "", device: str | None = None) -> None:
        self.device = resolve_device(device)
        self.actor = actor.to(self.device).eval()
        self.algorithm = algorithm
        self.action_scale = actor.config.action_scale

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        tensor = torch.as_tensor(np.asarray(observations), dtype=torch.float32, device=self.device)
        if tensor.ndim != 2 or tensor.shape[1] != self.actor.config.observation_dim:
            raise ConfigError(f"observations must be (k, {self.actor.config.observation_dim}), got shape {tuple(tensor.shape)}")
        multipliers = self.action_scale.to_multiplier(self.actor(tensor).float())[:, 0]
        return multipliers.double().cpu().numpy()

    def checkpoint_config(self) -> dict:
        return {"actor": dataclasses.asdict(self.actor.config), "algorithm": self.algorithm}

    def modules_state(self) -> dict[str, torch.Tensor]:
        return self.actor.state_dict()

    @classmethod
    def from_checkpoint(cls, config: dict, state_dict: dict[str, torch.Tensor], device: str) -> "ActorBidder":
        actor = Actor(ActorConfig(**config["actor"]))
        actor.load_state_dict(state_dict)
        return cls(actor, algorithm=config["algorithm"], device=device)
