"""Checks for notebook 02 (stride).

The oracles are PyTorch itself, and private to this module:

* the output size of a configuration is the length that ``F.conv2d`` (or
  ``F.max_pool2d``, the only one of the two with ``ceil_mode``) returns on a
  zeros input; PyTorch refusing the configuration means "no output";
* (exercise 3, the shape tracer, is checked in ``shape_tracer.py``.)

``compute_network_sizes`` naturally calls the student's ``compute_output_size``.
So that a wrong ``compute_output_size`` costs only exercise 1's points, the
network check *lends* the student's function a correct ``compute_output_size``
(the PyTorch oracle :func:`_torch_output_size`) through the function's globals
while it runs, and puts the student's own back afterwards.

Every check refuses a function that comes from the course's ``helpers``
package (:func:`helpers.checks.core.reject_course_code`).
"""
from __future__ import annotations

import contextlib
import copy
import numbers
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .core import CheckFailed, call_student, expect_value_error, passed, reject_course_code, student_check

OUTPUT_SIZE = "compute_output_size"
NETWORK_SIZES = "compute_network_sizes"
ARGUMENTS = ("input_size", "kernel_size", "stride", "padding", "dilation", "ceil_mode")


# --------------------------------------------------------------------------- oracle
def _torch_output_size(input_size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                       dilation: int = 1, ceil_mode: bool = False, *, layer: str | None = None) -> int:
    """The output length PyTorch gives along one axis; ValueError when it gives none.

    ``layer`` is ``"conv"`` (F.conv2d, needs ``ceil_mode=False``) or ``"pool"``
    (F.max_pool2d, needs ``padding <= kernel_size // 2``); by default a
    convolution, or max pooling when ``ceil_mode`` is set. Only the height is
    measured: the input is (1, 1, input_size, 1) and the kernel (kernel_size, 1).
    """
    layer = layer or ("pool" if ceil_mode else "conv")
    x = torch.zeros(1, 1, input_size, 1)                               # (N, C, H, W)
    try:
        if layer == "conv":
            weight = torch.zeros(1, 1, kernel_size, 1)                 # (C_out, C_in, k, 1)
            out = F.conv2d(x, weight, stride=(stride, 1), padding=(padding, 0),
                           dilation=(dilation, 1))
        else:
            out = F.max_pool2d(x, (kernel_size, 1), stride=(stride, 1), padding=(padding, 0),
                               dilation=(dilation, 1), ceil_mode=ceil_mode)
    except RuntimeError as err:
        config = config_of(input_size, kernel_size, stride, padding, dilation, ceil_mode)
        reason = str(err).strip().splitlines()[0]
        raise ValueError(f"PyTorch gives no output for {describe_config(config)}: {reason}") from None
    return int(out.shape[2])


def config_of(input_size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False) -> dict:
    """The arguments of compute_output_size as a dict (the form the checks pass around)."""
    return dict(zip(ARGUMENTS, (input_size, kernel_size, stride, padding, dilation, ceil_mode)))


def describe_config(config: dict) -> str:
    return ", ".join(f"{k}={config[k]!r}" for k in ARGUMENTS if k in config)


