"""Torch RLModules of BPG: one shared per-advertiser policy applied to every row of a role.

The same class serves the three policies of the paper: the population policy ``theta``
(``N`` rows), the unified optimizer ``nu-bar`` and the unified solution ``x*`` (one row each).
Every row is one advertiser; the actor reads only that row's features (its own observation,
which includes its budget, CPA target and category, so ``pi(a | s_i, i)`` serves any number of
advertisers), and is permutation equivariant by construction.

* Actor: MLP(features) -> mean log multiplier; one learned log-std per module (state
  independent). Initialised to bid the expected value (multiplier 1).
* Critic: per-row value ``V_j = head([phi(s_j, role_j), mean_k phi(s_k, role_k)])``: the row's
  own embedding plus the mean embedding of all rows (roles included), so the population's
  critic sees who deviates. It is a baseline only: it never feeds the actor.

Action distribution inputs are ``[mean (k), log_std (k)]`` for RLlib's ``TorchDiagGaussian``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

from agents.base import TorchPolicy
from agents.bpg.env import AUX_COLUMNS, ROLE

__all__ = ["ActorDeviation", "RowActor", "RowPolicyModule", "population_policy", "row_log_probs"]

_N_ROLES = 4


def _mlp(sizes: list[int], activation=nn.Tanh) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class RowActor(nn.Module):
    """The deterministic policy: ``(k, D)`` features -> ``(k,)`` mean log multipliers.

    Calling it returns bid multipliers ``exp(clip(mean, low, high))`` (the env's convention), so
    it plugs into :class:`agents.base.TorchPolicy` as a population policy.
    """

    def __init__(self, n_features: int, hidden: list[int], action_bounds: tuple[float, float]) -> None:
        super().__init__()
        self.net = _mlp([n_features, *hidden, 1])
        # Start at multiplier 1 (bid the expected value) with small output weights.
        final = self.net[-1]
        nn.init.zeros_(final.bias)
        with torch.no_grad():
            final.weight.mul_(0.01)
        self.action_bounds = tuple(float(b) for b in action_bounds)

    def mean(self, features: torch.Tensor) -> torch.Tensor:
        """``(..., k, D)`` -> ``(..., k)`` mean log multipliers."""
        return self.net(features).squeeze(-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        low, high = self.action_bounds
        return torch.exp(torch.clamp(self.mean(features), low, high))


class RowPolicyModule(TorchRLModule, ValueFunctionAPI):
    """RLModule over ``(k, D + 5)`` observations (features + the bookkeeping columns of
    :mod:`agents.bpg.env`) with ``(k,)`` log-multiplier actions.

    ``model_config``: ``hidden`` (actor layers, default [64, 64]),
    ``critic_hidden`` (default [64, 64]), ``log_std_init`` (default -0.7: the multiplier explores
    by about x/÷ 1.6), ``init_seed`` (seed of the initial weights; ``None``: torch's global
    generator). RLlib builds the modules in an order that depends on Python's string hashing,
    so without ``init_seed`` the initial weights, and the whole run, vary between processes.
    """

    def setup(self) -> None:
        seed = self.model_config.get("init_seed")
        if seed is None:
            self._build_layers()
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self._build_layers()

    def _build_layers(self) -> None:
        config = self.model_config
        self.n_features = int(self.observation_space.shape[-1]) - len(AUX_COLUMNS)
        hidden = list(config.get("hidden", [64, 64]))
        critic_hidden = list(config.get("critic_hidden", [64, 64]))
        bounds = (float(self.action_space.low.min()), float(self.action_space.high.max()))
        self.actor = RowActor(self.n_features, hidden, bounds)
        self.log_std = nn.Parameter(torch.tensor(float(config.get("log_std_init", -0.7))))
        if not self.inference_only:
            embedding = critic_hidden[-1]
            self.critic_rows = _mlp([self.n_features + _N_ROLES, *critic_hidden], activation=nn.Tanh)
            self.critic_head = _mlp([2 * embedding, embedding, 1])

    # ------------------------------------------------------------------ columns
    def features(self, observations: torch.Tensor) -> torch.Tensor:
        return observations[..., : self.n_features]

    def roles(self, observations: torch.Tensor) -> torch.Tensor:
        return observations[..., self.n_features + ROLE].round().long()

    # ------------------------------------------------------------------ forward passes
    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        mean = self.actor.mean(self.features(batch[Columns.OBS]))
        log_std = self.log_std.expand_as(mean)
        return {Columns.ACTION_DIST_INPUTS: torch.cat([mean, log_std], dim=-1)}

    def set_exploration_seed(self, seed: int) -> None:
        """Draw the exploration noise of the following samples from a generator of its own,
        seeded with ``seed``. RLlib computes the modules' actions in an order that depends on
        Python's string hashing, so noise from torch's global generator would land on other
        modules in another process; a generator per module keeps runs reproducible."""
        self._exploration_noise = torch.Generator().manual_seed(int(seed))

    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        output = self._forward(batch)
        noise = getattr(self, "_exploration_noise", None)
        if noise is None:
            return output  # RLlib samples the actions with torch's global generator
        inputs = output[Columns.ACTION_DIST_INPUTS]
        mean, log_std = inputs.chunk(2, dim=-1)
        actions = mean + log_std.exp() * torch.randn(mean.shape, generator=noise).to(mean.device)
        output[Columns.ACTIONS] = actions
        output[Columns.ACTION_LOGP] = TorchDiagGaussian.from_logits(inputs).logp(actions)
        return output

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        """``(B, k)`` per-row values of the row's return signal."""
        observations = batch[Columns.OBS]
        roles = nn.functional.one_hot(self.roles(observations).clamp(0, _N_ROLES - 1), _N_ROLES).to(observations.dtype)
        rows = self.critic_rows(torch.cat([self.features(observations), roles], dim=-1))
        context = rows.mean(dim=-2, keepdim=True).expand_as(rows)
        return self.critic_head(torch.cat([rows, context], dim=-1)).squeeze(-1)

    def get_non_inference_attributes(self) -> list[str]:
        return ["critic_rows", "critic_head"]

    def get_train_action_dist_cls(self):
        return TorchDiagGaussian

    def get_exploration_action_dist_cls(self):
        return TorchDiagGaussian

    def get_inference_action_dist_cls(self):
        return TorchDiagGaussian


class ActorDeviation:
    """A :class:`RowActor` bidding for one advertiser, as an :mod:`agents.equilibrium`
    ``Deviation`` (``act(tick, observation) -> multiplier``): how x* is played unilaterally."""

    def __init__(self, actor: RowActor) -> None:
        self.actor = actor

    def act(self, tick: int, observation) -> float:
        with torch.no_grad():
            return float(self.actor(torch.as_tensor(observation, dtype=torch.float32).reshape(1, -1))[0])


def population_policy(module: RowPolicyModule, device: str = "cpu") -> TorchPolicy:
    """The module's deterministic policy (mean action) as a :class:`~agents.base.TorchPolicy`
    serving a whole population: ``(k, D)`` observations -> ``(k,)`` multipliers."""
    return TorchPolicy(module.actor, device=device)


def row_log_probs(distribution_inputs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``(B, 2k)`` distribution inputs and ``(B, k)`` actions -> ``(B, k)`` per-row log-probs."""
    mean, log_std = distribution_inputs.chunk(2, dim=-1)
    return torch.distributions.Normal(mean, log_std.exp()).log_prob(actions)

