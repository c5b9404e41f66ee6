"""The VGG checks pass the reference solution and fail typical wrong answers, naming the layer."""
import copy
import functools
import gc
import weakref

import pytest
import torch
import torchvision
from torch import nn

from autograder.solutions import load_solutions, solution_sources
from helpers.checks.core import CheckFailed
from helpers.checks.models import (check_matches_torchvision, check_parameter_count, on_meta,
                                   random_weights_, substitute_globals)
from helpers.checks.vgg import _torchvision_vgg, check_vgg, check_vgg16, check_vgg_block, compare_vgg, compare_vgg16
from helpers.inspection import count_parameters
from check_messages import assert_words, message_of

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
    """torchvision's VGG-16 on the meta device (no memory), copied by the fixtures that break it."""
    return on_meta(torchvision.models.vgg16, weights=None)


class PlainVGG(nn.Module):
    """torchvision's VGG-16 layers in a class of one's own, with the same names, as a student writes it."""

    def __init__(self, tv):
        super().__init__()
        self.features, self.avgpool, self.classifier = tv.features, tv.avgpool, tv.classifier

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ---- parameter counts ----

def test_vgg16_has_138_357_544_parameters():
    with torch.device("meta"):
        assert count_parameters(torchvision.models.vgg16(weights=None)) == 138_357_544
        assert count_parameters(_torchvision_vgg(torchvision.models.vgg.cfgs["D"])) == 138_357_544


def test_check_parameter_count(capsys):
    layer = nn.Linear(3, 2)
    check_parameter_count(layer, 8, "layer", verbose=True)
    assert capsys.readouterr().out.startswith("✓ layer: passed (8 parameters)")
    with pytest.raises(CheckFailed, match=r"expected: 9\n    got:      8 \(-1\)"):
        check_parameter_count(layer, 9, "layer")
    with pytest.raises(CheckFailed, match="not an nn.Module"):
        check_parameter_count(lambda x: x, 9, "layer")


def test_random_weights_are_seeded_and_show_a_misplaced_bias_or_batchnorm():
    def seeded(seed):
        model = on_meta(_torchvision_vgg, [8, "M", 512, "M"], num_classes=3, batch_norm=True)
        return random_weights_(model.to_empty(device="cpu"), seed)

    model = seeded(1)
    assert type(model).__module__ == "torchvision.models.vgg"
    bn = model.features[1]
    assert bn.running_var.min() > 0 and bn.num_batches_tracked.item() == 0
    assert model.features[0].bias.abs().sum() > 0, "biases are non-zero so a missing bias shows"
    again = seeded(1)
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
    """No stand-in here: the student's VGG16 built on the student's VGG gives torchvision's logits.

    The reference is on the meta device: it takes the student's tensors, so one VGG-16 is in memory.
    """
    model = solution["VGG16"]()
    assert count_parameters(model) == 138_357_544
    reference = copy.deepcopy(tv16)
    max_diff = check_matches_torchvision(model, reference, (1, 3, 64, 64), "VGG16", verbose=True)
    assert max_diff < 1e-4
    assert capsys.readouterr().out.startswith("✓ VGG16: passed (same outputs as torchvision")
    assert reference.features[0].weight is model.features[0].weight, "shared, not copied"
    assert not any(p.is_meta for p in reference.parameters())


def test_a_reference_with_weights_lends_them_to_the_students_model(solution, capsys):
    reference = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
    check_matches_torchvision(model, reference, (1, 3, 8, 8), "block", verbose=True)
    assert torch.equal(model[1].running_var, reference[1].running_var)
    assert model[0].weight is not reference[0].weight, "copied, not shared"
    assert capsys.readouterr().out.startswith("✓ block: passed")


def test_substitute_globals_restores_the_namespace():
    namespace = {"VGG": "mine"}
    exec("def VGG16():\n    return VGG\n", namespace)
    with substitute_globals(namespace["VGG16"], VGG="reference", Other="x") as replaced:
        assert namespace["VGG16"]() == "reference" and replaced == ["VGG"]
    assert namespace["VGG"] == "mine" and "Other" not in namespace


# ---- wrong VGG16s ----

def broken(tv16, edit):
    def VGG16(num_classes=1000):
        model = PlainVGG(copy.deepcopy(tv16))        # on the meta device, as the check builds it
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
    (unpad, ["the first layer that differs is features.12", "another shape", "(1, 256, 16, 16)",
             "(1, 256, 14, 14)", "padding=(1, 1)"]),
    (fewer_convs, ["number of parameters is wrong", "138,357,544", "13 convolutions"]),
])
def test_vgg16_check_names_the_first_differing_layer(tv16, edit, words):
    assert_words(message_of(check_vgg16, broken(tv16, edit)), words)


def test_vgg16_check_catches_ignored_num_classes(tv16):
    def VGG16(num_classes=1000):
        return PlainVGG(copy.deepcopy(tv16))                           # always 1000 classes
    assert_words(message_of(check_vgg16, VGG16), ["VGG16(num_classes=10)", "num_classes"])


@pytest.mark.parametrize("answer, words", [
    (Unattempted, ["not attempted yet"]),
    (lambda num_classes=1000: "a model", ["not an nn.Module"]),
])
def test_vgg16_check_fails_non_models(answer, words):
    assert_words(message_of(check_vgg16, answer), words)


