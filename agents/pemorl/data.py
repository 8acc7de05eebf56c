"""Global transitions for the environment model: every logged tick as one set of advertisers.

A logged tick of a market with ``N`` advertisers is ``(s_t, a_t, r_t, s_{t+1}, live_t)``: every
advertiser's local observation ``(N, D)``, the joint action ``(N,)`` (unit actions of an
:class:`~agents.offline.data.ActionScale`), the rewards ``(N,)`` (scaled per advertiser as in
:class:`~agents.offline.data.OfflineData`, so model rollouts and real transitions share units)
and the next observations ``(N, D)``; ``live`` marks the advertisers that bid in the tick (an
advertiser whose budget ran out leaves the auction). Markets of different sizes are kept as
separate groups, since a batch is a stack of sets of one size.

The model predicts only the *dynamic* features (everything but the advertiser's own constants:
budget, CPA target and category, which it copies), as a change ``s_{t+1} - s_t``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from agents.datasets import OfflineDataset
from agents.offline.data import ActionScale, as_dataset_list, scaled_rewards
from agents.offline.training import resolve_device
from auctionsim.envs.observations import FEATURE_NAMES
from auctionsim.errors import ConfigError, describe

__all__ = ["GlobalBatch", "GlobalTransitions", "DYNAMIC_FEATURES", "UNIT_INTERVAL_FEATURES"]

# The advertiser's own constants (budget_in_target_conversions, cpa_target) and the category
# one-hot follow the 16 dynamic features (see auctionsim.envs.observations).
DYNAMIC_FEATURES = 16
# Dynamic features bounded by 1 (time_left, budget_left, win_rate, win_rate_last3).
UNIT_INTERVAL_FEATURES = tuple(FEATURE_NAMES.index(name) for name in ("time_left", "budget_left", "win_rate", "win_rate_last3"))


@dataclass(frozen=True, eq=False)
class GlobalBatch:
    """``B`` logged ticks of markets with ``N`` advertisers each (tensors)."""

    states: torch.Tensor  # (B, N, D)
    actions: torch.Tensor  # (B, N) unit actions (0 where not live)
    rewards: torch.Tensor  # (B, N) scaled rewards
    next_states: torch.Tensor  # (B, N, D)
    live: torch.Tensor  # (B, N) bool

    @property
    def targets(self) -> torch.Tensor:
        """``(B, N, DYNAMIC_FEATURES + 1)``: the change of the dynamic features, then the reward."""
        change = self.next_states[..., :DYNAMIC_FEATURES] - self.states[..., :DYNAMIC_FEATURES]
        return torch.cat([change, self.rewards.unsqueeze(-1)], dim=-1)

    def take(self, index: torch.Tensor) -> "GlobalBatch":
        """The ticks at ``index`` (a batch of the same set size)."""
        return GlobalBatch(self.states[index], self.actions[index], self.rewards[index], self.next_states[index], self.live[index])


class GlobalTransitions:
    """Every logged tick with at least one live advertiser, grouped by market size.

    Args:
        datasets: logged datasets (same observation features; any number of advertisers).
        reward: reward kind (see :mod:`auctionsim.envs.observations`).
        action_scale: multiplier <-> unit action map (the policies' scale).
        device: torch device (default: cuda if available).

    Attributes:
        groups: one :class:`GlobalBatch` per distinct advertiser count, holding all its ticks.
    """

    def __init__(
        self,
        datasets: OfflineDataset | Sequence[OfflineDataset],
        reward: str = "score",
        action_scale: ActionScale = ActionScale(),
        device: str | None = None,
    ) -> None:
        datasets = as_dataset_list(datasets)
        widths = {d.observations.shape[-1] for d in datasets}
        if len(widths) != 1:
            raise ConfigError(f"datasets disagree on the observation width: {sorted(widths)}")
        self.device = resolve_device(device)
        self.action_scale = action_scale
        self.observation_dim = widths.pop()
        if self.observation_dim <= DYNAMIC_FEATURES:
            raise ConfigError(f"observations need more than {DYNAMIC_FEATURES} features, got {self.observation_dim}")
        by_size: dict[int, list[dict[str, np.ndarray]]] = {}
        for dataset in datasets:
            by_size.setdefault(dataset.actions.shape[2], []).append(self._ticks(dataset, reward))
        self.groups = [self._stack(parts) for _, parts in sorted(by_size.items())]

    @staticmethod
    def _ticks(dataset: OfflineDataset, reward: str) -> dict[str, np.ndarray]:
        live = dataset.live[:, :-1]  # (E, T, N)
        episode, tick = np.nonzero(live.any(axis=2))
        return {
            "states": dataset.observations[episode, tick],
            "actions": np.where(live[episode, tick], dataset.actions[episode, tick], 1.0),
            "rewards": scaled_rewards(dataset, reward)[episode, tick],
            "next_states": dataset.observations[episode, tick + 1],
            "live": live[episode, tick],
        }

    def _stack(self, parts: list[dict[str, np.ndarray]]) -> GlobalBatch:
        arrays = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        as_tensor = lambda array, dtype=torch.float32: torch.as_tensor(array, dtype=dtype, device=self.device)  # noqa: E731
        live = as_tensor(arrays["live"], torch.bool)
        actions = self.action_scale.to_unit(as_tensor(arrays["actions"])) * live
        return GlobalBatch(as_tensor(arrays["states"]), actions, as_tensor(arrays["rewards"]), as_tensor(arrays["next_states"]), live)

    @property
    def n_ticks(self) -> int:
        """Logged ticks over all groups."""
        return sum(int(group.live.shape[0]) for group in self.groups)

    @property
    def set_sizes(self) -> list[int]:
        return [int(group.live.shape[1]) for group in self.groups]

    def all_ticks(self) -> list[GlobalBatch]:
        """The groups (one batch per set size)."""
        return list(self.groups)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> GlobalBatch:
        """``batch_size`` ticks of one group, the group drawn in proportion to its ticks (drawn on
        the generator's device; only with several set sizes is the group choice read back)."""
        device = generator.device if generator is not None else torch.device("cpu")
        group = self.groups[0]
        if len(self.groups) > 1:
            sizes = torch.tensor([float(g.live.shape[0]) for g in self.groups], device=device)
            group = self.groups[int(torch.multinomial(sizes, 1, generator=generator).item())]
        index = torch.randint(group.live.shape[0], (batch_size,), generator=generator, device=device).to(self.device)
        return group.take(index)

    def split(self, holdout_fraction: float, seed: int = 0) -> tuple["GlobalTransitions", "GlobalTransitions"]:
        """A random ``(train, held-out)`` split of the ticks of every group."""
        if not 0.0 < holdout_fraction < 1.0:
            raise ConfigError(f"holdout_fraction must be in (0, 1), got {describe(holdout_fraction)}")
        generator = torch.Generator().manual_seed(seed)
        train, held_out = [], []
        for group in self.groups:
            order = torch.randperm(group.live.shape[0], generator=generator).to(self.device)
            cut = max(1, int(round(holdout_fraction * len(order))))
            held_out.append(group.take(order[:cut]))
            train.append(group.take(order[cut:]))
        return self._with_groups(train), self._with_groups(held_out)

    def _with_groups(self, groups: list[GlobalBatch]) -> "GlobalTransitions":
        copy = object.__new__(GlobalTransitions)
        copy.device, copy.action_scale, copy.observation_dim, copy.groups = self.device, self.action_scale, self.observation_dim, groups
        return copy
