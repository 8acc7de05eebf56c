"""Market and advertiser-population configuration: frozen dataclasses validated on construction.

A market is described by three objects:

* :class:`MarketConfig`: the auction house (ticks, impressions, slots, mechanism, reserve, seed,
  candidate retrieval) and its :class:`TrafficConfig` (how impressions and their pValues are
  generated; the defaults follow AuctionNet's generative recipe). The mechanism is a built-in
  :class:`Mechanism` or a plugged-in one (:func:`register_mechanism`, :class:`CustomMechanism`).
* :class:`Population`: the advertisers (stable integer ids, budgets, CPA targets, categories).

Money (budgets, bids, prices, CPA targets) is in one abstract currency unit throughout; a pValue
is a conversion probability per impression; a "value" is ``pValue x CPA target`` (currency).
Presets that reproduce AuctionNet and large populations live in :mod:`auctionsim.presets`.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import re
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from auctionsim.errors import ConfigError, describe
from auctionsim.validation import MAX_SEED, as_integers, as_numeric_array, check_bounds, check_choice, check_int, check_number

__all__ = [
    "Mechanism",
    "CustomMechanism",
    "register_mechanism",
    "mechanism_names",
    "resolve_mechanism",
    "ExposureModel",
    "TrafficConfig",
    "MarketConfig",
    "Population",
]


class Mechanism(str, enum.Enum):
    """Auction mechanism run on every impression.

    * ``GSP``: generalised second price; slot ``k`` pays the ``(k+1)``-th highest bid, floored at
      the reserve price.
    * ``FPA``: first price; every winner pays its own bid.
    * ``VCG``: Vickrey-Clarke-Groves for position auctions; slot ``k`` pays the externality it
      imposes on the bidders below it, in expectation over slot exposure.

    In all three, payment is charged only when the slot is exposed (seen by the user).
    """

    GSP = "gsp"
    FPA = "fpa"
    VCG = "vcg"

    @property
    def code(self) -> int:
        """Integer code passed to the jitted kernels."""
        return _MECHANISM_CODES[self]


_MECHANISM_CODES = {Mechanism.GSP: 0, Mechanism.FPA: 1, Mechanism.VCG: 2}


class CustomMechanism(str):
    """A plugged-in auction mechanism, made by :func:`register_mechanism`.

    It is a string (its name), so configs compare, print and save it as they do a built-in
    :class:`Mechanism`, and it carries what the market needs to run it, so a config holding
    it works in other processes (e.g. Ray workers) without registering again.

    Attributes:
        value: the name.
        function: the mechanism, ``(auction, ranked_index, ranked_bids, prices) -> (n_ranked,
            n_winners)`` (see :mod:`auctionsim.mechanisms`): ``numba.njit``-compiled for the
            fast path, or plain Python for the slow one.
        advertiser_data: ``None``, or ``population -> (F, N)`` float values the mechanism reads
            per advertiser as ``auction.advertisers.data`` (e.g. quality scores). It should
            depend on each advertiser's own attributes (id, category, ...), never on its row.
        description: one line for listings.
    """

    function: Callable
    advertiser_data: Callable | None
    description: str

    def __new__(cls, name: str, function: Callable, advertiser_data: Callable | None = None, description: str = ""):
        self = super().__new__(cls, name)
        for attribute, value in (("function", function), ("advertiser_data", advertiser_data), ("description", description)):
            object.__setattr__(self, attribute, value)
        return self

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"CustomMechanism is immutable (setting {name!r})")

    def __reduce__(self):
        return (CustomMechanism, (str(self), self.function, self.advertiser_data, self.description))

    def __repr__(self) -> str:
        return f"CustomMechanism({str(self)!r}, {self.function!r})"

    @property
    def value(self) -> str:
        """The mechanism's name (as :attr:`Mechanism.value`)."""
        return str(self)

    def data_for(self, population: "Population") -> np.ndarray:
        """``(F, N)`` float64 per-advertiser data for ``population`` (``(0, N)`` without
        ``advertiser_data``), checked: one column per advertiser, finite."""
        size = len(population)
        if self.advertiser_data is None:
            return np.zeros((0, size))
        try:
            data = np.array(self.advertiser_data(population), dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"mechanism {self.value!r}: advertiser_data must return numbers, failed with: {error}") from None
        if data.ndim == 1:
            data = data[None, :]
        if data.ndim != 2 or data.shape[1] != size:
            raise ConfigError(
                f"mechanism {self.value!r}: advertiser_data must return shape (F, {size}) (one column per "
                f"advertiser), got {data.shape}"
            )
        bad = ~np.isfinite(data)
        if bad.any():
            feature, position = (int(i) for i in np.argwhere(bad)[0])
            raise ConfigError(
                f"mechanism {self.value!r}: advertiser_data must be finite, got data[{feature}, {position}]="
                f"{data[feature, position]} (advertiser id {int(population.ids[position])})"
            )
        return np.ascontiguousarray(data)