def random_configs(n: int, seed: int, *, valid: bool = True) -> list[tuple[dict, int | None]]:
    """``n`` random configurations with PyTorch's size: valid ones, or ones with no output.

    Half are convolutions (any padding, ``ceil_mode=False``) and half max pools
    (``padding <= kernel_size // 2``, the limit PyTorch sets, and either ceil_mode).
    """
    rng = np.random.default_rng(seed)
    found: list[tuple[dict, int | None]] = []
    while len(found) < n:
        pool = bool(rng.integers(2))
        kernel = int(rng.integers(1, 8))
        small = rng.random() < 0.9
        config = dict(input_size=int(rng.integers(1, 33 if small else 301)), kernel_size=kernel,
                      stride=int(rng.integers(1, 5)),
                      padding=int(rng.integers(0, kernel // 2 + 1 if pool else 5)),
                      dilation=int(rng.integers(1, 4)),
                      ceil_mode=bool(pool and rng.integers(2)))
        try:
            size = _torch_output_size(**config, layer="pool" if pool else "conv")
        except ValueError:
            if not valid:
                found.append((config, None))
            continue
        if valid:
            found.append((config, size))
    return found


# ------------------------------------------------------------- exercise 1: the formula
def _formula(config: dict, *, plus_one: int = 1, use_dilation: bool = True, pad_sides: int = 2,
             use_ceil: bool = True, start_rule: bool = True) -> int:
    """The size formula with one part optionally left out; used only to name a likely bug."""
    n, k, s, p, d, ceil = (config[a] for a in ARGUMENTS)
    span = n + pad_sides * p - ((d if use_dilation else 1) * (k - 1) + 1)
    ceil = ceil and use_ceil
    out = (span + (s - 1 if ceil else 0)) // s + plus_one
    if ceil and start_rule and (out - 1) * s >= n + p:
        out -= 1
    return out


# Most specific first: a ceil_mode or dilation slip can look like a missing + 1.
BUG_HINTS = [
    (dict(use_ceil=False),
     "With ceil_mode=True the division rounds up instead of down, so a last, partial window "
     "counts: use math.ceil (or (a + stride - 1) // stride) in place of //."),
    (dict(start_rule=False),
     "With ceil_mode=True PyTorch drops a last window that would start in the right-hand "
     "padding: if (out - 1) * stride >= input_size + padding, the size is out - 1."),
    (dict(use_dilation=False),
     "Dilation puts `dilation - 1` gaps between the kernel's taps, so a kernel of size k spans "
     "dilation * (kernel_size - 1) + 1 input positions. Use that effective size in the formula."),
    (dict(plus_one=0),
     "You are one window short. The first window starts at position 0 and each further one "
     "`stride` later, so the count is floor((input_size + 2*padding - effective_kernel) / stride) + 1: "
     "the + 1 is that first window."),
    (dict(pad_sides=1),
     "Padding is added on both sides of the input: the padded length is input_size + 2 * padding."),
]
GENERIC_SIZE_HINT = ("Work this case through on paper: padded length input_size + 2*padding, "
                     "effective kernel dilation*(kernel_size-1)+1, then count the window positions.")


def likely_bug(config: dict, got: Any) -> str:
    """Hints for the known bugs whose formula gives ``got`` on ``config`` (at most two), or a generic one."""
    correct = _formula(config)
    hints = [hint for change, hint in BUG_HINTS
             if _formula(config, **change) != correct and _formula(config, **change) == got]
    return " Or: ".join(hints[:2]) or GENERIC_SIZE_HINT


def _require_int(value: Any, what: str, config: dict) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise CheckFailed(what, f"the result for {describe_config(config)} is not an integer.",
                          expected="an int", got=f"{value!r} ({type(value).__name__})",
                          hint="Use integer floor division `//` (and math.ceil for ceil_mode), "
                               "not `/`, so that the size is an int.")
    return int(value)


def compare_output_size(fn: Callable, config: dict, expected: int | None = None,
                        what: str = OUTPUT_SIZE) -> None:
    """Call ``fn`` on one configuration and compare with PyTorch's size."""
    reject_course_code(fn, what)
    expected = _torch_output_size(**config) if expected is None else expected
    try:
        got = call_student(fn, config["input_size"], config["kernel_size"],
                           **{k: config[k] for k in ARGUMENTS[2:]}, what=what)
    except CheckFailed as failure:
        if not isinstance(failure.__cause__, ValueError):
            raise
        hint = ("With ceil_mode=True a kernel that overhangs the padded input by less than one stride "
                "still gives one window: raise ValueError only when the size comes out below 1."
                if config["ceil_mode"] else
                "Raise ValueError only when the size comes out below 1; here it does not.")
        raise CheckFailed(what, f"it raised ValueError for {describe_config(config)}, which has an output.",
                          expected=expected, got=f"ValueError: {failure.__cause__}", hint=hint) from None
    got = _require_int(got, what, config)
    if got != expected:
        raise CheckFailed(what, f"wrong output size for {describe_config(config)}.",
                          expected=expected, got=got, hint=likely_bug(config, got))


def compare_output_size_with_torch(fn: Callable, n_configs: int = 200, seed: int = 0,
                                   what: str = OUTPUT_SIZE) -> int:
    """Compare ``fn`` with PyTorch on ``n_configs`` random valid configurations; return the count."""
    configs = random_configs(n_configs, seed)
    for config, size in configs:
        compare_output_size(fn, config, size, what)
    return len(configs)


def expect_no_output_error(fn: Callable, config: dict, what: str = OUTPUT_SIZE) -> None:
    """``fn`` must raise ValueError on a configuration that has no output."""
    reject_course_code(fn, what)
    args = (config["input_size"], config["kernel_size"])
    kwargs = {k: config[k] for k in ARGUMENTS[2:]}
    expect_value_error(lambda: fn(*args, **kwargs), what, f"{describe_config(config)} leaves no output",
                       returned="returned a size",
                       hint_raised="Compute the size first; if it is below 1, "
                                   "`raise ValueError(...)` with a sentence that says why.",
                       hint_returned="When the size comes out below 1 (the effective kernel does not "
                                     "fit in the padded input, even rounding up with ceil_mode), no "
                                     "window exists: `raise ValueError(...)` with a sentence that says why.")


def check_rejects_no_output(fn: Callable, n_configs: int = 20, seed: int = 0,
                            what: str = OUTPUT_SIZE) -> None:
    """Random configurations that PyTorch refuses must raise ValueError."""
    for config, _ in random_configs(n_configs, seed, valid=False):
        expect_no_output_error(fn, config, what)


# Hand-picked cases, each aimed at one part of the formula.
VISIBLE_OUTPUT_CASES = [
    config_of(32, 3, stride=1, padding=1),                    # "same" padding
    config_of(32, 3, stride=2, padding=1),                    # halves the size
    config_of(224, 7, stride=2, padding=3),                   # ResNet's first layer
    config_of(7, 3, stride=2),                                # no padding
    config_of(10, 3, dilation=2),                             # effective kernel 5
    config_of(17, 3, stride=2, padding=2, dilation=2),
    config_of(10, 3, stride=2, ceil_mode=True),               # rounds up: a partial window
    config_of(5, 2, stride=2, padding=1, ceil_mode=True),     # last window would start in padding
    config_of(2, 3, stride=2, ceil_mode=True),                # kernel longer than the input, yet one window
    config_of(6, 1, stride=3),
]
VISIBLE_NO_OUTPUT_CASES = [
    config_of(2, 3),                                          # kernel longer than the input
    config_of(4, 3, dilation=2),                              # effective kernel 5 > 4
    config_of(2, 3, stride=1, ceil_mode=True),                # rounding up cannot save a stride of 1
]


@student_check
def check_compute_output_size(fn: Callable) -> None:
    for config in VISIBLE_OUTPUT_CASES:
        compare_output_size(fn, config)
    for config in VISIBLE_NO_OUTPUT_CASES:
        expect_no_output_error(fn, config)
    passed(OUTPUT_SIZE, f"{len(VISIBLE_OUTPUT_CASES)} sizes agree with PyTorch and "
                        f"{len(VISIBLE_NO_OUTPUT_CASES)} impossible layers raise ValueError")


# ------------------------------------------------------ exercise 2: sizes through a network
@contextlib.contextmanager
def lend_correct_output_size(fn: Callable) -> Iterator[None]:
    """While inside, ``fn``'s module sees the PyTorch oracle as ``compute_output_size``."""
    namespace = getattr(fn, "__globals__", None)
    if namespace is None:
        yield
        return
    missing = object()
    own = namespace.get(OUTPUT_SIZE, missing)
    namespace[OUTPUT_SIZE] = _torch_output_size
    try:
        yield
    finally:
        if own is missing:
            namespace.pop(OUTPUT_SIZE, None)
        else:
            namespace[OUTPUT_SIZE] = own


def _torch_network_sizes(input_size: int, layers: list[dict]) -> list[int]:
    """Sizes after each layer, asking PyTorch one layer at a time."""
    sizes = [input_size]
    for layer in layers:
        sizes.append(_torch_output_size(sizes[-1], **layer))
    return sizes


def _require_sizes(value: Any, n: int, what: str) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise CheckFailed(what, "the result is not a list.", expected="a list of ints",
                          got=type(value).__name__, hint="Build a list: sizes = [input_size], "
                          "then sizes.append(...) once per layer, and return it.")
    if len(value) != n:
        raise CheckFailed(what, "the list has the wrong length.", expected=f"{n} sizes",
                          got=f"{len(value)} sizes",
                          hint="Start with the input size itself, then add one size per layer: "
                               "len(layers) + 1 entries.")
    if any(isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)) for v in value):
        raise CheckFailed(what, "not every entry is an integer.", got=repr(list(value)),
                          hint="Each entry is a size in pixels: an int.")
    return [int(v) for v in value]


