"""Offline datasets: run a population for many episodes and save every advertiser's trajectory.

Schema (one ``.npz`` file; ``E`` episodes, ``T`` ticks, ``N`` advertisers, ``D`` features):

===================  =============  ===========================================================
array                shape, dtype   meaning
===================  =============  ===========================================================
observations         (E,T+1,N,D) f4 observation before each tick (and after the last)
actions              (E,T,N) f4     bid multiplier played (0 once the advertiser has finished)
rewards              (E,T,N) f4     reward of the tick (kind in ``metadata["reward"]``)
live                 (E,T+1,N) ?    advertiser still acting before the tick
terminated           (E,T,N) ?      budget ran out during the tick
truncated            (E,T,N) ?      still live when the last tick ended
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

import dataclasses
import json
import pathlib
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

import auctionsim
from auctionsim.config import _check_float, _check_int
from auctionsim.errors import ConfigError
from auctionsim.envs import AuctionParallelEnv, PopulationPolicy, play_episode
from auctionsim.runs import atomic_write

__all__ = ["OfflineDataset", "Transitions", "collect_dataset", "save_episode", "EPISODE_FIELDS"]

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
        """The per-episode arrays of episode ``index`` (as one episode file of a checkpoint)."""
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


def _episode_file(folder: pathlib.Path, index: int) -> pathlib.Path:
    return folder / f"episode-{index:06d}.npz"


def save_episode(folder: str | pathlib.Path, index: int, arrays: dict[str, np.ndarray]) -> pathlib.Path:
    """Write one episode's arrays to a checkpoint folder (atomically)."""
    path = _episode_file(pathlib.Path(folder), index)
    return atomic_write(path, lambda temporary: np.savez(temporary, **arrays), suffix=".npz")


def _load_episode(path: pathlib.Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def collect_dataset(
    env: AuctionParallelEnv,
    policy: PopulationPolicy,
    episodes: int,
    seed: int = 0,
    action_noise: float = 0.0,
    progress: bool = True,
    description: str = "",
    checkpoint_dir: str | pathlib.Path | None = None,
) -> OfflineDataset:
    """Play ``episodes`` episodes (market seeds ``seed, seed + 1, ...``) and log them.

    Args:
        env: the parallel env to play (its market and reward kind define the data).
        policy: the behaviour policy for every advertiser (reset at each episode, so an
            episode depends only on its seeds).
        episodes: number of episodes (>= 1).
        seed: market seed of the first episode (>= 0).
        action_noise: multiplicative log-normal exploration noise on the multipliers (>= 0).
        progress: show a progress bar.
        description: free text stored in the metadata (e.g. the behaviour mix).
        checkpoint_dir: when given, each finished episode is written there (atomically), and
            episodes already there are loaded instead of played: a killed collection resumes
            where it stopped, and gives the same dataset as an uninterrupted one. The caller
            checks that the folder belongs to the same config (``auctionsim dataset`` does).
    """
    _check_int("episodes", episodes, low=1)
    _check_int("seed", seed, low=0)
    action_noise = _check_float("action_noise", action_noise, low=0.0)
    folder = None if checkpoint_dir is None else pathlib.Path(checkpoint_dir)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    played = []
    for episode in tqdm(range(episodes), desc="collecting episodes", disable=not progress, unit="ep"):
        if folder is not None and _episode_file(folder, episode).is_file():
            played.append(_load_episode(_episode_file(folder, episode)))
            continue
        record = play_episode(env, policy, seed=seed + episode, action_noise=action_noise, noise_seed=seed + 7919 * (episode + 1))
        played.append(_episode_arrays(record, seed + episode))
        if folder is not None:
            save_episode(folder, episode, played[-1])
    market = env.market
    population = market.population
    metadata = {
        "auctionsim_version": auctionsim.__version__,
        "market": json.loads(json.dumps(dataclasses.asdict(market.config), default=str)),
        "policy": type(policy).__name__,
        "description": description,
        "reward": env.reward_kind,
        "action_noise": action_noise,
        "multiplier_bounds": list(env.multiplier_bounds),
    }
    return OfflineDataset(
        **{name: np.stack([arrays[name] for arrays in played]) for name in (*EPISODE_FIELDS, "seeds")},
        advertiser_ids=population.ids.copy(),
        budgets=population.budgets.copy(),
        cpa_targets=population.cpa_targets.copy(),
        categories=population.categories.copy(),
        feature_names=np.array(env.feature_names),
        metadata=metadata,
    )
