"""The C library's own functions through ctypes, where the platform has them (glibc's allocator
controls: ``malloc_trim``, ``mallopt``). Import-light: the image decode worker process uses it too."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Sequence


def libc_function(name: str, argtypes: Sequence[type] | None = None) -> Callable[..., int] | None:
    """The C library's function ``name`` returning a C ``int`` (with ``argtypes`` if given), or None
    where there is no C library to load or it has no such function (musl, macOS, Windows for glibc's
    allocator controls)."""
    path = ctypes.util.find_library("c")
    if not path:
        return None
    try:
        function = getattr(ctypes.CDLL(path), name)
    except (OSError, AttributeError):
        return None
    if argtypes is not None:
        function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return function
