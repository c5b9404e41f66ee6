"""The ResNet checks pass the reference solution and fail typical wrong answers, each with its own message."""
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from autograder.solutions import load_solutions
from helpers import checks
from helpers.checks.models import on_meta
from helpers.checks.resnet import (TORCHVISION_COUNTS, check_cifar_resnet, check_resnet, check_resnet_factories,
                                   compare_cifar_depth_error, compare_cifar_resnet, compare_resnet,
                                   compare_resnet_factory)
from helpers.checks.resnet_blocks import (_trusted_block, check_bottleneck_block, check_residual_block,
                                          compare_bottleneck_block, compare_residual_block)
from helpers.inspection import count_parameters
from check_messages import assert_words, message_of

# The checks are tested as nbgrader runs them: an untouched stub raises.
pytestmark = pytest.mark.usefixtures("grading_mode")
IMPORTS = {"nn": nn, "torch": torch, "F": F}


class Unattempted(nn.Module):
    expansion = 1

    def __init__(self, *args, **kwargs):
        super().__init__()
        raise NotImplementedError("Replace this line with your solution.")


class UnattemptedBottleneck(Unattempted):
    expansion = 4


def unattempted_factory(num_classes=1000):
    raise NotImplementedError("Replace this line with your solution.")


@pytest.fixture(scope="module")
def solution():
    # The blocks are stubs where ResNet and the factories are loaded: the exercises are graded apart.
    blocks = load_solutions("04_resnet", ["residual_block", "bottleneck_block"], IMPORTS)
    stubs = {**IMPORTS, "ResidualBlock": Unattempted, "BottleneckBlock": UnattemptedBottleneck}
    resnet = load_solutions("04_resnet", ["resnet"], stubs)
    factories = load_solutions("04_resnet", ["resnet_factories"], {**stubs, "ResNet": Unattempted})
    cifar = load_solutions("04_resnet", ["cifar_resnet"], IMPORTS)
    return {"ResidualBlock": blocks["ResidualBlock"], "BottleneckBlock": blocks["BottleneckBlock"],
            "ResNet": resnet["ResNet"], "factories": factories, "CifarResNet": cifar["CifarResNet"],
            "CifarBlock": cifar["CifarBlock"]}


# ---- torchvision's numbers ----

def test_torchvision_parameter_counts():
    for name, expected in TORCHVISION_COUNTS.items():
        model = on_meta(getattr(torchvision.models, name.lower()), weights=None)
        assert count_parameters(model) == expected


def test_checks_are_exported_and_oracles_are_not():
    for name in ("check_residual_block", "check_bottleneck_block", "check_resnet",
                 "check_resnet_factories", "check_cifar_resnet"):
        assert name in checks.__all__ and hasattr(getattr(checks, name), "__wrapped__")
    assert not [n for n in dir(checks) if "trusted" in n.lower() or "reference" in n.lower()]


# ---- the reference solution passes, each exercise on its own ----

def test_solution_passes_every_check(solution, capsys):
    check_residual_block(solution["ResidualBlock"])
    check_bottleneck_block(solution["BottleneckBlock"])
    check_resnet(solution["ResNet"])                         # its own blocks are stubs: not needed
    f = solution["factories"]
    check_resnet_factories(f["ResNet18"], f["ResNet34"], f["ResNet50"])   # its ResNet is a stub: not needed
    assert f["ResNet"] is Unattempted, "the student's ResNet is put back"
    check_cifar_resnet(solution["CifarResNet"])
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 5 and all(line.startswith("✓") for line in lines), out
    assert "11,689,512 / 21,797,672 / 25,557,032" in lines[2]
    assert "269,722 parameters" in lines[4]


def test_hidden_cases_pass_the_solution(solution):
    compare_residual_block(solution["ResidualBlock"], 5, 5, 2, (1, 5, 7, 7), seed=3)
    compare_bottleneck_block(solution["BottleneckBlock"], 6, 3, 2, (2, 6, 5, 6), seed=4)
    compare_resnet(solution["ResNet"], "basic", (1, 2, 1, 1), 7, (1, 3, 72, 64), seed=5, init=True)
    compare_resnet_factory(solution["factories"]["ResNet50"], "ResNet50", num_classes=17)
    compare_cifar_resnet(solution["CifarResNet"], 20, False, 3, (1, 3, 16, 16), seed=6)
    compare_cifar_depth_error(solution["CifarResNet"], 2)


