"""Checks for notebook 05 (EfficientNet): the MBConv block, with stochastic depth.

The oracle is torchvision's ``MBConv`` (``torchvision.models.efficientnet``),
private to this module. torchvision rounds a block's expanded width to a
multiple of 8 and always squeezes to ``input_channels // 4``; the reference
here is the same class with the exercise's exact widths (``in_channels *
expand_ratio`` channels, ``max(1, int(in_channels * se_ratio))`` in the
squeeze), which equal torchvision's wherever EfficientNet uses them.

* Structure first: the expansion exactly when ``expand_ratio != 1``, the
  depthwise convolution (groups, kernel, stride, padding), squeeze-and-excitation
  on the expanded channels with the squeeze width from the block's *input*
  channels, the projection, BatchNorm after every convolution but SE's. Each
  typical mistake has its own message, and a block that adds its input where
  the stride or the channel count forbids it is named as such.
* Outputs in eval mode with torchvision's weights shared in, for blocks with and
  without a residual connection and with ``stochastic_depth_prob > 0`` (which
  must change nothing in eval mode). When they differ, known wrong wirings of
  the reference (an activation after the projection, SE before the depthwise
  convolution, ReLU for SiLU, no residual, ...) are tried and named.
* Stochastic depth in training mode is checked in ``efficientnet_stochastic_depth.py``.

So that this exercise is graded on its own, the student's ``MBConvBlock`` is
built with a trusted squeeze-and-excitation (torchvision's, behind the signature
of exercise 2) in place of theirs. :func:`trusted_mbconv_class` gives the
EfficientNet check a trusted block behind the signature of exercise 3.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .core import CheckFailed, passed, student_check
from .efficientnet_blocks import (build, close, comparison_input, compare, conv_spec, convs, describe_conv,
                                  describe_convs, diagnose_variants, norms, reference_convs)
from .models import frees_models, on_meta, one_thread, substitute_globals

MBCONV_HINT = ("MBConv: (only when expand_ratio != 1) nn.Conv2d(in_channels, expanded, 1, bias=False) -> BatchNorm "
               "-> SiLU; nn.Conv2d(expanded, expanded, kernel_size, stride=stride, padding=kernel_size // 2, "
               "groups=expanded, bias=False) -> BatchNorm -> SiLU; SqueezeExcitation(expanded, max(1, "
               "int(in_channels * se_ratio))); nn.Conv2d(expanded, out_channels, 1, bias=False) -> BatchNorm, with "
               "no activation; + x only when stride == 1 and in_channels == out_channels. Create the layers in "
               "the order they run.")
EXPECTED_FORWARD = ("BN(project(SE(SiLU(BN(depthwise(SiLU(BN(expand(x))))))))), + x when stride is 1 and the "
                    "channel counts match")


# ------------------------------------------------------------------ oracles (private)
def _tv():
    import torchvision.models.efficientnet as tv_efficientnet
    return tv_efficientnet


_CACHE: dict[str, Any] = {}


def _exact_config(expand_ratio: float, kernel: int, stride: int, in_channels: int, out_channels: int) -> Any:
    """torchvision's block configuration with the exercise's exact widths (no rounding to multiples of 8)."""
    if "config" not in _CACHE:
        class ExactConfig(_tv()._MBConvConfig):
            @staticmethod
            def adjust_channels(channels: int, width_mult: float, min_value: int | None = None) -> int:
                return int(channels * width_mult)
        _CACHE["config"] = ExactConfig
    return _CACHE["config"](expand_ratio, kernel, stride, in_channels, out_channels, 1, _tv().MBConv)


def squeezed_width(in_channels: int, se_ratio: float) -> int:
    return max(1, int(in_channels * se_ratio))


def _se_layer(squeezed: int) -> Callable[..., nn.Module]:
    """What MBConv calls to build its SE, squeezing to ``squeezed`` channels whatever it asks for."""
    from torchvision.ops import SqueezeExcitation

    def make(channels: int, _torchvision_squeeze: int, activation: Callable[..., nn.Module]) -> nn.Module:
        return SqueezeExcitation(channels, squeezed, activation=activation)
    return make


def _mbconv_reference(in_channels: int, out_channels: int, expand_ratio: float, kernel_size: int, stride: int,
                      se_ratio: float = 0.25, stochastic_depth_prob: float = 0.0) -> nn.Module:
    cnf = _exact_config(expand_ratio, kernel_size, stride, in_channels, out_channels)
    return _tv().MBConv(cnf, stochastic_depth_prob, nn.BatchNorm2d,
                        se_layer=_se_layer(squeezed_width(in_channels, se_ratio)))


def trusted_se_class() -> type:
    """torchvision's SqueezeExcitation with SiLU, built as ``SqueezeExcitation(channels, squeezed_channels)``."""
    if "se" not in _CACHE:
        from torchvision.ops import SqueezeExcitation

        class TrustedSqueezeExcitation(SqueezeExcitation):
            """torchvision's SqueezeExcitation with SiLU, behind the signature of exercise 2."""

            def __init__(self, channels: int, squeezed_channels: int):
                super().__init__(channels, squeezed_channels, activation=nn.SiLU)
        _CACHE["se"] = TrustedSqueezeExcitation
    return _CACHE["se"]


