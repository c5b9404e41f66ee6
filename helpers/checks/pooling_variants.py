"""Checks for notebook 07, section 1: mixed and LP pooling as ``nn.Module`` s, and what all three share.

The oracles are PyTorch's own pooling functions, private to this module:

* mixed pooling: ``alpha * F.max_pool2d + (1 - alpha) * F.avg_pool2d``;
* LP pooling: ``F.lp_pool2d`` (torch's ``nn.LPPool2d``, which has no 1/N) divided
  by N^(1/p), N the window's size: the chapter's (1/N sum x^p)^(1/p);
* stochastic pooling: ``pooling_stochastic.py``, which uses the helpers here.

Gradients are checked with ``torch.autograd.gradcheck`` in float64 on inputs
where they are defined (distinct values, no zero window).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .core import (CheckFailed, NotAttempted, assert_shape, assert_values_close, call_student, passed,
                   reject_course_code, require_tensor, student_check)
from .models import one_thread, require_module

MIXED, STOCHASTIC, LP = "MixedPooling", "StochasticPooling", "LPPooling"
STRIDE_HINT = ("stride=None means stride = kernel_size (windows side by side, as nn.MaxPool2d does); "
               "no padding.")


# ------------------------------------------------------------------ oracles (private)
def _stride(kernel_size: int, stride: int | None) -> int:
    return kernel_size if stride is None else stride


def _mixed(x: torch.Tensor, k: int, s: int | None, alpha: float) -> torch.Tensor:
    s = _stride(k, s)
    return alpha * F.max_pool2d(x, k, s) + (1 - alpha) * F.avg_pool2d(x, k, s)


def _lp(x: torch.Tensor, k: int, s: int | None, p: float) -> torch.Tensor:
    """The chapter's normalised LP pooling, from torch's LPPool2d (which has no 1/N)."""
    return F.lp_pool2d(x, p, k, _stride(k, s)) * (k * k) ** (-1.0 / p)


# ------------------------------------------------------------------ building the student's module
def _build(cls: Any, name: str, what: str, *args: Any, **kwargs: Any) -> nn.Module:
    reject_course_code(cls, name)
    module = require_module(call_student(cls, *args, what=name, **kwargs), what)
    if any(True for _ in module.parameters()):
        raise CheckFailed(what, "the module has parameters, but this pooling has none to learn.",
                          got=", ".join(n for n, _ in module.named_parameters()),
                          hint="Store kernel_size, stride and the other settings as plain attributes "
                               "(self.alpha = alpha), not as nn.Parameter.")
    return module


def _run(module: nn.Module, x: torch.Tensor, what: str, *, train: bool) -> torch.Tensor:
    module.train(train)
    out = require_tensor(call_student(module, x, what=what), what)
    return out


def _describe(name: str, kernel_size: int, stride: int | None, extra: str = "") -> str:
    return f"{name}({kernel_size}, stride={stride}{extra})"


def _expected_shape(x: torch.Tensor, k: int, s: int | None) -> tuple:
    s = _stride(k, s)
    return (*x.shape[:2], (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1)


def _require_shape(out: torch.Tensor, x: torch.Tensor, k: int, s: int | None, what: str) -> None:
    expected = _expected_shape(x, k, s)
    if tuple(out.shape) != expected and s is None:
        wrong_stride = _expected_shape(x, k, 1)
        if tuple(out.shape) == wrong_stride:
            raise CheckFailed(what, "with stride=None the windows overlap: your module used stride 1.",
                              expected=expected, got=tuple(out.shape), hint=STRIDE_HINT)
    assert_shape(tuple(out.shape), expected, what, hint="out = (size - kernel_size) // stride + 1 on each "
                                                        "axis, the batch and channel axes kept. " + STRIDE_HINT)
    if out.dtype != x.dtype:
        raise CheckFailed(what, "the output's dtype differs from the input's.", expected=str(x.dtype),
                          got=str(out.dtype), hint="Use torch operations on x only; do not convert it.")


def _gradcheck(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, what: str, where: str) -> None:
    """``torch.autograd.gradcheck`` in float64; a failure becomes a CheckFailed with the hint to stay in torch."""
    x = x.double().requires_grad_(True)
    with torch.no_grad():
        out = fn(x.detach())
    if isinstance(out, torch.Tensor) and out.dtype != x.dtype:
        raise CheckFailed(what, "on a float64 input the output is not float64.", expected="torch.float64",
                          got=str(out.dtype), hint="Use torch operations on x only; do not convert it (no "
                                                   ".float(), no tensors created with a fixed dtype).")
    try:
        ok = torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=False)
    except NotImplementedError:
        raise NotAttempted(what.split("(")[0]) from None
    except CheckFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. an output that does not require grad
        raise CheckFailed(what, f"torch.autograd.gradcheck could not differentiate your module ({where}): "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                          hint="Compute the output from x with differentiable torch operations (no .item(), "
                               "no NumPy, no .detach(), no in-place writes into a tensor made with "
                               "torch.zeros) so that autograd can follow it.") from None
    if not ok:
        raise CheckFailed(what, f"the gradient autograd computes through your module ({where}) does not "
                                "match the finite-difference gradient (torch.autograd.gradcheck, float64).",
                          hint="Something in forward() is not differentiable the way it looks: detached "
                               "values, integer rounding, or values copied in by indexing without autograd.")


# ------------------------------------------------------------------ mixed pooling
@one_thread
def compare_mixed_pooling(cls: type, kernel_size: int, stride: int | None, alpha: float,
                          input_shape: Sequence[int], seed: int = 0) -> None:
    from helpers.device import get_device
    what = _describe(MIXED, kernel_size, stride, f", alpha={alpha}")
    module = _build(cls, MIXED, what, kernel_size, stride=stride, alpha=alpha)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(input_shape), generator=gen).to(get_device())
    with torch.no_grad():
        out = _run(module, x, what, train=True)
    _require_shape(out, x, kernel_size, stride, what)
    expected = _mixed(x, kernel_size, stride, alpha)
    if not torch.allclose(out, expected, rtol=1e-5, atol=1e-6):
        swapped = _mixed(x, kernel_size, stride, 1 - alpha)
        if torch.allclose(out, swapped, rtol=1e-5, atol=1e-6):
            raise CheckFailed(what, "alpha weighs the average and 1 - alpha the maximum: the other way round.",
                              expected=f"{alpha} * max + {1 - alpha:g} * average",
                              got=f"{1 - alpha:g} * max + {alpha} * average",
                              hint="alpha = 1 gives max pooling, alpha = 0 average pooling.")
        for label, value in (("max pooling alone", F.max_pool2d(x, kernel_size, _stride(kernel_size, stride))),
                             ("average pooling alone", F.avg_pool2d(x, kernel_size, _stride(kernel_size, stride)))):
            if torch.allclose(out, value, rtol=1e-5, atol=1e-6):
                raise CheckFailed(what, f"your module computes {label}; alpha is not used.",
                                  expected=f"{alpha} * max + {1 - alpha:g} * average", got=label,
                                  hint="Store alpha in __init__ and mix both poolings in forward().")
        assert_values_close(out, expected, what, context=f"a random {tuple(input_shape)} input",
                            hint="out = alpha * max_pool(x) + (1 - alpha) * avg_pool(x), both with the same "
                                 "windows.")
    small = torch.randn(1, 2, 5, 6, generator=gen, dtype=torch.float64).to(get_device())
    module.train()
    _gradcheck(lambda t: module(t), small, what, "float64, a random 1x2x5x6 input")


MIXED_CASES = [
    # kernel, stride, alpha, input shape
    (2, None, 0.5, (2, 3, 8, 8)),
    (3, 2, 0.25, (1, 4, 9, 7)),       # overlapping windows, odd sizes
    (2, 1, 1.0, (2, 2, 5, 5)),        # alpha = 1: max pooling
    (2, None, 0.0, (1, 3, 6, 6)),     # alpha = 0: average pooling
]


@student_check
def check_mixed_pooling(cls: type) -> None:
    for i, (k, s, alpha, shape) in enumerate(MIXED_CASES):
        compare_mixed_pooling(cls, k, s, alpha, shape, seed=i)
    passed(MIXED, f"{len(MIXED_CASES)} settings match alpha * max + (1 - alpha) * average pooling, and "
                  "torch.autograd.gradcheck agrees with your gradients")


# ------------------------------------------------------------------ LP pooling
@one_thread
def compare_lp_pooling(cls: type, kernel_size: int, stride: int | None, p: float,
                       input_shape: Sequence[int], seed: int = 0, signed: bool | None = None) -> None:
    """``signed``: whether the input may be negative (default: only for even integer p)."""
    from helpers.device import get_device
    what = _describe(LP, kernel_size, stride, f", p={p}")
    module = _build(cls, LP, what, kernel_size, stride=stride, p=p)
    gen = torch.Generator().manual_seed(seed)
    even = float(p).is_integer() and int(p) % 2 == 0
    signed = even if signed is None else signed
    x = torch.randn(tuple(input_shape), generator=gen)
    x = (x if signed else x.abs()).to(get_device())
    with torch.no_grad():
        out = _run(module, x, what, train=True)
    _require_shape(out, x, kernel_size, stride, what)
    expected = _lp(x, kernel_size, stride, p)
    n = kernel_size * kernel_size
    if not torch.allclose(out, expected, rtol=1e-4, atol=1e-6):
        unnormalised = expected * n ** (1.0 / p)
        if torch.allclose(out, unnormalised, rtol=1e-4, atol=1e-6):
            raise CheckFailed(what, f"your output is N^(1/p) = {n}^(1/{p:g}) = {n ** (1 / p):.4g} times too "
                                    "large: the sum of x^p is not divided by N, the window's size.",
                              expected="(1/N sum x_i^p)^(1/p), the chapter's formula",
                              got="(sum x_i^p)^(1/p), which is torch.nn.LPPool2d's formula",
                              hint="Average x^p over each window (F.avg_pool2d does the 1/N), then take the "
                                   "p-th root. With the 1/N, p = 1 gives average pooling.")
        no_root = F.avg_pool2d(x.pow(p), kernel_size, _stride(kernel_size, stride))
        if torch.allclose(out, no_root, rtol=1e-4, atol=1e-6):
            raise CheckFailed(what, "your output is the mean of x^p: the p-th root is missing.",
                              expected="(1/N sum x_i^p)^(1/p)", got="1/N sum x_i^p",
                              hint="Raise the window's mean to the power 1/p.")
        assert_values_close(out, expected, what, rtol=1e-4, context=f"a random {tuple(input_shape)} input",
                            hint="out = (mean over the window of x^p) ** (1 / p).")
    small = (torch.rand(1, 2, 5, 6, generator=gen, dtype=torch.float64) + 0.2).to(get_device())
    module.train()
    _gradcheck(lambda t: module(t), small, what, "float64, a positive 1x2x5x6 input")


LP_CASES = [
    # kernel, stride, p, input shape
    (2, None, 2, (2, 3, 8, 8)),       # p = 2, signed input
    (3, 2, 3, (1, 2, 9, 7)),          # odd p, non-negative input, overlapping windows
    (2, 1, 1, (1, 3, 5, 6)),          # p = 1: average pooling of non-negative values
    (2, None, 1.5, (2, 2, 6, 6)),     # a fractional p
]


@student_check
def check_lp_pooling(cls: type) -> None:
    for i, (k, s, p, shape) in enumerate(LP_CASES):
        compare_lp_pooling(cls, k, s, p, shape, seed=i)
    passed(LP, f"{len(LP_CASES)} settings match (1/N sum x^p)^(1/p), which is torch's LPPool2d divided by "
               "N^(1/p), and torch.autograd.gradcheck agrees with your gradients")


__all__ = ["check_mixed_pooling", "check_lp_pooling", "compare_mixed_pooling", "compare_lp_pooling"]
