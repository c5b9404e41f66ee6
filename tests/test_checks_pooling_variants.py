"""The pooling-variant checks (notebook 07) pass the reference and fail typical wrong answers, each with its own message."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.solutions import load_solutions
from helpers import checks
from helpers.checks.pooling_stochastic import (PATTERNS, _candidates, check_stochastic_pooling,
                                               compare_stochastic_distribution, compare_stochastic_pooling)
from helpers.checks.pooling_variants import (check_lp_pooling, check_mixed_pooling, compare_lp_pooling,
                                             compare_mixed_pooling)
from check_messages import assert_words, message_of

pytestmark = pytest.mark.usefixtures("grading_mode")
IMPORTS = {"nn": nn, "torch": torch, "F": F}


@pytest.fixture(scope="module")
def solution():
    return load_solutions("07_exercises", ["mixed_pooling", "stochastic_pooling", "lp_pooling"], IMPORTS)


class Unattempted(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        raise NotImplementedError("Replace this line with your solution.")


def test_checks_are_exported_and_oracles_are_not():
    for name in ("check_mixed_pooling", "check_stochastic_pooling", "check_lp_pooling"):
        assert name in checks.__all__ and hasattr(getattr(checks, name), "__wrapped__")
    assert not any(n.startswith("_") and n != "__all__" for n in checks.__all__)


# ---- the reference passes, also on other settings ----

def test_reference_passes(solution, capsys):
    check_mixed_pooling(solution["MixedPooling"])
    check_stochastic_pooling(solution["StochasticPooling"])
    check_lp_pooling(solution["LPPooling"])
    out = capsys.readouterr()
    assert out.out.count("✓") == 3 and out.err == ""


def test_hidden_cases_pass(solution):
    compare_mixed_pooling(solution["MixedPooling"], 3, None, 0.3, (2, 2, 7, 8), seed=5)
    compare_lp_pooling(solution["LPPooling"], 3, 1, 2.5, (1, 2, 6, 7), seed=5)
    compare_stochastic_pooling(solution["StochasticPooling"], 3, 1, (1, 2, 6, 7), seed=5, statistics=False)
    compare_stochastic_distribution(solution["StochasticPooling"], 2, (-0.3, 2.5, 0.7, 1.1), seed=5)


def test_untouched_stubs_are_not_attempted():
    for check in (check_mixed_pooling, check_stochastic_pooling, check_lp_pooling):
        assert "not attempted yet" in message_of(check, Unattempted)


# ---- mixed pooling ----

def test_mixed_swapped_alpha(solution):
    class Swapped(solution["MixedPooling"]):
        def forward(self, x):
            return ((1 - self.alpha) * F.max_pool2d(x, self.kernel_size, self.stride)
                    + self.alpha * F.avg_pool2d(x, self.kernel_size, self.stride))
    assert_words(message_of(check_mixed_pooling, Swapped), ["other way round", "alpha = 1 gives max pooling"])


def test_mixed_stride_none_is_not_one(solution):
    base = solution["MixedPooling"]

    class StrideOne(base):
        def __init__(self, kernel_size, stride=None, alpha=0.5):
            super().__init__(kernel_size, stride or 1, alpha)
    assert_words(message_of(check_mixed_pooling, StrideOne), ["windows overlap", "stride = kernel_size"])


def test_mixed_ignores_alpha(solution):
    class MaxOnly(solution["MixedPooling"]):
        def forward(self, x):
            return F.max_pool2d(x, self.kernel_size, self.stride)
    assert_words(message_of(check_mixed_pooling, MaxOnly), ["max pooling alone", "alpha is not used"])


def test_mixed_with_a_learnable_alpha(solution):
    class Learnable(solution["MixedPooling"]):
        def __init__(self, kernel_size, stride=None, alpha=0.5):
            super().__init__(kernel_size, stride, alpha)
            self.alpha = nn.Parameter(torch.tensor(float(alpha)))
    assert_words(message_of(check_mixed_pooling, Learnable), ["has parameters", "alpha"])


def test_mixed_not_differentiable(solution):
    class Detached(solution["MixedPooling"]):
        def forward(self, x):
            return super().forward(x).detach()
    assert_words(message_of(check_mixed_pooling, Detached), ["gradcheck"])


# ---- LP pooling ----

def test_lp_without_one_over_n(solution):
    class NoMean(solution["LPPooling"]):
        def forward(self, x):
            return F.lp_pool2d(x, self.p, self.kernel_size, self.stride)
    assert_words(message_of(check_lp_pooling, NoMean), ["N^(1/p)", "LPPool2d's formula", "F.avg_pool2d does the 1/N"])


def test_lp_without_root(solution):
    class NoRoot(solution["LPPooling"]):
        def forward(self, x):
            return F.avg_pool2d(x.pow(self.p), self.kernel_size, self.stride)
    assert_words(message_of(check_lp_pooling, NoRoot), ["p-th root is missing"])


def test_lp_changes_dtype(solution):
    class Float(solution["LPPooling"]):
        def forward(self, x):
            return super().forward(x).float()
    assert_words(message_of(check_lp_pooling, Float), ["dtype"])


# ---- stochastic pooling ----

def sampler(base, choose):
    """A StochasticPooling whose training-mode draw is `choose(windows)` -> indices (N*C, L, 1)."""
    class Sampler(base):
        def forward(self, x):
            if not self.training:
                return super().forward(x)
            n, c, h, w = x.shape
            k, s = self.kernel_size, self.stride
            windows = F.unfold(F.relu(x).reshape(n * c, 1, h, w), k, stride=s).transpose(1, 2)
            out = windows.gather(-1, choose(windows)).squeeze(-1)
            return out.reshape(n, c, (h - k) // s + 1, (w - k) // s + 1)
    return Sampler


def test_stochastic_unnormalised_cumulative_sum(solution):
    def choose(windows):                     # u ~ U(0, 1) against the raw cumulative sum
        u = torch.rand(windows.shape[:-1] + (1,))
        return (windows.cumsum(-1) < u).sum(-1, keepdim=True).clamp(max=windows.shape[-1] - 1)
    assert_words(message_of(check_stochastic_pooling, sampler(solution["StochasticPooling"], choose)),
                 ["not drawn with probability", "never divided by their sum", "expected: frequencies"])


def test_stochastic_softmax(solution):
    def choose(windows):
        flat = torch.softmax(windows.reshape(-1, windows.shape[-1]), -1)
        return torch.multinomial(flat, 1).reshape(*windows.shape[:-1], 1)
    assert_words(message_of(check_stochastic_pooling, sampler(solution["StochasticPooling"], choose)),
                 ["softmax(a)"])


def test_stochastic_uniform(solution):
    def choose(windows):
        return torch.randint(0, windows.shape[-1], windows.shape[:-1] + (1,))
    assert_words(message_of(check_stochastic_pooling, sampler(solution["StochasticPooling"], choose)),
                 ["equally likely"])


def test_stochastic_argmax_of_scaled_weights(solution):
    def choose(windows):                     # sampling from unnormalised weights, not a known label
        return (torch.rand_like(windows) * windows).argmax(-1, keepdim=True)
    message = message_of(check_stochastic_pooling, sampler(solution["StochasticPooling"], choose))
    assert_words(message, ["not drawn with probability", "independently for every window"])


def test_stochastic_training_returns_the_weighted_sum(solution):
    class AlwaysEval(solution["StochasticPooling"]):
        def forward(self, x):
            training = self.training
            self.training = False
            try:
                return super().forward(x)
            finally:
                self.training = training
    assert_words(message_of(check_stochastic_pooling, AlwaysEval), ["not one of their window", "eval mode"])


def test_stochastic_draws_in_eval_mode(solution):
    class AlwaysTraining(solution["StochasticPooling"]):
        def forward(self, x):
            training = self.training
            self.training = True
            try:
                return super().forward(x)
            finally:
                self.training = training
    assert_words(message_of(check_stochastic_pooling, AlwaysTraining),
                 ["in eval mode", "still draws at random", "self.training"])


def test_stochastic_eval_without_weights(solution):
    class Average(solution["StochasticPooling"]):
        def forward(self, x):
            if self.training:
                return super().forward(x)
            return F.avg_pool2d(F.relu(x), self.kernel_size, self.stride)
    assert_words(message_of(check_stochastic_pooling, Average), ["in eval mode", "weights p_i are missing"])


def test_stochastic_zero_window_gives_nan(solution):
    class NaN(solution["StochasticPooling"]):
        def forward(self, x):
            if self.training:
                return super().forward(x)
            a = F.relu(x)
            k, s = self.kernel_size, self.stride
            return F.avg_pool2d(a * a, k, s) / F.avg_pool2d(a, k, s)
    assert_words(message_of(check_stochastic_pooling, NaN), ["NaN", "0 for a window of zeros"])


def test_candidate_distributions_sum_to_one():
    for _, values in PATTERNS:
        for label, p in _candidates(values).items():
            assert abs(p.sum() - 1) < 1e-9, label
