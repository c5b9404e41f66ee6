"""The ResNet-variant checks (notebook 07) pass the reference and fail typical wrong answers with their own messages."""
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from autograder.solutions import load_solutions
from helpers import checks
from helpers.checks.models import on_meta
from helpers.checks.resnet_grouped import (TORCHVISION_COUNTS, check_grouped_resnet, compare_factory,
                                           compare_grouped_resnet)
from helpers.checks.resnet_variants import (check_grouped_bottleneck, check_preact_residual_block,
                                            compare_grouped_bottleneck, compare_preact_block)
from helpers.inspection import count_parameters
from check_messages import message_of

pytestmark = pytest.mark.usefixtures("grading_mode")
IMPORTS = {"nn": nn, "torch": torch, "F": F}


class Unattempted(nn.Module):
    expansion = 4

    def __init__(self, *args, **kwargs):
        super().__init__()
        raise NotImplementedError("Replace this line with your solution.")


@pytest.fixture(scope="module")
def solution():
    blocks = load_solutions("07_exercises", ["preact_residual_block", "grouped_bottleneck"], IMPORTS)
    # GroupedResNet and the factories are loaded with the block a stub: the exercises are graded apart.
    networks = load_solutions("07_exercises", ["grouped_resnet"], {**IMPORTS, "GroupedBottleneck": Unattempted})
    return {**blocks, **{k: networks[k] for k in ("GroupedResNet", "resnext50_32x4d", "wide_resnet50_2")}}


def test_torchvision_parameter_counts():
    for name, expected in TORCHVISION_COUNTS.items():
        assert count_parameters(on_meta(getattr(torchvision.models, name), weights=None)) == expected


def test_checks_are_exported():
    for name in ("check_preact_residual_block", "check_grouped_bottleneck", "check_grouped_resnet"):
        assert name in checks.__all__ and hasattr(getattr(checks, name), "__wrapped__")
    assert not [n for n in dir(checks) if "trusted" in n.lower() or "formula" in n.lower()]


def test_reference_passes(solution, capsys):
    check_preact_residual_block(solution["PreActResidualBlock"])
    check_grouped_bottleneck(solution["GroupedBottleneck"])
    check_grouped_resnet(solution["GroupedResNet"], solution["resnext50_32x4d"], solution["wide_resnet50_2"])
    out = capsys.readouterr()
    assert out.out.count("✓") == 3 and out.err == ""


def test_hidden_cases_pass(solution):
    compare_preact_block(solution["PreActResidualBlock"], 3, 6, 2, (2, 3, 7, 7), seed=9)
    compare_grouped_bottleneck(solution["GroupedBottleneck"], 8, 16, 2, 4, 32, (2, 8, 7, 7), seed=9)
    compare_grouped_resnet(solution["GroupedResNet"], (2, 1, 1, 2), 13, 8, 4, (1, 3, 56, 48), seed=9)


def test_untouched_stubs():
    assert "not attempted yet" in message_of(check_preact_residual_block, Unattempted)
    assert "not attempted yet" in message_of(check_grouped_bottleneck, Unattempted)
    assert "not attempted yet" in message_of(check_grouped_resnet, Unattempted, Unattempted, Unattempted)


# ---- the pre-activation block ----

def test_preact_relu_after_the_addition(solution):
    class PostActivation(solution["PreActResidualBlock"]):
        def forward(self, x):
            return F.relu(super().forward(x))
    message = message_of(check_preact_residual_block, PostActivation)
    assert "applies a ReLU after the addition" in message and "hint:" in message


def test_preact_projection_reads_x(solution):
    class FromX(solution["PreActResidualBlock"]):
        def forward(self, x):
            a = F.relu(self.bn1(x))
            shortcut = x if self.shortcut is None else self.shortcut(x)
            return self.conv2(F.relu(self.bn2(self.conv1(a)))) + shortcut
    assert "projection shortcut to x instead of the pre-activated" in message_of(check_preact_residual_block, FromX)


def test_preact_original_order(solution):
    class ConvFirst(nn.Module):
        def __init__(self, c_in, c_out, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride != 1 or c_in != c_out else None

        def forward(self, x):
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))
    message = message_of(lambda c: compare_preact_block(c, 8, 16, 2, (2, 8, 8, 8)), ConvFirst)
    assert "conv -> BN -> ReLU, the original order" in message


def test_preact_shortcut_with_batchnorm(solution):
    class WithBN(solution["PreActResidualBlock"]):
        def __init__(self, c_in, c_out, stride=1):
            super().__init__(c_in, c_out, stride)
            if self.shortcut is not None:
                self.shortcut = nn.Sequential(self.shortcut, nn.BatchNorm2d(c_out))
    assert "has no BatchNorm" in message_of(check_preact_residual_block, WithBN)


def test_preact_missing_projection(solution):
    class NoProjection(solution["PreActResidualBlock"]):
        def __init__(self, c_in, c_out, stride=1):
            super().__init__(c_in, c_out, stride)
            self.shortcut = None
    assert "no projection shortcut" in message_of(check_preact_residual_block, NoProjection)


# ---- the grouped bottleneck ----

