"""Named populations of baseline bidders, for the command line and experiments.

``named_population(name)`` returns a fresh :class:`~auctionsim.envs.policy.PopulationPolicy`:

* ``fixed``: every advertiser bids multiplier ``multiplier`` (default 1.0: its expected value);
* ``pid``, ``cpa``, ``onlinelp``: everyone runs :class:`~agents.baselines.PIDPacing`,
  :class:`~agents.baselines.CPAPacing` or :class:`~agents.baselines.OnlineLP`;
* ``mixed``: the advertisers are dealt round-robin (by array position) to fixed (1.0), PID,
  CPA pacing and OnlineLP, so each bidder type faces the others.
"""

from __future__ import annotations

import numpy as np

from agents.base import MixedPopulation, PopulationPolicy
from agents.baselines import CPAPacing, FixedMultipliers, OnlineLP, PIDPacing
from auctionsim.errors import ConfigError

__all__ = ["POPULATIONS", "MIXED_GROUPS", "named_population", "mixed_groups"]

POPULATIONS = ("fixed", "pid", "cpa", "onlinelp", "mixed")
# Bidder types of the ``mixed`` population, dealt round-robin.
MIXED_GROUPS = ("fixed", "pid", "cpa", "onlinelp")


def _single(name: str, multiplier: float) -> PopulationPolicy:
    if name == "fixed":
        return FixedMultipliers(multiplier)
    if name == "pid":
        return PIDPacing()
    if name == "cpa":
        return CPAPacing()
    return OnlineLP()


def mixed_groups(advertiser_ids: np.ndarray) -> dict[str, np.ndarray]:
    """The ids each bidder type gets in the ``mixed`` population."""
    return {group: np.asarray(advertiser_ids)[k :: len(MIXED_GROUPS)] for k, group in enumerate(MIXED_GROUPS)}


def named_population(name: str, advertiser_ids: np.ndarray | None = None, multiplier: float = 1.0) -> PopulationPolicy:
    """A population policy by name (see the module docstring).

    Args:
        advertiser_ids: the market's advertiser ids (needed for ``mixed``).
        multiplier: the multiplier of ``fixed`` bidders.
    """
    if name not in POPULATIONS:
        raise ConfigError(f"unknown population {name!r}; choose one of {', '.join(POPULATIONS)}")
    if name != "mixed":
        return _single(name, multiplier)
    if advertiser_ids is None:
        raise ConfigError("the mixed population needs the market's advertiser_ids")
    groups = mixed_groups(advertiser_ids)
    return MixedPopulation([(ids, _single(group, multiplier)) for group, ids in groups.items() if group != "fixed"], default=FixedMultipliers(multiplier))