_CUSTOM_MECHANISMS: dict[str, CustomMechanism] = {}
_MECHANISM_NAME = re.compile(r"[a-z][a-z0-9_-]*\Z")


def register_mechanism(
    name: str, function: Callable, *, advertiser_data: Callable | None = None, description: str = ""
) -> CustomMechanism:
    """Register a plugged-in mechanism under ``name``, so that ``MarketConfig(mechanism=name)``,
    the presets, the environments and the CLI (``--set mechanism=name``) accept it.

    Args:
        name: lower-case letters, digits, ``_`` and ``-``, starting with a letter; not a
            built-in's name. Registering a name again replaces it (with a warning).
        function: ``(auction, ranked_index, ranked_bids, prices) -> (n_ranked, n_winners)``,
            see :mod:`auctionsim.mechanisms` for the contract. ``numba.njit``-compiled runs in
            the compiled kernel; plain Python runs on a slow path (prototyping).
        advertiser_data: optional ``population -> (F, N)`` per-advertiser values the mechanism
            reads as ``auction.advertisers.data``.
        description: one line for listings.

    Returns:
        The :class:`CustomMechanism`, usable wherever a mechanism name is.

    A name registered in one process is unknown to others: for multi-process tools (Ray),
    pass the returned object, or name the mechanism by import path, ``"package.module:attribute"``
    (the attribute being the registered :class:`CustomMechanism` or the function itself).
    """
    if not isinstance(name, str) or not _MECHANISM_NAME.match(name):
        raise ConfigError(
            f"mechanism name must be lower-case letters, digits, '_' or '-', starting with a letter, got {describe(name)}"
        )
    if name in {member.value for member in Mechanism}:
        raise ConfigError(f"mechanism name {name!r} is a built-in mechanism's")
    _check_mechanism_function(name, function)
    if advertiser_data is not None and not callable(advertiser_data):
        raise ConfigError(f"advertiser_data of mechanism {name!r} must be callable or None, got {describe(advertiser_data)}")
    previous = _CUSTOM_MECHANISMS.get(name)
    if previous is not None and previous.function is not function:
        warnings.warn(f"mechanism {name!r} was registered already; replacing it", stacklevel=2)
    mechanism = CustomMechanism(name, function, advertiser_data, str(description))
    _CUSTOM_MECHANISMS[name] = mechanism
    return mechanism


def _check_mechanism_function(name: str, function: object) -> None:
    """The function must be callable with the four arguments of the mechanism signature."""
    python_function = getattr(function, "py_func", function)  # a Numba dispatcher's Python function
    if not callable(function):
        raise ConfigError(f"mechanism {name!r} must be a function, got {describe(function)}")
    try:
        inspect.signature(python_function).bind(None, None, None, None)
    except TypeError:
        raise ConfigError(
            f"mechanism {name!r} must take (auction, ranked_index, ranked_bids, prices), got "
            f"{getattr(python_function, '__name__', describe(function))}{inspect.signature(python_function)}"
        ) from None
    except ValueError:  # no signature to inspect (a builtin callable): accept it
        pass


def mechanism_names() -> tuple[str, ...]:
    """Names ``MarketConfig(mechanism=...)`` accepts now: the built-ins, then those registered."""
    return tuple(member.value for member in Mechanism) + tuple(sorted(_CUSTOM_MECHANISMS))


