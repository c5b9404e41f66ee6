"""Checks for notebook 05 (EfficientNet): the depthwise-separable convolution and squeeze-and-excitation.

The oracles are torchvision's own building blocks, private to these modules:

* ``DepthwiseSeparableConv`` is compared with two of torchvision's
  ``Conv2dNormActivation`` layers: a k x k depthwise convolution (``groups`` =
  the input channels) with BatchNorm and SiLU, then a 1x1 pointwise
  convolution with BatchNorm and no activation, the layers MBConv uses.
* ``SqueezeExcitation`` is compared with ``torchvision.ops.SqueezeExcitation``
  with SiLU, the activation torchvision's EfficientNet passes it.

Each reference is built on the ``meta`` device and takes the student's own
tensors, which are then given seeded random values, BatchNorm statistics
included (:func:`helpers.checks.models.matches_torchvision`); both run in eval
mode on a random batch. Before running anything the structure is compared
(groups, kernel, stride, padding, bias, BatchNorm, 1x1 convolutions), and each
typical mistake has its own message. When the outputs differ, the check tries
known wrong wirings of the reference with the same weights (an activation after
the pointwise convolution, ReLU for SiLU, no sigmoid, ...) and names the one the
student's module computes.

The helpers shared with the MBConv and EfficientNet checks live here too:
:func:`build` (the student's module, seeded or on the meta device, refused when
it is the course's or torchvision's), :func:`diagnose_variants` and the
convolution descriptions.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import library
from .core import CheckFailed, passed, student_check
from .models import (TRANSPLANT_PROBLEM, build_student_model, frees_models, matches_torchvision, on_meta,
                     one_thread)

OWN_LAYERS_HINT = ("Build it yourself from torch.nn layers (nn.Conv2d, nn.BatchNorm2d, nn.SiLU, "
                   "nn.AdaptiveAvgPool2d, nn.Sigmoid, ...); torchvision is only what the check compares "
                   "your answer with.")


# ------------------------------------------------------------------ shared helpers
def refuse_torchvision(model: nn.Module, what: str, trusted: tuple[type, ...] = ()) -> None:
    """Fail when ``model`` is or contains a torchvision module class or a subclass of one (other than
    the check's own ``trusted`` stand-ins): :func:`helpers.checks.library.refuse_torchvision`."""
    library.refuse_torchvision(model, what, hint=OWN_LAYERS_HINT, trusted=trusted,
                               expected="layers built from torch.nn (nn.Conv2d, nn.BatchNorm2d, nn.SiLU, ...)")


def build(cls: Any, args: tuple, what: str, name: str, *, trusted: tuple[type, ...] = (),
          **kwargs: Any) -> nn.Module:
    """The student's module (see models.build_student_model), refused when it is torchvision's
    own, except for the ``trusted`` classes a check swaps in."""
    return build_student_model(cls, args, what, name, refuse=lambda m, w: refuse_torchvision(m, w, trusted),
                               **kwargs)


def convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The model's convolutions in the order they were created, with their names."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def reference_convs(reference: nn.Module, roles: Sequence[str]) -> list[tuple[str, nn.Conv2d]]:
    """The reference's convolutions named by their role ("depthwise", ...) rather than by torchvision's paths."""
    return [(role, m) for role, (_, m) in zip(roles, convs(reference))]


def norms(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def conv_spec(conv: nn.Conv2d) -> tuple:
    return (conv.in_channels, conv.out_channels, tuple(conv.kernel_size), tuple(conv.stride),
            tuple(conv.padding), conv.groups, conv.bias is not None)


def describe_conv(name: str, conv: nn.Conv2d) -> str:
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    text = (f"{name}: Conv2d({conv.in_channels}, {conv.out_channels}, kernel_size={k[0]}x{k[1]}, "
            f"stride={s[0]}, padding={p[0]}")
    if conv.groups != 1:
        text += f", groups={conv.groups}"
    return text + f", bias={conv.bias is not None})"


def describe_convs(pairs: Sequence[tuple[str, nn.Conv2d]]) -> str:
    return "; ".join(describe_conv(n, m) for n, m in pairs) or "none"


def comparison_input(shape: Sequence[int], seed: int, device: torch.device) -> torch.Tensor:
    """The random batch :func:`helpers.checks.models.matches_torchvision` compares on (same seed, same values)."""
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed)).to(device)