def trusted_mbconv_class(calls: list | None = None) -> type:
    """torchvision's MBConv behind the exercise's constructor; each call's arguments are appended to ``calls``."""
    base = _tv().MBConv

    class TrustedMBConvBlock(base):
        """torchvision's MBConv, built as ``MBConvBlock(in_channels, out_channels, expand_ratio, ...)``."""

        def __init__(self, in_channels: int, out_channels: int, expand_ratio: float, kernel_size: int,
                     stride: int, se_ratio: float = 0.25, stochastic_depth_prob: float = 0.0):
            if calls is not None:
                calls.append((in_channels, out_channels, expand_ratio, kernel_size, stride, se_ratio,
                              stochastic_depth_prob))
            cnf = _exact_config(expand_ratio, kernel_size, stride, in_channels, out_channels)
            super().__init__(cnf, stochastic_depth_prob, nn.BatchNorm2d,
                             se_layer=_se_layer(squeezed_width(in_channels, se_ratio)))
    return TrustedMBConvBlock


# ------------------------------------------------------------------ structure
def _use_residual(in_channels: int, out_channels: int, stride: int) -> bool:
    return stride == 1 and in_channels == out_channels


def _se_pair(pairs: Sequence[tuple[str, nn.Conv2d]]) -> int | None:
    """Index of the first of two consecutive 1x1 convolutions that squeeze and expand back (a -> b -> a)."""
    for i in range(len(pairs) - 1):
        a, b = pairs[i][1], pairs[i + 1][1]
        if tuple(a.kernel_size) == tuple(b.kernel_size) == (1, 1) and a.in_channels == b.out_channels \
                and a.out_channels == b.in_channels and a.out_channels <= a.in_channels:
            return i
    return None


