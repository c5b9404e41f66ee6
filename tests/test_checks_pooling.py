"""The pooling checks pass right answers and fail each kind of wrong answer with a useful message.

Besides answers built on torch (the oracle), the reference solutions are read
from the source notebook (autograder.solutions): the checks must pass exactly
the code the course teaches.
"""
import numpy as np
import pytest
import torch
from torch import nn

from autograder.solutions import load_solutions
from helpers.checks import (CheckFailed, check_avg_pool_2d, check_avg_pool_2d_vectorized,
                            check_global_average_pooling, check_max_pool_2d,
                            check_max_pool_2d_backward, check_max_pool_2d_vectorized)
from helpers.checks.pooling import (check_rejects_oversized_window, check_rejects_wrong_grad_shape,
                                    check_vectorised, compare_max_pool_backward, compare_pool,
                                    reference_pool, reference_pool_backward)
from check_messages import message_of

# The checks are tested as nbgrader runs them: an untouched stub raises.
pytestmark = pytest.mark.usefixtures("grading_mode")

SOLUTIONS = load_solutions("01_pooling", ["max_pool_2d_vectorized", "avg_pool_2d_vectorized",
                                          "max_pool_2d_backward"], {"np": np})


# ---- answers: right ones built on torch (the oracle), wrong ones each with one bug ----

def right(mode):
    def pool(x, kernel_size=2, stride=2):
        if kernel_size > min(x.shape[-2:]):
            raise ValueError("window does not fit")
        return reference_pool(x, mode, kernel_size, stride).astype(x.dtype)
    return pool


def looped(mode):
    reduce = np.max if mode == "max" else np.mean

    def pool(x, kernel_size=2, stride=2):
        planes = x[None] if x.ndim == 2 else x
        oh = (x.shape[-2] - kernel_size) // stride + 1
        ow = (x.shape[-1] - kernel_size) // stride + 1
        out = np.empty((planes.shape[0], oh, ow), dtype=x.dtype)
        for c in range(planes.shape[0]):
            for i in range(oh):
                for j in range(ow):
                    out[c, i, j] = reduce(planes[c, i * stride:i * stride + kernel_size,
                                                 j * stride:j * stride + kernel_size])
        return out[0] if x.ndim == 2 else out
    return pool


def offsets_max(x, kernel_size=2, stride=2):
    """Vectorised with a loop over the k*k window offsets only: allowed."""
    oh = (x.shape[-2] - kernel_size) // stride + 1
    ow = (x.shape[-1] - kernel_size) // stride + 1
    out = np.full(x.shape[:-2] + (oh, ow), -np.inf, dtype=x.dtype)
    for di in range(kernel_size):
        for dj in range(kernel_size):
            np.maximum(out, x[..., di:di + stride * (oh - 1) + 1:stride,
                              dj:dj + stride * (ow - 1) + 1:stride], out=out)
    return out


def not_attempted(x, kernel_size=2, stride=2):
    raise NotImplementedError()


def squeezes_channels(x, kernel_size=2, stride=2):
    return np.squeeze(right("max")(x, kernel_size, stride))


def missing_plus_one(x, kernel_size=2, stride=2):
    full = right("max")(x, kernel_size, stride)
    return full[..., :-1, :-1]


def float64_always(x, kernel_size=2, stride=2):
    return right("max")(x, kernel_size, stride).astype(np.float64)


def returns_list(x, kernel_size=2, stride=2):
    return right("max")(x, kernel_size, stride).tolist()


def returns_tensor(x, kernel_size=2, stride=2):
    return torch.from_numpy(right("max")(x, kernel_size, stride))


def ignores_stride(x, kernel_size=2, stride=2):
    return right("max")(x, kernel_size, kernel_size)


def mutates_input(x, kernel_size=2, stride=2):
    out = right("max")(x, kernel_size, stride)
    x[...] = 0
    return out


def crashes(x, kernel_size=2, stride=2):
    return x[99]


class LyingArray(np.ndarray):
    """A student object that claims to equal anything."""
    def __eq__(self, other):
        return True

    def __array_finalize__(self, obj):
        pass


def lies(x, kernel_size=2, stride=2):
    return np.zeros_like(right("max")(x, kernel_size, stride)).view(LyingArray)


# ---- loops: max and avg ----

@pytest.mark.parametrize("check, mode", [(check_max_pool_2d, "max"), (check_avg_pool_2d, "avg")])
def test_right_answers_pass_with_one_line(check, mode, capsys):
    check(right(mode))
    check(looped(mode))
    out, err = capsys.readouterr()
    assert err == ""
    assert out.count("\n") == 2 and out.startswith("✓") and "passed" in out


