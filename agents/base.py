"""The bidder plug-in API: one-advertiser bidders, and adapters to vectorised population policies.

Two ways to write a bidder:

* a :class:`Bidder` for one advertiser (``reset(spec)``, ``act(observation) -> multiplier``,
  optionally ``observe(feedback)``), wrapped by :class:`BidderPolicy` to serve a population
  (one Python object per advertiser: fine for tens or hundreds of advertisers);
* a :class:`~auctionsim.envs.policy.PopulationPolicy` that maps ``(k, D)`` observations to
  ``(k,)`` multipliers in one array call (use this for thousands of advertisers); the baselines
  in :mod:`agents.baselines` are written this way.

:class:`FunctionPolicy`, :class:`TorchPolicy` and :class:`MixedPopulation` adapt a plain
function, a torch module and a per-advertiser mix of policies.
"""

from __future__ import annotations

from typing import Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from auctionsim.config import Population
from auctionsim.envs.policy import (
    AdvertiserFeedback,
    AdvertiserSpec,
    FixedMultipliers,
    PolicyContext,
    PopulationPolicy,
    TickFeedback,
    select_values,
)
from auctionsim.errors import ActionError, ConfigError, describe
from auctionsim.market import TickValues

__all__ = [
    "AdvertiserSpec",
    "AdvertiserFeedback",
    "Bidder",
    "BidderPolicy",
    "FixedMultipliers",
    "FunctionPolicy",
    "MixedPopulation",
    "PopulationPolicy",
    "TorchPolicy",
]


@runtime_checkable
class Bidder(Protocol):
    """A bidder for one advertiser. ``observe`` is optional, and so is ``bid_impressions``:
    a bidder that defines ``bid_impressions(pvalues, sigmas) -> bids`` bids per impression
    (AuctionNet's interface: ``(n,)`` pValues and their uncertainties of the impressions it
    contests this tick in, ``(n,)`` bids in currency out; its ``act`` multiplier is then
    ignored), and its :class:`AdvertiserFeedback` carries the per-impression record
    (``feedback.impressions``). A bidder with ``needs_impression_values = True`` gets that
    record without bidding per impression."""

    def reset(self, spec: AdvertiserSpec) -> None:
        ...

    def act(self, observation: np.ndarray) -> float:
        """The bid multiplier for the next tick, from the ``(D,)`` observation."""
        ...


class BidderPolicy(PopulationPolicy):
    """Serves a population with one :class:`Bidder` per advertiser.

    Args:
        make_bidder: called with each advertiser's :class:`AdvertiserSpec` at every reset,
            returns its bidder (a class whose constructor takes no arguments also works:
            ``BidderPolicy(MyBidder)``).
    """

    def __init__(self, make_bidder: Callable[..., Bidder]) -> None:
        self._make_bidder = make_bidder
        self._bidders: list[Bidder] = []
        self._per_impression: list[int] = []  # rows whose bidder bids per impression
        self._detailed: list[int] = []  # rows whose bidder reads per-impression feedback
        self.bids_per_impression = False
        self.needs_impression_values = False

    def reset(self, context: PolicyContext) -> None:
        self._bidders = []
        for row in range(len(context.population)):
            spec = context.advertiser_spec(row)
            bidder = self._make_bidder() if isinstance(self._make_bidder, type) else self._make_bidder(spec)
            if not isinstance(bidder, Bidder):
                raise ConfigError(f"make_bidder must return a Bidder (reset, act), got {describe(bidder)}")
            bidder.reset(spec)
            self._bidders.append(bidder)
        self._per_impression = [row for row, bidder in enumerate(self._bidders) if hasattr(bidder, "bid_impressions")]
        self._detailed = [
            row for row, bidder in enumerate(self._bidders)
            if hasattr(bidder, "bid_impressions") or getattr(bidder, "needs_impression_values", False)
        ]
        self.bids_per_impression = bool(self._per_impression)
        self.needs_impression_values = bool(self._detailed)

    def act(self, observations: np.ndarray) -> np.ndarray:
        return np.array([float(bidder.act(observations[row])) for row, bidder in enumerate(self._bidders)])

    def impression_bids(self, observations: np.ndarray, values: TickValues) -> Mapping[int, np.ndarray]:
        bids = {}
        for row in self._per_impression:
            seen = values.is_candidate[:, row]
            own = np.asarray(self._bidders[row].bid_impressions(values.pvalues[seen, row], values.sigmas[seen, row]), dtype=np.float64)
            if own.shape != (int(seen.sum()),):
                raise ActionError(
                    f"{type(self._bidders[row]).__name__}.bid_impressions returned shape {own.shape} for advertiser "
                    f"{int(values.advertiser_ids[row])}, expected ({int(seen.sum())},): one bid per impression it contests"
                )
            bids[row] = np.zeros(seen.shape[0])
            bids[row][seen] = own
        return bids

    def observe(self, feedback: TickFeedback) -> None:
        impressions = dict(zip(self._detailed, feedback.subset(self._detailed).impressions())) if self._detailed else {}
        for row, bidder in enumerate(self._bidders):
            observe = getattr(bidder, "observe", None)
            if observe is not None:
                observe(
                    AdvertiserFeedback(
                        tick=feedback.tick,
                        multiplier=float(feedback.multipliers[row]),
                        opportunities=int(feedback.opportunities[row]),
                        wins=int(feedback.wins[row]),
                        exposures=int(feedback.exposures[row]),
                        conversions=int(feedback.conversions[row]),
                        spend=float(feedback.spend[row]),
                        value_won=float(feedback.value_won[row]),
                        mean_bid=float(feedback.mean_bid[row]),
                        mean_pvalue=float(feedback.mean_pvalue[row]),
                        mean_least_winning_cost=float(feedback.mean_least_winning_cost[row]),
                        budget_left=float(feedback.budget_left[row]),
                        impressions=impressions.get(row),
                    )
                )