def _mbconv_structure(block: nn.Module, reference: nn.Module, what: str, in_channels: int, out_channels: int,
                      expand_ratio: float, kernel_size: int, stride: int, se_ratio: float) -> None:
    ref = convs(reference)
    ref = reference_convs(reference, (("expansion",) if len(ref) == 5 else ()) +
                          ("depthwise", "SE fc1", "SE fc2", "projection"))
    mine = convs(block)
    expanded = int(in_channels * expand_ratio)
    squeezed = squeezed_width(in_channels, se_ratio)
    expands = expand_ratio != 1
    if not expands and len(mine) == len(ref) + 1 and tuple(mine[0][1].kernel_size) == (1, 1):
        raise CheckFailed(what, "the block has an expansion convolution, but expand_ratio is 1.",
                          expected=describe_convs(ref), got=describe_convs(mine),
                          hint="With expand_ratio == 1 there is nothing to expand: the block starts with the "
                               "depthwise convolution (EfficientNet's first stage is such a block).")
    if expands and len(mine) == len(ref) - 1:
        raise CheckFailed(what, f"the block has no expansion convolution (expand_ratio is {expand_ratio}).",
                          expected=describe_convs(ref), got=describe_convs(mine),
                          hint=f"When expand_ratio != 1, a 1x1 convolution first widens the input to "
                               f"in_channels * expand_ratio = {expanded} channels, followed by BatchNorm and SiLU.")
    se = _se_pair(mine)
    if se is None:
        raise CheckFailed(what, "no squeeze-and-excitation found: two 1x1 convolutions that squeeze the channels "
                                "and expand them back.",
                          expected=describe_convs(ref), got=describe_convs(mine),
                          hint=f"Put SqueezeExcitation({expanded}, {squeezed}) (exercise 2) between the depthwise "
                               "convolution and the projection.")
    seen, width = mine[se][1].in_channels, mine[se][1].out_channels
    if seen != expanded:
        if seen == out_channels:
            problem = (f"squeeze-and-excitation works on the projection's {out_channels} output channels: it sits "
                       "after the projection")
        elif seen == in_channels:
            problem = f"squeeze-and-excitation works on the block's {in_channels} input channels, before the expansion"
        else:
            problem = f"squeeze-and-excitation works on {seen} channels"
        raise CheckFailed(what, f"{problem}.", expected=f"SqueezeExcitation({expanded}, {squeezed}) on the "
                                                        f"{expanded} expanded channels, after the depthwise convolution",
                          got=describe_convs(mine[se:se + 2]),
                          hint="SE reweights the channels of the depthwise convolution's output, the expanded "
                               "ones, just before the projection narrows them.")
    if width != squeezed:
        if width == squeezed_width(expanded, se_ratio):
            problem = (f"the squeeze width is computed from the expanded channels: int({expanded} * {se_ratio}) "
                       f"= {width}")
            hint = ("torchvision (and the exercise) squeeze to max(1, int(in_channels * se_ratio)) channels: from "
                    "the block's input channels, not the expanded ones, so SE stays small in wide blocks.")
        else:
            problem = f"squeeze-and-excitation squeezes to {width} channels"
            hint = "Squeeze to max(1, int(in_channels * se_ratio)) channels."
        raise CheckFailed(what, f"{problem}.", expected=f"max(1, int({in_channels} * {se_ratio})) = {squeezed}",
                          got=f"{width}", hint=hint)
    if len(mine) != len(ref):
        raise CheckFailed(what, f"the block has {len(mine)} convolutions instead of {len(ref)}.",
                          expected=describe_convs(ref), got=describe_convs(mine), hint=MBCONV_HINT)
    se_names = {mine[se][0], mine[se + 1][0]}
    biased = [n for n, m in mine if m.bias is not None and n not in se_names]
    if biased:
        raise CheckFailed(what, f"the convolution {biased[0]} has a bias.",
                          expected="bias=False for every convolution followed by BatchNorm (all but SE's two)",
                          got=f"a bias in {', '.join(biased)}",
                          hint="BatchNorm's shift makes a bias before it useless: create these convolutions with "
                               "bias=False, as torchvision does.")
    if any(mine[i][1].bias is None for i in (se, se + 1)):
        raise CheckFailed(what, "a 1x1 convolution of squeeze-and-excitation has no bias.",
                          expected="bias=True (nn.Conv2d's default) in SE's two convolutions",
                          got=describe_convs(mine[se:se + 2]),
                          hint="No BatchNorm follows SE's convolutions, so they keep their bias, as in torchvision.")
    k = (kernel_size, kernel_size)
    spatial = [(n, m) for n, m in mine if tuple(m.kernel_size) == k]
    if spatial and kernel_size != 1:
        name, dw = spatial[0]
        if dw.groups != expanded and dw.out_channels == expanded:
            raise CheckFailed(what, f"{name} is not a depthwise convolution: each of its filters sees "
                                    f"{dw.in_channels // dw.groups} channels, not one.",
                              expected=f"groups={expanded}: one {kernel_size}x{kernel_size} filter per channel, "
                                       f"weight of shape ({expanded}, 1, {kernel_size}, {kernel_size})",
                              got=f"groups={dw.groups}, weight of shape {tuple(dw.weight.shape)}",
                              hint="Pass groups=expanded (the number of channels it works on) to the k x k "
                                   "convolution.")
        if stride != 1 and tuple(dw.stride) == (1, 1) and any(tuple(m.stride) != (1, 1) for _, m in mine):
            strided = next(n for n, m in mine if tuple(m.stride) != (1, 1))
            raise CheckFailed(what, f"the stride is on {strided}, not on the depthwise convolution.",
                              expected=describe_convs(ref), got=describe_convs(mine),
                              hint="The stride goes on the depthwise k x k convolution; every 1x1 convolution has "
                                   "stride 1.")
    if len(norms(block)) != len(ref) - 2:
        raise CheckFailed(what, "every convolution but squeeze-and-excitation's should be followed by its own "
                                "BatchNorm2d.",
                          expected=f"{len(ref) - 2} BatchNorm2d layers", got=f"{len(norms(block))}", hint=MBCONV_HINT)
    specs, ref_specs = [conv_spec(m) for _, m in mine], [conv_spec(m) for _, m in ref]
    if sorted(specs) == sorted(ref_specs) and specs != ref_specs:
        raise CheckFailed(what, "your convolutions are right, but they are created in another order than the one "
                                "they run in.", expected=describe_convs(ref), got=describe_convs(mine),
                          hint="The check pairs your layers with torchvision's in the order they are created: "
                               "expansion, depthwise, SE's two, projection.")
    for (name, conv), (ref_name, ref_conv) in zip(mine, ref):
        spec, ref_spec = conv_spec(conv), conv_spec(ref_conv)
        if spec == ref_spec:
            continue
        if spec[:4] == ref_spec[:4] and spec[4] != ref_spec[4]:
            raise CheckFailed(what, f"the padding of {name} is wrong.", expected=describe_conv(ref_name, ref_conv),
                              got=describe_conv(name, conv),
                              hint="padding=kernel_size // 2 for the depthwise convolution; 1x1 convolutions take "
                                   "no padding.")
        raise CheckFailed(what, f"the convolution {name} has the wrong shape.",
                          expected=describe_conv(ref_name, ref_conv), got=describe_conv(name, conv), hint=MBCONV_HINT)


