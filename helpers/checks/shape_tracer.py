"""Checks for notebook 02 (stride), exercise 3: the forward-hook shape tracer ``trace_shapes``.

The oracle is ``torch.fx`` shape propagation (:func:`helpers.inspection.layer_shapes`),
which sees every call of a ``torch.nn`` layer in the order it runs without forward hooks.
The check also requires that the student's tracer removes its hooks, even when the
model raises, and prints one line per layer call. Test models with two paths and a
reshape bug live here too, for the hidden tests.
"""
from __future__ import annotations

import contextlib
import io
import numbers
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from helpers.inspection import layer_shapes

from .core import CheckFailed, NotAttempted, call_student, passed, reject_course_code, student_check

TRACE = "trace_shapes"



# ---------------------------------------------------------------- exercise 3: the tracer
class TwoPathNet(nn.Module):
    """Layers defined in one order and run in another; one ReLU module runs twice."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(16, 10)
        self.act = nn.ReLU()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = self.act(self.stem(x))                   # (N, 8, H, W)
        x = self.act(self.down(x))                   # (N, 16, H/2, W/2)
        return self.head(self.pool(x).flatten(1))    # (N, 10)


class ReshapeBugNet(nn.Module):
    """Fails in forward() between layers: the flatten size assumes a 32x32 input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 16 * 16, 10)

    def forward(self, x):
        x = self.conv(x)                             # (N, 4, H/2, W/2)
        return self.fc(x.view(x.shape[0], 4 * 16 * 16))


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),          # (N, 8, H/2, W/2)
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),                # (N, 16, H/4, W/4)
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),           # (N, 10)
    )


def missing_padding_cnn() -> nn.Module:
    """The classic shape bug: the Linear layer assumes the conv kept 32x32, but it gives 30x30."""
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 32 * 32, 10))


def _global_hook_dicts() -> list[dict]:
    from torch.nn.modules import module as module_mod
    return [module_mod._global_forward_hooks, module_mod._global_forward_pre_hooks]


@contextlib.contextmanager
def _watch_hooks(model: nn.Module, what: str, when: str) -> Iterator[None]:
    """After the block, fail if any forward hook is left on the model or registered globally.

    Leftover hooks are removed first, so one failed check does not disturb later cells.
    """
    before = [set(d) for d in _global_hook_dicts()]
    try:
        yield
    finally:
        leaked_global = False
        for d, keys in zip(_global_hook_dicts(), before):
            for key in set(d) - keys:
                del d[key]
                leaked_global = True
        leaked = [name or "(the model)" for name, m in model.named_modules()
                  if m._forward_hooks or m._forward_pre_hooks]
        for m in model.modules():
            m._forward_hooks.clear()
            m._forward_pre_hooks.clear()
    if leaked or leaked_global:
        where = f"on {', '.join(repr(n) for n in leaked)}" if leaked else "globally"
        raise CheckFailed(what, f"forward hooks were left {where} {when}.",
                          hint="Keep the handle that register_forward_hook returns and call "
                               "handle.remove() for every one in a `finally:` block, so they "
                               "are removed whether or not the forward pass raises.")


def _require_records(value: Any, what: str) -> list[tuple[str, str, tuple[int, ...]]]:
    rule = "a list of (name, type_name, output_shape) tuples"
    if not isinstance(value, (list, tuple)):
        raise CheckFailed(what, "the result is not a list.", expected=rule,
                          got=type(value).__name__, hint="Append one tuple per layer call to a "
                          "list inside the hook, and return the list.")
    records = []
    for item in value:
        ok = isinstance(item, (list, tuple)) and len(item) == 3
        if ok:
            name, type_name, shape = item
            ok = (isinstance(name, str) and isinstance(type_name, str)
                  and isinstance(shape, (tuple, list, torch.Size))
                  and all(isinstance(d, (numbers.Integral, np.integer)) for d in shape))
        if not ok:
            raise CheckFailed(what, "an entry of the list has the wrong form.", expected=rule,
                              got=repr(item)[:120],
                              hint="Record (name, type(module).__name__, tuple(output.shape)).")
        records.append((name, type_name, tuple(int(d) for d in shape)))
    return records


def _trace_hint(expected: list, got: list, model: nn.Module) -> str:
    containers = {name for name, m in model.named_modules() if next(m.children(), None) is not None}
    if any(name in containers for name, _, _ in got):
        return ("Hook only the leaf layers, the modules with no children (skip the model itself "
                "and containers such as nn.Sequential): next(module.children(), None) is None.")
    if sorted(got) == sorted(expected):
        return ("Record in the order the layers run: append inside the forward hook, which fires "
                "each time a layer finishes.")
    if [r[:2] for r in got] == [r[:2] for r in expected]:
        return ("The names are right but a shape is not: record tuple(output.shape), the hook's "
                "third argument, not the input's shape.")
    return ("Use the dotted names of model.named_modules() and type(module).__name__, and register "
            "a hook on each leaf layer before running the model once.")


