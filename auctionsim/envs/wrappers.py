"""Gymnasium wrappers for the single-bidder env: profit reward, its normalisation, and batched,
delayed feedback. They compose (``BatchedDelayedFeedback(NormalizedProfit(ProfitReward(env),
normalizer), batch_size=8, delay=2)``), so the env itself stays free of flags.

This is the feedback model of the Batch EXP3 paper (*Learning Optimal Bidding Strategy: Case
Study in E-Commerce Advertising*, Sections 3.1 and 4.2):

* :class:`ProfitReward`: the reward is the tick's profit ``value - cost`` (currency), with the
  value either the expected value won (``pValue x CPA target`` over exposures, dense) or the
  realised one (``conversions x CPA target``, sparse: the paper's attributed gain).
* :class:`NormalizedProfit`: the paper's two normalisation steps, fitted on a warm-up log by
  :class:`ProfitNormalizer`: divide by the period's traffic weight, then min-max by the 5th and
  95th percentiles of the advertiser's historical profit, clipped to ``[0, 1]``.
* :class:`BatchedDelayedFeedback`: rewards (and the value-bearing info entries) of ``B`` rounds
  are revealed together, ``D`` batches late; costs stay immediate, as in the paper.

Where our market differs from the paper's: its round is a 3-hour bid placement on one product
and its traffic periods are the 8 such periods of a day; here a round is one env step (a market
tick) and a traffic period is a tick of the day (the traffic curve is per tick).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from auctionsim.envs.single import SingleBidderEnv
from auctionsim.errors import ConfigError, describe
from auctionsim.validation import check_int, check_number

__all__ = [
    "PROFIT_VALUES",
    "BatchedDelayedFeedback",
    "NormalizedProfit",
    "ProfitNormalizer",
    "ProfitReward",
    "tick_profit",
]

PROFIT_VALUES = ("expected", "realised")
DELAYED_INFO_KEYS = ("value_won", "conversions", "value", "profit")


def tick_profit(
    value: str,
    spend: np.ndarray | float,
    value_won: np.ndarray | float,
    conversions: np.ndarray | float,
    cpa_targets: np.ndarray | float,
) -> np.ndarray:
    """Profit of a tick, ``value - spend`` (currency; the paper's Eq. (1) aggregated per round).

    Args:
        value: ``"expected"``: the value won (``sum pValue x CPA target`` over exposures), or
            ``"realised"``: ``conversions x CPA target`` (a conversion is worth the CPA target).
        spend, value_won, conversions, cpa_targets: per-advertiser arrays (or scalars).
    """
    if value == "expected":
        gained = np.asarray(value_won, dtype=np.float64)
    elif value == "realised":
        gained = np.asarray(conversions, dtype=np.float64) * np.asarray(cpa_targets, dtype=np.float64)
    else:
        raise ConfigError(f"value must be one of {', '.join(PROFIT_VALUES)}, got {value!r}")
    return gained - np.asarray(spend, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class ProfitNormalizer:
    """The paper's reward normalisation (Section 4.2), one set of constants per advertiser.

    1. Traffic weights: ``r' = r / w_tau`` where ``tau`` is the tick of the day and
       ``w_tau = mean traffic of tick tau / mean traffic of the busiest tick`` (in ``(0, 1]``,
       market level, shared by every advertiser), so that quiet night ticks count like busy ones.
    2. Min-max: ``X = (r' - low) / (high - low)`` with ``low``, ``high`` the 5th and 95th
       percentiles of the advertiser's historical traffic-weighted profit, clipped to ``[0, 1]``
       (EXP3 needs rewards in ``[0, 1]``; the paper does not say how it treats the 10% outside).

    Build it from a warm-up log with :meth:`from_log` (or :meth:`fit` on arrays).

    Attributes:
        traffic_weights: ``(T,)`` per tick of the day.
        advertiser_ids: ``(N,)`` the advertisers covered.
        low, high: ``(N,)`` currency, ``high >= low``; an advertiser with ``high == low`` (a
            constant profit in the log) cannot be normalised and raises ``ConfigError`` when used.
    """

    traffic_weights: np.ndarray
    advertiser_ids: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def __post_init__(self) -> None:
        weights = np.asarray(self.traffic_weights, dtype=np.float64)
        if weights.ndim != 1 or weights.size == 0 or not np.all(np.isfinite(weights)) or (weights <= 0).any() or (weights > 1).any():
            raise ConfigError(f"traffic_weights must be a non-empty 1-D array in (0, 1], got {describe(self.traffic_weights)}")
        ids = np.asarray(self.advertiser_ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu" or np.unique(ids).size != ids.size:
            raise ConfigError(f"advertiser_ids must be distinct integers, got {describe(self.advertiser_ids)}")
        low = np.asarray(self.low, dtype=np.float64)
        high = np.asarray(self.high, dtype=np.float64)
        if low.shape != ids.shape or high.shape != ids.shape:
            raise ConfigError(f"low and high must have shape {ids.shape} (one per advertiser), got {low.shape} and {high.shape}")
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high >= low)):
            row = int(np.argmax(~(np.isfinite(low) & np.isfinite(high) & (high >= low))))
            raise ConfigError(f"need finite low <= high for every advertiser, got low={low[row]}, high={high[row]} for advertiser {int(ids[row])}")
        order = np.argsort(ids, kind="stable")
        for name, array in (("traffic_weights", weights), ("advertiser_ids", ids.astype(np.int64)), ("low", low), ("high", high)):
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        object.__setattr__(self, "_order", order)

    @classmethod
    def fit(
        cls,
        profit: np.ndarray,
        traffic: np.ndarray,
        advertiser_ids: Sequence[int] | np.ndarray,
        acting: np.ndarray | None = None,
        quantiles: tuple[float, float] = (0.05, 0.95),
        scale: np.ndarray | None = None,
    ) -> "ProfitNormalizer":
        """Fit on a warm-up log.

        Args:
            profit: ``(E, T, N)`` profit per episode, tick of the day and advertiser (currency).
            traffic: ``(E, T)`` market traffic of each tick (e.g. impressions, or opportunities
                summed over advertisers).
            advertiser_ids: ``(N,)``.
            acting: ``(E, T, N)`` whether the advertiser was bidding (default: all); profits of
                ticks where it was not are left out of its percentiles.
            quantiles: ``(low, high)`` percentiles as fractions (the paper: 5% and 95%).
            scale: optional ``(N,)`` money scale per advertiser (e.g. its CPA target), see below.

        An advertiser whose percentiles coincide (e.g. sparse profit, mostly 0) falls back to the
        minimum and maximum of its log. One whose log is constant (it never won, or bid in one
        tick only) borrows, with ``scale``, the pooled percentiles of every other advertiser's
        ``profit / scale`` times its own scale; without ``scale`` it keeps ``low == high`` and
        raises ``ConfigError`` if it is ever normalised.
        """
        profit = np.asarray(profit, dtype=np.float64)
        traffic = np.asarray(traffic, dtype=np.float64)
        if profit.ndim != 3 or traffic.shape != profit.shape[:2]:
            raise ConfigError(f"profit must be (episodes, ticks, advertisers) and traffic (episodes, ticks), got {profit.shape} and {traffic.shape}")
        if not (np.all(np.isfinite(profit)) and np.all(np.isfinite(traffic)) and (traffic >= 0).all()):
            raise ConfigError("profit and traffic must be finite, traffic >= 0")
        low_q, high_q = (check_number(f"quantiles[{i}]", q, low=0.0, high=1.0) for i, q in enumerate(quantiles))
        if not low_q < high_q:
            raise ConfigError(f"quantiles must satisfy low < high, got {quantiles}")
        mean_traffic = traffic.mean(axis=0)
        if (mean_traffic <= 0).any():
            raise ConfigError(f"the warm-up log has no traffic in tick {int(np.argmax(mean_traffic <= 0))}; cannot weight it")
        weights = mean_traffic / mean_traffic.max()
        acting = np.ones(profit.shape, dtype=bool) if acting is None else np.asarray(acting, dtype=bool)
        if acting.shape != profit.shape:
            raise ConfigError(f"acting must have shape {profit.shape}, got {acting.shape}")
        ids = np.asarray(advertiser_ids)
        # (E x T, N) traffic-weighted profits, NaN where the advertiser was not bidding.
        weighted = np.where(acting, profit / weights[None, :, None], np.nan).reshape(-1, profit.shape[2])
        never = np.isnan(weighted).all(axis=0)
        if never.any():
            raise ConfigError(f"advertiser {int(ids[np.argmax(never)])} never bid in the warm-up log")
        low, high = np.nanquantile(weighted, [low_q, high_q], axis=0)
        narrow = high <= low
        low[narrow], high[narrow] = np.nanmin(weighted[:, narrow], axis=0), np.nanmax(weighted[:, narrow], axis=0)
        constant = high <= low
        if scale is not None and constant.any() and not constant.all():
            scale = np.asarray(scale, dtype=np.float64)
            if scale.shape != ids.shape or not np.all(np.isfinite(scale)) or (scale <= 0).any():
                raise ConfigError(f"scale must be {ids.shape[0]} finite numbers > 0, got {describe(scale)}")
            pooled = (weighted[:, ~constant] / scale[~constant]).ravel()
            pooled_low, pooled_high = np.nanquantile(pooled, [low_q, high_q])
            low[constant], high[constant] = pooled_low * scale[constant], pooled_high * scale[constant]
        return cls(traffic_weights=weights, advertiser_ids=ids, low=low, high=high)

    @classmethod
    def from_log(cls, log: Any, value: str = "expected", quantiles: tuple[float, float] = (0.05, 0.95)) -> "ProfitNormalizer":
        """Fit on an offline log with the :mod:`agents.datasets` schema (an ``OfflineDataset``, or
        anything with its arrays): profit from ``spend``, ``value_won``/``conversions`` and
        ``cpa_targets``; traffic = ``opportunities`` summed over advertisers; ``live`` masks;
        advertisers with a constant log borrow the pooled percentiles scaled by CPA target."""
        cpa_targets = np.asarray(log.cpa_targets, dtype=np.float64)
        profit = tick_profit(value, log.spend, log.value_won, log.conversions, cpa_targets[None, None, :])
        traffic = np.asarray(log.opportunities, dtype=np.float64).sum(axis=2)
        return cls.fit(profit, traffic, log.advertiser_ids, acting=np.asarray(log.live)[:, :-1], quantiles=quantiles, scale=cpa_targets)

    def rows_of(self, advertiser_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows of the given advertisers in this normaliser (``ConfigError`` if one is missing or
        had a constant profit in the warm-up log)."""
        query = np.asarray(advertiser_ids, dtype=np.int64).reshape(-1)
        sorted_ids = self.advertiser_ids[self._order]  # type: ignore[attr-defined]
        found = np.minimum(np.searchsorted(sorted_ids, query), sorted_ids.size - 1)
        missing = sorted_ids[found] != query
        if missing.any():
            raise ConfigError(f"advertiser {int(query[np.argmax(missing)])} is not in the normaliser (fit it on a log that covers it)")
        rows = self._order[found]  # type: ignore[attr-defined]
        constant = self.high[rows] <= self.low[rows]
        if constant.any():
            row = rows[np.argmax(constant)]
            raise ConfigError(
                f"advertiser {int(self.advertiser_ids[row])} had a constant profit {self.low[row]} in the warm-up log "
                "(e.g. it never won); log more, or more varied, bidding to normalise its profit"
            )
        return rows

    def normalize(self, profit: np.ndarray | float, tick: int, advertiser_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(n,)`` rewards in ``[0, 1]`` for the profits of ``n`` advertisers in tick ``tick``."""
        tick = check_int("tick", tick, low=0, high=self.traffic_weights.size - 1)
        rows = self.rows_of(advertiser_ids)
        weighted = np.asarray(profit, dtype=np.float64).reshape(-1) / self.traffic_weights[tick]
        return np.clip((weighted - self.low[rows]) / (self.high[rows] - self.low[rows]), 0.0, 1.0)


def _single_bidder(env: gym.Env) -> SingleBidderEnv:
    single = env.unwrapped
    if not isinstance(single, SingleBidderEnv):
        raise ConfigError(f"this wrapper needs an auctionsim SingleBidderEnv underneath, got {describe(single)}")
    return single


def _has_wrapper(env: gym.Env, kind: type) -> bool:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, kind):
            return True
        env = env.env
    return False


class ProfitReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Reward = the focal advertiser's profit in the tick, ``value - spend`` (currency).

    Adds ``info["value"]`` and ``info["profit"]``. See :func:`tick_profit` for ``value``.
    """

    def __init__(self, env: gym.Env, value: str = "expected") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, value=value)
        gym.Wrapper.__init__(self, env)
        if value not in PROFIT_VALUES:
            raise ConfigError(f"value must be one of {', '.join(PROFIT_VALUES)}, got {value!r}")
        self._single = _single_bidder(env)
        self.value = value

    def step(self, action: Any):
        observation, _, terminated, truncated, info = self.env.step(action)
        single = self._single
        cpa_target = float(single.market.population.cpa_targets[single.focal_row])
        profit = float(tick_profit(self.value, info["spend"], info["value_won"], info["conversions"], cpa_target))
        info["value"] = profit + info["spend"]
        info["profit"] = profit
        return observation, profit, terminated, truncated, info


class NormalizedProfit(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Reward = the profit normalised to ``[0, 1]`` by a :class:`ProfitNormalizer` (the paper's
    traffic weights and 5%/95% min-max); the raw profit stays in ``info["profit"]``.

    Wrap a :class:`ProfitReward`. Every advertiser the env makes focal must be covered by the
    normaliser (:meth:`ProfitNormalizer.from_log` on a log of the env's market covers them all);
    ``step`` checks before playing the tick.
    """

    def __init__(self, env: gym.Env, normalizer: ProfitNormalizer) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, normalizer=normalizer)
        gym.Wrapper.__init__(self, env)
        if not isinstance(normalizer, ProfitNormalizer):
            raise ConfigError(f"normalizer must be a ProfitNormalizer, got {describe(normalizer)}")
        if not _has_wrapper(env, ProfitReward):
            raise ConfigError("NormalizedProfit normalises profit: wrap a ProfitReward env")
        self._single = _single_bidder(env)
        if normalizer.traffic_weights.size != self._single.market.n_ticks:
            raise ConfigError(
                f"the normaliser has traffic weights for {normalizer.traffic_weights.size} ticks, the market has {self._single.market.n_ticks}"
            )
        self.normalizer = normalizer

    def step(self, action: Any):
        single = self._single
        self.normalizer.rows_of([single.focal_id])
        observation, profit, terminated, truncated, info = self.env.step(action)
        tick = single.market.tick - 1
        reward = float(self.normalizer.normalize(profit, tick, [single.focal_id])[0])
        return observation, reward, terminated, truncated, info


class BatchedDelayedFeedback(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Batched, delayed feedback: rewards of ``batch_size`` rounds revealed together, ``delay``
    batches late (the paper's Assumption 2: fixed ``B`` and ``D``).

    A round is one ``step``. Rounds are numbered from 0 since the last *seeded* reset and run on
    across episodes, so a batch can span days. At round ``t`` (``info["round"] = t``):

    * the inner reward and the info entries named in ``delayed_info_keys`` (by default the
      value-bearing ones: value won, conversions, and the profit wrappers' ``value``/``profit``)
      are withheld; costs (``spend``) and everything else pass through at once;
    * if ``t`` closes batch ``m`` (``t = (m + 1) B - 1``) and ``m >= D``, the rounds of batch
      ``m - D`` are revealed: the step's reward is the sum of their rewards and
      ``info["feedback"]`` holds ``"rounds"`` (``(B,)`` int), ``"rewards"`` (``(B,)`` float) and
      one ``(B,)`` array per withheld info entry. Every other step has reward ``0.0`` and no
      ``"feedback"`` entry.

    ``reset(seed=...)`` starts a new run: pending feedback is dropped and rounds restart at 0.
    ``reset()`` without a seed starts the next episode of the same run: pending feedback is
    kept. Feedback still pending when the run stops is never revealed (the last ``D + 1``
    batches at most), as for a bidder switched off before its conversions are attributed.
    ``B = 1, D = 0`` reveals every reward at once (``info["feedback"]`` on every step).

    Args:
        env: the env to wrap (any Gymnasium env).
        batch_size: ``B >= 1`` rounds per batch.
        delay: ``D >= 0`` batches.
        delayed_info_keys: info entries withheld with the rewards.
    """

    def __init__(self, env: gym.Env, batch_size: int, delay: int, delayed_info_keys: Sequence[str] = DELAYED_INFO_KEYS) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, batch_size=batch_size, delay=delay, delayed_info_keys=delayed_info_keys)
        gym.Wrapper.__init__(self, env)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.delay = check_int("delay", delay, low=0)
        if isinstance(delayed_info_keys, str) or not all(isinstance(key, str) for key in delayed_info_keys):
            raise ConfigError(f"delayed_info_keys must be a sequence of info key names, got {describe(delayed_info_keys)}")
        self.delayed_info_keys = tuple(delayed_info_keys)
        self.round = 0
        self._pending: dict[int, tuple[float, dict[str, Any]]] = {}

    @property
    def pending_rounds(self) -> int:
        """Rounds played whose feedback has not been revealed yet."""
        return len(self._pending)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        result = self.env.reset(seed=seed, options=options)  # first: a rejected reset keeps the run
        if seed is not None:
            self.round = 0
            self._pending = {}
        return result

    def step(self, action: Any):
        observation, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        withheld = {key: info.pop(key) for key in self.delayed_info_keys if key in info}
        round_index = self.round
        self._pending[round_index] = (float(reward), withheld)
        self.round += 1
        info["round"] = round_index
        revealed_reward = 0.0
        batch, position = divmod(round_index, self.batch_size)
        if position == self.batch_size - 1 and batch >= self.delay:
            first = (batch - self.delay) * self.batch_size
            rounds = np.arange(first, first + self.batch_size, dtype=np.int64)
            records = [self._pending.pop(int(r)) for r in rounds]
            rewards = np.array([record[0] for record in records])
            feedback: dict[str, np.ndarray] = {"rounds": rounds, "rewards": rewards}
            for key in self.delayed_info_keys:
                if all(key in record[1] for record in records):
                    feedback[key] = np.array([record[1][key] for record in records])
            info["feedback"] = feedback
            revealed_reward = float(rewards.sum())
        return observation, revealed_reward, terminated, truncated, info