def close(a: Any, b: torch.Tensor, rtol: float = 1e-3, atol: float = 1e-5) -> bool:
    """Whether ``a`` is a tensor of ``b``'s shape within ``atol + rtol * max |b|`` of it."""
    if not isinstance(a, torch.Tensor) or a.shape != b.shape:
        return False
    return float((a - b).abs().max()) <= atol + rtol * float(b.abs().max())


def diagnose_variants(module: nn.Module, reference: nn.Module, shape: Sequence[int], seed: int, what: str,
                      variants: Callable[[torch.Tensor], dict[str, torch.Tensor]], expected: str,
                      hint: str) -> None:
    """After a failed comparison: if ``module`` computes one of ``variants(x)``, say which.

    ``variants`` maps a description ("applies an activation after ...") to the output of
    that wrong wiring, computed from the reference's layers, which hold the same weights.
    """
    device = next(reference.parameters()).device
    x = comparison_input(shape, seed, device)
    try:
        with torch.no_grad():
            out = module.eval()(x)
            found = variants(x)
    except Exception:  # noqa: BLE001 - the comparison's own message says what went wrong
        return
    for description, value in found.items():
        if close(out, value):
            raise CheckFailed(what, f"with torchvision's weights copied in, your module {description}.",
                              expected=expected, got=description.split(": ")[-1], hint=hint) from None


def require_no_bias(pairs: Sequence[tuple[str, nn.Conv2d]], what: str) -> None:
    biased = [n for n, m in pairs if m.bias is not None]
    if biased:
        raise CheckFailed(what, f"the convolution {biased[0]} has a bias.",
                          expected="nn.Conv2d(..., bias=False) for every convolution followed by BatchNorm",
                          got=f"a bias in {', '.join(biased)}",
                          hint="BatchNorm's shift makes a bias before it useless: create these convolutions "
                               "with bias=False, as torchvision does.")


def compare(module: nn.Module, reference: nn.Module, shape: Sequence[int], what: str, seed: int,
            diagnose: Callable[[], None]) -> None:
    """Outputs with the same weights; on a mismatch, ``diagnose()`` may name the mistake first."""
    try:
        matches_torchvision(module, reference, shape, what, seed=seed)
    except CheckFailed as failure:
        if failure.problem != TRANSPLANT_PROBLEM and "not attempted" not in failure.problem:
            diagnose()
        raise


def _cna(layer: nn.Sequential, x: torch.Tensor, activation: Callable | None = None) -> torch.Tensor:
    """A Conv2dNormActivation's convolution and BatchNorm, then ``activation`` (None: none)."""
    x = layer[1](layer[0](x))
    return activation(x) if activation is not None else x


# ------------------------------------------------------------------ DepthwiseSeparableConv
DS_HINT = ("A depthwise-separable convolution is nn.Conv2d(in_channels, in_channels, kernel_size, stride=stride, "
           "padding=kernel_size // 2, groups=in_channels, bias=False) -> nn.BatchNorm2d(in_channels) -> SiLU, "
           "then nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False) -> nn.BatchNorm2d(out_channels), "
           "with no activation at the end. Create the layers in the order they run.")


