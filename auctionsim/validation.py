"""One validation path per kind of input: integers, numbers, seeds, ids, bounds, numeric arrays.

Every entry point (configs, :class:`~auctionsim.market.Market`, the environments, the bidders and
the command line) checks its inputs with these functions, so one bad value gets one error
everywhere. Each raises an :class:`~auctionsim.errors.AuctionSimError` subclass that names the
field and the value (``error``: :class:`~auctionsim.errors.ConfigError` for settings by default;
entry points that take actions pass :class:`~auctionsim.errors.ActionError`), and none changes any
state, so callers validate everything first and then act.

Kinds:

* integers: Python and NumPy integers; ``bool`` is rejected (``True`` is not a count), as are
  floats, even integral ones (``2.0`` as a count is a typo more often than not).
* numbers: integers and floats (Python or NumPy), finite; ``bool`` rejected.
* seeds: integers in ``[0, 2**63)``.
* ids: advertiser ids and array positions, integers of int64 range. Integral floats (``5.0``, as
  read from a CSV) are accepted; ``5.7``, ``"5"``, ``True`` and ``2**63`` are rejected, never
  truncated or wrapped.
* numeric arrays: int, uint or float dtypes (not bool, complex, strings or objects), as float64.
"""

from __future__ import annotations

import enum
import math
from typing import Any, Iterable

import numpy as np

from auctionsim.errors import ActionError, ActionTypeError, AuctionSimError, ConfigError, describe

__all__ = [
    "MAX_SEED",
    "as_ids",
    "as_integers",
    "as_numeric_array",
    "as_single_number",
    "check_bounds",
    "check_choice",
    "check_id",
    "check_int",
    "check_number",
    "check_seed",
    "is_integer",
    "is_number",
]

MAX_SEED = 2**63 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

ErrorClass = type[AuctionSimError]


