"""Counter-based random numbers keyed by (seed, episode, stream, entity, counter).

Every random quantity in a market is a pure function of its key: for example the pValue of
impression ``j`` for advertiser ``id`` in episode ``e`` is ``f(seed, e, STREAM_PVALUE, id, j)``.
Nothing is drawn from a sequential generator, so

* no ``(impressions x advertisers)`` matrix has to be stored: kernels compute draws where they
  need them, in any order, in parallel or lazily (conversions only for exposed winners);
* re-ordering the advertisers in the arrays permutes every outcome exactly, because a draw
  depends on the advertiser's stable id, never on its position (BPG paper, Assumption 2.1);
* an episode is exactly reproducible from its seed.

The construction is SplitMix64's: a 64-bit key per (seed, episode, stream, entity), then the
MurmurHash3 finaliser applied to ``key + counter * golden_ratio``. Normal variates come from a
4096-cell inverse-CDF table with linear interpolation (absolute error below 3e-6 in the 4094
central cells) and an exact rational tail formula (Acklam's, relative error 1.2e-9) in the two
outermost cells, which is several times faster than Box-Muller inside the auction loop.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numba
import numpy as np

from auctionsim import _jit  # noqa: F401  (package-wide Numba cache stamps)

__all__ = [
    "STREAM_PVALUE",
    "STREAM_SIGMA",
    "STREAM_CONVERSION_RATE",
    "STREAM_CONVERSION",
    "STREAM_TIE_BREAK",
    "STREAM_EXPOSURE",
    "STREAM_CANDIDATES",
    "STREAM_TICK_VOLUME",
    "STREAM_CATEGORY_CURVE",
    "STREAM_ADVERTISER_CURVE",
    "STREAM_STD_RATIO",
    "STREAM_SIGMA_RATIO",
    "STREAM_MEMBER_ORDER",
    "STREAM_CONVERSION_TRUNCATION",
    "PLATFORM_ENTITY",
    "mix64",
    "stream_key",
    "stream_keys",
    "draw_bits",
    "uniform_from_bits",
    "normal_from_bits",
    "normal_quantile",
    "uniform_array",
    "normal_array",
]

# Streams: one per kind of random quantity, so that changing how one quantity is drawn never
# shifts another.
STREAM_PVALUE = 1  # per (advertiser, impression): the pValue's normal draw
STREAM_SIGMA = 2  # per (advertiser, impression): the pValue's uncertainty ratio
STREAM_CONVERSION_RATE = 3  # per (advertiser, impression): realised conversion probability
STREAM_CONVERSION = 4  # per (advertiser, impression): the Bernoulli conversion draw
STREAM_TIE_BREAK = 5  # per (advertiser, impression): priority among equal bids
STREAM_EXPOSURE = 6  # per impression (platform entity): which slots are seen
STREAM_CANDIDATES = 7  # per impression (platform entity): candidate retrieval
STREAM_TICK_VOLUME = 8  # per tick window (platform entity): traffic volume noise
STREAM_CATEGORY_CURVE = 9  # per (category, tick window): category pValue noise
STREAM_ADVERTISER_CURVE = 10  # per (advertiser, tick window): advertiser pValue noise
STREAM_STD_RATIO = 11  # per (advertiser, tick): pValue std ratio
STREAM_SIGMA_RATIO = 12  # per advertiser: mean of the sigma ratio
STREAM_MEMBER_ORDER = 13  # per advertiser: order inside its category for retrieval
STREAM_CONVERSION_TRUNCATION = 14  # per advertiser: truncation of its realised conversion rate

# Entity used for platform-level streams (exposure, candidates, volume); advertiser ids are >= 0.
PLATFORM_ENTITY = -1

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SALT_EPISODE = np.uint64(0xD6E8FEB86659FD93)
_SALT_STREAM = np.uint64(0xA0761D6478BD642F)
_SALT_ENTITY = np.uint64(0xE7037ED1A0B428DB)
_TWO_POW_MINUS_53 = 1.0 / 9007199254740992.0
_TABLE_BITS = 12
_TABLE_CELLS = 1 << _TABLE_BITS


def _build_normal_table() -> np.ndarray:
    """Standard-normal quantiles at ``k / 4096`` for ``k = 0..4096`` (the ends are unused)."""
    inverse_cdf = NormalDist().inv_cdf
    table = np.zeros(_TABLE_CELLS + 1, dtype=np.float64)
    for k in range(1, _TABLE_CELLS):
        table[k] = inverse_cdf(k / _TABLE_CELLS)
    return table


_NORMAL_TABLE = _build_normal_table()


@numba.njit(cache=True, error_model="numpy", inline="always")
def mix64(value):
    """MurmurHash3's 64-bit finaliser: a bijective, well-avalanching mix of a uint64."""
    value = np.uint64(value)
    value ^= value >> np.uint64(33)
    value *= np.uint64(0xFF51AFD7ED558CCD)
    value ^= value >> np.uint64(33)
    value *= np.uint64(0xC4CEB9FE1A85EC53)
    value ^= value >> np.uint64(33)
    return value


