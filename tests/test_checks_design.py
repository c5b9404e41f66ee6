"""The design-principles checks pass the reference solution and fail typical wrong answers,
each with its own message."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.solutions import load_solutions
from helpers import checks
from helpers.checks.design import check_conv_bn_relu, compare_conv_bn_relu
from helpers.checks.design_blocks import _ReferenceModernBlock, check_modern_block, compare_modern_block
from helpers.checks.design_network import (FLOOR, MAX_MACS, MAX_PARAMETERS, _ReferenceModernCNN,
                                           check_challenge_model, check_modern_cnn, compare_challenge,
                                           compare_modern_cnn)
from helpers.inspection import count_macs, count_parameters
from check_messages import assert_words, message_of

# The checks are tested as nbgrader runs them: an untouched stub raises.
pytestmark = pytest.mark.usefixtures("grading_mode")
IMPORTS = {"nn": nn, "torch": torch, "F": F}
ASSIGNMENT = "06_design_principles"


class Unattempted(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        raise NotImplementedError("Replace this line with your solution.")


ModernBlock = Unattempted       # the student's block, unsolved: ModernCNN's check puts its trusted block here


@pytest.fixture(scope="module")
def solution():
    # ModernBlock is a stub where ModernCNN is loaded: the exercises are graded apart.
    layers = load_solutions(ASSIGNMENT, ["conv_bn_relu", "modern_block"], IMPORTS)
    network = load_solutions(ASSIGNMENT, ["modern_cnn"], {**IMPORTS, "ModernBlock": Unattempted})
    challenge = load_solutions(ASSIGNMENT, ["challenge_model"], IMPORTS)
    return {"ConvBNReLU": layers["ConvBNReLU"], "ModernBlock": layers["ModernBlock"],
            "ModernCNN": network["ModernCNN"], "build_challenge_model": challenge["build_challenge_model"]}


def test_checks_are_exported_and_oracles_are_not():
    for name in ("check_conv_bn_relu", "check_modern_block", "check_modern_cnn", "check_challenge_model"):
        assert name in checks.__all__ and hasattr(getattr(checks, name), "__wrapped__")
    assert not [n for n in dir(checks) if "reference" in n.lower() or "trusted" in n.lower()]


# ---- the reference solution passes, each exercise on its own ----

def test_solution_passes_every_check(solution, capsys):
    check_conv_bn_relu(solution["ConvBNReLU"])
    check_modern_block(solution["ModernBlock"])
    check_modern_cnn(solution["ModernCNN"])                 # its ModernBlock is a stub: not needed
    check_challenge_model(solution["build_challenge_model"])
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 4 and all(line.startswith("✓") for line in lines), out


def test_hidden_cases_pass_the_solution(solution):
    compare_conv_bn_relu(solution["ConvBNReLU"], 8, 8, 3, 2, 8, (1, 8, 7, 7), seed=3)
    compare_conv_bn_relu(solution["ConvBNReLU"], 3, 5, 7, 2, 1, (2, 3, 4, 4), seed=4)
    compare_modern_block(solution["ModernBlock"], 12, 12, 2, 0.25, (1, 12, 7, 7), seed=5)
    compare_modern_block(solution["ModernBlock"], 6, 8, 1, 0.125, (2, 6, 3, 3), seed=6)
    compare_modern_cnn(solution["ModernCNN"], (8, 8), (1, 2), 10, ((1, 3, 32, 32), (2, 3, 12, 20)), seed=7)
    compare_modern_cnn(solution["ModernCNN"], (4, 16, 12), (2, 1, 1), 3, ((2, 3, 16, 16),), seed=8)
    compare_challenge(solution["build_challenge_model"], 13, seed=9, train=False)


def test_the_reference_challenge_model_is_within_budget_with_margin(solution):
    model = solution["build_challenge_model"]()
    assert count_parameters(model) <= 0.6 * MAX_PARAMETERS
    assert count_macs(model, (1, 3, 32, 32)) <= 0.9 * MAX_MACS


def test_a_linear_se_is_accepted(solution):
    base = solution["ModernBlock"]

    def init(self, in_channels, out_channels, stride=1, se_ratio=0.25):
        base.__init__(self, in_channels, out_channels, stride, se_ratio)
        squeezed = max(1, int(out_channels * se_ratio))
        shortcut = self.shortcut
        del self.shortcut
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(out_channels, squeezed), nn.ReLU(),
                                nn.Linear(squeezed, out_channels), nn.Sigmoid(), nn.Unflatten(1, (out_channels, 1, 1)))
        self.shortcut = shortcut

    check_modern_block(type("LinearSE", (base,), {"__init__": init}))


# ---- untouched stubs ----

def test_untouched_stubs_are_not_attempted():
    assert_words(message_of(check_conv_bn_relu, Unattempted), ["not attempted yet"])
    assert_words(message_of(check_modern_block, Unattempted), ["not attempted yet"])
    assert_words(message_of(check_modern_cnn, Unattempted), ["not attempted yet"])

    def unattempted(num_classes=10):
        raise NotImplementedError

    assert_words(message_of(check_challenge_model, unattempted), ["not attempted yet"])


def test_the_course_s_own_oracles_are_refused():
    assert_words(message_of(check_modern_block, _ReferenceModernBlock), ["course's module"])
    assert_words(message_of(check_modern_cnn, _ReferenceModernCNN), ["course's module"])


# ---- wrong ConvBNReLU ----

def conv_bn_relu(conv=None, order=("conv", "bn", "relu")):
    class Student(nn.Sequential):
        def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1):
            layers = {"conv": (conv or (lambda: nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                                                          padding=kernel_size // 2, groups=groups, bias=False)))(),
                      "bn": nn.BatchNorm2d(out_channels if order[0] == "conv" else in_channels),
                      "relu": nn.ReLU()}
            super().__init__(*[layers[name] for name in order])
    return Student


def test_conv_bn_relu_wrong_answers():
    class WithBias(nn.Sequential):
        def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1):
            super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups),
                             nn.BatchNorm2d(out_channels), nn.ReLU())

    assert_words(message_of(check_conv_bn_relu, WithBias), ["has a bias, but a BatchNorm follows it", "bias=False"])

    class PaddingOne(nn.Sequential):
        def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1):
            super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size, stride, 1, groups=groups, bias=False),
                             nn.BatchNorm2d(out_channels), nn.ReLU())

    assert_words(message_of(check_conv_bn_relu, PaddingOne), ["padding is 1", "kernel_size // 2"])

    class NoGroups(nn.Sequential):
        def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1):
            super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
                             nn.BatchNorm2d(out_channels), nn.ReLU())

    assert_words(message_of(check_conv_bn_relu, NoGroups), ["groups argument does not reach"])

    class NoStride(nn.Sequential):
        def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1):
            super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2, groups=groups,
                                       bias=False), nn.BatchNorm2d(out_channels), nn.ReLU())

    assert_words(message_of(check_conv_bn_relu, NoStride), ["not the one asked for", "stride=2"])

    class ReluFirst(nn.Sequential):
        def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1):
            super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                                       bias=False), nn.ReLU(), nn.BatchNorm2d(out_channels))

    assert_words(message_of(check_conv_bn_relu, ReluFirst), ["not Conv2d, BatchNorm2d, ReLU in this order"])

    class NotSequential(nn.Module):
        def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                                  bias=False)
            self.bn = nn.BatchNorm2d(out_channels)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))

    assert_words(message_of(check_conv_bn_relu, NotSequential), ["is not an nn.Sequential"])


# ---- wrong ModernBlocks ----

def block_variant(solution, init=None, forward=None):
    namespace = {}
    if init:
        namespace["__init__"] = init
    if forward:
        namespace["forward"] = forward
    return type("StudentBlock", (solution["ModernBlock"],), namespace)


def branch(self, x, relus=(True, True, True)):
    h = x
    for use, bn, conv in zip(relus, (self.bn1, self.bn2, self.bn3), (self.conv1, self.conv2, self.conv3)):
        h = conv(F.relu(bn(h)) if use else bn(h))
    return h


WRONG_FORWARDS = {
    "relu_after_addition": (lambda self, x: F.relu(branch(self, x) * self.se(branch(self, x)) + self.shortcut(x)),
                            ["applies a ReLU after the addition", "ReLU(h * se(h) + shortcut(x))"]),
    "se_on_shortcut": (lambda self, x: branch(self, x) + self.shortcut(x) * self.se(self.shortcut(x)),
                       ["applies squeeze-and-excitation to the shortcut"]),
    "se_on_sum": (lambda self, x: (lambda s: s * self.se(s))(branch(self, x) + self.shortcut(x)),
                  ["squeeze-and-excitation to the sum, after the addition"]),
    "no_se": (lambda self, x: branch(self, x) + self.shortcut(x), ["never applies the squeeze-and-excitation"]),
    "preactivated_shortcut": (lambda self, x: (lambda h: h * self.se(h))(branch(self, x))
                              + self.shortcut(F.relu(self.bn1(x))),
                              ["the pre-activated input ReLU(bn1(x))"]),
    "no_relu_bn2": (lambda self, x: (lambda h: h * self.se(h))(branch(self, x, (True, False, True)))
                    + self.shortcut(x), ["misses the ReLU after bn2"]),
    "no_shortcut": (lambda self, x: (lambda h: h * self.se(h))(branch(self, x)), ["never adds the shortcut"]),
}


@pytest.mark.parametrize("fault", sorted(WRONG_FORWARDS))
def test_modern_block_wrong_forwards_are_named(solution, fault):
    forward, words = WRONG_FORWARDS[fault]
    assert_words(message_of(check_modern_block, block_variant(solution, forward=forward)), words)


def test_modern_block_without_sigmoid(solution):
    base = solution["ModernBlock"]

    def init(self, in_channels, out_channels, stride=1, se_ratio=0.25):
        base.__init__(self, in_channels, out_channels, stride, se_ratio)
        self.se[-1] = nn.Identity()

    assert_words(message_of(check_modern_block, block_variant(solution, init=init)), ["no sigmoid"])


def rebuilt(solution, **changes):
    """The solution's block with some layers replaced after construction (same creation order)."""
    base = solution["ModernBlock"]

    def init(self, in_channels, out_channels, stride=1, se_ratio=0.25):
        base.__init__(self, in_channels, out_channels, stride, se_ratio)
        mid = out_channels // 4
        for name, make in changes.items():
            setattr(self, name, make(self, in_channels, out_channels, mid, stride, se_ratio))
    return block_variant(solution, init=init)


