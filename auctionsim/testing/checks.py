"""Checkers users call on their own mechanisms, market configurations and bidders.

Each checker searches for a counterexample to a list of properties with hypothesis and returns a
:class:`CheckReport`: which properties held, and for each one that failed the smallest
counterexample hypothesis found (shrunk) with the reason. ``assert report`` fails a pytest test
with the whole report as its message; :meth:`CheckReport.raise_for_failure` does the same
outside pytest.

* :func:`check_mechanism`: one impression's auction (a function with the signature of
  :mod:`auctionsim.mechanisms`, a registered or built-in name): the output contract, prices at
  most bids (or equal to them for a first-price auction), reserve respected, winners hold the
  top bids, permutation equivariance (the outcome, by advertiser id, does not depend on the
  order of the bidders or of the population's rows), determinism.
* :func:`check_market`: whole small episodes of a market configuration: permutation
  equivariance, determinism by seed, the hard budget cap, individual rationality, exposure
  continuity, reserve respected.
* :func:`check_policy`: a population policy (a bidder for many advertisers) must not depend on
  its advertisers' rows: permuting them permutes its multipliers; and it is deterministic given
  the episode seed.

Equalities hold exactly by default; ``rtol``/``atol`` state a tolerance. Inequalities (price at
most bid, spend at most budget, ...) allow a relative rounding slack of ``1e-12`` on top.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import hypothesis
import numpy as np
from hypothesis import HealthCheck
from hypothesis import strategies as st

from auctionsim.config import CustomMechanism, MarketConfig, Mechanism, Population, resolve_mechanism
from auctionsim.envs import AuctionParallelEnv, PopulationPolicy, play_episode
from auctionsim.errors import ConfigError, describe
from auctionsim.market import Market, TickResult
from auctionsim.mechanisms import BUILTIN_MECHANISMS
from auctionsim.testing import strategies
from auctionsim.validation import check_int, check_number, check_seed

__all__ = [
    "MARKET_PROPERTIES",
    "MECHANISM_PROPERTIES",
    "POLICY_PROPERTIES",
    "CheckReport",
    "PropertyResult",
    "check_market",
    "check_mechanism",
    "check_policy",
]

_SLACK = 1e-12  # relative rounding slack of inequalities (VCG's closed form, sums)


# ---------------------------------------------------------------------------------- reports
@dataclass(frozen=True)
class PropertyResult:
    """The outcome of one property.

    Attributes:
        name: the property.
        held: whether every example satisfied it.
        examples: examples tried (including the shrinking of a failure).
        counterexample: the smallest failing input hypothesis found, as a readable dict, or
            ``None`` when the property held.
        reason: why the counterexample fails (the assertion's message), ``""`` when it held.
    """

    name: str
    held: bool
    examples: int
    counterexample: dict[str, Any] | None = None
    reason: str = ""

    def __str__(self) -> str:
        if self.held:
            return f"  ok    {self.name} ({self.examples} examples)"
        return (
            f"  FAIL  {self.name} (after {self.examples} examples): {self.reason}\n"
            f"        smallest counterexample: {self.counterexample}"
        )


@dataclass(frozen=True)
class CheckReport:
    """What a checker found: one :class:`PropertyResult` per property checked.

    Truthy when every property held, so ``assert check_mechanism(...)`` is a pytest assertion
    whose failure message is the report. Index it by property name: ``report["deterministic"]``.
    """

    subject: str
    results: tuple[PropertyResult, ...]

    def __bool__(self) -> bool:
        return self.passed

    @property
    def passed(self) -> bool:
        return all(result.held for result in self.results)

    @property
    def failures(self) -> tuple[PropertyResult, ...]:
        return tuple(result for result in self.results if not result.held)

    def __getitem__(self, name: str) -> PropertyResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no property {name!r} in this report; it has {[r.name for r in self.results]}")

    def __str__(self) -> str:
        failed = len(self.failures)
        verdict = "every property held" if not failed else f"{failed} of {len(self.results)} properties failed"
        return "\n".join([f"{self.subject}: {verdict}", *(str(result) for result in self.results)])

    __repr__ = __str__

    def raise_for_failure(self) -> None:
        """Raise ``AssertionError`` with the report when a property failed."""
        if not self.passed:
            raise AssertionError(str(self))


def _check_properties(
    requested: Iterable[str] | None, known: Sequence[str], kind: str, max_examples: object, seed: object, rtol: object, atol: object
) -> tuple[str, ...]:
    """The properties to check (all of ``known`` for ``None``), after checking the search's settings."""
    check_int("max_examples", max_examples, low=1)
    if seed is not None:
        check_seed("seed", seed)
    check_number("rtol", rtol, low=0.0)
    check_number("atol", atol, low=0.0)
    if requested is None:
        return tuple(known)
    requested = tuple(requested)
    unknown = [name for name in requested if name not in known]
    if unknown or not requested:
        raise ConfigError(f"properties of a {kind} must be some of {', '.join(known)}, got {describe(requested)}")
    return requested


def _search(
    name: str,
    cases: st.SearchStrategy,
    check: Callable[[Any], None],
    describe_case: Callable[[Any], dict[str, Any]],
    max_examples: int,
    seed: int | None,
) -> PropertyResult:
    """Look for a case where ``check`` raises; hypothesis shrinks a failure and replays the
    smallest one last, so the last recorded failure is the minimal counterexample."""
    tried = 0
    failures: list[tuple[Any, BaseException]] = []

    def run(case: Any) -> None:
        nonlocal tried
        tried += 1
        try:
            check(case)
        except Exception as error:
            failures.append((case, error))
            raise

    test = hypothesis.given(cases)(run)
    test = hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )(test)
    if seed is not None:
        test = hypothesis.seed(seed)(test)
    try:
        test()
    except Exception:
        if not failures:
            raise  # hypothesis itself failed (e.g. an unsatisfiable strategy)
        case, error = failures[-1]
        reason = str(error) if isinstance(error, AssertionError) else f"raised {type(error).__name__}: {error}"
        return PropertyResult(name, False, tried, describe_case(case), reason.strip().splitlines()[0] if reason.strip() else "")
    return PropertyResult(name, True, tried)


