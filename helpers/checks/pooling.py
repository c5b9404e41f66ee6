"""Checks for notebook 01 (pooling).

The reference is PyTorch itself: ``torch.nn.functional.max_pool2d`` and
``avg_pool2d`` computed in float64, and ``torch.autograd`` through them for the
backward pass, are the oracle every answer is compared against, so no
reference solution ships with the course.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .calls import calls_made, refuse_calls
from .core import (CheckFailed, assert_dtype, assert_shape, assert_values_close,
                   call_student, count_python_lines, expect_value_error, grading_rng, passed,
                   require_ndarray, require_tensor, student_check)

POOL_SHAPE_HINT = ("Check the output-size formula: out = (size - kernel_size) // stride + 1 "
                   "for each spatial axis, and keep the channel axis when the input has one.")
MODE_HINTS = {
    "max": "Each output value is the largest value of its window: np.max over the window.",
    "avg": "Each output value is the mean of its window: np.mean over the window.",
}
# The loop detector runs the function on two input sizes with the same kernel
# and stride. Vectorised code runs the same Python lines whatever the size (a
# loop over the kernel_size**2 window offsets or over channels is fine); a
# loop over output rows or positions runs more lines on the larger input.
VECTORISED_SIZES = (16, 64)
VECTORISED_SLACK = 10          # lines the larger input may add (a branch or two)


def reference_pool(x: np.ndarray, mode: str, kernel_size: int, stride: int) -> np.ndarray:
    """PyTorch's pooling of a (H, W) or (C, H, W) array, computed in float64."""
    t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    batched = t[None] if t.ndim == 3 else t[None, None]        # (1, C, H, W)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    out = pool(batched, kernel_size, stride)                    # (1, C, H', W')
    return (out[0] if x.ndim == 3 else out[0, 0]).numpy()


def compare_pool(fn: Callable, mode: str, shape: tuple, kernel_size: int | None = None,
                 stride: int | None = None, *, seed: int = 0, dtype=np.float64,
                 what: str | None = None) -> None:
    """Run ``fn`` on a random input of ``shape`` and compare with PyTorch.

    ``kernel_size``/``stride`` of None means: call ``fn(x)`` and rely on its
    defaults, which must be 2 and 2.
    """
    what = what or getattr(fn, "__name__", "your function")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x_before = x.copy()
    kwargs = {}
    if kernel_size is not None:
        kwargs["kernel_size"] = kernel_size
    if stride is not None:
        kwargs["stride"] = stride
    result = require_ndarray(call_student(fn, x, what=what, **kwargs), what)
    k = 2 if kernel_size is None else kernel_size
    s = 2 if stride is None else stride
    expected = reference_pool(x, mode, k, s)
    context = f"input shape {shape}, kernel_size={k}, stride={s}"
    if not np.array_equal(x, x_before):
        raise CheckFailed(what, "the function changed its input array.",
                          hint="Write results into a new array; never assign into x.")
    assert_shape(result.shape, expected.shape, what, hint=f"{POOL_SHAPE_HINT} (Case: {context}.)")
    assert_dtype(result.dtype, x.dtype, what)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    assert_values_close(result, expected.astype(dtype), what, rtol=rtol, atol=rtol,
                        context=context, hint=MODE_HINTS[mode])


def random_pool_cases(exercise: str, n: int = 3) -> list[tuple[tuple, int, int, int]]:
    """``n`` random valid (shape, kernel_size, stride, seed) cases for a hidden test.

    Drawn from :func:`grading_rng`, so while grading they depend on the
    instructor's seed, not on anything in the public repository.
    """
    rng = grading_rng(exercise)
    cases = []
    for _ in range(n):
        k, s = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        h, w = (int(v) for v in rng.integers(k, k + 12, size=2))
        shape = (h, w) if rng.random() < 0.3 else (int(rng.integers(1, 5)), h, w)
        cases.append((shape, k, s, int(rng.integers(1 << 31))))
    return cases


def check_rejects_oversized_window(fn: Callable, what: str | None = None) -> None:
    """A window larger than the input gives no output: expect a ValueError."""
    what = what or getattr(fn, "__name__", "your function")
    x = np.zeros((3, 4, 4))
    expect_value_error(lambda: fn(x, kernel_size=5, stride=1), what,
                       "a 5x5 window on a 4x4 input leaves no output",
                       hint_raised="Test kernel_size against the height and width first and "
                                   "raise ValueError with a sentence that says why.",
                       hint_returned="When kernel_size is larger than the height or width, no window "
                                     "fits: raise ValueError with a sentence that says why.")