def test_modern_block_bias_before_bn(solution):
    student = rebuilt(solution, conv1=lambda self, i, o, m, s, r: nn.Conv2d(i, m, 1))
    assert_words(message_of(check_modern_block, student), ["conv1 has a bias, but a BatchNorm (bn2) follows it"])


def test_modern_block_stride_on_the_first_1x1(solution):
    student = rebuilt(solution, conv1=lambda self, i, o, m, s, r: nn.Conv2d(i, m, 1, stride=s, bias=False),
                      conv2=lambda self, i, o, m, s, r: nn.Conv2d(m, m, 3, padding=1, bias=False))
    assert_words(message_of(check_modern_block, student), ["stride is on the wrong convolution"])


def test_modern_block_post_activation_order(solution):
    class PostActivation(nn.Module):
        def __init__(self, in_channels, out_channels, stride=1, se_ratio=0.25):
            super().__init__()
            mid = out_channels // 4
            self.conv1, self.bn1 = nn.Conv2d(in_channels, mid, 1, bias=False), nn.BatchNorm2d(mid)
            self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(mid)
            self.conv3, self.bn3 = nn.Conv2d(mid, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            squeezed = max(1, int(out_channels * se_ratio))
            self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(out_channels, squeezed, 1), nn.ReLU(),
                                    nn.Conv2d(squeezed, out_channels, 1), nn.Sigmoid())
            self.shortcut = nn.Identity()
            if stride != 1 or in_channels != out_channels:
                self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

        def forward(self, x):
            h = F.relu(self.bn1(self.conv1(x)))
            h = F.relu(self.bn2(self.conv2(h)))
            h = self.bn3(self.conv3(h))
            return F.relu(h * self.se(h) + self.shortcut(x))

    assert_words(message_of(check_modern_block, PostActivation), ["post-activation"])