# ---- wrong basic blocks ----

def block_variant(solution, name="ResidualBlock", init=None, forward=None):
    base = solution[name]
    namespace = {}
    if init:
        namespace["__init__"] = init
    if forward:
        namespace["forward"] = forward
    return type("Student" + name, (base,), namespace)


def basic_no_relu_after_bn1(self, x):
    return self.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))) + self.shortcut(x))


def basic_no_final_relu(self, x):
    return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + self.shortcut(x)


def basic_no_skip(self, x):
    return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


def shortcut_without_bn(base):
    def __init__(self, a, b, stride=1):
        base.__init__(self, a, b, stride)
        if isinstance(self.shortcut, nn.Sequential):
            self.shortcut = self.shortcut[0]                  # the 1x1 convolution alone
    return __init__


def no_projection(base):
    def __init__(self, a, b, stride=1):
        base.__init__(self, a, b, stride)
        self.shortcut = nn.Identity()
    return __init__


def stride_on_second_conv(base):
    def __init__(self, a, b, stride=1):
        base.__init__(self, a, b, stride)
        self.conv1.stride, self.conv2.stride = (1, 1), (stride, stride)
    return __init__


def with_bias(base):
    def __init__(self, a, b, stride=1):
        base.__init__(self, a, b, stride)
        self.conv1 = nn.Conv2d(a, b, 3, stride=stride, padding=1)
    return __init__


class ShortcutFirst(nn.Module):
    """Right layers, created shortcut first."""

    expansion = 1

    def __init__(self, a, b, stride=1):
        super().__init__()
        project = stride != 1 or a != b
        self.shortcut = (nn.Sequential(nn.Conv2d(a, b, 1, stride, bias=False), nn.BatchNorm2d(b))
                         if project else nn.Identity())
        self.conv1, self.bn1 = nn.Conv2d(a, b, 3, stride, 1, bias=False), nn.BatchNorm2d(b)
        self.conv2, self.bn2 = nn.Conv2d(b, b, 3, 1, 1, bias=False), nn.BatchNorm2d(b)

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + self.shortcut(x))


@pytest.mark.parametrize("make, words", [
    (lambda s: block_variant(s, forward=basic_no_relu_after_bn1),
     ["misses the ReLU after the first BatchNorm (bn1)"]),
    (lambda s: block_variant(s, forward=basic_no_final_relu),
     ["misses the ReLU after the addition", "it returns F(x) + shortcut(x)"]),
    (lambda s: block_variant(s, forward=basic_no_skip), ["never adds the shortcut"]),
    (lambda s: block_variant(s, init=shortcut_without_bn(s["ResidualBlock"])),
     ["ResidualBlock(8, 16, stride=2)", "the projection shortcut has no BatchNorm", "2 BatchNorm2d layers"]),
    (lambda s: block_variant(s, init=no_projection(s["ResidualBlock"])),
     ["ResidualBlock(8, 16, stride=2): the block has no projection shortcut",
      "stride=2 and 8 channels in, 16 out", "kernel_size=1, stride=stride"]),
    (lambda s: block_variant(s, init=stride_on_second_conv(s["ResidualBlock"])),
     ["the stride is on the wrong convolution: conv1 has stride 1, torchvision's conv1 has stride 2",
      "the second 3x3 convolution always has stride 1"]),
    (lambda s: block_variant(s, init=with_bias(s["ResidualBlock"])),
     ["the convolution conv1 has a bias", "bias=False"]),
    (lambda s: ShortcutFirst, ["created in another order", "the shortcut's layers last"]),
    (lambda s: Unattempted, ["not attempted yet"]),
])
def test_residual_block_check_fails_wrong_blocks(solution, make, words):
    assert_words(message_of(check_residual_block, make(solution)), words)


def test_a_projection_for_the_channels_alone_is_required(solution):
    def projects_for_the_stride_only(self, a, b, stride=1):
        solution["ResidualBlock"].__init__(self, a, b, stride)
        if stride == 1:
            self.shortcut = nn.Identity()

    only_stride = block_variant(solution, init=projects_for_the_stride_only)
    assert_words(message_of(compare_residual_block, only_stride, 8, 12, 1, (2, 8, 6, 6)),
                 ["no projection shortcut", "8 channels in, 12 out"])