# The visible cases: a hand-sized example, channels, overlap, odd sizes, dtype.
VISIBLE_CASES = [
    # shape,        kernel, stride, dtype
    ((4, 4), None, None, np.float64),   # defaults: kernel 2, stride 2
    ((3, 6, 6), 2, 2, np.float64),
    ((2, 7, 9), 3, 2, np.float64),     # overlapping windows, rows left over
    ((1, 5, 5), 2, 1, np.float64),     # one channel stays a channel axis
    ((2, 8, 8), 2, 2, np.float32),     # dtype is kept
]


def _check_pool(fn: Callable, mode: str, what: str) -> None:
    for i, (shape, k, s, dtype) in enumerate(VISIBLE_CASES):
        compare_pool(fn, mode, shape, k, s, seed=i, dtype=dtype, what=what)


def _check_vectorised(fn: Callable, what: str) -> None:
    rng = np.random.default_rng(0)
    lines = {}
    for size in VECTORISED_SIZES:
        x = rng.standard_normal((2, size, size))
        # call_student runs inside the trace: its own few lines are the same on both
        # sizes, and any exception of the student's code is reported, not hidden.
        _, lines[size] = count_python_lines(call_student, fn, x, what=what,
                                            kernel_size=2, stride=2)
    small, large = VECTORISED_SIZES
    if lines[large] > lines[small] + VECTORISED_SLACK:
        raise CheckFailed(what, "the function still loops in Python over output positions: "
                                "it runs more Python lines on a larger input.",
                          expected=f"the same number of Python lines on a (2, {small}, {small}) "
                                   f"and a (2, {large}, {large}) input (kernel_size=2, stride=2)",
                          got=f"{lines[small]} lines on ({small}, {small}), "
                              f"{lines[large]} lines on ({large}, {large})",
                          hint="Let NumPy visit the windows: look up "
                               "np.lib.stride_tricks.sliding_window_view. A loop over the "
                               "kernel_size x kernel_size offsets inside a window is allowed, "
                               "a loop over output rows or columns is not.")


@student_check
def check_max_pool_2d(fn: Callable) -> None:
    _check_pool(fn, "max", "max_pool_2d")
    passed("max_pool_2d", f"{len(VISIBLE_CASES)} cases agree with torch's max_pool2d")


@student_check
def check_avg_pool_2d(fn: Callable) -> None:
    _check_pool(fn, "avg", "avg_pool_2d")
    passed("avg_pool_2d", f"{len(VISIBLE_CASES)} cases agree with torch's avg_pool2d")


@student_check
def check_max_pool_2d_vectorized(fn: Callable) -> None:
    _check_pool(fn, "max", "max_pool_2d_vectorized")
    _check_vectorised(fn, "max_pool_2d_vectorized")
    passed("max_pool_2d_vectorized", "matches torch and runs without a loop over positions")


@student_check
def check_avg_pool_2d_vectorized(fn: Callable) -> None:
    _check_pool(fn, "avg", "avg_pool_2d_vectorized")
    _check_vectorised(fn, "avg_pool_2d_vectorized")
    passed("avg_pool_2d_vectorized", "matches torch and runs without a loop over positions")


def check_vectorised(fn: Callable, what: str | None = None) -> None:
    """Public form of the loop detector, for hidden tests."""
    _check_vectorised(fn, what or getattr(fn, "__name__", "your function"))


# ---- the backward pass of max pooling ----

BACKWARD_WHAT = "max_pool_2d_backward"


def _as_batch(a: np.ndarray) -> torch.Tensor:
    """A (H, W) or (C, H, W) array as a float64 (1, C, H, W) tensor."""
    t = torch.from_numpy(np.array(a, dtype=np.float64))
    return t[None] if t.ndim == 3 else t[None, None]


def reference_pool_backward(x: np.ndarray, grad_output: np.ndarray, mode: str,
                            kernel_size: int, stride: int) -> np.ndarray:
    """``torch.autograd``'s gradient of max or average pooling with respect to ``x``, in float64."""
    leaf = _as_batch(x).requires_grad_(True)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    out = pool(leaf, kernel_size, stride)
    out.backward(_as_batch(grad_output).reshape(out.shape))
    grad = leaf.grad[0]
    return (grad if x.ndim == 3 else grad[0]).numpy()


def pooled_shape(shape: tuple, kernel_size: int, stride: int) -> tuple:
    h, w = shape[-2:]
    return tuple(shape[:-2]) + ((h - kernel_size) // stride + 1, (w - kernel_size) // stride + 1)


def _close(a: np.ndarray, b: np.ndarray, rtol: float) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=rtol))


