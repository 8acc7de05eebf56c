"""Adversarial bandit bidders over a discrete bid grid: EXP3, Batch EXP3 and EXP3-IX.

Reference: *Learning Optimal Bidding Strategy: Case Study in E-Commerce Advertising* (the Batch
EXP3 paper; Zalando's sponsored-search bidder). Its notation: ``k`` bids (arms), items ``c`` in
``C`` (the paper's products, or contexts; Assumption 1: items are independent, so one learner
instance per item), rounds ``t`` (one bid placement; 3 hours in the paper), batches of ``B``
rounds (the daily policy update) and a delay of ``D`` batches (the 2-day conversion window).

Algorithm 1 (Batch EXP3), for every item at once, with scores ``S = 0`` (``(C, k)``):

* every round ``t``: ``P_t = softmax(eta S)`` per item; draw ``A_t ~ P_t``; place bid ``A_t``.
  The reward ``X_t`` in ``[0, 1]`` (normalised profit) is revealed later.
* at the end of batch ``m`` (after round ``mB``), if ``m > D``, update with the rounds of batch
  ``m - D`` (update rule (6))::

      S_i <- S_i + sum_{s in batch m-D} ( 1 - 1{A_s = i} (1 - X_s) / P_{s,i} )

  The summand is the loss-based importance-weighted estimate the paper discusses in Section 5.2
  (its Eq. (8)): ``1`` for every bid not placed and ``1 - (1 - X_s) / P_{s,i}`` (in
  ``(-inf, 1]``) for the placed bid. It is unbiased, ``E[.] = x_{s,i}`` for every bid, and it
  uses the probabilities ``P_s`` the bid was *drawn* with, not the current ones.

EXP3 is the online special case ``B = 1, D = 0`` (update after every round). EXP3-IX (implicit
exploration; Kocak et al. 2014, Neu 2015; the paper's Section 6 remedy for sparse rewards)
replaces ``P_{s,i}`` by ``P_{s,i} + gamma`` in the denominator: a placed bid with a small
probability is then punished by at most ``eta / gamma`` per round, which stops the snowballing
of Section 5.2 at the price of a small optimistic bias.

The paper's equations are missing from our plain-text copy; the update above is reconstructed
from Section 5.2's description of (6) and (8), which matches the loss-based EXP3 of Lattimore &
Szepesvari (*Bandit Algorithms*, Ch. 11) term for term. Theorem 3's bound is stated explicitly
in :func:`regret_bound` (with its derivation), and the theory learning rate in
:func:`theory_learning_rate` minimises it.

Where our market differs from the paper's: a bid here is a multiplier of the advertiser's value
(``bid = multiplier x CPA target x pValue``, :data:`~auctionsim.envs.DEFAULT_BID_GRID`: 14
multipliers finer at the low end), not an absolute max-CPC in cents (the paper's 14 bids from 1
to 40 cents); a round is one market tick, whose impressions are all bid on with that multiplier.

Every learner is vectorised over items: ``C = 10,000`` learners cost one ``(C, k)`` array update
per round. Arms are drawn by inverse CDF from counter-based uniforms keyed by
``(seed, item id, round)`` (:mod:`auctionsim.rng`), so a permuted population of bandit bidders
draws exactly permuted bids, like everything else in auctionsim.

Classes:

* :class:`Exp3`, :class:`Exp3IX`, :class:`BatchExp3`: the learners (arm indices in, rewards in
  ``[0, 1]`` out of the environment, see :mod:`auctionsim.envs.wrappers` for the profit reward,
  its normalisation and the batched, delayed feedback).
* :class:`BanditBidders`: a :class:`~auctionsim.envs.policy.PopulationPolicy` whose advertisers
  are the items of one learner, learning across episodes (days) from profit.
* :class:`UniformGridBids`: uniformly random bids from the grid (warm-up logs, regret baseline).
"""

from __future__ import annotations

import math
from typing import Sequence

import numba
import numpy as np

