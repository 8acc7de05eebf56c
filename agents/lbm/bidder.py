"""LBM and LLM-DT as bidders: a vectorised :class:`~auctionsim.envs.policy.PopulationPolicy`.

Inference (paper Fig. 4): before each tick, LBM-Think writes a CoT from the last 4 ticks' KPIs
(the paper generates it asynchronously during the previous tick; the input is the same), then
LBM-Act reads the CoT and the numeric sequence of the last ``L`` ticks and sets the bid
multiplier. The return-to-go starts at ``target_return`` (the paper: "initialised to its maximum
value") and decreases by the rewards collected. Without a Think model the policy is LLM-DT.

Each managed advertiser is independent, so one policy can serve several markets at once (the
lockstep evaluation of :mod:`agents.lbm.evaluate` batches the language model over them).
"""

from __future__ import annotations

import numpy as np
import torch

from agents.lbm.act import LBMAct
from agents.lbm.data import REWARD_KINDS, Trajectories
from agents.lbm.prompts import with_direction
from agents.lbm.think import LBMThink
from auctionsim.envs.policy import PolicyContext, PopulationPolicy, TickFeedback
from auctionsim.errors import ConfigError

__all__ = ["LBMPolicy"]


class LBMPolicy(PopulationPolicy):
    """LBM (``think`` given) or LLM-DT (``think=None``) bidding for every advertiser it manages.

    Args:
        act: the trained :class:`~agents.lbm.act.LBMAct`.
        think: the :class:`~agents.lbm.think.LBMThink`, or ``None`` for LLM-DT.
        target_return: initial normalised return-to-go (see :mod:`agents.lbm.data`).
        reward_kind: the reward the return-to-go counts (that of the training data).
        instruction: force every CoT's decision to +1 (increase) or -1 (decrease): Table 4.
        temperature: LBM-Think's sampling temperature (0: greedy).
        seed: seed of the sampling.

    After each tick, ``cots`` holds the CoTs just used (one per advertiser).
    """

    def __init__(
        self,
        act: LBMAct,
        think: LBMThink | None = None,
        target_return: float = 1.0,
        reward_kind: str = "expected_conversions",
        instruction: int | None = None,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> None:
        if reward_kind not in REWARD_KINDS:
            raise ConfigError(f"reward_kind must be one of {', '.join(REWARD_KINDS)}, got {reward_kind!r}")
        if instruction not in (None, 1, -1):
            raise ConfigError(f"instruction must be None, 1 (increase) or -1 (decrease), got {instruction!r}")
        if instruction is not None and think is None:
            raise ConfigError("an instruction needs a Think model (it edits the CoT)")
        if not np.isfinite(target_return):
            raise ConfigError(f"target_return must be finite, got {target_return!r}")
        self.act_model, self.think_model = act, think
        self.target_return = float(target_return)
        self.reward_kind = reward_kind
        self.instruction = instruction
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.cots: list[str] = []

    def reset(self, context: PolicyContext) -> None:
        population = context.population
        self.trajectories = Trajectories.empty(
            population.budgets, population.cpa_targets, context.market.n_ticks, len(context.feature_names), self.reward_kind
        )
        self._collected = np.zeros(len(population))
        self._tick = 0
        device = self.think_model.backbone.device if self.think_model is not None else torch.device("cpu")
        self._generator = torch.Generator(device=device).manual_seed(self.seed if context.seed is None else self.seed + context.seed)

    def _cot_ids(self, size: int) -> list[list[int]]:
        if self.think_model is None:
            self.cots = [""] * size
            return [[] for _ in range(size)]
        statuses = [self.trajectories.status(row, self._tick) for row in range(size)]
        prompts = self.think_model.prompt_ids(statuses)
        texts = self.think_model.think(prompts, self.temperature, self._generator).texts
        if self.instruction is not None:
            texts = [with_direction(text, self.instruction) for text in texts]
        self.cots = texts
        tokenizer = self.act_model.backbone.tokenizer
        return [tokenizer.encode(" " + text) for text in texts]

    def act(self, observations: np.ndarray) -> np.ndarray:
        tick, trajectories = self._tick, self.trajectories
        if tick >= trajectories.n_ticks:
            raise ConfigError(f"the episode has only {trajectories.n_ticks} ticks; call reset()")
        size = len(observations)
        trajectories.states[:, tick] = observations
        trajectories.returns_to_go[:, tick] = np.maximum(self.target_return - self._collected / trajectories.return_scales, 0.0)
        rows, ticks = np.arange(size), np.full(size, tick)
        multipliers = self.act_model.act(self._cot_ids(size), trajectories.window(rows, ticks, self.act_model.config.context))
        trajectories.actions[:, tick] = multipliers
        return multipliers

    def observe(self, feedback: TickFeedback) -> None:
        tick, trajectories = self._tick, self.trajectories
        trajectories.conversions[:, tick] = feedback.value_won / trajectories.cpa_targets
        trajectories.spend[:, tick] = feedback.spend
        trajectories.budget_left[:, tick] = feedback.budget_left / trajectories.budgets
        trajectories.predicted_value[:, tick] = feedback.mean_pvalue * feedback.opportunities
        if self.reward_kind == "expected_conversions":
            reward = feedback.value_won / trajectories.cpa_targets
        elif self.reward_kind == "conversions":
            reward = feedback.conversions.astype(np.float64)
        else:
            reward = feedback.value_won
        trajectories.rewards[:, tick] = reward
        self._collected += reward
        self._tick += 1
        trajectories.length[:] = self._tick
