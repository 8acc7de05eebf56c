"""Offline datasets: run a population for many episodes and save every advertiser's trajectory.

Schema (one ``.npz`` file; ``E`` episodes, ``T`` ticks, ``N`` advertisers, ``D`` features):

===================  =============  ===========================================================
array                shape, dtype   meaning
===================  =============  ===========================================================
observations         (E,T+1,N,D) f4 observation before each tick (and after the last)
actions              (E,T,N) f4     bid multiplier played (0 once the advertiser has finished)
rewards              (E,T,N) f4     reward of the tick (kind in ``metadata["reward"]``)
live                 (E,T+1,N) ?    advertiser still acting before the tick
terminated           (E,T,N) ?      budget ran out during the tick, or it was the day's last
truncated            (E,T,N) ?      live in the day's last tick (the time limit)
spend                (E,T,N) f8     money paid in the tick
value_won            (E,T,N) f8     value (pValue x CPA target) of exposed wins
conversions          (E,T,N) i4     realised conversions
wins, exposures,     (E,T,N) i4     slots won / seen, impressions contested
  opportunities
mean_bid,            (E,T,N) f8     averages over the tick's opportunities
  mean_pvalue,
  mean_least_winning_cost
budget_left          (E,T,N) f8     budget left after the tick
seeds                (E,) i8        market seed of each episode
advertiser_ids,      (N,)           the population (ids, budgets, CPA targets, categories)
  budgets, cpa_targets, categories
feature_names        (D,) str       observation columns (see auctionsim.envs.observations)
metadata             () str         JSON: preset/market config, policy, reward, noise, version
===================  =============  ===========================================================

Per-advertiser transitions ``(s, a, r, s', done)`` are ``observations[e, t, i]``,
``actions[e, t, i]``, ``rewards[e, t, i]``, ``observations[e, t + 1, i]`` and
``terminated | truncated``, for every ``(e, t, i)`` with ``live[e, t, i]``
(:meth:`OfflineDataset.transitions` flattens them). The global state of a tick (all local
states) and the joint action are ``observations[e, t]`` and ``actions[e, t]``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import pathlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

import auctionsim
from auctionsim.compat.auctionnet import COLUMNS, exploration_seed, read_log
from auctionsim.config import MarketConfig, Population, TrafficConfig
from auctionsim.envs import AuctionParallelEnv, EpisodeRecord, PopulationPolicy, play_episode
from auctionsim.envs.observations import ObservationBuilder, RewardTracker, feature_names
from auctionsim.errors import ConfigError, describe
from auctionsim.market import MarketTickStats, TickResult
from auctionsim.metrics import EpisodeMetrics
from auctionsim.runs import RunError, atomic_write, manifest_path, verify_manifest, write_manifest
from auctionsim.validation import check_choice, check_int, check_number

__all__ = [
    "OfflineDataset", "Transitions", "collect_dataset", "dataset_from_auctionnet", "dataset_from_records", "save_shard", "load_shards", "play_shard", "EPISODE_FIELDS",
]

_TICK_FIELDS = {
    "spend": np.float64,
    "value_won": np.float64,
    "conversions": np.int32,
    "wins": np.int32,
    "exposures": np.int32,
    "opportunities": np.int32,
    "mean_bid": np.float64,
    "mean_pvalue": np.float64,
    "mean_least_winning_cost": np.float64,
    "budget_left": np.float64,
}


@dataclass(frozen=True, eq=False)
class Transitions:
    """Flat per-advertiser transitions (``M`` rows), e.g. for offline RL."""

    observations: np.ndarray  # (M, D) float32
    actions: np.ndarray  # (M,) float32
    rewards: np.ndarray  # (M,) float32
    next_observations: np.ndarray  # (M, D) float32
    dones: np.ndarray  # (M,) bool
    episode: np.ndarray  # (M,) int
    tick: np.ndarray  # (M,) int
    advertiser: np.ndarray  # (M,) int: row in the population


@dataclass(frozen=True, eq=False)
class OfflineDataset:
    """Logged episodes in the schema above (arrays as attributes)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    live: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    spend: np.ndarray
    value_won: np.ndarray
    conversions: np.ndarray
    wins: np.ndarray
    exposures: np.ndarray
    opportunities: np.ndarray
    mean_bid: np.ndarray
    mean_pvalue: np.ndarray
    mean_least_winning_cost: np.ndarray
    budget_left: np.ndarray
    seeds: np.ndarray
    advertiser_ids: np.ndarray
    budgets: np.ndarray
    cpa_targets: np.ndarray
    categories: np.ndarray
    feature_names: np.ndarray
    metadata: dict

    @property
    def n_episodes(self) -> int:
        return int(self.actions.shape[0])

    def save(self, path: str | pathlib.Path) -> pathlib.Path:
        """Write a compressed ``.npz`` file atomically: a reader (or a kill) sees the previous
        file or the complete new one, never a part (:func:`auctionsim.runs.atomic_write`)."""
        arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "metadata"}
        return atomic_write(path, lambda temporary: np.savez_compressed(temporary, metadata=np.array(json.dumps(self.metadata)), **arrays), suffix=".npz")

    @classmethod
    def load(cls, path: str | pathlib.Path) -> "OfflineDataset":
        """Read a file written by :meth:`save`. Never unpickles (``allow_pickle=False``): a file
        holding Python objects is refused with a :class:`ConfigError`, its code never run."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except ValueError as error:
            raise ConfigError(f"{path} is not a plain-array dataset ({error}); refusing to unpickle it") from None
        metadata = json.loads(str(arrays.pop("metadata")))
        return cls(metadata=metadata, **arrays)

    def episode(self, index: int) -> dict[str, np.ndarray]:
        """The per-episode arrays of episode ``index`` (one episode of a checkpoint shard, :func:`save_shard`)."""
        return {name: getattr(self, name)[index] for name in EPISODE_FIELDS} | {"seeds": self.seeds[index]}

    def transitions(self) -> Transitions:
        """Every live advertiser-tick as one ``(s, a, r, s', done)`` row."""
        episode, tick, advertiser = np.nonzero(self.live[:, :-1])
        return Transitions(
            observations=self.observations[episode, tick, advertiser],
            actions=self.actions[episode, tick, advertiser],
            rewards=self.rewards[episode, tick, advertiser],
            next_observations=self.observations[episode, tick + 1, advertiser],
            dones=(self.terminated | self.truncated)[episode, tick, advertiser],
            episode=episode,
            tick=tick,
            advertiser=advertiser,
        )


EPISODE_FIELDS = ("observations", "actions", "rewards", "live", "terminated", "truncated", *_TICK_FIELDS)


def _episode_arrays(record, seed: int) -> dict[str, np.ndarray]:
    """One played episode in the dataset's dtypes (the ``E`` axis dropped)."""
    arrays = {
        "observations": np.asarray(record.observations, dtype=np.float32),
        "actions": np.asarray(record.actions, dtype=np.float32),
        "rewards": np.asarray(record.rewards, dtype=np.float32),
        "live": np.asarray(record.live),
        "terminated": np.asarray(record.terminated),
        "truncated": np.asarray(record.truncated),
        "seeds": np.int64(seed),
    }
    for name, dtype in _TICK_FIELDS.items():
        arrays[name] = np.array([getattr(tick, name) for tick in record.ticks], dtype=dtype)
    return arrays


SHARD_PATTERN = "episodes-*-*.npz"


def _shard_file(folder: pathlib.Path, first: int, stop: int) -> pathlib.Path:
    return folder / f"episodes-{first:06d}-{stop:06d}.npz"


def save_shard(folder: str | pathlib.Path, first: int, episodes: Sequence[dict[str, np.ndarray]], config: Mapping | None = None) -> pathlib.Path:
    """Write consecutive episodes ``first, first + 1, ...`` (arrays as :meth:`OfflineDataset.episode`
    gives them) to a checkpoint folder as one shard ``episodes-<first>-<stop>.npz``, atomically,
    then its manifest (which a resumed collection verifies before using the shard)."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stacked = {name: np.stack([episode[name] for episode in episodes]) for name in (*EPISODE_FIELDS, "seeds")}
    path = atomic_write(_shard_file(folder, first, first + len(episodes)), lambda temporary: np.savez(temporary, **stacked), suffix=".npz")
    write_manifest(path, {"first_episode": first, "episodes": len(episodes), **dict(config or {})}, seeds={"markets": stacked["seeds"].tolist()})
    return path


def load_shards(folder: str | pathlib.Path) -> dict[int, dict[str, np.ndarray]]:
    """Episode index -> arrays of every verified shard in a checkpoint folder. A shard that is
    incomplete (a kill during its write or before its manifest) or changed is skipped (and
    removed), so its episodes are played again."""
    episodes: dict[int, dict[str, np.ndarray]] = {}
    for path in sorted(pathlib.Path(folder).glob(SHARD_PATTERN)):
        try:
            verify_manifest(path)
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (RunError, ValueError, OSError):
            path.unlink(missing_ok=True)
            manifest_path(path).unlink(missing_ok=True)
            continue
        first = int(path.stem.split("-")[1])
        for offset in range(arrays["actions"].shape[0]):
            episodes[first + offset] = {name: array[offset] for name, array in arrays.items()}
    return episodes


def play_shard(
    env: AuctionParallelEnv, policy: PopulationPolicy, seed: int, action_noise: float, episodes: Sequence[int], *, private_copies: bool = False
) -> list[dict[str, np.ndarray]]:
    """Play episodes ``episodes`` of a collection starting at market seed ``seed``: episode ``e``
    depends only on ``seed + e`` and its exploration seed, never on which task or node plays it.
    ``private_copies``: play on copies of ``env`` and ``policy`` (a Ray task's arguments arrive
    as read-only views of the object store); serially the caller's own policy plays, so a policy
    that records what it does (e.g. LBM's ``IntentRecorder``) sees every episode."""
    if private_copies:
        env, policy = copy.deepcopy(env), copy.deepcopy(policy)
    played = []
    for episode in episodes:
        record = play_episode(env, policy, seed=seed + episode, action_noise=action_noise, noise_seed=exploration_seed(seed, episode))
        played.append(_episode_arrays(record, seed + episode))
    return played


def collect_dataset(
    env: AuctionParallelEnv,
    policy: PopulationPolicy,
    episodes: int,
    seed: int = 0,
    action_noise: float = 0.0,
    progress: bool = True,
    description: str = "",
    checkpoint_dir: str | pathlib.Path | None = None,
    backend: str = "serial",
    shard_episodes: int = 1,
    num_cpus: int = 2,
) -> OfflineDataset:
    """Play ``episodes`` episodes (market seeds ``seed, seed + 1, ...``) and log them.

    The episodes are played in shards of ``shard_episodes`` consecutive episodes: one after the
    other in this process (``backend="serial"``), or as parallel Ray tasks spread over the nodes
    (``backend="ray"``: a local instance with ``num_cpus`` CPUs, the cluster at ``RAY_ADDRESS``, or
    the caller's running one; see :mod:`auctionsim.cluster`). The dataset is the same either way,
    and the same for any shard size or number of nodes. Ray tasks play copies of ``policy``: a
    policy that records what it does (LBM's ``IntentRecorder``) needs ``backend="serial"``.

    Args:
        env: the parallel env to play (its market and reward kind define the data).
        policy: the behaviour policy for every advertiser (reset at each episode, so an
            episode depends only on its seeds).
        episodes: number of episodes (>= 1).
        seed: market seed of the first episode (>= 0).
        action_noise: multiplicative log-normal exploration noise on the multipliers (>= 0).
        progress: show a progress bar.
        description: free text stored in the metadata (e.g. the behaviour mix).
        checkpoint_dir: when given, each finished shard is written there by this process
            (atomically, with a manifest; workers need no shared file system), and verified
            shards already there are loaded instead of played: a killed collection resumes where
            it stopped and gives the same dataset as an uninterrupted one. The caller checks that
            the folder belongs to the same config (``auctionsim dataset`` does).
        backend: ``"serial"`` or ``"ray"``.
        shard_episodes: episodes per shard (>= 1): the unit of parallel work and of checkpoints.
        num_cpus: CPUs of a local Ray instance started for the call.
    """
    check_int("episodes", episodes, low=1)
    check_int("seed", seed, low=0)
    check_int("shard_episodes", shard_episodes, low=1)
    check_int("num_cpus", num_cpus, low=1)
    action_noise = check_number("action_noise", action_noise, low=0.0)
    check_choice("backend", backend, ("serial", "ray"))
    folder = None if checkpoint_dir is None else pathlib.Path(checkpoint_dir)
    played = {} if folder is None else {e: arrays for e, arrays in load_shards(folder).items() if e < episodes}
    missing = [e for e in range(episodes) if e not in played]
    shards = [missing[start : start + shard_episodes] for start in range(0, len(missing), shard_episodes)]
    # A shard of consecutive episodes (a resumed run may have holes; split there).
    shards = [part for shard in shards for part in np.split(np.array(shard), np.flatnonzero(np.diff(shard) != 1) + 1)]
    with tqdm(total=episodes, initial=len(played), desc="collecting episodes", disable=not progress, unit="ep") as bar:

        def done(index: int, shard_arrays: list[dict[str, np.ndarray]]) -> None:
            first = int(shards[index][0])
            if folder is not None:
                save_shard(folder, first, shard_arrays, {"seed": seed, "action_noise": action_noise})
            played.update({first + offset: arrays for offset, arrays in enumerate(shard_arrays)})
            bar.update(len(shard_arrays))

        if backend == "serial":
            for index, shard in enumerate(shards):
                done(index, play_shard(env, policy, seed, action_noise, shard.tolist()))
        elif shards:
            from auctionsim.cluster import map_tasks, ray_session

            with ray_session(num_cpus):
                task = functools.partial(play_shard, private_copies=True)
                map_tasks(task, [shard.tolist() for shard in shards], shared=(env, policy, seed, action_noise), on_result=done)
    metadata = {
        "auctionsim_version": auctionsim.__version__,
        "market": json.loads(json.dumps(dataclasses.asdict(env.market.config), default=str)),
        "policy": type(policy).__name__,
        "description": description,
        "reward": env.reward_kind,
        "action_noise": action_noise,
        "multiplier_bounds": list(env.multiplier_bounds),
    }
    return _assemble([played[e] for e in range(episodes)], env.market.population, env.feature_names, metadata)


def dataset_from_records(
    records: Sequence[EpisodeRecord], population: Population, feature_names: Sequence[str], metadata: dict
) -> OfflineDataset:
    """An :class:`OfflineDataset` of played (or replayed) episodes of one population (an
    episode without a seed is stored with seed -1)."""
    return _assemble([_episode_arrays(r, -1 if r.seed is None else r.seed) for r in records], population, feature_names, metadata)


def _assemble(played: Sequence[dict[str, np.ndarray]], population: Population, feature_names: Sequence[str], metadata: dict) -> OfflineDataset:
    """Stack per-episode arrays (see :func:`_episode_arrays`) into a dataset."""
    return OfflineDataset(
        **{name: np.stack([arrays[name] for arrays in played]) for name in (*EPISODE_FIELDS, "seeds")},
        advertiser_ids=population.ids.copy(),
        budgets=population.budgets.copy(),
        cpa_targets=population.cpa_targets.copy(),
        categories=population.categories.copy(),
        feature_names=np.array(feature_names),
        metadata=metadata,
    )


# ---------------------------------------------------------------------------- AuctionNet logs
class _LoggedMarket:
    """The few attributes of a :class:`~auctionsim.market.Market` that
    :class:`~auctionsim.envs.observations.ObservationBuilder` reads, replayed from one logged
    period, so logged data gets exactly the observations the environments compute."""

    def __init__(self, config: MarketConfig, population: Population, pvalue_means: np.ndarray, impressions: np.ndarray) -> None:
        self.config, self.population = config, population
        self.n_ticks = config.n_ticks
        self.tick = 0
        self.budget_left = population.budgets.astype(np.float64)
        self._pvalue_means, self._impressions = pvalue_means, impressions

    def mean_pvalue_next_tick(self) -> np.ndarray:
        return self._pvalue_means[self.tick] if self.tick < self.n_ticks else np.zeros(len(self.population))

    @property
    def impressions_next_tick(self) -> int:
        return int(self._impressions[self.tick]) if self.tick < self.n_ticks else 0


def _period_population(columns: dict[str, np.ndarray], rows: np.ndarray) -> Population:
    ids, first = np.unique(columns["advertiserNumber"][rows], return_index=True)
    first = rows[first]
    categories = columns["advertiserCategoryIndex"][first]
    return Population(ids=ids, budgets=columns["budget"][first], cpa_targets=columns["CPAConstraint"][first], categories=categories)


def _replay_period(
    columns: dict[str, np.ndarray], rows: np.ndarray, population: Population, n_categories: int, reward: str, budget_floor: float, pvalue_scale: float
) -> EpisodeRecord:
    """One logged period as an :class:`EpisodeRecord` (observations recomputed)."""
    n = len(population)
    tick = columns["timeStepIndex"][rows]
    n_ticks = int(tick.max()) + 1
    column = population.positions_of(columns["advertiserNumber"][rows])
    key = tick * n + column  # (tick, advertiser) cell of each row

    def per_cell(weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(key, weights=weights, minlength=n_ticks * n).reshape(n_ticks, n)

    exposed = columns["isExposed"][rows].astype(bool)
    cpa = population.cpa_targets[column]
    opportunities = per_cell()
    sums = {
        "wins": per_cell(columns["xi"][rows].astype(np.float64)),
        "exposures": per_cell(exposed.astype(np.float64)),
        "conversions": per_cell(columns["conversionAction"][rows].astype(np.float64)),
        "spend": per_cell(np.where(exposed, columns["cost"][rows], 0.0)),
        "value_won": per_cell(np.where(exposed, columns["pValue"][rows] * cpa, 0.0)),
        "bids": per_cell(columns["bid"][rows]),
        "pvalues": per_cell(columns["pValue"][rows]),
        "least_winning_cost": per_cell(columns["leastWinningCost"][rows]),
    }
    impressions = np.array([np.unique(columns["pvIndex"][rows][tick == t]).size for t in range(n_ticks)])
    remaining = np.tile(population.budgets.astype(np.float64), (n_ticks + 1, 1))
    logged = np.full((n_ticks, n), np.nan)
    logged[tick, column] = columns["remainingBudget"][rows]
    for t in range(n_ticks):
        remaining[t] = np.where(np.isnan(logged[t]), remaining[t - 1] - sums["spend"][t - 1] if t else remaining[t], logged[t])
    remaining[n_ticks] = remaining[n_ticks - 1] - sums["spend"][n_ticks - 1]
    config = MarketConfig(
        n_ticks=n_ticks,
        impressions_per_episode=int(impressions.sum()),
        traffic=TrafficConfig(pvalue_base_mean=pvalue_scale),
    )
    market = _LoggedMarket(config, population, sums["pvalues"] / np.maximum(impressions, 1)[:, None], impressions)
    builder = ObservationBuilder(market)  # type: ignore[arg-type]  (the attributes it reads)
    rewards_of = RewardTracker(reward, population.cpa_targets)
    observations, actions, rewards, live, terminated, truncated, results = [builder.observe()], [], [], [np.ones(n, bool)], [], [], []
    for t in range(n_ticks):
        count = opportunities[t]
        mean = {name: np.divide(sums[name][t], count, out=np.zeros(n), where=count > 0) for name in ("bids", "pvalues", "least_winning_cost")}
        value_per_multiplier = population.cpa_targets * sums["pvalues"][t]
        multipliers = np.where(live[-1], np.divide(sums["bids"][t], value_per_multiplier, out=np.zeros(n), where=value_per_multiplier > 0), 0.0)
        result = TickResult(
            tick=t, multipliers=multipliers, opportunities=count.astype(np.int64), wins=sums["wins"][t].astype(np.int64),
            exposures=sums["exposures"][t].astype(np.int64), conversions=sums["conversions"][t].astype(np.int64),
            spend=sums["spend"][t], value_won=sums["value_won"][t], mean_bid=mean["bids"], mean_pvalue=mean["pvalues"],
            mean_least_winning_cost=mean["least_winning_cost"], budget_left=remaining[t + 1],
            market=MarketTickStats(int(impressions[t]), 0, float(sums["spend"][t].sum()), float(sums["value_won"][t].sum()),
                                   int(sums["conversions"][t].sum()), int(sums["exposures"][t].sum()), 0, 0.0, 0.0, 0.0, 0.0, 0.0),
        )
        market.tick, market.budget_left = t + 1, remaining[t + 1]
        builder.update(result)
        observations.append(builder.observe())
        # As the parallel env: out of budget ends an advertiser's day; the last tick ends
        # everyone's (terminated and truncated).
        day_over = live[-1] & (t == n_ticks - 1)
        ended = live[-1] & (remaining[t + 1] < budget_floor) | day_over
        rewards.append(np.where(live[-1], rewards_of.rewards(result), 0.0))
        actions.append(multipliers)
        terminated.append(ended)
        truncated.append(day_over)
        live.append(live[-1] & ~ended)
        results.append(result)
    totals = {name: sums[name].sum(axis=0) for name in ("conversions", "spend", "value_won", "wins", "exposures")}
    metrics = EpisodeMetrics.from_totals(ids=population.ids, budget=population.budgets, cpa_target=population.cpa_targets, **totals)
    return EpisodeRecord(
        seed=None, observations=np.stack(observations), actions=np.stack(actions), rewards=np.stack(rewards), live=np.stack(live),
        terminated=np.stack(terminated), truncated=np.stack(truncated), ticks=tuple(results), metrics=metrics,
    )


def dataset_from_auctionnet(
    source: str | pathlib.Path | Mapping[str, np.ndarray],
    reward: str = "value",
    periods: Sequence[int] | None = None,
    budget_floor: float = 0.1,
    pvalue_scale: float = TrafficConfig().pvalue_base_mean,
) -> OfflineDataset:
    """An :class:`OfflineDataset` from AuctionNet-format logged data (a ``.csv``/``.parquet``
    file or the columns :func:`auctionsim.compat.auctionnet.read_log` returns), for every
    offline learner (BC, IQL, CQL, DT, PE-MORL, LBM).

    Each delivery period is one episode. Per tick and advertiser the log's rows are summed into
    the dataset's tick aggregates (spend and value won over exposed rows), the multiplier played
    is ``sum bids / (CPA target x sum pValues)`` (exact for bidders linear in pValue), and the
    observations are computed by the environments' own
    :class:`~auctionsim.envs.observations.ObservationBuilder`, with ``pvalue_mean_now`` read as
    the next tick's mean logged pValue (for a market with generated traffic the environments use
    the traffic model's mean instead; everything else matches, see ``tests/test_compat.py``).

    Args:
        reward: reward kind of the dataset (see :mod:`auctionsim.envs.observations`).
        periods: the ``deliveryPeriodIndex`` values to load (default: all); they must share one
            population (ids, budgets, CPA targets, categories): AuctionNet's training files hold
            one period each, so load each file and pass the list of datasets to the learner.
        budget_floor: remaining budget below which an advertiser has finished (AuctionNet's
            ``min_remaining_budget``, 0.1).
        pvalue_scale: the pValue unit of the observations (``TrafficConfig.pvalue_base_mean``).
    """
    columns = read_log(source) if isinstance(source, (str, pathlib.Path)) else {name: np.asarray(source[name]) for name in COLUMNS}
    available = np.unique(columns["deliveryPeriodIndex"])
    chosen = available if periods is None else np.asarray(periods, dtype=np.int64)
    missing = np.setdiff1d(chosen, available)
    if chosen.size == 0 or missing.size:
        raise ConfigError(f"periods must be among the log's deliveryPeriodIndex values {available.tolist()}, got {describe(periods)}")
    records, population = [], None
    order = np.lexsort((columns["pvIndex"], columns["timeStepIndex"], columns["deliveryPeriodIndex"]))
    for period in chosen:
        rows = order[columns["deliveryPeriodIndex"][order] == period]
        period_population = _period_population(columns, rows)
        if population is None:
            population = period_population
        elif not _same_population(population, period_population):
            raise ConfigError(f"period {int(period)} has a different population (ids, budgets, CPA targets or categories) from period {int(chosen[0])}; load them separately with periods=[...]")
        records.append(_replay_period(columns, rows, population, population.n_categories, reward, budget_floor, pvalue_scale))
    metadata = {
        "auctionsim_version": auctionsim.__version__,
        "source": str(source) if isinstance(source, (str, pathlib.Path)) else "auctionnet columns",
        "format": "auctionnet",
        "periods": [int(p) for p in chosen],
        "reward": reward,
        "budget_floor": budget_floor,
        "pvalue_scale": pvalue_scale,
    }
    return dataset_from_records(records, population, feature_names(population.n_categories), metadata)


def _same_population(a: Population, b: Population) -> bool:
    return all(np.array_equal(getattr(a, name), getattr(b, name)) for name in ("ids", "budgets", "cpa_targets", "categories"))