from auctionsim import rng
from auctionsim.envs.policy import PolicyContext, PopulationPolicy, TickFeedback
from auctionsim.envs.single import DEFAULT_BID_GRID
from auctionsim.envs.wrappers import PROFIT_VALUES, ProfitNormalizer, tick_profit
from auctionsim.errors import ActionError, ActionTypeError, ConfigError, describe
from auctionsim.validation import MAX_SEED, as_numeric_array, check_int, check_number

__all__ = [
    "BanditBidders",
    "BatchExp3",
    "Exp3",
    "Exp3IX",
    "UniformGridBids",
    "importance_weighted_estimates",
    "regret_bound",
    "theory_learning_rate",
    "validate_bid_grid",
]

# Stream of the learners' arm draws in the counter-based generator (the engine uses 1-13).
STREAM_BANDIT_ARMS = 101
STREAM_UNIFORM_BIDS = 102


# ---------------------------------------------------------------------------------- theory
def theory_learning_rate(n_arms: int, horizon: int, batch_size: int = 1, delay: int = 0) -> float:
    """The learning rate that minimises :func:`regret_bound`:
    ``eta = sqrt(ln k / (T ((k + B - 1) / 2 + B D)))``.

    For ``B = 1, D = 0`` this is ``sqrt(2 ln k / (k T))``, EXP3's rate and EXP3-IX's (Neu 2015).

    Args:
        n_arms: ``k``, number of bids.
        horizon: ``T``, rounds per item the learner will play.
        batch_size: ``B``, rounds per batch.
        delay: ``D``, batches between a round and its update.
    """
    n_arms = check_int("n_arms", n_arms, low=2)
    horizon = check_int("horizon", horizon, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    delay = check_int("delay", delay, low=0)
    return math.sqrt(math.log(n_arms) / (horizon * _variance_and_delay_term(n_arms, batch_size, delay)))


def _variance_and_delay_term(n_arms: int, batch_size: int, delay: int) -> float:
    return (n_arms + batch_size - 1) / 2.0 + batch_size * delay


def regret_bound(
    horizon: int,
    n_arms: int,
    batch_size: int = 1,
    delay: int = 0,
    learning_rate: float | None = None,
    n_items: int = 1,
) -> float:
    """Theorem 3 made explicit: expected regret of Batch EXP3 against the best fixed bid vector,
    rewards in ``[0, 1]``, an oblivious adversary::

        R_T <= C (ln k / eta + eta T ((k + B - 1) / 2 + B D))

    and, at :func:`theory_learning_rate`, ``R_T <= 2 C sqrt(T ln k ((k + B - 1) / 2 + B D))``
    (``sqrt(2 T k ln k)`` per item for EXP3, ``B = 1, D = 0``).

    Derivation (per item; sum over the ``C`` independent items). Group the rounds into ``T / B``
    batches and divide rewards by ``B``: Batch EXP3 is then delayed exponential weights on
    batch losses in ``[0, 1]``, with learning rate ``eta B``, a delay of ``D`` batches and loss
    estimates ``sum_s 1{A_s = i} (1 - X_s) / (B P_i)`` whose weighted second moment is at most
    ``(k + B - 1) / B`` (``B`` independent draws from the same ``P`` per batch). The delayed
    EXP3 bound ``ln k / eta' + eta' (sum_m E[sum_i P_i l_i^2] / 2 + total delay)`` (Thune,
    Cesa-Bianchi & Seldin 2019, Thm. 1; exact for ``D = 0``: Lattimore & Szepesvari Thm. 11.2's
    argument) times ``B`` gives the line above. The paper proves Theorem 3 by the same reduction
    to EXP3 on batches (steps (a)-(c) of its proof); its displayed constant is not in our copy.

    Args:
        horizon, n_arms, batch_size, delay: ``T``, ``k``, ``B``, ``D`` as in
            :func:`theory_learning_rate`.
        learning_rate: ``eta`` (default: the theory rate).
        n_items: ``C``, number of independent items.
    """
    theory = theory_learning_rate(n_arms, horizon, batch_size, delay)
    eta = theory if learning_rate is None else check_number("learning_rate", learning_rate, low=0.0, low_open=True)
    n_items = check_int("n_items", n_items, low=1)
    per_item = math.log(n_arms) / eta + eta * horizon * _variance_and_delay_term(n_arms, batch_size, delay)
    return n_items * per_item


def importance_weighted_estimates(
    arms: np.ndarray,
    chosen_probabilities: np.ndarray,
    rewards: np.ndarray,
    n_arms: int,
    implicit_exploration: float = 0.0,
) -> np.ndarray:
    """Sum over rounds of the importance-weighted reward estimates (update rule (6), Eq. (8)).

    For round ``s`` and item ``c``: ``1 - 1{A = i} (1 - X) / (P_A + gamma)`` for every bid ``i``
    (``gamma = 0``: unbiased EXP3; ``gamma > 0``: EXP3-IX). Rounds whose reward is NaN (no
    feedback for that item) add nothing.

    Args:
        arms: ``(n, C)`` int bids placed in ``n`` rounds for ``C`` items.
        chosen_probabilities: ``(n, C)`` probability each placed bid was drawn with.
        rewards: ``(n, C)`` rewards in ``[0, 1]`` or NaN.
        n_arms: ``k``.
        implicit_exploration: ``gamma >= 0``.

    Returns:
        ``(C, k)`` the estimates summed over the ``n`` rounds.
    """
    arms = np.ascontiguousarray(arms, dtype=np.int64)
    estimates = np.zeros((arms.shape[1], n_arms))
    _accumulate_estimates(
        estimates,
        arms,
        np.ascontiguousarray(chosen_probabilities, dtype=np.float64),
        np.ascontiguousarray(rewards, dtype=np.float64),
        float(implicit_exploration),
    )
    return estimates


@numba.njit(cache=True)
def _accumulate_estimates(scores, arms, chosen, rewards, implicit_exploration):
    """``scores (C, k) += `` the estimates of ``n`` rounds (``(n, C)`` inputs), in round order."""
    n_rounds, n_items = arms.shape
    n_arms = scores.shape[1]
    for s in range(n_rounds):
        for c in range(n_items):
            reward = rewards[s, c]
            if np.isnan(reward):
                continue
            for i in range(n_arms):
                scores[c, i] += 1.0
            scores[c, arms[s, c]] -= (1.0 - reward) / (chosen[s, c] + implicit_exploration)


@numba.njit(cache=True)
def _softmax_rows(scores, learning_rate, policy):
    """``policy[c] = softmax(learning_rate x scores[c])`` for every row (``(C, k)``)."""
    n_items, n_arms = scores.shape
    for c in range(n_items):
        top = scores[c, 0]
        for i in range(1, n_arms):
            top = max(top, scores[c, i])
        total = 0.0
        for i in range(n_arms):
            weight = np.exp(learning_rate * (scores[c, i] - top))
            policy[c, i] = weight
            total += weight
        for i in range(n_arms):
            policy[c, i] /= total


@numba.njit(cache=True)
def _draw_arms(policy, uniforms, arms, chosen):
    """Inverse-CDF draw of one arm per row: the first ``i`` with ``u < P_0 + ... + P_i``."""
    n_items, n_arms = policy.shape
    for c in range(n_items):
        cumulative = 0.0
        arm = n_arms - 1  # if the row sums to slightly below u
        for i in range(n_arms):
            cumulative += policy[c, i]
            if uniforms[c] < cumulative:
                arm = i
                break
        arms[c] = arm
        chosen[c] = policy[c, arm]


def validate_bid_grid(bid_grid: Sequence[float] | np.ndarray) -> np.ndarray:
    """A bid grid as a float64 array: at least 2 finite, non-negative, strictly increasing
    multipliers (``ConfigError`` otherwise)."""
    try:
        grid = np.asarray(bid_grid, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"bid_grid must be a 1-D list of multipliers, got {describe(bid_grid)}") from None
    if grid.ndim != 1 or grid.size < 2:
        raise ConfigError(f"bid_grid must be a 1-D list of at least 2 multipliers, got {describe(bid_grid)}")
    if not np.all(np.isfinite(grid)) or (grid < 0).any():
        raise ConfigError(f"bid_grid must hold finite multipliers >= 0, got {describe(bid_grid)}")
    if (np.diff(grid) <= 0).any():
        raise ConfigError(f"bid_grid must be strictly increasing, got {describe(bid_grid)}")
    grid.setflags(write=False)
    return grid


# ---------------------------------------------------------------------------------- learners
class Exp3:
    """EXP3 (loss-based, online) for ``n_items`` independent items, vectorised.

    Each round: :meth:`act` draws one arm per item from ``P = softmax(eta S)``, then
    :meth:`learn` takes that round's rewards and updates ``S`` at once (see the module docstring
    for the update and its equation numbers).

    Args:
        n_arms: ``k >= 2`` bids.
        n_items: ``C >= 1`` items (products, advertisers), one learner each.
        learning_rate: ``eta > 0``; default :func:`theory_learning_rate` for ``horizon``.
        horizon: rounds per item, needed for the default learning rate.
        implicit_exploration: ``gamma >= 0`` added to the importance weights' denominator
            (0: EXP3; see :class:`Exp3IX`).
        seed: key of the arm draws (an integer in ``[0, 2**63)``).
        item_ids: ``(C,)`` distinct non-negative ids keying each item's draws (default
            ``0..C-1``; :class:`BanditBidders` passes advertiser ids).

    Attributes:
        scores: ``(C, k)`` cumulative importance-weighted reward estimates ``S``.
        rounds_played: rounds played so far (the index of the next round).
    """

    batch_size = 1
    delay = 0

    def __init__(
        self,
        n_arms: int,
        n_items: int = 1,
        *,
        learning_rate: float | None = None,
        horizon: int | None = None,
        implicit_exploration: float = 0.0,
        seed: int = 0,
        item_ids: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        self.n_arms = check_int("n_arms", n_arms, low=2)
        self.n_items = check_int("n_items", n_items, low=1)
        if learning_rate is None:
            if horizon is None:
                raise ConfigError("give learning_rate, or horizon (rounds per item) for the theory learning rate; got neither")
            self.learning_rate = theory_learning_rate(self.n_arms, horizon, self.batch_size, self.delay)
        else:
            self.learning_rate = check_number("learning_rate", learning_rate, low=0.0, low_open=True)
        self.horizon = None if horizon is None else check_int("horizon", horizon, low=1)
        self.implicit_exploration = self._resolve_implicit_exploration(implicit_exploration)
        self.seed = check_int("seed", seed, low=0, high=MAX_SEED)
        ids = np.arange(self.n_items, dtype=np.int64) if item_ids is None else np.asarray(item_ids)
        if ids.shape != (self.n_items,) or ids.dtype.kind not in "iu" or (ids < 0).any() or np.unique(ids).size != ids.size:
            raise ConfigError(f"item_ids must be {self.n_items} distinct non-negative integers, got {describe(item_ids)}")
        self.item_ids = ids.astype(np.int64)
        self._draw_keys = rng.stream_keys(self.seed, 0, STREAM_BANDIT_ARMS, self.item_ids)
        self.scores = np.zeros((self.n_items, self.n_arms))
        self.rounds_played = 0
        self._policy: np.ndarray | None = None
        self._awaiting: tuple[int, np.ndarray, np.ndarray] | None = None

    def _resolve_implicit_exploration(self, value: float | None) -> float:
        return check_number("implicit_exploration", value, low=0.0)

    # ------------------------------------------------------------------ acting
    def probabilities(self) -> np.ndarray:
        """``(C, k)`` the current policy ``softmax(eta S)`` of every item (a copy)."""
        return self._current_policy().copy()

    def _current_policy(self) -> np.ndarray:
        if self._policy is None:
            self._policy = np.empty_like(self.scores)
            _softmax_rows(self.scores, self.learning_rate, self._policy)
        return self._policy

    def act(self) -> np.ndarray:
        """Draw this round's arm of every item: ``(C,)`` int64 indices into the bid grid."""
        policy = self._current_policy()
        uniforms = rng.uniform_array(self._draw_keys, np.array([self.rounds_played], dtype=np.int64))[:, 0]
        arms = np.empty(self.n_items, dtype=np.int64)
        chosen = np.empty(self.n_items)
        _draw_arms(policy, uniforms, arms, chosen)
        self._record(self.rounds_played, arms, chosen)
        self.rounds_played += 1
        return arms

    def _record(self, round_index: int, arms: np.ndarray, chosen: np.ndarray) -> None:
        self._awaiting = (round_index, arms, chosen)

    # ------------------------------------------------------------------ learning
    def _check_rewards(self, rewards: object) -> np.ndarray:
        array = as_numeric_array("rewards", rewards)
        if array.shape == () and self.n_items == 1:
            array = array.reshape(1)
        if array.shape != (self.n_items,):
            raise ActionError(f"rewards must have shape ({self.n_items},) (one per item), got {array.shape}")
        seen = array[~np.isnan(array)]
        if ((seen < 0) | (seen > 1)).any():
            bad = float(seen[(seen < 0) | (seen > 1)][0])
            raise ActionError(
                f"rewards must be in [0, 1] (or NaN for no feedback), got {bad}; normalise profit first, "
                "e.g. with auctionsim.envs.wrappers.NormalizedProfit"
            )
        return array

    def _round_index(self, round_index: int | None, default: int | None) -> int:
        if round_index is None:
            if default is None:
                raise ActionError("no round is awaiting feedback; call act() first")
            return default
        return check_int("round_index", round_index, error=ActionTypeError)

    def learn(self, rewards: object, round_index: int | None = None) -> None:
        """Rewards of the round just played, ``(C,)`` in ``[0, 1]`` (NaN: no feedback for that item).

        EXP3 updates at once. ``round_index`` (default: the last round) must be the last round:
        use :class:`BatchExp3` for delayed feedback.
        """
        rewards = self._check_rewards(rewards)
        awaiting = self._awaiting
        round_index = self._round_index(round_index, None if awaiting is None else awaiting[0])
        if awaiting is None or round_index != awaiting[0]:
            raise ActionError(
                f"EXP3 learns from the round just played (round {None if awaiting is None else awaiting[0]}), "
                f"got feedback for round {round_index}; use BatchExp3 for batched or delayed feedback"
            )
        _, arms, chosen = awaiting
        self._awaiting = None
        self._apply(arms[None, :], chosen[None, :], rewards[None, :])

    def _apply(self, arms: np.ndarray, chosen: np.ndarray, rewards: np.ndarray) -> None:
        """Add the estimates of ``n`` rounds (``(n, C)`` arrays) to the scores: update rule (6)."""
        _accumulate_estimates(self.scores, arms, chosen, rewards, self.implicit_exploration)
        self._policy = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_arms={self.n_arms}, n_items={self.n_items}, learning_rate={self.learning_rate:.4g}, "
            f"implicit_exploration={self.implicit_exploration:.4g}, batch_size={self.batch_size}, delay={self.delay})"
        )


class Exp3IX(Exp3):
    """EXP3-IX: EXP3 with implicit exploration (Kocak et al. 2014; Neu 2015, "Explore no more").

    The placed bid's loss is divided by ``P + gamma`` instead of ``P``. Defaults follow Neu
    (2015): ``eta = sqrt(2 ln k / (k T))`` and ``gamma = eta / 2``, which give regret
    ``O(sqrt(k T ln k))`` with high probability, not only in expectation.

    Args: as :class:`Exp3`; ``implicit_exploration=None`` (default) means ``eta / 2``.
    """

    def __init__(self, n_arms: int, n_items: int = 1, *, implicit_exploration: float | None = None, **kwargs) -> None:
        super().__init__(n_arms, n_items, implicit_exploration=implicit_exploration, **kwargs)  # type: ignore[arg-type]

    def _resolve_implicit_exploration(self, value: float | None) -> float:
        return self.learning_rate / 2.0 if value is None else super()._resolve_implicit_exploration(value)


class BatchExp3(Exp3):
    """Batch EXP3 (the paper's Algorithm 1): batched, delayed importance-weighted updates.

    Bids are drawn every round from the policy of the last update; the scores change only at the
    end of each batch of ``batch_size`` rounds, by the estimates of the rounds ``delay`` batches
    back (the first ``delay`` batches update nothing). Each round's draw probabilities are kept
    until its update, so the estimates stay unbiased under any delay.

    Feedback may arrive immediately after each round (:meth:`learn` with the default round) or
    later with an explicit ``round_index`` (e.g. from
    :class:`~auctionsim.envs.wrappers.BatchedDelayedFeedback`): at the end of batch ``m`` the
    learner applies every round of batches ``<= m - D`` whose rewards have arrived; rewards that
    arrive even later are applied at the next batch end (the paper's "adaptable to unknown and
    random delays"). So the same learner gives the same bids whether the delay is simulated here
    or by the environment. With ``B = 1, D = 0`` it is :class:`Exp3`, step for step.

    Args: as :class:`Exp3`, plus
        batch_size: ``B >= 1`` rounds per batch.
        delay: ``D >= 0`` batches between a round and its update.
        implicit_exploration: ``gamma`` (0: Batch EXP3; ``> 0``: Batch EXP3-IX).
    """

    def __init__(self, n_arms: int, n_items: int = 1, *, batch_size: int = 1, delay: int = 0, **kwargs) -> None:
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.delay = check_int("delay", delay, low=0)
        self._played: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._rewards: dict[int, np.ndarray] = {}
        self._batches_closed = 0
        super().__init__(n_arms, n_items, **kwargs)

    def _record(self, round_index: int, arms: np.ndarray, chosen: np.ndarray) -> None:
        self._played[round_index] = (arms, chosen)

    def _current_policy(self) -> np.ndarray:
        self._close_finished_batches()
        return super()._current_policy()

    def _close_finished_batches(self) -> None:
        """Run the end-of-batch update of every batch whose rounds have all been played."""
        while self._batches_closed < self.rounds_played // self.batch_size:
            due_batch = self._batches_closed - self.delay
            due = sorted(r for r in self._rewards if r // self.batch_size <= due_batch)
            if due:
                arms = np.stack([self._played[r][0] for r in due])
                chosen = np.stack([self._played[r][1] for r in due])
                rewards = np.stack([self._rewards.pop(r) for r in due])
                for r in due:
                    del self._played[r]
                self._apply(arms, chosen, rewards)
            self._batches_closed += 1

    @property
    def pending_rounds(self) -> int:
        """Rounds played whose update has not been applied yet."""
        return len(self._played)

    def learn(self, rewards: object, round_index: int | None = None) -> None:
        """Rewards ``(C,)`` in ``[0, 1]`` (NaN: none for that item) of one played round
        (default: the last one); applied at the first batch end at least ``D`` batches later."""
        rewards = self._check_rewards(rewards)
        round_index = self._round_index(round_index, self.rounds_played - 1 if self.rounds_played else None)
        if round_index not in self._played:
            raise ActionError(
                f"round_index {round_index} is not a played round awaiting feedback "
                f"(rounds played: {self.rounds_played}, awaiting: {self.pending_rounds})"
            )
        if round_index in self._rewards:
            raise ActionError(f"round {round_index} already has its rewards")
        self._rewards[round_index] = rewards


# ---------------------------------------------------------------------------------- bidders
class BanditBidders(PopulationPolicy):
    """Bandit bidders for many advertisers: advertiser row ``c`` is item ``c`` of one learner.

    Each tick every managed advertiser bids ``bid_grid[arm]`` with the arm its learner draws;
    after the tick its profit (``value - spend``, :func:`~auctionsim.envs.wrappers.tick_profit`)
    is normalised by ``normalizer`` (the paper's traffic weights and 5%/95% min-max) and fed back.
    The learner keeps learning across episodes (days): :meth:`reset` only checks the population.
    Advertisers whose budget had run out before a tick get no feedback for it (NaN).

    Batching and delay are the learner's (:class:`BatchExp3`): a market tick's feedback is
    immediate, so the learner itself holds it back ``D`` batches, as Algorithm 1 does.

    Args:
        learner: an :class:`Exp3` (or subclass) with ``n_items`` = number of managed
            advertisers and ``n_arms = len(bid_grid)``; build it with ``item_ids`` = their ids
            for permutation-equivariant draws.
        normalizer: a :class:`~auctionsim.envs.wrappers.ProfitNormalizer` covering them.
        bid_grid: bid multipliers (default :data:`~auctionsim.envs.DEFAULT_BID_GRID`).
        value: ``"expected"`` (value won) or ``"realised"`` (conversions x CPA target).
    """

    def __init__(
        self,
        learner: Exp3,
        normalizer: ProfitNormalizer,
        bid_grid: Sequence[float] | np.ndarray = DEFAULT_BID_GRID,
        value: str = "expected",
    ) -> None:
        if not isinstance(learner, Exp3):
            raise ConfigError(f"learner must be an Exp3, Exp3IX or BatchExp3, got {describe(learner)}")
        if not isinstance(normalizer, ProfitNormalizer):
            raise ConfigError(f"normalizer must be a ProfitNormalizer, got {describe(normalizer)}")
        self.bid_grid = validate_bid_grid(bid_grid)
        if self.bid_grid.size != learner.n_arms:
            raise ConfigError(f"learner has {learner.n_arms} arms but bid_grid has {self.bid_grid.size} bids")
        if value not in PROFIT_VALUES:
            raise ConfigError(f"value must be one of {', '.join(PROFIT_VALUES)}, got {value!r}")
        self.learner = learner
        self.normalizer = normalizer
        self.value = value
        self.last_arms = np.zeros(learner.n_items, dtype=np.int64)

    def reset(self, context: PolicyContext) -> None:
        population = context.population
        if len(population) != self.learner.n_items:
            raise ConfigError(f"the learner has {self.learner.n_items} items but the policy manages {len(population)} advertisers")
        self._ids = population.ids.copy()
        self._cpa_targets = population.cpa_targets.astype(np.float64)
        self._budget_floor = max(context.market.reserve_price, context.market.min_budget_to_bid)
        self._acting = np.ones(len(population), dtype=bool)

    def act(self, observations: np.ndarray) -> np.ndarray:
        self.last_arms = self.learner.act()
        return self.bid_grid[self.last_arms]

    def observe(self, feedback: TickFeedback) -> None:
        """Learn from the tick's profit. Everything is checked before the learner or the bidders
        change: a rejected call leaves them as they were."""
        shape = (self.learner.n_items,)
        for name in ("spend", "value_won", "conversions", "budget_left"):
            values = as_numeric_array(f"feedback.{name}", getattr(feedback, name))
            if values.shape != shape or not np.all(np.isfinite(values)):
                raise ActionError(f"feedback.{name} must be {shape[0]} finite numbers (one per advertiser), got {describe(values)}")
        profit = tick_profit(self.value, feedback.spend, feedback.value_won, feedback.conversions, self._cpa_targets)
        rewards = self.normalizer.normalize(profit, feedback.tick, self._ids)
        rewards[~self._acting] = np.nan
        self.learner.learn(rewards)
        self._acting = np.asarray(feedback.budget_left) >= self._budget_floor


class UniformGridBids(PopulationPolicy):
    """Every advertiser bids a uniformly random multiplier of the grid, redrawn every tick.

    The exploration baseline (the policy a bandit starts from), used to log warm-up data for the
    reward normalisation. Draws are keyed by ``(episode seed, advertiser id, tick)``.

    Args:
        bid_grid: bid multipliers (default :data:`~auctionsim.envs.DEFAULT_BID_GRID`).
    """

    def __init__(self, bid_grid: Sequence[float] | np.ndarray = DEFAULT_BID_GRID) -> None:
        self.bid_grid = validate_bid_grid(bid_grid)

    def reset(self, context: PolicyContext) -> None:
        seed = 0 if context.seed is None else int(context.seed)
        self._keys = rng.stream_keys(seed, 0, STREAM_UNIFORM_BIDS, context.population.ids.astype(np.int64))
        self._tick = 0

    def act(self, observations: np.ndarray) -> np.ndarray:
        uniforms = rng.uniform_array(self._keys, np.array([self._tick], dtype=np.int64))[:, 0]
        self._tick += 1
        return self.bid_grid[np.minimum((uniforms * self.bid_grid.size).astype(np.int64), self.bid_grid.size - 1)]
