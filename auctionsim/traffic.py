"""Traffic: which impressions arrive when, who contests them, and what each is worth to whom.

Per episode, :func:`generate_episode_traffic` draws the small parameter arrays of AuctionNet's
generative recipe (see :class:`auctionsim.config.TrafficConfig`): impressions per tick,
``pvalue_mean``/``pvalue_std`` per (tick, advertiser), the sigma ratio per advertiser, and the
random keys of every per-impression stream. The per-impression quantities (pValue, sigma,
realised conversion, candidates) are computed by the jitted functions below *inside* the auction
kernel, from counter-based draws keyed by advertiser id and impression index, so no
``(impressions x advertisers)`` matrix is ever stored.

Users who have their own per-impression pValues (e.g. from logs) pass them as
:class:`ExplicitTraffic` instead; the kernel then reads them rather than drawing them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from auctionsim import _jit  # noqa: F401  (package-wide Numba cache stamps)

from auctionsim import rng
from auctionsim.config import MarketConfig, Population
from auctionsim.errors import ConfigError, describe
from auctionsim.validation import as_numeric_array

__all__ = [
    "AUCTIONNET_TICK_SHARES",
    "KEY_PVALUE",
    "KEY_SIGMA",
    "KEY_CONVERSION_RATE",
    "KEY_CONVERSION",
    "KEY_TIE_BREAK",
    "auctionnet_tick_shares",
    "EpisodeTraffic",
    "ExplicitTraffic",
    "generate_episode_traffic",
    "impression_pvalue",
    "pvalue_from_normal",
    "impression_sigma",
    "impression_conversion",
    "retrieve_candidates",
]

# Number of coprime strides kept per category for candidate retrieval (a power of two).
_STRIDES_PER_CATEGORY = 16

# Rows of ``EpisodeTraffic.keys``: per-advertiser keys of the per-impression streams.
KEY_PVALUE = 0
KEY_SIGMA = 1
KEY_CONVERSION_RATE = 2
KEY_CONVERSION = 3
KEY_TIE_BREAK = 4
_KEY_STREAMS = (
    rng.STREAM_PVALUE,
    rng.STREAM_SIGMA,
    rng.STREAM_CONVERSION_RATE,
    rng.STREAM_CONVERSION,
    rng.STREAM_TIE_BREAK,
)


# AuctionNet's daily traffic curve: the share of the day's impressions in each of its 48 ticks
# (before the per-episode volume factors), as published with its generator. Busy at the start of
# the day, quietest at ticks 4-9, busiest around ticks 16-22.
AUCTIONNET_TICK_SHARES = (
    0.023012, 0.010762, 0.008822, 0.004816, 0.004799, 0.003329, 0.003393, 0.003033,
    0.004299, 0.004863, 0.011136, 0.012360, 0.018507, 0.017291, 0.026119, 0.024050,
    0.036409, 0.033095, 0.038111, 0.032375, 0.037192, 0.032876, 0.033528, 0.025498,
    0.023720, 0.022214, 0.026216, 0.020075, 0.022233, 0.020495, 0.022686, 0.020809,
    0.024124, 0.020575, 0.019990, 0.016486, 0.017456, 0.016890, 0.020426, 0.019787,
    0.024951, 0.025120, 0.031101, 0.028595, 0.030061, 0.025651, 0.025380, 0.025285,
)


def auctionnet_tick_shares(n_ticks: int) -> np.ndarray:
    """AuctionNet's daily traffic curve: share of the day's impressions in each tick (sums to 1).

    With 48 ticks these are AuctionNet's published shares, normalised; with another number of
    ticks, the day's cumulative share is interpolated linearly at the new tick boundaries, so
    each tick gets the traffic of the part of the day it covers (24 ticks: pairs summed).
    """
    shares = np.asarray(AUCTIONNET_TICK_SHARES, dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(shares) / shares.sum()])
    if n_ticks == shares.size:
        return np.diff(cumulative)
    boundaries = np.linspace(0.0, 1.0, n_ticks + 1)
    return np.diff(np.interp(boundaries, np.linspace(0.0, 1.0, shares.size + 1), cumulative))


def _split_impressions(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer counts proportional to ``weights`` summing exactly to ``total`` (largest remainder)."""
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    remainder = total - int(counts.sum())
    if remainder > 0:
        # Stable order: ties in the fractional part go to the earlier tick.
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:remainder]] += 1
    return counts


