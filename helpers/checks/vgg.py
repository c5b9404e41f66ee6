"""Checks for notebook 03 (VGG), and generic model checks later notebooks reuse.

The oracle is torchvision: its ``make_layers`` and ``VGG`` classes build the
reference networks, and its ``vgg16`` gives the parameter count. A student's
model passes when torchvision's weights, copied into it by order and shape
(:func:`helpers.transplant.copy_weights_by_order`), make it compute the same
outputs in eval mode. When they differ, :func:`helpers.transplant.first_divergence`
names the first layer that differs and what sits around it.

Generic checks, for any architecture:

* :func:`check_parameter_count` -- the number of parameters;
* :func:`check_matches_torchvision` -- weight transplant and output comparison.

Each exercise is graded on its own. ``VGG`` builds its layers directly (the
exercise says so), so it does not depend on ``VGGBlock``. ``VGG16`` is built
on ``VGG``; its check calls it with torchvision's VGG standing in for the
student's (:func:`substitute_globals`), so a mistake in ``VGG`` costs only
``VGG``'s points.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from helpers.inspection import count_parameters
from helpers.transplant import (TransplantError, copy_weights_by_order, first_divergence,
                                randomize_batchnorm_)

from .core import (CheckFailed, assert_shape, assert_values_close, call_student, passed,
                   require_tensor, student_check)

#: torchvision's VGG-16 configuration ("D" in the VGG paper).
VGG16_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
#: Scale-relative tolerance: max |yours - torchvision| <= ATOL + RTOL * max |torchvision|.
#: Loose enough for TF32 convolutions on a GPU, far tighter than any wiring mistake.
RTOL, ATOL = 1e-3, 1e-6
TRANSPLANT_PROBLEM = ("torchvision's weights cannot be copied into your model: its parameters do "
                      "not line up by order and shape.")


# ------------------------------------------------------------------ references
def torchvision_vgg(config: Sequence[int | str], num_classes: int = 1000,
                    batch_norm: bool = False) -> nn.Module:
    """torchvision's VGG for any configuration list (its ``make_layers`` and ``VGG`` classes)."""
    from torchvision.models.vgg import VGG, make_layers
    return VGG(make_layers(list(config), batch_norm=batch_norm), num_classes=num_classes)


def materialize(factory: Callable[..., nn.Module], *args: Any, seed: int = 0,
                **kwargs: Any) -> nn.Module:
    """``factory(*args, **kwargs)`` built on the meta device, then given seeded random weights.

    torchvision's VGG constructor initialises its 120-million-parameter classifier twice
    (PyTorch's default, then its own): about 2 s on a 2-core CPU. Building the shapes on
    the meta device and drawing each weight once takes a third of that. Weights are
    well scaled (He-normal for convolutions, 1/sqrt(fan_in) for Linear layers), biases are
    small and non-zero, and BatchNorm statistics random, so that a misplaced bias or
    BatchNorm changes the output.
    """
    from helpers.device import get_device
    with torch.device("meta"):
        model = factory(*args, **kwargs)
    device = get_device()
    model.to_empty(device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, (nn.Conv2d, nn.Linear)):
                continue
            w = module.weight
            fan_in, fan_out = w[0].numel(), w.shape[0] * w[0, 0].numel()
            std = fan_in ** -0.5 if isinstance(module, nn.Linear) else (2.0 / fan_out) ** 0.5
            w.normal_(0.0, std, generator=gen)           # Conv2d: He-normal over fan_out, as torchvision
            if module.bias is not None:
                module.bias.normal_(0.0, 0.1, generator=gen)
        for buffer in model.buffers():
            buffer.zero_()                      # BatchNorm's counters; statistics are set next
    return randomize_batchnorm_(model, seed)


def torchvision_vgg_block(in_channels: int, out_channels: int, num_convs: int) -> nn.Sequential:
    """A VGG block built by torchvision's ``make_layers``.

    ``make_layers`` always starts from 3 input channels, so it builds one extra
    ``in_channels``-wide convolution in front, which is then cut off.
    """
    from torchvision.models.vgg import make_layers
    layers = make_layers([in_channels] + [out_channels] * num_convs + ["M"])
    return nn.Sequential(*list(layers)[2:])  # drop Conv2d(3, in_channels) and its ReLU; renumber from 0