def resolve_mechanism(value: object) -> Mechanism | CustomMechanism:
    """The mechanism ``value`` names: a :class:`Mechanism` or its value, a :class:`CustomMechanism`,
    a registered name, or an import path ``"module:attribute"`` (imported now)."""
    if isinstance(value, (Mechanism, CustomMechanism)):
        return value
    if isinstance(value, str):
        if value in _CUSTOM_MECHANISMS:
            return _CUSTOM_MECHANISMS[value]
        try:
            return Mechanism(value)
        except ValueError:
            pass
        if ":" in value:
            return _import_mechanism(value)
    raise ConfigError(
        f"mechanism must be one of {', '.join(mechanism_names())}, got {describe(value)} (plug one in with "
        "register_mechanism, or name it by import path 'module:attribute')"
    )


def _import_mechanism(path: str) -> CustomMechanism:
    module_name, _, attribute = path.partition(":")
    try:
        found = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(f"mechanism {path!r}: cannot import it ({error})") from None
    if isinstance(found, CustomMechanism):
        return found
    if not callable(found):
        raise ConfigError(f"mechanism {path!r} must name a mechanism function or CustomMechanism, got {describe(found)}")
    _check_mechanism_function(path, found)
    mechanism = CustomMechanism(path, found)
    _CUSTOM_MECHANISMS[path] = mechanism
    return mechanism


class ExposureModel(str, enum.Enum):
    """How the user's attention over the slots is drawn on each impression.

    * ``CHAINED`` (AuctionNet): each slot ``k`` has its own Bernoulli draw with probability
      ``slot_exposure[k]``, and a slot is seen only if the slot above it was seen (exposure
      continuity), so slot ``k`` is seen with probability ``slot_exposure[0] x ... x
      slot_exposure[k]``: 1.0, 0.8, 0.48 for (1.0, 0.8, 0.6).
    * ``NESTED``: one uniform ``u`` per impression, slot ``k`` seen iff ``u < slot_exposure[k]``,
      so ``slot_exposure`` are the marginal probabilities themselves (1.0, 0.8, 0.6). A smoother
      model with a single draw per impression; auctionsim's behaviour before the calibration.

    Either way the slots seen are a prefix of the slots.
    """

    CHAINED = "chained"
    NESTED = "nested"

    @property
    def code(self) -> int:
        """Integer code passed to the jitted kernels."""
        return _EXPOSURE_MODEL_CODES[self]


_EXPOSURE_MODEL_CODES = {ExposureModel.CHAINED: 0, ExposureModel.NESTED: 1}


