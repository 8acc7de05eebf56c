"""LBM's view of bidding trajectories: one row per advertiser-episode, one column per tick.

:class:`Trajectories` holds, for ``n`` trajectories of up to ``T`` ticks, what both halves of
LBM read: the KPIs of past ticks (LBM-Think's prompt, :meth:`Trajectories.status`) and the
return-to-go / state / action sequence of the last ``L`` ticks (LBM-Act's numeric input,
:meth:`Trajectories.window`). It is filled from an offline dataset for training
(:meth:`Trajectories.from_dataset`) and tick by tick by the live bidder
(:class:`agents.lbm.bidder.LBMPolicy`), so training and acting build inputs with the same code.

Conversions are the paper's ``sum_i o_i v_i`` (Section 4.1): expected conversions, the value won
over the CPA target (realised conversions are Bernoulli draws around them; the datasets keep
both). Returns are normalised per advertiser by what its budget buys at its CPA target
(``budget / CPA target`` conversions for conversion rewards, ``budget`` for value rewards), so
that one return-to-go scale serves advertisers of every size.

Logs recorded with exploration noise also keep the logging policy's *intended* multipliers
(:class:`IntentRecorder`): language-guided training checks CoT directions against the
policy's deliberate move, not against the noise (see :meth:`Trajectories.anchor_directions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.datasets import OfflineDataset
from agents.lbm.prompts import HISTORY_TICKS, BiddingStatus, TickKPI
from auctionsim.envs.policy import PolicyContext, PopulationPolicy, TickFeedback
from auctionsim.errors import ConfigError

__all__ = ["IntentRecorder", "Trajectories", "Window", "REWARD_KINDS"]

REWARD_KINDS = ("expected_conversions", "conversions", "value")


@dataclass(frozen=True, eq=False)
class Window:
    """LBM-Act's numeric input for ``B`` decisions: the last ``L`` ticks up to the decision tick.

    Shorter histories are left-padded (``mask`` False). ``actions[:, -1]`` is the action to
    predict (ignored as input).
    """

    returns_to_go: np.ndarray  # (B, L) normalised
    states: np.ndarray  # (B, L, D) raw observations
    actions: np.ndarray  # (B, L) multipliers
    timesteps: np.ndarray  # (B, L) tick indices
    mask: np.ndarray  # (B, L) bool

    def __len__(self) -> int:
        return int(self.mask.shape[0])

    def rows(self, selection: slice | np.ndarray) -> "Window":
        """The decisions ``selection`` (a slice or index array) of this window."""
        return Window(**{name: getattr(self, name)[selection] for name in ("returns_to_go", "states", "actions", "timesteps", "mask")})


@dataclass(eq=False)
class Trajectories:
    """``n`` bidding trajectories of up to ``T`` ticks (arrays ``(n, T)`` unless noted).

    Attributes:
        states: ``(n, T, D)`` observation before each tick.
        actions: bid multiplier played.
        rewards: reward of the tick (``reward_kind``).
        conversions: expected conversions won in the tick (value won / CPA target).
        spend: money paid in the tick.
        budget_left: share of the budget left after the tick.
        predicted_value: conversions on offer in the tick (mean pValue x opportunities).
        length: ``(n,)`` ticks played.
        budgets, cpa_targets: ``(n,)`` the advertiser of each row.
        returns_to_go: normalised return from each tick on (from the data, or for a live
            bidder the target return minus what was collected).
        intended_actions: the multiplier the logging policy chose before exploration noise
            (``None``: the played ``actions``).
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    conversions: np.ndarray
    spend: np.ndarray
    budget_left: np.ndarray
    predicted_value: np.ndarray
    length: np.ndarray
    budgets: np.ndarray
    cpa_targets: np.ndarray
    returns_to_go: np.ndarray
    reward_kind: str
    intended_actions: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.intended_actions is None:
            self.intended_actions = self.actions
        if self.intended_actions.shape != self.actions.shape:
            raise ConfigError(f"intended_actions must have the shape of actions {self.actions.shape}, got {self.intended_actions.shape}")
        if self.reward_kind not in REWARD_KINDS:
            raise ConfigError(f"reward kind must be one of {', '.join(REWARD_KINDS)} for LBM, got {self.reward_kind!r}")

    @property
    def n_ticks(self) -> int:
        return int(self.actions.shape[1])

    @property
    def return_scales(self) -> np.ndarray:
        """``(n,)`` what each advertiser's budget buys at target, in reward units."""
        return self.budgets if self.reward_kind == "value" else self.budgets / self.cpa_targets

    @classmethod
    def empty(cls, budgets: np.ndarray, cpa_targets: np.ndarray, n_ticks: int, state_dim: int, reward_kind: str) -> "Trajectories":
        """Zero-filled trajectories for a live bidder managing ``len(budgets)`` advertisers."""
        n = len(budgets)
        zeros = lambda: np.zeros((n, n_ticks))  # noqa: E731 - local shorthand
        return cls(
            states=np.zeros((n, n_ticks, state_dim), dtype=np.float32),
            actions=zeros(), rewards=zeros(), conversions=zeros(), spend=zeros(),
            budget_left=np.ones((n, n_ticks)), predicted_value=zeros(),
            length=np.zeros(n, dtype=np.int64),
            budgets=np.asarray(budgets, dtype=np.float64), cpa_targets=np.asarray(cpa_targets, dtype=np.float64),
            returns_to_go=zeros(), reward_kind=reward_kind,
        )

    @classmethod
    def from_dataset(cls, dataset: OfflineDataset, intended_actions: np.ndarray | None = None) -> "Trajectories":
        """Every advertiser-episode of ``dataset`` as a row (row ``e x N + i``).

        ``intended_actions``: ``(E, T, N)`` multipliers before exploration noise, from the
        :class:`IntentRecorder` that logged ``dataset`` (``None``: the played ones).
        """
        episodes, n_ticks, n_advertisers = dataset.actions.shape
        if intended_actions is not None and np.shape(intended_actions) != dataset.actions.shape:
            raise ConfigError(f"intended_actions must have the shape of the dataset's actions {dataset.actions.shape}, got {np.shape(intended_actions)}")

        def rows(array: np.ndarray) -> np.ndarray:  # (E, T, N, ...) -> (E x N, T, ...)
            return np.swapaxes(array, 1, 2).reshape(episodes * n_advertisers, n_ticks, *array.shape[3:])

        budgets = np.tile(dataset.budgets.astype(np.float64), episodes)
        cpa_targets = np.tile(dataset.cpa_targets.astype(np.float64), episodes)
        rewards = rows(dataset.rewards).astype(np.float64)
        kind = dataset.metadata.get("reward", "value")
        trajectories = cls(
            states=rows(dataset.observations[:, :n_ticks]),
            actions=rows(dataset.actions).astype(np.float64),
            rewards=rewards,
            conversions=rows(dataset.value_won) / cpa_targets[:, None],
            spend=rows(dataset.spend),
            budget_left=rows(dataset.budget_left) / budgets[:, None],
            predicted_value=rows(dataset.mean_pvalue * dataset.opportunities),
            length=rows(dataset.live[:, :n_ticks]).sum(axis=1),
            budgets=budgets,
            cpa_targets=cpa_targets,
            returns_to_go=np.zeros_like(rewards),
            reward_kind=kind,
            intended_actions=None if intended_actions is None else rows(np.asarray(intended_actions)).astype(np.float64),
        )
        reverse_cumulative = np.cumsum(rewards[:, ::-1], axis=1)[:, ::-1]
        trajectories.returns_to_go = reverse_cumulative / trajectories.return_scales[:, None]
        return trajectories

    def decisions(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, ticks)`` of every decision played."""
        played = np.arange(self.n_ticks)[None, :] < self.length[:, None]
        return np.nonzero(played)

    def status(self, row: int, tick: int) -> BiddingStatus:
        """LBM-Think's view before ``tick``: totals so far and the KPIs of the last 4 ticks."""
        first = max(0, tick - HISTORY_TICKS)
        recent = tuple(
            TickKPI(
                tick=past,
                multiplier=float(self.actions[row, past]),
                conversions=float(self.conversions[row, past]),
                budget_left=float(self.budget_left[row, past]),
                predicted_value=float(self.predicted_value[row, past]),
            )
            for past in range(first, tick)
        )
        return BiddingStatus(
            tick=int(tick),
            n_ticks=self.n_ticks,
            budget=float(self.budgets[row]),
            cpa_target=float(self.cpa_targets[row]),
            spend=float(self.spend[row, :tick].sum()),
            conversions=float(self.conversions[row, :tick].sum()),
            recent=recent,
        )

    def window(self, rows: np.ndarray, ticks: np.ndarray, context: int) -> Window:
        """LBM-Act's numeric input for the decisions ``(rows[b], ticks[b])``: ticks
        ``ticks - context + 1 .. ticks`` (``{R, s, a}`` of Section 3.2, ``L = context``)."""
        rows, ticks = np.asarray(rows), np.asarray(ticks)
        span = ticks[:, None] + np.arange(1 - context, 1)[None, :]
        mask = span >= 0
        span = np.maximum(span, 0)
        gather_rows = rows[:, None]
        return Window(
            returns_to_go=np.where(mask, self.returns_to_go[gather_rows, span], 0.0).astype(np.float32),
            states=np.where(mask[..., None], self.states[gather_rows, span], 0.0).astype(np.float32),
            actions=np.where(mask, self.actions[gather_rows, span], 0.0).astype(np.float32),
            timesteps=span.astype(np.int64),
            mask=mask,
        )

    def anchor_directions(self, rows: np.ndarray, ticks: np.ndarray, tolerance: float) -> np.ndarray:
        """The data's adjustment direction at each decision, ``sign(a_t - a_{t-1})`` on the
        logging policy's *intended* multipliers (0 within a relative ``tolerance``, and at the
        first tick): the anchor that language-guided training (Section 3.2, Eq. 5) checks CoT
        directions against.

        Why intended, not played: with exploration noise (log-normal, sigma 0.3 in our logs)
        the played direction is mostly the sign of the noise difference, so a CoT kept because
        it "agrees" tells LBM-Act which way the noise went (a ~30% step), and at test time,
        where every decision carries a CoT, LBM-Act compounds such steps (measured: bidding
        collapsed to ~0.3 x). The paper's logs come from deliberate agents, where the two
        coincide.
        """
        rows, ticks = np.asarray(rows), np.asarray(ticks)
        actions = self.intended_actions
        previous = actions[rows, np.maximum(ticks - 1, 0)]
        change = actions[rows, ticks] - previous
        direction = np.sign(change).astype(np.int64)
        direction[np.abs(change) <= tolerance * np.abs(previous)] = 0
        direction[ticks == 0] = 0
        return direction


class IntentRecorder(PopulationPolicy):
    """Wraps a logging policy and records the multipliers it chooses, before the exploration
    noise that :func:`auctionsim.envs.play_episode` adds: ``intended_actions`` is
    ``(episodes, T, N)`` over the episodes played since construction,
    aligned with the dataset that :func:`agents.datasets.collect_dataset` logs with it."""

    def __init__(self, policy: PopulationPolicy) -> None:
        self.policy = policy
        self.needs_impression_values = policy.needs_impression_values
        self._episodes: list[list[np.ndarray]] = []

    def reset(self, context: PolicyContext) -> None:
        self.policy.reset(context)
        self._episodes.append([])

    def act(self, observations: np.ndarray) -> np.ndarray:
        multipliers = np.asarray(self.policy.act(observations), dtype=np.float64)
        self._episodes[-1].append(multipliers.copy())
        return multipliers

    def observe(self, feedback: TickFeedback) -> None:
        self.policy.observe(feedback)

    @property
    def intended_actions(self) -> np.ndarray:
        return np.stack([np.stack(ticks) for ticks in self._episodes])
