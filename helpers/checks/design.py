"""Checks for notebook 06 (design principles): ``ConvBNReLU``, and the machinery all its checks share.

There is no torchvision class for the notebook's exercises, so the oracles are
private references built from each exercise's contract, layer by layer.
``ConvBNReLU`` is compared, structure first (an ``nn.Sequential`` of a convolution
without bias, BatchNorm and ReLU, "same" padding, stride and groups), then by its
outputs with the same weights, against ``nn.Sequential(nn.Conv2d, nn.BatchNorm2d, nn.ReLU)``.

``ModernBlock`` is checked in :mod:`helpers.checks.design_blocks`, ``ModernCNN`` and
the design challenge in :mod:`helpers.checks.design_network`.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from helpers.transplant import TransplantError, first_divergence, match_by_order, share_weights_by_order

from .core import CheckFailed, assert_shape, call_student, passed, require_tensor, student_check
from .models import ATOL, RTOL, build_student_model, frees_models, on_meta, one_thread, random_weights_

OWN_LAYERS_HINT = ("Build it from torch.nn layers (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Sigmoid, "
                   "nn.AdaptiveAvgPool2d, ...) in the exercise cell.")


# ------------------------------------------------------------------ shared machinery
def refuse_library_models(model: nn.Module, what: str) -> None:
    """Fail when a module of ``model`` comes from torchvision (its blocks would grade torchvision)."""
    for name, module in model.named_modules():
        origin = type(module).__module__ or ""
        if origin == "torchvision" or origin.startswith("torchvision."):
            where = f"your model's `{name}` is" if name else "your model is"
            raise CheckFailed(what, f"{where} torchvision's {type(module).__qualname__}.",
                              expected="layers you build from torch.nn", got=f"{origin}.{type(module).__qualname__}",
                              hint=OWN_LAYERS_HINT)



#: The student's model, refused when it comes from torchvision (see models.build_student_model).
build_student = functools.partial(build_student_model, refuse=refuse_library_models)


def convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def norms(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm))]


def describe_conv(name: str, conv: nn.Conv2d) -> str:
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    groups = f", groups={conv.groups}" if conv.groups != 1 else ""
    bias = ", bias" if conv.bias is not None else ""
    return (f"{name}: Conv2d({conv.in_channels}, {conv.out_channels}, kernel_size={k[0]}x{k[1]}, "
            f"stride={s[0]}, padding={p[0]}{groups}{bias})")


def compare_outputs(model: nn.Module, reference: nn.Module, input_shape: Sequence[int], what: str, *,
                    seed: int, label: str = "the reference"
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """Share the student's tensors with ``reference`` (built on meta), randomise them, compare in eval mode.

    Returns ``(x, the student's output, the reference's output, whether they agree)``.
    """
    try:
        match_by_order(reference, model, source_label=label, target_label="yours")
        share_weights_by_order(model, reference)
    except TransplantError as err:
        raise CheckFailed(what, f"the weights of {label} cannot be copied into your model: its parameters "
                                "do not line up by order and shape.",
                          got=err.message, hint=err.hint + " Create the layers in the order the exercise "
                                                           "lists them.") from None
    random_weights_(reference, seed)                       # the student's tensors, now shared
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    x = torch.randn(tuple(input_shape), generator=gen).to(device)
    with torch.no_grad():
        expected = reference.eval()(x)
        out = require_tensor(call_student(model.eval(), x, what=what), what)
    scale = float(expected.abs().max())
    agree = out.shape == expected.shape and float((out - expected).abs().max()) <= ATOL + RTOL * scale
    return x, out, expected, agree


def fail_with_divergence(model: nn.Module, reference: nn.Module, x: torch.Tensor, out: torch.Tensor,
                         expected: torch.Tensor, what: str, hint: str, label: str = "the reference") -> None:
    """Raise with the first layer that differs (or the shapes / values of the outputs)."""
    divergence = first_divergence(reference, model, x, RTOL, ATOL, reference_label=label)
    if divergence is not None:
        got = divergence.got + ("" if divergence.max_abs_diff is None
                                else f" (max |difference| {divergence.max_abs_diff:.3g})")
        raise CheckFailed(what, f"with the weights of {label} copied in, your outputs differ on a random "
                                f"{tuple(x.shape)} batch; {divergence.summary}.",
                          expected=divergence.expected, got=got,
                          hint=divergence.hint[0].upper() + divergence.hint[1:] + " " + hint)
    assert_shape(tuple(out.shape), tuple(expected.shape), what, hint=hint)
    raise CheckFailed(what, f"with the weights of {label} copied in, your outputs differ on a random "
                            f"{tuple(x.shape)} batch.",
                      expected=f"values such as {float(expected.flatten()[0]):.4g}",
                      got=f"{float(out.flatten()[0]):.4g} (max |difference| "
                          f"{float((out - expected).abs().max()):.3g})", hint=hint)


def matching_variant(out: torch.Tensor, variants: dict[str, torch.Tensor]) -> str | None:
    """The description of the first variant ``out`` equals (shape and values), or None."""
    for description, value in variants.items():
        scale = float(value.abs().max())
        if out.shape == value.shape and float((out - value).abs().max()) <= ATOL + RTOL * scale:
            return description
    return None


# ------------------------------------------------------------------ ConvBNReLU
CONV_BN_RELU_HINT = ("ConvBNReLU subclasses nn.Sequential and passes it three layers: "
                     "nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, "
                     "padding=kernel_size // 2, groups=groups, bias=False), nn.BatchNorm2d(out_channels), "
                     "nn.ReLU(inplace=True).")


def _reference_conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int,
                            groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                                   padding=kernel_size // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def _conv_bn_relu_structure(model: nn.Module, what: str, in_channels: int, out_channels: int,
                            kernel_size: int, stride: int, groups: int) -> None:
    if not isinstance(model, nn.Sequential):
        raise CheckFailed(what, "ConvBNReLU is not an nn.Sequential.", expected="a subclass of nn.Sequential",
                          got=f"{type(model).__name__}, a subclass of {type(model).__mro__[1].__name__}",
                          hint="Write `class ConvBNReLU(nn.Sequential)` and call super().__init__(conv, bn, relu): "
                               "the network code later indexes and slices it like any nn.Sequential.")
    kinds = [type(m).__name__ for m in model]
    conv_list = [m for m in model if isinstance(m, nn.Conv2d)]
    if len(conv_list) == 1 and conv_list[0].bias is not None:
        raise CheckFailed(what, "the convolution has a bias, but a BatchNorm follows it.",
                          expected="nn.Conv2d(..., bias=False)", got="nn.Conv2d(..., bias=True), PyTorch's default",
                          hint="BatchNorm subtracts the mean of each channel, and a bias is part of that mean: "
                               "it cancels exactly (section 1 measured its gradient: zero). BatchNorm's own "
                               "shift, beta, does the bias's job. Pass bias=False.")
    if [k for k in kinds if k != "Identity"] != ["Conv2d", "BatchNorm2d", "ReLU"]:
        raise CheckFailed(what, "the layers are not Conv2d, BatchNorm2d, ReLU in this order.",
                          expected="[Conv2d, BatchNorm2d, ReLU]", got=f"[{', '.join(kinds)}]",
                          hint=CONV_BN_RELU_HINT)
    conv, bn = conv_list[0], next(m for m in model if isinstance(m, nn.BatchNorm2d))
    expected = _reference_conv_bn_relu(in_channels, out_channels, kernel_size, stride, groups)[0]
    got_spec = (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.groups)
    want_spec = (expected.in_channels, expected.out_channels, expected.kernel_size, expected.stride,
                 expected.groups)
    if got_spec == want_spec and conv.padding != expected.padding:
        raise CheckFailed(what, f"the padding is {conv.padding[0]}, so a {kernel_size}x{kernel_size} convolution "
                                "with stride 1 does not keep the height and width.",
                          expected=describe_conv("conv", expected), got=describe_conv("conv", conv),
                          hint="\"Same\" padding for an odd kernel is kernel_size // 2 on each side: 0 for 1x1, "
                               "1 for 3x3, 2 for 5x5.")
    if conv.groups != groups and got_spec[:4] == want_spec[:4]:
        raise CheckFailed(what, "the groups argument does not reach the convolution.",
                          expected=describe_conv("conv", expected), got=describe_conv("conv", conv),
                          hint="Pass groups=groups to nn.Conv2d: groups=in_channels makes it depthwise.")
    if got_spec != want_spec or conv.padding != expected.padding:
        raise CheckFailed(what, "the convolution is not the one asked for.",
                          expected=describe_conv("conv", expected), got=describe_conv("conv", conv),
                          hint=CONV_BN_RELU_HINT)
    if bn.num_features != out_channels:
        raise CheckFailed(what, f"the BatchNorm normalises {bn.num_features} channels.",
                          expected=f"BatchNorm2d({out_channels})", got=f"BatchNorm2d({bn.num_features})",
                          hint="BatchNorm2d takes the number of channels it receives: the convolution's output.")


@one_thread
@frees_models
def compare_conv_bn_relu(cls: Any, in_channels: int, out_channels: int, kernel_size: int = 3,
                         stride: int = 1, groups: int = 1, input_shape: Sequence[int] | None = None,
                         seed: int = 0) -> None:
    """``cls(in, out, kernel_size=..., stride=..., groups=...)``: structure, then outputs with shared weights."""
    what = (f"ConvBNReLU({in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}, "
            f"groups={groups})")
    model = build_student(cls, (in_channels, out_channels), what, "ConvBNReLU", seed=seed,
                          kernel_size=kernel_size, stride=stride, groups=groups)
    _conv_bn_relu_structure(model, what, in_channels, out_channels, kernel_size, stride, groups)
    input_shape = input_shape or (2, in_channels, 9, 9)
    reference = on_meta(_reference_conv_bn_relu, in_channels, out_channels, kernel_size, stride, groups)
    x, out, expected, agree = compare_outputs(model, reference, input_shape, what, seed=seed)
    if not agree:
        fail_with_divergence(model, reference, x, out, expected, what, CONV_BN_RELU_HINT)


CONV_BN_RELU_CASES = [
    # in, out, kernel, stride, groups, input
    (3, 8, 3, 1, 1, (2, 3, 10, 10)),
    (8, 16, 3, 2, 1, (2, 8, 9, 9)),          # stride 2, odd size
    (4, 6, 5, 1, 1, (1, 4, 11, 11)),         # 5x5: padding 2
    (6, 6, 3, 1, 6, (2, 6, 8, 8)),           # depthwise
    (8, 4, 1, 1, 1, (2, 8, 5, 5)),           # 1x1: padding 0
]


@student_check
def check_conv_bn_relu(cls: Any) -> None:
    for i, (c_in, c_out, k, s, g, shape) in enumerate(CONV_BN_RELU_CASES):
        compare_conv_bn_relu(cls, c_in, c_out, k, s, g, shape, seed=i)
    passed("ConvBNReLU", f"{len(CONV_BN_RELU_CASES)} configurations (1x1, 3x3, 5x5, stride 2, depthwise) "
                         "have the reference's layers and outputs")