def test_block_checks_refuse_torchvision_and_the_course(solution):
    class Borrowed(nn.Module):
        expansion = 1

        def __init__(self, a, b, stride=1):
            super().__init__()
            self.inner = torchvision.models.resnet.BasicBlock(a, b)

        def forward(self, x):
            return self.inner(x)

    assert_words(message_of(check_residual_block, Borrowed), ["torchvision's BasicBlock"])
    assert_words(message_of(check_residual_block, _trusted_block("basic")), ["the course's module"])


# ---- wrong bottleneck blocks ----

def stride_on_first_1x1(base):
    def __init__(self, a, b, stride=1):
        base.__init__(self, a, b, stride)
        self.conv1.stride, self.conv2.stride = (stride, stride), (1, 1)
    return __init__


def bottleneck_no_relu_after_bn2(self, x):
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn3(self.conv3(self.bn2(self.conv2(out))))
    return self.relu(out + self.shortcut(x))


class DoubleExpansion(nn.Module):
    """A bottleneck that expands to 2 x internal_channels, with a shortcut to match."""

    expansion = 4

    def __init__(self, a, mid, stride=1):
        super().__init__()
        out = 2 * mid
        self.conv1, self.bn1 = nn.Conv2d(a, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv2, self.bn2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(mid, out, 1, bias=False), nn.BatchNorm2d(out)
        self.shortcut = (nn.Sequential(nn.Conv2d(a, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                         if stride != 1 or a != out else nn.Identity())

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(out)))))
        return F.relu(out + self.shortcut(x))


@pytest.mark.parametrize("make, words", [
    (lambda s: block_variant(s, "BottleneckBlock", init=stride_on_first_1x1(s["BottleneckBlock"])),
     ["BottleneckBlock(32, 8, stride=2): the stride is on the wrong convolution: conv1 has stride 2",
      "The stride goes on the 3x3 convolution (conv2)", "ResNet v1.5"]),
    (lambda s: DoubleExpansion,
     ["BottleneckBlock(16, 4, stride=1): the block's output has 8 channels instead of expansion x "
      "internal_channels = 4 x 4 = 16", "conv3"]),
    (lambda s: type("Halved", (s["BottleneckBlock"],), {"expansion": 2}),
     ["the class attribute `expansion` is wrong", "expected: expansion = 4", "got:      expansion = 2"]),
    (lambda s: block_variant(s, "BottleneckBlock", forward=bottleneck_no_relu_after_bn2),
     ["misses the ReLU after the second BatchNorm (bn2)"]),
    (lambda s: block_variant(s, "BottleneckBlock", init=shortcut_without_bn(s["BottleneckBlock"])),
     ["BottleneckBlock(8, 4, stride=1): the projection shortcut has no BatchNorm"]),
    (lambda s: block_variant(s, "BottleneckBlock", init=no_projection(s["BottleneckBlock"])),
     ["BottleneckBlock(8, 4, stride=1): the block has no projection shortcut", "8 channels in, 16 out"]),
    (lambda s: UnattemptedBottleneck, ["not attempted yet"]),
])
def test_bottleneck_check_fails_wrong_blocks(solution, make, words):
    assert_words(message_of(check_bottleneck_block, make(solution)), words)


def test_expansion_must_be_a_class_attribute(solution):
    class InInit(nn.Module):
        def __init__(self, a, b, stride=1):
            super().__init__()
            self.expansion = 1

    assert_words(message_of(check_residual_block, InInit), ["no class attribute `expansion`", "class body"])


# ---- wrong ResNets ----

def resnet_variant(solution, init=None, forward=None):
    namespace = {}
    if init:
        namespace["__init__"] = init
    if forward:
        namespace["forward"] = forward
    return type("StudentResNet", (solution["ResNet"],), namespace)


def resnet_without_stem_relu(self, x):
    x = self.maxpool(self.bn1(self.conv1(x)))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return self.fc(torch.flatten(self.avgpool(x), 1))


def after(solution, edit):
    def __init__(self, block, num_blocks, num_classes=1000):
        solution["ResNet"].__init__(self, block, num_blocks, num_classes)
        edit(self)
    return __init__


def stage_without_stride(model):
    model.layer2[0].conv1.stride = (1, 1)
    model.layer2[0].downsample[0].stride = (1, 1)


def reinit(kind):
    def edit(model):
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                if kind == "fan_in":
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                elif kind == "uniform":
                    nn.init.kaiming_uniform_(m.weight, mode="fan_out", nonlinearity="relu")
                elif m is not model.conv1:
                    m.reset_parameters()                     # only the stem is initialised
    return edit


