"""The EfficientNet checks pass the reference solution and fail typical wrong answers, each with its own message.

Wrong answers are the reference solution's own source with one line changed (:func:`variant`), so
they stay in step with what the notebook teaches.
"""
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from autograder.solutions import load_solutions, solution_sources
from helpers import checks
from helpers.checks.efficientnet import (B0_PARAMETERS, check_compound_scaling, check_efficientnet,
                                         compare_compound_scaling, compare_efficientnet, compare_efficientnet_b0)
from helpers.checks.efficientnet_blocks import (check_depthwise_separable_conv, check_squeeze_excitation,
                                                compare_depthwise_separable, compare_squeeze_excitation)
from helpers.checks.efficientnet_mbconv import check_mbconv_block, compare_mbconv
from helpers.checks.efficientnet_stochastic_depth import compare_stochastic_depth
from helpers.checks.models import on_meta
from helpers.inspection import count_parameters
from check_messages import assert_words, message_of

# The checks are tested as nbgrader runs them: an untouched stub raises.
pytestmark = pytest.mark.usefixtures("grading_mode")
ASSIGNMENT = "05_efficientnet"
IMPORTS = {"nn": nn, "torch": torch, "F": F, "math": math}


class Unattempted(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        raise NotImplementedError("Replace this line with your solution.")


def unattempted(*args, **kwargs):
    raise NotImplementedError("Replace this line with your solution.")


@pytest.fixture(scope="module")
def solution():
    # Each exercise is loaded with the earlier ones as stubs: the checks grade them apart.
    ds = load_solutions(ASSIGNMENT, ["depthwise_separable_conv"], IMPORTS)
    se = load_solutions(ASSIGNMENT, ["squeeze_excitation"], IMPORTS)
    mbconv = load_solutions(ASSIGNMENT, ["mbconv_block"], {**IMPORTS, "SqueezeExcitation": Unattempted})
    net = load_solutions(ASSIGNMENT, ["efficientnet"], {**IMPORTS, "MBConvBlock": Unattempted})
    scaling = load_solutions(ASSIGNMENT, ["compound_scaling"], IMPORTS)
    return {"DepthwiseSeparableConv": ds["DepthwiseSeparableConv"], "SqueezeExcitation": se["SqueezeExcitation"],
            "MBConvBlock": mbconv["MBConvBlock"], "EfficientNet": net["EfficientNet"],
            "efficientnet_b0": net["efficientnet_b0"], "compound_scaling": scaling["compound_scaling"],
            "net_namespace": net}


def variant(grade_id, *replacements, namespace=None):
    """The solution cell ``grade_id`` with each (old, new) replacement made, executed; its namespace."""
    source = solution_sources(ASSIGNMENT)[grade_id]
    for old, new in replacements:
        assert old in source, f"{old!r} is not in the solution of {grade_id}"
        source = source.replace(old, new)
    ns = {**IMPORTS, **(namespace or {})}
    exec(compile(source, f"<{grade_id} variant>", "exec"), ns)
    return ns


# ---- torchvision's numbers and the module's surface ----

def test_torchvision_parameter_count():
    assert count_parameters(on_meta(torchvision.models.efficientnet_b0, weights=None)) == B0_PARAMETERS


def test_checks_are_exported_and_oracles_are_not():
    for name in ("check_depthwise_separable_conv", "check_squeeze_excitation", "check_mbconv_block",
                 "check_efficientnet", "check_compound_scaling"):
        assert name in checks.__all__ and hasattr(getattr(checks, name), "__wrapped__")
    assert not [n for n in dir(checks) if "trusted" in n.lower() or "reference" in n.lower()]


# ---- the reference solution passes, each exercise on its own ----

def test_solution_passes_every_check(solution, capsys):
    check_depthwise_separable_conv(solution["DepthwiseSeparableConv"])
    check_squeeze_excitation(solution["SqueezeExcitation"])
    check_mbconv_block(solution["MBConvBlock"])                  # its SqueezeExcitation is a stub: not needed
    check_efficientnet(solution["EfficientNet"], solution["efficientnet_b0"])   # its MBConvBlock is a stub
    assert solution["net_namespace"]["MBConvBlock"] is Unattempted, "the student's MBConvBlock is put back"
    check_compound_scaling(solution["compound_scaling"])
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 5 and all(line.startswith("✓") for line in lines), out
    assert "5,288,548 parameters" in lines[3]


def test_hidden_cases_pass_the_solution(solution):
    compare_depthwise_separable(solution["DepthwiseSeparableConv"], 1, 5, 3, 2, (1, 1, 6, 5), seed=3)
    compare_squeeze_excitation(solution["SqueezeExcitation"], 5, 5, (1, 5, 3, 3), seed=4)
    compare_mbconv(solution["MBConvBlock"], 40, 40, 6, 5, 1, (2, 40, 4, 4), seed=5)
    compare_mbconv(solution["MBConvBlock"], 24, 16, 4, 3, 2, (4, 24, 7, 7), stochastic_depth_prob=0.1, seed=6)
    compare_stochastic_depth(solution["MBConvBlock"], 16, 16, 6, 3, 1, p=0.3, seed=7)
    compare_efficientnet(solution["EfficientNet"], 0.5, 0.4, 0.25, 10, input_shape=(2, 3, 64, 64), seed=8)
    compare_efficientnet(solution["EfficientNet"], 1.87, 0.31, 0.45, 3)
    compare_efficientnet_b0(solution["efficientnet_b0"], num_classes=17)
    compare_compound_scaling(solution["compound_scaling"], 4, defaults=True)


def test_untouched_stubs_are_not_attempted():
    for check, answer in ((check_depthwise_separable_conv, (Unattempted,)), (check_squeeze_excitation, (Unattempted,)),
                          (check_mbconv_block, (Unattempted,)), (check_efficientnet, (Unattempted, unattempted)),
                          (check_compound_scaling, (unattempted,))):
        assert "not attempted yet" in message_of(check, *answer)


def test_checks_refuse_torchvision_and_course_code(solution):
    from torchvision.ops import SqueezeExcitation as TorchvisionSE

    class Borrowed(nn.Module):
        def __init__(self, channels, squeezed_channels):
            super().__init__()
            self.se = TorchvisionSE(channels, squeezed_channels, activation=nn.SiLU)

        def forward(self, x):
            return self.se(x)
    assert_words(message_of(check_squeeze_excitation, Borrowed), ["torchvision's SqueezeExcitation"])

    class Inherited(TorchvisionSE):
        def __init__(self, channels, squeezed_channels):
            super().__init__(channels, squeezed_channels, activation=nn.SiLU)
    assert_words(message_of(check_squeeze_excitation, Inherited),
                 ["Inherited, a subclass of torchvision's SqueezeExcitation"])
    from helpers.checks.efficientnet_mbconv import trusted_se_class
    assert_words(message_of(check_squeeze_excitation, trusted_se_class()), ["course's module"])

    def torchvision_b0(num_classes=1000):
        return torchvision.models.efficientnet_b0(weights=None, num_classes=num_classes)
    message = message_of(check_efficientnet, solution["EfficientNet"], torchvision_b0)
    assert_words(message, ["torchvision's EfficientNet"])


# ---- wrong depthwise-separable convolutions ----

DS = "depthwise_separable_conv"


def ds_message(*replacements):
    return message_of(check_depthwise_separable_conv, variant(DS, *replacements)["DepthwiseSeparableConv"])


def test_ds_standard_convolution_is_not_depthwise():
    message = ds_message(("padding=kernel_size // 2, groups=in_channels, bias=False",
                          "padding=kernel_size // 2, bias=False"))
    assert_words(message, ["not a depthwise convolution", "groups=8", "weight of shape (8, 8, 3, 3)"])


def test_ds_stride_on_the_pointwise_convolution():
    message = ds_message(("kernel_size, stride=stride,\n", "kernel_size,\n"),
                         ("kernel_size=1, bias=False)", "kernel_size=1, stride=stride, bias=False)"))
    assert_words(message, ["the stride is on the pointwise convolution"])


def test_ds_activation_after_the_pointwise_convolution():
    message = ds_message(("return self.bn2(self.pointwise(x))", "return F.silu(self.bn2(self.pointwise(x)))"))
    assert_words(message, ["applies an activation after the pointwise BatchNorm"])


def test_ds_relu_instead_of_silu():
    message = ds_message(("self.act = nn.SiLU()", "self.act = nn.ReLU()"))
    assert_words(message, ["uses ReLU after the depthwise BatchNorm instead of SiLU"])


def test_ds_no_activation():
    message = ds_message(("x = self.act(self.bn1(self.depthwise(x)))", "x = self.bn1(self.depthwise(x))"))
    assert_words(message, ["has no activation after the depthwise BatchNorm"])


def test_ds_wrong_padding_bias_and_missing_batchnorm():
    assert_words(ds_message(("padding=kernel_size // 2, groups", "padding=0, groups")), ["padding of depthwise"])
    assert_words(ds_message(("kernel_size=1, bias=False)", "kernel_size=1)")), ["pointwise has a bias"])
    # the expected layer is named by its role, not by torchvision's module path ("0.0")
    assert_words(ds_message(("padding=kernel_size // 2, groups", "padding=1, groups")),
                 ["expected: depthwise: Conv2d(16, 16, kernel_size=5x5, stride=2, padding=2"])
    assert_words(ds_message(("return self.bn2(self.pointwise(x))", "return self.pointwise(x)"),
                            ("self.bn2 = nn.BatchNorm2d(out_channels)", "")),
                 ["followed by its own BatchNorm2d"])


class PointwiseFirst(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        super().__init__()
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.depthwise = nn.Conv2d(out_channels, out_channels, kernel_size, stride, kernel_size // 2,
                                   groups=out_channels, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return self.bn2(self.depthwise(F.silu(self.bn1(self.pointwise(x)))))


def test_ds_pointwise_first():
    assert_words(message_of(check_depthwise_separable_conv, PointwiseFirst), ["pointwise convolution comes first"])


# ---- wrong squeeze-and-excitation ----

SE = "squeeze_excitation"


def se_message(*replacements):
    return message_of(check_squeeze_excitation, variant(SE, *replacements)["SqueezeExcitation"])


def test_se_relu_instead_of_silu():
    assert_words(se_message(("self.act = nn.SiLU()", "self.act = nn.ReLU()")), ["uses ReLU between the two"])


def test_se_no_sigmoid():
    assert_words(se_message(("self.gate = nn.Sigmoid()", "self.gate = nn.Identity()")), ["has no sigmoid"])


def test_se_returns_the_scale():
    assert_words(se_message(("return x * scale", "return scale")), ["returns the channel weights"])


def test_se_max_pooling():
    assert_words(se_message(("nn.AdaptiveAvgPool2d(1)", "nn.AdaptiveMaxPool2d(1)")), ["maximum instead of the average"])


def test_se_linear_layers():
    message = se_message(("self.fc1 = nn.Conv2d(channels, squeezed_channels, kernel_size=1)",
                          "self.fc1 = nn.Linear(channels, squeezed_channels)"),
                         ("self.fc2 = nn.Conv2d(squeezed_channels, channels, kernel_size=1)",
                          "self.fc2 = nn.Linear(squeezed_channels, channels)"))
    assert_words(message, ["nn.Linear", "1x1 convolutions"])


def test_se_without_bias():
    message = se_message(("kernel_size=1)\n        self.act", "kernel_size=1, bias=False)\n        self.act"))
    assert_words(message, ["fc1 has no bias"])


# ---- wrong MBConv blocks ----

MB = "mbconv_block"


def mb_variant(*replacements, namespace=None):
    return variant(MB, *replacements, namespace={"SqueezeExcitation": Unattempted, **(namespace or {})})["MBConvBlock"]


def mb_message(*replacements):
    return message_of(check_mbconv_block, mb_variant(*replacements))


def test_mbconv_squeeze_width_from_the_expanded_channels():
    message = mb_message(("max(1, int(in_channels * se_ratio))", "max(1, int(expanded * se_ratio))"))
    assert_words(message, ["squeeze width is computed from the expanded channels", "int(32 * 0.25) = 8",
                           "max(1, int(8 * 0.25)) = 2"])


def test_mbconv_se_after_the_projection():
    message = mb_message(
        ("        layers.append(SqueezeExcitation(expanded, max(1, int(in_channels * se_ratio))))\n", ""),
        ("nn.BatchNorm2d(out_channels)]", "nn.BatchNorm2d(out_channels),\n"
         "                   SqueezeExcitation(out_channels, max(1, int(in_channels * se_ratio)))]"))
    assert_words(message, ["sits after the projection"])


def se_before_depthwise(self, x):
    layers = list(self.block)           # [expansion (3)], depthwise (3), SE, projection (2)
    h = x
    for layer in [*layers[:-6], layers[-3], *layers[-6:-3], *layers[-2:]]:
        h = layer(h)
    return h + x if self.use_residual else h


def test_mbconv_se_before_the_depthwise_convolution():
    """Created in the right order, applied in the wrong one: named from the outputs."""
    block = type("SEFirst", (mb_variant(),), {"forward": se_before_depthwise})
    assert_words(message_of(check_mbconv_block, block),
                 ["applies squeeze-and-excitation before the depthwise convolution"])


def test_mbconv_activation_after_the_projection():
    message = mb_message(("out = self.block(x)", "out = F.silu(self.block(x))"))
    assert_words(message, ["applies an activation after the projection's BatchNorm",
                           "the projection must be linear", "got:      SiLU(BN(project(...)))"])


def test_mbconv_residual_on_a_strided_block():
    message = mb_message(("self.use_residual = stride == 1 and in_channels == out_channels",
                          "self.use_residual = in_channels == out_channels"))
    assert_words(message, ["adds its input to the output, but here the shapes differ (stride=2)",
                           "only when stride == 1"])


def test_mbconv_never_adds_the_input():
    message = mb_message(("self.use_residual = stride == 1 and in_channels == out_channels",
                          "self.use_residual = False"))
    assert_words(message, ["never adds the input"])


def test_mbconv_expansion_when_the_ratio_is_one():
    message = mb_message(("if expand_ratio != 1:", "if True:"))
    assert_words(message, ["expansion convolution, but expand_ratio is 1", "expected: depthwise: Conv2d(16, 16",
                           "SE fc1: Conv2d(16, 4", "projection: Conv2d(16, 8"])


def test_mbconv_stride_on_the_expansion():
    message = mb_message(("nn.Conv2d(in_channels, expanded, kernel_size=1, bias=False)",
                          "nn.Conv2d(in_channels, expanded, kernel_size=1, stride=stride, bias=False)"),
                         ("kernel_size, stride=stride, padding", "kernel_size, padding"))
    assert_words(message, ["the stride is on", "not on the depthwise convolution"])


def test_mbconv_relu():
    message = mb_message(("nn.BatchNorm2d(expanded),\n                       nn.SiLU()]",
                          "nn.BatchNorm2d(expanded),\n                       nn.ReLU()]"),
                         ("groups=expanded, bias=False), nn.BatchNorm2d(expanded), nn.SiLU()]",
                          "groups=expanded, bias=False), nn.BatchNorm2d(expanded), nn.ReLU()]"))
    assert_words(message, ["uses ReLU instead of SiLU"])


def test_mbconv_depthwise_without_groups():
    message = mb_message(("groups=expanded, bias=False)", "bias=False)"))
    assert_words(message, ["is not a depthwise convolution", "groups=32"])


def test_mbconv_stochastic_depth_in_eval_mode():
    message = mb_message(("if self.training and p > 0:", "if p > 0:"))
    assert_words(message, ["stochastic depth is applied in eval mode"])


def test_mbconv_stochastic_depth_without_rescaling():
    message = mb_message(("out = out * keep.to(out.dtype) / (1 - p)", "out = out * keep.to(out.dtype)"))
    assert_words(message, ["not rescaled", "1 - p"])


def test_mbconv_stochastic_depth_like_dropout():
    message = mb_message(("keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= p",
                          "keep = torch.rand(out.shape, device=x.device) >= p"))
    assert_words(message, ["drops single values", "(N, 1, 1, 1)"])


def test_mbconv_stochastic_depth_for_the_whole_batch():
    message = mb_message(("keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= p",
                          "keep = torch.rand(1, 1, 1, 1, device=x.device) >= p"))
    assert_words(message, ["whole batch at once"])


def test_mbconv_stochastic_depth_with_the_survival_probability():
    message = mb_message(("keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= p",
                          "keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p"))
    assert_words(message, ["residual branches with stochastic_depth_prob=0.25"])


def test_mbconv_stochastic_depth_never_applied():
    message = mb_message(("if self.training and p > 0:", "if False:"))
    assert_words(message, ["stochastic depth is not applied in training mode"])


@pytest.mark.parametrize("call", [
    "__import__('torchvision').ops.stochastic_depth(out, p, 'row', self.training)",
    "__import__('torchvision').ops.StochasticDepth(p, 'row').train(self.training)(out)",
])
def test_mbconv_stochastic_depth_from_torchvision_is_refused(call):
    """torchvision's module and its functional form get the same message, however they are reached."""
    message = mb_message(("""            keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= p
            out = out * keep.to(out.dtype) / (1 - p)""", f"            out = {call}"))
    assert_words(message, ["torchvision.ops.", "asks you not to use", "Write stochastic depth yourself"])


def test_mbconv_stochastic_depth_on_a_block_without_residual():
    message = mb_message(("        if not self.use_residual:\n            return out\n", ""),
                         ("        return out + x", "        return out + x if self.use_residual else out"))
    assert_words(message, ["a block without a residual connection changes its output in training mode"])


# ---- wrong EfficientNets ----

NET = "efficientnet"


def net_message(*replacements):
    ns = variant(NET, *replacements, namespace={"MBConvBlock": Unattempted})
    return message_of(check_efficientnet, ns["EfficientNet"], ns["efficientnet_b0"])


def test_efficientnet_channels_truncated():
    message = net_message(("out_channels = make_divisible(channels * width_mult)",
                           "out_channels = int(channels * width_mult)"),
                          ("c_stem = make_divisible(32 * width_mult)", "c_stem = int(32 * width_mult)"))
    assert_words(message, ["int(c * width_mult), not rounded to a multiple of 8", "stages [16, 24, 48, 88"])


def test_efficientnet_channels_without_the_ten_percent_rule():
    message = net_message(("    if rounded < 0.9 * value:\n        rounded += divisor\n", ""))
    assert_words(message, ["without the 10% rule", "stem 16"])


def test_efficientnet_repeats_rounded_down_or_to_nearest():
    assert_words(net_message(("math.ceil(n * depth_mult)", "int(n * depth_mult)")),
                 ["int(n * depth_mult) (rounds down)", "math.ceil"])
    assert_words(net_message(("math.ceil(n * depth_mult)", "round(n * depth_mult)")),
                 ["round(n * depth_mult)"])


def test_efficientnet_stride_on_every_block():
    message = net_message(("stride if i == 0 else 1", "stride"))
    assert_words(message, ["block 2 (stage 2) is built with stride=2", "Only the first block of a stage"])


def test_efficientnet_stochastic_depth_schedules():
    assert_words(net_message(("0.2 * index / total", "0.2 * index / (total - 1)")),
                 ["0.2 * i / (N - 1)"])
    assert_words(net_message(("stochastic_depth_prob=0.2 * index / total", "stochastic_depth_prob=0.2")),
                 ["the same for every block: 0.2"])


def test_efficientnet_fixed_head_and_ignored_dropout():
    assert_words(net_message(("c_head = 4 * in_channels", "c_head = 1280")), ["the head (features[8]) is wrong"])
    assert_words(net_message(("nn.Dropout(dropout)", "nn.Dropout(0.2)")), ["does not come from the `dropout`"])


def test_efficientnet_layout():
    message = net_message(("self.features = nn.Sequential(*parts)", "self.features = nn.Sequential(*parts[:-1])\n"
                           "        self.head = parts[-1]"))
    assert_words(message, ["no `features` made of the stem, seven stages and the head"])


def test_efficientnet_b0_factory():
    ns = variant(NET, ("return EfficientNet(width_mult=1.0, depth_mult=1.0, dropout=0.2",
                       "return EfficientNet(width_mult=1.1, depth_mult=1.0, dropout=0.2"),
                 namespace={"MBConvBlock": Unattempted})
    assert_words(message_of(check_efficientnet, ns["EfficientNet"], ns["efficientnet_b0"]),
                 ["efficientnet_b0(num_classes=1000)", "number of parameters is wrong", "5,288,548"])


def test_efficientnet_without_mbconvblock(solution):
    own_block = mb_variant(namespace={"SqueezeExcitation": solution["SqueezeExcitation"]})
    ns = variant(NET, ("blocks.append(MBConvBlock(", "blocks.append(OwnBlock("),
                 namespace={"MBConvBlock": Unattempted, "OwnBlock": own_block})
    assert_words(message_of(check_efficientnet, ns["EfficientNet"], ns["efficientnet_b0"]), ["no MBConvBlock was built"])


# ---- wrong compound scaling ----

def test_compound_scaling_mistakes():
    cases = [(lambda phi, alpha=1.2, beta=1.1, gamma=1.15: (beta ** phi, alpha ** phi, gamma ** phi),
              "the order is (width, depth, resolution)"),
             (lambda phi, alpha=1.2, beta=1.1, gamma=1.15: (alpha * phi, beta * phi, gamma * phi),
              "phi multiplies the constants"),
             (lambda phi, alpha=1.2, beta=1.1, gamma=1.15: (alpha ** phi, beta ** phi, 224 * gamma ** phi),
              "in pixels"),
             (lambda phi, alpha=1.2, beta=1.1, gamma=1.15: (1.2 ** phi, 1.1 ** phi, 1.15 ** phi),
              "ignores the alpha, beta, gamma"),
             (lambda phi, alpha=1.2, beta=1.1, gamma=1.15: alpha ** phi, "not three numbers")]
    for fn, words in cases:
        assert_words(message_of(check_compound_scaling, fn), [words])


# ---- devices ----

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_checks_run_on_cuda(solution, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    check_depthwise_separable_conv(solution["DepthwiseSeparableConv"])
    check_squeeze_excitation(solution["SqueezeExcitation"])
    check_mbconv_block(solution["MBConvBlock"])
    check_efficientnet(solution["EfficientNet"], solution["efficientnet_b0"])
    assert capsys.readouterr().out.count("✓") == 4
