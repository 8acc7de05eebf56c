"""Language-guided decision training data (paper Section 3.2, Eq. 5): which CoT each logged
decision carries when LBM-Act is trained.

LBM-Think writes a CoT for each logged decision; its decision word is checked against the data's
**anchor direction** (:meth:`agents.lbm.data.Trajectories.anchor_directions`, the logging
policy's intended move). :func:`guided_cots` applies one of two rules to a CoT that conflicts:

* ``"discard"`` (the paper's Eq. 5): the CoT is disregarded. LBM-Think may sample more CoTs for
  the decision (``samples`` draws at ``temperature``); the first that agrees is kept, and a
  decision none of whose CoTs agrees is learnt from the numbers alone. Sampling is how the paper's
  LBM-Think produces CoTs anyway (GQPO samples groups); it makes the kept words follow the data's
  moves instead of LBM-Think's own bias. Greedy CoTs only (``samples=0``) kept 24% of the dense
  quick logs, mostly words LBM-Think says on states the numbers already identify, and LBM-Act
  learnt to ignore the word (forced increase - keep +0.004 log change after 1,000 steps); with 4
  samples 65% are kept.
* ``"relabel"`` (our ablation): the CoT's conclusion (verdict and decision word) is replaced by
  the anchor direction's (:func:`agents.lbm.prompts.with_direction`), so every decision carries
  a CoT whose conclusion agrees with its action while the facts it states may not.

:func:`direction_weights` draws decisions of each anchor direction equally often: most logged
decisions keep the bid, and only the others show what the decision words mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from agents.lbm.prompts import parse_direction, with_direction
from agents.lbm.think import LBMThink
from auctionsim.errors import ConfigError

__all__ = ["CONFLICT_RULES", "GuidedCoTs", "guided_cots", "direction_weights"]

CONFLICT_RULES = ("discard", "relabel")


@dataclass(frozen=True)
class GuidedCoTs:
    """The CoT each decision carries in language-guided training.

    Attributes:
        texts: per decision, the CoT text, or ``None`` where it was discarded (Eq. 5).
        agreed: ``(B,)`` whether the kept CoT's own decision agreed with the anchor (False for
            discarded and for relabelled CoTs).
        samples_drawn: CoTs sampled beyond the first, in total.
    """

    texts: list[str | None]
    agreed: np.ndarray
    samples_drawn: int

    def token_ids(self, tokenizer) -> list[list[int]]:
        """Token ids per decision (empty where discarded), as :func:`agents.lbm.act.train_act` takes them."""
        return [tokenizer.encode(" " + text) if text is not None else [] for text in self.texts]

    @property
    def kept_share(self) -> float:
        return float(np.mean([text is not None for text in self.texts]))

    def word_shares(self) -> dict[str, float]:
        """Share of decisions whose kept CoT says each word (``none``: discarded)."""
        words = [parse_direction(text) if text is not None else None for text in self.texts]
        labels = {-1: "decrease", 0: "keep", 1: "increase", None: "none"}
        return {labels[key]: float(np.mean([word == key for word in words])) for key in labels}


def guided_cots(
    first_cots: Sequence[str],
    anchors: np.ndarray,
    rule: str = "discard",
    think: LBMThink | None = None,
    prompt_ids: Sequence[Sequence[int]] | None = None,
    samples: int = 0,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
) -> GuidedCoTs:
    """Apply Eq. 5's rule to each decision's CoT.

    Args:
        first_cots: each decision's first CoT (LBM-Think's greedy one, or the teacher's).
        anchors: ``(B,)`` the data's directions (-1, 0, 1).
        rule: ``"discard"`` or ``"relabel"`` (module docstring).
        think, prompt_ids, samples, temperature, generator: with ``rule="discard"`` and
            ``samples > 0``, LBM-Think samples up to ``samples`` more CoTs from each conflicting
            decision's prompt (only the decisions still without an agreeing CoT are sampled
            again), with ``generator`` on its device.
        batch_size: prompts per generation batch.
    """
    anchors = np.asarray(anchors)
    if rule not in CONFLICT_RULES:
        raise ConfigError(f"rule must be one of {', '.join(CONFLICT_RULES)}, got {rule!r}")
    if len(first_cots) != len(anchors):
        raise ConfigError(f"need one anchor per CoT, got {len(anchors)} for {len(first_cots)}")
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 0:
        raise ConfigError(f"samples must be an integer >= 0, got {samples!r}")
    if samples and (think is None or prompt_ids is None or len(prompt_ids) != len(first_cots)):
        raise ConfigError("sampling CoTs needs the Think model and one prompt per decision")
    texts: list[str | None] = list(first_cots)
    agreed = np.array([parse_direction(text) == anchor for text, anchor in zip(texts, anchors)], dtype=bool)
    if rule == "relabel":
        return GuidedCoTs([text if ok else with_direction(text, int(anchor)) for text, ok, anchor in zip(texts, agreed, anchors)], agreed, 0)
    drawn = 0
    for _ in range(samples if rule == "discard" else 0):
        pending = np.flatnonzero(~agreed)
        if not pending.size:
            break
        sampled = think.think([prompt_ids[k] for k in pending], temperature=temperature, generator=generator, batch_size=batch_size).texts
        drawn += len(pending)
        for k, text in zip(pending, sampled):
            if parse_direction(text) == anchors[k]:
                texts[k], agreed[k] = text, True
    return GuidedCoTs([text if ok else None for text, ok in zip(texts, agreed)], agreed, drawn)


def direction_weights(anchors: np.ndarray) -> np.ndarray:
    """``(B,)`` sampling weights that draw each anchor direction present equally often."""
    anchors = np.asarray(anchors)
    counts = np.bincount(anchors + 1, minlength=3)
    return 1.0 / counts[anchors + 1]