def _expected_calls(model: nn.Module, input_shape: tuple) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, type, output shape) of each layer call, found by torch.fx shape propagation.

    Symbolic tracing sees the calls of torch.nn's own layers in the order they run,
    which is what a hook on every leaf layer sees for the models these checks use
    (all their leaves are torch.nn layers).
    """
    return [(name, type_name, shape) for name, type_name, shape, _ in layer_shapes(model, input_shape)]


def compare_trace(fn: Callable, model: nn.Module, input_shape: tuple, what: str = TRACE) -> None:
    """``fn(model, input_shape)`` must return PyTorch's layer shapes, print nothing, leave no hook."""
    reject_course_code(fn, what)
    expected = _expected_calls(model, input_shape)
    printed = io.StringIO()
    with _watch_hooks(model, what, "after a forward pass that worked"):
        with contextlib.redirect_stdout(printed):
            got = call_student(fn, model, input_shape, what=what)
    records = _require_records(got, what)
    if records != expected:
        first = next((i for i, (e, g) in enumerate(zip(expected, records)) if e != g),
                     min(len(expected), len(records)))
        raise CheckFailed(what, f"the trace of a {type(model).__name__} on input {input_shape} "
                                f"differs from entry {first} on ({len(records)} entries, "
                                f"{len(expected)} expected).",
                          expected=expected[first] if first < len(expected) else "no more entries",
                          got=records[first] if first < len(records) else "no more entries",
                          hint=_trace_hint(expected, records, model))
    if printed.getvalue():
        raise CheckFailed(what, "the function printed something although verbose=False.",
                          got=printed.getvalue().strip().splitlines()[0][:100],
                          hint="Print the table only `if verbose:`.")


def compare_trace_printout(fn: Callable, model: nn.Module, input_shape: tuple,
                           what: str = TRACE) -> None:
    """With ``verbose=True`` every layer's name and type must be printed, one line each at least."""
    reject_course_code(fn, what)
    printed = io.StringIO()
    with _watch_hooks(model, what, "after a forward pass that worked"):
        with contextlib.redirect_stdout(printed):
            records = _require_records(call_student(fn, model, input_shape, verbose=True,
                                                    what=what), what)
    text = printed.getvalue()
    missing = [f"{name} {type_name}" for name, type_name, _ in records
               if name not in text or type_name not in text]
    if missing or len(text.strip().splitlines()) < len(records):
        raise CheckFailed(what, "with verbose=True the printed table misses layers.",
                          expected=f"a line for each of the {len(records)} layer calls, "
                                   "with its name, type and output shape",
                          got=f"{len(text.strip().splitlines())} printed lines"
                              + (f"; missing: {missing[0]}" if missing else ""),
                          hint="After the forward pass, `if verbose:` print one line per record.")


def check_trace_cleans_up_on_error(fn: Callable, model: nn.Module, input_shape: tuple,
                                   ran_before_error: list[str], what: str = TRACE) -> None:
    """On a model whose forward pass raises, ``fn`` must raise too and leave no hook behind.

    It runs with ``verbose=True``: the lines of the layers that finished before the error
    (``ran_before_error``, their type names) must have been printed already.
    """
    reject_course_code(fn, what)
    printed = io.StringIO()
    with _watch_hooks(model, what, "after a forward pass that raised"):
        try:
            with contextlib.redirect_stdout(printed):
                fn(model, input_shape, verbose=True)
        except NotImplementedError:
            raise NotAttempted(what) from None
        except Exception:  # noqa: BLE001 - any error is the right outcome here
            pass
        else:
            raise CheckFailed(what, f"the forward pass of a {type(model).__name__} on input "
                                    f"{input_shape} raises, but your function returned normally.",
                              expected="the error, raised again", got="a normal return",
                              hint="Do not catch the error: remove the hooks in a `finally:` "
                                   "block and let the exception propagate to the caller.")
    missing = [t for t in ran_before_error if t not in printed.getvalue()]
    if missing:
        raise CheckFailed(what, "with verbose=True, the layers that ran before the error were "
                                "not printed.",
                          expected=f"lines for {', '.join(ran_before_error)}",
                          got=f"nothing printed for {', '.join(missing)}",
                          hint="Print each line inside the hook, as the layer finishes, so the "
                               "printout shows how far the forward pass got before it failed.")


@student_check
def check_trace_shapes(fn: Callable) -> None:
    torch.manual_seed(0)
    compare_trace(fn, small_cnn(), (2, 3, 32, 32))
    compare_trace(fn, TwoPathNet(), (2, 3, 16, 16))
    compare_trace_printout(fn, small_cnn(), (1, 3, 16, 16))
    check_trace_cleans_up_on_error(fn, missing_padding_cnn(), (2, 3, 32, 32),
                                   ran_before_error=["Conv2d", "ReLU", "Flatten"])
    passed(TRACE, "shapes agree with PyTorch, hooks are removed after success and after an "
                  "error, and the error reaches the caller")