@dataclass(frozen=True)
class TrafficConfig:
    """How impressions and their pValues are generated (AuctionNet's generator by default).

    Traffic volume: impressions are split over ticks by ``tick_shares`` (a daily curve; ``None``
    uses AuctionNet's published 48-tick curve, resampled to the market's number of ticks), each
    share multiplied per episode by ``U(volume_noise_range)`` held over windows of
    ``volume_noise_window`` ticks, then renormalised.

    pValue of impression ``j`` (in tick ``t``) for advertiser ``i`` of category ``c``:
    ``Normal(mean[i, t], std[i, t])`` clipped to [0, 1] where
    ``mean[i, t] = min(1, pvalue_base_mean x curve_c(t) x U(category_noise_range)[c, window]
    x U(advertiser_noise_range)[i, window])``. AuctionNet's category curves are flat
    (``category_curve_amplitude = 0``: all time structure comes from the per-window factors);
    an amplitude ``a > 0`` selects phase-shifted sinusoids ``curve_c(t) = 1 + a x
    sin(2 pi t / T + 2 pi c / C)``, which give categories lasting advantages at busy times.
    With ``first_in_category_unperturbed`` the advertiser with the lowest id of each category
    follows the category curve exactly (AuctionNet: the first advertiser of each category), the
    others draw the advertiser factors.

    pValue spread: ``std[i, t] = ratio[i, t] x mean[i, t]`` with ``ratio[i, t] ~
    Normal(m_i, std_ratio_tick_std x m_i)`` and ``m_i ~ Normal(std_ratio_mean, std_ratio_std)``,
    both set to 0.1 when negative and to 1 when above 1 (AuctionNet's clipping).

    Uncertainty: ``sigma = pValue x r`` with ``r ~ |Normal(m_i, m_i / 2)|`` capped at
    ``sigma_ratio_cap``; ``m_i ~ |Normal(sigma_ratio_mean, sigma_ratio_std)|``, set to 0.2 when
    above 0.3 (AuctionNet's rule).

    Conversions: the realised conversion probability is ``pValue + sigma x z`` clipped to
    [0, 1], with ``z`` a standard normal truncated to ``[-t u1, t u2]``, ``t =
    conversion_truncation``, and ``u1, u2 ~ U(0, 1)`` drawn per advertiser and episode (so an
    advertiser's realised conversion rate is biased up or down by up to about ``0.8 sigma``
    over an episode); a conversion is a Bernoulli draw of it and only happens when the ad is
    exposed.
    """

    tick_shares: tuple[float, ...] | None = None
    volume_noise_range: tuple[float, float] = (0.6, 1.4)
    volume_noise_window: int = 4
    pvalue_base_mean: float = 0.0005
    category_curve_amplitude: float = 0.0
    category_noise_range: tuple[float, float] = (0.3, 1.7)
    category_noise_window: int = 8
    advertiser_noise_range: tuple[float, float] = (0.5, 1.5)
    advertiser_noise_window: int = 8
    first_in_category_unperturbed: bool = True
    std_ratio_mean: float = 0.5
    std_ratio_std: float = 0.1
    std_ratio_tick_std: float = 0.2
    sigma_ratio_mean: float = 0.15
    sigma_ratio_std: float = 0.06
    sigma_ratio_cap: float = 0.3
    conversion_truncation: float = 2.0

    def __post_init__(self) -> None:
        if self.tick_shares is not None:
            shares = tuple(self.tick_shares)
            if len(shares) == 0:
                raise ConfigError("tick_shares must not be empty")
            for index, share in enumerate(shares):
                check_number(f"tick_shares[{index}]", share, low=0.0)
            if sum(shares) <= 0:
                raise ConfigError(f"tick_shares must have a positive sum, got {describe(shares)}")
            object.__setattr__(self, "tick_shares", tuple(float(s) for s in shares))
        for name in ("volume_noise_range", "category_noise_range", "advertiser_noise_range"):
            object.__setattr__(self, name, check_bounds(name, getattr(self, name)))
        if self.volume_noise_range[0] <= 0:
            raise ConfigError(f"volume_noise_range must be positive, got {self.volume_noise_range}")
        for name in ("volume_noise_window", "category_noise_window", "advertiser_noise_window"):
            check_int(name, getattr(self, name), low=1)
        check_number("pvalue_base_mean", self.pvalue_base_mean, low=0.0, high=1.0, low_open=True)
        check_number("category_curve_amplitude", self.category_curve_amplitude, low=0.0, high=1.0)
        check_number("std_ratio_mean", self.std_ratio_mean, low=0.0)
        check_number("std_ratio_std", self.std_ratio_std, low=0.0)
        check_number("std_ratio_tick_std", self.std_ratio_tick_std, low=0.0)
        check_number("sigma_ratio_mean", self.sigma_ratio_mean, low=0.0)
        check_number("sigma_ratio_std", self.sigma_ratio_std, low=0.0)
        check_number("sigma_ratio_cap", self.sigma_ratio_cap, low=0.0)
        check_number("conversion_truncation", self.conversion_truncation, low=0.0, low_open=True)
        if not isinstance(self.first_in_category_unperturbed, (bool, np.bool_)):
            raise ConfigError(
                f"first_in_category_unperturbed must be a bool, got {describe(self.first_in_category_unperturbed)}"
            )