@pytest.mark.parametrize("answer, expected_words", [
    (not_attempted, ["not attempted yet", "NotImplementedError"]),
    (squeezes_channels, ["wrong shape", "(1, 4, 4)", "output-size formula"]),
    (missing_plus_one, ["wrong shape", "output-size formula"]),
    (float64_always, ["wrong dtype", "float32"]),
    (returns_list, ["not a numpy.ndarray", "list"]),
    (returns_tensor, ["not a numpy.ndarray", "not a torch.Tensor"]),
    (ignores_stride, ["wrong shape", "kernel_size=3, stride=2"]),
    (mutates_input, ["changed its input"]),
    (crashes, ["raised IndexError", "shape (4, 4)"]),
    (lies, ["values are wrong"]),
    (right("avg"), ["values are wrong", "largest value"]),
    ("not a function", ["expected something callable"]),
])
def test_max_pool_check_fails_wrong_answers(answer, expected_words):
    message = message_of(check_max_pool_2d, answer)
    for word in expected_words:
        assert word in message, message
    assert "hint:" in message


def test_avg_pool_check_fails_max_answer():
    assert "mean" in message_of(check_avg_pool_2d, right("max"))


def test_check_failed_renders_without_traceback():
    try:
        check_max_pool_2d(not_attempted)
    except CheckFailed as exc:
        lines = exc._render_traceback_()
    assert len(lines) == 1 and lines[0].startswith("CheckFailed: ✗ max_pool_2d: not attempted yet")


# ---- vectorised versions ----

def row_loop(mode):
    """Vectorised within a row, but a Python loop over output rows: not allowed."""
    reduce = np.max if mode == "max" else np.mean

    def pool(x, kernel_size=2, stride=2):
        if kernel_size > min(x.shape[-2:]):
            raise ValueError("window does not fit")
        windows = np.lib.stride_tricks.sliding_window_view(x, (kernel_size, kernel_size),
                                                           axis=(-2, -1))
        windows = windows[..., ::stride, ::stride, :, :]
        rows = []
        for i in range(windows.shape[-4]):
            rows.append(reduce(windows[..., i, :, :, :], axis=(-2, -1)))
        return np.stack(rows, axis=-2).astype(x.dtype)
    return pool


def vectorised_but_crashes_on_large(x, kernel_size=2, stride=2):
    if x.shape[-1] > 32:
        raise MemoryError("too big")
    return right("max")(x, kernel_size, stride)


@pytest.mark.parametrize("check, mode", [(check_max_pool_2d_vectorized, "max"),
                                         (check_avg_pool_2d_vectorized, "avg")])
def test_vectorised_checks_pass_vectorised_and_fail_loops(check, mode):
    check(right(mode))
    check(SOLUTIONS[f"{mode}_pool_2d_vectorized"])
    for loop in (looped(mode), row_loop(mode)):
        message = message_of(check, loop)
        assert "loops in Python over output positions" in message, message
        assert "(2, 16, 16)" in message and "(2, 64, 64)" in message
        assert "sliding_window_view" in message


def test_loop_over_window_offsets_counts_as_vectorised():
    check_max_pool_2d_vectorized(offsets_max)
    check_vectorised(offsets_max)
    check_vectorised(SOLUTIONS["max_pool_2d_vectorized"])


@pytest.mark.parametrize("answer", [looped("max"), row_loop("max")])
def test_loop_detector_compares_two_sizes(answer):
    with pytest.raises(CheckFailed, match="more Python lines on a larger input"):
        check_vectorised(answer)


def test_loop_detector_reports_the_students_errors():
    with pytest.raises(CheckFailed, match="raised MemoryError: too big"):
        check_vectorised(vectorised_but_crashes_on_large)
    with pytest.raises(CheckFailed, match="not attempted yet"):
        check_vectorised(not_attempted)


# ---- hidden-test helpers ----

def test_compare_pool_uses_defaults_and_catches_overlap_bugs():
    compare_pool(right("max"), "max", (3, 9, 9))            # kernel 2, stride 2 by default
    with pytest.raises(CheckFailed):
        compare_pool(ignores_stride, "max", (2, 9, 9), 4, 1)


def test_oversized_window_must_raise_value_error():
    check_rejects_oversized_window(right("max"))
    for answer, word in [(looped("max"), "returned a result"), (crashes, "raised IndexError"),
                         (not_attempted, "not attempted yet")]:
        with pytest.raises(CheckFailed) as info:
            check_rejects_oversized_window(answer)
        assert word in str(info.value)


# ---- global average pooling ----

class RightGAP(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


class SqueezingGAP(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3)).squeeze()


class SumGAP(nn.Module):
    def forward(self, x):
        return x.sum(dim=(2, 3))