def _ds_reference(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Module:
    from torchvision.ops.misc import Conv2dNormActivation
    return nn.Sequential(
        Conv2dNormActivation(in_channels, in_channels, kernel_size, stride, groups=in_channels,
                             norm_layer=nn.BatchNorm2d, activation_layer=nn.SiLU),
        Conv2dNormActivation(in_channels, out_channels, 1, norm_layer=nn.BatchNorm2d, activation_layer=None))


def _ds_structure(module: nn.Module, reference: nn.Module, what: str, in_channels: int, out_channels: int,
                  kernel_size: int, stride: int) -> None:
    mine, ref = convs(module), reference_convs(reference, ("depthwise", "pointwise"))
    if len(mine) != 2:
        raise CheckFailed(what, f"the module has {len(mine)} convolutions instead of 2.",
                          expected=describe_convs(ref), got=describe_convs(mine), hint=DS_HINT)
    (dw_name, dw), (pw_name, pw) = mine
    if tuple(dw.kernel_size) == (1, 1) and tuple(pw.kernel_size) == (kernel_size, kernel_size) != (1, 1):
        raise CheckFailed(what, "the 1x1 pointwise convolution comes first; the depthwise one should.",
                          expected=describe_convs(ref), got=describe_convs(mine),
                          hint="Filter each channel on its own first (depthwise k x k), then mix the channels "
                               "(pointwise 1x1), and create the layers in that order.")
    if dw.groups != in_channels and dw.out_channels == in_channels:
        raise CheckFailed(what, f"{dw_name} is not a depthwise convolution: each of its filters sees "
                                f"{in_channels // dw.groups} input channels, not one.",
                          expected=f"groups={in_channels}: one {kernel_size}x{kernel_size} filter per channel, "
                                   f"weight of shape ({in_channels}, 1, {kernel_size}, {kernel_size})",
                          got=f"groups={dw.groups}, weight of shape {tuple(dw.weight.shape)}",
                          hint="Pass groups=in_channels to the k x k convolution: that splits the channels into "
                               "in_channels groups of one, so each output channel filters one input channel.")
    if dw.out_channels != in_channels and pw.in_channels == dw.out_channels:
        raise CheckFailed(what, f"the depthwise convolution {dw_name} changes the number of channels "
                                f"({in_channels} -> {dw.out_channels}).",
                          expected=describe_convs(ref), got=describe_convs(mine),
                          hint="The depthwise convolution keeps in_channels channels (one filter each); only "
                               "the pointwise 1x1 convolution goes to out_channels.")
    require_no_bias(mine, what)
    if stride != 1 and tuple(pw.stride) == (stride, stride) and tuple(dw.stride) == (1, 1):
        raise CheckFailed(what, "the stride is on the pointwise convolution.",
                          expected=describe_convs(ref), got=describe_convs(mine),
                          hint="The stride goes on the depthwise k x k convolution, which looks at every pixel "
                               "of its window; a strided 1x1 convolution would simply skip pixels.")
    if len(norms(module)) != 2:
        raise CheckFailed(what, "each convolution should be followed by its own BatchNorm2d.",
                          expected="2 BatchNorm2d layers", got=f"{len(norms(module))}", hint=DS_HINT)
    for (name, conv), (ref_name, ref_conv) in zip(mine, ref):
        spec, ref_spec = conv_spec(conv), conv_spec(ref_conv)
        if spec == ref_spec:
            continue
        if spec[:4] == ref_spec[:4] and spec[4] != ref_spec[4]:
            raise CheckFailed(what, f"the padding of {name} is wrong.",
                              expected=describe_conv(ref_name, ref_conv), got=describe_conv(name, conv),
                              hint="padding=kernel_size // 2 keeps the size (only the stride changes it); a 1x1 "
                                   "convolution takes no padding.")
        raise CheckFailed(what, f"the convolution {name} has the wrong shape.",
                          expected=describe_conv(ref_name, ref_conv), got=describe_conv(name, conv), hint=DS_HINT)


def _ds_variants(reference: nn.Module) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    dw, pw = reference[0], reference[1]

    def variants(x: torch.Tensor) -> dict[str, torch.Tensor]:
        d = _cna(dw, x)
        return {
            "applies an activation after the pointwise BatchNorm: SiLU(BN(pointwise(...)))":
                F.silu(_cna(pw, F.silu(d))),
            "applies a ReLU after the pointwise BatchNorm: ReLU(BN(pointwise(...)))":
                F.relu(_cna(pw, F.silu(d))),
            "uses ReLU after the depthwise BatchNorm instead of SiLU": _cna(pw, F.relu(d)),
            "uses ReLU6 after the depthwise BatchNorm instead of SiLU": _cna(pw, F.relu6(d)),
            "has no activation after the depthwise BatchNorm": _cna(pw, d),
            "uses ReLU after both BatchNorms (MobileNetV1's layout)": F.relu(_cna(pw, F.relu(d))),
        }
    return variants


@one_thread
@frees_models
def compare_depthwise_separable(cls: type, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                                input_shape: Sequence[int], seed: int = 0) -> None:
    """The student's ``DepthwiseSeparableConv`` against torchvision's layers: structure, then outputs."""
    what = f"DepthwiseSeparableConv({in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride})"
    module = build(cls, (in_channels, out_channels), what, "DepthwiseSeparableConv", seed=seed,
                   kernel_size=kernel_size, stride=stride)
    reference = on_meta(_ds_reference, in_channels, out_channels, kernel_size, stride)
    _ds_structure(module, reference, what, in_channels, out_channels, kernel_size, stride)
    compare(module, reference, input_shape, what, seed,
            lambda: diagnose_variants(module, reference, input_shape, seed, what, _ds_variants(reference),
                                      expected="BN(pointwise(SiLU(BN(depthwise(x))))): no activation at the end",
                                      hint=DS_HINT))


DS_CASES = [
    # in, out, kernel, stride, input (N, C, H, W)
    (8, 16, 3, 1, (2, 8, 9, 9)),
    (16, 8, 5, 2, (2, 16, 10, 10)),      # stride 2, a 5x5 kernel, fewer channels out
    (6, 6, 3, 2, (1, 6, 7, 7)),          # odd size
    (4, 12, 7, 1, (2, 4, 8, 6)),         # 7x7, a rectangle
]


@student_check
def check_depthwise_separable_conv(cls: type) -> None:
    for i, (c_in, c_out, k, stride, shape) in enumerate(DS_CASES):
        compare_depthwise_separable(cls, c_in, c_out, k, stride, shape, seed=i)
    passed("DepthwiseSeparableConv", f"{len(DS_CASES)} configurations (kernels 3, 5, 7; strides 1 and 2) compute "
                                     "the same as torchvision's depthwise and pointwise Conv2dNormActivation")


# ------------------------------------------------------------------ SqueezeExcitation
SE_HINT = ("torchvision's order: global average pooling to (N, C, 1, 1) -> nn.Conv2d(channels, squeezed_channels, 1) "
           "-> SiLU -> nn.Conv2d(squeezed_channels, channels, 1) -> sigmoid gives one weight per channel; return "
           "the input multiplied by it, x * scale. Both 1x1 convolutions have a bias. Create the layers in the "
           "order they run.")


def _se_reference(channels: int, squeezed_channels: int) -> nn.Module:
    from torchvision.ops import SqueezeExcitation
    return SqueezeExcitation(channels, squeezed_channels, activation=nn.SiLU)


def _se_structure(module: nn.Module, reference: nn.Module, what: str, channels: int, squeezed: int) -> None:
    linears = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    mine, ref = convs(module), convs(reference)
    if linears and len(mine) < 2:
        raise CheckFailed(what, f"it uses nn.Linear ({', '.join(linears)}) where torchvision uses 1x1 convolutions.",
                          expected=describe_convs(ref), got=f"Linear layers {', '.join(linears)}",
                          hint="Use nn.Conv2d(channels, squeezed_channels, kernel_size=1) and nn.Conv2d("
                               "squeezed_channels, channels, kernel_size=1) on the pooled (N, C, 1, 1) tensor: "
                               "they compute the same as Linear layers, and MBConv and the check expect them.")
    if len(mine) != 2:
        raise CheckFailed(what, f"the module has {len(mine)} convolutions instead of 2.",
                          expected=describe_convs(ref), got=describe_convs(mine), hint=SE_HINT)
    if squeezed != channels and [conv_spec(m)[:2] for _, m in mine] == [(squeezed, channels), (channels, squeezed)]:
        raise CheckFailed(what, "the two 1x1 convolutions are created in the wrong order.",
                          expected=describe_convs(ref), got=describe_convs(mine),
                          hint="First squeeze (channels -> squeezed_channels), then expand back "
                               "(squeezed_channels -> channels); create them in that order.")
    no_bias = [n for n, m in mine if m.bias is None]
    if no_bias:
        raise CheckFailed(what, f"the convolution {no_bias[0]} has no bias.",
                          expected=describe_convs(ref), got=describe_convs(mine),
                          hint="No BatchNorm follows these two 1x1 convolutions, so they keep their bias "
                               "(nn.Conv2d's default bias=True), as in torchvision.")
    for (name, conv), (ref_name, ref_conv) in zip(mine, ref):
        if conv_spec(conv) != conv_spec(ref_conv):
            raise CheckFailed(what, f"the convolution {name} has the wrong shape.",
                              expected=describe_conv(ref_name, ref_conv), got=describe_conv(name, conv),
                              hint=SE_HINT)


def _se_variants(reference: nn.Module) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    se = reference

    def gate(x: torch.Tensor, pool=F.adaptive_avg_pool2d, act=F.silu, squash=torch.sigmoid) -> torch.Tensor:
        return squash(se.fc2(act(se.fc1(pool(x, 1)))))

    def variants(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "uses ReLU between the two 1x1 convolutions instead of SiLU (torchvision's default; "
            "EfficientNet passes SiLU)": x * gate(x, act=F.relu),
            "has no sigmoid: it multiplies x by fc2's raw output": x * gate(x, squash=lambda t: t),
            "pools with the maximum instead of the average": x * gate(x, pool=F.adaptive_max_pool2d),
            "has no activation between the two 1x1 convolutions": x * gate(x, act=lambda t: t),
            "adds the scale to x instead of multiplying: x + scale": x + gate(x),
            "uses a hard sigmoid instead of the sigmoid": x * gate(x, squash=F.hardsigmoid),
        }
    return variants


def _require_same_shape(cls: type, channels: int, squeezed: int, input_shape: Sequence[int],
                        what: str, name: str, seed: int) -> None:
    """The output has the input's shape: the input rescaled, not the scale itself."""
    meta = build(cls, (channels, squeezed), what, name, meta=True, seed=seed)
    try:
        with torch.no_grad():
            out = meta(torch.zeros(tuple(input_shape), device="meta"))
    except Exception:  # noqa: BLE001 - the comparison reports it with the traceback's message
        return
    if isinstance(out, torch.Tensor) and tuple(out.shape) != tuple(input_shape):
        per_channel = tuple(out.shape) == (input_shape[0], channels, 1, 1)
        raise CheckFailed(what, "it returns the channel weights, not the rescaled input." if per_channel
                          else "the output does not have the input's shape.",
                          expected=f"the input rescaled channel by channel, shape {tuple(input_shape)}",
                          got=f"shape {tuple(out.shape)}",
                          hint="Squeeze-and-excitation returns x * scale, where scale has shape (N, C, 1, 1) and "
                               "broadcasts over the height and width.")


@one_thread
@frees_models
def compare_squeeze_excitation(cls: type, channels: int, squeezed_channels: int, input_shape: Sequence[int],
                               seed: int = 0) -> None:
    """The student's ``SqueezeExcitation`` against ``torchvision.ops.SqueezeExcitation`` with SiLU."""
    what = f"SqueezeExcitation({channels}, {squeezed_channels})"
    module = build(cls, (channels, squeezed_channels), what, "SqueezeExcitation", seed=seed)
    reference = on_meta(_se_reference, channels, squeezed_channels)
    _se_structure(module, reference, what, channels, squeezed_channels)
    _require_same_shape(cls, channels, squeezed_channels, input_shape, what, "SqueezeExcitation", seed)
    compare(module, reference, input_shape, what, seed,
            lambda: diagnose_variants(module, reference, input_shape, seed, what, _se_variants(reference),
                                      expected="x * sigmoid(fc2(SiLU(fc1(avgpool(x)))))", hint=SE_HINT))


SE_CASES = [
    # channels, squeezed, input
    (8, 2, (2, 8, 5, 5)),
    (16, 4, (2, 16, 7, 3)),
    (24, 6, (1, 24, 4, 4)),
    (6, 1, (3, 6, 2, 5)),               # a squeeze to a single channel
]


@student_check
def check_squeeze_excitation(cls: type) -> None:
    for i, (channels, squeezed, shape) in enumerate(SE_CASES):
        compare_squeeze_excitation(cls, channels, squeezed, shape, seed=i)
    passed("SqueezeExcitation", f"{len(SE_CASES)} configurations compute the same as "
                                "torchvision.ops.SqueezeExcitation with SiLU")