def compare_network_sizes(fn: Callable, input_size: int, layers: list[dict],
                          what: str = NETWORK_SIZES) -> None:
    """Run ``fn(input_size, layers)`` and compare each size with PyTorch's."""
    reject_course_code(fn, what)
    expected = _torch_network_sizes(input_size, layers)
    given = copy.deepcopy(layers)
    with lend_correct_output_size(fn):
        got = _require_sizes(call_student(fn, input_size, given, what=what), len(expected), what)
    if given != layers:
        raise CheckFailed(what, "the function changed the `layers` list it was given.",
                          hint="Read the layer dicts; do not modify them or the list.")
    if got[0] != input_size:
        raise CheckFailed(what, "the first entry must be the input size itself.",
                          expected=input_size, got=got[0],
                          hint="Start the list with input_size, before any layer.")
    for i, (layer, want, have) in enumerate(zip(layers, expected[1:], got[1:])):
        if want != have:
            raise CheckFailed(what, f"wrong size after layer {i} ({layer}), starting from "
                                    f"input_size={input_size}.",
                              expected=expected, got=got,
                              hint="Feed each layer the size the previous layer produced: "
                                   "compute_output_size(sizes[-1], **layer).")


def expect_network_error(fn: Callable, input_size: int, layers: list[dict],
                         what: str = NETWORK_SIZES) -> None:
    """A network with a layer that leaves no output must raise ValueError."""
    reject_course_code(fn, what)
    with lend_correct_output_size(fn):
        expect_value_error(lambda: fn(input_size, copy.deepcopy(layers)), what,
                           f"a layer of {layers} on input size {input_size} leaves no output",
                           hint_raised="Let compute_output_size's ValueError propagate.",
                           hint_returned="Let compute_output_size's ValueError propagate: do not "
                                         "catch it, and do not stop at the first size below 1 "
                                         "without raising.")


