"""Checks for notebook 03 (VGG).

The oracle is torchvision: its ``make_layers`` and ``VGG`` classes build the
reference networks. Both the student's model and the reference are built on the
``meta`` device (shapes only, no memory); the reference takes the student's own
parameter tensors, matched by order and shape
(:func:`helpers.transplant.share_weights_by_order`), and each layer gets seeded
random values only while it runs (:func:`helpers.transplant.weights_on_demand`).
Checking VGG-16 then needs the memory of its largest layer (411 MB), not of two
whole networks (1.1 GB). A student's model passes when it computes the same
outputs as torchvision's in eval mode. When they differ,
:func:`helpers.transplant.first_divergence` names the first layer that differs
and what sits around it.

The generic comparison (:func:`helpers.checks.models.check_matches_torchvision`)
and parameter count live in ``models.py``.

Each exercise is graded on its own. ``VGG`` builds its layers directly (the
exercise says so), so it does not depend on ``VGGBlock``. ``VGG16`` is built
on ``VGG``; its check calls it with torchvision's VGG standing in for the
student's (:func:`substitute_globals`), so a mistake in ``VGG`` costs only
``VGG``'s points. An answer that is torchvision's model, or is built with
torchvision's ``make_layers`` or ``cfgs``, is refused: it would be compared
with itself.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from helpers.inspection import count_parameters

from .core import CheckFailed, call_student, passed, reject_course_code, student_check
from .models import (TRANSPLANT_PROBLEM, check_parameter_count, code_objects, frees_models,
                     matches_torchvision, on_meta, require_module, substitute_globals)

OWN_LAYERS_HINT = ("Write the layers yourself from nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, "
                   "nn.Linear and nn.Dropout, and VGG-16's configuration list from Table 1 of the VGG "
                   "paper; torchvision is only what the check compares your answer with.")
#: Attribute set on the torchvision VGG that stands in for the student's VGG in the VGG16 check.
_STAND_IN = "_course_stand_in"


# ------------------------------------------------------------------ references (private: the oracle)
def _torchvision_vgg(config: Sequence[int | str], num_classes: int = 1000,
                     batch_norm: bool = False) -> nn.Module:
    """torchvision's VGG for any configuration list (its ``make_layers`` and ``VGG`` classes)."""
    from torchvision.models.vgg import VGG, make_layers
    return VGG(make_layers(list(config), batch_norm=batch_norm), num_classes=num_classes)


def _torchvision_vgg_block(in_channels: int, out_channels: int, num_convs: int) -> nn.Sequential:
    """A VGG block built by torchvision's ``make_layers``.

    ``make_layers`` always starts from 3 input channels, so it builds one extra
    ``in_channels``-wide convolution in front, which is then cut off.
    """
    from torchvision.models.vgg import make_layers
    layers = make_layers([in_channels] + [out_channels] * num_convs + ["M"])
    return nn.Sequential(*list(layers)[2:])  # drop Conv2d(3, in_channels) and its ReLU; renumber from 0


def _torchvision_vgg16(num_classes: int = 1000) -> nn.Module:
    from torchvision.models import vgg16
    return vgg16(weights=None, num_classes=num_classes)  # random weights: nothing is downloaded


def _stand_in_vgg(config: Sequence[int | str], num_classes: int = 1000,
                  batch_norm: bool = False) -> nn.Module:
    """torchvision's VGG in place of the student's, on the meta device like every model the checks build."""
    model = on_meta(_torchvision_vgg, config, num_classes=num_classes, batch_norm=batch_norm)
    setattr(model, _STAND_IN, True)
    return model


def _build(cls: Callable, *args: Any, what: str, **kwargs: Any) -> Any:
    """The student's ``cls(*args, **kwargs)`` built on the meta device: shapes only, no memory.

    Code that cannot run there (or the untouched stub) is called as usual instead, so that
    its failures read as always.
    """
    try:
        with torch.device("meta"):
            return cls(*args, **kwargs)
    except Exception:  # noqa: BLE001 - called again below, where failures become feedback
        return call_student(cls, *args, what=what, **kwargs)


# ------------------------------------------------------------------ no answers from torchvision
def _refuse_borrowed_code(fn: Any, what: str) -> None:
    """Fail when ``fn`` uses torchvision's ``make_layers`` or ``cfgs``, the check's own oracle."""
    import torchvision
    import torchvision.models.vgg as tv_vgg
    oracles = {"make_layers": tv_vgg.make_layers, "cfgs": tv_vgg.cfgs}
    packages = (torchvision, torchvision.models, tv_vgg)
    borrowed = set()
    for code, namespace in code_objects(fn):
        via_package = any(any(namespace.get(n) is p for p in packages) for n in code.co_names)
        for name in code.co_names:
            value = namespace.get(name)
            borrowed.update(o for o, obj in oracles.items() if value is obj)   # from ... import make_layers
            if via_package and name in oracles and name not in namespace:     # torchvision....make_layers
                borrowed.add(name)
    if borrowed:
        raise CheckFailed(what, f"your code uses torchvision's {' and '.join(sorted(borrowed))}, which "
                                "the check itself uses to build the answer it compares yours with.",
                          hint=OWN_LAYERS_HINT)


