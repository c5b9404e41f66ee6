"""Checks for notebook 01 (pooling).

The reference is PyTorch itself: ``torch.nn.functional.max_pool2d`` and
``avg_pool2d`` computed in float64 are the oracle every answer is compared
against, so no reference solution ships with the course.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .core import (CheckFailed, NotAttempted, assert_dtype, assert_shape, assert_values_close,
                   call_student, count_python_lines, passed, require_ndarray,
                   require_tensor, student_check)

POOL_SHAPE_HINT = ("Check the output-size formula: out = (size - kernel_size) // stride + 1 "
                   "for each spatial axis, and keep the channel axis when the input has one.")
MODE_HINTS = {
    "max": "Each output value is the largest value of its window: np.max over the window.",
    "avg": "Each output value is the mean of its window: np.mean over the window.",
}
# A loop over output positions runs its body thousands of times on the
# (2, 64, 64) input used below; vectorised code runs a few dozen lines at most
# (a loop over the kernel_size**2 window offsets is fine).
MAX_VECTORISED_LINES = 200


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


def check_rejects_oversized_window(fn: Callable, what: str | None = None) -> None:
    """A window larger than the input gives no output: expect a ValueError."""
    what = what or getattr(fn, "__name__", "your function")
    x = np.zeros((3, 4, 4))
    try:
        fn(x, kernel_size=5, stride=1)
    except NotImplementedError:
        raise NotAttempted(what) from None
    except ValueError:
        return
    except Exception as exc:  # noqa: BLE001
        raise CheckFailed(what, f"a 5x5 window on a 4x4 input raised {type(exc).__name__}.",
                          expected="ValueError", got=type(exc).__name__,
                          hint="Test kernel_size against the height and width first and "
                               "raise ValueError with a sentence that says why.") from None
    raise CheckFailed(what, "a 5x5 window on a 4x4 input returned a result.",
                      expected="ValueError", got="no exception",
                      hint="When kernel_size is larger than the height or width, no window "
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
    x = np.random.default_rng(0).standard_normal((2, 64, 64))
    try:
        _, lines = count_python_lines(fn, x, kernel_size=2, stride=2)
    except Exception:  # noqa: BLE001 - value errors were reported by _check_pool
        return
    if lines > MAX_VECTORISED_LINES:
        raise CheckFailed(what, "the function still loops in Python over output positions.",
                          expected=f"at most {MAX_VECTORISED_LINES} Python lines run on a "
                                   "(2, 64, 64) input",
                          got=f"{lines} lines run",
                          hint="Let NumPy visit the windows: build a window view with "
                               "np.lib.stride_tricks.sliding_window_view, then reduce over "
                               "its last two axes.")


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
    out = require_tensor(call_student(layer, x, what=what), what)
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