def _require_runs(cls: type, args: tuple, kwargs: dict, input_shape: Sequence[int], what: str,
                  in_channels: int, out_channels: int, stride: int, seed: int) -> None:
    """Run the block on the meta device (shapes only): a residual where the shapes differ fails here."""
    expected_shape = (input_shape[0], out_channels, (input_shape[2] - 1) // stride + 1,
                      (input_shape[3] - 1) // stride + 1)
    with substitute_globals(cls, SqueezeExcitation=trusted_se_class()):
        block = build(cls, args, what, "MBConvBlock", meta=True, seed=seed, trusted=(trusted_se_class(),), **kwargs)
    try:
        with torch.no_grad():
            out = block.eval()(torch.zeros(tuple(input_shape), device="meta"))
    except NotImplementedError:
        from .core import NotAttempted
        raise NotAttempted("MBConvBlock") from None
    except Exception as exc:  # noqa: BLE001
        if not _use_residual(in_channels, out_channels, stride) and any(
                words in str(exc) for words in ("size of tensor", "broadcast")):
            why = f"stride={stride}" if stride != 1 else f"{in_channels} channels in, {out_channels} out"
            raise CheckFailed(what, f"the block adds its input to the output, but here the shapes differ ({why}).",
                              expected=f"no residual connection: the output has shape {expected_shape}",
                              got=f"x of shape {tuple(input_shape)} added to F(x) of shape {expected_shape}: "
                                  f"{type(exc).__name__}",
                              hint="Use the residual connection (and stochastic depth) only when stride == 1 and "
                                   "in_channels == out_channels.") from None
        return                              # the comparison reports it, with the same error
    if isinstance(out, torch.Tensor) and tuple(out.shape) != expected_shape:
        raise CheckFailed(what, "the output has the wrong shape.", expected=expected_shape, got=tuple(out.shape),
                          hint=MBCONV_HINT)


# ------------------------------------------------------------------ wrong wirings
def _mbconv_variants(reference: nn.Module) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    layers = list(reference.block)
    expand = layers[0] if len(layers) == 4 else None
    dw, se, proj = layers[-3:]
    residual = reference.use_res_connect

    def cna(layer: nn.Sequential, x: torch.Tensor, act: Callable | None) -> torch.Tensor:
        x = layer[1](layer[0](x))
        return act(x) if act is not None else x

    def apply_se(x: torch.Tensor, act: Callable) -> torch.Tensor:
        return x * torch.sigmoid(se.fc2(act(se.fc1(F.adaptive_avg_pool2d(x, 1)))))

    def forward(x, act=F.silu, se_act=F.silu, se_at="after", proj_act=None, add=residual, after_add=None):
        h = cna(expand, x, act) if expand is not None else x
        if se_at == "before":
            h = apply_se(h, se_act)
        h = cna(dw, h, act)
        if se_at == "after":
            h = apply_se(h, se_act)
        h = cna(proj, h, proj_act)
        if add:
            h = h + x
        return after_add(h) if after_add is not None else h

    def variants(x: torch.Tensor) -> dict[str, torch.Tensor]:
        found = {
            "applies an activation after the projection's BatchNorm (the projection must be linear): "
            "SiLU(BN(project(...)))": forward(x, proj_act=F.silu),
            "applies a ReLU after the projection's BatchNorm (the projection must be linear): "
            "ReLU(BN(project(...)))": forward(x, proj_act=F.relu),
            "applies squeeze-and-excitation before the depthwise convolution: project(depthwise(SE(expand(x))))":
                forward(x, se_at="before"),
            "never applies squeeze-and-excitation in forward(): project(depthwise(expand(x)))":
                forward(x, se_at=None),
            "uses ReLU instead of SiLU after the expansion and depthwise BatchNorms: ReLU(BN(...)) there":
                forward(x, act=F.relu),
            "uses ReLU inside squeeze-and-excitation instead of SiLU: sigmoid(fc2(ReLU(fc1(...))))":
                forward(x, se_act=F.relu),
            "uses ReLU everywhere instead of SiLU: ReLU after every BatchNorm and inside SE":
                forward(x, act=F.relu, se_act=F.relu),
        }
        if residual:
            found["applies an activation after the residual addition: SiLU(F(x) + x)"] = forward(x, after_add=F.silu)
            found["never adds the input, although stride is 1 and the channel counts match: F(x) without + x"] = \
                forward(x, add=False)
        return found
    return variants


def _diagnose_eval_stochastic_depth(block: nn.Module, reference: nn.Module, input_shape: Sequence[int], seed: int,
                                    what: str, p: float) -> None:
    """A residual block with p > 0 whose eval output drops or rescales samples: stochastic depth in eval mode."""
    if not reference.use_res_connect or p <= 0:
        return
    device = next(reference.parameters()).device
    x = comparison_input(input_shape, seed, device)
    with torch.no_grad():
        out = block.eval()(x)
        branch = reference.eval().block(x)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        return
    kinds = [("dropped" if close(o, xi) else "scaled" if close(o, xi + b / (1 - p)) else
              "right" if close(o, xi + b) else "other") for o, xi, b in zip(out, x, branch)]
    if "other" not in kinds and set(kinds) != {"right"}:
        raise CheckFailed(what, "stochastic depth is applied in eval mode: some samples lose their residual branch "
                                "or have it rescaled.",
                          expected="F(x) + x for every sample in eval mode", got=", ".join(kinds),
                          hint="Drop the residual branch only while training (self.training is True); in eval "
                               "mode the block always computes F(x) + x.")


# ------------------------------------------------------------------ comparisons
def _block_args(in_channels: int, out_channels: int, expand_ratio: float, kernel_size: int, stride: int,
                se_ratio: float, p: float) -> tuple[tuple, dict, str]:
    args = (in_channels, out_channels, expand_ratio, kernel_size, stride)
    kwargs = dict(se_ratio=se_ratio, stochastic_depth_prob=p)
    what = f"MBConvBlock({in_channels}, {out_channels}, expand_ratio={expand_ratio}, kernel_size={kernel_size}, " \
           f"stride={stride}" + (f", se_ratio={se_ratio}" if se_ratio != 0.25 else "") + \
           (f", stochastic_depth_prob={p}" if p else "") + ")"
    return args, kwargs, what


def _build_block(cls: type, args: tuple, kwargs: dict, what: str, seed: int) -> nn.Module:
    with substitute_globals(cls, SqueezeExcitation=trusted_se_class()):
        return build(cls, args, what, "MBConvBlock", seed=seed, trusted=(trusted_se_class(),), **kwargs)


@one_thread
@frees_models
def compare_mbconv(cls: type, in_channels: int, out_channels: int, expand_ratio: float, kernel_size: int,
                   stride: int, input_shape: Sequence[int], se_ratio: float = 0.25, stochastic_depth_prob: float = 0.0,
                   seed: int = 0) -> None:
    """The student's block (trusted SE inside) against torchvision's MBConv in eval mode: structure, then outputs."""
    args, kwargs, what = _block_args(in_channels, out_channels, expand_ratio, kernel_size, stride, se_ratio,
                                     stochastic_depth_prob)
    block = _build_block(cls, args, kwargs, what, seed)
    reference = on_meta(_mbconv_reference, *args, **kwargs)
    _mbconv_structure(block, reference, what, in_channels, out_channels, expand_ratio, kernel_size, stride, se_ratio)
    _require_runs(cls, args, kwargs, input_shape, what, in_channels, out_channels, stride, seed)

    def diagnose() -> None:
        _diagnose_eval_stochastic_depth(block, reference, input_shape, seed, what, stochastic_depth_prob)
        diagnose_variants(block, reference, input_shape, seed, what, _mbconv_variants(reference),
                          expected=EXPECTED_FORWARD, hint=MBCONV_HINT)
    compare(block, reference, input_shape, what, seed, diagnose)


MBCONV_CASES = [
    # in, out, expand, kernel, stride, input, se_ratio, stochastic_depth_prob
    (8, 8, 4, 3, 1, (2, 8, 8, 8), 0.25, 0.0),       # residual, expansion
    (8, 16, 6, 5, 2, (2, 8, 9, 9), 0.25, 0.0),      # stride 2 and more channels: no residual
    (16, 8, 1, 3, 1, (2, 16, 6, 6), 0.25, 0.0),     # no expansion, fewer channels
    (8, 8, 1, 3, 1, (2, 8, 5, 7), 0.25, 0.0),       # no expansion, residual
    (12, 12, 6, 3, 2, (1, 12, 8, 8), 0.25, 0.0),    # stride 2, same channels: no residual
    (16, 16, 6, 5, 1, (8, 16, 5, 5), 0.5, 0.3),     # se_ratio 0.5; stochastic depth changes nothing in eval
]

@student_check
def check_mbconv_block(cls: type) -> None:
    from .efficientnet_stochastic_depth import SD_CASES, compare_stochastic_depth
    for i, (c_in, c_out, e, k, s, shape, se_ratio, p) in enumerate(MBCONV_CASES):
        compare_mbconv(cls, c_in, c_out, e, k, s, shape, se_ratio=se_ratio, stochastic_depth_prob=p, seed=i)
    for i, (c_in, c_out, e, k, s, p) in enumerate(SD_CASES):
        compare_stochastic_depth(cls, c_in, c_out, e, k, s, p=p, seed=10 + i)
    passed("MBConvBlock", f"{len(MBCONV_CASES)} blocks (with and without expansion and residual) compute the same "
                          "as torchvision's MBConv in eval mode, and stochastic depth drops whole samples' residual "
                          "branches in training mode only")
