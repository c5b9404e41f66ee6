"""Checks for notebook 06 (design principles): ``ModernBlock``.

``ModernBlock`` is compared with :class:`_ReferenceModernBlock`, the pre-activation
bottleneck with squeeze-and-excitation written out from the exercise's contract. Its
structure is read first (no bias before a BatchNorm, the pre-activation order of the
BatchNorm layers, the squeeze width, a projection exactly where the shape changes, the
stride on the 3x3 convolution); then the reference takes the student's own tensors
(:func:`helpers.transplant.share_weights_by_order`), which get seeded random values,
BatchNorm statistics included, and both run in eval mode on a random batch. When the
outputs differ, the known wrong wirings (a ReLU after the addition, SE on the shortcut
or on the sum, a shortcut taken from the pre-activated input, ...) are computed from the
same weights and the one the student's block matches is named.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .core import CheckFailed, passed, student_check
from .design import (build_student, compare_outputs, convs, describe_conv, fail_with_divergence,
                     matching_variant, norms)
from .models import frees_models, on_meta, one_thread


# ------------------------------------------------------------------ ModernBlock
def squeeze_width(out_channels: int, se_ratio: float) -> int:
    """The contract's squeeze width: ``max(1, int(out_channels * se_ratio))``."""
    return max(1, int(out_channels * se_ratio))


def needs_projection(in_channels: int, out_channels: int, stride: int) -> bool:
    return stride != 1 or in_channels != out_channels


class _ReferenceModernBlock(nn.Module):
    """The exercise's block, layer by layer in the contract's order (private oracle).

    ``se_linear``: the squeeze-and-excitation layers as nn.Linear instead of 1x1 convolutions.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, se_ratio: float = 0.25,
                 se_linear: bool = False):
        super().__init__()
        mid, squeezed = out_channels // 4, squeeze_width(out_channels, se_ratio)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        layer = nn.Linear if se_linear else (lambda a, b: nn.Conv2d(a, b, 1))
        self.se_reduce, self.se_expand = layer(out_channels, squeezed), layer(squeezed, out_channels)
        self.se_linear = se_linear
        self.shortcut = (nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
                         if needs_projection(in_channels, out_channels, stride) else None)

    def branch(self, x: torch.Tensor, relus: tuple[bool, bool, bool] = (True, True, True)) -> torch.Tensor:
        """F(x) before the gate: BN-ReLU-conv1x1, BN-ReLU-conv3x3 (stride), BN-ReLU-conv1x1."""
        h = x
        for use, bn, conv in zip(relus, (self.bn1, self.bn2, self.bn3), (self.conv1, self.conv2, self.conv3)):
            h = bn(h)
            h = conv(F.relu(h) if use else h)
        return h

    def gate(self, h: torch.Tensor, sigmoid: bool = True) -> torch.Tensor:
        """The SE gate of ``h``: (N, C, 1, 1), each in (0, 1)."""
        s = h.mean(dim=(2, 3), keepdim=not self.se_linear)
        s = self.se_expand(F.relu(self.se_reduce(s)))
        s = torch.sigmoid(s) if sigmoid else s
        return s if not self.se_linear else s[:, :, None, None]

    def short(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.shortcut is None else self.shortcut(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.branch(x)
        return h * self.gate(h) + self.short(x)


MODERN_BLOCK_FORWARD = ("s = shortcut(x) (x itself, or the 1x1 projection of x); h = conv1(ReLU(bn1(x))); "
                        "h = conv2(ReLU(bn2(h))); h = conv3(ReLU(bn3(h))); return h * se(h) + s, with nothing "
                        "after the addition")
MODERN_BLOCK_HINT = ("The order of the layers is bn1, conv1, bn2, conv2, bn3, conv3, the two SE layers, and the "
                     "projection last. Forward: " + MODERN_BLOCK_FORWARD + ".")


def _block_variants(ref: _ReferenceModernBlock, x: torch.Tensor) -> dict[str, tuple[str, torch.Tensor]]:
    """Known wrong wirings computed from the reference's (shared) weights: {description: (got, output)}."""
    h = ref.branch(x)
    g, s = ref.gate(h), ref.short(x)
    pre = F.relu(ref.bn1(x))
    variants = {
        "applies a ReLU after the addition; a pre-activation block leaves the sum alone, so that the "
        "identity path from block to block has no non-linearity on it":
            ("ReLU(h * se(h) + shortcut(x))", F.relu(h * g + s)),
        "applies squeeze-and-excitation to the shortcut instead of the residual branch":
            ("h + shortcut(x) * se(shortcut(x))", h + s * ref.gate(s)),
        "applies squeeze-and-excitation to the sum, after the addition":
            ("(h + s) * se(h + s)", (h + s) * ref.gate(h + s)),
        "scales the shortcut by the residual branch's SE gate as well":
            ("(h + shortcut(x)) * se(h)", (h + s) * g),
        "never applies the squeeze-and-excitation gate": ("h + shortcut(x)", h + s),
        "has no sigmoid at the end of the SE gate": ("h * se_without_sigmoid(h) + s", h * ref.gate(h, False) + s),
        "never adds the shortcut": ("h * se(h)", h * g),
    }
    if ref.shortcut is None:
        variants["adds the pre-activated input ReLU(bn1(x)) instead of x itself"] = (
            "h * se(h) + ReLU(bn1(x))", h * g + pre)
    else:
        variants["projects the pre-activated input ReLU(bn1(x)) instead of x itself"] = (
            "h * se(h) + projection(ReLU(bn1(x)))", h * g + ref.shortcut(pre))
    for i in range(3):
        relus = tuple(j != i for j in range(3))
        h_i = ref.branch(x, relus)
        variants[f"misses the ReLU after bn{i + 1}"] = (f"conv{i + 1}(bn{i + 1}(...)) without the ReLU",
                                                        h_i * ref.gate(h_i) + s)
    return variants