def torchvision_vgg16(num_classes: int = 1000) -> nn.Module:
    from torchvision.models import vgg16
    return vgg16(weights=None, num_classes=num_classes)  # random weights: nothing is downloaded


@contextmanager
def substitute_globals(fn: Callable, **replacements: Any) -> Iterator[list[str]]:
    """Temporarily rebind global names that ``fn`` looks up, e.g. ``VGG``, to references.

    For a function defined in a notebook the globals are the notebook's namespace,
    so this affects only calls made inside the ``with`` block. Only names that
    already exist there are replaced; the list of replaced names is yielded.
    """
    namespace = getattr(fn, "__globals__", None)
    if namespace is None:
        namespace = getattr(getattr(fn, "__init__", None), "__globals__", None)
    if namespace is None:
        yield []
        return
    saved = {name: namespace[name] for name in replacements if name in namespace}
    namespace.update({name: replacements[name] for name in saved})
    try:
        yield list(saved)
    finally:
        namespace.update(saved)


# ------------------------------------------------------------------ generic checks
def require_module(value: Any, what: str) -> nn.Module:
    if not isinstance(value, nn.Module):
        raise CheckFailed(what, "the result is not an nn.Module.", expected="an nn.Module",
                          got=type(value).__name__,
                          hint="Subclass nn.Module (call super().__init__() first) and build the "
                               "layers in __init__.")
    return value


@student_check
def check_parameter_count(model: nn.Module, expected: int, what: str, *, hint: str | None = None,
                          verbose: bool = False) -> None:
    """Fail unless ``model`` has exactly ``expected`` parameters (works on the meta device too)."""
    got = count_parameters(require_module(model, what))
    if got != expected:
        raise CheckFailed(
            what, "the number of parameters is wrong.", expected=f"{expected:,}",
            got=f"{got:,} ({got - expected:+,})",
            hint=hint or "Print helpers.inspection.parameter_table(model, per_leaf=True) to see "
                         "where your parameters are and compare each layer with the architecture.")
    if verbose:
        passed(what, f"{got:,} parameters")


@student_check
def check_matches_torchvision(student_model: nn.Module, reference_model: nn.Module,
                              input_shape: Sequence[int], what: str, *, seed: int = 0,
                              verbose: bool = False) -> float:
    """Copy the reference's weights into the student's model and compare the outputs.

    Both models are moved to :func:`helpers.device.get_device` and run in eval mode on
    a random batch of ``input_shape``. The reference's BatchNorm layers get random
    statistics first, so that a misplaced BatchNorm shows. On a mismatch the failure
    names the first layer that differs (:func:`helpers.transplant.first_divergence`).

    Returns the largest absolute difference of the outputs.
    """
    from helpers.device import get_device
    student_model = require_module(student_model, what)
    device = get_device()
    reference_model = randomize_batchnorm_(reference_model.to(device), seed)
    student_model.to(device)
    try:
        copy_weights_by_order(reference_model, student_model, source_label="torchvision",
                              target_label="yours")
    except TransplantError as err:
        raise CheckFailed(what, TRANSPLANT_PROBLEM,
                          got=err.message, hint=err.hint + " Layers must be created in the order "
                          "they run.") from None
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(input_shape), generator=gen).to(device)
    with torch.no_grad():
        expected = reference_model.eval()(x)
        out = call_student(student_model.eval(), x, what=what)
    out = require_tensor(out, what)
    scale = float(expected.abs().max())
    close = out.shape == expected.shape and float((out - expected).abs().max()) <= ATOL + RTOL * scale
    if not close:
        divergence = first_divergence(reference_model, student_model, x, RTOL, ATOL,
                                      reference_label="torchvision")
        if divergence is not None:
            raise CheckFailed(
                what, f"with torchvision's weights copied in, your outputs differ from "
                      f"torchvision's on a random {tuple(input_shape)} batch; "
                      f"{divergence.summary}.",
                expected=divergence.expected,
                got=divergence.got + ("" if divergence.max_abs_diff is None
                                      else f" (max |difference| {divergence.max_abs_diff:.3g})"),
                hint=divergence.hint[0].upper() + divergence.hint[1:])
        assert_shape(tuple(out.shape), tuple(expected.shape), what)
        assert_values_close(out, expected, what, rtol=RTOL, atol=ATOL + RTOL * scale,
                            context=f"a random {tuple(input_shape)} batch")
    max_diff = float((out - expected).abs().max())
    if verbose:
        passed(what, f"same outputs as torchvision on a {tuple(input_shape)} batch on {device} "
                     f"(max |difference| {max_diff:.2g})")
    return max_diff


