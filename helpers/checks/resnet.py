"""Checks for notebook 04 (ResNet).

The oracles are torchvision's own ``BasicBlock``, ``Bottleneck`` and ``ResNet``
classes, private to this module:

* a block is compared with torchvision's block of the same shape, its
  projection shortcut (``downsample``) built as torchvision's ``ResNet`` builds
  it. The reference is built on the ``meta`` device and takes the student's own
  tensors (:func:`helpers.transplant.share_weights_by_order`), which are then
  given seeded random values, BatchNorm statistics included; both run in eval
  mode on a random batch.
* Before running anything, a block's structure is compared with the
  reference's: no bias in the convolutions, a projection exactly where the
  shape changes, BatchNorm in the shortcut, and the kernel, stride and padding
  of every convolution in the order they are created. Each of these mistakes
  has its own message. When the outputs differ, the check tries a few known
  wrong wirings of the reference (a ReLU missing, no skip, ...) and names the
  one that the student's block computes; otherwise
  :func:`helpers.transplant.first_divergence` names the first layer that differs.
* ``ResNet`` is built with trusted blocks (torchvision's ``BasicBlock`` and
  ``Bottleneck`` behind the exercise's constructor signature), so a wrong block
  costs only the block's points. It must have torchvision's parameter counts,
  its initialisation and, with the same weights, its logits.
* ``ResNet18/34/50`` are called with torchvision's ResNet standing in for the
  student's ``ResNet`` and the trusted blocks for theirs.
* ``CifarResNet`` is compared with a reference built from torchvision's
  ``BasicBlock`` with a parameter-free (option A) shortcut, and, for
  ``residual=False``, the same block without the addition.

Every check refuses classes from the course's ``helpers`` package and models
that are, or contain, torchvision's own blocks or ResNet. The comparisons run on
one CPU thread (:func:`one_thread`): the models are small, and on a machine
shared with other programs a second thread mostly waits for a busy core.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from helpers.inspection import count_parameters
from helpers.transplant import TransplantError, match_by_order, share_weights_by_order

from .core import CheckFailed, call_student, passed, reject_course_code, student_check
from .models import frees_models, matches_torchvision, on_meta, one_thread, require_module, substitute_globals

BASIC, BOTTLENECK = "basic", "bottleneck"
NAMES = {BASIC: "ResidualBlock", BOTTLENECK: "BottleneckBlock"}
EXPANSION = {BASIC: 1, BOTTLENECK: 4}
#: torchvision's parameter counts, from its builders (resnet18, resnet34, resnet50).
TORCHVISION_COUNTS = {"ResNet18": 11_689_512, "ResNet34": 21_797_672, "ResNet50": 25_557_032}
#: The ResNet check's configurations: the three factories' (block, blocks per stage).
_RESNET_CONFIGS = {"ResNet18": (BASIC, (2, 2, 2, 2)), "ResNet34": (BASIC, (3, 4, 6, 3)),
                  "ResNet50": (BOTTLENECK, (3, 4, 6, 3))}
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


def _torchvision_resnet(kind: str, layers: Sequence[int], num_classes: int = 1000) -> nn.Module:
    tv = _tv()
    block = tv.BasicBlock if kind == BASIC else tv.Bottleneck
    return tv.ResNet(block, list(layers), num_classes=num_classes)


class _OptionAShortcut(nn.Module):
    """Option A of the ResNet paper: keep every second pixel, then add zero channels.

    ``pad`` says where the zeros go: ``"after"`` the input's channels (the
    exercise's contract) or on ``"both"`` sides (a common variant, used only to
    recognise it in a wrong answer).
    """

    def __init__(self, stride: int, extra: int, pad: str = "after"):
        super().__init__()
        self.stride, self.extra, self.pad = stride, extra, pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        before = self.extra // 2 if self.pad == "both" else 0
        return F.pad(x, (0, 0, 0, 0, before, self.extra - before))


def _cifar_reference(depth: int, num_classes: int = 10, residual: bool = True,
                     pad: str = "after") -> nn.Module:
    """The paper's CIFAR-10 network from torchvision's BasicBlock (plain: without the addition)."""
    tv = _tv()

    class PlainBlock(tv.BasicBlock):
        def forward(self, x):
            return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))

    class Reference(nn.Module):
        def __init__(self):
            super().__init__()
            n = (depth - 2) // 6
            self.conv1 = tv.conv3x3(3, 16)
            self.bn1 = nn.BatchNorm2d(16)
            self.relu = nn.ReLU(inplace=True)
            blocks, width_in = [], 16
            for width, first_stride in ((16, 1), (32, 2), (64, 2)):
                for i in range(n):
                    stride = first_stride if i == 0 else 1
                    if not residual:
                        blocks.append(PlainBlock(width_in, width, stride))
                    else:
                        shortcut = (_OptionAShortcut(stride, width - width_in, pad)
                                    if _needs_projection(width_in, width, stride) else None)
                        blocks.append(tv.BasicBlock(width_in, width, stride, shortcut))
                    width_in = width
            self.blocks = nn.Sequential(*blocks)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(64, num_classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.avgpool(self.blocks(x))
            return self.fc(torch.flatten(x, 1))

    return Reference()


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


def _build(cls: Any, args: tuple, what: str, name: str, *, seed: int = 0,
           meta: bool = False, **kwargs: Any) -> nn.Module:
    """``cls(*args, **kwargs)``, checked to be the student's own nn.Module; seeded, or on the meta device."""
    reject_course_code(cls, name)
    with torch.random.fork_rng(devices=[]):           # the student's random state is left alone
        torch.manual_seed(seed)
        if meta:
            with torch.device("meta"):
                model = call_student(cls, *args, what=name, **kwargs)
        else:
            model = call_student(cls, *args, what=name, **kwargs)
    model = require_module(model, what)
    _refuse_torchvision(model, what)
    return model


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