def _same(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "biu" and b.dtype.kind in "biu":
        return bool(np.array_equal(a, b))
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)) if (rtol or atol) else bool(np.array_equal(a, b))


def _slack(value: np.ndarray | float, atol: float) -> np.ndarray | float:
    return atol + _SLACK * np.abs(value)


# ---------------------------------------------------------------------------------- mechanisms
MECHANISM_PROPERTIES = (
    "contract",
    "prices_at_most_bids",
    "reserve_respected",
    "winners_hold_top_bids",
    "permutation_equivariant",
    "deterministic",
)


@dataclass(frozen=True, eq=False)
class _Outcome:
    n_ranked: int
    n_winners: int
    ranked_index: np.ndarray
    ranked_bids: np.ndarray
    prices: np.ndarray
    bids_after: np.ndarray


def _run_mechanism(function: Callable, case: strategies.AuctionCase, data: np.ndarray | None) -> _Outcome:
    auction = case.auction(data)
    capacity = case.n_slots + 1
    ranked_index = np.full(capacity, -1, dtype=np.int64)
    ranked_bids = np.zeros(capacity)
    prices = np.zeros(case.n_slots)
    n_ranked, n_winners = function(auction, ranked_index, ranked_bids, prices)
    n_ranked, n_winners = int(n_ranked), int(n_winners)
    return _Outcome(
        n_ranked, n_winners, ranked_index[: max(n_ranked, 0)].copy(), ranked_bids[: max(n_ranked, 0)].copy(),
        prices[: max(n_winners, 0)].copy(), auction.bids,
    )


def _mechanism_under_test(mechanism: object, advertiser_data: Callable | None) -> tuple[str, Callable, Callable | None]:
    """``(description, function, advertiser_data)`` of a mechanism given as a built-in or
    registered name, a :class:`~auctionsim.CustomMechanism`, an import path or a function."""
    if isinstance(mechanism, (str, Mechanism)):
        resolved = resolve_mechanism(mechanism)
        if isinstance(resolved, CustomMechanism):
            data = advertiser_data if advertiser_data is not None else resolved.advertiser_data
            return f"mechanism {resolved.value!r}", resolved.function, data
        return f"mechanism {resolved.value!r}", BUILTIN_MECHANISMS[resolved.value], advertiser_data
    if callable(mechanism):
        name = getattr(getattr(mechanism, "py_func", mechanism), "__name__", describe(mechanism))
        return f"mechanism {name!r}", mechanism, advertiser_data
    raise ConfigError(f"mechanism must be a name, a CustomMechanism or a function, got {describe(mechanism)}")


