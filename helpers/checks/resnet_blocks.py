"""Checks for notebook 04 (ResNet), part 1: the residual and bottleneck blocks.

The oracles are torchvision's own ``BasicBlock`` and ``Bottleneck``, private to
this module. A block is compared with torchvision's block of the same shape, its
projection shortcut (``downsample``) built as torchvision's ``ResNet`` builds it.
The reference is built on the ``meta`` device and takes the student's own
tensors (:func:`helpers.transplant.share_weights_by_order`), which are then
given seeded random values, BatchNorm statistics included; both run in eval
mode on a random batch.

Before running anything, a block's structure is compared with the reference's:
no bias in the convolutions, a projection exactly where the shape changes,
BatchNorm in the shortcut, and the kernel, stride and padding of every
convolution in the order they are created. Each of these mistakes has its own
message. When the outputs differ, the check tries a few known wrong wirings of
the reference (a ReLU missing, no skip, ...) and names the one that the
student's block computes; otherwise :func:`helpers.transplant.first_divergence`
names the first layer that differs.

The trusted blocks defined here (torchvision's blocks behind the exercise's
constructors) also stand in for the student's blocks when ``resnet.py`` checks
the networks. Every check refuses classes from the course's ``helpers`` package
and models that are, or contain, torchvision's own blocks or ResNet, and runs on
one CPU thread (:func:`helpers.checks.models.one_thread`).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


from .core import CheckFailed, passed, student_check
from .models import build_student_model, frees_models, matches_torchvision, on_meta, one_thread

BASIC, BOTTLENECK = "basic", "bottleneck"
NAMES = {BASIC: "ResidualBlock", BOTTLENECK: "BottleneckBlock"}
EXPANSION = {BASIC: 1, BOTTLENECK: 4}
OWN_LAYERS_HINT = ("Build the layers yourself from nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, "
                   "nn.AdaptiveAvgPool2d and nn.Linear; torchvision is only what the check compares "
                   "your answer with.")
ORDER_HINT = ("The check pairs your layers with torchvision's in the order they are created: create "
              "the main path first (conv1, bn1, conv2, bn2{more}) and the shortcut's layers last.")



# ------------------------------------------------------------------ oracles (private)
def _tv():
    import torchvision.models.resnet as tv_resnet
    return tv_resnet


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """The projection shortcut torchvision's ResNet gives a block: 1x1 convolution, BatchNorm."""
    return nn.Sequential(_tv().conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


def _needs_projection(in_channels: int, out_channels: int, stride: int) -> bool:
    return stride != 1 or in_channels != out_channels


def _trusted_classes() -> tuple[type, type]:
    """torchvision's two blocks behind the exercise's constructors (built once, then cached)."""
    global _TRUSTED
    if _TRUSTED is None:
        tv = _tv()

        class TrustedResidualBlock(tv.BasicBlock):
            """torchvision's BasicBlock, built as ``ResidualBlock(in_channels, out_channels, stride)``."""

            expansion = 1

            def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
                shortcut = (_projection(in_channels, out_channels, stride)
                            if _needs_projection(in_channels, out_channels, stride) else None)
                super().__init__(in_channels, out_channels, stride, shortcut)

        class TrustedBottleneckBlock(tv.Bottleneck):
            """torchvision's Bottleneck, built as ``BottleneckBlock(in_channels, internal_channels, stride)``."""

            expansion = 4

            def __init__(self, in_channels: int, internal_channels: int, stride: int = 1):
                out = internal_channels * self.expansion
                shortcut = (_projection(in_channels, out, stride)
                            if _needs_projection(in_channels, out, stride) else None)
                super().__init__(in_channels, internal_channels, stride, shortcut)

        _TRUSTED = (TrustedResidualBlock, TrustedBottleneckBlock)
    return _TRUSTED


_TRUSTED: tuple[type, type] | None = None


def _trusted_block(kind: str) -> type:
    basic, bottleneck = _trusted_classes()
    return basic if kind == BASIC else bottleneck



# ------------------------------------------------------------------ refusing borrowed answers
def _refuse_torchvision(model: nn.Module, what: str) -> None:
    """Fail when ``model`` is or contains torchvision's ResNet or one of its blocks (other than the check's)."""
    tv = _tv()
    trusted = _trusted_classes()
    for name, module in model.named_modules():
        if isinstance(module, trusted):
            continue
        for cls, label in ((tv.ResNet, "ResNet"), (tv.BasicBlock, "BasicBlock"),
                           (tv.Bottleneck, "Bottleneck")):
            if isinstance(module, cls):
                where = f"your model's `{name}` is" if name else "your model is"
                raise CheckFailed(what, f"{where} torchvision's {label}, so the check would compare "
                                        "torchvision with itself.",
                                  expected="layers built from nn.Conv2d, nn.BatchNorm2d, nn.ReLU, ...",
                                  got=f"{type(module).__module__}.{type(module).__qualname__}",
                                  hint=OWN_LAYERS_HINT)


#: The student's block, refused when it is torchvision's own (see models.build_student_model).
_build = functools.partial(build_student_model, refuse=_refuse_torchvision)


# ------------------------------------------------------------------ structure
def _convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _norms(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _conv_spec(conv: nn.Conv2d) -> tuple:
    return (conv.in_channels, conv.out_channels, tuple(conv.kernel_size), tuple(conv.stride),
            tuple(conv.padding))


def _describe_conv(name: str, conv: nn.Conv2d) -> str:
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    return (f"{name}: Conv2d({conv.in_channels}, {conv.out_channels}, kernel_size={k[0]}x{k[1]}, "
            f"stride={s[0]}, padding={p[0]})")


def _require_no_bias(model: nn.Module, what: str) -> None:
    biased = [n for n, m in _convs(model) if m.bias is not None]
    if biased:
        raise CheckFailed(what, f"the convolution {biased[0]} has a bias.",
                          expected="nn.Conv2d(..., bias=False) everywhere",
                          got=f"a bias in {', '.join(biased)}",
                          hint="Every convolution here is followed by BatchNorm, whose shift makes a "
                               "bias useless: create the convolutions with bias=False, as torchvision does.")


def _check_expansion(cls: Any, kind: str) -> None:
    name, expected = NAMES[kind], EXPANSION[kind]
    value = getattr(cls, "expansion", None) if isinstance(cls, type) else expected
    if value != expected:
        got = "no class attribute `expansion`" if value is None else f"expansion = {value!r}"
        raise CheckFailed(name, "the class attribute `expansion` is wrong.",
                          expected=f"expansion = {expected}", got=got,
                          hint=f"`expansion` is a class attribute (written in the class body, not in "
                               f"__init__): the block's output has expansion x its second argument "
                               f"channels, and ResNet reads it to know how wide each stage's output is. "
                               f"It is {expected} for the {'basic' if kind == BASIC else 'bottleneck'} block.")


def _compare_block_structure(block: nn.Module, reference: nn.Module, kind: str, what: str,
                             in_channels: int, channels: int, stride: int) -> None:
    """Structure first: bias, projection, BatchNorm, and each convolution's shape, in creation order."""
    out = channels * EXPANSION[kind]
    main = 2 if kind == BASIC else 3
    projection = _needs_projection(in_channels, out, stride)
    _require_no_bias(block, what)
    convs, ref_convs = _convs(block), _convs(reference)
    why = (f"stride={stride}" if stride != 1 else "") + (
        (" and " if stride != 1 else "") + f"{in_channels} channels in, {out} out"
        if in_channels != out else "")
    if projection and len(convs) == main:
        raise CheckFailed(what, f"the block has no projection shortcut, but its input cannot be added "
                                f"to F(x) as it is ({why}).",
                          expected=f"{main} convolutions in the main path and a 1x1 convolution with "
                                   f"stride {stride}, followed by BatchNorm2d, in the shortcut",
                          got=f"{len(convs)} convolutions",
                          hint="Use the identity shortcut only when the stride is 1 and the channel "
                               "count does not change; otherwise project x with nn.Conv2d(in_channels, "
                               "out_channels, kernel_size=1, stride=stride, bias=False) and "
                               "nn.BatchNorm2d.")
    if not projection and len(convs) == main + 1:
        raise CheckFailed(what, "the block has a projection shortcut where the shortcut should be the "
                                f"identity (stride 1, {in_channels} channels in and out).",
                          expected=f"{main} convolutions and an identity shortcut",
                          got=f"{len(convs)} convolutions",
                          hint="Project only when the stride is not 1 or the channel count changes; "
                               "otherwise add x itself.")
    if len(convs) != len(ref_convs):
        raise CheckFailed(what, "the block has the wrong number of convolutions.",
                          expected=f"{len(ref_convs)}: " + "; ".join(_describe_conv(n, m) for n, m in ref_convs),
                          got=f"{len(convs)}: " + "; ".join(_describe_conv(n, m) for n, m in convs),
                          hint=f"The {'basic block has two 3x3' if kind == BASIC else 'bottleneck has a 1x1, a 3x3 and a 1x1'} "
                               "convolutions in its main path, plus a 1x1 projection in the shortcut "
                               "when the shape changes.")
    norms = len(_norms(block))
    if norms != len(convs):
        if projection and norms == len(convs) - 1:
            raise CheckFailed(what, "the projection shortcut has no BatchNorm.",
                              expected=f"{len(convs)} BatchNorm2d layers, one after each convolution, "
                                       "the shortcut's 1x1 convolution included",
                              got=f"{norms} BatchNorm2d layers",
                              hint="Put nn.BatchNorm2d(out_channels) after the shortcut's 1x1 "
                                   "convolution (an nn.Sequential of the two), as torchvision does: "
                                   "the projected x is then on the same scale as F(x).")
        raise CheckFailed(what, "each convolution should be followed by its own BatchNorm2d.",
                          expected=f"{len(convs)} BatchNorm2d layers", got=f"{norms}",
                          hint="conv -> BatchNorm2d for every convolution, in the main path and in "
                               "the projection.")
    specs, ref_specs = [_conv_spec(m) for _, m in convs], [_conv_spec(m) for _, m in ref_convs]
    more = "" if kind == BASIC else ", conv3, bn3"
    if sorted(specs) == sorted(ref_specs) and specs != ref_specs:
        raise CheckFailed(what, "your convolutions are right, but they are created in another order "
                                "than the one they run in.",
                          expected="; ".join(_describe_conv(n, m) for n, m in ref_convs),
                          got="; ".join(_describe_conv(n, m) for n, m in convs),
                          hint=ORDER_HINT.format(more=more))
    for i, ((name, conv), (ref_name, ref)) in enumerate(zip(convs, ref_convs)):
        spec, ref_spec = _conv_spec(conv), _conv_spec(ref)
        if spec == ref_spec:
            continue
        expected, got = _describe_conv(ref_name, ref), _describe_conv(name, conv)
        if spec[:3] == ref_spec[:3] and spec[3] != ref_spec[3]:
            if kind == BASIC:
                hint = ("The stride goes on the first 3x3 convolution (and on the shortcut's 1x1); the "
                        "second 3x3 convolution always has stride 1.")
            else:
                hint = ("The stride goes on the 3x3 convolution (conv2) and on the shortcut's 1x1, as "
                        "in torchvision (\"ResNet v1.5\"); both 1x1 convolutions of the main path have "
                        "stride 1. (The original paper put it on the first 1x1, which then throws "
                        "away three quarters of its input without looking at it.)")
            raise CheckFailed(what, f"the stride is on the wrong convolution: {name} has stride "
                                    f"{spec[3][0]}, torchvision's {ref_name} has stride {ref_spec[3][0]}.",
                              expected=expected, got=got, hint=hint)
        if spec[:3] == ref_spec[:3]:
            raise CheckFailed(what, f"the padding of {name} is wrong.", expected=expected, got=got,
                              hint="3x3 convolutions take padding=1, 1x1 convolutions padding=0, so "
                                   "that only the stride changes the height and width.")
        if kind == BOTTLENECK and i == 2 and spec[0] == ref_spec[0] and spec[2] == ref_spec[2]:
            raise CheckFailed(what, f"the last 1x1 convolution expands to {spec[1]} channels instead of "
                                    f"expansion x internal_channels = 4 x {channels} = {ref_spec[1]}.",
                              expected=expected, got=got,
                              hint="The block's output has self.expansion * internal_channels "
                                   "channels: conv3 (and the projection) produce that many.")
        raise CheckFailed(what, f"convolution {name} has the wrong shape.", expected=expected, got=got,
                          hint=(f"The {'basic block is conv3x3 (stride) -> BN -> ReLU -> conv3x3 -> BN' if kind == BASIC else 'bottleneck is 1x1 (reduce to internal_channels) -> BN -> ReLU -> 3x3 (stride) -> BN -> ReLU -> 1x1 (expand to 4 x internal_channels) -> BN'}, "
                                "then the shortcut is added and a ReLU applied. ")
                          + ORDER_HINT.format(more=more))


def _require_output_width(cls: type, kind: str, in_channels: int, channels: int, stride: int,
                          input_shape: Sequence[int], what: str) -> None:
    """The block's output has expansion x channels: run it on the meta device (shapes only) to see."""
    expected = channels * EXPANSION[kind]
    block = _build(cls, (in_channels, channels, stride), what, NAMES[kind], meta=True)
    try:
        with torch.no_grad():
            out = block(torch.zeros(tuple(input_shape), device="meta"))
    except Exception:  # noqa: BLE001 - e.g. a missing projection: the structure check says more
        return
    width = out.shape[1] if isinstance(out, torch.Tensor) and out.dim() == 4 else None
    if width is not None and width != expected:
        second = "out_channels" if kind == BASIC else "internal_channels"
        raise CheckFailed(what, f"the block's output has {width} channels instead of expansion x "
                                f"{second} = {EXPANSION[kind]} x {channels} = {expected}.",
                          expected=f"an output of {expected} channels", got=f"{width} channels",
                          hint=("The last 1x1 convolution (conv3) expands to self.expansion * "
                                "internal_channels channels, and so does the projection shortcut."
                                if kind == BOTTLENECK else
                                "Both 3x3 convolutions produce out_channels channels, and so does the "
                                "projection shortcut."))


def _block_variants(ref: nn.Module, kind: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Outputs of known wrong wirings of the reference block (same weights), keyed by a description."""
    relu = F.relu
    short = ref.downsample(x) if ref.downsample is not None else x
    a = ref.bn1(ref.conv1(x))
    if kind == BASIC:
        def main(r1=True, r2=True):
            return ref.bn2(ref.conv2(relu(a) if r1 else a))
        missing = {"the ReLU after the first BatchNorm (bn1)": main(r1=False)}
    else:
        def main(r1=True, r2=True):
            b = ref.bn2(ref.conv2(relu(a) if r1 else a))
            return ref.bn3(ref.conv3(relu(b) if r2 else b))
        missing = {"the ReLU after the first BatchNorm (bn1)": main(r1=False),
                   "the ReLU after the second BatchNorm (bn2)": main(r2=False)}
    f = main()
    variants = {f"misses {where}": relu(m + short) for where, m in missing.items()}
    variants["misses the ReLU after the addition: it returns F(x) + shortcut(x)"] = f + short
    variants["never adds the shortcut: it returns ReLU(F(x))"] = relu(f)
    variants["adds the shortcut after the final ReLU: it returns ReLU(F(x)) + shortcut(x)"] = relu(f) + short
    variants["applies a ReLU to F(x) before the addition as well as after it"] = relu(relu(f) + short)
    if ref.downsample is not None:
        variants["leaves the shortcut's BatchNorm out of the forward pass"] = relu(f + ref.downsample[0](x))
    return variants


def _diagnose(block: nn.Module, reference: nn.Module, kind: str, input_shape: Sequence[int], seed: int,
              what: str) -> None:
    """After a failed comparison: if the block computes a known wrong wiring, say which."""
    device = next(reference.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(input_shape), generator=gen).to(device)   # the comparison's own batch
    try:
        with torch.no_grad():
            out = block.eval()(x)
            variants = _block_variants(reference.eval(), kind, x)
    except Exception:  # noqa: BLE001 - the comparison's own message says what went wrong
        return
    if not isinstance(out, torch.Tensor):
        return
    for description, value in variants.items():
        scale = float(value.abs().max())
        if out.shape == value.shape and float((out - value).abs().max()) <= 1e-5 + 1e-3 * scale:
            raise CheckFailed(
                what, f"with torchvision's weights copied in, your block {description}.",
                expected="ReLU(F(x) + shortcut(x)), where F(x) = "
                         + ("bn2(conv2(ReLU(bn1(conv1(x)))))" if kind == BASIC else
                            "bn3(conv3(ReLU(bn2(conv2(ReLU(bn1(conv1(x))))))))"),
                got=description.split(": ")[-1] if ": " in description else description,
                hint="Walk through your forward(): a ReLU follows every BatchNorm of the main path "
                     "except the last; then the shortcut (x, or its projection with BatchNorm) is added, "
                     "and one ReLU is applied to the sum.") from None


@one_thread
@frees_models
def compare_block(cls: type, kind: str, in_channels: int, channels: int, stride: int,
                  input_shape: Sequence[int], seed: int = 0) -> None:
    """Build the student's block and compare it with torchvision's, structure first, then outputs."""
    name = NAMES[kind]
    what = f"{name}({in_channels}, {channels}, stride={stride})"
    _check_expansion(cls, kind)
    block = _build(cls, (in_channels, channels, stride), what, name, seed=seed)
    reference = on_meta(_trusted_block(kind), in_channels, channels, stride)
    _require_output_width(cls, kind, in_channels, channels, stride, input_shape, what)
    _compare_block_structure(block, reference, kind, what, in_channels, channels, stride)
    try:
        matches_torchvision(block, reference, input_shape, what, seed=seed)
    except CheckFailed as failure:
        if "cannot be copied" not in failure.problem:
            _diagnose(block, reference, kind, input_shape, seed, what)
        raise


def compare_residual_block(cls: type, in_channels: int, out_channels: int, stride: int,
                           input_shape: Sequence[int], seed: int = 0) -> None:
    compare_block(cls, BASIC, in_channels, out_channels, stride, input_shape, seed)


def compare_bottleneck_block(cls: type, in_channels: int, internal_channels: int, stride: int,
                             input_shape: Sequence[int], seed: int = 0) -> None:
    compare_block(cls, BOTTLENECK, in_channels, internal_channels, stride, input_shape, seed)


RESIDUAL_BLOCK_CASES = [
    # in, out, stride, input (N, C, H, W)
    (8, 8, 1, (2, 8, 10, 10)),       # identity shortcut
    (8, 16, 2, (2, 8, 10, 10)),      # projection: stride and channels
    (16, 16, 2, (1, 16, 9, 9)),      # projection for the stride alone, odd size
    (8, 12, 1, (2, 8, 6, 6)),        # projection for the channels alone
]
BOTTLENECK_CASES = [
    # in, internal, stride, input
    (16, 4, 1, (2, 16, 8, 8)),       # identity: 4 x 4 = 16
    (8, 4, 1, (2, 8, 8, 8)),         # projection for the channels (ResNet-50's first block)
    (32, 8, 2, (1, 32, 9, 9)),       # projection for the stride alone (4 x 8 = 32), odd size
    (16, 8, 2, (2, 16, 10, 10)),     # stride and channels
]


@student_check
def check_residual_block(cls: type) -> None:
    for i, (c_in, c_out, stride, shape) in enumerate(RESIDUAL_BLOCK_CASES):
        compare_residual_block(cls, c_in, c_out, stride, shape, seed=i)
    passed("ResidualBlock", f"{len(RESIDUAL_BLOCK_CASES)} blocks (identity and projection shortcuts) "
                            "compute the same as torchvision's BasicBlock")


@student_check
def check_bottleneck_block(cls: type) -> None:
    for i, (c_in, c_mid, stride, shape) in enumerate(BOTTLENECK_CASES):
        compare_bottleneck_block(cls, c_in, c_mid, stride, shape, seed=i)
    passed("BottleneckBlock", f"{len(BOTTLENECK_CASES)} blocks (identity and projection shortcuts) "
                              "compute the same as torchvision's Bottleneck")
