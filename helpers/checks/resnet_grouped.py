"""Checks for notebook 07, section 2: ``GroupedResNet`` and the factories ``resnext50_32x4d``, ``wide_resnet50_2``.

``GroupedResNet(layers, num_classes=1000, groups=1, width_per_group=64)`` is built with
torchvision's ``Bottleneck`` standing in for the student's ``GroupedBottleneck``
(``resnet_variants._trusted_grouped``), so that a wrong block costs only the block's
points; it must have torchvision's parameter count and, with the same weights, its
logits, for ResNeXt-50 32x4d and Wide ResNet-50-2, both on the ``meta`` device with
one layer's weights in memory at a time. The factories are called with torchvision's
ResNet standing in for ``GroupedResNet`` and must pass it torchvision's configuration.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from helpers.inspection import count_parameters

from .core import CheckFailed, call_student, passed, reject_course_code, student_check
from .models import frees_models, require_same_parameter_count, matches_torchvision, on_meta, one_thread, require_module, substitute_globals
from .resnet import _check_resnet_layout
from .resnet_blocks import _tv
from .resnet_variants import GROUPED_RESNET, _build, _refuse_torchvision, _trusted_grouped

#: torchvision's parameter counts (resnext50_32x4d, wide_resnet50_2), from its builders.
TORCHVISION_COUNTS = {"resnext50_32x4d": 25_028_904, "wide_resnet50_2": 68_883_240}
#: (groups, width_per_group) of each factory, as torchvision builds them.
FACTORY_CONFIGS = {"resnext50_32x4d": (32, 4), "wide_resnet50_2": (1, 128)}


# ------------------------------------------------------------------ GroupedResNet and the factories
def _torchvision_grouped(layers: Sequence[int], num_classes: int, groups: int, wpg: int) -> nn.Module:
    tv = _tv()
    return tv.ResNet(tv.Bottleneck, list(layers), num_classes=num_classes, groups=groups, width_per_group=wpg)


def _grouped_resnet_what(layers: Sequence[int], num_classes: int, groups: int, wpg: int) -> str:
    return f"{GROUPED_RESNET}({list(layers)}, num_classes={num_classes}, groups={groups}, width_per_group={wpg})"


RESNET_HINT = ("torchvision's layout: conv1 (7x7, stride 2, 64 channels), bn1, ReLU, maxpool (3, stride 2, "
               "padding 1), layer1..layer4 of GroupedBottleneck(in_channels, width, stride, groups=groups, "
               "width_per_group=width_per_group) with width 64, 128, 256, 512 and stride 2 on the first block "
               "of layer2..layer4, avgpool = AdaptiveAvgPool2d((1, 1)), fc = Linear(2048, num_classes).")


@one_thread
@frees_models
def compare_grouped_resnet(cls: type, layers: Sequence[int], num_classes: int, groups: int, wpg: int,
                           input_shape: Sequence[int] | None, seed: int = 0) -> None:
    """``cls(layers, ...)`` with torchvision's Bottleneck as GroupedBottleneck, on the meta device."""
    what = _grouped_resnet_what(layers, num_classes, groups, wpg)
    reject_course_code(cls, GROUPED_RESNET)
    with substitute_globals(cls, GroupedBottleneck=_trusted_grouped()):
        model = _build(cls, (list(layers),), what, GROUPED_RESNET, meta=True, num_classes=num_classes,
                       groups=groups, width_per_group=wpg)
    _check_resnet_layout(model, what)
    reference = on_meta(_torchvision_grouped, layers, num_classes, groups, wpg)
    blocks = [m for m in model.modules() if isinstance(m, _trusted_grouped())]
    if not blocks:
        raise CheckFailed(what, "the network does not use GroupedBottleneck.",
                          hint="Build every stage from GroupedBottleneck (the class of exercise 5): the "
                               "check puts torchvision's block in its place.")
    widths = {b.conv2.groups for b in blocks}
    if widths != {groups}:
        raise CheckFailed(what, "groups does not reach the blocks.", expected=f"groups={groups} in every block",
                          got=f"groups {sorted(widths)}",
                          hint="Create each block as GroupedBottleneck(in_channels, width, stride, "
                               "groups=groups, width_per_group=width_per_group).")
    require_same_parameter_count(model, reference, what, RESNET_HINT)
    if input_shape is not None:
        matches_torchvision(model, reference, input_shape, what, seed=seed)