def no_expansion(self, block, num_blocks, num_classes=1000):
    nn.Module.__init__(self)
    self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    self.bn1, self.relu, self.maxpool = nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
    stages, c = [], 64
    for width, n, stride in zip((64, 128, 256, 512), num_blocks, (1, 2, 2, 2)):
        layers = []
        for i in range(n):
            layers.append(block(c, width, stride if i == 0 else 1))
            c = width                                          # forgets block.expansion
        stages.append(nn.Sequential(*layers))
    self.layer1, self.layer2, self.layer3, self.layer4 = stages
    self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(512 * block.expansion, num_classes)


@pytest.mark.parametrize("make, words", [
    (lambda s: resnet_variant(s, forward=resnet_without_stem_relu),
     ["the first layer that differs is layer1.0.conv1: its input already differs",
      "between bn1 and layer1.0.conv1 torchvision runs relu (ReLU), maxpool (MaxPool2d)"]),
    (lambda s: resnet_variant(s, init=after(s, stage_without_stride)),
     ["ResNet(ResidualBlock, [2, 2, 2, 2], num_classes=1000)", "layer2.0.conv1", "another shape",
      "(1, 128, 16, 16)", "(1, 128, 32, 32)", "first block of layer2..layer4 has stride 2"]),
    (lambda s: resnet_variant(s, init=no_expansion),
     ["ResNet(BottleneckBlock, [3, 4, 6, 3], num_classes=1000): the number of parameters is wrong",
      "layer1.1.conv1.weight (64, 256, 1, 1)", "layer1.1.conv1.weight (64, 64, 1, 1)", "25,557,032",
      "width x block.expansion"]),
    (lambda s: resnet_variant(s, init=after(s, reinit("fan_in"))),
     ["the weights of conv1 do not have torchvision's initialisation", "sqrt(2 / fan_out) = 0.0253",
      "mode=\"fan_out\""]),
    (lambda s: resnet_variant(s, init=after(s, reinit("uniform"))), ["look uniformly distributed"]),
    (lambda s: resnet_variant(s, init=after(s, reinit("stem"))),
     ["the weights of layer1.0.conv1 do not have torchvision's initialisation", "the blocks' layers included"]),
    (lambda s: resnet_variant(s, init=after(s, lambda m: setattr(m, "maxpool", nn.Identity()))),
     ["maxpool should be nn.MaxPool2d(kernel_size=3, stride=2, padding=1)", "Identity()"]),
    (lambda s: resnet_variant(s, init=after(s, lambda m: (setattr(m, "stage1", m.layer1), delattr(m, "layer1")))),
     ["the model has no `layer1` module", "self.layer1"]),
    (lambda s: lambda block, num_blocks, num_classes=1000: torchvision.models.resnet50(),
     ["your model is torchvision's ResNet"]),
    (lambda s: Unattempted, ["not attempted yet"]),
])
def test_resnet_check_fails_wrong_models(solution, make, words):
    assert_words(message_of(check_resnet, make(solution)), words)


# ---- wrong factories ----

def test_factories_check_fails_wrong_configurations(solution):
    f = solution["factories"]
    ns = {"ResNet": Unattempted, "ResidualBlock": Unattempted, "BottleneckBlock": UnattemptedBottleneck}
    exec("def ResNet34(num_classes=1000):\n    return ResNet(BottleneckBlock, [3, 4, 6, 3], num_classes)\n", ns)
    assert_words(message_of(check_resnet_factories, f["ResNet18"], ns["ResNet34"], f["ResNet50"]),
                 ["ResNet34(num_classes=1000): the number of parameters is wrong",
                  "it builds ResNet(BottleneckBlock, [3, 4, 6, 3])", "21,797,672", "Table 1"])
    exec("def ResNet18(num_classes=1000):\n    return ResNet(ResidualBlock, [2, 2, 2, 2])\n", ns)
    assert_words(message_of(check_resnet_factories, ns["ResNet18"], f["ResNet34"], f["ResNet50"]),
                 ["ResNet18(num_classes=10): num_classes does not reach the fully connected layer",
                  "Pass num_classes on to ResNet"])
    assert ns["ResNet"] is Unattempted
    assert_words(message_of(check_resnet_factories, unattempted_factory, f["ResNet34"], f["ResNet50"]),
                 ["ResNet18: not attempted yet"])