def _refuse_torchvision_model(model: nn.Module, what: str) -> None:
    """Fail when ``model`` is, subclasses or contains torchvision's VGG (other than the check's stand-in)."""
    from torchvision.models.vgg import VGG as TorchvisionVGG
    for name, module in model.named_modules():
        if isinstance(module, TorchvisionVGG) and not getattr(module, _STAND_IN, False):
            kind = ("torchvision's VGG" if type(module) is TorchvisionVGG
                    else f"{type(module).__name__}, a subclass of torchvision's VGG")
            where = f"your model's `{name}` is" if name else "your model is"
            raise CheckFailed(what, f"{where} {kind}, so the check would compare torchvision with "
                                    "itself.",
                              expected="a model built from PyTorch layers (nn.Conv2d, nn.ReLU, ...)",
                              got=f"{type(module).__module__}.{type(module).__qualname__}",
                              hint=OWN_LAYERS_HINT)


# ------------------------------------------------------------------ VGGBlock
def _add_hint(failure: CheckFailed, summary: str) -> None:
    """Append the architecture summary to a failure whose layers did not line up."""
    if TRANSPLANT_PROBLEM in failure.problem:
        failure.add_hint(summary)


BLOCK_HINT = ("A VGG block is num_convs times [Conv2d(kernel_size=3, padding=1), ReLU] followed by "
              "MaxPool2d(2, 2); the first convolution maps in_channels to out_channels, the others "
              "out_channels to out_channels.")


@frees_models
def compare_vgg_block(cls: type, in_channels: int, out_channels: int, num_convs: int,
                      input_shape: Sequence[int], seed: int = 0) -> None:
    """Build ``cls(in_channels, out_channels, num_convs)`` and compare it with torchvision's layers."""
    what = "VGGBlock"
    reject_course_code(cls, what)
    _refuse_borrowed_code(cls, what)
    args = (in_channels, out_channels, num_convs)
    block = require_module(_build(cls, *args, what=what), what)
    _refuse_torchvision_model(block, what)
    reference = on_meta(_torchvision_vgg_block, *args)
    try:
        matches_torchvision(block, reference, input_shape, f"{what}{args}", seed=seed)
    except CheckFailed as failure:
        _add_hint(failure, BLOCK_HINT)
        raise


VGG_BLOCK_CASES = [
    # in, out, convs, input (N, C, H, W)
    (3, 64, 2, (2, 3, 16, 16)),      # VGG-16's first stage
    (64, 128, 2, (1, 64, 9, 9)),     # an odd size: pooling drops the last row and column
    (16, 32, 3, (2, 16, 12, 12)),    # a three-convolution stage
]


@student_check
def check_vgg_block(cls: type) -> None:
    for i, (c_in, c_out, n, shape) in enumerate(VGG_BLOCK_CASES):
        compare_vgg_block(cls, c_in, c_out, n, shape, seed=i)
    passed("VGGBlock", f"{len(VGG_BLOCK_CASES)} blocks compute the same as torchvision's layers")


# ------------------------------------------------------------------ VGG
VGG_HINT = ("Build features from the config like torchvision's make_layers (an int c: Conv2d(previous "
            "channels, c, 3, padding=1)[, BatchNorm2d(c)], ReLU; 'M': MaxPool2d(2, 2)), then "
            "avgpool = AdaptiveAvgPool2d((7, 7)) and the classifier Linear(c*7*7, 4096), ReLU, "
            "Dropout(0.5), Linear(4096, 4096), ReLU, Dropout(0.5), Linear(4096, num_classes).")


def _check_vgg_layout(model: nn.Module, what: str) -> None:
    """The attributes the exercise asks for: features, avgpool (7x7) and a classifier with dropout."""
    for name in ("features", "avgpool", "classifier"):
        if not isinstance(getattr(model, name, None), nn.Module):
            raise CheckFailed(what, f"the model has no `{name}` module.",
                              expected="attributes features, avgpool and classifier",
                              got=f"attributes {[n for n, _ in model.named_children()]}",
                              hint=f"Assign self.{name} = ... in __init__, as torchvision does.")
    pool = model.avgpool
    size = getattr(pool, "output_size", None)
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    if not isinstance(pool, nn.AdaptiveAvgPool2d) or size != (7, 7):
        raise CheckFailed(what, "avgpool should be nn.AdaptiveAvgPool2d((7, 7)).", got=repr(pool),
                          hint="It turns any feature map into 7x7, so the classifier works for any "
                               "input size, like torchvision's VGG.")
    dropouts = [m for m in model.classifier.modules() if isinstance(m, nn.Dropout)]
    if len(dropouts) != 2 or any(m.p != 0.5 for m in dropouts):
        raise CheckFailed(what, "the classifier should have two Dropout(p=0.5) layers.",
                          expected="2 x Dropout(p=0.5)", got=", ".join(map(repr, dropouts)) or "none",
                          hint="Put nn.Dropout(0.5) after each of the first two Linear layers' ReLU. "
                               "It does nothing in eval mode, so the output comparison cannot see it.")