def _stand_in_grouped_resnet(calls: list) -> Callable[..., nn.Module]:
    """torchvision's ResNet on the meta device, called as the exercise's GroupedResNet; calls recorded."""
    def GroupedResNet(layers, num_classes=1000, groups=1, width_per_group=64):   # noqa: N802
        calls.append((list(layers), num_classes, groups, width_per_group))
        return on_meta(_torchvision_grouped, layers, num_classes, groups, width_per_group)
    return GroupedResNet


@one_thread
@frees_models
def compare_factory(fn: Callable, name: str, num_classes: int = 1000) -> None:
    what = f"{name}(num_classes={num_classes})"
    reject_course_code(fn, name)
    calls: list = []
    with substitute_globals(fn, GroupedResNet=_stand_in_grouped_resnet(calls),
                            GroupedBottleneck=_trusted_grouped()):
        with torch.device("meta"):
            model = require_module(call_student(fn, what=name, num_classes=num_classes), what)
    if not calls:
        _refuse_torchvision(model, what)
    import torchvision
    reference = on_meta(getattr(torchvision.models, name), weights=None, num_classes=num_classes)
    got, expected = count_parameters(model), count_parameters(reference)
    if got == expected:
        return
    groups, wpg = FACTORY_CONFIGS[name]
    built = ""
    if calls:
        layers, classes, g, w = calls[-1]
        built = f" (it builds GroupedResNet({layers}, num_classes={classes}, groups={g}, width_per_group={w}))"
    hint = {"resnext50_32x4d": "32x4d: 32 groups of 4 channels each in the first stage's 3x3 convolution, "
                               "groups=32, width_per_group=4, and ResNet-50's [3, 4, 6, 3] blocks.",
            "wide_resnet50_2": "Wide ResNet-50-2 doubles the width of every bottleneck's inner convolutions: "
                               "groups=1, width_per_group=2 x 64 = 128 (not groups=2), and ResNet-50's "
                               "[3, 4, 6, 3] blocks."}[name]
    raise CheckFailed(what, f"the number of parameters is wrong{built}.", expected=f"{expected:,} "
                      f"(GroupedResNet([3, 4, 6, 3], num_classes={num_classes}, groups={groups}, "
                      f"width_per_group={wpg}) has that many)" if not calls else f"{expected:,}",
                      got=f"{got:,} ({got - expected:+,})", hint=hint)


@student_check
def check_grouped_resnet(cls: type, resnext50_32x4d: Callable, wide_resnet50_2: Callable) -> None:
    """GroupedResNet (trusted blocks) and the two factories against torchvision: counts and logits."""
    compare_grouped_resnet(cls, (1, 1, 1, 1), 7, 4, 16, (2, 3, 48, 40), seed=0)
    for name, (groups, wpg) in FACTORY_CONFIGS.items():
        compare_grouped_resnet(cls, (3, 4, 6, 3), 1000, groups, wpg, (1, 3, 64, 64), seed=1)
    for fn, name in ((resnext50_32x4d, "resnext50_32x4d"), (wide_resnet50_2, "wide_resnet50_2")):
        compare_factory(fn, name)
        compare_factory(fn, name, num_classes=10)
    counts = " and ".join(f"{c:,}" for c in TORCHVISION_COUNTS.values())
    passed("GroupedResNet, resnext50_32x4d, wide_resnet50_2",
           f"{counts} parameters and the same logits as torchvision's resnext50_32x4d and wide_resnet50_2 "
           "(built with torchvision's Bottleneck in place of yours)")


__all__ = ["check_grouped_resnet", "compare_grouped_resnet", "compare_factory"]