def _contract(case: strategies.AuctionCase, outcome: _Outcome) -> None:
    n_bidders, n_slots = case.bids.shape[0], case.n_slots
    assert 0 <= outcome.n_ranked <= n_slots + 1, f"n_ranked={outcome.n_ranked} outside [0, S + 1 = {n_slots + 1}]"
    assert 0 <= outcome.n_winners <= min(outcome.n_ranked, n_slots), (
        f"n_winners={outcome.n_winners} outside [0, min(n_ranked, S) = {min(outcome.n_ranked, n_slots)}]"
    )
    index = outcome.ranked_index
    assert ((index >= 0) & (index < n_bidders)).all(), f"ranked_index {index.tolist()} outside the {n_bidders} bidders"
    assert np.unique(index).shape[0] == index.shape[0], f"a bidder is ranked twice: ranked_index {index.tolist()}"
    assert np.array_equal(outcome.bids_after, case.bids), f"bids changed: {case.bids.tolist()} -> {outcome.bids_after.tolist()}"
    winner_bids = case.bids[index[: outcome.n_winners]]
    assert (winner_bids > 0).all(), f"a winner does not take part: winning bids {winner_bids.tolist()}"
    assert np.array_equal(outcome.ranked_bids, case.bids[index]), (
        f"ranked_bids {outcome.ranked_bids.tolist()} are not the ranked bidders' bids {case.bids[index].tolist()}"
    )
    prices = outcome.prices
    assert (np.isfinite(prices) & (prices >= 0)).all(), f"prices must be finite and >= 0, got {prices.tolist()}"


def _prices_at_most_bids(case, outcome, rtol, atol) -> None:
    bids = case.bids[outcome.ranked_index[: outcome.n_winners]]
    over = outcome.prices > bids + _slack(bids, atol) + rtol * np.abs(bids)
    assert not over.any(), f"slot {int(np.argmax(over))} pays {outcome.prices[over][0]!r} above its bid {bids[over][0]!r}"


def _pays_bid(case, outcome, rtol, atol) -> None:
    bids = case.bids[outcome.ranked_index[: outcome.n_winners]]
    assert _same(outcome.prices, bids, rtol, atol), f"first price: prices {outcome.prices.tolist()} != winning bids {bids.tolist()}"


def _reserve_respected(case, outcome, rtol, atol) -> None:
    bids = case.bids[outcome.ranked_index[: outcome.n_winners]]
    reserve = case.reserve
    assert (bids >= reserve).all(), f"a bid below the reserve {reserve} won: winning bids {bids.tolist()}"
    low = outcome.prices < reserve - _slack(reserve, atol)
    assert not low.any(), f"a price below the reserve {reserve}: prices {outcome.prices.tolist()}"


def _winners_hold_top_bids(case, outcome, rtol, atol) -> None:
    eligible = np.sort(case.bids[(case.bids > 0) & (case.bids >= case.reserve)])[::-1]
    expected = eligible[: case.n_slots]
    bids = case.bids[outcome.ranked_index[: outcome.n_winners]]
    assert outcome.n_winners == expected.shape[0], (
        f"{outcome.n_winners} slots allocated, but {eligible.shape[0]} bids take part for {case.n_slots} slots"
    )
    assert np.array_equal(bids, expected), f"slots went to bids {bids.tolist()}, not the top bids {expected.tolist()}"


def _by_id(case: strategies.AuctionCase, outcome: _Outcome) -> np.ndarray:
    return case.population.ids[case.positions[outcome.ranked_index]]


def _equivariant(function, data_of, item, rtol, atol) -> None:
    case, contest_order, population_order = item
    permuted = case.permuted(contest_order, population_order)
    base = _run_mechanism(function, case, data_of(case.population))
    moved = _run_mechanism(function, permuted, data_of(permuted.population))
    assert (base.n_ranked, base.n_winners) == (moved.n_ranked, moved.n_winners), (
        f"(n_ranked, n_winners) {(base.n_ranked, base.n_winners)} became {(moved.n_ranked, moved.n_winners)} when reordered"
    )
    ids, moved_ids = _by_id(case, base), _by_id(permuted, moved)
    assert np.array_equal(ids, moved_ids), f"ranked advertiser ids {ids.tolist()} became {moved_ids.tolist()} when reordered"
    assert _same(base.prices, moved.prices, rtol, atol), f"prices {base.prices.tolist()} became {moved.prices.tolist()} when reordered"
    assert _same(base.ranked_bids, moved.ranked_bids, rtol, atol), "ranked bids changed when reordered"


