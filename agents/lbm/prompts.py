"""LBM-Think's language: prompts from the bidding status, the rule-based teacher's CoTs, parsing.

The prompt follows the paper's Fig. 4 (Appendix A.3): the campaign's targets, what has been
spent and converted so far, and the key performance indicators of the last ``H = 4`` ticks
(``{p_i, a_i}_{i=t-H..t-1}``, Eq. 3): the bid multiplier played, conversions, budget left and
the predicted impression value (mean pValue x impression opportunities of the tick, i.e. the
conversions on offer). The model is asked for the CPA ratio (a self-check that exposes
hallucinations: :func:`parse_cpa_ratio`) and for the adjustment direction of the bid parameter.

The CoT ends with ``Decision: increase|decrease|keep`` (:func:`parse_direction`). The
rule-based :func:`teacher_cot` writes templated CoTs from the same status; they pre-train the
tiny backbone (which knows no English) and warm up pretrained ones. Its rule is deliberately
simple (the budget-pacing + CPA-cap heuristic an expert would state): lower the bid when the
CPA is above target or the budget is spent faster than time passes, raise it when the CPA is
within target and budget is left over, else keep it. Pre-training uses the soft teacher
(:func:`soft_teacher_cots`), which switches a share of its conclusions and keeps the facts, so
that LBM-Think's sampled CoTs vary their conclusion, not their facts. GQPO then moves LBM-Think
away from the teacher where the critic says another direction is better.

Where we differ from the paper: its LBM-Think is a pretrained Qwen2.5-3B-Instruct used zero-shot
(LBM(P)); on our CPU budget the Think model is a small one, so "pretrained" means trained on the
teacher's CoTs (tiny) or warmed up on them (smollm2). The paper's exact prompt text is only shown
as a figure; ours carries the same information.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = [
    "DIRECTIONS",
    "TickKPI",
    "BiddingStatus",
    "build_prompt",
    "soft_teacher_cots",
    "teacher_cot",
    "teacher_direction",
    "parse_direction",
    "parse_cpa_ratio",
    "vocabulary_texts",
    "with_direction",
]

HISTORY_TICKS = 4  # H in Eq. (3)
DIRECTIONS = {"increase": 1, "keep": 0, "decrease": -1}
_WORDS = {value: word for word, value in DIRECTIONS.items()}

# Teacher thresholds (fractions): CPA ratio bands and the pacing tolerance.
CPA_HIGH, CPA_LOW, PACE_TOLERANCE = 1.1, 0.9, 0.05


@dataclass(frozen=True)
class TickKPI:
    """Key performance indicators of one past tick (``p_i, a_i`` in Eq. 3).

    Attributes:
        tick: 0-based tick index.
        multiplier: the bid multiplier played (the action ``a_i``).
        conversions: conversions won in the tick (expected: value won / CPA target).
        budget_left: budget left after the tick, as a fraction of the budget.
        predicted_value: conversions on offer in the tick (mean pValue x opportunities).
    """

    tick: int
    multiplier: float
    conversions: float
    budget_left: float
    predicted_value: float


@dataclass(frozen=True)
class BiddingStatus:
    """What LBM-Think sees before tick ``tick`` (money in currency units)."""

    tick: int
    n_ticks: int
    budget: float
    cpa_target: float
    spend: float  # spent so far
    conversions: float  # won so far (expected conversions)
    recent: tuple[TickKPI, ...]  # the last <= 4 ticks, oldest first

    @property
    def time_left(self) -> float:
        """Share of the ticks still to play, in (0, 1]."""
        return (self.n_ticks - self.tick) / self.n_ticks

    @property
    def budget_left(self) -> float:
        """Share of the budget left, in [0, 1]."""
        return max(0.0, 1.0 - self.spend / self.budget)

    @property
    def cpa_ratio(self) -> float | None:
        """Realised CPA / CPA target so far (``None`` without a conversion)."""
        return self.spend / self.conversions / self.cpa_target if self.conversions > 0 else None


def _percent(fraction: float) -> int:
    return int(round(100 * fraction))


def build_prompt(status: BiddingStatus) -> str:
    """The Fig. 4-style prompt for ``status``."""
    periods = "; ".join(
        f"period {kpi.tick + 1}: bid {kpi.multiplier:.2f}, conversions {kpi.conversions:.0f}, "
        f"budget left {_percent(kpi.budget_left)}%, predicted value {kpi.predicted_value:.1f}"
        for kpi in status.recent
    )
    history = f"Last periods: {periods}." if periods else "No periods played yet."
    return (
        "Adjust the bid to maximise conversions with CPA at most the target. "
        f"CPA target {status.cpa_target:.0f}, budget {status.budget:.0f}, time left {_percent(status.time_left)}%. "
        f"So far: spent {status.spend:.0f}, conversions {status.conversions:.1f}. {history} "
        "What is the CPA ratio, and should the bid go up or down?"
    )


def _pacing(status: BiddingStatus) -> int:
    """+1 behind plan (budget to spare), -1 ahead of plan (spending too fast), 0 on plan.
    The plan spends the budget in proportion to time."""
    gap = status.budget_left - status.time_left
    return 1 if gap > PACE_TOLERANCE else -1 if gap < -PACE_TOLERANCE else 0


def teacher_direction(status: BiddingStatus) -> int:
    """The teacher's adjustment direction (+1 increase, -1 decrease, 0 keep)."""
    ratio, pacing = status.cpa_ratio, _pacing(status)
    if ratio is not None and ratio > CPA_HIGH:
        return -1
    if pacing < 0:
        return -1
    if pacing > 0 and (ratio is None or ratio < CPA_LOW):
        return 1
    return 0


