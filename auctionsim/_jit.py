"""Numba caching that knows the package's kernels depend on one another.

Numba keys a cached kernel on the source of its own file only, but our kernels inline functions
from other modules (``rng``, ``traffic``, ``mechanisms``): after an edit to ``rng.py``, the
cached machine code of ``kernel.py`` would silently keep the old random draws. The locators
below stamp every jitted function of this package with a hash of all its jitted modules, so any
edit recompiles everything that may have inlined it. Import this module before defining jitted
functions (each jitted module does).
"""

from __future__ import annotations

import functools
import hashlib
import pathlib

from numba.core import caching

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
JIT_MODULES = ("rng.py", "traffic.py", "mechanisms.py", "kernel.py")


@functools.lru_cache(maxsize=None)
def _package_stamp(stats: tuple) -> str:
    digest = hashlib.sha256()
    for name in JIT_MODULES:
        digest.update((_PACKAGE_DIR / name).read_bytes())
    return digest.hexdigest()


class _PackageStampMixin:
    """Use the package-wide stamp for functions defined in this package; decline others."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if pathlib.Path(py_file).resolve().parent != _PACKAGE_DIR:
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        stats = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (_PACKAGE_DIR / n for n in JIT_MODULES))
        return _package_stamp(stats)


class _PackageUserProvidedLocator(_PackageStampMixin, caching.UserProvidedCacheLocator):
    pass


class _PackageInTreeLocator(_PackageStampMixin, caching.InTreeCacheLocator):
    pass


class _PackageUserWideLocator(_PackageStampMixin, caching.UserWideCacheLocator):
    pass


_LOCATORS = [_PackageUserProvidedLocator, _PackageInTreeLocator, _PackageUserWideLocator]
if _LOCATORS[0] not in caching.CacheImpl._locator_classes:
    caching.CacheImpl._locator_classes[0:0] = _LOCATORS