def _deterministic(function, data_of, case, rtol, atol) -> None:
    first = _run_mechanism(function, case, data_of(case.population))
    second = _run_mechanism(function, case, data_of(case.population))
    assert (first.n_ranked, first.n_winners) == (second.n_ranked, second.n_winners), "two calls ranked differently"
    assert np.array_equal(first.ranked_index, second.ranked_index), (
        f"two calls ranked {first.ranked_index.tolist()} then {second.ranked_index.tolist()}"
    )
    assert _same(first.prices, second.prices, rtol, atol), f"two calls priced {first.prices.tolist()} then {second.prices.tolist()}"


def check_mechanism(
    mechanism: object,
    *,
    advertiser_data: Callable[[Population], Any] | None = None,
    first_price: bool = False,
    properties: Iterable[str] | None = None,
    cases: st.SearchStrategy[strategies.AuctionCase] | None = None,
    rtol: float = 0.0,
    atol: float = 0.0,
    max_examples: int = 200,
    seed: int | None = 0,
) -> CheckReport:
    """Check a mechanism's properties on random single-impression auctions.

    Args:
        mechanism: a function ``(auction, ranked_index, ranked_bids, prices) -> (n_ranked,
            n_winners)`` (jitted or plain Python, see :mod:`auctionsim.mechanisms`), a
            :class:`~auctionsim.CustomMechanism`, or a built-in, registered or import-path name.
        advertiser_data: ``population -> (F, N)`` data the mechanism reads (default: the
            registered mechanism's own).
        first_price: check that winners pay exactly their bids instead of at most their bids.
        properties: some of :data:`MECHANISM_PROPERTIES` (default: all):

            * ``contract``: ``0 <= n_winners <= min(n_ranked, S)``, distinct ranked bidders,
              ``ranked_bids`` are their bids, winners take part (bid ``> 0``), prices finite
              and ``>= 0``, bids left unchanged;
            * ``prices_at_most_bids`` (``first_price``: prices equal the winning bids);
            * ``reserve_respected``: winners bid at least the reserve and pay at least it;
            * ``winners_hold_top_bids``: slot ``k`` holds the ``k``-th highest bid taking part
              and no slot stays empty while a bid taking part is unallocated (a
              quality-weighted ranking fails this by design);
            * ``permutation_equivariant``: reordering the contest's bidders and the
              population's rows gives the same outcome by advertiser id;
            * ``deterministic``: the same auction twice gives the same outcome.
        cases: the auctions to search (default :func:`strategies.auctions`).
        rtol, atol: tolerance of the equalities (default: exact).
        max_examples: examples per property.
        seed: hypothesis's seed (``None``: random each call).
    """
    subject, function, data_function = _mechanism_under_test(mechanism, advertiser_data)
    chosen = _check_properties(properties, MECHANISM_PROPERTIES, "mechanism", max_examples, seed, rtol, atol)
    cases = strategies.auctions() if cases is None else cases

    def data_of(population: Population) -> np.ndarray | None:
        if data_function is None:
            return None
        return CustomMechanism(subject, function, data_function).data_for(population)

    def single(check: Callable) -> Callable[[strategies.AuctionCase], None]:
        return lambda case: check(case, _run_mechanism(function, case, data_of(case.population)), rtol, atol)

    checks: dict[str, tuple[st.SearchStrategy, Callable, Callable]] = {
        "contract": (cases, lambda case: _contract(case, _run_mechanism(function, case, data_of(case.population))), _describe_auction),
        "prices_at_most_bids": (cases, single(_pays_bid if first_price else _prices_at_most_bids), _describe_auction),
        "reserve_respected": (cases, single(_reserve_respected), _describe_auction),
        "winners_hold_top_bids": (cases, single(_winners_hold_top_bids), _describe_auction),
        "permutation_equivariant": (
            _with_orders(cases),
            lambda item: _equivariant(function, data_of, item, rtol, atol),
            lambda item: {**_describe_auction(item[0]), "contest_order": item[1].tolist(), "population_order": item[2].tolist()},
        ),
        "deterministic": (cases, lambda case: _deterministic(function, data_of, case, rtol, atol), _describe_auction),
    }
    results = []
    for name in chosen:
        strategy, check, describe_case = checks[name]
        label = "pays_bid" if name == "prices_at_most_bids" and first_price else name
        results.append(_search(label, strategy, check, describe_case, max_examples, seed))
    return CheckReport(subject, tuple(results))