def grouped_with_width(solution, width_of):
    base = solution["GroupedBottleneck"]

    class Wrong(base):
        def __init__(self, c_in, internal, stride=1, groups=1, width_per_group=64):
            nn.Module.__init__(self)
            width, out = width_of(internal, groups, width_per_group), 4 * internal
            self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out)
            self.relu = nn.ReLU(inplace=True)
            self.shortcut = nn.Identity()
            if stride != 1 or c_in != out:
                self.shortcut = nn.Sequential(nn.Conv2d(c_in, out, 1, stride, bias=False), nn.BatchNorm2d(out))
    return Wrong


@pytest.mark.parametrize("width_of,words", [
    (lambda c, g, w: w * g, "width_per_group x groups: the scaling by internal_channels / 64 is missing"),
    (lambda c, g, w: c * g, "internal_channels x groups: width_per_group / 64 is missing"),
])
def test_grouped_wrong_width(solution, width_of, words):
    message = message_of(check_grouped_bottleneck, grouped_with_width(solution, width_of))
    assert "wrong width" in message and words in message and "int(" in message


def test_grouped_not_grouped(solution):
    class Ungrouped(solution["GroupedBottleneck"]):
        def __init__(self, c_in, internal, stride=1, groups=1, width_per_group=64):
            super().__init__(c_in, internal, stride, groups, width_per_group)
            c = self.conv2
            self.conv2 = nn.Conv2d(c.in_channels, c.out_channels, 3, stride, 1, bias=False)
    assert "groups=1" in message_of(check_grouped_bottleneck, Ungrouped)


def test_grouped_wrong_expansion(solution):
    class Expansion1(solution["GroupedBottleneck"]):
        expansion = 1
    assert "expansion" in message_of(check_grouped_bottleneck, Expansion1)


def test_grouped_refuses_torchvision():
    class Borrowed(torchvision.models.resnet.Bottleneck):
        expansion = 4

        def __init__(self, c_in, internal, stride=1, groups=1, width_per_group=64):
            super().__init__(c_in, internal, stride, None, groups, width_per_group)
    assert "torchvision's Bottleneck" in message_of(check_grouped_bottleneck, Borrowed)


# ---- GroupedResNet and the factories ----

def test_factory_wide_with_two_groups(solution):
    namespace = {"GroupedResNet": solution["GroupedResNet"]}
    exec("def wide_resnet50_2(num_classes=1000):\n"
         "    return GroupedResNet([3, 4, 6, 3], num_classes=num_classes, groups=2, width_per_group=64)\n", namespace)
    message = message_of(lambda f: compare_factory(f, "wide_resnet50_2"), namespace["wide_resnet50_2"])
    assert "groups=2" in message and "not groups=2" in message


def test_factory_resnext_swapped(solution):
    namespace = {"GroupedResNet": solution["GroupedResNet"]}
    exec("def resnext50_32x4d(num_classes=1000):\n"
         "    return GroupedResNet([3, 4, 6, 3], num_classes=num_classes, groups=4, width_per_group=32)\n", namespace)
    message = message_of(lambda f: compare_factory(f, "resnext50_32x4d"), namespace["resnext50_32x4d"])
    assert "groups=4, width_per_group=32" in message and "groups=32, width_per_group=4" in message


def network_variant(source):
    """A GroupedResNet subclass defined in the solution's own namespace, where the check swaps the block in."""
    namespace = load_solutions("07_exercises", ["grouped_resnet"], {**IMPORTS, "GroupedBottleneck": Unattempted})
    exec(source, namespace)
    return namespace["Variant"]


def test_grouped_resnet_ignores_groups():
    variant = network_variant(
        "class Variant(GroupedResNet):\n"
        "    def __init__(self, layers, num_classes=1000, groups=1, width_per_group=64):\n"
        "        super().__init__(layers, num_classes=num_classes)\n")          # forgets both arguments
    message = message_of(lambda c: compare_grouped_resnet(c, (1, 1, 1, 1), 7, 4, 16, None), variant)
    assert "groups does not reach the blocks" in message


def test_grouped_resnet_wrong_fc():
    variant = network_variant(
        "class Variant(GroupedResNet):\n"
        "    def __init__(self, layers, num_classes=1000, groups=1, width_per_group=64):\n"
        "        super().__init__(layers, num_classes, groups, width_per_group)\n"
        "        self.fc = nn.Linear(2048, num_classes + 1)\n")
    assert "number of parameters is wrong" in message_of(
        lambda c: compare_grouped_resnet(c, (1, 1, 1, 1), 7, 4, 16, None), variant)


def test_grouped_resnet_wrong_logits():
    variant = network_variant(
        "class Variant(GroupedResNet):\n"
        "    def forward(self, x):\n"
        "        x = self.maxpool(self.bn1(self.conv1(x)))\n"                  # the stem's ReLU is missing
        "        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))\n"
        "        return self.fc(torch.flatten(self.avgpool(x), 1))\n")
    message = message_of(lambda c: compare_grouped_resnet(c, (1, 1, 1, 1), 7, 4, 16, (1, 3, 48, 40)), variant)
    assert "differ from torchvision's" in message