def _backward_mistake(result: np.ndarray, x: np.ndarray, grad_output: np.ndarray,
                      expected: np.ndarray, kernel_size: int, stride: int, ties: bool,
                      rtol: float) -> tuple[str, str] | None:
    """(problem, hint) for a recognised wrong answer, from PyTorch's own gradients."""
    got = result.astype(np.float64)
    if _close(got, reference_pool_backward(x, grad_output, "avg", kernel_size, stride), rtol):
        return ("the gradient is spread evenly over each window, as average pooling's "
                "backward pass does.",
                "Only the input that was the window's maximum in the forward pass affected "
                "the output, so it alone receives that window's gradient; every other input "
                "of the window gets 0.")
    # How many windows choose each input as their maximum (PyTorch's own count).
    chosen = reference_pool_backward(x, np.ones(pooled_shape(x.shape, kernel_size, stride)),
                                     "max", kernel_size, stride)
    if _close(got, chosen, rtol):
        return ("each maximum received 1 instead of its window's value of grad_output.",
                "Route the value grad_output[..., i, j] of window (i, j), not a constant.")
    shared = chosen >= 2
    if shared.any() and _close(got[~shared], expected[~shared], rtol):
        return ("an input that is the maximum of several overlapping windows did not receive "
                "the sum of their gradients.",
                "When stride < kernel_size, windows overlap and one input can be the maximum "
                "of several of them: add each window's gradient to grad_input (+=) instead "
                "of overwriting it.")
    if ties and np.any(got[chosen == 0] != 0):
        return ("in a window whose maximum occurs more than once, the gradient went to a "
                "position PyTorch does not choose.",
                "On a tie, PyTorch sends the whole gradient to the first maximum in row-major "
                "order (top row first, then left to right), which is the one np.argmax "
                "returns for the flattened window; the other tied positions get 0.")
    if np.any(got[chosen == 0] != 0):
        return ("some inputs that are no window's maximum received a gradient.",
                "Find the row and column of each window's maximum inside the window, then "
                "add the window's offset (i * stride, j * stride) to get its position in x.")
    return None


def compare_max_pool_backward(fn: Callable, shape: tuple, kernel_size: int | None = None,
                              stride: int | None = None, *, seed: int = 0, dtype=np.float64,
                              ties: bool = False, what: str = BACKWARD_WHAT) -> None:
    """Run ``fn(x, grad_output, ...)`` and compare with ``torch.autograd`` on ``F.max_pool2d``.

    ``ties=True`` draws x from {0, 1, 2}, so many windows have a tied maximum.
    ``kernel_size``/``stride`` of None means: rely on the defaults, 2 and 2.
    """
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)).astype(dtype)
    k = 2 if kernel_size is None else kernel_size
    s = 2 if stride is None else stride
    grad_output = rng.standard_normal(pooled_shape(shape, k, s)).astype(dtype)
    x_before, g_before = x.copy(), grad_output.copy()
    kwargs = {}
    if kernel_size is not None:
        kwargs["kernel_size"] = kernel_size
    if stride is not None:
        kwargs["stride"] = stride
    result = require_ndarray(call_student(fn, x, grad_output, what=what, **kwargs), what)
    context = (f"input shape {shape}, kernel_size={k}, stride={s}"
               + (", many tied maxima" if ties else ""))
    if not (np.array_equal(x, x_before) and np.array_equal(grad_output, g_before)):
        raise CheckFailed(what, "the function changed x or grad_output.",
                          hint="Allocate grad_input as a new array (np.zeros_like(x)) and "
                               "write only into it.")
    assert_shape(result.shape, x.shape, what,
                 hint=f"grad_input has exactly the shape of x, channel axis included. "
                      f"(Case: {context}.)")
    assert_dtype(result.dtype, x.dtype, what)
    expected = reference_pool_backward(x, grad_output, "max", k, s)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    try:
        assert_values_close(result, expected.astype(dtype), what, rtol=rtol, atol=rtol,
                            context=context,
                            hint="Each window's gradient goes to the position of its maximum "
                                 "in x; all other positions get 0.")
    except CheckFailed as failure:
        mistake = _backward_mistake(result, x, grad_output, expected, k, s, ties, rtol)
        if mistake is None:
            raise
        problem, hint = mistake
        raise CheckFailed(what, f"{problem} (Case: {context}.)", expected=failure.expected,
                          got=failure.got, hint=hint) from None


def check_rejects_wrong_grad_shape(fn: Callable, what: str = BACKWARD_WHAT) -> None:
    """A grad_output that is not the pooled shape must raise ValueError."""
    x = np.zeros((3, 6, 6))
    for shape in [(3, 2, 2), (3, 3)]:             # pooled shape is (3, 3, 3)
        grad_output = np.ones(shape)
        expect_value_error(
            lambda: fn(x, grad_output, kernel_size=2, stride=2), what,
            f"a grad_output of shape {shape} for a (3, 6, 6) input does not fit",
            expected="ValueError (with kernel_size=2, stride=2 the pooled shape is (3, 3, 3))",
            hint_raised="Compare grad_output.shape with the pooled shape first and "
                        "raise ValueError with a sentence that says why.",
            hint_returned="grad_output must have the shape of the forward pass's output: "
                          "compare the shapes first and raise ValueError when they differ.")


