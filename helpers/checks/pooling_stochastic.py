"""Checks for notebook 07, section 1: stochastic pooling (Zeiler & Fergus, ICLR 2013).

The oracle, private to this module, is built from PyTorch's pooling: in eval mode
sum p_i a_i with p_i = a_i / sum a, a = ReLU(x), which is ``avg_pool(a^2) / avg_pool(a)``.
In training mode the check tests that every output is one of its window's
ReLU'd values, that a window of zeros gives 0, and, on many windows holding the
same known values, that each value is drawn with probability a_i / sum a (every
observed frequency within 5 standard errors of its probability, on 20,000
draws). When the frequencies are off, it names the distribution they match
(softmax, uniform, the maximum, weights never divided by their sum). Gradients
are checked with ``torch.autograd.gradcheck`` in float64 in both modes, in
training mode with the random draw fixed by a seed.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .core import CheckFailed, assert_values_close, passed, student_check
from .models import one_thread
from .pooling_variants import STOCHASTIC, _build, _describe, _gradcheck, _require_shape, _run, _stride

#: Windows per pattern in the statistical test, and the allowed deviation in standard errors.
DRAWS, SIGMAS = 20_000, 5.0


# ------------------------------------------------------------------ oracles (private)
def _stochastic_eval(x: torch.Tensor, k: int, s: int | None) -> torch.Tensor:
    """sum_i p_i a_i = sum a^2 / sum a over each window of a = ReLU(x); 0 for a window of zeros."""
    s = _stride(k, s)
    a = F.relu(x)
    total = F.avg_pool2d(a, k, s)
    squares = F.avg_pool2d(a * a, k, s)
    return torch.where(total > 0, squares / total.clamp_min(torch.finfo(x.dtype).tiny), torch.zeros_like(total))


def _windows(x: torch.Tensor, k: int, s: int | None) -> torch.Tensor:
    """(N, C, L, k*k): every window of x, in the order of the pooled output's positions."""
    n, c = x.shape[:2]
    cols = F.unfold(x.reshape(n * c, 1, *x.shape[2:]), k, stride=_stride(k, s))   # (N*C, k*k, L)
    return cols.transpose(1, 2).reshape(n, c, -1, k * k)


# ------------------------------------------------------------------ stochastic pooling
#: Patterns of the statistical test: (kernel, the window's values). ReLU'd values 0 are never drawn.
PATTERNS = [
    (2, (0.5, 1.0, 2.0, 4.5)),                 # p = 1/16, 1/8, 1/4, 9/16; the sum is 8
    (2, (-1.0, 3.0, 0.0, 1.0)),                # a negative value and a zero: p = 0, 3/4, 0, 1/4
    (3, (0.2, 0.1, 0.3, 0.05, 0.15, 0.0, 0.1, 0.06, 0.04)),   # sum 1: the weights are the probabilities
]


def _tile(values: Sequence[float], k: int, draws: int, device: torch.device) -> torch.Tensor:
    """(4, draws // 200, k, 50 k) input whose ``draws`` windows all hold ``values`` (row-major in the window)."""
    window = torch.tensor(values, dtype=torch.float32).reshape(k, k)
    n, c = 4, draws // (4 * 50)
    return window.repeat(n, c, 1, 50).to(device)     # (4, c, k, 50 k): 4 * c * 50 = draws windows


def _candidates(values: Sequence[float]) -> dict[str, np.ndarray]:
    """Probability of each position under typical wrong samplers, for the diagnosis."""
    v = np.asarray(values, dtype=np.float64)
    a = np.maximum(v, 0)
    out: dict[str, np.ndarray] = {}
    soft = np.exp(a - a.max())
    out["softmax(a): exponentials instead of a_i / sum a"] = soft / soft.sum()
    out["every position equally likely, whatever its value"] = np.full(len(v), 1 / len(v))
    positive = a > 0
    out["every positive value equally likely: the magnitudes are ignored"] = positive / positive.sum()
    out["always the largest value: that is max pooling"] = (a == a.max()) / (a == a.max()).sum()
    squares = a * a
    out["probabilities proportional to a_i^2 instead of a_i"] = squares / squares.sum()
    # Inverse CDF on the cumulative sum of the raw weights, against u ~ U(0, 1) not scaled by sum a.
    cumulative = np.cumsum(a)
    before = np.concatenate([[0.0], cumulative[:-1]])
    unnormalised = np.clip(cumulative, 0, 1) - np.clip(before, 0, 1)
    unnormalised[-1] += max(0.0, 1 - cumulative[-1])          # u beyond the total: the last position
    out["u ~ U(0, 1) compared with the cumulative sum of the raw weights, never divided by their sum"] = unnormalised
    return out


