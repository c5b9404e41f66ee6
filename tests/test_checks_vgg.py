"""The VGG checks pass the reference solution and fail typical wrong answers, naming the layer."""
import copy
import functools

import pytest
import torch
import torchvision
from torch import nn

from autograder.solutions import load_solutions, solution_sources
from helpers.checks.core import CheckFailed
from helpers.checks.vgg import (VGG16_CONFIG, check_matches_torchvision, check_parameter_count,
                                check_vgg, check_vgg16, check_vgg_block, compare_vgg, materialize,
                                substitute_globals, torchvision_vgg)
from helpers.inspection import count_parameters

# The checks are tested as nbgrader runs them: an untouched stub raises.
pytestmark = pytest.mark.usefixtures("grading_mode")


class Unattempted(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        raise NotImplementedError("replace this line with your code")


@pytest.fixture(scope="module")
def solution():
    # VGGBlock is a stub here: the VGG solution must not need it (exercises are graded apart).
    ns = load_solutions("03_vgg", ["vgg", "vgg16"], {"nn": nn, "torch": torch, "VGGBlock": Unattempted})
    block = load_solutions("03_vgg", ["vgg_block"], {"nn": nn, "torch": torch})["VGGBlock"]
    return {**ns, "VGGBlock": block}             # a new dict: VGG's own globals keep the stub


@pytest.fixture(scope="module")
def tv16():
    """One torchvision VGG-16 with random weights, copied by the fixtures that break it."""
    return torchvision.models.vgg16(weights=None).eval()


def message_of(check, answer):
    with pytest.raises(CheckFailed) as info:
        check(answer)
    return str(info.value)


def assert_words(message, words):
    for word in words:
        assert word in message, message
    assert "hint:" in message


# ---- parameter counts ----

def test_vgg16_has_138_357_544_parameters():
    with torch.device("meta"):
        assert count_parameters(torchvision.models.vgg16(weights=None)) == 138_357_544
        assert count_parameters(torchvision_vgg(VGG16_CONFIG)) == 138_357_544


def test_check_parameter_count(capsys):
    layer = nn.Linear(3, 2)
    check_parameter_count(layer, 8, "layer", verbose=True)
    assert capsys.readouterr().out.startswith("✓ layer: passed (8 parameters)")
    with pytest.raises(CheckFailed, match=r"expected: 9\n    got:      8 \(-1\)"):
        check_parameter_count(layer, 9, "layer")
    with pytest.raises(CheckFailed, match="not an nn.Module"):
        check_parameter_count(lambda x: x, 9, "layer")


def test_materialized_reference_is_torchvision_with_fresh_weights():
    model = materialize(torchvision_vgg, [8, "M", 512, "M"], num_classes=3, batch_norm=True, seed=1)
    assert type(model).__module__ == "torchvision.models.vgg"
    bn = model.features[1]
    assert bn.running_var.min() > 0 and bn.num_batches_tracked.item() == 0
    assert model.features[0].bias.abs().sum() > 0, "biases are non-zero so a missing bias shows"
    again = materialize(torchvision_vgg, [8, "M", 512, "M"], num_classes=3, batch_norm=True, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


# ---- the reference solution passes ----

def test_solution_passes_every_check_and_vgg16_is_graded_apart_from_vgg(solution, capsys):
    check_vgg_block(solution["VGGBlock"])
    check_vgg(solution["VGG"])
    # The VGG16 solution over an unattempted VGG still passes its own check: the check
    # builds it with torchvision's VGG standing in, and puts the student's VGG back.
    namespace = {"VGG": Unattempted, "nn": nn}
    exec(solution_sources("03_vgg")["vgg16"], namespace)
    check_vgg16(namespace["VGG16"])
    assert namespace["VGG"] is Unattempted
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 3 and all(line.startswith("✓") for line in lines), out
    assert "138,357,544 parameters" in lines[2]


def test_solution_vgg16_with_its_own_vgg_matches_torchvision(solution, tv16, capsys):
    """No stand-in here: the student's VGG16 built on the student's VGG gives torchvision's logits."""
    model = solution["VGG16"]()
    assert count_parameters(model) == 138_357_544
    max_diff = check_matches_torchvision(model, copy.deepcopy(tv16), (1, 3, 224, 224), "VGG16", verbose=True)
    assert max_diff < 1e-4
    assert capsys.readouterr().out.startswith("✓ VGG16: passed (same outputs as torchvision")


def test_substitute_globals_restores_the_namespace():
    namespace = {"VGG": "mine"}
    exec("def VGG16():\n    return VGG\n", namespace)
    with substitute_globals(namespace["VGG16"], VGG="reference", Other="x") as replaced:
        assert namespace["VGG16"]() == "reference" and replaced == ["VGG"]
    assert namespace["VGG"] == "mine" and "Other" not in namespace


# ---- wrong VGG16s ----

def broken(tv16, edit):
    def VGG16(num_classes=1000):
        model = copy.deepcopy(tv16)
        edit(model)
        return model
    return VGG16


def drop_relu(model):
    model.features = nn.Sequential(*[layer for i, layer in enumerate(model.features) if i != 8])


def unpad(model):
    model.features[12] = nn.Conv2d(256, 256, kernel_size=3, padding=0)


def fewer_convs(model):
    model.features = nn.Sequential(*list(model.features)[:-3], model.features[-1])   # drops a 512 conv + ReLU


@pytest.mark.parametrize("edit, words", [
    (drop_relu, ["features.9 (torchvision calls it features.10)", "its input already differs",
                 "between features.7 and features.10 torchvision runs features.8 (ReLU), features.9 (MaxPool2d)",
                 "between features.7 and features.9 yours runs features.8 (MaxPool2d)"]),
    (unpad, ["the first layer that differs is features.12", "another shape", "(1, 256, 56, 56)",
             "(1, 256, 54, 54)", "padding=(1, 1)"]),
    (fewer_convs, ["number of parameters is wrong", "138,357,544", "13 convolutions"]),
])
def test_vgg16_check_names_the_first_differing_layer(tv16, edit, words):
    assert_words(message_of(check_vgg16, broken(tv16, edit)), words)


def test_vgg16_check_catches_ignored_num_classes(tv16):
    def VGG16(num_classes=1000):
        return copy.deepcopy(tv16)                     # always 1000 classes
    assert_words(message_of(check_vgg16, VGG16), ["VGG16(num_classes=10)", "num_classes"])


@pytest.mark.parametrize("answer, words", [
    (Unattempted, ["not attempted yet"]),
    (lambda num_classes=1000: "a model", ["not an nn.Module"]),
])
def test_vgg16_check_fails_non_models(answer, words):
    assert_words(message_of(check_vgg16, answer), words)


# ---- wrong VGGs ----

def vgg_variant(solution, edit):
    class Variant(solution["VGG"]):
        def __init__(self, config, num_classes=1000, batch_norm=False):
            super().__init__(config, num_classes, batch_norm)
            edit(self, num_classes)
    return Variant


def vgg_drop_first_relu(model, n):
    first = next(i for i, layer in enumerate(model.features) if isinstance(layer, nn.ReLU))
    model.features = nn.Sequential(*[layer for i, layer in enumerate(model.features) if i != first])


def vgg_relu_before_bn(model, n):
    layers = list(model.features)
    for i in range(len(layers) - 1):
        if isinstance(layers[i], nn.BatchNorm2d) and isinstance(layers[i + 1], nn.ReLU):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    model.features = nn.Sequential(*layers)


def vgg_no_padding(model, n):
    model.features[0].padding = (0, 0)


def vgg_no_dropout(model, n):
    model.classifier = nn.Sequential(*[m for m in model.classifier if not isinstance(m, nn.Dropout)])


def vgg_no_avgpool(model, n):
    del model.avgpool
    model.avgpool = nn.Identity()


def vgg_always_1000_classes(model, n):
    model.classifier[-1] = nn.Linear(4096, 1000)


@pytest.mark.parametrize("edit, config, batch_norm, words", [
    (vgg_drop_first_relu, [64, "M", 512, "M"], False,
     ["the first layer that differs is features.2 (torchvision calls it features.3)", "features.1 (ReLU)"]),
    (vgg_no_padding, [64, "M", 512, "M"], False, ["features.0", "another shape", "padding"]),
    (vgg_relu_before_bn, [16, "M", 512, "M"], True, ["features.1", "its input already differs",
                                                     "yours runs features.1 (ReLU)"]),
    (vgg_no_dropout, [64, "M", 512, "M"], False, ["two Dropout(p=0.5)", "got:      none"]),
    (vgg_no_avgpool, [64, "M", 512, "M"], False, ["AdaptiveAvgPool2d((7, 7))", "Identity()"]),
    (vgg_always_1000_classes, [64, "M", 512, "M"], False,
     ["cannot be copied", "classifier.6.weight (10, 4096)", "classifier.6.weight (1000, 4096)",
      "num_classes", "Linear(4096, num_classes)"]),
])
def test_vgg_check_fails_wrong_models(solution, edit, config, batch_norm, words):
    with pytest.raises(CheckFailed) as info:
        compare_vgg(vgg_variant(solution, edit), config, 10, batch_norm, (1, 3, 32, 32))
    assert_words(str(info.value), words)


def test_vgg_check_reports_unattempted_and_missing_attributes():
    assert_words(message_of(check_vgg, Unattempted), ["not attempted yet"])

    class Flat(nn.Module):
        def __init__(self, config, num_classes=1000, batch_norm=False):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))

    assert_words(message_of(check_vgg, Flat), ["no `features` module", "self.features"])


