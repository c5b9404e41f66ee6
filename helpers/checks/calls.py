"""What the student's code actually called, whatever it was imported as.

An exercise that forbids a library shortcut (``nn.AdaptiveAvgPool2d`` in
global average pooling, torchvision's stochastic depth in the MBConv block)
forbids the layer class and its functional form alike, under any alias
(``from torch.nn.functional import adaptive_avg_pool2d as pool``). A static
look at the source cannot see through aliases; watching the calls can:

* :func:`calls_made` -- run a function under ``sys.setprofile`` and return
  its result and every Python function (by code object) and built-in function
  it called;
* :func:`refuse_calls` -- raise one :class:`CheckFailed` naming the forbidden
  function that was called.

The same functions serve the visible checks and the hidden tests, so a
forbidden call is reported in the student's kernel before grading.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

from .core import CheckFailed


def _key(fn: Callable) -> object:
    """What the profiler reports for a call of ``fn``: its code object, or the built-in itself."""
    fn = getattr(fn, "__func__", fn)          # a bound method
    return getattr(fn, "__code__", fn)


def calls_made(fn: Callable, *args, **kwargs) -> tuple[Any, set[object]]:
    """``fn(*args, **kwargs)`` and the set of code objects and built-ins called while it ran."""
    seen: set[object] = set()

    def profile(frame, event, arg):
        if event == "call":
            seen.add(frame.f_code)
        elif event == "c_call":
            seen.add(arg)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        result = fn(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    return result, seen


def refuse_calls(seen: set[object], forbidden: dict[str, Callable], what: str, *, hint: str) -> None:
    """Raise if any of ``forbidden`` (a description -> the function) was called."""
    for name, fn in forbidden.items():
        if _key(fn) in seen:
            raise CheckFailed(what, f"your code calls {name}, which this exercise asks you not to use.",
                              hint=hint)