def teacher_cot(status: BiddingStatus) -> str:
    """The rule-based teacher's templated CoT for ``status``, ending in ``Decision: <direction>``."""
    ratio, pacing = status.cpa_ratio, _pacing(status)
    if ratio is not None:
        first = f"CPA ratio {ratio:.2f}."
    elif status.spend > 0:
        first = "No conversions yet, CPA ratio unknown."
    else:
        first = "Nothing spent yet."
    plan = {1: "behind plan", 0: "on plan", -1: "ahead of plan"}[pacing]
    second = f"Budget left {_percent(status.budget_left)}%, time left {_percent(status.time_left)}%: {plan}."
    direction = teacher_direction(status)
    return f"{first} {second} {_verdict(direction, ratio)} Decision: {_WORDS[direction]}."


def soft_teacher_cots(statuses: Sequence[BiddingStatus], switch_share: float, rng: np.random.Generator) -> list[str]:
    """The teacher's CoT for each status, its conclusion (verdict and word) switched to one of the
    two other directions, uniformly, with probability ``switch_share`` (:func:`with_direction`:
    the facts are kept). LBM-Think pre-trained on them still concludes the rule's direction most
    often, and samples the others now and then *without changing its facts*.

    Why: a Think imitating the deterministic teacher reasons consistently, so when Eq. 5 samples
    CoTs for a conflicting decision, the one that agrees has changed its stated facts along with
    its word; every CoT LBM-Act kept stated facts that imply its conclusion (94-96% of them, true
    facts in 10-17%), LBM-Act read the direction from the facts, and a forced conclusion moved it
    little (the forced-direction gate failed on half the training seeds). A teacher whose
    conclusions vary (as an LLM's do) gives Eq. 5 CoTs whose conclusion carries the direction on
    its own. Measured (tiny backbone, dense quick logs, training seeds 3 and 5, which failed
    before; ``switch_share`` 0.2): kept CoTs 89-94% of decisions (78-83% before), 59-73%
    self-consistent; keep - decrease +0.13 / +0.14 (before +0.03 / +0.02), both gates passed.
    """
    if not 0.0 <= switch_share <= 1.0:
        raise ValueError(f"switch_share must be in [0, 1], got {switch_share!r}")
    cots = []
    for status in statuses:
        cot = teacher_cot(status)
        if switch_share and rng.random() < switch_share:
            cot = with_direction(cot, int(rng.choice([d for d in _WORDS if d != teacher_direction(status)])))
        cots.append(cot)
    return cots