# ------------------------------------------------------------------ initialisation
#: Weights per convolution whose mean, spread and shape the initialisation check looks at.
SAMPLE = 20_000


def _check_init(model: nn.Module, what: str, min_weights: int = 1000) -> None:
    """torchvision's initialisation: Kaiming-normal (fan_out, ReLU gain) convolutions, BatchNorm 1 and 0."""
    hint = ("Initialise like torchvision's ResNet: at the end of __init__, loop over self.modules() (the "
            "blocks' layers included) and give every nn.Conv2d nn.init.kaiming_normal_(weight, "
            "mode=\"fan_out\", nonlinearity=\"relu\"), every nn.BatchNorm2d weight 1 and bias 0.")
    for name, conv in _convs(model):
        if conv.weight.numel() < min_weights:
            continue
        w = conv.weight.detach().flatten()[:SAMPLE].double()     # the first weights are a fair sample
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        target = math.sqrt(2.0 / fan_out)
        std = float(w.std())
        if not 0.85 <= std / target <= 1.15 or abs(float(w.mean())) > 0.2 * target:
            raise CheckFailed(what, f"the weights of {name} do not have torchvision's initialisation.",
                              expected=f"mean 0 and standard deviation sqrt(2 / fan_out) = {target:.4f} "
                                       f"(fan_out = out_channels x kernel height x width = {fan_out})",
                              got=f"mean {float(w.mean()):.4f}, standard deviation {std:.4f}", hint=hint)
        kurtosis = float(((w - w.mean()) ** 4).mean() / w.var() ** 2)
        if kurtosis < 2.4:
            raise CheckFailed(what, f"the weights of {name} look uniformly distributed, not normally.",
                              expected="a normal distribution (kurtosis about 3)",
                              got=f"kurtosis {kurtosis:.2f} (a uniform distribution has 1.8)", hint=hint)
    for name, norm in _norms(model):
        if norm.affine and not (bool((norm.weight == 1).all()) and bool((norm.bias == 0).all())):
            raise CheckFailed(what, f"BatchNorm {name} does not start with weight 1 and bias 0.",
                              expected="weight 1, bias 0", got="other values", hint=hint)