def _frequencies(out: torch.Tensor, values: Sequence[float]) -> np.ndarray | None:
    """Fraction of outputs equal to each window position's ReLU'd value (None: an output is none of them).

    Positions with the same value (zeros) share their count equally.
    """
    a = np.maximum(np.asarray(values, dtype=np.float64), 0)
    flat = out.detach().double().flatten().cpu().numpy()
    distinct = np.unique(a)
    match = np.abs(flat[:, None] - distinct[None, :]) <= 1e-6 * (1 + np.abs(distinct[None, :]))
    if not match.any(axis=1).all():
        return None
    counts = match.sum(axis=0) / len(flat)
    freq = np.zeros(len(a))
    for value, count in zip(distinct, counts):
        same = a == value
        freq[same] = count / same.sum()
    return freq


def _show(p: np.ndarray) -> str:
    return "[" + ", ".join(f"{q:.3f}" for q in p) + "]"


def _compare_distribution(cls: type, k: int, values: Sequence[float], seed: int) -> None:
    from helpers.device import get_device
    what = _describe(STOCHASTIC, k, None) + " in training mode"
    module = _build(cls, STOCHASTIC, what, k)
    a = np.maximum(np.asarray(values, dtype=np.float64), 0)
    expected = a / a.sum()
    x = _tile(values, k, DRAWS, get_device())
    with torch.random.fork_rng(devices=[] if x.device.type == "cpu" else [x.device]), torch.no_grad():
        torch.manual_seed(seed)
        out = _run(module, x, what, train=True)
    shown = "(" + ", ".join(f"{v:g}" for v in values) + ")"
    freq = _frequencies(out, values)
    if freq is None:
        raise CheckFailed(what, f"in training mode, on windows holding {shown}, some outputs are none of the "
                                "window's ReLU'd values.",
                          expected=f"one of {sorted(set(float(v) for v in a))} in every output",
                          got=f"e.g. {float(out.flatten()[0]):.4g}",
                          hint="In training mode each output is one value of its window, drawn at random "
                               "(not a weighted sum: that is eval mode).")
    draws = out.numel()
    stderr = np.sqrt(expected * (1 - expected) / draws)
    if np.all(np.abs(freq - expected) <= SIGMAS * stderr + 1e-9):
        return
    problem = (f"in training mode, on {draws:,} windows holding {shown}, the values are not drawn with "
               "probability a_i / sum a (a = ReLU(x)).")
    for label, candidate in _candidates(values).items():
        if np.abs(candidate - expected).max() < 1e-3:
            continue
        tolerance = SIGMAS * np.sqrt(candidate * (1 - candidate) / draws) + 1e-9
        if np.all(np.abs(freq - candidate) <= tolerance):
            raise CheckFailed(what, problem, expected=f"frequencies {_show(expected)}",
                              got=f"frequencies {_show(freq)}, which is {label}",
                              hint="Normalise each window's ReLU'd values by their sum, p_i = a_i / sum a, "
                                   "and draw one position with these probabilities (torch.multinomial, or "
                                   "u ~ U(0, 1) against the cumulative sum of the p_i).")
    raise CheckFailed(what, problem, expected=f"frequencies {_show(expected)}", got=f"frequencies {_show(freq)}",
                      hint="p_i = a_i / sum a over the window, with a = ReLU(x); draw one position per window "
                           "with these probabilities, independently for every window.")


@one_thread
def compare_stochastic_distribution(cls: type, kernel_size: int, values: Sequence[float], seed: int = 0) -> None:
    """Training-mode draws on 20,000 windows holding ``values`` (row-major) against a_i / sum a."""
    if not any(v > 0 for v in values):
        raise ValueError("at least one value must be positive")
    _compare_distribution(cls, kernel_size, values, seed)