def _modern_block_structure(block: nn.Module, what: str, in_channels: int, out_channels: int, stride: int,
                            se_ratio: float) -> bool:
    """Structure first; returns whether the SE layers are nn.Linear."""
    mid, squeezed = out_channels // 4, squeeze_width(out_channels, se_ratio)
    projection = needs_projection(in_channels, out_channels, stride)
    conv_list, bn_list = convs(block), norms(block)
    linears = [(n, m) for n, m in block.named_modules() if isinstance(m, nn.Linear)]
    se_linear = len(linears) == 2
    main = conv_list[:3]
    se = linears if se_linear else conv_list[3:5]
    shortcut = conv_list[3:] if se_linear else conv_list[5:]
    # a bias before a BatchNorm
    for (name, conv), follows in zip(main[:2], ("bn2", "bn3")):
        if conv.bias is not None:
            raise CheckFailed(what, f"the convolution {name} has a bias, but a BatchNorm ({follows}) follows it.",
                              expected="bias=False in conv1, conv2, conv3 and the projection",
                              got=describe_conv(name, conv),
                              hint="BatchNorm subtracts each channel's mean, and with it any bias: the bias "
                                   "is wasted (section 1 measured that its gradient is zero). Pass bias=False.")
    for name, conv in main[2:] + shortcut:
        if conv.bias is not None:
            raise CheckFailed(what, f"the convolution {name} has a bias.",
                              expected="bias=False in conv1, conv2, conv3 and the projection",
                              got=describe_conv(name, conv),
                              hint="The block's output goes into the next block's bn1 (or the network's final "
                                   "BatchNorm), which cancels a bias; the contract's convolutions have none, "
                                   "only the SE layers do.")
    # BatchNorm: the pre-activation order
    sizes = [getattr(m, "num_features", None) for _, m in bn_list]
    if sizes == [mid, mid, out_channels] and sizes != [in_channels, mid, mid]:
        raise CheckFailed(what, "the BatchNorm layers normalise the outputs of the convolutions (post-activation, "
                                "conv -> BN -> ReLU).",
                          expected=f"BatchNorm2d over {in_channels}, {mid}, {mid} channels: each BN-ReLU comes "
                                   "before its convolution",
                          got="BatchNorm2d over " + ", ".join(str(s) for s in sizes) + " channels",
                          hint="In a pre-activation block, bn1 normalises the block's input (in_channels), bn2 "
                               "and bn3 the inputs of conv2 and conv3. " + MODERN_BLOCK_HINT)
    if projection and len(bn_list) == 4 and sizes[:3] == [in_channels, mid, mid]:
        raise CheckFailed(what, "the projection shortcut has a BatchNorm.",
                          expected="a bare 1x1 convolution with the stride", got=f"BatchNorm2d({sizes[3]}) on it",
                          hint="In this block the shortcut is only nn.Conv2d(in_channels, out_channels, 1, "
                               "stride=stride, bias=False): nothing normalises the identity path; the next "
                               "block's bn1 sees the sum.")
    if sizes != [in_channels, mid, mid]:
        raise CheckFailed(what, "the BatchNorm layers are not the ones asked for.",
                          expected=f"three BatchNorm2d, over {in_channels}, {mid} and {mid} channels",
                          got=f"{len(sizes)}: over " + ", ".join(str(s) for s in sizes) + " channels",
                          hint=MODERN_BLOCK_HINT)
    # squeeze-and-excitation
    reduce_shape = lambda m: (m.out_features, m.in_features) if isinstance(m, nn.Linear) else \
        (m.out_channels, m.in_channels)  # noqa: E731
    if len(se) != 2 or reduce_shape(se[0][1])[1] != out_channels or reduce_shape(se[1][1])[0] != out_channels:
        found = ", ".join(f"{n} {reduce_shape(m)[1]} -> {reduce_shape(m)[0]}" for n, m in se) or "nothing"
        raise CheckFailed(what, "the squeeze-and-excitation layers are missing or have the wrong shape.",
                          expected=f"two 1x1 convolutions (or nn.Linear layers) after conv3: {out_channels} -> "
                                   f"{squeezed} and {squeezed} -> {out_channels}",
                          got=found,
                          hint="SE works on F(x), the residual branch's output (out_channels channels): average "
                               "each channel, squeeze to max(1, int(out_channels * se_ratio)) channels, ReLU, "
                               "expand back, sigmoid. Create the SE layers after conv3 and before the projection.")
    got_squeezed = reduce_shape(se[0][1])[0]
    if got_squeezed != squeezed:
        raise CheckFailed(what, f"squeeze-and-excitation squeezes to {got_squeezed} channels.",
                          expected=f"max(1, int(out_channels * se_ratio)) = max(1, int({out_channels} * {se_ratio})) "
                                   f"= {squeezed}", got=str(got_squeezed),
                          hint="The squeeze width is computed from out_channels, the width of what SE scales.")
    for _, m in se:
        if m.bias is None:
            raise CheckFailed(what, "the squeeze-and-excitation layers have no bias.",
                              expected="bias=True (the default) in the two SE layers", got="bias=False",
                              hint="No BatchNorm follows the SE layers, so their biases are not wasted.")
    # the projection
    if projection and not shortcut:
        raise CheckFailed(what, "the block has no projection shortcut, but x cannot be added to F(x) as it is "
                                f"(stride {stride}, {in_channels} channels in, {out_channels} out).",
                          expected=f"nn.Conv2d({in_channels}, {out_channels}, 1, stride={stride}, bias=False), "
                                   "created last", got="no convolution after the SE layers",
                          hint="Project x exactly when stride != 1 or in_channels != out_channels.")
    if not projection and shortcut:
        raise CheckFailed(what, "the block has a projection shortcut where the shortcut should be x itself "
                                f"(stride 1, {in_channels} channels in and out).",
                          expected="an identity shortcut", got=describe_conv(*shortcut[0]),
                          hint="Project x only when stride != 1 or in_channels != out_channels.")
    # the main path and the projection
    reference = on_meta(_ReferenceModernBlock, in_channels, out_channels, stride, se_ratio, se_linear)
    ref_main = [reference.conv1, reference.conv2, reference.conv3]
    for i, ((name, conv), ref) in enumerate(zip(main, ref_main)):
        spec = (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.groups)
        ref_spec = (ref.in_channels, ref.out_channels, ref.kernel_size, ref.stride, ref.padding, ref.groups)
        if spec == ref_spec:
            continue
        if spec[:3] == ref_spec[:3] and spec[3] != ref_spec[3]:
            raise CheckFailed(what, f"the stride is on the wrong convolution: {name} has stride {conv.stride[0]}.",
                              expected=describe_conv(f"conv{i + 1}", ref), got=describe_conv(name, conv),
                              hint="The stride goes on the 3x3 convolution (conv2), which looks at every "
                                   "pixel, and on the projection; the 1x1 convolutions have stride 1.")
        raise CheckFailed(what, f"convolution {name} is not the one asked for.",
                          expected=describe_conv(f"conv{i + 1}", ref), got=describe_conv(name, conv),
                          hint=f"The bottleneck width is out_channels // 4 = {mid}: conv1 reduces {in_channels} "
                               f"-> {mid} (1x1), conv2 is 3x3 with padding 1 and the stride, conv3 expands "
                               f"{mid} -> {out_channels} (1x1). " + MODERN_BLOCK_HINT)
    if shortcut:
        name, conv = shortcut[0]
        ref = reference.shortcut
        if (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) != \
                (ref.in_channels, ref.out_channels, ref.kernel_size, ref.stride):
            raise CheckFailed(what, "the projection shortcut does not produce F(x)'s shape.",
                              expected=describe_conv("shortcut", ref), got=describe_conv(name, conv),
                              hint="The projection takes x to out_channels with the block's stride: when "
                                   "conv2 halves the height and width, so must the shortcut (section 6.2 shows "
                                   "the error a mismatch gives).")
    return se_linear