# ------------------------------------------------------------------ ResNet
RESNET_LAYOUT = ("conv1", "bn1", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")
RESNET_HINT = ("torchvision's layout: conv1 = Conv2d(3, 64, 7, stride=2, padding=3, bias=False), bn1, ReLU, "
               "maxpool = MaxPool2d(3, stride=2, padding=1), then layer1..layer4 (nn.Sequential of blocks; "
               "widths 64, 128, 256, 512; the first block of layer2..layer4 has stride 2), "
               "avgpool = AdaptiveAvgPool2d((1, 1)), flatten, fc = Linear(512 * block.expansion, "
               "num_classes). A stage's input has the previous stage's width x block.expansion channels.")


def _check_resnet_layout(model: nn.Module, what: str) -> None:
    missing = [n for n in RESNET_LAYOUT if not isinstance(getattr(model, n, None), nn.Module)]
    if missing:
        raise CheckFailed(what, f"the model has no `{missing[0]}` module.",
                          expected="attributes " + ", ".join(RESNET_LAYOUT),
                          got="attributes " + ", ".join(n for n, _ in model.named_children()),
                          hint=f"Assign self.{missing[0]} = ... in __init__: the notebook's later cells "
                               "and torchvision use these names.")
    pool = model.maxpool
    if not (isinstance(pool, nn.MaxPool2d) and _pair(pool.kernel_size) == (3, 3)
            and _pair(pool.stride) == (2, 2) and _pair(pool.padding) == (1, 1)):
        raise CheckFailed(what, "maxpool should be nn.MaxPool2d(kernel_size=3, stride=2, padding=1).",
                          got=repr(pool), hint="The stem halves the size twice: the 7x7 convolution "
                                               "with stride 2, then this max pool.")
    size = getattr(model.avgpool, "output_size", None)
    if not isinstance(model.avgpool, nn.AdaptiveAvgPool2d) or _pair(size) != (1, 1):
        raise CheckFailed(what, "avgpool should be nn.AdaptiveAvgPool2d((1, 1)).", got=repr(model.avgpool),
                          hint="Global average pooling: one number per channel, whatever the input size.")


def _pair(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _count_mismatch(model: nn.Module, reference: nn.Module, what: str, hint: str) -> None:
    """Fail when the parameter counts differ, naming the first tensor that does not line up."""
    got, expected = count_parameters(model), count_parameters(reference)
    if got == expected:
        return
    where = ""
    try:
        match_by_order(reference, model, source_label="torchvision", target_label="yours")
    except TransplantError as err:
        where = f" {err.message}"
    raise CheckFailed(what, f"the number of parameters is wrong.{where}", expected=f"{expected:,}",
                      got=f"{got:,} ({got - expected:+,})", hint=hint)


@one_thread
@frees_models
def compare_resnet(cls: type, kind: str, layers: Sequence[int], num_classes: int,
                   input_shape: Sequence[int] | None, seed: int = 0, init: bool = False) -> None:
    """``cls(trusted block, layers, num_classes=...)`` against torchvision's ResNet.

    Parameters on the meta device first; with ``input_shape`` the model is built for real,
    its initialisation checked (``init``) and its logits compared with torchvision's.
    """
    block = _trusted_block(kind)
    what = f"ResNet({NAMES[kind]}, {list(layers)}, num_classes={num_classes})"
    reference = on_meta(_torchvision_resnet, kind, layers, num_classes)
    model = _build(cls, (block, list(layers)), what, "ResNet", meta=True, num_classes=num_classes)
    _check_resnet_layout(model, what)
    _count_mismatch(model, reference, what, RESNET_HINT)
    if input_shape is None:
        return
    del model
    model = _build(cls, (block, list(layers)), what, "ResNet", seed=seed, num_classes=num_classes)
    if init:
        _check_init(model, what)
    try:
        matches_torchvision(model, reference, input_shape, what, seed=seed)
    except CheckFailed as failure:
        if failure.hint and RESNET_HINT not in failure.hint:
            failure.hint = f"{failure.hint} {RESNET_HINT}"
            failure.args = (failure.message,)
        raise


@student_check
@frees_models
def check_resnet(cls: type) -> None:
    """ResNet with trusted blocks: torchvision's layout, parameter counts, initialisation and logits."""
    for name, (kind, layers) in _RESNET_CONFIGS.items():        # shapes only: no memory, no time
        compare_resnet(cls, kind, layers, 1000, None)
    compare_resnet(cls, BASIC, (2, 2, 2, 2), 1000, (1, 3, 128, 128), seed=0, init=True)
    compare_resnet(cls, BOTTLENECK, (3, 4, 6, 3), 1000, (1, 3, 64, 64), seed=1, init=True)
    counts = " / ".join(f"{TORCHVISION_COUNTS[n]:,}" for n in _RESNET_CONFIGS)
    passed("ResNet", f"built with torchvision's blocks in place of yours, it has torchvision's "
                     f"{counts} parameters for ResNet-18/34/50, its initialisation, and its logits on a "
                     "128x128 image (ResNet-18) and a 64x64 one (ResNet-50)")


# ------------------------------------------------------------------ ResNet18 / 34 / 50
FACTORY_HINT = ("ResNet-18 and ResNet-34 are built from ResidualBlock, ResNet-50 from BottleneckBlock; the "
                "depth counts the stem convolution, the fully connected layer and the 2 (basic) or 3 "
                "(bottleneck) convolutions of every block. Table 1 of He et al. (2016) lists the blocks "
                "per stage.")


def _stand_in_resnet(calls: list, what: str) -> Callable[..., nn.Module]:
    """torchvision's ResNet on the meta device, called the way the exercise's ResNet is; calls are recorded."""
    basic, bottleneck = _trusted_classes()

    def ResNet(block, num_blocks, num_classes=1000):           # noqa: N802 - the exercise's name
        calls.append((block, list(num_blocks), num_classes))
        kind = {basic: BASIC, bottleneck: BOTTLENECK}.get(block)
        if kind is None:
            raise CheckFailed(what, f"it calls ResNet with the block {block!r}.",
                              expected="ResidualBlock or BottleneckBlock, the classes of exercises 1 and 2",
                              hint=FACTORY_HINT)
        return on_meta(_torchvision_resnet, kind, num_blocks, num_classes)
    return ResNet



@one_thread
@frees_models
def compare_resnet_factory(fn: Callable, name: str, num_classes: int = 1000) -> None:
    """``fn(num_classes=...)`` with torchvision's ResNet and trusted blocks standing in; parameters on meta."""
    what = f"{name}(num_classes={num_classes})"
    reject_course_code(fn, name)
    calls: list = []
    basic, bottleneck = _trusted_classes()
    with substitute_globals(fn, ResNet=_stand_in_resnet(calls, what), ResidualBlock=basic,
                            BottleneckBlock=bottleneck):
        with torch.device("meta"):
            model = require_module(call_student(fn, what=name, num_classes=num_classes), what)
    if not calls:
        _refuse_torchvision(model, what)
    out = getattr(getattr(model, "fc", None), "out_features", None)
    if out is not None and out != num_classes:
        raise CheckFailed(what, "num_classes does not reach the fully connected layer.",
                          expected=f"fc with {num_classes} outputs", got=f"{out}",
                          hint="Pass num_classes on to ResNet.")
    import torchvision
    reference = on_meta(getattr(torchvision.models, name.lower()), weights=None, num_classes=num_classes)
    got, expected = count_parameters(model), count_parameters(reference)
    if got != expected:
        built = ""
        if calls:
            block, num_blocks, _ = calls[-1]
            built = f" (it builds ResNet({NAMES[BASIC if block is basic else BOTTLENECK]}, {num_blocks}))"
        raise CheckFailed(what, f"the number of parameters is wrong{built}.", expected=f"{expected:,}",
                          got=f"{got:,} ({got - expected:+,})", hint=FACTORY_HINT)


@student_check
def check_resnet_factories(resnet18: Callable, resnet34: Callable, resnet50: Callable) -> None:
    """Each factory builds torchvision's network: its parameter count, with 1000 and 10 classes."""
    for fn, name in ((resnet18, "ResNet18"), (resnet34, "ResNet34"), (resnet50, "ResNet50")):
        compare_resnet_factory(fn, name)
        compare_resnet_factory(fn, name, num_classes=10)
    counts = ", ".join(f"{TORCHVISION_COUNTS[n]:,}" for n in TORCHVISION_COUNTS)
    passed("ResNet18, ResNet34, ResNet50", f"{counts} parameters, as torchvision's (built with "
                                           "torchvision's ResNet in place of yours)")


# ------------------------------------------------------------------ CifarResNet
CIFAR_HINT = ("The paper's section 4.2: conv3x3(3, 16) -> BN -> ReLU, then three stages of n blocks with 16, "
              "32 and 64 channels (the first block of the second and third stage has stride 2), each block "
              "conv3x3 -> BN -> ReLU -> conv3x3 -> BN, + shortcut, ReLU; then global average pooling and "
              "Linear(64, num_classes). Create the layers in the order they run.")
OPTION_A_HINT = ("Where a block changes the shape, the shortcut has no parameters (option A): keep every "
                 "second pixel, x[:, :, ::2, ::2], then append zero channels after the input's channels "
                 "(torch.cat with zeros, or F.pad on the channel axis), so that channel c of x is added to "
                 "channel c of F(x).")


@one_thread
def compare_cifar_depth_error(cls: type, depth: int) -> None:
    what = f"CifarResNet({depth})"
    try:
        with torch.device("meta"):
            cls(depth)
    except NotImplementedError:
        from .core import NotAttempted
        raise NotAttempted("CifarResNet") from None
    except ValueError as err:
        if not str(err).strip():
            raise CheckFailed(what, "the ValueError has no message.", expected="a message that says "
                              "why, e.g. that depth must be 6n + 2", got="ValueError()",
                              hint="raise ValueError(f\"...{depth}...\") with a sentence a user can act on.") from None
        return
    except Exception as err:  # noqa: BLE001
        raise CheckFailed(what, f"it raised {type(err).__name__}: {err}.", expected="ValueError",
                          hint="Check the depth before building anything and raise ValueError when "
                               "depth - 2 is not a positive multiple of 6.") from None
    raise CheckFailed(what, f"depth {depth} is not 6n + 2 with n >= 1, but no ValueError was raised.",
                      expected="ValueError", got="a model",
                      hint="Check the depth before building anything and raise ValueError when "
                           "depth - 2 is not a positive multiple of 6.")


@one_thread
@frees_models
def compare_cifar_resnet(cls: type, depth: int, residual: bool, num_classes: int,
                         input_shape: Sequence[int], seed: int = 0) -> None:
    """``cls(depth, num_classes=..., residual=...)`` against the reference CIFAR network."""
    what = f"CifarResNet({depth}, num_classes={num_classes}, residual={residual})"
    model = _build(cls, (depth,), what, "CifarResNet", seed=seed, num_classes=num_classes,
                   residual=residual)
    _require_no_bias(model, what)
    convs = len(_convs(model))
    if convs != depth - 1:
        extra = ("; the extra ones are probably 1x1 projection shortcuts, but option A's shortcuts "
                 "have no parameters" if residual and convs > depth - 1 else "")
        raise CheckFailed(what, f"the network has {convs} convolutions{extra}.",
                          expected=f"depth - 1 = {depth - 1}: the stem and 2 per block, 3n blocks",
                          got=f"{convs}", hint=OPTION_A_HINT if extra else CIFAR_HINT)
    reference = on_meta(_cifar_reference, depth, num_classes, residual)
    _count_mismatch(model, reference, what, CIFAR_HINT)
    _check_init(model, what)
    try:
        matches_torchvision(model, reference, input_shape, what, seed=seed)
    except CheckFailed as failure:
        if "cannot be copied" in failure.problem:
            raise
        _diagnose_cifar(model, depth, residual, num_classes, input_shape, seed, what)
        if failure.hint and CIFAR_HINT not in failure.hint:
            failure.hint = f"{failure.hint} {CIFAR_HINT}"
            failure.args = (failure.message,)
        raise


def _diagnose_cifar(model: nn.Module, depth: int, residual: bool, num_classes: int,
                    input_shape: Sequence[int], seed: int, what: str) -> None:
    """Recognise two wrong answers: zeros padded on both sides of x, and the residual flag ignored."""
    device = next(model.parameters()).device
    x = torch.randn(tuple(input_shape), generator=torch.Generator().manual_seed(seed)).to(device)
    candidates = [(residual, "both", OPTION_A_HINT,
                   "the shortcut puts the zero channels on both sides of x, so channel c of x is added "
                   "to another channel of F(x)"),
                  (not residual, "after",
                   "residual=False is the same network without the additions; residual=True adds the "
                   "shortcut in every block.",
                   f"with residual={residual} it computes the network with residual={not residual}")]
    with torch.no_grad():
        out = model.eval()(x)
        for res, pad, hint, problem in candidates:
            variant = on_meta(_cifar_reference, depth, num_classes, res, pad)
            try:
                share_weights_by_order(model, variant)
            except TransplantError:
                continue
            expected = variant.eval()(x)
            if out.shape == expected.shape and \
                    float((out - expected).abs().max()) <= 1e-5 + 1e-3 * float(expected.abs().max()):
                raise CheckFailed(what, f"with the reference's weights copied in, {problem}.",
                                  hint=hint) from None


CIFAR_CASES = [
    # depth, residual, num_classes, input
    (8, True, 10, (2, 3, 32, 32)),
    (8, False, 10, (2, 3, 32, 32)),
    (14, True, 5, (1, 3, 20, 20)),
]


@student_check
def check_cifar_resnet(cls: type) -> None:
    compare_cifar_depth_error(cls, 21)
    for i, (depth, residual, classes, shape) in enumerate(CIFAR_CASES):
        compare_cifar_resnet(cls, depth, residual, classes, shape, seed=i)
    counts = {}
    for residual in (True, False):
        model = _build(cls, (20,), f"CifarResNet(20, residual={residual})", "CifarResNet", meta=True,
                       residual=residual)
        counts[residual] = count_parameters(model)
    expected = count_parameters(on_meta(_cifar_reference, 20))
    for residual, got in counts.items():
        if got != expected:
            raise CheckFailed(f"CifarResNet(20, residual={residual})", "the number of parameters is wrong.",
                              expected=f"{expected:,} (the paper's 0.27 M)", got=f"{got:,}", hint=CIFAR_HINT)
    passed("CifarResNet", f"depth 8 and 14, plain and residual, compute the same as the reference built "
                          f"from torchvision's BasicBlock; ResNet-20 has {expected:,} parameters with or "
                          "without its shortcuts; depth 21 raises ValueError")