# ---- wrong VGG blocks ----

class Block(nn.Module):
    """A VGG block with optional bugs."""

    def __init__(self, in_channels, out_channels, num_convs, *, kernel=3, pool=True,
                 rewire=False, relu=True):
        super().__init__()
        layers = []
        for i in range(num_convs):
            c_in = in_channels if i == 0 or rewire else out_channels
            layers.append(nn.Conv2d(c_in, out_channels, kernel, padding=kernel // 2))
            if relu or i > 0:
                layers.append(nn.ReLU(inplace=True))
        if pool:
            layers.append(nn.MaxPool2d(2, 2))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def test_right_block_passes(capsys):
    check_vgg_block(Block)
    assert capsys.readouterr().out.startswith("✓ VGGBlock: passed")


@pytest.mark.parametrize("answer, words", [
    (functools.partial(Block, pool=False),
     ["every layer with parameters agrees, but the final output differs", "(2, 64, 8, 8)", "(2, 64, 16, 16)",
      "after 2 torchvision runs 3 (ReLU), 4 (MaxPool2d); after layers.2 yours runs layers.3 (ReLU)"]),
    (functools.partial(Block, rewire=True),
     ["cannot be copied", "2.weight (64, 64, 3, 3)", "layers.2.weight (64, 3, 3, 3)", "input channels"]),
    (functools.partial(Block, kernel=5), ["kernel sizes differ (3x3 against 5x5)", "MaxPool2d(2, 2)"]),
    (functools.partial(Block, relu=False),
     ["layers.1 (torchvision calls it 2)", "its input already differs", "torchvision runs 1 (ReLU)"]),
    (Unattempted, ["not attempted yet"]),
])
def test_block_check_fails_wrong_blocks(answer, words):
    assert_words(message_of(check_vgg_block, answer), words)