@dataclass(frozen=True, eq=False)
class ExplicitTraffic:
    """Per-impression pValues supplied by the user instead of the generative model.

    Attributes:
        pvalues: ``(n_impressions, n_advertisers)`` conversion probabilities in [0, 1], rows in
            arrival order, columns in the population's array order.
        sigmas: same shape, the pValues' uncertainty (>= 0); ``None`` means zero (the realised
            conversion probability is the pValue itself).
        impressions_per_tick: ``(n_ticks,)`` how many consecutive rows belong to each tick.
    """

    pvalues: np.ndarray
    impressions_per_tick: np.ndarray
    sigmas: np.ndarray | None = None

    def __post_init__(self) -> None:
        pvalues = np.ascontiguousarray(as_numeric_array("pvalues", self.pvalues, error=ConfigError))
        if pvalues.ndim != 2:
            raise ConfigError(f"pvalues must be 2-D (impressions, advertisers), got shape {pvalues.shape}")
        bad = ~np.isfinite(pvalues) | (pvalues < 0) | (pvalues > 1)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise ConfigError(f"pvalues must lie in [0, 1], got pvalues[{row}, {column}]={pvalues[row, column]}")
        counts = np.asarray(self.impressions_per_tick)
        if counts.ndim != 1 or counts.shape[0] == 0 or not np.issubdtype(counts.dtype, np.integer):
            raise ConfigError(f"impressions_per_tick must be a 1-D integer array, got {describe(self.impressions_per_tick)}")
        if (counts < 0).any() or int(counts.sum()) != pvalues.shape[0]:
            raise ConfigError(
                f"impressions_per_tick must be >= 0 and sum to the {pvalues.shape[0]} rows of pvalues, "
                f"got sum {int(counts.sum())}"
            )
        if self.sigmas is None:
            sigmas = np.zeros_like(pvalues)
        else:
            sigmas = np.ascontiguousarray(as_numeric_array("sigmas", self.sigmas, error=ConfigError))
            if sigmas.shape != pvalues.shape:
                raise ConfigError(f"sigmas must have the shape of pvalues {pvalues.shape}, got {sigmas.shape}")
            bad = ~np.isfinite(sigmas) | (sigmas < 0)
            if bad.any():
                row, column = np.argwhere(bad)[0]
                raise ConfigError(f"sigmas must be finite and >= 0, got sigmas[{row}, {column}]={sigmas[row, column]}")
        for array in (pvalues, sigmas):
            array.setflags(write=False)
        object.__setattr__(self, "pvalues", pvalues)
        object.__setattr__(self, "sigmas", sigmas)
        object.__setattr__(self, "impressions_per_tick", counts.astype(np.int64))


