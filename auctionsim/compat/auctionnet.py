"""AuctionNet compatibility: its strategies as bidders, its logged-data format read and written.

AuctionNet (Su et al., NeurIPS 2024 Datasets and Benchmarks) is the public auto-bidding
benchmark our ``auctionnet`` preset reproduces. Two things carry over unchanged:

**Strategies.** Any object with AuctionNet's ``BaseBiddingStrategy`` interface (``reset()``,
``bidding(timeStepIndex, pValues, pValueSigmas, historyPValueInfo, historyBid,
historyAuctionResult, historyImpressionResult, historyLeastWinningCost) -> bids`` and the
attributes ``budget``, ``remaining_budget``, ``cpa``, ``category``) bids through
:class:`AuctionNetPolicy`, a :class:`~auctionsim.envs.policy.PopulationPolicy` that bids per
impression: it serves :func:`~auctionsim.envs.play_episode`, both environments (as the
population, or as the focal bidder of :func:`agents.evaluation.play_focal`) and the
exploitability tools (as the population). It drives each strategy as AuctionNet's evaluation
runner (``run/run_test.py``) does:

* at the start of an episode the strategy's ``budget``, ``cpa`` (the CPA target) and
  ``category`` are set, ``remaining_budget`` is set to the budget and ``reset()`` is called;
* each tick ``t``, a strategy whose ``remaining_budget`` is at least the market's budget floor
  (AuctionNet's ``min_remaining_budget``) is called with the tick's ``pValues`` and
  ``pValueSigmas`` (``(n,)``, its own column) and the history of the ticks before (lists with
  one array per past tick, oldest first; fresh lists each call):

  ===========================  ==========  ====================================================
  argument                     entry       columns
  ===========================  ==========  ====================================================
  historyPValueInfo            (n, 2) f8   pValue, sigma
  historyBid                   (n,) f8     its bid (0 in ticks it did not bid)
  historyAuctionResult         (n, 3) f8   won (0/1), slot (1-based, 0 if none), price of
                                           the slot (charged only if exposed)
  historyImpressionResult      (n, 2) i8   exposed (0/1), converted (0/1)
  historyLeastWinningCost      (n,) f8     the impression's least winning cost
  ===========================  ==========  ====================================================

  a strategy below the floor bids 0 without being called; negative bids are set to 0 (as
  AuctionNet's runner does); NaN, infinite or wrongly shaped bids raise ``ActionError``;
* after the tick ``remaining_budget`` is decreased by what it paid.

Differences: AuctionNet's advertisers contest every impression; in a market with
``candidates_per_impression = K`` a strategy sees (and its history holds) only the impressions
it contests. A budget overrun is settled per impression by our market (the winner that cannot
pay leaves the auction) instead of AuctionNet's drop-and-re-run of the tick, and a slot priced
at the reserve is sold (AuctionNet reports it unsold: won 0, slot 0, cost 0). Memory: the
history grows to 64 bytes per impression per strategy (its 8 columns), as in AuctionNet's own
runner: a full AuctionNet day with 48 strategies holds about 1.5 GB. Each episode builds the
strategies afresh, so that a market episode depends on its seed alone (the evaluation tools
replay episodes on common random numbers); AuctionNet's runner keeps its objects over episodes
and only calls ``reset()``, so state that ``reset()`` leaves alone carries over there (its PID
strategy's ``last_remaining_budget``: its first update of a day then differs only if the day
before left more unspent than remains after tick 0). To keep objects across episodes as
AuctionNet does, pass a callable returning the same object for an advertiser each time.

**Logged data.** AuctionNet's training data has one row per advertiser x impression with 18
columns (:data:`COLUMNS`, documented in its ``pre_generated_dataset/readme_dataset.md``), rows
ordered by period, tick, impression and advertiser. :func:`log_episodes` plays episodes and
writes them in that format (CSV or Parquet, chosen by the file's suffix; one row per advertiser
and impression it contested), :func:`read_log` reads such a file (AuctionNet's or ours) into
NumPy columns, and :func:`agents.datasets.dataset_from_auctionnet` turns it into an
:class:`~agents.datasets.OfflineDataset` for the offline learners (BC, IQL, CQL, DT, PE-MORL,
LBM). Needs ``pyarrow``.

Least winning cost: AuctionNet's, the impression's 4th-highest bid floored at the reserve (the
price of its last slot, ``market_prices[:, -1]``), which is what the market logs;
:func:`least_winning_cost` is the one place both the strategies' history and the written logs
take it from.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from auctionsim.config import MarketConfig
from auctionsim.envs.parallel import AuctionParallelEnv
from auctionsim.envs.policy import AdvertiserSpec, PolicyContext, PopulationPolicy, TickFeedback, impression_outcomes
from auctionsim.envs.rollout import EpisodeRecord, play_episode
from auctionsim.errors import ActionError, ConfigError, describe
from auctionsim.market import ImpressionLog, TickValues
from auctionsim.runs import atomic_write
from auctionsim.validation import check_int

__all__ = [
    "AuctionNetPolicy",
    "COLUMNS",
    "INTEGER_COLUMNS",
    "episode_tables",
    "exploration_seed",
    "least_winning_cost",
    "log_episodes",
    "read_log",
    "write_log",
]

#: AuctionNet's logged-data columns, in its order (``readme_dataset.md``: c1 ... c18).
COLUMNS = (
    "deliveryPeriodIndex",  # episode index
    "advertiserNumber",  # advertiser id
    "advertiserCategoryIndex",  # category
    "budget",  # budget of the period (currency)
    "CPAConstraint",  # CPA target (currency)
    "timeStepIndex",  # tick
    "remainingBudget",  # budget left before the tick
    "pvIndex",  # impression index in the period
    "pValue",  # conversion probability if exposed
    "pValueSigma",  # its uncertainty
    "bid",  # the advertiser's bid (currency)
    "xi",  # won a slot (0/1)
    "adSlot",  # slot won, 1-based, 0 if none
    "cost",  # price of the slot, paid only if exposed
    "isExposed",  # ad seen (0/1)
    "conversionAction",  # converted (0/1)
    "leastWinningCost",  # the impression's least winning cost
    "isEnd",  # last tick, or budget below the floor before the tick (0/1)
)
#: Columns holding integers (the others are float64).
INTEGER_COLUMNS = frozenset(
    ("deliveryPeriodIndex", "advertiserNumber", "advertiserCategoryIndex", "timeStepIndex", "pvIndex", "xi", "adSlot", "isExposed", "conversionAction", "isEnd")
)


def least_winning_cost(log: ImpressionLog, config: MarketConfig) -> np.ndarray:
    """``(n,)`` the least winning cost of each logged impression, as the strategies' history and
    the written logs report it: the market's
    :attr:`~auctionsim.market.ImpressionLog.least_winning_cost`, which is AuctionNet's (the
    ``(S + 1)``-th highest bid, the 4th with 3 slots, floored at the reserve) and agrees with
    the observations. This function is the one place the compatibility layer reads it."""
    return log.least_winning_cost


def _columns(dtype: type, *columns: np.ndarray) -> np.ndarray:
    """``(n, len(columns))`` array of ``dtype`` with the given columns (faster than ``np.stack``)."""
    array = np.empty((columns[0].shape[0], len(columns)), dtype=dtype)
    for index, column in enumerate(columns):
        array[:, index] = column
    return array


@dataclass
class _History:
    """One strategy's per-tick history lists, as AuctionNet's runner passes them."""

    pvalue_info: list = field(default_factory=list)
    bids: list = field(default_factory=list)
    auction_results: list = field(default_factory=list)
    impression_results: list = field(default_factory=list)
    least_winning_costs: list = field(default_factory=list)


class AuctionNetPolicy(PopulationPolicy):
    """AuctionNet strategies (one object per advertiser) as a per-impression population policy.

    Args:
        strategy: builds each advertiser's strategy at every reset: a class is called with no
            arguments (AuctionNet's strategies have keyword defaults), any other callable with
            the advertiser's :class:`~auctionsim.envs.policy.AdvertiserSpec`.

    Example::

        from auctionsim.compat.auctionnet import AuctionNetPolicy
        policy = AuctionNetPolicy(MyStrategy)           # MyStrategy(BaseBiddingStrategy)
        record = play_episode(AuctionParallelEnv("auctionnet"), policy, seed=0)
    """

    needs_impression_values = True
    bids_per_impression = True

    def __init__(self, strategy: Callable[..., Any]) -> None:
        if not callable(strategy):
            raise ConfigError(f"strategy must be a class or a callable building a strategy, got {describe(strategy)}")
        self._make = strategy
        self.strategies: list[Any] = []
        self._histories: list[_History] = []
        self._played: dict[int, np.ndarray] = {}
        self._tick = 0
        self._floor = 0.0
        self._config: MarketConfig | None = None

    def _build(self, spec: AdvertiserSpec) -> Any:
        strategy = self._make() if isinstance(self._make, type) else self._make(spec)
        if not (callable(getattr(strategy, "bidding", None)) and callable(getattr(strategy, "reset", None))):
            raise ConfigError(f"an AuctionNet strategy needs bidding(...) and reset() methods, got {describe(strategy)}")
        strategy.budget = spec.budget
        strategy.remaining_budget = spec.budget
        strategy.cpa = spec.cpa_target
        strategy.category = spec.category
        strategy.reset()
        return strategy

    def reset(self, context: PolicyContext) -> None:
        self.strategies = [self._build(context.advertiser_spec(row)) for row in range(len(context.population))]
        self._histories = [_History() for _ in self.strategies]
        self._played = {}
        self._tick = 0
        self._floor = context.budget_floor
        self._config = context.market

    def act(self, observations: np.ndarray) -> np.ndarray:
        """Multipliers are not used (every row bids per impression): zeros."""
        return np.zeros(len(self.strategies))

    def impression_bids(self, observations: np.ndarray, values: TickValues) -> dict[int, np.ndarray]:
        bids: dict[int, np.ndarray] = {}
        self._played = {}
        candidate = values.is_candidate
        everyone = bool(candidate.all())
        # Rows contiguous: slicing columns of (n, k) arrays row by row is slow.
        pvalue_rows, sigma_rows = np.ascontiguousarray(values.pvalues.T), np.ascontiguousarray(values.sigmas.T)
        for row, (strategy, history) in enumerate(zip(self.strategies, self._histories)):
            seen = slice(None) if everyone else candidate[:, row]
            n_own = candidate.shape[0] if everyone else int(seen.sum())
            own = np.zeros(n_own)
            if strategy.remaining_budget >= self._floor:
                output = strategy.bidding(
                    self._tick, pvalue_rows[row][seen], sigma_rows[row][seen], list(history.pvalue_info), list(history.bids),
                    list(history.auction_results), list(history.impression_results), list(history.least_winning_costs),
                )
                own = self._checked(output, n_own, strategy, int(values.advertiser_ids[row]))
            self._played[row] = own
            if everyone:
                bids[row] = own
            else:
                bids[row] = np.zeros(candidate.shape[0])
                bids[row][seen] = own
        return bids

    def _checked(self, output: object, n_own: int, strategy: Any, advertiser_id: int) -> np.ndarray:
        name = f"{type(strategy).__name__}.bidding (advertiser {advertiser_id}, tick {self._tick})"
        try:
            bids = np.asarray(output, dtype=np.float64).reshape(-1) if np.ndim(output) <= 1 else None
        except (TypeError, ValueError):
            bids = None
        if bids is None or bids.shape != (n_own,):
            raise ActionError(f"{name} must return one bid per impression ({n_own}), got {describe(output)}")
        if not np.isfinite(bids).all():
            raise ActionError(f"{name} returned a non-finite bid at [{int(np.argmax(~np.isfinite(bids)))}]")
        return np.maximum(bids, 0.0)  # AuctionNet's runner: bids[bids < 0] = 0

    def observe(self, feedback: TickFeedback) -> None:
        costs = least_winning_cost(feedback.impression_log, self._config)
        candidate = feedback.impression_candidate
        everyone = bool(candidate.all())
        for row, (strategy, history, record) in enumerate(zip(self.strategies, self._histories, feedback.impressions())):
            history.pvalue_info.append(_columns(np.float64, record.pvalues, record.sigmas))
            history.bids.append(self._played.get(row, np.zeros(record.pvalues.shape[0])))
            history.auction_results.append(_columns(np.float64, record.won, record.slot, record.price))
            history.impression_results.append(_columns(np.int64, record.exposed, record.converted))
            history.least_winning_costs.append(costs if everyone else costs[candidate[:, row]])
            strategy.remaining_budget = float(feedback.budget_left[row])
        self._played = {}
        self._tick += 1


# ---------------------------------------------------------------------------------- logged data
def episode_tables(env: AuctionParallelEnv, record: EpisodeRecord, delivery_period: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """The episode ``env`` has just played, in AuctionNet's logged-data format: one table (a dict
    of :data:`COLUMNS` arrays) per tick, one row per advertiser and impression it contested.

    Args:
        env: the env that played ``record`` (its market still in that episode: the per-impression
            pValues are recomputed from it).
        record: played with ``log_impressions=True`` (see :func:`~auctionsim.envs.play_episode`).
        delivery_period: the ``deliveryPeriodIndex`` to write.

    Bids are what each advertiser offered: ``multiplier x CPA target x pValue``, or its
    per-impression bids, 0 for advertisers that had finished.
    """
    market = env.market
    if any(tick.log is None for tick in record.ticks) or len(record.ticks) != market.n_ticks:
        raise ConfigError("episode_tables needs a whole episode played with log_impressions=True")
    same_episode = market.done and np.array_equal(market.budget_left, record.ticks[-1].budget_left)
    if not same_episode or record.seed is not None and (market.seed, market.episode) != (record.seed, 0):
        raise ConfigError("the env's market has moved on from this episode; convert each episode right after playing it")
    population, config = market.population, market.config
    ids, budgets, cpa_targets, categories = population.ids, population.budgets, population.cpa_targets, population.categories
    remaining = budgets.astype(np.float64)
    for tick, result in enumerate(record.ticks):
        log = result.log
        values = market.tick_values(tick=tick)
        bids = result.multipliers[None, :] * cpa_targets[None, :] * values.pvalues
        played = record.impression_bids[tick] if record.impression_bids else None
        for row, row_bids in (played or {}).items():
            bids[:, row] = row_bids
        bids[:, ~record.live[tick]] = 0.0
        slot, price, exposed, converted = impression_outcomes(log, ids)
        mask = values.is_candidate.reshape(-1)
        n_impressions = values.pvalues.shape[0]

        def per_advertiser(column: np.ndarray) -> np.ndarray:
            return np.tile(column, n_impressions)[mask]

        def per_impression(column: np.ndarray) -> np.ndarray:
            return np.repeat(column, ids.shape[0])[mask]

        is_end = np.full(ids.shape[0], tick == market.n_ticks - 1) | (remaining < market.budget_floor)
        yield {
            "deliveryPeriodIndex": np.full(int(mask.sum()), delivery_period, dtype=np.int64),
            "advertiserNumber": per_advertiser(ids.astype(np.int64)),
            "advertiserCategoryIndex": per_advertiser(categories.astype(np.int64)),
            "budget": per_advertiser(budgets.astype(np.float64)),
            "CPAConstraint": per_advertiser(cpa_targets.astype(np.float64)),
            "timeStepIndex": np.full(int(mask.sum()), tick, dtype=np.int64),
            "remainingBudget": per_advertiser(remaining),
            "pvIndex": per_impression(log.impression.astype(np.int64)),
            "pValue": values.pvalues.reshape(-1)[mask],
            "pValueSigma": values.sigmas.reshape(-1)[mask],
            "bid": bids.reshape(-1)[mask],
            "xi": (slot > 0).astype(np.int64).reshape(-1)[mask],
            "adSlot": slot.reshape(-1)[mask],
            "cost": price.reshape(-1)[mask],
            "isExposed": exposed.astype(np.int64).reshape(-1)[mask],
            "conversionAction": converted.astype(np.int64).reshape(-1)[mask],
            "leastWinningCost": per_impression(least_winning_cost(log, config)),
            "isEnd": per_advertiser(is_end.astype(np.int64)),
        }
        remaining = result.budget_left.astype(np.float64)


def _schema():
    import pyarrow as pa

    return pa.schema([(name, pa.int64() if name in INTEGER_COLUMNS else pa.float64()) for name in COLUMNS])


def _format(path: pathlib.Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ConfigError(f"an AuctionNet log is a .csv or .parquet file, got {str(path)!r}")
    return suffix[1:]


def write_log(path: str | os.PathLike, tables: Iterable[dict[str, np.ndarray]]) -> pathlib.Path:
    """Write tables of :data:`COLUMNS` (e.g. from :func:`episode_tables`) to one ``.csv`` or
    ``.parquet`` file, streamed table by table, atomically (:func:`auctionsim.runs.atomic_write`:
    a reader or a kill sees the previous file or the complete new one)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    kind = _format(pathlib.Path(path))
    schema = _schema()

    def write(temporary: pathlib.Path) -> None:
        writer = pa_csv.CSVWriter(temporary, schema) if kind == "csv" else pq.ParquetWriter(temporary, schema)
        with writer:
            for table in tables:
                missing = [name for name in COLUMNS if name not in table]
                if missing:
                    raise ConfigError(f"a log table lacks the column {missing[0]!r}")
                writer.write_table(pa.table({name: np.asarray(table[name]) for name in COLUMNS}, schema=schema))

    return atomic_write(path, write)