@st.composite
def _with_orders(draw, cases: st.SearchStrategy[strategies.AuctionCase]):
    """``(case, contest order, population order)``."""
    case = draw(cases)
    return case, draw(strategies.permutations(case.bids.shape[0])), draw(strategies.permutations(len(case.population)))


def _describe_auction(case: strategies.AuctionCase) -> dict[str, Any]:
    return case.describe()


# ---------------------------------------------------------------------------------- markets
MARKET_PROPERTIES = (
    "permutation_equivariant",
    "deterministic",
    "budget_cap",
    "individually_rational",
    "exposure_continuity",
    "reserve_respected",
)


@dataclass(frozen=True, eq=False)
class _MarketCase:
    """A small episode: config, population, multipliers, seed, a reordering of the rows, and
    whether some advertisers bid explicit per-impression bids (drawn from the seed, by id)."""

    config: MarketConfig
    population: Population
    multipliers: np.ndarray
    seed: int
    order: np.ndarray
    explicit: bool

    def describe(self) -> dict[str, Any]:
        config = self.config
        return {
            "mechanism": str(config.mechanism.value),
            "slot_exposure": list(config.slot_exposure),
            "exposure_model": config.exposure_model.value,
            "reserve_price": config.reserve_price,
            "min_budget_to_bid": config.min_budget_to_bid,
            "candidates_per_impression": config.candidates_per_impression,
            "n_ticks": config.n_ticks,
            "impressions_per_episode": config.impressions_per_episode,
            "ids": self.population.ids.tolist(),
            "budgets": self.population.budgets.tolist(),
            "cpa_targets": self.population.cpa_targets.tolist(),
            "categories": self.population.categories.tolist(),
            "multipliers": self.multipliers.tolist(),
            "seed": self.seed,
            "order": self.order.tolist(),
            "explicit_bids": self.explicit,
        }


def _small(config: MarketConfig, n_ticks: int, impressions: int) -> MarketConfig:
    """``config``'s rules on a small episode."""
    traffic = config.traffic
    if traffic.tick_shares is not None and len(traffic.tick_shares) != n_ticks:
        traffic = dataclasses.replace(traffic, tick_shares=None)
    return dataclasses.replace(config, n_ticks=n_ticks, impressions_per_episode=impressions, traffic=traffic)


@st.composite
def _market_cases(draw, configs: st.SearchStrategy[MarketConfig], populations: st.SearchStrategy[Population] | None):
    config = draw(configs)
    candidates = config.candidates_per_impression
    if populations is None:
        low = max(2, candidates or 0)
        population = draw(strategies.populations(min_size=low, max_size=max(low, 6)))
    else:
        population = draw(populations)
    if candidates is not None and candidates > len(population):
        config = dataclasses.replace(config, candidates_per_impression=len(population))
    size = len(population)
    return _MarketCase(
        config=config,
        population=population,
        multipliers=draw(strategies.multipliers(size)),
        seed=draw(st.integers(0, 2**31)),
        order=draw(strategies.permutations(size)),
        explicit=draw(st.booleans()),
    )


