"""The :class:`Market`: one ad market's episode state and its typed Python API over the kernels.

Typical use::

    from auctionsim import Market
    market = Market.from_preset("auctionnet")
    market.reset(seed=0)
    while not market.done:
        result = market.step(np.ones(market.n_advertisers))   # bid = 1.0 x CPA target x pValue
    print(market.episode_metrics().social_welfare)

Bid convention: an advertiser with multiplier ``m`` bids ``m x CPA target x pValue`` on each
impression, so ``m = 1`` bids its expected value per impression (truthful value bidding) and
AuctionNet's ``alpha`` equals ``m x CPA target``. Advanced bidders may instead pass explicit
per-impression bids for the tick (``impression_bids``), having read their own pValues with
:meth:`Market.tick_values`.

Every input is validated before any state changes: a rejected ``step`` leaves the market exactly
as it was.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from auctionsim import kernel
from auctionsim.config import MarketConfig, Mechanism, Population
from auctionsim.errors import ActionError, ActionTypeError, AuctionSimError, ConfigError, EpisodeOverError, MechanismError, describe
from auctionsim.mechanisms import Advertisers
from auctionsim.metrics import EpisodeMetrics, exact_total
from auctionsim.traffic import KEY_TIE_BREAK, EpisodeTraffic, ExplicitTraffic, generate_episode_traffic
from auctionsim.validation import as_ids, as_numeric_array, check_int, check_number, check_seed

__all__ = ["Market", "TickResult", "MarketTickStats", "ImpressionLog", "TickValues", "warm_up"]

_EMPTY_FLOAT_2D = np.zeros((0, 0), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class ImpressionLog:
    """Per-impression record of one tick (``n`` impressions, ``S`` slots).

    Attributes:
        impression: ``(n,)`` global impression index in the episode.
        winners: ``(n, S)`` advertiser id in each slot, ``-1`` where the slot was not allocated.
        prices: ``(n, S)`` per-exposure price of each slot (charged only if exposed).
        exposed: ``(n, S)`` whether each slot was seen.
        converted: ``(n, S)`` whether each slot's ad converted.
        least_winning_cost: ``(n,)`` AuctionNet's least winning cost: the ``(S+1)``-th highest
            bid, floored at the reserve (the reserve when fewer bid), i.e. the price of the last
            slot: what the lowest winner pays per exposure under GSP.
        lowest_winning_bid: ``(n,)`` the lowest bid that won a slot, the ``S``-th highest (the
            reserve when slots went unsold): what a bidder outside the ranking must beat to win.
        top_bid: ``(n,)`` highest bid taking part (0 when none).
        ranked_bids: ``(n, S + 1)`` the final ranking's best ``S + 1`` bids (after budget
            exclusions), 0 where fewer bid: the bid landscape that set the prices.
        ranked_bidders: ``(n, S + 1)`` the advertiser id behind each ranked bid, -1 where none.
        slots_seen: ``(n,)`` how many slots were exposed (a prefix of the slots).
    """

    impression: np.ndarray
    winners: np.ndarray
    prices: np.ndarray
    exposed: np.ndarray
    converted: np.ndarray
    least_winning_cost: np.ndarray
    lowest_winning_bid: np.ndarray
    top_bid: np.ndarray
    ranked_bids: np.ndarray
    ranked_bidders: np.ndarray
    slots_seen: np.ndarray


@dataclass(frozen=True)
class MarketTickStats:
    """Market-level statistics of one tick (money in currency units; the least winning cost is
    AuctionNet's, see :class:`ImpressionLog`)."""

    n_impressions: int
    n_sold: int
    revenue: float
    social_welfare: float
    conversions: int
    exposed_slots: int
    budget_exclusions: int
    least_winning_cost_mean: float
    least_winning_cost_std: float
    least_winning_cost_min: float
    least_winning_cost_max: float
    top_bid_mean: float


@dataclass(frozen=True, eq=False)
class TickResult:
    """Outcome of one tick. Per-advertiser arrays are ``(N,)`` in population order.

    Attributes:
        tick: index of the tick just played (0-based).
        multipliers: the bid multipliers used (``bid = multiplier x CPA target x pValue``).
        opportunities: impressions each advertiser contested.
        wins: slots allocated; exposures: allocated slots seen; conversions: realised.
        spend: money paid; value_won: sum of ``pValue x CPA target`` over exposures.
        mean_bid, mean_pvalue, mean_least_winning_cost: averages over the advertiser's
            opportunities (0 where it had none); the least winning cost is AuctionNet's (see
            :class:`ImpressionLog`).
        budget_left: remaining budget after the tick.
        market: market-level statistics.
        log: per-impression log when requested, else ``None``.
    """

    tick: int
    multipliers: np.ndarray
    opportunities: np.ndarray
    wins: np.ndarray
    exposures: np.ndarray
    conversions: np.ndarray
    spend: np.ndarray
    value_won: np.ndarray
    mean_bid: np.ndarray
    mean_pvalue: np.ndarray
    mean_least_winning_cost: np.ndarray
    budget_left: np.ndarray
    market: MarketTickStats
    log: ImpressionLog | None = None


@dataclass(frozen=True, eq=False)
class TickValues:
    """The upcoming tick's traffic as seen by selected advertisers (``n`` impressions, ``k`` advertisers).

    Attributes:
        advertiser_ids: ``(k,)`` the advertisers, in column order.
        pvalues, sigmas: ``(n, k)`` each advertiser's pValue and its uncertainty per impression.
        is_candidate: ``(n, k)`` whether the advertiser contests the impression.
    """

    advertiser_ids: np.ndarray
    pvalues: np.ndarray
    sigmas: np.ndarray
    is_candidate: np.ndarray


def _safe_mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


class Market:
    """One ad market: configuration, advertisers and the state of the current episode.

    Args:
        config: the auction house and traffic model.
        population: the advertisers.
        traffic: optional per-impression pValues to use instead of the generative model.
        record_history: keep every :class:`TickResult` of the episode in :attr:`history`
            (turn off for very large populations to save memory).
        score_exponent: exponent of the CPA penalty in the score (2 as in AuctionNet).
    """

    def __init__(
        self,
        config: MarketConfig,
        population: Population,
        traffic: ExplicitTraffic | None = None,
        *,
        record_history: bool = True,
        score_exponent: float = 2.0,
    ) -> None:
        if not isinstance(config, MarketConfig):
            raise ConfigError(f"config must be a MarketConfig, got {describe(config)}")
        if not isinstance(population, Population):
            raise ConfigError(f"population must be a Population, got {describe(population)}")
        if traffic is not None and not isinstance(traffic, ExplicitTraffic):
            raise ConfigError(f"traffic must be an ExplicitTraffic or None, got {describe(traffic)}")
        candidates = config.candidates_per_impression
        if candidates is not None and candidates > len(population):
            raise ConfigError(
                f"candidates_per_impression={candidates} exceeds the population's {len(population)} advertisers"
            )
        if traffic is not None:
            # Check shapes against this market now rather than at the first reset.
            generate_episode_traffic(config, population, config.seed, 0, traffic)
        self._config = config
        self._population = population
        self._explicit = traffic
        self._record_history = bool(record_history)
        self._score_exponent = check_number("score_exponent", score_exponent, low=0.0)
        # Bids above this could overflow the episode's sums of squared least winning costs
        # (at most impressions x bid^2) and bid sums; refuse them rather than play with inf.
        self._max_bid = math.sqrt(np.finfo(np.float64).max / (config.impressions_per_episode * (config.n_slots + 1)))
        self._slot_exposure = np.asarray(config.slot_exposure, dtype=np.float64)
        self._ids_sorted_order = np.argsort(population.ids, kind="stable")
        # The mechanism: a built-in's code for the cached kernel, or a plugged-in function for
        # its twin, with the per-advertiser data the plugged-in one reads.
        if isinstance(config.mechanism, Mechanism):
            self._mechanism_code, self._plugged, self._run_tick = config.mechanism.code, None, kernel.run_tick
            mechanism_data = np.zeros((0, len(population)))
        else:
            self._mechanism_code = -1
            self._plugged = kernel.plugged_mechanism(config.mechanism.function)
            self._run_tick = kernel.run_tick if isinstance(self._plugged, kernel.PythonMechanism) else kernel.run_tick_plugged
            mechanism_data = config.mechanism.data_for(population)
        self._advertisers = Advertisers(
            population.ids, population.categories, population.cpa_targets, np.zeros(len(population), dtype=np.uint64),
            mechanism_data,
        )
        self._traffic: EpisodeTraffic | None = None
        self._house: kernel.House | None = None  # the episode's auction rules
        self._retrieval: kernel.Retrieval | None = None
        self._kernel_tables: kernel.Tables | None = None  # the episode's working tables
        self._seed: int | None = None
        self._episode = -1
        self._tick = 0
        self._budget_left = population.budgets.astype(np.float64)
        self._totals = np.zeros((kernel.N_OUTPUTS, len(population)))
        self._history: list[TickResult] = []

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_preset(cls, name: str, **overrides: object) -> "Market":
        """A market from a named preset (see :func:`auctionsim.presets.names`).

        Keyword overrides replace fields of the preset's :class:`MarketConfig`, e.g.
        ``Market.from_preset("auctionnet", mechanism="fpa", impressions_per_episode=100_000)``.
        """
        from auctionsim.presets import get

        scenario = get(name, **overrides)
        return cls(scenario.market, scenario.population)

    # ------------------------------------------------------------------ properties
    @property
    def config(self) -> MarketConfig:
        return self._config

    @property
    def population(self) -> Population:
        return self._population

    @property
    def n_advertisers(self) -> int:
        return len(self._population)

    @property
    def n_ticks(self) -> int:
        return self._config.n_ticks

    @property
    def tick(self) -> int:
        """Index of the next tick to play (0 after reset, ``n_ticks`` when the episode is over)."""
        return self._tick

    @property
    def done(self) -> bool:
        """Whether the episode has ended (all ticks played)."""
        return self._traffic is not None and self._tick >= self._config.n_ticks

    @property
    def seed(self) -> int | None:
        return self._seed

    @property
    def episode(self) -> int:
        """Episode counter since the last seeded reset (keys the episode's random draws)."""
        return self._episode

    @property
    def traffic(self) -> EpisodeTraffic:
        """The current episode's traffic parameters."""
        self._require_reset()
        return self._traffic  # type: ignore[return-value]

    @property
    def budget_left(self) -> np.ndarray:
        """Remaining budget per advertiser (a copy)."""
        return self._budget_left.copy()

    @property
    def impressions_next_tick(self) -> int:
        """Number of impressions in the next tick (0 when the episode is over)."""
        if self.done:
            return 0
        starts = self.traffic.tick_starts
        return int(starts[self._tick + 1] - starts[self._tick])

    @property
    def max_bid(self) -> float:
        """Largest bid the market accepts (currency): ``sqrt(float max / (impressions x (slots + 1)))``,
        about 3e150 for AuctionNet, so that no episode sum can overflow. A multiplier ``m`` of an
        advertiser with CPA target ``c`` bids at most ``m x c``."""
        return self._max_bid

    @property
    def budget_floor(self) -> float:
        """An advertiser with less budget left than this no longer bids (currency)."""
        return max(self._config.reserve_price, self._config.min_budget_to_bid)

    def mean_pvalue_next_tick(self) -> np.ndarray:
        """``(N,)`` each advertiser's mean pValue per impression in the next tick, as the traffic
        model sets it (the normal's mean before clipping; the column mean for explicit traffic).
        Zeros once the episode is over."""
        if self.done:
            return np.zeros(self.n_advertisers)
        traffic = self.traffic
        if self._explicit is None:
            return traffic.pvalue_mean[self._tick].copy()
        first, stop = traffic.tick_starts[self._tick], traffic.tick_starts[self._tick + 1]
        rows = self._explicit.pvalues[first:stop]
        return rows.mean(axis=0) if rows.shape[0] else np.zeros(self.n_advertisers)

    @property
    def history(self) -> tuple[TickResult, ...]:
        """This episode's tick results so far (empty when ``record_history`` is off)."""
        return tuple(self._history)

    def totals(self) -> dict[str, np.ndarray]:
        """Per-advertiser totals of the episode so far (copies), by name."""
        return {
            "opportunities": self._totals[kernel.OUT_OPPORTUNITIES].copy(),
            "wins": self._totals[kernel.OUT_WINS].copy(),
            "exposures": self._totals[kernel.OUT_EXPOSURES].copy(),
            "conversions": self._totals[kernel.OUT_CONVERSIONS].copy(),
            "spend": self._totals[kernel.OUT_SPEND].copy(),
            "value_won": self._totals[kernel.OUT_VALUE_WON].copy(),
            "bid_sum": self._totals[kernel.OUT_BID_SUM].copy(),
            "pvalue_sum": self._totals[kernel.OUT_PVALUE_SUM].copy(),
            "least_winning_cost_sum": self._totals[kernel.OUT_LEAST_WINNING_COST_SUM].copy(),
        }

    # ------------------------------------------------------------------ episode control
    def reset(self, seed: int | None = None) -> None:
        """Start a new episode.

        With ``seed``, the episode counter restarts at 0 under that seed; without, the next
        episode under the current seed (the config's seed on the very first reset). Episode
        ``(seed, e)`` is always the same episode.
        """
        if seed is not None:
            new_seed, new_episode = check_seed("seed", seed), 0
        elif self._seed is None:
            new_seed, new_episode = self._config.seed, 0
        else:
            new_seed, new_episode = self._seed, self._episode + 1
        traffic = generate_episode_traffic(self._config, self._population, new_seed, new_episode, self._explicit)
        config = self._config
        self._traffic = traffic
        self._house = kernel.House(
            self._mechanism_code, self._slot_exposure, config.exposure_model.code, float(config.reserve_price), float(self.budget_floor),
            traffic.exposure_key, float(config.traffic.sigma_ratio_cap),
        )
        self._retrieval = kernel.Retrieval(
            config.candidates_per_impression or 0, float(config.candidate_own_category_share), traffic.candidates_key,
            traffic.retrieval,
        )
        self._kernel_tables = kernel.new_tables(self._retrieval, traffic.keys)
        self._advertisers = self._advertisers._replace(tie_keys=traffic.keys[KEY_TIE_BREAK])
        self._seed, self._episode = new_seed, new_episode
        self._tick = 0
        self._budget_left = self._population.budgets.astype(np.float64)
        self._totals[:] = 0.0
        self._history = []

    def _require_reset(self) -> None:
        if self._traffic is None:
            raise EpisodeOverError("the market has not been reset; call reset() before step()")

    def _require_running(self) -> None:
        self._require_reset()
        if self.done:
            raise EpisodeOverError(f"the episode is over after {self._config.n_ticks} ticks; call reset()")

    # ------------------------------------------------------------------ validation
    def validate_multipliers(self, multipliers: object) -> np.ndarray:
        """Check bid multipliers: ``(N,)``, numeric, finite, ``>= 0``, and bids (multiplier x CPA
        target) at most :attr:`max_bid`. Returns a float64 copy."""
        array = as_numeric_array("multipliers", multipliers)
        if array.shape != (self.n_advertisers,):
            raise ActionError(f"multipliers must have shape ({self.n_advertisers},), got {array.shape}")
        bad = ~np.isfinite(array) | (array < 0)
        if bad.any():
            index = int(np.argmax(bad))
            raise ActionError(
                f"multipliers must be finite and >= 0, got multipliers[{index}]={array[index]} "
                f"(advertiser id {int(self._population.ids[index])})"
            )
        too_high = array > self._max_bid / self._population.cpa_targets
        if too_high.any():
            index = int(np.argmax(too_high))
            raise ActionError(
                f"multipliers[{index}]={array[index]} (advertiser id {int(self._population.ids[index])}) bids more than "
                f"the market's max_bid {self._max_bid:.3g} (multiplier x CPA target {self._population.cpa_targets[index]:.6g})"
            )
        return array

    def validate_impression_bids(self, impression_bids: Mapping[int, object]) -> tuple[np.ndarray, np.ndarray]:
        """Check explicit bids for the next tick (``{advertiser id: (n,) bids}``, finite, ``>= 0``
        and at most :attr:`max_bid`). Returns (bid column per advertiser position, ``(n, k)`` bid
        matrix)."""
        self._require_running()
        n_impressions = self.impressions_next_tick
        if not isinstance(impression_bids, Mapping):
            raise ActionTypeError(f"impression_bids must map advertiser id -> bids, got {describe(impression_bids)}")
        advertiser_ids = as_ids("impression_bids keys (advertiser ids)", list(impression_bids), error=ActionError)
        if advertiser_ids.shape != (len(impression_bids),):
            raise ActionError(f"impression_bids keys must be advertiser ids, got {describe(list(impression_bids))}")
        columns = np.full(self.n_advertisers, -1, dtype=np.int64)
        matrix = np.empty((n_impressions, len(impression_bids)), dtype=np.float64)
        for column, (advertiser_id, bids) in enumerate(zip(advertiser_ids.tolist(), impression_bids.values())):
            try:
                position = int(self._population.positions_of([advertiser_id])[0])
            except ConfigError:
                raise ActionError(f"impression_bids names unknown advertiser id {advertiser_id}") from None
            array = as_numeric_array(f"impression_bids[{advertiser_id}]", bids)
            if array.shape != (n_impressions,):
                raise ActionError(
                    f"impression_bids[{advertiser_id}] must have shape ({n_impressions},) (this tick's "
                    f"impressions), got {array.shape}"
                )
            bad = ~np.isfinite(array) | (array < 0) | (array > self._max_bid)
            if bad.any():
                index = int(np.argmax(bad))
                raise ActionError(
                    f"impression_bids[{advertiser_id}] must be finite, >= 0 and <= max_bid {self._max_bid:.3g}, "
                    f"got [{index}]={array[index]}"
                )
            columns[position] = column
            matrix[:, column] = array
        return columns, matrix

    # ------------------------------------------------------------------ stepping
    def _tick_params(self, multipliers: np.ndarray, tick: int | None = None) -> np.ndarray:
        traffic = self.traffic
        tick = self._tick if tick is None else tick
        params = np.empty((kernel.N_PARAMS, self.n_advertisers))
        params[kernel.PARAM_BID_SCALE] = multipliers * self._population.cpa_targets
        params[kernel.PARAM_CPA_TARGET] = self._population.cpa_targets
        params[kernel.PARAM_PVALUE_MEAN] = traffic.pvalue_mean[tick]
        params[kernel.PARAM_PVALUE_STD] = traffic.pvalue_std[tick]
        params[kernel.PARAM_SIGMA_RATIO] = traffic.sigma_ratio_mean
        params[kernel.PARAM_TRUNCATION_CDF_LOW] = traffic.truncation_cdf_low
        params[kernel.PARAM_TRUNCATION_CDF_WIDTH] = traffic.truncation_cdf_width
        return params

    def step(
        self,
        multipliers: object,
        *,
        impression_bids: Mapping[int, object] | None = None,
        log_impressions: bool = False,
    ) -> TickResult:
        """Play the next tick.

        Args:
            multipliers: ``(N,)`` bid multipliers, finite and ``>= 0``; advertiser ``i`` bids
                ``multipliers[i] x cpa_target[i] x pValue`` on each impression it contests.
            impression_bids: optional ``{advertiser id: (n,) bids}`` for this tick's ``n``
                impressions (see :attr:`impressions_next_tick`); these advertisers bid exactly
                that (currency) and their multiplier is ignored.
            log_impressions: also return the per-impression :class:`ImpressionLog`.

        Raises:
            ActionError, ActionTypeError: invalid input (the market is left unchanged).
            EpisodeOverError: the episode has ended or the market was never reset.
        """
        self._require_running()
        multipliers = self.validate_multipliers(multipliers)
        traffic = self.traffic
        first = int(traffic.tick_starts[self._tick])
        n_impressions = int(traffic.tick_starts[self._tick + 1]) - first
        if impression_bids is not None:
            bid_columns, explicit_bids = self.validate_impression_bids(impression_bids)
        else:
            bid_columns, explicit_bids = np.full(self.n_advertisers, -1, dtype=np.int64), _EMPTY_FLOAT_2D
        if self._explicit is not None:
            explicit_pvalues = self._explicit.pvalues[first : first + n_impressions]
            explicit_sigmas = self._explicit.sigmas[first : first + n_impressions]
        else:
            explicit_pvalues = explicit_sigmas = _EMPTY_FLOAT_2D

        n_slots = self._config.n_slots
        log_rows = n_impressions if log_impressions else 0
        tick_log = kernel.TickLog(
            winners=np.empty((log_rows, n_slots), dtype=np.int64),
            prices=np.empty((log_rows, n_slots)),
            exposed=np.empty((log_rows, n_slots), dtype=np.bool_),
            converted=np.empty((log_rows, n_slots), dtype=np.bool_),
            least_winning_cost=np.empty(log_rows),
            top_bid=np.empty(log_rows),
            ranked_bids=np.empty((log_rows, n_slots + 1)),
            ranked_bidders=np.empty((log_rows, n_slots + 1), dtype=np.int64),
            slots_seen=np.empty(log_rows, dtype=np.int64),
        )
        outputs = kernel.Outputs(np.zeros((kernel.N_OUTPUTS, self.n_advertisers)), np.zeros(kernel.N_MARKET))
        try:
            self._run_tick(
                first,
                n_impressions,
                self._house,
                self._plugged,
                self._retrieval,
                self._kernel_tables,
                self._advertisers,
                self._tick_params(multipliers),
                kernel.ExplicitInputs(explicit_pvalues, explicit_sigmas, bid_columns, explicit_bids),
                self._budget_left,
                outputs,
                tick_log,
            )
        except Exception as error:
            # Only a plugged-in mechanism can fail mid-tick. Budgets and totals are untouched
            # (the kernel writes them back at the end of a tick); the working tables are
            # rebuilt, so the market stays exactly as it was before this step.
            self._kernel_tables = kernel.new_tables(self._retrieval, self.traffic.keys)
            if isinstance(error, ValueError) and not isinstance(error, AuctionSimError):
                head, *values = error.args or ("failed",)
                detail = f"{head} {', '.join(str(v) for v in values)}" if values else str(head)
                raise MechanismError(f"mechanism {self._config.mechanism.value!r} {detail}") from None
            raise
        out_advertisers, out_market = outputs
        log_winners, log_ranked_bids, log_ranked_bidders = tick_log.winners, tick_log.ranked_bids, tick_log.ranked_bidders
        self._totals += out_advertisers

        log = None
        if log_impressions:
            ids = self._population.ids
            winner_ids = np.where(log_winners >= 0, ids[np.maximum(log_winners, 0)], -1)
            log = ImpressionLog(
                impression=np.arange(first, first + n_impressions, dtype=np.int64),
                winners=winner_ids,
                prices=tick_log.prices,
                exposed=tick_log.exposed,
                converted=tick_log.converted,
                least_winning_cost=tick_log.least_winning_cost,
                lowest_winning_bid=np.where(
                    log_winners[:, n_slots - 1] >= 0, log_ranked_bids[:, n_slots - 1], self._config.reserve_price
                ),
                top_bid=tick_log.top_bid,
                ranked_bids=log_ranked_bids,
                ranked_bidders=np.where(log_ranked_bidders >= 0, ids[np.maximum(log_ranked_bidders, 0)], -1),
                slots_seen=tick_log.slots_seen,
            )
        result = self._tick_result(multipliers, out_advertisers, out_market, log)
        if self._record_history:
            self._history.append(result)
        self._tick += 1
        return result

    def _tick_result(
        self, multipliers: np.ndarray, out: np.ndarray, market: np.ndarray, log: ImpressionLog | None
    ) -> TickResult:
        n_impressions = market[kernel.MARKET_IMPRESSIONS]
        opportunities = out[kernel.OUT_OPPORTUNITIES]
        lwc_mean = market[kernel.MARKET_LEAST_WINNING_COST_SUM] / n_impressions if n_impressions else 0.0
        lwc_variance = (
            market[kernel.MARKET_LEAST_WINNING_COST_SQUARE_SUM] / n_impressions - lwc_mean**2 if n_impressions else 0.0
        )
        stats = MarketTickStats(
            n_impressions=int(n_impressions),
            n_sold=int(market[kernel.MARKET_SOLD]),
            revenue=float(market[kernel.MARKET_REVENUE]),
            social_welfare=exact_total(out[kernel.OUT_VALUE_WON]),
            conversions=int(market[kernel.MARKET_CONVERSIONS]),
            exposed_slots=int(market[kernel.MARKET_EXPOSED_SLOTS]),
            budget_exclusions=int(market[kernel.MARKET_BUDGET_EXCLUSIONS]),
            least_winning_cost_mean=float(lwc_mean),
            least_winning_cost_std=float(np.sqrt(max(lwc_variance, 0.0))),
            least_winning_cost_min=float(market[kernel.MARKET_LEAST_WINNING_COST_MIN]),
            least_winning_cost_max=float(market[kernel.MARKET_LEAST_WINNING_COST_MAX]),
            top_bid_mean=float(market[kernel.MARKET_TOP_BID_SUM] / n_impressions) if n_impressions else 0.0,
        )
        return TickResult(
            tick=self._tick,
            multipliers=multipliers,
            opportunities=opportunities.astype(np.int64),
            wins=out[kernel.OUT_WINS].astype(np.int64),
            exposures=out[kernel.OUT_EXPOSURES].astype(np.int64),
            conversions=out[kernel.OUT_CONVERSIONS].astype(np.int64),
            spend=out[kernel.OUT_SPEND].copy(),
            value_won=out[kernel.OUT_VALUE_WON].copy(),
            mean_bid=_safe_mean(out[kernel.OUT_BID_SUM], opportunities),
            mean_pvalue=_safe_mean(out[kernel.OUT_PVALUE_SUM], opportunities),
            mean_least_winning_cost=_safe_mean(out[kernel.OUT_LEAST_WINNING_COST_SUM], opportunities),
            budget_left=self._budget_left.copy(),
            market=stats,
            log=log,
        )

    def tick_values(self, advertiser_ids: object = None, tick: int | None = None) -> TickValues:
        """pValues, sigmas and candidacy of a tick's impressions for some advertisers.

        Args:
            advertiser_ids: ids to report (default: all, in population order).
            tick: any tick of the current episode (default: the next one). Past ticks give
                exactly the values their auctions used, e.g. for hindsight analysis.
        """
        if tick is None:
            self._require_running()
            tick = self._tick
        else:
            self._require_reset()
            tick = check_int("tick", tick, low=0, high=self.n_ticks - 1, error=ActionError)
        if advertiser_ids is None:
            positions = np.arange(self.n_advertisers, dtype=np.int64)
        else:
            try:
                positions = self._population.positions_of(advertiser_ids)
            except ConfigError as error:
                raise ActionError(str(error)) from None
        traffic = self.traffic
        first = int(traffic.tick_starts[tick])
        n_impressions = int(traffic.tick_starts[tick + 1]) - first
        pvalues = np.empty((n_impressions, positions.shape[0]))
        sigmas = np.empty((n_impressions, positions.shape[0]))
        is_candidate = np.empty((n_impressions, positions.shape[0]), dtype=np.bool_)
        kernel.tick_values(
            first,
            n_impressions,
            positions,
            self._retrieval,
            self._tick_params(np.zeros(self.n_advertisers), tick),
            traffic.keys,
            self._config.traffic.sigma_ratio_cap,
            pvalues,
            sigmas,
            is_candidate,
        )
        if self._explicit is not None:
            pvalues = np.ascontiguousarray(self._explicit.pvalues[first : first + n_impressions][:, positions])
            sigmas = np.ascontiguousarray(self._explicit.sigmas[first : first + n_impressions][:, positions])
        return TickValues(
            advertiser_ids=self._population.ids[positions].copy(),
            pvalues=pvalues,
            sigmas=sigmas,
            is_candidate=is_candidate,
        )

    # ------------------------------------------------------------------ results
    def episode_metrics(self) -> EpisodeMetrics:
        """Metrics of the episode so far (per advertiser and market totals)."""
        self._require_reset()
        totals = self._totals.copy()  # the metrics must not alias the live totals (reset zeroes them)
        return EpisodeMetrics.from_totals(
            ids=self._population.ids.copy(),
            conversions=totals[kernel.OUT_CONVERSIONS],
            spend=totals[kernel.OUT_SPEND],
            value_won=totals[kernel.OUT_VALUE_WON],
            wins=totals[kernel.OUT_WINS],
            exposures=totals[kernel.OUT_EXPOSURES],
            budget=self._population.budgets,
            cpa_target=self._population.cpa_targets,
            score_exponent=self._score_exponent,
        )

    def run_episode(self, multipliers: object, seed: int | None = None) -> EpisodeMetrics:
        """Reset and play every tick with the same multipliers; return the episode's metrics."""
        multipliers = self.validate_multipliers(multipliers)  # before the reset: a rejected call changes nothing
        self.reset(seed)
        while not self.done:
            self.step(multipliers)
        return self.episode_metrics()


def warm_up() -> float:
    """Compile (or load from Numba's cache) every kernel on a tiny market; returns seconds taken.

    Call once per process before timing anything: the first call of a jitted kernel pays its
    compilation (several seconds) or cache load.
    """
    start = time.perf_counter()
    population = Population(ids=[0, 1, 2, 3], budgets=[5.0] * 4, cpa_targets=[50.0] * 4, categories=[0, 0, 1, 1])
    for candidates in (None, 2):
        config = MarketConfig(n_ticks=2, impressions_per_episode=200, candidates_per_impression=candidates)
        market = Market(config, population)
        market.reset(seed=0)
        market.tick_values([0])
        market.step(np.ones(4), log_impressions=True)
        market.step(np.ones(4), impression_bids={0: np.full(market.impressions_next_tick, 0.1)})
    explicit = ExplicitTraffic(pvalues=np.full((10, 4), 0.01), impressions_per_tick=np.array([5, 5]))
    Market(MarketConfig(n_ticks=2, impressions_per_episode=10), population, explicit).run_episode(np.ones(4))
    return time.perf_counter() - start
