"""The pooling checks pass right answers and fail each kind of wrong answer with a useful message."""
import numpy as np
import pytest
import torch
from torch import nn

from helpers.checks import (CheckFailed, check_avg_pool_2d, check_avg_pool_2d_vectorized,
                            check_global_average_pooling, check_max_pool_2d,
                            check_max_pool_2d_vectorized)
from helpers.checks.pooling import (check_rejects_oversized_window, check_vectorised,
                                    compare_pool, reference_pool)

# The checks are tested as nbgrader runs them: an untouched stub raises.
pytestmark = pytest.mark.usefixtures("grading_mode")


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


def message_of(check, answer):
    with pytest.raises(CheckFailed) as info:
        check(answer)
    return str(info.value)


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

@pytest.mark.parametrize("check, mode", [(check_max_pool_2d_vectorized, "max"),
                                         (check_avg_pool_2d_vectorized, "avg")])
def test_vectorised_checks_pass_vectorised_and_fail_loops(check, mode):
    check(right(mode))
    message = message_of(check, looped(mode))
    assert "loops in Python over output positions" in message and "sliding_window_view" in message


def test_loop_over_window_offsets_counts_as_vectorised():
    check_max_pool_2d_vectorized(offsets_max)
    check_vectorised(offsets_max)


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
])
def test_gap_check_fails_wrong_modules(answer, words):
    message = message_of(check_global_average_pooling, answer)
    for word in words:
        assert word in message, message