def _verdict(direction: int, cpa_ratio: float | None) -> str:
    """The teacher's one-sentence conclusion before its decision word: the reason for
    ``direction`` (a decrease is blamed on the CPA when ``cpa_ratio`` is above the band, else on
    the pacing)."""
    if direction < 0:
        return "CPA above target." if cpa_ratio is not None and cpa_ratio > CPA_HIGH else "Spending too fast."
    return "Budget to spare." if direction > 0 else "On track."


_DECISION = re.compile(r"decision\s*:\s*(increase|decrease|keep)", re.IGNORECASE)
_RATIO = re.compile(r"CPA ratio\s*(\d+(?:\s*\.\s*\d+)?)", re.IGNORECASE)
# A conclusion at the end of the reasoning (decoded text has spaces before punctuation).
_TRAILING_VERDICT = re.compile(r"\s*(?:CPA above target|Spending too fast|Budget to spare|On track)\s*\.?\s*$", re.IGNORECASE)


def parse_direction(cot: str) -> int | None:
    """The direction of the last ``Decision: ...`` in ``cot`` (+1/-1/0), ``None`` if absent."""
    matches = _DECISION.findall(cot)
    return DIRECTIONS[matches[-1].lower()] if matches else None


def parse_cpa_ratio(cot: str) -> float | None:
    """The CPA ratio stated in ``cot``, ``None`` if it states none."""
    match = _RATIO.search(cot)
    return float(re.sub(r"\s", "", match.group(1))) if match else None


def with_direction(cot: str, direction: int) -> str:
    """``cot`` with its conclusion set to ``direction``: the decision word and the verdict sentence
    just before it (the teacher's reason for that direction, :func:`_verdict`, chosen with the CPA
    ratio the CoT states); the facts before them are unchanged.

    One edit serves three uses: relabelling a conflicting CoT (the ``relabel`` ablation of
    language-guided training), the forced-direction gate (:mod:`agents.lbm.gate`) and the
    instructions of the paper's Table 4.

    Why the verdict moves with the word: in every CoT LBM-Think writes, the verdict and the word
    say the same thing, and under Eq. 5's discard rule so does every CoT LBM-Act trains on, so
    LBM-Act has no reason to read one rather than the other. Changing the word alone makes a CoT
    that contradicts itself ("Spending too fast. Decision: increase."), which no model wrote: a
    train/test shift. Measured (tiny backbone, dense quick logs, 1,500 steps, held-out
    trajectories): the word alone moved LBM-Act's log multiplier by -0.07 / +0.01 / +0.06
    (decrease / keep / increase, overlapping intervals), the conclusion by -0.21 / +0.02 / +0.15.
    An ``Instruction: raise the bid.`` phrase that no training CoT contained was read more weakly
    still (forced increase - keep +0.017 against +0.052 for the word alone).
    """
    if direction not in _WORDS:
        raise ValueError(f"direction must be -1, 0 or 1, got {direction!r}")
    reasoning = _DECISION.split(cot)[0].rstrip() if _DECISION.search(cot) else cot.rstrip()
    reasoning = _TRAILING_VERDICT.sub("", reasoning)
    return f"{reasoning} {_verdict(direction, parse_cpa_ratio(cot))} Decision: {_WORDS[direction]}.".lstrip()


def vocabulary_texts() -> list[str]:
    """Texts covering every word prompts and CoTs can contain (the tiny tokenizer's vocabulary)."""
    kpi = TickKPI(tick=0, multiplier=1.0, conversions=1, budget_left=0.5, predicted_value=1.0)
    texts = []
    for spend, conversions in ((0.0, 0), (10.0, 0), (100.0, 1), (10.0, 5)):
        for budget_left_share in (0.1, 0.5, 0.9):
            status = BiddingStatus(5, 10, 100.0, 10.0, spend, conversions, (kpi,) * (2 * (spend > 0)))
            status = BiddingStatus(5, 10, spend / (1 - budget_left_share) if spend else 100.0, 10.0, spend, conversions, status.recent)
            cot = teacher_cot(status)
            texts += [build_prompt(status), cot] + [with_direction(cot, d) for d in DIRECTIONS.values()]
    return texts
