"""Checks for notebook 07, section 2: the pre-activation block and the grouped bottleneck.

* ``PreActResidualBlock(in_channels, out_channels, stride=1)`` (He et al., "Identity
  Mappings in Deep Residual Networks", ECCV 2016). torchvision has no such block, so the
  oracle is the paper's formula, written here with ``torch.nn.functional`` on the
  student's own tensors (taken in the order they were created, given seeded random
  values): a = ReLU(BN1(x)), y = conv2(ReLU(BN2(conv1(a)))) + shortcut, the shortcut
  being x itself, or a 1x1 convolution of a (no BatchNorm) where the shape changes.
  Before that, the structure: no bias, BatchNorm on the block's input channels first, a
  projection exactly where the shape changes. When the outputs differ, the check names
  the known wrong wiring the block computes (a ReLU after the addition, the projection
  reading x instead of a, ...).
* ``GroupedBottleneck(in_channels, internal_channels, stride=1, groups=1,
  width_per_group=64)`` against torchvision's ``Bottleneck`` with the same ``groups``
  and ``base_width`` (a trusted projection shortcut added as torchvision's ResNet adds
  it), by structure, then by outputs with the weights shared (``models.matches_torchvision``).
  A wrong width of the grouped 3x3 convolution gets its own message.
* ``GroupedResNet`` and its factories: ``resnet_grouped.py``, which uses the trusted
  block defined here.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
import torch
import torch.nn.functional as F
from torch import nn

from helpers.transplant import TransplantError, share_weights_by_order

from .core import CheckFailed, assert_shape, call_student, passed, student_check
from .models import build_student_model, frees_models, matches_torchvision, on_meta, one_thread, random_weights_
from .resnet_blocks import (OWN_LAYERS_HINT, _convs, _describe_conv, _needs_projection, _norms, _projection,
                            _require_no_bias, _tv)

PREACT, GROUPED, GROUPED_RESNET = "PreActResidualBlock", "GroupedBottleneck", "GroupedResNet"
TOLERANCE = dict(rtol=1e-3, atol=1e-5)

PREACT_HINT = ("The pre-activation block: a = ReLU(bn1(x)) with bn1 = BatchNorm2d(in_channels); "
               "F = conv2(ReLU(bn2(conv1(a)))), conv1 3x3 with the stride, conv2 3x3; the shortcut is x "
               "itself, or, where the shape changes, a 1x1 convolution with the stride applied to a (no "
               "BatchNorm); y = F + shortcut, with nothing after the addition. Create bn1, conv1, bn2, conv2, "
               "then the shortcut's convolution.")
WIDTH_HINT = ("The grouped 3x3 convolution is width = int(internal_channels * width_per_group / 64) * groups "
              "channels wide, as in torchvision: width_per_group / 64 scales the width of every stage (2 "
              "for Wide ResNet-50-2), groups multiplies it (32 groups of 4 channels in ResNeXt-50 32x4d's "
              "first stage: 128). conv1 reduces to width, conv2 is Conv2d(width, width, 3, stride, padding=1, "
              "groups=groups), conv3 expands to 4 * internal_channels.")


# ------------------------------------------------------------------ building the student's models
def _refuse_torchvision(model: nn.Module, what: str) -> None:
    """Fail when ``model`` is or contains torchvision's ResNet or Bottleneck/BasicBlock (but the check's own)."""
    tv = _tv()
    for name, module in model.named_modules():
        if isinstance(module, (tv.ResNet, tv.BasicBlock, tv.Bottleneck)) and not isinstance(module, _trusted_grouped()):
            where = f"your model's `{name}` is" if name else "your model is"
            label = next(c.__name__ for c in (tv.ResNet, tv.BasicBlock, tv.Bottleneck) if isinstance(module, c))
            raise CheckFailed(what, f"{where} torchvision's {label}, so the check would compare "
                                    "torchvision with itself.",
                              expected="layers built from nn.Conv2d, nn.BatchNorm2d, nn.ReLU, ...",
                              got=f"{type(module).__module__}.{type(module).__qualname__}", hint=OWN_LAYERS_HINT)



_build = functools.partial(build_student_model, refuse=_refuse_torchvision)


# ------------------------------------------------------------------ pre-activation: the formula (private)
class _PreActFormula(nn.Module):
    """He et al. (2016b), eq. (3)-(4) and Fig. 4(e): full pre-activation; tensors in the exercise's order."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.bn1_weight, self.bn1_bias = nn.Parameter(torch.empty(in_channels)), nn.Parameter(torch.empty(in_channels))
        self.conv1 = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        self.bn2_weight, self.bn2_bias = nn.Parameter(torch.empty(out_channels)), nn.Parameter(torch.empty(out_channels))
        self.conv2 = nn.Parameter(torch.empty(out_channels, out_channels, 3, 3))
        self.projection = (nn.Parameter(torch.empty(out_channels, in_channels, 1, 1))
                           if _needs_projection(in_channels, out_channels, stride) else None)
        for i, n in ((1, in_channels), (2, out_channels)):
            self.register_buffer(f"bn{i}_mean", torch.empty(n))
            self.register_buffer(f"bn{i}_var", torch.empty(n))
            self.register_buffer(f"bn{i}_count", torch.empty((), dtype=torch.long))

    def parts(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The pieces the variants below recombine (eval-mode BatchNorm)."""
        def bn(i: int, t: torch.Tensor) -> torch.Tensor:
            return F.batch_norm(t, getattr(self, f"bn{i}_mean"), getattr(self, f"bn{i}_var"),
                                getattr(self, f"bn{i}_weight"), getattr(self, f"bn{i}_bias"), False, 0.0, 1e-5)
        pre = bn(1, x)
        a = F.relu(pre)
        h = F.conv2d(a, self.conv1, stride=self.stride, padding=1)
        residual = F.conv2d(F.relu(bn(2, h)), self.conv2, padding=1)
        parts = dict(x=x, pre=pre, a=a, h=h, residual=residual,
                     residual_no_relu2=F.conv2d(bn(2, h), self.conv2, padding=1),
                     residual_no_relu1=F.conv2d(F.relu(bn(2, F.conv2d(pre, self.conv1, stride=self.stride,
                                                                      padding=1))), self.conv2, padding=1))
        if self.projection is not None:
            parts["shortcut"] = F.conv2d(a, self.projection, stride=self.stride)
            parts["shortcut_from_x"] = F.conv2d(x, self.projection, stride=self.stride)
        else:
            parts["shortcut"] = x
        return parts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.parts(x)
        return parts["residual"] + parts["shortcut"]


def _preact_variants(reference: _PreActFormula, x: torch.Tensor) -> dict[str, torch.Tensor]:
    p = reference.parts(x)
    y = p["residual"] + p["shortcut"]
    variants = {
        "applies a ReLU after the addition (the original, post-activation block)": F.relu(y),
        "never adds the shortcut": p["residual"],
        "misses the ReLU after bn2": p["residual_no_relu2"] + p["shortcut"],
        "misses the ReLU after bn1 (conv1 reads bn1(x))": p["residual_no_relu1"] + p["shortcut"],
    }
    if "shortcut_from_x" in p:
        variants["applies the projection shortcut to x instead of the pre-activated a = ReLU(bn1(x))"] = (
            p["residual"] + p["shortcut_from_x"])
    return variants


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    scale = float(b.abs().max())
    return a.shape == b.shape and float((a - b).abs().max()) <= TOLERANCE["atol"] + TOLERANCE["rtol"] * scale


def _preact_structure(block: nn.Module, what: str, in_channels: int, out_channels: int, stride: int) -> None:
    _require_no_bias(block, what)
    projection = _needs_projection(in_channels, out_channels, stride)
    convs, norms = _convs(block), _norms(block)
    want = [(in_channels, out_channels, 3, stride, 1), (out_channels, out_channels, 3, 1, 1)]
    if projection:
        want.append((in_channels, out_channels, 1, stride, 0))
    specs = [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for _, c in convs]
    described = "; ".join(_describe_conv(n, c) for n, c in convs)
    if projection and len(convs) == 2:
        raise CheckFailed(what, "the block has no projection shortcut, but x cannot be added to F(x) as it is.",
                          expected="a 1x1 convolution with the stride in the shortcut", got=described,
                          hint=PREACT_HINT)
    if not projection and len(convs) == 3:
        raise CheckFailed(what, "the block projects its shortcut although the shape does not change.",
                          expected="an identity shortcut (stride 1, same channels)", got=described,
                          hint="Project only when the stride is not 1 or the channel count changes.")
    if len(norms) != 2:
        extra = " The pre-activation shortcut has no BatchNorm: the next block's bn1 normalises the sum." \
            if projection and len(norms) == 3 else ""
        raise CheckFailed(what, f"the block has {len(norms)} BatchNorm layers.{extra}",
                          expected="2: bn1 on the block's input (in_channels), bn2 between the convolutions",
                          got=", ".join(f"{n}: BatchNorm2d({m.num_features})" for n, m in norms) or "none",
                          hint=PREACT_HINT)
    first = norms[0][1].num_features
    if first != in_channels:
        raise CheckFailed(what, "the first BatchNorm normalises the output of a convolution: the block is "
                                "conv -> BN -> ReLU, the original order.",
                          expected=f"bn1 = BatchNorm2d({in_channels}) on the block's input, before conv1",
                          got=f"BatchNorm2d({first}) first", hint=PREACT_HINT)
    if specs != want:
        raise CheckFailed(what, "the convolutions are not the block's, in the order they run.",
                          expected="; ".join(f"Conv2d({i}, {o}, kernel_size={k}x{k}, stride={s}, padding={p})"
                                             for i, o, k, s, p in want),
                          got=described, hint=PREACT_HINT)


@one_thread
@frees_models
def compare_preact_block(cls: type, in_channels: int, out_channels: int, stride: int,
                         input_shape: Sequence[int], seed: int = 0) -> None:
    from helpers.device import get_device
    what = f"{PREACT}({in_channels}, {out_channels}, stride={stride})"
    block = _build(cls, (in_channels, out_channels, stride), what, PREACT, seed=seed)
    _preact_structure(block, what, in_channels, out_channels, stride)
    device = get_device()
    block.to(device)
    reference = on_meta(_PreActFormula, in_channels, out_channels, stride)
    try:
        share_weights_by_order(block, reference, source_label="yours", target_label="the formula")
    except TransplantError as err:
        raise CheckFailed(what, "your tensors do not line up, in the order they were created, with the "
                                "block's: bn1, conv1, bn2, conv2, then the shortcut's convolution.",
                          got=err.message, hint=PREACT_HINT) from None
    random_weights_(block, seed)
    x = torch.randn(tuple(input_shape), generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.no_grad():
        out = call_student(block.eval(), x, what=what)
        expected = reference(x)
        if not isinstance(out, torch.Tensor):
            raise CheckFailed(what, "forward() does not return a tensor.", got=type(out).__name__,
                              hint="Return F(x) + shortcut.")
        assert_shape(tuple(out.shape), tuple(expected.shape), what,
                     hint="conv1 has the stride and padding 1, conv2 padding 1; the shortcut's 1x1 "
                          "convolution has the same stride.")
        if _close(out, expected):
            return
        for description, value in _preact_variants(reference, x).items():
            if _close(out, value):
                raise CheckFailed(what, f"with random weights, in eval mode, your block {description}.",
                                  expected="y = conv2(ReLU(bn2(conv1(a)))) + shortcut, a = ReLU(bn1(x)), "
                                           "nothing after the addition",
                                  got=description.split(" (")[0], hint=PREACT_HINT)
    diff = float((out - expected).abs().max())
    raise CheckFailed(what, "with random weights, in eval mode, your outputs differ from the pre-activation "
                            f"formula's (max |difference| {diff:.3g}).", hint=PREACT_HINT)


PREACT_CASES = [
    # in, out, stride, input
    (8, 8, 1, (2, 8, 8, 8)),         # identity shortcut
    (8, 16, 2, (2, 8, 10, 10)),      # projection: stride and channels
    (12, 12, 2, (1, 12, 9, 9)),      # projection for the stride alone, odd size
    (8, 12, 1, (2, 8, 6, 6)),        # projection for the channels alone
]


@student_check
def check_preact_residual_block(cls: type) -> None:
    for i, (c_in, c_out, stride, shape) in enumerate(PREACT_CASES):
        compare_preact_block(cls, c_in, c_out, stride, shape, seed=i)
    passed(PREACT, f"{len(PREACT_CASES)} blocks (identity and projection shortcuts) compute "
                   "conv2(ReLU(bn2(conv1(ReLU(bn1(x)))))) + shortcut, with nothing after the addition")


# ------------------------------------------------------------------ grouped bottleneck
def _width(internal: int, groups: int, width_per_group: int) -> int:
    return int(internal * (width_per_group / 64.0)) * groups


def _trusted_grouped() -> type:
    """torchvision's Bottleneck behind the exercise's constructor (built once, then cached)."""
    global _TRUSTED_GROUPED
    if _TRUSTED_GROUPED is None:
        tv = _tv()

        class TrustedGroupedBottleneck(tv.Bottleneck):
            expansion = 4

            def __init__(self, in_channels: int, internal_channels: int, stride: int = 1, groups: int = 1,
                         width_per_group: int = 64):
                out = internal_channels * self.expansion
                shortcut = _projection(in_channels, out, stride) if _needs_projection(in_channels, out, stride) else None
                super().__init__(in_channels, internal_channels, stride, shortcut, groups=groups,
                                 base_width=width_per_group)

        _TRUSTED_GROUPED = TrustedGroupedBottleneck
    return _TRUSTED_GROUPED


_TRUSTED_GROUPED: type | None = None


def _grouped_what(c_in: int, internal: int, stride: int, groups: int, wpg: int) -> str:
    return f"{GROUPED}({c_in}, {internal}, stride={stride}, groups={groups}, width_per_group={wpg})"


def _grouped_structure(block: nn.Module, what: str, c_in: int, internal: int, stride: int, groups: int,
                       wpg: int) -> None:
    _require_no_bias(block, what)
    convs = _convs(block)
    width = _width(internal, groups, wpg)
    out = 4 * internal
    projection = _needs_projection(c_in, out, stride)
    if len(convs) != 3 + projection:
        raise CheckFailed(what, f"the block has {len(convs)} convolutions.",
                          expected=f"{3 + projection}: 1x1, grouped 3x3, 1x1"
                                   + (", and the shortcut's 1x1 projection" if projection else ""),
                          got="; ".join(_describe_conv(n, c) for n, c in convs), hint=WIDTH_HINT)
    name, conv2 = convs[1]
    if conv2.kernel_size[0] != 3:
        raise CheckFailed(what, "the second convolution should be the grouped 3x3.",
                          got=_describe_conv(name, conv2), hint=WIDTH_HINT)
    got_width, got_groups = conv2.in_channels, conv2.groups
    if got_width != width:
        candidates = {internal * groups: "internal_channels x groups: width_per_group / 64 is missing",
                      wpg * groups: "width_per_group x groups: the scaling by internal_channels / 64 is "
                                    "missing (right only where internal_channels is 64)",
                      int(internal * wpg / 64): "internal_channels x width_per_group / 64: the factor "
                                                "groups is missing",
                      internal: "internal_channels: groups and width_per_group change nothing"}
        why = candidates.get(got_width)
        raise CheckFailed(what, "the grouped 3x3 convolution has the wrong width"
                                + (f": {got_width} = {why}." if why else "."),
                          expected=f"width = int({internal} x {wpg} / 64) x {groups} = {width} channels",
                          got=f"{got_width} channels ({_describe_conv(name, conv2)}, groups={got_groups})",
                          hint=WIDTH_HINT)
    if got_groups != groups:
        raise CheckFailed(what, f"the 3x3 convolution has groups={got_groups}.",
                          expected=f"Conv2d({width}, {width}, 3, stride={stride}, padding=1, groups={groups})",
                          got=f"groups={got_groups}",
                          hint="Pass groups=groups to the 3x3 convolution: each group of width / groups "
                               "channels is convolved on its own, which divides its weights by groups.")
    for name, conv in convs:
        if conv.groups != 1 and conv is not conv2:
            raise CheckFailed(what, f"{name} is grouped; only the 3x3 convolution is.", got=f"groups={conv.groups}",
                              hint=WIDTH_HINT)


@one_thread
@frees_models
def compare_grouped_bottleneck(cls: type, c_in: int, internal: int, stride: int, groups: int, wpg: int,
                               input_shape: Sequence[int], seed: int = 0) -> None:
    what = _grouped_what(c_in, internal, stride, groups, wpg)
    expansion = getattr(cls, "expansion", None) if isinstance(cls, type) else 4
    if expansion != 4:
        raise CheckFailed(GROUPED, "the class attribute `expansion` is wrong.", expected="expansion = 4",
                          got="no class attribute `expansion`" if expansion is None else f"expansion = {expansion!r}",
                          hint="The block's output has 4 x internal_channels channels; GroupedResNet reads "
                               "expansion to know a stage's width.")
    block = _build(cls, (c_in, internal, stride), what, GROUPED, seed=seed, groups=groups, width_per_group=wpg)
    _grouped_structure(block, what, c_in, internal, stride, groups, wpg)
    reference = on_meta(_trusted_grouped(), c_in, internal, stride, groups, wpg)
    matches_torchvision(block, reference, input_shape, what, seed=seed)


GROUPED_CASES = [
    # in, internal, stride, groups, width_per_group, input
    (16, 4, 1, 1, 64, (2, 16, 8, 8)),        # the plain bottleneck: width = internal
    (32, 16, 2, 4, 8, (2, 32, 9, 9)),        # ResNeXt-like: 4 groups of 2 channels, projection
    (32, 8, 1, 1, 128, (2, 32, 6, 6)),       # wide: width 2 x 8 = 16, identity shortcut
    (16, 32, 2, 8, 8, (1, 16, 8, 8)),        # width 4 x 8 = 32, stride and channels
]


@student_check
def check_grouped_bottleneck(cls: type) -> None:
    for i, (c_in, internal, stride, groups, wpg, shape) in enumerate(GROUPED_CASES):
        compare_grouped_bottleneck(cls, c_in, internal, stride, groups, wpg, shape, seed=i)
    passed(GROUPED, f"{len(GROUPED_CASES)} blocks (plain, grouped and wide) compute the same as torchvision's "
                    "Bottleneck with the same groups and base_width")


__all__ = ["check_preact_residual_block", "check_grouped_bottleneck", "compare_preact_block",
           "compare_grouped_bottleneck"]