@one_thread
def compare_stochastic_pooling(cls: type, kernel_size: int, stride: int | None,
                               input_shape: Sequence[int], seed: int = 0, statistics: bool = True) -> None:
    """Eval-mode values, training-mode draws (membership, zero windows, distribution) and gradients."""
    from helpers.device import get_device
    device = get_device()
    what = _describe(STOCHASTIC, kernel_size, stride)
    module = _build(cls, STOCHASTIC, what, kernel_size, stride=stride)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(input_shape), generator=gen)
    x[0, 0, :kernel_size, :kernel_size] = -x[0, 0, :kernel_size, :kernel_size].abs()   # one window of zeros
    x = x.to(device)
    with torch.no_grad():
        out = _run(module, x, what + " in eval mode", train=False)
    _require_shape(out, x, kernel_size, stride, what)
    expected = _stochastic_eval(x, kernel_size, stride)
    if not torch.allclose(out, expected, rtol=1e-5, atol=1e-6):
        a = F.relu(x)
        s = _stride(kernel_size, stride)
        for label, value in (("the average of ReLU(x): the weights p_i are missing",
                              F.avg_pool2d(a, kernel_size, s)),
                             ("the maximum of ReLU(x)", F.max_pool2d(a, kernel_size, s)),
                             ("the sum of a_i^2 / sum a without ReLU: negative values are weighted too",
                              torch.nan_to_num(F.avg_pool2d(x * x, kernel_size, s) / F.avg_pool2d(x, kernel_size, s)))):
            if torch.allclose(out, value, rtol=1e-5, atol=1e-6):
                raise CheckFailed(what + " in eval mode", f"your module returns {label}.",
                                  expected="sum_i p_i a_i = sum a_i^2 / sum a_i over each window, a = ReLU(x)",
                                  got=label.split(":")[0],
                                  hint="In eval mode stochastic pooling returns the expected value of the "
                                       "draw: each ReLU'd value weighted by its probability a_i / sum a.")
        if torch.isnan(out).any() and not torch.isnan(expected).any():
            raise CheckFailed(what + " in eval mode", "a window whose values are all <= 0 gives NaN.",
                              expected="0 for a window of zeros", got="nan",
                              hint="sum a is 0 there: 0 / 0. Return 0 for such windows (torch.where, or "
                                   "divide by sum a clamped to a tiny positive number).")
        with torch.no_grad():
            again = _run(module, x, what + " in eval mode", train=False)
        if not torch.equal(out, again):
            raise CheckFailed(what + " in eval mode", "two calls on the same input give different outputs: "
                                                      "your module still draws at random after .eval().",
                              expected="sum_i p_i a_i for every window, the same on every call",
                              got="a different result on each call",
                              hint="Branch on self.training: draw one value per window only while it is True "
                                   "(training mode); after .eval() return the expected value of the draw, "
                                   "sum_i p_i a_i with p_i = a_i / sum a.")
        assert_values_close(out, expected, what + " in eval mode", context=f"a random {tuple(input_shape)} input",
                            hint="sum_i p_i a_i with p_i = a_i / sum a, a = ReLU(x); 0 for a window of zeros.")
    # Training mode: every output is one of its window's ReLU'd values; the zero window gives 0.
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]), torch.no_grad():
        torch.manual_seed(seed)
        drawn = _run(module, x, what + " in training mode", train=True)
    _require_shape(drawn, x, kernel_size, stride, what + " in training mode")
    if torch.isnan(drawn).any():
        raise CheckFailed(what + " in training mode", "some outputs are NaN.",
                          expected="0 for a window whose values are all <= 0, one of the window's values "
                                   "elsewhere", got="nan",
                          hint="sum a is 0 in a window of zeros: return 0 there instead of dividing.")
    windows = _windows(F.relu(x), kernel_size, stride)                     # (N, C, L, k*k)
    distance = (windows - drawn.flatten(2).unsqueeze(-1)).abs().amin(-1)
    if float(distance.max()) > 1e-6:
        raise CheckFailed(what + " in training mode", "some outputs are not one of their window's ReLU'd "
                                                      "values.",
                          expected="each output equal to one value of ReLU(x) in its window",
                          got=f"an output {float(distance.max()):.3g} away from every value of its window",
                          hint="Draw a position per window and return the ReLU'd value there; a weighted "
                               "sum is what eval mode returns.")
    if statistics:
        for i, (k, values) in enumerate(PATTERNS):
            _compare_distribution(cls, k, values, seed=seed + i)
    # Gradients in float64 where defined: positive inputs (no ReLU kink, no zero window).
    small = (torch.rand(1, 2, 5, 6, generator=gen, dtype=torch.float64) + 0.2).to(device)
    module.eval()
    _gradcheck(lambda t: module(t), small, what, "eval mode, float64, a positive 1x2x5x6 input")

    def drawn_with_seed(t: torch.Tensor) -> torch.Tensor:
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
            torch.manual_seed(seed)
            return module(t)

    module.train()
    _gradcheck(drawn_with_seed, small, what, "training mode with the draw fixed by a seed, float64")
    module.eval()


STOCHASTIC_CASES = [
    # kernel, stride, input shape
    (2, None, (2, 3, 8, 8)),
    (3, 2, (1, 2, 9, 7)),            # overlapping windows, odd sizes
]


@student_check
def check_stochastic_pooling(cls: type) -> None:
    for i, (k, s, shape) in enumerate(STOCHASTIC_CASES):
        compare_stochastic_pooling(cls, k, s, shape, seed=i, statistics=i == 0)
    passed(STOCHASTIC, f"eval mode returns sum p_i a_i; in training mode every output is one of its "
                       f"window's values, drawn with probability a_i / sum a ({len(PATTERNS)} patterns, "
                       f"{DRAWS:,} draws each, all frequencies within {SIGMAS:g} standard errors); "
                       "gradcheck agrees in both modes")


__all__ = ["check_stochastic_pooling", "compare_stochastic_pooling", "compare_stochastic_distribution"]
