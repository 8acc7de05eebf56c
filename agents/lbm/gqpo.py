"""GQPO: group relative-Q policy optimisation of LBM-Think, entirely offline (Section 3.3).

For a logged decision ``(s_t, a_t)``:

1. LBM-Think samples a group of ``N`` CoTs ``{c_t^i}`` from the prompt of ``s_t``'s history;
2. the trained LBM-Act turns each into an action ``a~_t^i = f_phi(s_t, c_t^i)`` (Eq. 4);
3. an offline critic scores each by its **relative-Q** (Eq. 12)
   ``dQ_i = Q(s_t, a~_t^i) - Q(s_t, a_t)`` against the logged action;
4. the best CoT with a positive relative-Q is kept (Eq. 13), groups with none are skipped;
5. LBM-Think is fine-tuned on the kept (prompt, CoT) pairs by maximum likelihood (Eq. 14: the
   AWR objective with the CoT as the action, reduced to regression on the group's best).

The critic is any :class:`Critic`; the experiment uses IQL (Eqs. 8-9) trained on the same logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from agents.lbm.act import LBMAct
from agents.lbm.data import Trajectories
from agents.lbm.think import LBMThink
from auctionsim.errors import ConfigError
from auctionsim.tracking import ScalarLogger

__all__ = ["Critic", "GQPOResult", "OfflineCritic", "relative_q", "select_best", "gqpo"]


@runtime_checkable
class Critic(Protocol):
    """An action-value function on single decisions."""

    def q_values(self, observations: np.ndarray, multipliers: np.ndarray) -> np.ndarray:
        """``(B, D)`` float32 observations and ``(B,)`` bid multipliers -> ``(B,)`` Q-values."""
        ...


def relative_q(critic: Critic, observations: np.ndarray, candidate_actions: np.ndarray, data_actions: np.ndarray) -> np.ndarray:
    """Eq. (12) for a group per decision: ``(B, N)`` values ``Q(s, a~_i) - Q(s, a_data)``.

    Args:
        observations: ``(B, D)`` states ``s_t``.
        candidate_actions: ``(B, N)`` actions LBM-Act takes with each of the ``N`` CoTs.
        data_actions: ``(B,)`` logged actions ``a_t``.
    """
    candidate_actions = np.asarray(candidate_actions, dtype=np.float64)
    if candidate_actions.ndim != 2 or candidate_actions.shape[0] != len(observations) or len(data_actions) != len(observations):
        raise ConfigError(
            f"need (B, N) candidate actions and (B,) data actions for B={len(observations)} states, "
            f"got {candidate_actions.shape} and {np.shape(data_actions)}"
        )
    batch, group = candidate_actions.shape
    repeated = np.repeat(np.asarray(observations, dtype=np.float32), group, axis=0)
    q_candidates = np.asarray(critic.q_values(repeated, candidate_actions.reshape(-1))).reshape(batch, group)
    q_data = np.asarray(critic.q_values(np.asarray(observations, dtype=np.float32), np.asarray(data_actions, dtype=np.float64)))
    return q_candidates - q_data[:, None]


def select_best(relative_q_values: np.ndarray) -> np.ndarray:
    """Eq. (13): per group (row), the index of the largest relative-Q if it is positive, else -1
    (the group is skipped). ``(B, N)`` -> ``(B,)`` int."""
    values = np.asarray(relative_q_values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] == 0:
        raise ConfigError(f"relative-Q values must be (B, N) with N >= 1, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ConfigError("relative-Q values must be finite")
    best = values.argmax(axis=1)
    return np.where(values[np.arange(len(values)), best] > 0, best, -1)


@dataclass(frozen=True)
class GQPOResult:
    """What one GQPO round did.

    Attributes:
        relative_q: ``(B, N)`` Eq. (12) values of every sampled CoT.
        selected: ``(B,)`` index of the CoT kept per decision (-1: group skipped).
        cots: ``B`` lists of the ``N`` CoT texts.
        losses: LBM-Think's fine-tuning losses.
    """

    relative_q: np.ndarray
    selected: np.ndarray
    cots: list[list[str]]
    losses: list[float]

    @property
    def kept_share(self) -> float:
        return float((self.selected >= 0).mean())


def gqpo(
    think: LBMThink,
    act: LBMAct,
    critic: Critic,
    trajectories: Trajectories,
    rows: np.ndarray,
    ticks: np.ndarray,
    group_size: int = 4,
    temperature: float = 1.0,
    epochs: float = 3.0,
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    seed: int = 0,
    progress: bool = True,
    logger: ScalarLogger | None = None,
) -> GQPOResult:
    """One GQPO round on the logged decisions ``(rows, ticks)``; fine-tunes ``think`` in place.

    ``epochs``/``batch_size``/``learning_rate`` are those of the Eq. (14) fine-tuning (the
    paper: 2,000 decisions, N = 3, lr 1e-6 for 5 epochs on a 3B model). ``logger`` gets the
    fine-tuning losses (``GQPO/loss``) and the round's relative-Q statistics (``GQPO/...``).
    """
    if group_size < 1:
        raise ConfigError(f"group_size must be >= 1, got {group_size}")
    rows, ticks = np.asarray(rows), np.asarray(ticks)
    prompts = think.prompt_ids([trajectories.status(int(r), int(t)) for r, t in zip(rows, ticks)])
    generator = torch.Generator(device=think.backbone.device).manual_seed(seed)
    grouped_prompts = [p for p in prompts for _ in range(group_size)]
    output = think.think(grouped_prompts, temperature=temperature, generator=generator)
    tokenizer = act.backbone.tokenizer
    window = trajectories.window(np.repeat(rows, group_size), np.repeat(ticks, group_size), act.config.context)
    cot_ids = [tokenizer.encode(" " + text) for text in output.texts]
    candidate_actions = np.concatenate(
        [act.act(cot_ids[start:start + 256], window.rows(slice(start, start + 256))) for start in range(0, len(cot_ids), 256)]
    ).reshape(len(rows), group_size)
    values = relative_q(critic, trajectories.states[rows, ticks], candidate_actions, trajectories.actions[rows, ticks])
    selected = select_best(values)
    cots = [output.texts[b * group_size:(b + 1) * group_size] for b in range(len(rows))]
    kept = np.flatnonzero(selected >= 0)
    losses: list[float] = []
    if kept.size:
        losses = think.fine_tune(
            [prompts[b] for b in kept], [cots[b][selected[b]] for b in kept], epochs=epochs,
            batch_size=batch_size, learning_rate=learning_rate, seed=seed, progress=progress, description="GQPO", logger=logger,
        )
    if logger is not None:
        logger.log(0, {"kept_share": float((selected >= 0).mean()), "relative_q_mean": float(values.mean()), "best_relative_q_mean": float(values.max(axis=1).mean())}, prefix="GQPO/")
    return GQPOResult(relative_q=values, selected=selected, cots=cots, losses=losses)



class OfflineCritic:
    """:class:`Critic` over an :mod:`agents.offline` IQL critic (Eqs. 8-9, Table 9): its ``q``
    takes ``(B, D)`` observation tensors and unit actions ``(B, 1)``; ``action_scale`` maps
    multipliers to unit actions (the log scale of :class:`agents.offline.data.ActionScale`).
    Needs an MLP critic (``context_length = 1``): GQPO scores single decisions."""

    def __init__(self, critic, action_scale) -> None:
        if getattr(getattr(critic, "config", None), "context_length", 1) != 1:
            raise ConfigError("OfflineCritic needs an IQL critic with context_length = 1")
        self.critic = critic
        self.action_scale = action_scale

    @torch.no_grad()
    def q_values(self, observations: np.ndarray, multipliers: np.ndarray) -> np.ndarray:
        device = next(self.critic.parameters()).device
        states = torch.as_tensor(np.asarray(observations), dtype=torch.float32, device=device)
        units = self.action_scale.to_unit(torch.as_tensor(np.asarray(multipliers), dtype=torch.float32, device=device))
        return self.critic.q(states, units[:, None]).cpu().numpy().astype(np.float64)