@dataclass(frozen=True)
class MarketConfig:
    """The auction house.

    Attributes:
        n_ticks: decision ticks per episode (AuctionNet: 48, one every 30 minutes of a day).
        impressions_per_episode: impression opportunities per episode, split over ticks by the
            traffic curve.
        slot_exposure: exposure probability of each ad slot, best slot first; non-increasing in
            (0, 1]. Under the ``chained`` exposure model (AuctionNet's) slot ``k`` is seen with
            probability ``slot_exposure[k]`` given that slot ``k-1`` was seen; under ``nested``
            these are the slots' marginal probabilities (see :class:`ExposureModel` and
            :attr:`exposure_probabilities`).
        exposure_model: ``"chained"`` or ``"nested"`` (see :class:`ExposureModel`).
        mechanism: ``"gsp"``, ``"fpa"`` or ``"vcg"`` (see :class:`Mechanism`), or a plugged-in
            mechanism: its registered name (:func:`register_mechanism`), its
            :class:`CustomMechanism`, or an import path ``"module:attribute"``.
        reserve_price: minimum bid to take part and minimum price of any slot (currency).
        min_budget_to_bid: an advertiser stops bidding once its remaining budget falls below
            this (currency; AuctionNet: 0.1).
        seed: default seed of the first ``reset`` when none is given.
        candidates_per_impression: ``None`` (every advertiser bids on every impression, as in
            AuctionNet) or ``K``: each impression is contested by ``K`` advertisers retrieved
            from the population, so cost grows with impressions x K instead of impressions x N.
        candidate_own_category_share: with ``K`` set, the expected share of the ``K`` candidates
            retrieved from the impression's own category; the rest come from the other
            categories in proportion to their size.
        traffic: the traffic generator's parameters.
    """

    n_ticks: int = 48
    impressions_per_episode: int = 500_000
    slot_exposure: tuple[float, ...] = (1.0, 0.8, 0.6)
    exposure_model: ExposureModel | str = ExposureModel.CHAINED
    mechanism: Mechanism | CustomMechanism | str = Mechanism.GSP
    reserve_price: float = 0.01
    min_budget_to_bid: float = 0.1
    seed: int = 0
    candidates_per_impression: int | None = None
    candidate_own_category_share: float = 0.5
    traffic: TrafficConfig = field(default_factory=TrafficConfig)

    def __post_init__(self) -> None:
        check_int("n_ticks", self.n_ticks, low=1)
        check_int("impressions_per_episode", self.impressions_per_episode, low=1)
        slots = self.slot_exposure
        if not isinstance(slots, (tuple, list)) or len(slots) == 0:
            raise ConfigError(f"slot_exposure must be a non-empty sequence, got {describe(slots)}")
        slots = tuple(
            check_number(f"slot_exposure[{k}]", p, low=0.0, high=1.0, low_open=True)
            for k, p in enumerate(slots)
        )
        for k in range(1, len(slots)):
            if slots[k] > slots[k - 1]:
                raise ConfigError(
                    f"slot_exposure must be non-increasing, got slot_exposure[{k}]={slots[k]} > "
                    f"slot_exposure[{k - 1}]={slots[k - 1]}"
                )
        object.__setattr__(self, "slot_exposure", slots)
        object.__setattr__(self, "mechanism", resolve_mechanism(self.mechanism))
        object.__setattr__(self, "exposure_model", check_choice("exposure_model", self.exposure_model, ExposureModel))
        check_number("reserve_price", self.reserve_price, low=0.0)
        check_number("min_budget_to_bid", self.min_budget_to_bid, low=0.0)
        check_int("seed", self.seed, low=0, high=MAX_SEED)
        if self.candidates_per_impression is not None:
            check_int("candidates_per_impression", self.candidates_per_impression, low=1)
        check_number(
            "candidate_own_category_share", self.candidate_own_category_share, low=0.0, high=1.0
        )
        if not isinstance(self.traffic, TrafficConfig):
            raise ConfigError(f"traffic must be a TrafficConfig, got {describe(self.traffic)}")
        if self.traffic.tick_shares is not None and len(self.traffic.tick_shares) != self.n_ticks:
            raise ConfigError(
                f"traffic.tick_shares has {len(self.traffic.tick_shares)} entries but n_ticks is "
                f"{self.n_ticks}"
            )

    @property
    def n_slots(self) -> int:
        """Number of ad slots per impression."""
        return len(self.slot_exposure)

    @property
    def exposure_probabilities(self) -> tuple[float, ...]:
        """Marginal probability that each slot is seen (what an advertiser in slot ``k`` can
        expect; VCG prices and expected-value computations use these)."""
        if self.exposure_model is ExposureModel.NESTED:
            return self.slot_exposure
        return tuple(float(p) for p in np.cumprod(self.slot_exposure))


def _as_1d(name: str, values: object, dtype: type, length: int | None) -> np.ndarray:
    if dtype is int:
        array = as_integers(name, values)
    else:
        array = as_numeric_array(name, values, error=ConfigError)
    if array.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got shape {array.shape}")
    if length is not None and array.shape[0] != length:
        raise ConfigError(f"{name} must have length {length} (one per advertiser), got {array.shape[0]}")
    return array