def random_network(seed: int, max_layers: int = 6) -> tuple[int, list[dict]]:
    """A random input size and a chain of 1 to ``max_layers`` conv / pool layers that all fit."""
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(16, 129))]
    n_layers = int(rng.integers(1, max_layers + 1))
    layers: list[dict] = []
    for config, _ in random_configs(10 * max_layers, seed):      # candidate layers
        layer = {k: config[k] for k in ARGUMENTS[1:]}
        try:
            sizes.append(_torch_output_size(sizes[-1], **layer))
        except ValueError:
            continue                                             # does not fit here: skip it
        layers.append(layer)
        if len(layers) == n_layers:
            break
    return sizes[0], layers


def compare_random_networks(fn: Callable, n_networks: int = 20, seed: int = 0) -> None:
    for i in range(n_networks):
        compare_network_sizes(fn, *random_network(seed + i))


CONV3 = {"kernel_size": 3, "padding": 1}
POOL2 = {"kernel_size": 2, "stride": 2}
VISIBLE_NETWORKS = [
    (32, [CONV3, POOL2, CONV3, POOL2, CONV3, POOL2]),               # a small VGG-style stack
    (224, [{"kernel_size": 7, "stride": 2, "padding": 3},           # ResNet stem: conv 7x7 / 2,
           {"kernel_size": 3, "stride": 2, "padding": 1}]),         # then max pool 3x3 / 2
    (112, [{"kernel_size": 3, "stride": 2, "ceil_mode": True},      # pools with ceil_mode
           {"kernel_size": 3, "dilation": 2, "padding": 2}]),       # and a dilated conv
    (17, []),                                                       # no layers at all
]
VISIBLE_BROKEN_NETWORK = (8, [{"kernel_size": 3}, POOL2, {"kernel_size": 5}])   # 8 -> 6 -> 3 -> none


@student_check
def check_compute_network_sizes(fn: Callable) -> None:
    for input_size, layers in VISIBLE_NETWORKS:
        compare_network_sizes(fn, input_size, layers)
    expect_network_error(fn, *VISIBLE_BROKEN_NETWORK)
    passed(NETWORK_SIZES, f"{len(VISIBLE_NETWORKS)} networks agree with PyTorch layer by layer, "
                          "and an impossible layer raises ValueError")