def _explicit_ids(case: _MarketCase) -> np.ndarray:
    """The advertisers bidding explicit bids: the lower half of the ids (none without)."""
    if not case.explicit:
        return np.zeros(0, dtype=np.int64)
    return np.sort(case.population.ids)[: max(1, len(case.population) // 2)]


def _explicit_bids(case: _MarketCase, market: Market) -> dict[int, np.ndarray] | None:
    """Grid bids (many ties) for :func:`_explicit_ids`, a function of the seed, tick and id
    only, so the permuted market gets the same bids."""
    ids = _explicit_ids(case)
    if ids.size == 0:
        return None
    generator = np.random.default_rng([case.seed, market.tick])
    grid = np.array([bid for bid in strategies.BID_GRID if bid >= 0])
    return {int(i): generator.choice(grid, market.impressions_next_tick) for i in ids}


def _play(case: _MarketCase, population: Population, multipliers: np.ndarray) -> tuple[Market, list[TickResult]]:
    market = Market(case.config, population, record_history=False)
    market.reset(seed=case.seed)
    results = []
    while not market.done:
        results.append(market.step(multipliers, impression_bids=_explicit_bids(case, market), log_impressions=True))
    return market, results


_ADVERTISER_FIELDS = ("opportunities", "wins", "exposures", "conversions", "spend", "value_won", "mean_bid", "budget_left")


def _market_equivariant(case: _MarketCase, rtol: float, atol: float) -> None:
    order = case.order
    market, base = _play(case, case.population, case.multipliers)
    moved_market, moved = _play(case, case.population.permuted(order), case.multipliers[order])
    episode, moved_episode = market.episode_metrics(), moved_market.episode_metrics()
    for name in ("social_welfare", "revenue"):
        value, moved_value = getattr(episode, name), getattr(moved_episode, name)
        assert _same(np.float64(moved_value), np.float64(value), rtol, atol), f"the episode's {name} {value!r} became {moved_value!r} when reordered"
    assert _same(moved_episode.score, episode.score[order], rtol, atol), "the advertisers' scores changed when reordered"
    for tick, (a, b) in enumerate(zip(base, moved)):
        for name in _ADVERTISER_FIELDS:
            expected, got = getattr(a, name)[order], getattr(b, name)
            assert _same(got, expected, rtol, atol), (
                f"tick {tick}: {name} of the reordered market {got.tolist()} != the original's, reordered, {expected.tolist()}"
            )
        for name in ("winners", "ranked_bidders", "exposed", "converted", "slots_seen"):
            assert np.array_equal(getattr(a.log, name), getattr(b.log, name)), f"tick {tick}: the log's {name} (by id) changed when reordered"
        for name in ("prices", "ranked_bids", "least_winning_cost"):
            assert _same(getattr(b.log, name), getattr(a.log, name), rtol, atol), f"tick {tick}: the log's {name} changed when reordered"


def _market_deterministic(case: _MarketCase, rtol: float, atol: float) -> None:
    _, first = _play(case, case.population, case.multipliers)
    _, second = _play(case, case.population, case.multipliers)
    for tick, (a, b) in enumerate(zip(first, second)):
        for name in _ADVERTISER_FIELDS:
            assert np.array_equal(getattr(a, name), getattr(b, name)), f"tick {tick}: {name} differs between two runs of seed {case.seed}"
        for name in ("winners", "prices", "exposed", "converted"):
            assert np.array_equal(getattr(a.log, name), getattr(b.log, name)), f"tick {tick}: the log's {name} differs between two runs"


def _budget_cap(case: _MarketCase, rtol: float, atol: float) -> None:
    market, _ = _play(case, case.population, case.multipliers)
    spend = market.totals()["spend"]
    budgets = case.population.budgets
    over = spend > budgets + _slack(budgets, atol)
    assert not over.any(), f"advertiser id {int(case.population.ids[over][0])} spent {spend[over][0]!r} of a budget of {budgets[over][0]!r}"
    assert (market.budget_left >= -_slack(budgets, atol)).all(), f"negative budget left: {market.budget_left.tolist()}"


def _individually_rational(case: _MarketCase, rtol: float, atol: float) -> None:
    market, _ = _play(case, case.population, case.multipliers)
    totals = market.totals()
    value_bidders = (case.multipliers <= 1.0) & ~np.isin(case.population.ids, _explicit_ids(case))
    value, spend = totals["value_won"][value_bidders], totals["spend"][value_bidders]
    loss = spend > value + _slack(value, atol)
    assert not loss.any(), (
        f"advertiser id {int(case.population.ids[value_bidders][loss][0])} bid at most its value "
        f"(multiplier {case.multipliers[value_bidders][loss][0]}) yet paid {spend[loss][0]!r} for value {value[loss][0]!r}"
    )


def _exposure_continuity(case: _MarketCase, rtol: float, atol: float) -> None:
    market, results = _play(case, case.population, case.multipliers)
    ids = case.population.ids
    paid = np.zeros(len(ids))
    for tick, result in enumerate(results):
        log = result.log
        allocated = log.winners >= 0
        assert (np.diff(allocated.astype(np.int8), axis=1) <= 0).all(), f"tick {tick}: allocated slots are not a prefix"
        assert (np.diff(log.exposed.astype(np.int8), axis=1) <= 0).all(), f"tick {tick}: exposed slots are not a prefix"
        slots = np.arange(log.exposed.shape[1])
        assert np.array_equal(log.exposed, allocated & (slots[None, :] < log.slots_seen[:, None])), (
            f"tick {tick}: exposed slots are not the allocated ones among the first slots_seen"
        )
        for position, advertiser in enumerate(ids):
            paid[position] += log.prices[log.exposed & (log.winners == advertiser)].sum()
    spend = market.totals()["spend"]
    assert np.allclose(spend, paid, rtol=max(rtol, 1e-9), atol=atol), (
        f"spend {spend.tolist()} is not the sum of the prices of exposed slots {paid.tolist()}"
    )


def _market_reserve(case: _MarketCase, rtol: float, atol: float) -> None:
    _, results = _play(case, case.population, case.multipliers)
    reserve = case.config.reserve_price
    for tick, result in enumerate(results):
        log = result.log
        allocated = log.winners >= 0
        low = allocated & (log.prices < reserve - _slack(reserve, atol))
        assert not low.any(), f"tick {tick}: a slot priced {log.prices[low][0]!r} below the reserve {reserve}"
        n_slots = allocated.shape[1]
        winning_bids = log.ranked_bids[:, :n_slots][allocated]
        assert (winning_bids >= reserve).all(), f"tick {tick}: a bid below the reserve {reserve} won ({winning_bids.min()!r})"


def check_market(
    config: MarketConfig | st.SearchStrategy[MarketConfig] | None = None,
    *,
    properties: Iterable[str] | None = None,
    populations: st.SearchStrategy[Population] | None = None,
    n_ticks: int = 2,
    impressions_per_episode: int = 300,
    rtol: float = 0.0,
    atol: float = 0.0,
    max_examples: int = 25,
    seed: int | None = 0,
) -> CheckReport:
    """Check a market configuration on random small episodes.

    Args:
        config: the configuration whose rules (mechanism, slots, exposure model, reserve,
            budget floor, retrieval, traffic model) are played on episodes of ``n_ticks`` ticks
            and ``impressions_per_episode`` impressions (``candidates_per_impression`` is
            capped at the population's size); or a strategy of configurations (default:
            :func:`strategies.market_configs` over the built-in mechanisms).
        properties: some of :data:`MARKET_PROPERTIES` (default: all):

            * ``permutation_equivariant``: reordering the population's rows (with its
              multipliers) reorders every per-advertiser outcome, and leaves the
              per-impression log (winners by id, prices, exposure, conversions) unchanged;
            * ``deterministic``: the same seed plays the same episode;
            * ``budget_cap``: no advertiser spends more than its budget;
            * ``individually_rational``: an advertiser bidding at most its value (multiplier
              ``<= 1``) never pays more than the value it wins;
            * ``exposure_continuity``: allocated and exposed slots are prefixes, the exposed
              ones are the allocated ones among the first ``slots_seen``, and advertisers pay
              exactly the prices of their exposed slots;
            * ``reserve_respected``: every price and winning bid is at least the reserve.
        populations: the populations to play (default :func:`strategies.populations`, at least
            the config's ``K`` advertisers); some advertisers also bid explicit grid bids.
        rtol, atol: tolerance of the equalities (default: exact).
        max_examples: episodes per property.
        seed: hypothesis's seed (``None``: random each call).
    """
    chosen = _check_properties(properties, MARKET_PROPERTIES, "market", max_examples, seed, rtol, atol)
    if config is None:
        configs = strategies.market_configs()
        subject = "market configurations"
    elif isinstance(config, MarketConfig):
        configs = st.just(_small(config, n_ticks, impressions_per_episode))
        subject = f"market with mechanism {config.mechanism.value!r}"
    elif isinstance(config, st.SearchStrategy):
        configs, subject = config, "market configurations"
    else:
        raise ConfigError(f"config must be a MarketConfig, a strategy of them or None, got {describe(config)}")
    cases = _market_cases(configs, populations)
    checks = {
        "permutation_equivariant": _market_equivariant,
        "deterministic": _market_deterministic,
        "budget_cap": _budget_cap,
        "individually_rational": _individually_rational,
        "exposure_continuity": _exposure_continuity,
        "reserve_respected": _market_reserve,
    }
    results = tuple(
        _search(name, cases, lambda case, check=checks[name]: check(case, rtol, atol), _MarketCase.describe, max_examples, seed)
        for name in chosen
    )
    return CheckReport(subject, results)


# ---------------------------------------------------------------------------------- policies
POLICY_PROPERTIES = ("permutation_equivariant", "deterministic")

_WIDE_BOUNDS = (0.0, 1e6)  # environments that only reject nonsense multipliers


@dataclass(frozen=True, eq=False)
class _PolicyCase:
    population: Population
    order: np.ndarray
    seed: int

    def describe(self) -> dict[str, Any]:
        return {
            "ids": self.population.ids.tolist(),
            "budgets": self.population.budgets.tolist(),
            "cpa_targets": self.population.cpa_targets.tolist(),
            "categories": self.population.categories.tolist(),
            "order": self.order.tolist(),
            "seed": self.seed,
        }


@st.composite
def _policy_cases(draw, populations: st.SearchStrategy[Population]):
    population = draw(populations)
    return _PolicyCase(population, draw(strategies.permutations(len(population))), draw(st.integers(0, 2**31)))


def check_policy(
    policy: PopulationPolicy | Callable[[], PopulationPolicy],
    *,
    config: MarketConfig | None = None,
    properties: Iterable[str] | None = None,
    populations: st.SearchStrategy[Population] | None = None,
    rtol: float = 0.0,
    atol: float = 0.0,
    max_examples: int = 20,
    seed: int | None = 0,
) -> CheckReport:
    """Check that a population policy treats its advertisers by what they are, not by their row.

    Plays whole episodes of a small market (``config``, default 3 ticks of 300 impressions;
    ``candidates_per_impression`` capped at the population's size) with ``policy`` bidding for
    everyone, through :func:`auctionsim.envs.play_episode`.

    Args:
        policy: a :class:`~auctionsim.envs.PopulationPolicy` (reset before every episode) or a
            function returning a fresh one.
        properties: some of :data:`POLICY_PROPERTIES` (default both):

            * ``permutation_equivariant``: with the population's rows reordered, every tick's
              multipliers are the original ones, reordered (a bidder must not depend on its row);
            * ``deterministic``: the same episode seed gives the same multipliers.
        populations: the populations (default :func:`strategies.populations`, 2 to 6 advertisers).
        rtol, atol: tolerance of the comparisons (default: exact).
        max_examples: episodes per property.
        seed: hypothesis's seed (``None``: random each call).
    """
    if isinstance(policy, PopulationPolicy):
        make_policy = lambda: policy  # noqa: E731
        subject = f"policy {type(policy).__name__}"
    elif callable(policy):
        make_policy = policy
        subject = f"policy from {getattr(policy, '__name__', describe(policy))}"
    else:
        raise ConfigError(f"policy must be a PopulationPolicy or a function returning one, got {describe(policy)}")
    chosen = _check_properties(properties, POLICY_PROPERTIES, "policy", max_examples, seed, rtol, atol)
    config = MarketConfig(n_ticks=3, impressions_per_episode=300) if config is None else config
    cases = _policy_cases(strategies.populations(min_size=2, max_size=6) if populations is None else populations)

    def actions(case: _PolicyCase, population: Population) -> np.ndarray:
        market_config = config
        if config.candidates_per_impression is not None and config.candidates_per_impression > len(population):
            market_config = dataclasses.replace(config, candidates_per_impression=len(population))
        env = AuctionParallelEnv(Market(market_config, population, record_history=False), multiplier_bounds=_WIDE_BOUNDS)
        return play_episode(env, make_policy(), seed=case.seed).actions

    def equivariant(case: _PolicyCase) -> None:
        base = actions(case, case.population)
        moved = actions(case, case.population.permuted(case.order))
        for tick in range(base.shape[0]):
            expected, got = base[tick, case.order], moved[tick]
            assert _same(got, expected, rtol, atol), (
                f"tick {tick}: with rows reordered the multipliers were {got.tolist()}, not the original's, "
                f"reordered, {expected.tolist()}"
            )

    def deterministic(case: _PolicyCase) -> None:
        first, second = actions(case, case.population), actions(case, case.population)
        assert _same(first, second, rtol, atol), f"two episodes with seed {case.seed} played {first.tolist()} then {second.tolist()}"

    checks = {"permutation_equivariant": equivariant, "deterministic": deterministic}
    results = tuple(_search(name, cases, checks[name], _PolicyCase.describe, max_examples, seed) for name in chosen)
    return CheckReport(subject, results)