def test_modern_block_shortcut_mistakes(solution):
    base = solution["ModernBlock"]

    def bn_on_projection(self, in_channels, out_channels, stride=1, se_ratio=0.25):
        base.__init__(self, in_channels, out_channels, stride, se_ratio)
        if isinstance(self.shortcut, nn.Conv2d):
            self.shortcut = nn.Sequential(self.shortcut, nn.BatchNorm2d(out_channels))

    assert_words(message_of(check_modern_block, block_variant(solution, init=bn_on_projection)),
                 ["projection shortcut has a BatchNorm"])

    def no_projection(self, in_channels, out_channels, stride=1, se_ratio=0.25):
        base.__init__(self, in_channels, out_channels, 1 if in_channels == out_channels else stride, se_ratio)
        if in_channels == out_channels:       # forgets that the stride alone needs a projection
            self.conv2.stride = (stride, stride)

    assert_words(message_of(check_modern_block, block_variant(solution, init=no_projection)),
                 ["no projection shortcut"])

    def stride_one_projection(self, in_channels, out_channels, stride=1, se_ratio=0.25):
        base.__init__(self, in_channels, out_channels, stride, se_ratio)
        if isinstance(self.shortcut, nn.Conv2d):
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=False)   # the stride forgotten

    assert_words(message_of(check_modern_block, block_variant(solution, init=stride_one_projection)),
                 ["projection shortcut does not produce F(x)'s shape"])


def test_modern_block_squeeze_from_the_input_width(solution):
    base = solution["ModernBlock"]

    def init(self, in_channels, out_channels, stride=1, se_ratio=0.25):
        base.__init__(self, in_channels, out_channels, stride, se_ratio)
        squeezed = max(1, int(in_channels * se_ratio))
        shortcut = self.shortcut
        del self.shortcut
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(out_channels, squeezed, 1), nn.ReLU(),
                                nn.Conv2d(squeezed, out_channels, 1), nn.Sigmoid())
        self.shortcut = shortcut

    assert_words(message_of(check_modern_block, block_variant(solution, init=init)),
                 ["squeeze-and-excitation squeezes to 2 channels", "= 8"])


