"""The counter-based generator: distributions and key separation."""

from __future__ import annotations

import math

import numpy as np

from auctionsim import rng


def _draws(n=400_000, stream=rng.STREAM_PVALUE):
    keys = rng.stream_keys(11, 2, stream, np.array([5], dtype=np.int64))
    return keys, np.arange(n, dtype=np.int64)


def test_uniforms_are_uniform_on_the_open_interval():
    keys, counters = _draws()
    u = rng.uniform_array(keys, counters)[0]
    assert 0.0 < u.min() and u.max() < 1.0
    histogram = np.histogram(u, bins=20, range=(0, 1))[0] / u.size
    np.testing.assert_allclose(histogram, 0.05, atol=0.002)


def test_normals_match_the_standard_normal_cdf():
    keys, counters = _draws()
    z = np.sort(rng.normal_array(keys, counters)[0])
    cdf = np.array([0.5 * (1 + math.erf(x / math.sqrt(2))) for x in z[:: 100]])
    empirical = (np.arange(0, z.size, 100) + 0.5) / z.size
    assert np.max(np.abs(cdf - empirical)) < 0.004  # Kolmogorov-Smirnov distance
    assert abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.005
    # The exact tail formula reaches beyond the table's outermost cell (|z| > 3.4).
    assert z.min() < -3.6 and z.max() > 3.6


def test_streams_and_entities_get_independent_keys():
    ids = np.arange(1000, dtype=np.int64)
    keys = [rng.stream_keys(seed, episode, stream, ids) for seed in (0, 1) for episode in (0, 1) for stream in (1, 2)]
    everything = np.concatenate(keys)
    assert np.unique(everything).size == everything.size
    first, second = (rng.uniform_array(k[:2], np.arange(20_000, dtype=np.int64)) for k in keys[:2])
    assert abs(np.corrcoef(first[0], second[0])[0, 1]) < 0.03


def test_integer_keys_from_python_are_treated_as_unsigned():
    key = rng.stream_key(1, 0, rng.STREAM_EXPOSURE, rng.PLATFORM_ENTITY)
    assert rng.draw_bits(key, 3) == rng.draw_bits(np.uint64(key), 3)
    assert 0.0 < rng.uniform_from_bits(rng.draw_bits(key, 3)) < 1.0