# ------------------------------------------------------------------ VGGBlock
def _add_hint(failure: CheckFailed, summary: str) -> None:
    """Append the architecture summary to a failure whose layers did not line up."""
    if TRANSPLANT_PROBLEM in failure.problem:
        failure.hint = f"{failure.hint} {summary}" if failure.hint else summary
        failure.args = (failure.message,)   # str(failure) shows the longer hint


BLOCK_HINT = ("A VGG block is num_convs times [Conv2d(kernel_size=3, padding=1), ReLU] followed by "
              "MaxPool2d(2, 2); the first convolution maps in_channels to out_channels, the others "
              "out_channels to out_channels.")


def compare_vgg_block(cls: type, in_channels: int, out_channels: int, num_convs: int,
                      input_shape: Sequence[int], seed: int = 0) -> None:
    """Build ``cls(in_channels, out_channels, num_convs)`` and compare it with torchvision's layers."""
    what = "VGGBlock"
    args = (in_channels, out_channels, num_convs)
    block = require_module(call_student(cls, *args, what=what), what)
    reference = materialize(torchvision_vgg_block, *args, seed=seed)
    try:
        check_matches_torchvision(block, reference, input_shape, f"{what}{args}", seed=seed)
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


def compare_vgg(cls: type, config: Sequence[int | str], num_classes: int, batch_norm: bool,
                input_shape: Sequence[int], seed: int = 0) -> None:
    """Build ``cls(config, num_classes=..., batch_norm=...)`` and compare it with torchvision's VGG."""
    what = f"VGG({list(config)}, num_classes={num_classes}, batch_norm={batch_norm})"
    model = require_module(call_student(cls, list(config), num_classes=num_classes,
                                        batch_norm=batch_norm, what="VGG"), what)
    _check_vgg_layout(model, what)
    reference = materialize(torchvision_vgg, config, num_classes=num_classes, batch_norm=batch_norm,
                            seed=seed)
    try:
        check_matches_torchvision(model, reference, input_shape, what, seed=seed)
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
    """Call the student's ``VGG16(**kwargs)`` with torchvision's VGG in place of theirs."""
    with substitute_globals(fn, VGG=torchvision_vgg):
        return require_module(call_student(fn, what=what, **kwargs), what)


def compare_vgg16(fn: Callable, num_classes: int, input_shape: Sequence[int], seed: int = 0) -> None:
    what = f"VGG16(num_classes={num_classes})"
    model = build_vgg16(fn, what, num_classes=num_classes)
    reference = materialize(torchvision_vgg16, num_classes, seed=seed)
    check_parameter_count(model, count_parameters(reference), what, hint=VGG16_HINT)
    check_matches_torchvision(model, reference, input_shape, what, seed=seed)


@student_check
def check_vgg16(fn: Callable) -> None:
    """VGG16() has torchvision's 138,357,544 parameters and its logits on a 224x224 image."""
    what = "VGG16"
    model = build_vgg16(fn)
    reference = materialize(torchvision_vgg16)
    expected = count_parameters(reference)
    check_parameter_count(model, expected, what, hint=VGG16_HINT)
    check_matches_torchvision(model, reference, (1, 3, 224, 224), what)
    del model, reference                              # free about 1 GB before the next build
    with torch.device("meta"):                        # shapes only: nothing is allocated
        small = build_vgg16(fn, "VGG16(num_classes=10)", num_classes=10)
        small_reference = torchvision_vgg16(num_classes=10)
    check_parameter_count(small, count_parameters(small_reference), "VGG16(num_classes=10)",
                          hint="Pass num_classes on to VGG.")
    passed(what, f"{expected:,} parameters and torchvision's logits on a 224x224 image; built "
                 "with torchvision's VGG class in place of yours, so only your configuration "
                 "is graded here")