class ParamGAP(RightGAP):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))


class DetachedGAP(nn.Module):
    def forward(self, x):
        return torch.from_numpy(x.detach().cpu().numpy().mean(axis=(2, 3)))


class UnattemptedGAP(nn.Module):
    def forward(self, x):
        raise NotImplementedError()


def gap_function(x):
    return x.mean(dim=(2, 3))


class LibraryGAP(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(x).flatten(1)


class AliasedFunctionalGAP(nn.Module):
    def forward(self, x):
        from torch.nn.functional import adaptive_avg_pool2d as pool
        return pool(x, 1)[:, :, 0, 0]


class SumOverAreaGAP(nn.Module):
    def forward(self, x):
        return x.sum(dim=(-1, -2)) / (x.shape[-1] * x.shape[-2])


class AvgPoolWholeMapGAP(nn.Module):
    def forward(self, x):
        return torch.flatten(torch.nn.functional.avg_pool2d(x, tuple(x.shape[2:])), 1)


@pytest.mark.parametrize("answer", [SumOverAreaGAP, AvgPoolWholeMapGAP])
def test_gap_check_passes_other_styles(answer, capsys):
    check_global_average_pooling(answer)
    assert capsys.readouterr().out.startswith("✓ GlobalAveragePooling: passed")


def test_gap_check_passes_right_module(capsys):
    check_global_average_pooling(RightGAP)
    out, err = capsys.readouterr()
    assert out.startswith("✓ GlobalAveragePooling: passed") and err == ""


@pytest.mark.parametrize("answer, words", [
    (SqueezingGAP, ["wrong shape", "(1, 4)"]),
    (SumGAP, ["values are wrong", "mean over dim=(2, 3)"]),
    (ParamGAP, ["no learnable parameters", "got:      1"]),
    (DetachedGAP, ["no gradient"]),
    (UnattemptedGAP, ["not attempted yet"]),
    (gap_function, ["raised TypeError"]),
    (LibraryGAP, ["calls nn.AdaptiveAvgPool2d", "asks you not to use"]),
    (AliasedFunctionalGAP, ["calls F.adaptive_avg_pool2d"]),
])
def test_gap_check_fails_wrong_modules(answer, words):
    message = message_of(check_global_average_pooling, answer)
    for word in words:
        assert word in message, message


# ---- backward pass of max pooling ----

max_pool_2d_backward = SOLUTIONS["max_pool_2d_backward"]


def backward_via(mode, *, accumulate=True, ones=False, tie="first"):
    """A loop answer built around one choice: which position gets each window's gradient."""
    def backward(x, grad_output, kernel_size=2, stride=2):
        planes = x[None] if x.ndim == 2 else x
        oh = (x.shape[-2] - kernel_size) // stride + 1
        ow = (x.shape[-1] - kernel_size) // stride + 1
        if np.shape(grad_output) != x.shape[:-2] + (oh, ow):
            raise ValueError("grad_output has the wrong shape")
        grads = np.reshape(grad_output, (planes.shape[0], oh, ow))
        out = np.zeros(planes.shape, dtype=x.dtype)
        for c in range(planes.shape[0]):
            for i in range(oh):
                for j in range(ow):
                    t, l = i * stride, j * stride
                    w = planes[c, t:t + kernel_size, l:l + kernel_size]
                    g = 1.0 if ones else grads[c, i, j]
                    if mode == "avg":
                        share = np.full(w.shape, g / w.size)
                    elif tie == "all":
                        share = np.where(w == w.max(), g, 0.0)
                    else:
                        flat = w.ravel()
                        last = flat.size - 1 - np.argmax(flat[::-1])
                        idx = np.argmax(flat) if tie == "first" else last
                        share = np.zeros(w.shape)
                        share[np.unravel_index(idx, w.shape)] = g
                    region = out[c, t:t + kernel_size, l:l + kernel_size]
                    if accumulate:
                        region += share.astype(x.dtype)
                    else:
                        region[share != 0] = share[share != 0]
        return out[0] if x.ndim == 2 else out
    return backward


def torch_backward(x, grad_output, kernel_size=2, stride=2):
    """Right: PyTorch's autograd, the oracle itself."""
    if np.shape(grad_output) != np.shape(reference_pool(x, "max", kernel_size, stride)):
        raise ValueError("grad_output has the wrong shape")
    return reference_pool_backward(x, grad_output, "max", kernel_size, stride).astype(x.dtype)


def backward_squeezes(x, grad_output, kernel_size=2, stride=2):
    return np.squeeze(torch_backward(x, grad_output, kernel_size, stride))


def backward_float64(x, grad_output, kernel_size=2, stride=2):
    return torch_backward(x, grad_output, kernel_size, stride).astype(np.float64)


def backward_mutates(x, grad_output, kernel_size=2, stride=2):
    out = torch_backward(x, grad_output, kernel_size, stride)
    grad_output *= 0
    return out


def backward_no_shape_check(x, grad_output, kernel_size=2, stride=2):
    try:
        return torch_backward(x, grad_output, kernel_size, stride)
    except ValueError:
        return np.zeros_like(x)


def backward_type_error(x, grad_output, kernel_size=2, stride=2):
    if np.shape(grad_output) != np.shape(reference_pool(x, "max", kernel_size, stride)):
        raise TypeError("shapes")
    return torch_backward(x, grad_output, kernel_size, stride)


def backward_not_attempted(x, grad_output, kernel_size=2, stride=2):
    raise NotImplementedError("Replace this line with your solution.")


def test_backward_reference_and_oracle_pass_with_one_line(capsys):
    check_max_pool_2d_backward(max_pool_2d_backward)
    check_max_pool_2d_backward(torch_backward)
    check_max_pool_2d_backward(backward_via("max"))
    out, err = capsys.readouterr()
    assert err == "" and out.count("\n") == 3
    assert all(line.startswith("✓ max_pool_2d_backward: passed") for line in out.splitlines())


def test_pytorch_sends_a_tied_gradient_to_the_first_maximum():
    """The rule the exercise states, checked on PyTorch itself."""
    x = np.array([[1., 2., 2.], [2., 0., 2.], [1., 2., 1.]])
    grad = reference_pool_backward(x, np.ones((2, 2)), "max", 2, 1)
    np.testing.assert_array_equal(grad, [[0, 2, 0], [1, 0, 1], [0, 0, 0]])


@pytest.mark.parametrize("answer, words", [
    (backward_via("avg"), ["spread evenly over each window", "average pooling", "gets 0"]),
    (backward_via("max", accumulate=False), ["overlapping windows", "sum of their gradients",
                                             "(+=)", "stride=2"]),
    (backward_via("max", tie="all"), ["maximum occurs more than once", "first maximum in row-major",
                                      "many tied maxima"]),
    (backward_via("max", tie="last"), ["maximum occurs more than once", "np.argmax"]),
    (backward_via("max", ones=True), ["received 1 instead", "grad_output[..., i, j]"]),
    (backward_squeezes, ["wrong shape", "(1, 5, 5)", "shape of x"]),
    (backward_float64, ["wrong dtype", "float32"]),
    (backward_mutates, ["changed x or grad_output", "np.zeros_like"]),
    (backward_no_shape_check, ["grad_output of shape (3, 2, 2)", "returned a result",
                               "ValueError", "(3, 3, 3)"]),
    (backward_type_error, ["raised TypeError", "expected: ValueError"]),
    (backward_not_attempted, ["not attempted yet", "NotImplementedError"]),
    (lambda x, g: x, ["no window's maximum received a gradient", "i * stride"]),
    (lambda x, g: 2 * torch_backward(x, g), ["values are wrong", "position of its maximum"]),
])
def test_backward_check_fails_each_wrong_answer_with_its_message(answer, words):
    message = message_of(check_max_pool_2d_backward, answer)
    for word in words:
        assert word in message, message
    assert "hint:" in message


def test_backward_messages_are_distinct():
    answers = [backward_via("avg"), backward_via("max", accumulate=False),
               backward_via("max", tie="all"), backward_via("max", ones=True)]
    problems = {message_of(check_max_pool_2d_backward, a).splitlines()[0] for a in answers}
    assert len(problems) == len(answers)


def test_backward_not_attempted_prints_one_line_outside_nbgrader(monkeypatch, capsys):
    monkeypatch.delenv("NBGRADER_EXECUTION")
    assert check_max_pool_2d_backward(backward_not_attempted) is None
    out = capsys.readouterr().out
    assert out.startswith("✗ max_pool_2d_backward: not attempted yet")


def test_backward_hidden_test_helpers():
    for seed, (shape, k, s, ties) in enumerate([((5, 5), 5, 1, False), ((1, 6, 10), 1, 1, False),
                                                ((4, 13, 7), 2, 3, False), ((3, 8, 8), 3, 1, True)]):
        compare_max_pool_backward(max_pool_2d_backward, shape, k, s, seed=seed, ties=ties)
    compare_max_pool_backward(max_pool_2d_backward, (3, 10, 10), 3, 2, dtype=np.float32)
    check_rejects_wrong_grad_shape(max_pool_2d_backward)
    with pytest.raises(CheckFailed, match="overlapping windows"):
        compare_max_pool_backward(backward_via("max", accumulate=False), (3, 8, 8), 3, 1, ties=True)