@one_thread
@frees_models
def compare_modern_block(cls: Any, in_channels: int, out_channels: int, stride: int = 1,
                         se_ratio: float = 0.25, input_shape: Sequence[int] | None = None,
                         seed: int = 0) -> None:
    """Build the student's block, compare its structure, then its outputs, with the reference's."""
    ratio = "" if se_ratio == 0.25 else f", se_ratio={se_ratio}"
    what = f"ModernBlock({in_channels}, {out_channels}, stride={stride}{ratio})"
    kwargs = {} if se_ratio == 0.25 else {"se_ratio": se_ratio}
    block = build_student(cls, (in_channels, out_channels, stride), what, "ModernBlock", seed=seed, **kwargs)
    se_linear = _modern_block_structure(block, what, in_channels, out_channels, stride, se_ratio)
    input_shape = input_shape or (2, in_channels, 8, 8)
    reference = on_meta(_ReferenceModernBlock, in_channels, out_channels, stride, se_ratio, se_linear)
    x, out, expected, agree = compare_outputs(block, reference, input_shape, what, seed=seed)
    if agree:
        return
    with torch.no_grad():
        variants = _block_variants(reference.eval(), x)
    got = matching_variant(out, {d: v for d, (_, v) in variants.items()})
    if got is not None:
        raise CheckFailed(what, f"with the reference's weights copied in, your block {got}.",
                          expected="h * se(h) + shortcut(x)", got=variants[got][0],
                          hint="Walk through your forward(): " + MODERN_BLOCK_FORWARD + ".")
    fail_with_divergence(block, reference, x, out, expected, what, MODERN_BLOCK_HINT)


MODERN_BLOCK_CASES = [
    # in, out, stride, se_ratio, input
    (16, 16, 1, 0.25, (2, 16, 8, 8)),        # identity shortcut
    (8, 32, 2, 0.25, (2, 8, 9, 9)),          # projection: stride and channels, odd size
    (32, 32, 2, 0.25, (1, 32, 8, 8)),        # projection for the stride alone
    (16, 32, 1, 0.5, (2, 16, 6, 6)),         # projection for the channels alone; another ratio
    (4, 4, 1, 0.1, (2, 4, 5, 5)),            # width 1 inside, squeeze width 1
]


@student_check
def check_modern_block(cls: Any) -> None:
    for i, (c_in, c_out, stride, ratio, shape) in enumerate(MODERN_BLOCK_CASES):
        compare_modern_block(cls, c_in, c_out, stride, ratio, shape, seed=i)
    passed("ModernBlock", f"{len(MODERN_BLOCK_CASES)} blocks (identity and projection shortcuts, stride 1 and "
                          "2) have the reference's layers and outputs")
