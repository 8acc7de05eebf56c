"""LBM-Think: the high-level reasoner ``c_t = h_theta({p_i, a_i}_{i=t-H..t-1})`` (paper Eq. 3).

It reads the Fig. 4 prompt built from the last 4 ticks' KPIs (:mod:`agents.lbm.prompts`) and
writes a CoT ending in the adjustment direction of the bid parameter. Training is supervised
fine-tuning on (prompt, CoT) pairs (:meth:`LBMThink.fine_tune`): the rule-based teacher's CoTs
for pre-training/warm-up, and in GQPO (Eq. 14) the best CoT of each group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from agents.lbm.backbones import Backbone, autocast
from agents.lbm.prompts import BiddingStatus, build_prompt
from auctionsim.errors import ConfigError
from auctionsim.tracking import ScalarLogger

__all__ = ["LBMThink", "ThinkOutput"]


@dataclass(frozen=True)
class ThinkOutput:
    """CoTs for a batch of prompts: decoded texts and the generated token ids."""

    texts: list[str]
    ids: list[list[int]]


class LBMThink:
    """LBM-Think over a :class:`~agents.lbm.backbones.Backbone`.

    Args:
        backbone: the language model (trained in place by :meth:`fine_tune`).
        max_new_tokens: CoT length cap (the templated CoTs take ~30 word tokens).
    """

    def __init__(self, backbone: Backbone, max_new_tokens: int = 48) -> None:
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.backbone = backbone
        self.max_new_tokens = int(max_new_tokens)

    def prompt_ids(self, statuses: Sequence[BiddingStatus]) -> list[list[int]]:
        """Token ids of each status's prompt (in the model's prompt format)."""
        return [self.backbone.tokenizer.encode_prompt(build_prompt(status)) for status in statuses]

    def think(
        self,
        prompt_ids: Sequence[Sequence[int]],
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        batch_size: int = 256,
    ) -> ThinkOutput:
        """Generate one CoT per prompt (greedy at ``temperature`` 0), in batches."""
        self.backbone.eval()
        ids: list[list[int]] = []
        for start in range(0, len(prompt_ids), batch_size):
            ids += self.backbone.generate(prompt_ids[start:start + batch_size], self.max_new_tokens, temperature, generator)
        return ThinkOutput([self.backbone.tokenizer.decode(row) for row in ids], ids)

    def fine_tune(
        self,
        prompt_ids: Sequence[Sequence[int]],
        cots: Sequence[str],
        epochs: float,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        seed: int = 0,
        progress: bool = True,
        description: str = "LBM-Think",
        logger: ScalarLogger | None = None,
    ) -> list[float]:
        """Maximise ``log h_theta(c | prompt)`` over the pairs (teacher forcing, AdamW; bf16
        autocast on CUDA).

        ``epochs`` may be fractional (``epochs x len / batch_size`` steps). ``logger`` gets the
        loss of each step as ``<description>/loss``. Returns step losses.
        """
        if len(prompt_ids) != len(cots) or not cots:
            raise ConfigError(f"need as many prompts as CoTs (> 0), got {len(prompt_ids)} and {len(cots)}")
        targets = [self.backbone.tokenizer.encode(" " + cot) for cot in cots]
        steps = max(1, int(round(epochs * len(cots) / batch_size)))
        generator = np.random.default_rng(seed)
        optimizer = torch.optim.AdamW(self.backbone.parameters(), lr=learning_rate, weight_decay=0.0)
        self.backbone.train()
        losses = []
        for step in tqdm(range(steps), desc=description, disable=not progress, unit="step"):
            batch = generator.choice(len(cots), size=min(batch_size, len(cots)), replace=False)
            with autocast(self.backbone.device):
                loss = self.backbone.lm_loss([prompt_ids[i] for i in batch], [targets[i] for i in batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.backbone.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))
            if logger is not None:
                logger.log(step, {"loss": losses[-1]}, prefix=f"{description}/")
        self.backbone.eval()
        return losses