# The visible cases: defaults, channels, overlap, ties, dtype.
BACKWARD_CASES = [
    # shape,       kernel, stride, dtype,     ties
    ((4, 4), None, None, np.float64, False),    # defaults: kernel 2, stride 2
    ((3, 6, 6), 2, 2, np.float64, False),
    ((2, 7, 9), 3, 2, np.float64, False),       # overlapping windows, rows left over
    ((1, 5, 5), 2, 1, np.float64, False),       # overlapping, one channel kept
    ((2, 6, 6), 2, 2, np.float64, True),        # tied maxima: the first one wins
    ((2, 8, 8), 2, 2, np.float32, False),       # dtype is kept
]


@student_check
def check_max_pool_2d_backward(fn: Callable) -> None:
    for i, (shape, k, s, dtype, ties) in enumerate(BACKWARD_CASES):
        compare_max_pool_backward(fn, shape, k, s, seed=i, dtype=dtype, ties=ties)
    check_rejects_wrong_grad_shape(fn)
    passed(BACKWARD_WHAT, f"{len(BACKWARD_CASES)} cases agree with torch.autograd through "
                          "F.max_pool2d")


#: Global average pooling is the exercise: the library's adaptive pooling, in any spelling, is not an answer.
ADAPTIVE_POOLING = {
    "nn.AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d.forward,
    "F.adaptive_avg_pool2d": F.adaptive_avg_pool2d,
    "torch's adaptive_avg_pool2d": torch._C._nn.adaptive_avg_pool2d,
}


def compare_global_average_pooling(cls: type, shape: tuple, *, dtype=torch.float64,
                                   device: str | torch.device = "cpu", seed: int = 0) -> None:
    """Build ``cls()``, run it on a random ``shape`` batch, compare with ``x.mean((2, 3))``."""
    what = getattr(cls, "__name__", "GlobalAveragePooling")
    layer = call_student(cls, what=what)
    if not isinstance(layer, nn.Module):
        raise CheckFailed(what, "calling the class did not give an nn.Module.",
                          expected="an instance of a torch.nn.Module subclass",
                          got=type(layer).__name__,
                          hint="Declare it as `class GlobalAveragePooling(nn.Module):`.")
    n_params = sum(p.numel() for p in layer.parameters())
    if n_params:
        raise CheckFailed(what, "global average pooling has no learnable parameters.",
                          expected=0, got=n_params,
                          hint="Compute the mean in forward(); create no nn.Parameter or layer.")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype).to(device).requires_grad_(True)
    out, seen = calls_made(call_student, layer, x, what=what)
    refuse_calls(seen, ADAPTIVE_POOLING, what,
                 hint="Average over the two spatial axes yourself, e.g. with x.mean(...); "
                      "nn.AdaptiveAvgPool2d is what the next sections use once you have written it.")
    out = require_tensor(out, what)
    expected = x.detach().mean(dim=(2, 3))
    assert_shape(tuple(out.shape), tuple(expected.shape), what,
                 hint="Average over the two spatial axes only, and keep the batch and "
                      "channel axes, even when one of them has size 1.")
    if out.dtype != x.dtype:
        assert_dtype(out.dtype, x.dtype, what)
    assert_values_close(out.detach(), expected, what, rtol=1e-6, atol=1e-6,
                        context=f"input shape {shape}",
                        hint="Take the mean over dim=(2, 3) of the (N, C, H, W) input.")
    if not out.requires_grad:
        raise CheckFailed(what, "no gradient can flow back to the input.",
                          hint="Use differentiable torch operations (x.mean) rather than "
                               ".detach(), .item() or NumPy.")
    out.sum().backward()
    h, w = shape[2], shape[3]
    assert_values_close(x.grad, torch.full_like(x.grad, 1.0 / (h * w)), what,
                        context="the gradient of out.sum()",
                        hint="Each input value should receive gradient 1 / (H * W).")


@student_check
def check_global_average_pooling(cls: type) -> None:
    from helpers.device import get_device
    device = get_device()
    for i, shape in enumerate([(2, 3, 5, 7), (1, 4, 6, 6), (3, 1, 2, 2)]):
        compare_global_average_pooling(cls, shape, device=device, seed=i)
    passed("GlobalAveragePooling", f"values and gradients agree with x.mean((2, 3)) on {device}")
