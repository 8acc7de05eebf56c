"""Branched model rollouts (MBPO-style) for PE-MORL: imaginary transitions of one focal advertiser.

Each rollout starts from a real logged tick (a whole market: every advertiser's state), picks a
live focal advertiser, and steps the model ``horizon`` ticks: the focal advertiser plays the
learning policy with exploration noise (a stochastic policy: the model is asked about actions
the logs may not hold, which is what it is for), every other advertiser draws from the logged-behaviour policy (a Gaussian
behaviour-cloning actor), and the next global state and rewards are drawn from the Gaussian of a
randomly chosen ensemble member. The focal advertiser's transition is kept with the penalised
reward (PE-MORL design 2)::

    r~ = r - lambda x sigma_r x u(s, a),   u = uncertainty_penalty(ensemble means)

where ``u`` is the ensemble's disagreement on the focal advertiser's prediction (standardised
units, see :func:`~agents.pemorl.model.uncertainty_penalty`) and ``sigma_r`` the reward's standard
deviation in the data, so ``lambda = 1`` subtracts one reward standard deviation per unit of
disagreement. An advertiser leaves the market when its budget or the episode runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from agents.offline.data import TransitionBatch
from agents.offline.policy import Actor
from agents.offline.training import autocast
from agents.pemorl.data import DYNAMIC_FEATURES, UNIT_INTERVAL_FEATURES, GlobalTransitions
from agents.pemorl.model import ModelEnsemble, uncertainty_penalty
from auctionsim.envs.observations import FEATURE_NAMES
from auctionsim.errors import ConfigError

__all__ = ["ImaginaryBatch", "branched_rollouts"]

_TIME_LEFT = FEATURE_NAMES.index("time_left")
_BUDGET_LEFT = FEATURE_NAMES.index("budget_left")
# Below this fraction of its budget (or of the episode) an imagined advertiser has finished.
_FINISHED = 1e-3


@dataclass(frozen=True, eq=False)
class ImaginaryBatch:
    """Imaginary focal transitions (``penalised_rewards`` is what Q-learning trains on) with the
    model's raw rewards and the penalties, for diagnostics."""

    transitions: TransitionBatch
    raw_rewards: torch.Tensor  # (M,)
    penalties: torch.Tensor  # (M,) lambda x sigma_r x u


@torch.no_grad()
def branched_rollouts(
    ensemble: ModelEnsemble,
    data: GlobalTransitions,
    focal_policy: Callable[[torch.Tensor], torch.Tensor],
    behaviour: Actor,
    n_rollouts: int,
    horizon: int,
    penalty_coefficient: float,
    generator: torch.Generator | None = None,
) -> ImaginaryBatch:
    """``n_rollouts`` rollouts of up to ``horizon`` ticks from real ticks of ``data``.

    Args:
        ensemble: the environment model.
        data: logged ticks to branch from.
        focal_policy: ``(B, D)`` observations -> ``(B, 1)`` unit actions: the learning policy,
            with its exploration noise (PE-MORL's learner passes ``actor(s) + noise``).
        behaviour: stochastic actor of the logged behaviour (the other advertisers).
        n_rollouts, horizon: rollouts and their length in ticks.
        penalty_coefficient: ``lambda`` (0 = no pessimism).
        generator: generator for every draw (on the data's device or the CPU).
    """
    if horizon < 1 or n_rollouts < 1:
        raise ConfigError(f"horizon and n_rollouts must be >= 1, got {horizon}, {n_rollouts}")
    if penalty_coefficient < 0:
        raise ConfigError(f"penalty_coefficient must be >= 0, got {penalty_coefficient}")
    device = data.device
    draws = generator.device if generator is not None else torch.device("cpu")
    start = data.sample(n_rollouts, generator)
    states, live = start.states.clone(), start.live.clone()
    batch, size, dimension = states.shape
    rows = torch.arange(batch, device=device)
    focal = torch.multinomial(live.float().to(draws), 1, generator=generator)[:, 0].to(device)
    active = live[rows, focal].clone()
    reward_std = ensemble.target_std[DYNAMIC_FEATURES]
    collected: list[tuple[torch.Tensor, ...]] = []
    for _ in range(horizon):
        if not active.any():
            break
        actions = behaviour.sample(states.reshape(-1, dimension), generator)[:, 0].reshape(batch, size)
        focal_states = states[rows, focal]
        focal_actions = focal_policy(focal_states)[:, 0]
        actions[rows, focal] = focal_actions
        actions = actions * live
        with autocast(device):
            means, log_variances = ensemble(states, actions, live)  # (K, B, N, F)
        member = torch.randint(ensemble.members, (batch,), generator=generator, device=draws).to(device)
        noise = torch.randn(means.shape[1:], generator=generator, device=draws).to(device)
        draw = means[member, rows] + torch.exp(0.5 * log_variances[member, rows]) * noise
        outcome = ensemble.unstandardise(draw)  # (B, N, F)
        next_states = _next_states(states, outcome[..., :DYNAMIC_FEATURES])
        penalty = penalty_coefficient * reward_std * uncertainty_penalty(means[:, rows, focal])
        raw_reward = outcome[rows, focal, DYNAMIC_FEATURES]
        next_live = live & (next_states[..., _BUDGET_LEFT] > _FINISHED) & (next_states[..., _TIME_LEFT] > _FINISHED)
        done = ~next_live[rows, focal]
        keep = active
        collected.append((focal_states[keep], focal_actions[keep], raw_reward[keep], penalty[keep], next_states[rows, focal][keep], done[keep].float()))
        states, live, active = next_states, next_live, active & ~done
    observations, actions, raw_rewards, penalties, next_observations, dones = (torch.cat(parts) for parts in zip(*collected))
    transitions = TransitionBatch(observations, actions.unsqueeze(1), raw_rewards - penalties, next_observations, dones)
    return ImaginaryBatch(transitions, raw_rewards, penalties)


def _next_states(states: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    """Apply the predicted change to the dynamic features, keep them in their ranges (>= 0;
    <= 1 for fractions and rates) and copy the advertiser's constant features."""
    dynamic = (states[..., :DYNAMIC_FEATURES] + change).clamp(min=0.0)
    bounded = list(UNIT_INTERVAL_FEATURES)
    dynamic[..., bounded] = dynamic[..., bounded].clamp(max=1.0)
    return torch.cat([dynamic, states[..., DYNAMIC_FEATURES:]], dim=-1)
