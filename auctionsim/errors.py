"""Exceptions raised by auctionsim.

Every validation error names the offending field and value, and is raised before any state
changes. The classes subclass the built-in ``ValueError``/``TypeError`` so callers that do not know
about auctionsim can still catch them the usual way.
"""

from __future__ import annotations


class AuctionSimError(Exception):
    """Root of every error raised deliberately by auctionsim."""


class ConfigError(AuctionSimError, ValueError):
    """A configuration field holds an invalid value."""


class ActionError(AuctionSimError, ValueError):
    """Bids or bid multipliers passed to a market or environment are invalid."""


class ActionTypeError(AuctionSimError, TypeError):
    """Bids or bid multipliers have the wrong type (not numeric, not array-like)."""


class EpisodeOverError(AuctionSimError, RuntimeError):
    """``step`` was called on a market whose episode has ended; call ``reset`` first."""


class MechanismError(AuctionSimError, RuntimeError):
    """A plugged-in mechanism returned an outcome that breaks the contract of
    :mod:`auctionsim.mechanisms` (or raised); the market is left as it was before the step."""


def describe(value: object, limit: int = 80) -> str:
    """Short ``repr`` of a value for error messages (long arrays are abbreviated)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