# ---- wrong ModernCNNs ----

def network_variant(solution, forward=None, init=None):
    namespace = {}
    if forward:
        namespace["forward"] = forward
    if init:
        namespace["__init__"] = init
    return type("StudentCNN", (solution["ModernCNN"],), namespace)


def test_modern_cnn_without_final_bn_relu(solution):
    base = solution["ModernCNN"]

    def init(self, widths, depths, num_classes=10):
        base.__init__(self, widths, depths, num_classes)
        fc = self.fc
        del self.bn, self.fc
        self.fc = fc

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))

    assert_words(message_of(check_modern_cnn, network_variant(solution, forward, init)),
                 ["no BatchNorm-ReLU between the last block and the pooling", "Identity Mappings"])


def test_modern_cnn_final_bn_without_relu(solution):
    def forward(self, x):
        return self.fc(self.bn(self.blocks(self.stem(x))).mean(dim=(2, 3)))

    assert_words(message_of(check_modern_cnn, network_variant(solution, forward)),
                 ["no ReLU after the final BatchNorm"])


def test_modern_cnn_bn_relu_after_the_pooling(solution):
    def forward(self, x):
        return self.fc(F.relu(self.bn(self.blocks(self.stem(x)).mean(dim=(2, 3), keepdim=True))).flatten(1))

    assert_words(message_of(check_modern_cnn, network_variant(solution, forward)), ["after the pooling"])


def test_modern_cnn_flatten_head(solution):
    base = solution["ModernCNN"]

    def init(self, widths, depths, num_classes=10):
        base.__init__(self, widths, depths, num_classes)
        self.fc = nn.Linear(widths[-1] * 64, num_classes)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.blocks(self.stem(x)))).flatten(1))

    assert_words(message_of(check_modern_cnn, network_variant(solution, forward, init)),
                 ["no global average pooling"])


def test_modern_cnn_wrong_strides(solution):
    ModernCNN = solution["ModernCNN"]

    class EveryStageStrided(nn.Module):
        def __init__(self, widths, depths, num_classes=10):
            super().__init__()
            self.stem = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
            blocks, c_in = [], widths[0]
            for width, depth in zip(widths, depths):
                for i in range(depth):
                    blocks.append(ModernBlock(c_in, width, 2 if i == 0 else 1))
                    c_in = width
            self.blocks = nn.Sequential(*blocks)
            self.bn, self.fc = nn.BatchNorm2d(c_in), nn.Linear(c_in, num_classes)

        forward = ModernCNN.forward

    assert_words(message_of(check_modern_cnn, EveryStageStrided),
                 ["block 1 is not the one asked for", "ModernBlock(8, 8, 1)", "ModernBlock(8, 8, 2)"])


# ---- the design challenge ----

def test_challenge_over_the_parameter_budget():
    def build(num_classes=10):
        return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(8 * 16 * 16, num_classes * 60), nn.ReLU(), nn.Linear(num_classes * 60, num_classes))

    assert_words(message_of(check_challenge_model, build), ["over the parameter budget", f"{MAX_PARAMETERS:,}"])


def test_challenge_over_the_mac_budget():
    def build(num_classes=10):
        return nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))

    assert_words(message_of(check_challenge_model, build), ["over the compute budget", "MACs"])


def test_challenge_model_that_does_not_learn():
    def build(num_classes=10):                    # no non-linearity: a linear map of the pixels
        return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))

    assert_words(message_of(check_challenge_model, build), ["below the floor", f"{FLOOR:.0%}"])


def test_challenge_model_that_ends_with_a_softmax():
    def build(num_classes=10):                    # learns a little even so: the floor alone would pass it
        return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes), nn.Softmax(dim=1))

    assert_words(message_of(check_challenge_model, build), ["probabilities", "softmax", "raw scores"])


def test_challenge_wrong_output_and_library_models():
    def ignores_classes(num_classes=10):
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    assert_words(message_of(check_challenge_model, ignores_classes), ["one score per class", "(2, 7)"])
    import torchvision

    def borrowed(num_classes=10):
        return torchvision.models.mobilenet_v3_small(num_classes=num_classes)

    assert_words(message_of(check_challenge_model, borrowed), ["torchvision's"])


def test_challenge_floor_is_deterministic(solution):
    first = compare_challenge(solution["build_challenge_model"], 10, seed=0)
    second = compare_challenge(solution["build_challenge_model"], 10, seed=0)
    assert first == second >= FLOOR + 0.15
