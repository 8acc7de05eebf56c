"""Property and fuzz tests over dtypes, shapes, ids and bounds (hypothesis).

Each test states, independently of the code under test, exactly which inputs are valid; the entry
point must accept every valid input unchanged and refuse every other one with an
``AuctionSimError`` that leaves the object as it was (and without a NumPy warning on the way)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from conftest import small_config, small_population
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from auctionsim import ConfigError, Market
from auctionsim.envs import AuctionParallelEnv
from auctionsim.errors import AuctionSimError
from auctionsim.validation import as_integers, check_int, check_number

N = 6
IDS = small_population().ids.tolist()  # 100, 107, ..., 135

# ---------------------------------------------------------------------------------- strategies
numpy_scalars = st.sampled_from([np.int8, np.int64, np.uint16, np.uint64, np.float16, np.float32, np.float64]).flatmap(
    lambda dtype: hnp.from_dtype(np.dtype(dtype)).map(dtype)
)
scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e6, 1e6).map(round).map(float),  # integral floats
    st.booleans(),
    st.text(max_size=3),
    st.none(),
    numpy_scalars,
    st.sampled_from([np.bool_(True), complex(1, 0), [1], (2,)]),
)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_integral(value: object) -> bool:
    """An integer, or a float with an integral value, within int64 range."""
    if _is_int(value):
        return -(2**63) <= int(value) < 2**63
    if isinstance(value, (float, np.floating)):
        return math.isfinite(value) and float(value).is_integer() and -(2.0**63) <= float(value) < 2.0**63
    return False


# ---------------------------------------------------------------------------------- the helpers
@given(scalars, st.integers(-5, 5), st.integers(0, 10))
def test_check_int_accepts_exactly_integers(value, low, span):
    high = low + span
    if _is_int(value) and low <= int(value) <= high:
        result = check_int("n", value, low=low, high=high)
        assert type(result) is int and result == int(value)
    else:
        with pytest.raises(ConfigError, match="^n must be"):
            check_int("n", value, low=low, high=high)


@given(scalars)
def test_check_number_accepts_exactly_finite_numbers(value):
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if numeric and math.isfinite(float(value)):
        assert check_number("x", value) == float(value)
    else:
        with pytest.raises(ConfigError, match="^x must be"):
            check_number("x", value)


@settings(max_examples=200)
@given(st.lists(scalars.filter(lambda v: not isinstance(v, (list, tuple))), max_size=4))
def test_as_integers_never_truncates_or_wraps(values):
    """Mixed lists included: ``[2**60 + 1, 1.0]`` must not pass through float64 and round."""
    if all(_is_integral(value) for value in values):
        assert as_integers("ids", values).tolist() == [int(value) for value in values]
    else:
        with pytest.raises(ConfigError, match="^ids"):
            as_integers("ids", values)


# ---------------------------------------------------------------------------------- Market.step
DTYPES = [np.bool_, np.int8, np.int64, np.uint8, np.uint64, np.float16, np.float32, np.float64, np.complex128, np.dtype("U3"), object]
SHAPES = [(), (N,), (N, 1), (1, N), (N - 1,), (N + 1,)]


@st.composite
def multiplier_arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(st.sampled_from(SHAPES + [(N,)] * 4))  # the right shape most often
    if dtype.kind == "O":
        elements = st.one_of(st.floats(0, 10), st.text(max_size=2))
    elif dtype.kind == "f":
        width = dtype.itemsize * 8
        elements = st.one_of(
            st.floats(0, 10, width=width),
            st.floats(0, None, allow_infinity=False, width=width),  # up to the dtype's largest float
            hnp.from_dtype(dtype, allow_nan=True, allow_infinity=True),
            st.sampled_from([dtype.type(v) for v in (1e149, 1e151, 1e300) if v < float(np.finfo(dtype).max)] + [np.finfo(dtype).max]),  # near max_bid
        )
    else:
        elements = hnp.from_dtype(dtype)
    return draw(hnp.arrays(dtype, shape, elements=elements))


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(small_config(n_ticks=3, impressions_per_episode=600), small_population())


def _snapshot(market: Market) -> tuple:
    return (market.seed, market.episode, market.tick, market.budget_left.tolist(), {k: v.tolist() for k, v in market.totals().items()})


@settings(max_examples=150)
@given(multiplier_arrays())
def test_market_step_accepts_exactly_valid_multipliers(market, multipliers):
    market.reset(seed=0)
    before = _snapshot(market)
    numeric = multipliers.dtype.kind in "iuf" and multipliers.shape == (N,)
    if numeric:
        values = multipliers.astype(np.float64)
        with np.errstate(over="ignore"):
            valid = bool(np.all(np.isfinite(values)) and np.all(values >= 0) and np.all(values * market.population.cpa_targets <= market.max_bid))
    else:
        valid = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if valid:
            result = market.step(multipliers)
            np.testing.assert_array_equal(result.multipliers, multipliers.astype(np.float64))
            assert market.tick == 1
            return
        with pytest.raises(AuctionSimError, match="multipliers"):
            market.step(multipliers)
    assert _snapshot(market) == before


@settings(max_examples=100)
@given(
    st.one_of(
        scalars,
        st.sampled_from(IDS).flatmap(  # known ids in every guise, valid or not
            lambda i: st.sampled_from([i, float(i), np.int32(i), np.uint64(i), np.float32(i), i + 0.5, i - 0.25, str(i), np.str_(i), i + 2**64])
        ),
    )
)
def test_advertiser_ids_are_accepted_exactly_when_integral_and_known(market, advertiser_id):
    market.reset(seed=0)
    before = _snapshot(market)
    known = _is_integral(advertiser_id) and int(advertiser_id) in IDS
    bids = np.full(market.impressions_next_tick, 0.05)
    if known:
        assert market.tick_values([advertiser_id]).advertiser_ids.tolist() == [int(advertiser_id)]
        market.step(np.ones(N), impression_bids={advertiser_id: bids})
        return
    with pytest.raises(AuctionSimError):
        market.tick_values([advertiser_id])
    try:
        hash(advertiser_id)
    except TypeError:
        return  # not a possible dict key
    with pytest.raises(AuctionSimError):
        market.step(np.ones(N), impression_bids={advertiser_id: bids})
    assert _snapshot(market) == before


# ---------------------------------------------------------------------------------- action bounds
bound_values = st.one_of(
    st.floats(0, 100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.1, 0.3, 0.7, 1.3, 3.4028235e38, 3.5e38, 1e39, 1.0 + 1e-9]),
    st.integers(-2, 10),
    st.booleans(),
    st.text(max_size=2),
)
bounds_strategy = st.one_of(
    st.tuples(bound_values, bound_values),
    st.lists(bound_values, min_size=0, max_size=3),
    st.none(),
    st.text(max_size=3),
)


def _valid_bounds(bounds: object) -> tuple[float, float] | None:
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        return None
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) and b >= 0 for b in bounds):
        return None
    with np.errstate(over="ignore"):
        low, high = (float(np.float32(b)) for b in bounds)  # the action space's dtype
    if not bounds[0] < bounds[1] or not math.isfinite(high) or not low < high:
        return None
    return low, high


@settings(max_examples=80)
@given(bounds_strategy)
def test_multiplier_bounds_and_the_actions_they_accept(bounds):
    expected = _valid_bounds(bounds)

    def make() -> AuctionParallelEnv:
        return AuctionParallelEnv(Market(small_config(n_ticks=3, impressions_per_episode=600), small_population()), multiplier_bounds=bounds)

    if expected is None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ConfigError, match="multiplier_bounds"):
                make()
        return
    env = make()
    low, high = env.multiplier_bounds
    assert (low, high) == expected
    space = env.action_space(env.possible_agents[0])
    assert (float(space.low[0]), float(space.high[0])) == (low, high)
    env.reset(seed=0)
    for inside in (space.low, space.high, np.float64(low), np.float64(high)):
        env.step({agent: inside for agent in env.agents})
        env.reset(seed=0)
    for outside in (np.nextafter(low, -np.inf), np.nextafter(high, np.inf)):
        if outside < 0:
            continue
        with pytest.raises(AuctionSimError, match="adv_"):
            env.step_arrays(np.full(N, outside))
        assert env.market.tick == 0
