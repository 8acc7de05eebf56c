"""Named populations of baseline bidders, for the command line and experiments.

``named_population(name)`` returns a fresh :class:`~auctionsim.envs.policy.PopulationPolicy`:

* ``fixed``: every advertiser bids multiplier ``multiplier`` (default 1.0: its expected value);
* ``pid``, ``cpa``, ``onlinelp``: everyone runs :class:`~agents.baselines.PIDPacing`,
  :class:`~agents.baselines.CPAPacing` or :class:`~agents.baselines.OnlineLP`;
* ``mixed``: the advertisers are dealt round-robin (by array position) to fixed (1.0), PID,
  CPA pacing and OnlineLP, so each bidder type faces the others;
* ``module:Name`` (or ``path/to/file.py:Name``): your own bidders, imported. ``Name`` may be a
  :class:`~auctionsim.envs.policy.PopulationPolicy` subclass (built with no arguments), a
  one-advertiser :class:`~agents.base.Bidder` class (served by :class:`~agents.base.BidderPolicy`),
  an AuctionNet strategy class (one with ``bidding`` and ``reset``, served by
  :class:`~auctionsim.compat.auctionnet.AuctionNetPolicy`), or a function called with no
  arguments that returns a population policy. Every command that takes a population accepts
  these (``auctionsim simulate --population mybidders:MyBidder``).
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import re
import sys
from types import ModuleType

import numpy as np

from agents.base import Bidder, BidderPolicy, MixedPopulation, PopulationPolicy
from agents.baselines import CPAPacing, FixedMultipliers, OnlineLP, PIDPacing
from auctionsim.compat.auctionnet import AuctionNetPolicy
from auctionsim.errors import ConfigError, describe

__all__ = ["POPULATIONS", "MIXED_GROUPS", "named_population", "mixed_groups", "imported_object", "imported_population", "check_population", "population_slug"]

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
    if ":" in name:
        return imported_population(name)
    if name not in POPULATIONS:
        raise ConfigError(f"unknown population {name!r}; choose one of {', '.join(POPULATIONS)}, or give module:Name")
    if name != "mixed":
        return _single(name, multiplier)
    if advertiser_ids is None:
        raise ConfigError("the mixed population needs the market's advertiser_ids")
    groups = mixed_groups(advertiser_ids)
    return MixedPopulation([(ids, _single(group, multiplier)) for group, ids in groups.items() if group != "fixed"], default=FixedMultipliers(multiplier))


def check_population(name: str) -> str:
    """Validate a population name (a built-in one, or ``module:Name``, which is imported now so
    that a typo fails before a long run starts). Returns the name."""
    if not isinstance(name, str):
        raise ConfigError(f"population must be a name, got {describe(name)}")
    if ":" in name:
        imported_population(name)
    elif name not in POPULATIONS:
        raise ConfigError(f"unknown population {name!r}; choose one of {', '.join(POPULATIONS)}, or give module:Name")
    return name


def population_slug(name: str) -> str:
    """A population name made safe for file names (``mybidders:MyBidder`` -> ``mybidders_MyBidder``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def _import_module(reference: str) -> ModuleType:
    if reference.endswith(".py"):
        path = pathlib.Path(reference).resolve()
        if not path.is_file():
            raise ConfigError(f"no such file {reference!r} (from the population {reference}:...)")
        name = f"auctionsim_user_{population_slug(path.stem)}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        try:  # Ray workers cannot import a file loaded by path: send its classes by value
            from ray import cloudpickle

            cloudpickle.register_pickle_by_value(module)
        except ImportError:
            pass
        return module
    if str(pathlib.Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.append(str(pathlib.Path.cwd()))  # the console script does not put the cwd on the path
    try:
        return importlib.import_module(reference)
    except ImportError as error:
        raise ConfigError(f"cannot import module {reference!r} for the population: {error}") from None


def imported_object(reference: str) -> object:
    """The object named by ``module:Name`` or ``path/to/file.py:Name``, imported now."""
    module_name, _, attribute = reference.rpartition(":")
    if not module_name or not attribute:
        raise ConfigError(f"a reference is module:Name or path/to/file.py:Name, got {reference!r}")
    module = _import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no attribute {attribute!r}") from None


def imported_population(reference: str) -> PopulationPolicy:
    """The population policy named by ``module:Name`` or ``path/to/file.py:Name`` (see the
    module docstring for what ``Name`` may be)."""
    target = imported_object(reference)
    if isinstance(target, type):
        if issubclass(target, PopulationPolicy):
            return target()
        if callable(getattr(target, "bidding", None)) and callable(getattr(target, "reset", None)):
            return AuctionNetPolicy(target)
        if callable(getattr(target, "act", None)) and callable(getattr(target, "reset", None)):
            return BidderPolicy(target)
        raise ConfigError(f"{reference} is a class but neither a PopulationPolicy, a Bidder (reset, act) nor an AuctionNet strategy (reset, bidding)")
    if isinstance(target, PopulationPolicy):
        return target
    if callable(target):
        policy = target()
        if isinstance(policy, PopulationPolicy):
            return policy
        if isinstance(policy, Bidder):
            raise ConfigError(f"{reference}() returned a Bidder; give its class (module:ClassName) so that each advertiser gets its own")
        raise ConfigError(f"{reference}() must return a PopulationPolicy, got {describe(policy)}")
    raise ConfigError(f"{reference} must be a class or a function building a population policy, got {describe(target)}")