# ---- answers that are torchvision's own model ----

class SubclassedVGG(torchvision.models.VGG):
    def __init__(self, config, num_classes=1000, batch_norm=False):
        layers, width = [], 3
        for c in config:
            layers += [nn.MaxPool2d(2, 2)] if c == "M" else [nn.Conv2d(width, c, 3, padding=1), nn.ReLU()]
            width = width if c == "M" else c
        super().__init__(nn.Sequential(*layers), num_classes=num_classes)


class MadeLayersVGG(nn.Module):
    def __init__(self, config, num_classes=1000, batch_norm=False):
        super().__init__()
        self.features = torchvision.models.vgg.make_layers(config, batch_norm=batch_norm)


def wrapped_vgg16(num_classes=1000):
    with torch.device("meta"):
        return nn.Sequential(torchvision.models.vgg16(num_classes=num_classes))


def vgg16_from_cfgs(num_classes=1000):
    return Unattempted(torchvision.models.vgg.cfgs["D"], num_classes=num_classes)   # stands for VGG


def torchvision_vgg16(num_classes=1000):
    with torch.device("meta"):
        return torchvision.models.vgg16(num_classes=num_classes)


@pytest.mark.parametrize("check, answer, words", [
    (check_vgg16, torchvision_vgg16, ["VGG16: your model is torchvision's VGG", "Table 1",
                                      "compare torchvision with itself",
                                      "got:      torchvision.models.vgg.VGG"]),
    (check_vgg16, wrapped_vgg16, ["your model's `0` is torchvision's VGG"]),
    (check_vgg16, vgg16_from_cfgs, ["your code uses torchvision's cfgs", "Table 1"]),
    (check_vgg, SubclassedVGG, ["SubclassedVGG, a subclass of torchvision's VGG", "nn.Conv2d"]),
    (check_vgg, MadeLayersVGG, ["VGG: your code uses torchvision's make_layers"]),
    (check_vgg_block, lambda c_in, c_out, n: torchvision.models.vgg.make_layers([c_out] * n + ["M"]),
     ["VGGBlock: your code uses torchvision's make_layers"]),
])
def test_checks_refuse_torchvisions_own_model(check, answer, words):
    assert_words(message_of(check, answer), words)


def test_an_imported_make_layers_is_refused_and_an_own_one_is_not():
    namespace = {"nn": nn}
    exec("from torchvision.models.vgg import make_layers\n"
         "class VGG(nn.Module):\n"
         "    def __init__(self, config, num_classes=1000, batch_norm=False):\n"
         "        super().__init__()\n"
         "        self.features = make_layers(config)\n", namespace)
    assert_words(message_of(check_vgg, namespace["VGG"]), ["your code uses torchvision's make_layers"])
    exec("def make_layers(config):\n"
         "    raise NotImplementedError\n", namespace)           # the student's own helper of that name
    assert_words(message_of(check_vgg, namespace["VGG"]), ["not attempted yet"])


# ---- memory and unwritten methods ----

def test_a_failing_check_frees_the_models_it_built(tv16):
    built = []

    def VGG16(num_classes=1000):
        model = broken(tv16, drop_relu)(num_classes)
        built.append(weakref.ref(model))
        return model

    with pytest.raises(CheckFailed) as info:
        compare_vgg16(VGG16, num_classes=1000, input_shape=(1, 3, 32, 32))
    gc.collect()
    assert "its input already differs" in str(info.value)
    assert built and built[0]() is None, "the failure still holds the model"


class FunctionalBlock(nn.Module):
    """Runs its convolutions' weights through F.conv2d instead of calling the layers."""

    def __init__(self, in_channels, out_channels, num_convs):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3,
                                             padding=1) for i in range(num_convs))

    def forward(self, x):
        for conv in self.convs:
            x = torch.relu(nn.functional.conv2d(x, conv.weight, conv.bias, padding=1))
        return nn.functional.max_pool2d(x, 2)


def test_a_forward_that_reads_weights_directly_is_checked_with_all_of_them(capsys):
    """weights_on_demand serves a layer's weights only while the layer is called; the check then
    gives the model all its weights at once and compares again."""
    check_vgg_block(FunctionalBlock)
    assert capsys.readouterr().out.startswith("✓ VGGBlock: passed")


class ForwardNotWritten(nn.Module):
    def __init__(self, in_channels, out_channels, num_convs):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(),
                                    *[m for _ in range(num_convs - 1)
                                      for m in (nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU())],
                                    nn.MaxPool2d(2, 2))

    def forward(self, x):
        raise NotImplementedError("replace this line with your code")


def test_an_unwritten_forward_is_not_attempted_and_never_passes(capsys, monkeypatch):
    assert_words(message_of(check_vgg_block, ForwardNotWritten), ["not attempted yet"])
    monkeypatch.delenv("NBGRADER_EXECUTION")                     # a student's own kernel
    check_vgg_block(ForwardNotWritten)
    out = capsys.readouterr().out
    assert out.startswith("✗ VGGBlock") and "not attempted yet" in out and "✓" not in out, out


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
