"""Property tests for your auction mechanism, market configuration or bidder.

What ``pettingzoo.test`` is for environments, this is for auctions: checkers you call on your
own objects, and the hypothesis strategies behind them for your own tests. Needs
``hypothesis`` (``pip install "auctionsim[testing]"``); ``import auctionsim`` works without it.

Checkers (each returns a :class:`CheckReport`: what held and, for what did not, the smallest
counterexample hypothesis found; ``assert report`` in pytest)::

    from auctionsim.testing import check_mechanism, check_market, check_policy

    assert check_mechanism(my_mechanism)                  # one impression's auction
    assert check_market(MarketConfig(mechanism="mine"))   # whole small episodes
    assert check_policy(MyPopulationPolicy())             # a bidder must not depend on its row

* :func:`check_mechanism`: output contract, prices at most bids (or equal, first price),
  reserve respected, winners hold the top bids, permutation equivariance, determinism.
* :func:`check_market`: permutation equivariance, determinism by seed, budget cap, individual
  rationality, exposure continuity, reserve respected.
* :func:`check_policy`: permutation equivariance (row independence), determinism by seed.

Strategies (:mod:`auctionsim.testing.strategies`): :func:`~strategies.market_configs`,
:func:`~strategies.populations`, :func:`~strategies.multipliers`,
:func:`~strategies.impression_bids`, :func:`~strategies.permutations`,
:func:`~strategies.auctions`.
"""

from __future__ import annotations

try:
    import hypothesis  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "auctionsim.testing needs hypothesis; install it with: pip install \"auctionsim[testing]\""
    ) from error

from auctionsim.testing import strategies
from auctionsim.testing.checks import (
    MARKET_PROPERTIES,
    MECHANISM_PROPERTIES,
    POLICY_PROPERTIES,
    CheckReport,
    PropertyResult,
    check_market,
    check_mechanism,
    check_policy,
)

__all__ = [  # checks.__all__ and the strategies module
    "MARKET_PROPERTIES",
    "MECHANISM_PROPERTIES",
    "POLICY_PROPERTIES",
    "CheckReport",
    "PropertyResult",
    "check_market",
    "check_mechanism",
    "check_policy",
    "strategies",
]