@dataclass(frozen=True, eq=False)
class EpisodeTraffic:
    """Everything the kernels need to generate one episode's impressions (small arrays only).

    Shapes use ``T`` ticks, ``N`` advertisers (array order), ``C`` categories.

    Attributes:
        tick_starts: ``(T + 1,)`` impression index at which each tick starts; tick ``t`` holds
            impressions ``tick_starts[t] .. tick_starts[t + 1] - 1`` (global arrival order).
        pvalue_mean, pvalue_std: ``(T, N)`` parameters of the pValue normal (per impression).
        sigma_ratio_mean: ``(N,)`` mean of the uncertainty ratio ``sigma / pValue``.
        truncation_cdf_low, truncation_cdf_width: ``(N,)`` each advertiser's truncation of its
            realised conversion rate's normal, ``[-t u1, t u2]``, as ``Phi(-t u1)`` and
            ``Phi(t u2) - Phi(-t u1)`` (``Phi`` the standard normal CDF).
        keys: ``(5, N)`` uint64 stream keys per advertiser, rows ``KEY_*`` in the kernel module.
        exposure_key, candidates_key: platform stream keys.
        category_offsets: ``(C + 1,)`` start of each category in ``category_members``.
        category_members: ``(N,)`` array positions grouped by category, in a per-episode
            pseudo-random order keyed by advertiser id.
        member_categories: ``(N,)`` category of each entry of ``category_members``.
        own_strides: ``(C, 16)`` strides coprime with each category's size.
        other_strides: ``(C, 16)`` strides coprime with the number of advertisers outside
            each category.
        explicit: the user's per-impression pValues, or ``None``.
    """

    seed: int
    episode: int
    tick_starts: np.ndarray
    pvalue_mean: np.ndarray
    pvalue_std: np.ndarray
    sigma_ratio_mean: np.ndarray
    truncation_cdf_low: np.ndarray
    truncation_cdf_width: np.ndarray
    keys: np.ndarray
    exposure_key: np.uint64
    candidates_key: np.uint64
    category_offsets: np.ndarray
    category_members: np.ndarray
    member_categories: np.ndarray
    own_strides: np.ndarray
    other_strides: np.ndarray
    explicit: ExplicitTraffic | None

    @property
    def retrieval(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The arrays :func:`retrieve_candidates` takes, as one tuple."""
        return (self.category_members, self.member_categories, self.category_offsets, self.own_strides, self.other_strides)

    @property
    def impressions_per_tick(self) -> np.ndarray:
        """``(T,)`` number of impressions in each tick."""
        return np.diff(self.tick_starts)


def _window_noise(keys: np.ndarray, n_ticks: int, window: int, low: float, high: float) -> np.ndarray:
    """``(T, len(keys))`` factors ``U(low, high)`` held constant over windows of ``window`` ticks."""
    n_windows = -(-n_ticks // window)
    uniforms = rng.uniform_array(keys, np.arange(n_windows, dtype=np.int64))  # (entities, windows)
    factors = low + (high - low) * uniforms
    return np.repeat(factors, window, axis=1)[:, :n_ticks].T


# AuctionNet's clipping of the pValue std ratio (below 0 -> 0.1, above 1 -> 1) and of the mean
# sigma ratio (above 0.3 -> 0.2).
_STD_RATIO_NEGATIVE_RESET = 0.1
_STD_RATIO_MAX = 1.0
_SIGMA_RATIO_MEAN_LIMIT = 0.3
_SIGMA_RATIO_MEAN_RESET = 0.2


def _clip_std_ratio(ratio: np.ndarray) -> np.ndarray:
    """AuctionNet's clipping of a pValue std ratio: negative -> 0.1, above 1 -> 1."""
    return np.where(ratio < 0.0, _STD_RATIO_NEGATIVE_RESET, np.minimum(ratio, _STD_RATIO_MAX))


@numba.njit(cache=True, error_model="numpy")
def _normal_cdf(x):
    """Standard normal CDF of each entry of a 1-D array."""
    out = np.empty_like(x)
    for index in range(x.shape[0]):
        out[index] = 0.5 * math.erfc(-x[index] / math.sqrt(2.0))
    return out


def _first_in_category(ids: np.ndarray, categories: np.ndarray, n_categories: int) -> np.ndarray:
    """``(N,)`` bool: whether each advertiser has the lowest id of its category (a property of
    the population, not of its array order)."""
    lowest = np.full(n_categories, np.iinfo(np.int64).max)
    np.minimum.at(lowest, categories, ids)
    return ids == lowest[categories]


def _coprime_strides(size: int, key: np.uint64) -> np.ndarray:
    """``_STRIDES_PER_CATEGORY`` pseudo-random strides in ``[1, size)`` coprime with ``size``."""
    if size <= 2:
        return np.ones(_STRIDES_PER_CATEGORY, dtype=np.int64)
    candidates = (rng.uniform_array(np.array([key], dtype=np.uint64), np.arange(256, dtype=np.int64))[0] * (size - 1)).astype(np.int64) + 1
    strides = [int(c) for c in candidates if math.gcd(int(c), size) == 1]
    strides = (strides or [1]) * (-(-_STRIDES_PER_CATEGORY // max(len(strides), 1)))
    return np.array(strides[:_STRIDES_PER_CATEGORY], dtype=np.int64)


def generate_episode_traffic(
    config: MarketConfig,
    population: Population,
    seed: int,
    episode: int,
    explicit: ExplicitTraffic | None = None,
) -> EpisodeTraffic:
    """Draw one episode's traffic parameters from ``(seed, episode)``, keyed by advertiser id."""
    traffic = config.traffic
    n_ticks = config.n_ticks
    ids = population.ids
    platform = np.array([rng.PLATFORM_ENTITY], dtype=np.int64)

    if explicit is not None:
        if explicit.pvalues.shape[1] != len(population):
            raise ConfigError(
                f"explicit pvalues have {explicit.pvalues.shape[1]} columns but the population has "
                f"{len(population)} advertisers"
            )
        if explicit.impressions_per_tick.shape[0] != n_ticks:
            raise ConfigError(
                f"explicit impressions_per_tick has {explicit.impressions_per_tick.shape[0]} ticks "
                f"but n_ticks is {n_ticks}"
            )
        if explicit.pvalues.shape[0] != config.impressions_per_episode:
            raise ConfigError(
                f"explicit pvalues have {explicit.pvalues.shape[0]} rows (impressions) but impressions_per_episode "
                f"is {config.impressions_per_episode}"
            )
        counts = explicit.impressions_per_tick
    else:
        shares = (
            np.asarray(traffic.tick_shares, dtype=np.float64)
            if traffic.tick_shares is not None
            else auctionnet_tick_shares(n_ticks)
        )
        volume_key = rng.stream_keys(seed, episode, rng.STREAM_TICK_VOLUME, platform)
        low, high = traffic.volume_noise_range
        noise = _window_noise(volume_key, n_ticks, traffic.volume_noise_window, low, high)[:, 0]
        counts = _split_impressions(config.impressions_per_episode, shares * noise)
    tick_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    # pValue mean per (tick, advertiser): base x category curve x category noise x advertiser noise.
    categories = population.categories
    n_categories = population.n_categories
    ticks = np.arange(n_ticks)
    phase = 2.0 * np.pi * ticks[:, None] / n_ticks + 2.0 * np.pi * np.arange(n_categories)[None, :] / n_categories
    category_curve = 1.0 + traffic.category_curve_amplitude * np.sin(phase)  # (T, C)
    category_keys = rng.stream_keys(seed, episode, rng.STREAM_CATEGORY_CURVE, np.arange(n_categories, dtype=np.int64))
    category_noise = _window_noise(category_keys, n_ticks, traffic.category_noise_window, *traffic.category_noise_range)
    advertiser_keys = rng.stream_keys(seed, episode, rng.STREAM_ADVERTISER_CURVE, ids)
    advertiser_noise = _window_noise(advertiser_keys, n_ticks, traffic.advertiser_noise_window, *traffic.advertiser_noise_range)
    if traffic.first_in_category_unperturbed:
        advertiser_noise[:, _first_in_category(ids, categories, n_categories)] = 1.0
    pvalue_mean = np.minimum(
        traffic.pvalue_base_mean * (category_curve * category_noise)[:, categories] * advertiser_noise, 1.0
    )

    # std = ratio x mean, ratio ~ Normal(m_i, tick std x m_i) and m_i ~ Normal(mean, std), clipped.
    ratio_draws = rng.normal_array(
        rng.stream_keys(seed, episode, rng.STREAM_STD_RATIO, ids), np.arange(n_ticks + 1, dtype=np.int64)
    )  # (N, T + 1): column 0 is the advertiser's mean ratio, columns 1.. the per-tick draws
    ratio_mean = _clip_std_ratio(traffic.std_ratio_mean + traffic.std_ratio_std * ratio_draws[:, 0])
    ratio = _clip_std_ratio(ratio_mean[:, None] * (1.0 + traffic.std_ratio_tick_std * ratio_draws[:, 1:]))
    pvalue_std = ratio.T * pvalue_mean

    sigma_draw = rng.normal_array(rng.stream_keys(seed, episode, rng.STREAM_SIGMA_RATIO, ids), np.zeros(1, dtype=np.int64))[:, 0]
    sigma_ratio_mean = np.abs(traffic.sigma_ratio_mean + traffic.sigma_ratio_std * sigma_draw)
    sigma_ratio_mean[sigma_ratio_mean > _SIGMA_RATIO_MEAN_LIMIT] = _SIGMA_RATIO_MEAN_RESET

    # Conversion-rate truncation [-t u1, t u2] per advertiser, as normal CDF values.
    truncation = traffic.conversion_truncation * rng.uniform_array(
        rng.stream_keys(seed, episode, rng.STREAM_CONVERSION_TRUNCATION, ids), np.arange(2, dtype=np.int64)
    )  # (N, 2): u1, u2 scaled
    truncation_cdf_low = _normal_cdf(np.ascontiguousarray(-truncation[:, 0]))
    truncation_cdf_width = _normal_cdf(np.ascontiguousarray(truncation[:, 1])) - truncation_cdf_low

    keys = np.stack([rng.stream_keys(seed, episode, stream, ids) for stream in _KEY_STREAMS])

    # Candidate retrieval: members of each category in an id-keyed pseudo-random order.
    order_keys = rng.stream_keys(seed, episode, rng.STREAM_MEMBER_ORDER, ids)
    members = np.lexsort((ids, order_keys, categories)).astype(np.int64)
    sizes = np.bincount(categories, minlength=n_categories)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    candidates_key = rng.stream_keys(seed, episode, rng.STREAM_CANDIDATES, platform)[0]
    # Stride keys: entity c for category c's own progression, C + c for its complement's.
    stride_keys = rng.stream_keys(seed, episode, rng.STREAM_CANDIDATES, np.arange(2 * n_categories, dtype=np.int64))
    own_strides = np.stack([_coprime_strides(int(sizes[c]), stride_keys[c]) for c in range(n_categories)])
    other_strides = np.stack(
        [_coprime_strides(len(population) - int(sizes[c]), stride_keys[n_categories + c]) for c in range(n_categories)]
    )

    arrays = dict(
        tick_starts=tick_starts,
        pvalue_mean=np.ascontiguousarray(pvalue_mean),
        pvalue_std=np.ascontiguousarray(pvalue_std),
        sigma_ratio_mean=sigma_ratio_mean,
        truncation_cdf_low=truncation_cdf_low,
        truncation_cdf_width=truncation_cdf_width,
        keys=np.ascontiguousarray(keys),
        category_offsets=offsets,
        category_members=members,
        member_categories=categories[members].astype(np.int64),
        own_strides=own_strides,
        other_strides=other_strides,
    )
    for array in arrays.values():
        array.setflags(write=False)
    return EpisodeTraffic(
        seed=seed,
        episode=episode,
        exposure_key=rng.stream_keys(seed, episode, rng.STREAM_EXPOSURE, platform)[0],
        candidates_key=candidates_key,
        explicit=explicit,
        **arrays,
    )


# --------------------------------------------------------------------------------------------
# Per-impression draws, called from the auction kernel. ``position`` is the advertiser's array
# position; ``impression`` the global index of the impression in the episode.


@numba.njit(cache=True, error_model="numpy", inline="always")
def impression_pvalue(pvalue_key, mean, std, impression):
    """pValue of one impression for one advertiser: ``Normal(mean, std)`` clipped to [0, 1]."""
    return pvalue_from_normal(mean, std, rng.normal_from_bits(rng.draw_bits(pvalue_key, impression)))


@numba.njit(cache=True, error_model="numpy", inline="always")
def pvalue_from_normal(mean, std, normal):
    """The pValue ``mean + std x normal`` clipped to [0, 1], from its standard normal draw."""
    return min(max(mean + std * normal, 0.0), 1.0)


@numba.njit(cache=True, error_model="numpy")
def impression_sigma(sigma_key, pvalue, ratio_mean, ratio_cap, impression):
    """Uncertainty of a pValue: ``pValue x min(|Normal(m, m / 2)|, cap)``."""
    ratio = abs(ratio_mean + 0.5 * ratio_mean * rng.normal_from_bits(rng.draw_bits(sigma_key, impression)))
    return pvalue * min(ratio, ratio_cap)


@numba.njit(cache=True, error_model="numpy")
def impression_conversion(rate_key, conversion_key, pvalue, sigma, truncation_cdf_low, truncation_cdf_width, impression):
    """Whether an exposed impression converts.

    The realised conversion probability is ``pValue + sigma x z`` clipped to [0, 1], with ``z``
    a standard normal truncated to the advertiser's interval (given by its CDF values, see
    :class:`EpisodeTraffic`), drawn by inversion; the conversion is a Bernoulli draw of it.
    """
    rate = pvalue
    if sigma > 0.0:
        uniform = rng.uniform_from_bits(rng.draw_bits(rate_key, impression))
        rate = min(max(pvalue + sigma * rng.normal_quantile(truncation_cdf_low + truncation_cdf_width * uniform), 0.0), 1.0)
    return rng.uniform_from_bits(rng.draw_bits(conversion_key, impression)) < rate


@numba.njit(cache=True, error_model="numpy", inline="always")
def _below(bits32, size):
    """Map 32 random bits to an integer in ``[0, size)`` by multiply-shift (Lemire's method; no
    division, bias below ``size / 2**32``)."""
    return np.int64((bits32 * np.uint64(size)) >> np.uint64(32))


@numba.njit(cache=True, error_model="numpy", inline="always")
def _progression_start(bits, size, strides, category):
    """Random start in ``[0, size)`` and random stride (from ``strides[category]``) of a progression."""
    start = _below(bits & np.uint64(0xFFFFFFFF), size)
    stride = strides[category, np.int64(bits >> np.uint64(32)) & (strides.shape[1] - 1)]
    return start, stride


@numba.njit(cache=True, error_model="numpy", inline="always")
def _wrap(position, size):
    """``position mod size`` for ``0 <= position < 2 size``."""
    return position - size if position >= size else position


@numba.njit(cache=True, error_model="numpy", inline="always")
def _walk(out, offset, count, start, stride, size, skip_from, skip):
    """``out[offset + k] = p_k + (skip if p_k >= skip_from else 0)`` for the progression
    ``p_k = (start + k x stride) mod size``, ``k < count``. Four interleaved chains keep the
    CPU busy (one chain is limited by its add-compare-select latency)."""
    p0 = start
    p1 = _wrap(p0 + stride, size)
    p2 = _wrap(p1 + stride, size)
    p3 = _wrap(p2 + stride, size)
    stride4 = (4 * stride) % size
    k = 0
    while k + 4 <= count:
        out[offset + k] = p0 + skip * (p0 >= skip_from)
        out[offset + k + 1] = p1 + skip * (p1 >= skip_from)
        out[offset + k + 2] = p2 + skip * (p2 >= skip_from)
        out[offset + k + 3] = p3 + skip * (p3 >= skip_from)
        p0 = _wrap(p0 + stride4, size)
        p1 = _wrap(p1 + stride4, size)
        p2 = _wrap(p2 + stride4, size)
        p3 = _wrap(p3 + stride4, size)
        k += 4
    if k < count:
        out[offset + k] = p0 + skip * (p0 >= skip_from)
    if k + 1 < count:
        out[offset + k + 1] = p1 + skip * (p1 >= skip_from)
    if k + 2 < count:
        out[offset + k + 2] = p2 + skip * (p2 >= skip_from)


@numba.njit(cache=True, error_model="numpy", inline="always")
def retrieve_candidates(impression, n_candidates, own_category_share, candidates_key, retrieval, out_members):
    """Fill ``out_members[:n_candidates]`` with the distinct advertisers contesting an impression.

    The advertisers are given as indices into ``category_members`` (whose entries are array
    positions), so that callers can keep per-advertiser data in that order and read each
    candidate's data from one place.

    The impression's category ``c`` is that of a uniformly drawn advertiser (so categories get
    traffic in proportion to their size). ``round(K x own_category_share)`` candidates
    (stochastically rounded, within what each side holds) come from ``c``, the rest from the
    other categories in proportion to size. Each side is walked along an arithmetic progression
    with a random start and a random stride coprime with its size, which yields distinct
    advertisers in O(1) each. Draws are keyed by the impression index and the member order by
    advertiser id, so the candidate set (as ids) does not depend on the population's array order.

    Args:
        retrieval: ``(category_members, member_categories, category_offsets, own_strides,
            other_strides)``, see :class:`EpisodeTraffic`.
    """
    category_members, member_categories, category_offsets, own_strides, other_strides = retrieval
    n_advertisers = category_members.shape[0]
    impression_key = rng.draw_bits(candidates_key, impression)
    bits = rng.draw_bits(impression_key, 0)
    category = member_categories[_below(bits >> np.uint64(32), n_advertisers)]
    base = category_offsets[category]
    own_size = category_offsets[category + 1] - base
    other_size = n_advertisers - own_size
    expected_own = n_candidates * own_category_share
    n_own = np.int64(expected_own + rng.uniform_from_bits(rng.draw_bits(impression_key, 1)))
    n_own = min(max(n_own, n_candidates - other_size), own_size, n_candidates)

    start, stride = _progression_start(rng.draw_bits(impression_key, 2), own_size, own_strides, category)
    # Own side: member base + p. Other side: the p-th member outside the category, i.e. p,
    # moved past the category's block once p reaches it.
    _walk(out_members, 0, n_own, start, stride, own_size, 0, base)
    if n_own < n_candidates:
        start, stride = _progression_start(rng.draw_bits(impression_key, 3), other_size, other_strides, category)
        _walk(out_members, n_own, n_candidates - n_own, start, stride, other_size, base, own_size)
    return n_candidates
