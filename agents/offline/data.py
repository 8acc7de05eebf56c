"""Offline-RL data: logged episodes (:class:`~agents.datasets.OfflineDataset`) as torch tensors.

Every algorithm of :mod:`agents.offline` trains on an :class:`OfflineData`, built from one or
more datasets (markets may differ in their number of advertisers; the observation width must
agree). The unit of data is the *trajectory* of one advertiser in one logged episode, so the
same object serves transition-based learners (BC, IQL, CQL, PE-MORL's Q-learning) and
sequence models (the decision transformer, IQL's sequence critic):

* actions are bid multipliers mapped to ``[-1, 1]`` by an :class:`ActionScale` (log scale:
  multipliers span two orders of magnitude and bidding is multiplicative);
* rewards are recomputed from the logged tick aggregates for any reward kind of
  :mod:`auctionsim.envs.observations` (one log serves every reward), then divided by the
  advertiser's ``budget / CPA target`` (the conversions its budget buys at target), so a
  shared policy sees returns of the same order, ~[0, 1.5], for every advertiser. The scaling is
  constant within an episode, so it does not change any advertiser's optimal policy. (The LBM
  paper's Table 9 instead divides by a global "scale" of 2000.)
* return-to-go ``R_t = sum_{t' >= t} r_t'`` (undiscounted, as in the decision transformer).

Shapes: ``K`` trajectories, ``T`` ticks, ``D`` observation features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import torch

from agents.datasets import OfflineDataset
from agents.offline.training import resolve_device
from auctionsim.envs.observations import REWARDS, RewardTracker
from auctionsim.errors import ConfigError, describe

__all__ = ["ActionScale", "OfflineData", "TransitionBatch", "WindowBatch", "scaled_rewards"]


@dataclass(frozen=True)
class ActionScale:
    """Maps bid multipliers in ``[low, high]`` to unit actions in ``[-1, 1]`` on a log scale:
    ``u = 2 (log m - log low) / (log high - log low) - 1``; multipliers outside are clipped.

    Args:
        low: smallest multiplier a policy can bid (> 0: log scale).
        high: largest multiplier.
    """

    low: float = 0.05
    high: float = 5.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and 0.0 < self.low < self.high):
            raise ConfigError(f"ActionScale needs 0 < low < high < inf, got low={self.low}, high={self.high}")

    @property
    def _log_span(self) -> float:
        return math.log(self.high) - math.log(self.low)

    def to_unit(self, multipliers: torch.Tensor) -> torch.Tensor:
        """Multipliers -> unit actions (any shape)."""
        clipped = multipliers.clamp(self.low, self.high)
        return 2.0 * (torch.log(clipped) - math.log(self.low)) / self._log_span - 1.0

    def to_multiplier(self, unit: torch.Tensor) -> torch.Tensor:
        """Unit actions -> multipliers (any shape); clipped to ``[low, high]``."""
        return torch.exp(math.log(self.low) + (unit.clamp(-1.0, 1.0) + 1.0) * 0.5 * self._log_span)


def scaled_rewards(dataset: OfflineDataset, reward: str) -> np.ndarray:
    """``(E, T, N)`` rewards of kind ``reward`` recomputed from the logged tick aggregates, divided
    by each advertiser's ``budget / CPA target``. Uses the environments' own
    :class:`~auctionsim.envs.observations.RewardTracker` (episodes flattened into its rows)."""
    if reward not in REWARDS:
        raise ConfigError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
    episodes, ticks, advertisers = dataset.actions.shape
    cpa_targets = np.tile(dataset.cpa_targets.astype(np.float64), episodes)
    exponent = float(dataset.metadata.get("score_exponent", 2.0))
    tracker = RewardTracker(reward, cpa_targets, score_exponent=exponent)
    rewards = np.zeros((episodes, ticks, advertisers))
    for tick in range(ticks):
        result = SimpleNamespace(
            spend=dataset.spend[:, tick].reshape(-1),
            conversions=dataset.conversions[:, tick].reshape(-1),
            value_won=dataset.value_won[:, tick].reshape(-1),
        )
        rewards[:, tick] = tracker.rewards(result).reshape(episodes, advertisers)
    return rewards / (dataset.budgets / dataset.cpa_targets)[None, None, :]


@dataclass(frozen=True, eq=False)
class TransitionBatch:
    """A batch of ``B`` transitions (tensors on the data's device). ``history_*`` are filled only
    when sampled with ``context_length > 1``: the ``L`` observations ending at ``s`` (resp.
    ``s'``) and the action before each, left-padded, with ``history_mask`` marking real steps."""

    observations: torch.Tensor  # (B, D)
    actions: torch.Tensor  # (B, 1) unit actions
    rewards: torch.Tensor  # (B,)
    next_observations: torch.Tensor  # (B, D)
    dones: torch.Tensor  # (B,) float 0/1
    history: "WindowBatch | None" = None
    next_history: "WindowBatch | None" = None


@dataclass(frozen=True, eq=False)
class WindowBatch:
    """``B`` windows of ``L`` consecutive ticks of single trajectories, left-padded with zeros
    (``mask`` False) when the window starts before the first tick."""

    observations: torch.Tensor  # (B, L, D)
    actions: torch.Tensor  # (B, L) unit actions taken at each step
    previous_actions: torch.Tensor  # (B, L) unit action of the step before (0 at the first tick)
    returns_to_go: torch.Tensor  # (B, L)
    timesteps: torch.Tensor  # (B, L) long, tick index
    mask: torch.Tensor  # (B, L) bool


def as_dataset_list(datasets: OfflineDataset | Sequence[OfflineDataset]) -> list[OfflineDataset]:
    """One or more logged datasets as a non-empty list (a ``ConfigError`` otherwise)."""
    datasets = [datasets] if isinstance(datasets, OfflineDataset) else list(datasets)
    if not datasets or not all(isinstance(d, OfflineDataset) for d in datasets):
        raise ConfigError(f"datasets must be one or more OfflineDataset, got {describe(datasets)}")
    return datasets


class OfflineData:
    """Logged trajectories as tensors, with samplers for transitions and windows.

    Args:
        datasets: one or more logged datasets (same observation features).
        reward: reward kind to train on (see :mod:`auctionsim.envs.observations`).
        action_scale: multiplier <-> unit action map.
        device: torch device of the tensors (``"auto"``/None: cuda if available).

    Attributes:
        observations: ``(K, T + 1, D)``; actions, rewards, returns_to_go: ``(K, T)``;
        valid: ``(K, T)`` bool, the advertiser acted at that tick; dones: ``(K, T)``;
        budgets, cpa_targets: ``(K,)`` of each trajectory's advertiser.
    """

    def __init__(
        self,
        datasets: OfflineDataset | Sequence[OfflineDataset],
        reward: str = "score",
        action_scale: ActionScale = ActionScale(),
        device: str | None = None,
    ) -> None:
        datasets = as_dataset_list(datasets)
        names = [tuple(d.feature_names.tolist()) for d in datasets]
        if len(set(names)) != 1:
            raise ConfigError(f"datasets disagree on observation features: {names[0]} vs {next(n for n in names if n != names[0])}")
        ticks = {d.actions.shape[1] for d in datasets}
        if len(ticks) != 1:
            raise ConfigError(f"datasets disagree on ticks per episode: {sorted(ticks)}")
        self.reward = reward
        self.action_scale = action_scale
        self.device = resolve_device(device)
        self.feature_names = names[0]
        parts = [self._trajectories(d, reward) for d in datasets]
        arrays = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        as_tensor = lambda array, dtype=torch.float32: torch.as_tensor(array, dtype=dtype, device=self.device)  # noqa: E731
        self.observations = as_tensor(arrays["observations"])
        self.multipliers = as_tensor(arrays["actions"])
        self.actions = action_scale.to_unit(self.multipliers)
        self.rewards = as_tensor(arrays["rewards"])
        self.valid = as_tensor(arrays["valid"], torch.bool)
        self.dones = as_tensor(arrays["dones"])
        self.budgets = as_tensor(arrays["budgets"], torch.float64)
        self.cpa_targets = as_tensor(arrays["cpa_targets"], torch.float64)
        masked = self.rewards * self.valid
        self.returns_to_go = masked.flip(1).cumsum(1).flip(1)
        self._steps = torch.nonzero(self.valid)  # (M, 2): (trajectory, tick)

    @staticmethod
    def _trajectories(dataset: OfflineDataset, reward: str) -> dict[str, np.ndarray]:
        episodes, ticks, advertisers = dataset.actions.shape
        to_rows = lambda array: np.moveaxis(array, 2, 1).reshape(episodes * advertisers, *array.shape[1:2], *array.shape[3:])  # noqa: E731
        return {
            "observations": to_rows(dataset.observations),
            "actions": to_rows(dataset.actions),
            "rewards": to_rows(scaled_rewards(dataset, reward)),
            "valid": to_rows(dataset.live[:, :-1]),
            "dones": to_rows(dataset.terminated | dataset.truncated),
            "budgets": np.tile(dataset.budgets, episodes),
            "cpa_targets": np.tile(dataset.cpa_targets, episodes),
        }

    @property
    def n_trajectories(self) -> int:
        return int(self.observations.shape[0])

    @property
    def n_ticks(self) -> int:
        return int(self.actions.shape[1])

    @property
    def observation_dim(self) -> int:
        return int(self.observations.shape[2])

    @property
    def n_transitions(self) -> int:
        return int(self._steps.shape[0])

    def flat_observations(self) -> torch.Tensor:
        """``(M, D)`` the observation of every valid step (e.g. to fit a normaliser)."""
        return self.observations[self._steps[:, 0], self._steps[:, 1]]

    def episode_returns(self) -> torch.Tensor:
        """``(K,)`` scaled return of each trajectory."""
        return self.returns_to_go[:, 0]

    def _sample_steps(self, batch_size: int, generator: torch.Generator | None) -> torch.Tensor:
        # Drawn on the generator's device (see agents.offline.training.device_generator).
        index = torch.randint(self.n_transitions, (batch_size,), generator=generator, device=generator.device if generator is not None else "cpu")
        index = index.to(self.device)
        return self._steps[index]

    def sample_transitions(self, batch_size: int, generator: torch.Generator | None = None, context_length: int = 1) -> TransitionBatch:
        """``batch_size`` transitions drawn uniformly (with replacement) from the valid steps."""
        steps = self._sample_steps(batch_size, generator)
        trajectory, tick = steps[:, 0], steps[:, 1]
        history = next_history = None
        if context_length > 1:
            history = self.windows_at(trajectory, tick, context_length)
            next_history = self.windows_at(trajectory, tick + 1, context_length)
        return TransitionBatch(
            observations=self.observations[trajectory, tick],
            actions=self.actions[trajectory, tick].unsqueeze(1),
            rewards=self.rewards[trajectory, tick],
            next_observations=self.observations[trajectory, tick + 1],
            dones=self.dones[trajectory, tick],
            history=history,
            next_history=next_history,
        )

    def sample_windows(self, batch_size: int, context_length: int, generator: torch.Generator | None = None) -> WindowBatch:
        """``batch_size`` windows of ``context_length`` ticks ending at uniformly drawn valid steps."""
        steps = self._sample_steps(batch_size, generator)
        return self.windows_at(steps[:, 0], steps[:, 1], context_length)

    def windows_at(self, trajectory: torch.Tensor, last_tick: torch.Tensor, context_length: int) -> WindowBatch:
        """Windows of ``context_length`` ticks ending at ``last_tick`` (inclusive) of each
        ``trajectory``. ``last_tick`` may be ``T`` (the observation after the last tick; its
        action and reward slots are then padding)."""
        if context_length < 1:
            raise ConfigError(f"context_length must be >= 1, got {context_length}")
        offsets = torch.arange(-context_length + 1, 1, device=self.device)
        ticks = last_tick[:, None] + offsets[None, :]  # (B, L)
        inside = ticks >= 0
        safe = ticks.clamp(min=0)
        in_actions = inside & (ticks < self.n_ticks)
        action_ticks = safe.clamp(max=self.n_ticks - 1)
        rows = trajectory[:, None].expand_as(ticks)
        valid = torch.where(in_actions, self.valid[rows, action_ticks], torch.zeros_like(inside))
        # The window's real steps: inside the episode and (for acted ticks) live, plus the
        # final observation when the window ends after the last tick or a termination.
        mask = inside & (valid | (ticks == last_tick[:, None]))
        zero = torch.zeros((), device=self.device)
        actions = torch.where(valid, self.actions[rows, action_ticks], zero)
        previous_ticks = (ticks - 1).clamp(min=0, max=self.n_ticks - 1)
        previous_valid = (ticks >= 1) & mask & self.valid[rows, previous_ticks]
        previous_actions = torch.where(previous_valid, self.actions[rows, previous_ticks], zero)
        observations = torch.where(mask[..., None], self.observations[rows, safe], zero)
        returns_to_go = torch.where(valid, self.returns_to_go[rows, action_ticks], zero)
        return WindowBatch(
            observations=observations,
            actions=actions,
            previous_actions=previous_actions,
            returns_to_go=returns_to_go,
            timesteps=torch.where(mask, safe, torch.zeros_like(safe)),
            mask=mask,
        )