# ---- wrong CIFAR ResNets ----

def cifar_variant(solution, forward=None, init=None):
    """A fresh copy of the reference CifarResNet whose block has another forward, or edited after __init__."""
    ns = load_solutions("04_resnet", ["cifar_resnet"], IMPORTS)
    if forward:
        ns["CifarBlock"].forward = forward
    if not init:
        return ns["CifarResNet"]

    def __init__(self, depth, num_classes=10, residual=True):
        ns["CifarResNet"].__init__(self, depth, num_classes, residual)
        init(self)
    return type("StudentCifarResNet", (ns["CifarResNet"],), {"__init__": __init__})


def pad_both_sides(self, x):
    out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
    if self.residual:
        s, e = x[:, :, ::self.stride, ::self.stride], self.extra_channels
        out = out + F.pad(s, (0, 0, 0, 0, e // 2, e - e // 2))
    return F.relu(out)


def always_residual(self, x):
    out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
    s = x[:, :, ::self.stride, ::self.stride]
    return F.relu(out + F.pad(s, (0, 0, 0, 0, 0, self.extra_channels)))


class ProjectionCifar(nn.Module):
    """Option B shortcuts (1x1 projections) where the shape changes, instead of option A."""

    def __init__(self, depth, num_classes=10, residual=True):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth {depth} is not 6n + 2")
        n = (depth - 2) // 6
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        blocks, c = [], 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                s = stride if i == 0 else 1
                layers = [nn.Conv2d(c, width, 3, s, 1, bias=False), nn.Conv2d(width, width, 3, 1, 1, bias=False)]
                if s != 1 or c != width:
                    layers.append(nn.Conv2d(c, width, 1, s, bias=False))
                blocks.append(nn.Sequential(*layers))
                c = width
        self.blocks, self.fc = nn.Sequential(*blocks), nn.Linear(64, num_classes)


class SilentValueError(nn.Module):
    def __init__(self, depth, num_classes=10, residual=True):
        super().__init__()
        raise ValueError()


@pytest.mark.parametrize("make, words", [
    (lambda s: cifar_variant(s, forward=pad_both_sides),
     ["CifarResNet(8, num_classes=10, residual=True)", "zero channels on both sides of x",
      "append zero channels after the input's channels"]),
    (lambda s: cifar_variant(s, forward=always_residual),
     ["CifarResNet(8, num_classes=10, residual=False)", "computes the network with residual=True"]),
    (lambda s: ProjectionCifar, ["the network has 9 convolutions", "option A's shortcuts have no parameters"]),
    (lambda s: cifar_variant(s, init=lambda m: [c.reset_parameters() for c in m.modules()
                                                if isinstance(c, nn.Conv2d)]),
     ["do not have torchvision's initialisation"]),
    (lambda s: (lambda depth, num_classes=10, residual=True: s["CifarResNet"](20, num_classes, residual)),
     ["depth 21 is not 6n + 2", "ValueError"]),
    (lambda s: SilentValueError, ["the ValueError has no message"]),
    (lambda s: Unattempted, ["not attempted yet"]),
])
def test_cifar_check_fails_wrong_networks(solution, make, words):
    assert_words(message_of(check_cifar_resnet, make(solution)), words)


def test_depth_two_has_no_blocks_and_is_refused(solution):
    class Lenient(solution["CifarResNet"]):
        def __init__(self, depth, num_classes=10, residual=True):
            if (depth - 2) % 6:
                raise ValueError(f"depth {depth} is not 6n + 2")
            nn.Module.__init__(self)

    assert_words(message_of(compare_cifar_depth_error, Lenient, 2), ["depth 2 is not 6n + 2 with n >= 1"])


# ---- not attempted, outside nbgrader ----

def test_unattempted_prints_one_line_in_a_students_kernel(monkeypatch, capsys):
    monkeypatch.delenv("NBGRADER_EXECUTION")
    check_residual_block(Unattempted)
    check_resnet(Unattempted)
    check_resnet_factories(unattempted_factory, unattempted_factory, unattempted_factory)
    check_cifar_resnet(Unattempted)
    out = capsys.readouterr().out.splitlines()
    assert len(out) >= 4 and all("not attempted yet" in line for line in out if line.startswith("✗"))
    assert sum(line.startswith("✗") for line in out) == 4