def read_log(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an AuctionNet-format ``.csv`` or ``.parquet`` file (AuctionNet's own or one written
    by :func:`write_log`) into :data:`COLUMNS` arrays (int64 or float64; other columns are
    ignored). Raises ``ConfigError`` naming a missing column."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    path = pathlib.Path(path)
    kind = _format(path)
    if not path.is_file():
        raise ConfigError(f"no such AuctionNet log: {str(path)!r}")
    table = pa_csv.read_csv(path) if kind == "csv" else pq.read_table(path)
    missing = [name for name in COLUMNS if name not in table.column_names]
    if missing:
        raise ConfigError(f"{path.name} is not an AuctionNet log: it lacks the column {missing[0]!r} (has {table.column_names})")
    columns = {}
    for name in COLUMNS:
        values = table.column(name).to_numpy()
        if name in INTEGER_COLUMNS:
            as_int = np.asarray(values).astype(np.int64)
            if not np.array_equal(as_int, values):  # AuctionNet's CSVs write integers as floats (1.0)
                raise ConfigError(f"column {name!r} of {path.name} must hold integers")
            values = as_int
        columns[name] = np.asarray(values, dtype=np.int64 if name in INTEGER_COLUMNS else np.float64)
    return columns


def log_episodes(
    env: AuctionParallelEnv,
    policy: PopulationPolicy,
    episodes: int,
    path: str | os.PathLike,
    seed: int = 0,
    action_noise: float = 0.0,
) -> pathlib.Path:
    """Play ``policy`` for every advertiser on market seeds ``seed, seed + 1, ...`` and write the
    episodes to ``path`` in AuctionNet's format (``deliveryPeriodIndex`` 0, 1, ...): the same
    episodes, exploration noise included, that :func:`agents.datasets.collect_dataset` logs with
    these arguments."""
    check_int("episodes", episodes, low=1)

    def tables() -> Iterator[dict[str, np.ndarray]]:
        for episode in range(int(episodes)):
            record = play_episode(
                env, policy, seed=seed + episode, action_noise=action_noise, noise_seed=exploration_seed(seed, episode), log_impressions=True
            )
            yield from episode_tables(env, record, episode)

    return write_log(path, tables())


def exploration_seed(seed: int, episode: int) -> int:
    """Seed of the exploration noise of episode ``episode`` of a log starting at market seed
    ``seed`` (shared by every logging function, so that the same arguments log the same data)."""
    return seed + 7919 * (episode + 1)