def is_integer(value: object) -> bool:
    """Whether ``value`` is a Python or NumPy integer (``bool`` is not)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """Whether ``value`` is a Python or NumPy integer or float (``bool`` is not; may be NaN)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_int(name: str, value: object, low: int | None = None, high: int | None = None, *, error: ErrorClass = ConfigError) -> int:
    """``value`` as an ``int`` in ``[low, high]`` (either end optional)."""
    if not is_integer(value):
        raise error(f"{name} must be an integer, got {describe(value)}")
    value = int(value)  # type: ignore[arg-type]
    if low is not None and value < low:
        raise error(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise error(f"{name} must be <= {high}, got {value}")
    return value


def check_number(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    error: ErrorClass = ConfigError,
) -> float:
    """``value`` as a finite ``float`` in the interval from ``low`` to ``high`` (either end optional,
    closed unless ``low_open``/``high_open``)."""
    if not is_number(value):
        raise error(f"{name} must be a number, got {describe(value)}")
    try:
        value = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int beyond float range
        raise error(f"{name} must be finite, got {describe(value)}") from None
    if not math.isfinite(value):
        raise error(f"{name} must be finite, got {value}")
    if low is not None and (value <= low if low_open else value < low):
        raise error(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value >= high if high_open else value > high):
        raise error(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def check_seed(name: str, value: object, *, error: ErrorClass = ConfigError) -> int:
    """A seed: an integer in ``[0, 2**63)``."""
    if not is_integer(value) or not 0 <= int(value) <= MAX_SEED:  # type: ignore[arg-type]
        raise error(f"{name} must be an integer in [0, 2**63), got {describe(value)}")
    return int(value)  # type: ignore[arg-type]


def check_choice(name: str, value: object, choices: Iterable[str] | type[enum.Enum], *, error: ErrorClass = ConfigError) -> Any:
    """``value`` if it is one of ``choices`` (strings); for a string enum class, its member (given
    as the member or its value)."""
    if isinstance(choices, type) and issubclass(choices, enum.Enum):
        try:
            return choices(value)
        except (ValueError, TypeError):
            valid = ", ".join(str(member.value) for member in choices)
            raise error(f"{name} must be one of {valid}, got {describe(value)}") from None
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise error(f"{name} must be one of {', '.join(choices)}, got {describe(value)}")
    return value


def check_bounds(
    name: str, value: object, low: float | None = 0.0, *, strict: bool = False, error: ErrorClass = ConfigError
) -> tuple[float, float]:
    """A ``(low, high)`` pair of finite numbers, both ``>= low``, with ``low <= high`` (``<`` if
    ``strict``)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise error(f"{name} must be a (low, high) pair, got {describe(value)}")
    first = check_number(f"{name}[0]", value[0], low=low, error=error)
    second = check_number(f"{name}[1]", value[1], low=low, error=error)
    if second < first or (strict and second == first):
        raise error(f"{name} must have low {'<' if strict else '<='} high, got {describe(value)}")
    return (first, second)


def as_integers(name: str, values: object, *, error: ErrorClass = ConfigError) -> np.ndarray:
    """``values`` (a scalar, a sequence or an array) as an int64 array of the same shape.

    Accepts integers and integral floats within int64 range; rejects fractions, NaN, strings,
    booleans, objects and anything beyond int64 (never truncated or wrapped)."""
    if isinstance(values, (str, bytes)) or (
        isinstance(values, (list, tuple)) and any(isinstance(item, (bool, np.bool_)) for item in values)
    ):
        raise error(f"{name} must be integers, got {describe(values)}")
    try:
        array = np.asarray(values)
        if array.dtype.kind == "f" and not isinstance(values, np.ndarray):
            # NumPy turns mixed Python/NumPy ints and floats into float64, rounding large ints:
            # look at the items themselves instead.
            array = np.asarray(values, dtype=object)
    except (TypeError, ValueError, OverflowError):
        raise error(f"{name} must be integers, got {describe(values)}") from None
    kind = array.dtype.kind
    if kind == "i":
        return array.astype(np.int64)
    if kind == "u":
        if array.size and int(array.max()) > _INT64_MAX:
            raise error(f"{name} must be integers below 2**63, got {int(array.max())}")
        return array.astype(np.int64)
    if kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(array) | (np.floor(array) != array) | (array < _INT64_MIN) | (array >= 2.0**63)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise error(f"{_indexed(name, index)} must be an integer, got {describe(array[index].item())}")
        return array.astype(np.int64)
    if kind == "O":
        result = np.empty(array.shape, dtype=np.int64)
        for index, item in np.ndenumerate(array):
            if isinstance(item, (float, np.floating)) and math.isfinite(item) and float(item).is_integer():
                item = int(item)
            if not is_integer(item):
                raise error(f"{_indexed(name, index)} must be an integer, got {describe(item)}")
            if not _INT64_MIN <= int(item) <= _INT64_MAX:
                raise error(f"{_indexed(name, index)} must be an integer in int64 range, got {describe(item)}")
            result[index] = int(item)
        return result
    raise error(f"{name} must be integers, got {describe(values)} (dtype {array.dtype})")


def _indexed(name: str, index: tuple[int, ...]) -> str:
    return f"{name}[{', '.join(map(str, index))}]" if index else name


def as_ids(name: str, values: object, *, error: ErrorClass = ConfigError) -> np.ndarray:
    """Advertiser ids (non-negative integers, see :func:`as_integers`) as an int64 array."""
    ids = as_integers(name, values, error=error)
    if (ids < 0).any():
        index = tuple(int(i) for i in np.argwhere(ids < 0)[0])
        raise error(f"{name} must be >= 0, got {_indexed(name, index)}={ids[index]}")
    return ids


def check_id(name: str, value: object, *, error: ErrorClass = ConfigError) -> int:
    """One advertiser id (see :func:`as_ids`) as an ``int``."""
    ids = as_ids(name, value, error=error)
    if ids.ndim != 0:
        raise error(f"{name} must be one advertiser id, got {describe(value)}")
    return int(ids)


def as_numeric_array(name: str, values: object, *, error: ErrorClass = ActionTypeError) -> np.ndarray:
    """``values`` as a float64 array (a copy); ``error`` naming ``name`` if they are not numbers
    (strings, objects, booleans, complex or ragged input). Shape and range checks are the caller's."""
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):
        raise error(f"{name} must be an array of numbers, got {describe(values)}") from None
    if array.dtype.kind not in "iuf":
        raise error(f"{name} must be an array of numbers, got dtype {array.dtype} ({describe(values)})")
    return array.astype(np.float64)


def as_single_number(name: str, value: object) -> float:
    """One number given as a scalar or a ``(1,)`` array (a ``Box((1,))`` action); ``(1, 1)`` and
    other shapes are rejected rather than flattened."""
    array = as_numeric_array(name, value)
    if array.shape not in ((), (1,)):
        raise ActionError(f"{name} must be one multiplier (a scalar or shape (1,)), got shape {array.shape}")
    return float(array.reshape(()))