class FunctionPolicy(PopulationPolicy):
    """A population policy from a plain function ``(k, D) observations -> (k,) multipliers``."""

    def __init__(self, function: Callable[[np.ndarray], np.ndarray]) -> None:
        if not callable(function):
            raise ConfigError(f"function must be callable, got {describe(function)}")
        self._function = function

    def act(self, observations: np.ndarray) -> np.ndarray:
        return np.asarray(self._function(observations), dtype=np.float64).reshape(-1)


class TorchPolicy(PopulationPolicy):
    """A population policy from a torch module mapping ``(k, D)`` float32 to ``(k,)`` or ``(k, 1)``
    multipliers. Runs under ``torch.no_grad`` on ``device``; the module is put in eval mode."""

    def __init__(self, module, device: str = "cpu") -> None:
        import torch

        self._torch = torch
        self._module = module.to(device).eval()
        self._device = device

    def act(self, observations: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            tensor = self._torch.as_tensor(observations, dtype=self._torch.float32, device=self._device)
            output = self._module(tensor)
        return output.detach().cpu().numpy().astype(np.float64).reshape(len(observations))


class MixedPopulation(PopulationPolicy):
    """Different policies for different advertisers.

    Args:
        groups: ``(advertiser ids, policy)`` pairs; an advertiser in no group bids with
            ``default``. Each policy sees only its own advertisers (as its population).
        default: policy of the remaining advertisers (default: multiplier 1.0).

    Example::

        MixedPopulation([(ids[:10], PIDPacing()), (ids[10:20], OnlineLP())], default=FixedMultipliers(1.0))
    """

    def __init__(self, groups: Sequence[tuple[Sequence[int], PopulationPolicy]], default: PopulationPolicy | None = None) -> None:
        self._groups = [(np.asarray(ids, dtype=np.int64), policy) for ids, policy in groups]
        for _, policy in self._groups:
            if not isinstance(policy, PopulationPolicy):
                raise ConfigError(f"every group needs a PopulationPolicy, got {describe(policy)}")
        self._default = FixedMultipliers(1.0) if default is None else default
        self._rows: list[np.ndarray] = []
        self._size = 0

    @property
    def policies(self) -> list[PopulationPolicy]:
        return [policy for _, policy in self._groups] + [self._default]

    @property
    def needs_impression_values(self) -> bool:  # type: ignore[override]
        return any(policy.needs_impression_values for policy in self.policies)

    @property
    def bids_per_impression(self) -> bool:  # type: ignore[override]
        return any(policy.bids_per_impression for policy in self.policies)

    def reset(self, context: PolicyContext) -> None:
        population: Population = context.population
        assigned = np.full(len(population), -1, dtype=np.int64)
        for group, (ids, _) in enumerate(self._groups):
            present = np.isin(ids, population.ids)
            rows = population.positions_of(ids[present])
            if (assigned[rows] >= 0).any():
                raise ConfigError(f"advertiser {int(population.ids[rows[assigned[rows] >= 0][0]])} is in two groups")
            assigned[rows] = group
        self._rows = [np.flatnonzero(assigned == group) for group in range(len(self._groups))]
        self._rows.append(np.flatnonzero(assigned < 0))
        self._size = len(population)
        for rows, policy in zip(self._rows, self.policies):
            if rows.size:
                policy.reset(context.subset(rows))

    def act(self, observations: np.ndarray) -> np.ndarray:
        multipliers = np.zeros(self._size)
        for rows, policy in zip(self._rows, self.policies):
            if rows.size:
                multipliers[rows] = policy.act(observations[rows])
        return multipliers

    def impression_bids(self, observations: np.ndarray, values: TickValues) -> Mapping[int, np.ndarray]:
        bids: dict[int, np.ndarray] = {}
        for rows, policy in zip(self._rows, self.policies):
            if rows.size and policy.bids_per_impression:
                group = policy.impression_bids(observations[rows], select_values(values, rows))
                bids.update({int(rows[row]): row_bids for row, row_bids in group.items()})
        return bids

    def observe(self, feedback: TickFeedback) -> None:
        for rows, policy in zip(self._rows, self.policies):
            if rows.size:
                policy.observe(feedback.subset(rows, impressions=policy.wants_impressions))