@numba.njit(cache=True, error_model="numpy")
def stream_key(seed, episode, stream, entity):
    """The 64-bit key of one stream of draws for one entity (advertiser id, category, platform)."""
    key = mix64(np.uint64(seed) ^ np.uint64(0x2545F4914F6CDD1D))
    key = mix64(key + np.uint64(episode) * _SALT_EPISODE)
    key = mix64(key + np.uint64(stream) * _SALT_STREAM)
    return mix64(key + np.uint64(entity + 2) * _SALT_ENTITY)


@numba.njit(cache=True, error_model="numpy")
def stream_keys(seed, episode, stream, entities):
    """``stream_key`` for an array of entities (int64), returned as uint64 of the same length."""
    keys = np.empty(entities.shape[0], dtype=np.uint64)
    for index in range(entities.shape[0]):
        keys[index] = stream_key(seed, episode, stream, entities[index])
    return keys


@numba.njit(cache=True, error_model="numpy", inline="always")
def draw_bits(key, counter):
    """64 random bits: draw number ``counter`` (e.g. the impression index) of stream ``key``."""
    return mix64(np.uint64(key) + np.uint64(counter) * _GOLDEN)


@numba.njit(cache=True, error_model="numpy", inline="always")
def uniform_from_bits(bits):
    """A float64 uniform on the open interval (0, 1) from the top 53 bits."""
    # Signed conversion: unsigned 64-bit -> float is several instructions on x86-64.
    return (np.float64(np.int64(np.uint64(bits) >> np.uint64(11))) + 0.5) * _TWO_POW_MINUS_53


@numba.njit(cache=True, error_model="numpy", inline="always")
def _normal_tail(u):
    """Acklam's rational approximation of the lower-tail normal quantile (u < 0.02425)."""
    q = math.sqrt(-2.0 * math.log(u))
    numerator = (
        ((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e00) * q
          - 2.549732539343734e00) * q + 4.374664141464968e00) * q + 2.938163982698783e00
    )
    denominator = (
        (((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e00) * q
         + 3.754408661907416e00) * q + 1.0
    )
    return numerator / denominator


@numba.njit(cache=True, error_model="numpy", inline="always")
def normal_from_bits(bits):
    """A standard normal variate from 64 random bits (table inverse-CDF, exact tails)."""
    bits = np.uint64(bits)
    cell = np.int64(bits >> np.uint64(64 - _TABLE_BITS))
    if cell == 0 or cell == _TABLE_CELLS - 1:
        u = uniform_from_bits(bits)
        if u < 0.5:
            return _normal_tail(u)
        return -_normal_tail(1.0 - u)
    fraction = np.float64(np.int64((bits >> np.uint64(20)) & np.uint64(0xFFFFFFFF))) * (1.0 / 4294967296.0)
    low = _NORMAL_TABLE[cell]
    return low + (_NORMAL_TABLE[cell + 1] - low) * fraction


@numba.njit(cache=True, error_model="numpy", inline="always")
def normal_quantile(u):
    """The standard normal quantile of ``u`` in (0, 1), from the same table and tails as
    :func:`normal_from_bits` (absolute error below 3e-6 for ``1/4096 <= u <= 1 - 1/4096``)."""
    scaled = u * _TABLE_CELLS
    cell = np.int64(scaled)
    if cell <= 0 or cell >= _TABLE_CELLS - 1:
        if u < 0.5:
            return _normal_tail(u)
        return -_normal_tail(1.0 - u)
    low = _NORMAL_TABLE[cell]
    return low + (_NORMAL_TABLE[cell + 1] - low) * (scaled - cell)


@numba.njit(cache=True, error_model="numpy")
def _draw_array(keys, counters, normal):
    """``out[a, b]`` = draw ``counters[b]`` of stream ``keys[a]``: a standard normal if ``normal``,
    else a uniform on (0, 1)."""
    out = np.empty((keys.shape[0], counters.shape[0]), dtype=np.float64)
    for a in range(keys.shape[0]):
        for b in range(counters.shape[0]):
            bits = draw_bits(keys[a], counters[b])
            out[a, b] = normal_from_bits(bits) if normal else uniform_from_bits(bits)
    return out


def uniform_array(keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Uniforms for every (key, counter) pair: ``out[a, b] = U(keys[a], counters[b])``."""
    return _draw_array(keys, counters, False)


def normal_array(keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Standard normals for every (key, counter) pair: ``out[a, b] = Z(keys[a], counters[b])``."""
    return _draw_array(keys, counters, True)