@frees_models
def compare_vgg(cls: type, config: Sequence[int | str], num_classes: int, batch_norm: bool,
                input_shape: Sequence[int], seed: int = 0) -> None:
    """Build ``cls(config, num_classes=..., batch_norm=...)`` and compare it with torchvision's VGG."""
    what = f"VGG({list(config)}, num_classes={num_classes}, batch_norm={batch_norm})"
    reject_course_code(cls, "VGG")
    _refuse_borrowed_code(cls, "VGG")
    model = require_module(_build(cls, list(config), num_classes=num_classes,
                                  batch_norm=batch_norm, what="VGG"), what)
    _refuse_torchvision_model(model, what)
    _check_vgg_layout(model, what)
    reference = on_meta(_torchvision_vgg, config, num_classes=num_classes, batch_norm=batch_norm)
    try:
        matches_torchvision(model, reference, input_shape, what, seed=seed)
    except CheckFailed as failure:
        _add_hint(failure, VGG_HINT)
        raise


VGG_CASES = [
    # config, num_classes, batch_norm, input (N, C, H, W). The last stage must have 512
    # channels: torchvision's classifier is fixed at 512 * 7 * 7 inputs.
    ([64, "M", 128, 128, "M", 512, "M"], 10, False, (2, 3, 32, 32)),
    ([32, 32, "M", 512, "M"], 5, True, (2, 3, 24, 24)),
]


@student_check
def check_vgg(cls: type) -> None:
    for i, case in enumerate(VGG_CASES):
        compare_vgg(cls, *case, seed=i)
    passed("VGG", f"{len(VGG_CASES)} configurations (with and without BatchNorm) agree with "
                  "torchvision's VGG")


# ------------------------------------------------------------------ VGG16
VGG16_HINT = ("VGG-16 has 13 convolutions in five stages of 2, 2, 3, 3 and 3, with 64, 128, 256, "
              "512 and 512 channels, each stage ending with 'M', then three Linear layers.")


def build_vgg16(fn: Callable, what: str = "VGG16", **kwargs: Any) -> nn.Module:
    """Call the student's ``VGG16(**kwargs)`` on the meta device, torchvision's VGG in place of theirs."""
    reject_course_code(fn, "VGG16")
    _refuse_borrowed_code(fn, "VGG16")
    with substitute_globals(fn, VGG=_stand_in_vgg):
        model = require_module(_build(fn, what=what, **kwargs), what)
    _refuse_torchvision_model(model, what)
    return model


@frees_models
def compare_vgg16(fn: Callable, num_classes: int, input_shape: Sequence[int], seed: int = 0) -> None:
    what = f"VGG16(num_classes={num_classes})"
    model = build_vgg16(fn, what, num_classes=num_classes)
    reference = on_meta(_torchvision_vgg16, num_classes)
    check_parameter_count(model, count_parameters(reference), what, hint=VGG16_HINT)
    matches_torchvision(model, reference, input_shape, what, seed=seed)


@student_check
@frees_models
def check_vgg16(fn: Callable) -> None:
    """VGG16() has torchvision's 138,357,544 parameters and its logits on a 64x64 image.

    AdaptiveAvgPool2d((7, 7)) lets VGG take any image of at least 32x32 pixels; a small one
    takes a tenth of the time of 224x224.
    """
    what = "VGG16"
    model = build_vgg16(fn)
    reference = on_meta(_torchvision_vgg16)
    expected = count_parameters(reference)
    check_parameter_count(model, expected, what, hint=VGG16_HINT)
    matches_torchvision(model, reference, (1, 3, 64, 64), what)
    small = build_vgg16(fn, "VGG16(num_classes=10)", num_classes=10)
    check_parameter_count(small, count_parameters(on_meta(_torchvision_vgg16, num_classes=10)),
                          "VGG16(num_classes=10)", hint="Pass num_classes on to VGG.")
    passed(what, f"{expected:,} parameters and torchvision's logits on a 64x64 image; built "
                 "with torchvision's VGG class in place of yours, so only your configuration "
                 "is graded here")