@dataclass(frozen=True, eq=False)
class Population:
    """The advertisers of a market, one entry per advertiser, in array order.

    Attributes:
        ids: stable non-negative integer ids, unique. Randomness is keyed by id, so a permuted
            population produces exactly permuted outcomes.
        budgets: budget per episode (currency), > 0.
        cpa_targets: target cost per conversion (currency), > 0; the value of a conversion.
        categories: product category per advertiser, integers in ``[0, n_categories)``.
        n_categories: number of categories (default: ``max(categories) + 1``).
    """

    ids: np.ndarray
    budgets: np.ndarray
    cpa_targets: np.ndarray
    categories: np.ndarray
    n_categories: int | None = None
    _sorted_order: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        ids = _as_1d("ids", self.ids, int, None)
        size = ids.shape[0]
        if size == 0:
            raise ConfigError("a population needs at least one advertiser, got ids=[]")
        if (ids < 0).any():
            index = int(np.argmax(ids < 0))
            raise ConfigError(f"ids must be >= 0, got ids[{index}]={ids[index]}")
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise ConfigError(f"ids must be unique, got duplicate id {int(unique[counts > 1][0])}")
        budgets = _as_1d("budgets", self.budgets, float, size)
        cpa_targets = _as_1d("cpa_targets", self.cpa_targets, float, size)
        for name, array in (("budgets", budgets), ("cpa_targets", cpa_targets)):
            bad = ~np.isfinite(array) | (array <= 0)
            if bad.any():
                index = int(np.argmax(bad))
                raise ConfigError(f"{name} must be finite and > 0, got {name}[{index}]={array[index]}")
        categories = _as_1d("categories", self.categories, int, size)
        if (categories < 0).any():
            index = int(np.argmax(categories < 0))
            raise ConfigError(f"categories must be >= 0, got categories[{index}]={categories[index]}")
        n_categories = int(categories.max()) + 1 if self.n_categories is None else self.n_categories
        n_categories = check_int("n_categories", n_categories, low=1)
        if int(categories.max()) >= n_categories:
            raise ConfigError(
                f"categories must be < n_categories={n_categories}, got {int(categories.max())}"
            )
        for name, array in (
            ("ids", ids),
            ("budgets", budgets),
            ("cpa_targets", cpa_targets),
            ("categories", categories),
        ):
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        object.__setattr__(self, "n_categories", n_categories)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def size(self) -> int:
        """Number of advertisers."""
        return len(self)

    def permuted(self, order: Sequence[int] | np.ndarray) -> "Population":
        """The same advertisers in another array order: entry ``k`` is advertiser ``order[k]``."""
        order = as_integers("order", order)
        if order.ndim != 1 or sorted(order.tolist()) != list(range(len(self))):
            raise ConfigError(f"order must be a permutation of 0..{len(self) - 1}, got {describe(order)}")
        return Population(
            ids=self.ids[order],
            budgets=self.budgets[order],
            cpa_targets=self.cpa_targets[order],
            categories=self.categories[order],
            n_categories=self.n_categories,
        )

    def subset(self, positions: Sequence[int] | np.ndarray) -> "Population":
        """The advertisers at the given array positions (same ids and categories)."""
        positions = as_integers("positions", positions).reshape(-1)
        outside = (positions < 0) | (positions >= len(self))
        if outside.any():
            raise ConfigError(f"positions must lie in [0, {len(self)}), got {int(positions[np.argmax(outside)])}")
        return Population(
            ids=self.ids[positions],
            budgets=self.budgets[positions],
            cpa_targets=self.cpa_targets[positions],
            categories=self.categories[positions],
            n_categories=self.n_categories,
        )

    def positions_of(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Array positions of the given advertiser ids; raises ``ConfigError`` on an unknown id."""
        query = as_integers("advertiser ids", ids).reshape(-1)
        order = np.argsort(self.ids, kind="stable") if self._sorted_order is None else self._sorted_order
        object.__setattr__(self, "_sorted_order", order)
        sorted_ids = self.ids[order]
        found = np.minimum(np.searchsorted(sorted_ids, query), len(self) - 1)
        unknown = sorted_ids[found] != query
        if unknown.any():
            raise ConfigError(f"unknown advertiser id {int(query[np.argmax(unknown)])}")
        return order[found].astype(np.int64)
