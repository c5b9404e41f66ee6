"""Checks for notebook 05 (EfficientNet): the network, ``efficientnet_b0`` and compound scaling.

The oracle is torchvision: ``_efficientnet_conf`` (the B0 stage table scaled by
a width and a depth multiplier) and the ``EfficientNet`` class build the
reference networks, private to this module.

* ``EfficientNet(width_mult, depth_mult, dropout, num_classes)`` is built with
  a trusted block (torchvision's ``MBConv`` behind the signature of exercise 3)
  standing in for the student's ``MBConvBlock``, so that a wrong block costs only
  the block's points. The stand-in records how it is called: the blocks'
  channels, expansion, kernel, stride and stochastic-depth probability are
  compared with torchvision's, stage by stage, so that a rounding of the channels
  or of the repeats, a stride on every block of a stage or another schedule of
  stochastic depth each get their own message. Then the layout (stem, stages,
  head, pooling, classifier with its dropout) and the parameter count, all on the
  ``meta`` device for B0, B2, B7 and a narrow, shallow network.
* ``efficientnet_b0(num_classes)``: torchvision's 5,288,548 parameters, and with
  torchvision's weights shared in, its logits.
* ``compound_scaling(phi, alpha, beta, gamma)``: the three multipliers, in the
  order (depth, width, resolution).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from helpers.inspection import count_parameters

from .core import CheckFailed, call_student, passed, reject_course_code, student_check
from .efficientnet_blocks import build, conv_spec, describe_conv, refuse_torchvision
from .efficientnet_mbconv import trusted_mbconv_class
from .models import (frees_models, matches_torchvision, on_meta, one_thread, require_same_parameter_count,
                     substitute_globals)

#: torchvision's parameter count of efficientnet_b0 (1000 classes).
B0_PARAMETERS = 5_288_548
#: torchvision's stochastic-depth probability of the last block (reached linearly).
STOCHASTIC_DEPTH = 0.2
LAYOUT_HINT = ("torchvision's layout: self.features = nn.Sequential(stem, stage 1, ..., stage 7, head); the stem is "
               "Conv2d(3, c, 3, stride=2, padding=1, bias=False), BatchNorm, SiLU with c = make_divisible(32 * "
               "width_mult); each stage an nn.Sequential of MBConvBlocks; the head Conv2d(c_last, 4 * c_last, 1, "
               "bias=False), BatchNorm, SiLU; then self.avgpool = nn.AdaptiveAvgPool2d(1), flatten, and "
               "self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * c_last, num_classes)).")
ROUNDING_HINT = ("Round every channel count (the stem's and each stage's) with make_divisible(c * width_mult, 8): "
                 "the multiple of 8 nearest to c * width_mult, at least 8, plus 8 more if that falls more than 10% "
                 "below c * width_mult; that is max(8, int(v + 4) // 8 * 8), then + 8 if below 0.9 * v.")
DEPTH_HINT = "Each stage repeats its block ceil(n * depth_mult) times (math.ceil): a stage never loses its last block."


# ------------------------------------------------------------------ oracles (private)
def _tv():
    import torchvision.models.efficientnet as tv_efficientnet
    return tv_efficientnet


def _setting(width_mult: float, depth_mult: float) -> list:
    setting, _ = _tv()._efficientnet_conf("efficientnet_b0", width_mult=width_mult, depth_mult=depth_mult)
    return setting


def _reference(width_mult: float, depth_mult: float, dropout: float = 0.2, num_classes: int = 1000) -> nn.Module:
    return _tv().EfficientNet(_setting(width_mult, depth_mult), dropout, num_classes=num_classes)


def _expected_calls(width_mult: float, depth_mult: float) -> list[list[tuple]]:
    """Per stage, the (in, out, expand, kernel, stride, stochastic depth) of each block, as torchvision builds them."""
    setting = _setting(width_mult, depth_mult)
    total, index, stages = sum(c.num_layers for c in setting), 0, []
    for cnf in setting:
        stage = []
        for j in range(cnf.num_layers):
            stage.append((cnf.input_channels if j == 0 else cnf.out_channels, cnf.out_channels, cnf.expand_ratio,
                          cnf.kernel, cnf.stride if j == 0 else 1, STOCHASTIC_DEPTH * index / total))
            index += 1
        stages.append(stage)
    return stages


def _divisible(value: float) -> int:
    return _tv()._make_divisible(value, 8)


_B0_CHANNELS = (32, 16, 24, 40, 80, 112, 192, 320)       # stem and the seven stages (Tan & Le, Table 1)
_B0_REPEATS = (1, 2, 2, 3, 3, 4, 1)


def _rounding_mistake(got: Sequence[int], width_mult: float) -> str | None:
    """Name the rounding the student used, if the stage widths ``got`` (stem first) match a known wrong one."""
    candidates = {
        "int(c * width_mult), not rounded to a multiple of 8": lambda v: int(v),
        "round(c * width_mult), not rounded to a multiple of 8": lambda v: round(v),
        "rounded up to a multiple of 8": lambda v: math.ceil(v / 8) * 8,
        "rounded down to a multiple of 8": lambda v: max(8, int(v) // 8 * 8),
        "rounded to the nearest multiple of 8 without the 10% rule": lambda v: max(8, int(v + 4) // 8 * 8),
        "not scaled by width_mult at all": lambda v: _divisible(v / width_mult),
    }
    for description, rule in candidates.items():
        if list(got) == [rule(c * width_mult) for c in _B0_CHANNELS[:len(got)]]:
            return description
    return None


def _depth_mistake(got: Sequence[int], depth_mult: float) -> str | None:
    candidates = {"int(n * depth_mult) (rounds down)": lambda v: int(v),
                  "round(n * depth_mult)": lambda v: round(v),
                  "not scaled by depth_mult at all": lambda v: int(v / depth_mult)}
    for description, rule in candidates.items():
        if list(got) == [rule(n * depth_mult) for n in _B0_REPEATS]:
            return description
    return None


# ------------------------------------------------------------------ the network
def _what(width_mult: float, depth_mult: float, dropout: float, num_classes: int) -> str:
    return f"EfficientNet(width_mult={width_mult}, depth_mult={depth_mult}, dropout={dropout}, num_classes={num_classes})"


def _build_network(cls: Callable, what: str, calls: list, meta: bool, seed: int = 0,
                   **kwargs: Any) -> tuple[nn.Module, type]:
    block = trusted_mbconv_class(calls)
    with substitute_globals(cls, MBConvBlock=block):
        model = build(cls, (), what, getattr(cls, "__name__", "EfficientNet"), seed=seed, meta=meta,
                      trusted=(block,), **kwargs)
    if not calls:
        raise CheckFailed(what, "no MBConvBlock was built.", expected="the stages built from MBConvBlock(...) calls",
                          got=f"{sum(1 for _ in model.modules())} modules, none made by MBConvBlock",
                          hint="Build every block of the stages with MBConvBlock(in_channels, out_channels, "
                               "expand_ratio, kernel_size, stride, stochastic_depth_prob=...), the class of "
                               "exercise 3 (the check puts a trusted one in its place).")
    return model, block


def _require_features(model: nn.Module, what: str) -> nn.Sequential:
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential) or len(features) != 9:
        got = (f"features with {len(features)} parts" if isinstance(features, nn.Sequential)
               else "attributes " + ", ".join(n for n, _ in model.named_children()))
        raise CheckFailed(what, "the model has no `features` made of the stem, seven stages and the head.",
                          expected="self.features = nn.Sequential(stem, 7 stages, head): 9 parts", got=got,
                          hint=LAYOUT_HINT)
    return features


def _compare_calls(model: nn.Module, calls: list, block: type, width_mult: float, depth_mult: float,
                   what: str) -> None:
    """The blocks, stage by stage, against torchvision's: repeats, channels, strides, stochastic depth."""
    features = _require_features(model, what)
    expected = _expected_calls(width_mult, depth_mult)
    flat = [c for stage in expected for c in stage]
    repeats = [sum(isinstance(m, block) for m in features[i].modules()) for i in range(1, 8)]
    expected_repeats = [len(s) for s in expected]
    if sum(repeats) != len(calls):
        raise CheckFailed(what, "some MBConvBlocks are not in the stages features[1] ... features[7].",
                          expected=f"{len(calls)} blocks in the seven stages", got=f"{repeats}", hint=LAYOUT_HINT)
    if repeats != expected_repeats:
        mistake = _depth_mistake(repeats, depth_mult)
        raise CheckFailed(what, "the number of blocks per stage is wrong" + (f": {mistake}" if mistake else "") + ".",
                          expected=f"{expected_repeats} ({sum(expected_repeats)} blocks)",
                          got=f"{repeats} ({sum(repeats)} blocks)",
                          hint=DEPTH_HINT if mistake else DEPTH_HINT + " " + LAYOUT_HINT)
    starts = [0, *_cumulative(repeats)[:-1]]
    widths = [calls[0][0]] + [calls[s][1] for s in starts]
    expected_widths = [flat[0][0]] + [stage[0][1] for stage in expected]
    if widths != expected_widths:
        mistake = _rounding_mistake(widths, width_mult)
        raise CheckFailed(what, "the channel counts are wrong" + (f": {mistake}" if mistake else "") + ".",
                          expected=f"stem {expected_widths[0]}, stages {expected_widths[1:]}",
                          got=f"stem {widths[0]}, stages {widths[1:]}", hint=ROUNDING_HINT)
    names = ("in_channels", "out_channels", "expand_ratio", "kernel_size", "stride")
    total = len(flat)
    got_ps = [c[6] for c in calls]
    for i, (got, want) in enumerate(zip(calls, flat)):
        stage = next(s for s, n in enumerate(_cumulative(expected_repeats)) if i < n) + 1
        for name, g, w in zip(names, got[:5], want[:5]):
            if g != w:
                if name == "stride" and w == 1 and g != 1:
                    hint = "Only the first block of a stage has the stage's stride; the others have stride 1."
                elif name in ("in_channels", "out_channels"):
                    hint = ("A stage's first block receives the previous stage's channels (the stem's for stage 1); "
                            "the others receive their own stage's.")
                else:
                    hint = "Take the expansion ratio, kernel and stride of each stage from the B0 table."
                raise CheckFailed(what, f"block {i} (stage {stage}) is built with {name}={g}.",
                                  expected=f"{name}={w}", got=f"MBConvBlock{got[:5]}", hint=hint)
        se_ratio, p = got[5], got[6]
        if se_ratio != 0.25:
            raise CheckFailed(what, f"block {i} is built with se_ratio={se_ratio}.", expected="se_ratio=0.25",
                              got=f"se_ratio={se_ratio}", hint="Leave se_ratio at its default, 0.25.")
        if not isinstance(p, (int, float)) or abs(p - want[5]) > 1e-9:
            schedule = ""
            if all(isinstance(q, (int, float)) for q in got_ps):
                if all(abs(q - STOCHASTIC_DEPTH * k / (total - 1)) < 1e-9 for k, q in enumerate(got_ps)):
                    schedule = (f" (0.2 * i / (N - 1): the last block gets 0.2, torchvision's gets "
                                f"0.2 * {total - 1}/{total})")
                elif all(q == got_ps[0] for q in got_ps):
                    schedule = f" (the same for every block: {got_ps[0]})"
            raise CheckFailed(what, f"block {i} gets stochastic_depth_prob={p}{schedule}.",
                              expected=f"0.2 * {i} / {total} = {want[5]:.6g}",
                              got=", ".join(f"{q:.4g}" if isinstance(q, (int, float)) else repr(q) for q in got_ps[:6])
                                  + (", ..." if total > 6 else ""),
                              hint="Number the blocks of the whole network 0, 1, ..., N - 1 in the order they run "
                                   "(N blocks in all stages together); block i gets stochastic_depth_prob = "
                                   "0.2 * i / N, so the first gets 0 and the probability grows linearly.")


def _cumulative(values: Sequence[int]) -> list[int]:
    out, total = [], 0
    for v in values:
        total += v
        out.append(total)
    return out


def _check_layout(model: nn.Module, reference: nn.Module, what: str, dropout: float, num_classes: int) -> None:
    features = _require_features(model, what)
    for part, name in ((0, "stem"), (8, "head")):
        mine = [m for m in features[part].modules() if isinstance(m, nn.Conv2d)]
        ref = [m for m in reference.features[part].modules() if isinstance(m, nn.Conv2d)]
        has_bn = any(isinstance(m, nn.BatchNorm2d) for m in features[part].modules())
        has_silu = any(isinstance(m, nn.SiLU) for m in features[part].modules())
        if len(mine) != 1 or conv_spec(mine[0]) != conv_spec(ref[0]) or not has_bn or not has_silu:
            raise CheckFailed(what, f"the {name} (features[{part}]) is wrong.",
                              expected=describe_conv(f"features[{part}]", ref[0]) + ", BatchNorm2d, SiLU",
                              got=", ".join(type(m).__name__ if not isinstance(m, nn.Conv2d)
                                            else describe_conv(f"features[{part}]", m)
                                            for m in features[part].modules() if not list(m.children()))
                                  or repr(features[part]),
                              hint=LAYOUT_HINT)
    pool = getattr(model, "avgpool", None)
    size = getattr(pool, "output_size", None)
    if not isinstance(pool, nn.AdaptiveAvgPool2d) or size not in (1, (1, 1)):
        raise CheckFailed(what, "avgpool should be nn.AdaptiveAvgPool2d(1).", got=repr(pool), hint=LAYOUT_HINT)
    classifier = getattr(model, "classifier", None)
    layers = list(classifier.modules()) if isinstance(classifier, nn.Module) else []
    drops = [m for m in layers if isinstance(m, nn.Dropout)]
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    head = reference.classifier[1]
    if len(drops) != 1 or len(linears) != 1 or (linears[0].in_features, linears[0].out_features) != \
            (head.in_features, head.out_features):
        raise CheckFailed(what, "the classifier is wrong.",
                          expected=f"nn.Sequential(nn.Dropout({dropout}), nn.Linear({head.in_features}, {num_classes}))",
                          got=repr(classifier), hint=LAYOUT_HINT)
    if abs(drops[0].p - dropout) > 1e-12:
        raise CheckFailed(what, "the dropout probability does not come from the `dropout` argument.",
                          expected=f"nn.Dropout(p={dropout})", got=f"nn.Dropout(p={drops[0].p})",
                          hint="Pass dropout on to the nn.Dropout before the Linear layer.")


@one_thread
@frees_models
def compare_efficientnet(cls: type, width_mult: float, depth_mult: float, dropout: float = 0.2,
                         num_classes: int = 1000, input_shape: Sequence[int] | None = None, seed: int = 0) -> None:
    """``cls(width_mult, depth_mult, dropout, num_classes)`` with trusted blocks against torchvision's EfficientNet.

    Blocks, layout and parameter count on the meta device; with ``input_shape`` the model is
    built for real and its logits compared with torchvision's, with the same weights.
    """
    what = _what(width_mult, depth_mult, dropout, num_classes)
    calls: list = []
    kwargs = dict(width_mult=width_mult, depth_mult=depth_mult, dropout=dropout, num_classes=num_classes)
    model, block = _build_network(cls, what, calls, meta=True, **kwargs)
    _compare_calls(model, calls, block, width_mult, depth_mult, what)
    reference = on_meta(_reference, width_mult, depth_mult, dropout, num_classes)
    _check_layout(model, reference, what, dropout, num_classes)
    require_same_parameter_count(model, reference, what, LAYOUT_HINT)
    if input_shape is None:
        return
    del model
    model, _ = _build_network(cls, what, [], meta=False, seed=seed, **kwargs)
    _compare_logits(model, reference, input_shape, what, seed)


def _compare_logits(model: nn.Module, reference: nn.Module, input_shape: Sequence[int], what: str,
                    seed: int) -> None:
    try:
        matches_torchvision(model, reference, input_shape, what, seed=seed)
    except CheckFailed as failure:
        if failure.hint:
            failure.add_hint(LAYOUT_HINT)
        raise


@one_thread
@frees_models
def compare_efficientnet_b0(fn: Callable, num_classes: int = 1000, input_shape: Sequence[int] | None = None,
                            seed: int = 0) -> None:
    """``efficientnet_b0(num_classes)`` (the student's EfficientNet, trusted blocks): parameters and logits."""
    what = f"efficientnet_b0(num_classes={num_classes})"
    reject_course_code(fn, "efficientnet_b0")
    calls: list = []
    block = trusted_mbconv_class(calls)
    with substitute_globals(fn, MBConvBlock=block), torch.device("meta"):
        model = call_student(fn, what="efficientnet_b0", num_classes=num_classes)
    if not isinstance(model, nn.Module):
        raise CheckFailed(what, "the result is not an nn.Module.", expected="EfficientNet(...)",
                          got=type(model).__name__, hint="Return EfficientNet(...) with B0's arguments.")
    if not calls:
        refuse_torchvision(model, what)
        raise CheckFailed(what, "it does not build its blocks with MBConvBlock.", hint="Return EfficientNet(...).")
    reference = on_meta(_reference, 1.0, 1.0, 0.2, num_classes)
    got, expected = count_parameters(model), count_parameters(reference)
    classifier = getattr(model, "classifier", None)
    drops = [m.p for m in classifier.modules() if isinstance(m, nn.Dropout)] if isinstance(classifier, nn.Module) else []
    if got != expected:
        raise CheckFailed(what, "the number of parameters is wrong.", expected=f"{expected:,} (torchvision's)",
                          got=f"{got:,} ({got - expected:+,})",
                          hint="efficientnet_b0 is EfficientNet with width_mult=1.0, depth_mult=1.0 and dropout=0.2; "
                               "pass num_classes on.")
    if drops and drops != [0.2]:
        raise CheckFailed(what, "the dropout probability is wrong.", expected="0.2", got=f"{drops}",
                          hint="B0 drops 20% of the features before the classifier: dropout=0.2.")
    if input_shape is None:
        return
    del model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with substitute_globals(fn, MBConvBlock=trusted_mbconv_class()):
            model = call_student(fn, what="efficientnet_b0", num_classes=num_classes)
    _compare_logits(model, reference, input_shape, what, seed)


EFFICIENTNET_CASES = [
    # width, depth, dropout, classes: B0, B2 (rounding of 17.6 channels and 1.2 x 2 blocks), B7, a narrow and
    # shallow network (0.35 x 32 = 11.2 channels round to 16 by the 10% rule; ceil(0.5) keeps every stage)
    (1.0, 1.0, 0.2, 1000),
    (1.1, 1.2, 0.3, 1000),
    (2.0, 3.1, 0.5, 10),
    (0.35, 0.5, 0.1, 7),
]


@student_check
@frees_models
def check_efficientnet(cls: type, factory: Callable) -> None:
    """EfficientNet (trusted blocks): blocks, layout and parameters of four networks; efficientnet_b0's logits."""
    for w, d, p, n in EFFICIENTNET_CASES:
        compare_efficientnet(cls, w, d, p, n)
    compare_efficientnet_b0(factory, 1000, input_shape=(1, 3, 96, 96), seed=0)
    passed("EfficientNet and efficientnet_b0",
           f"built with torchvision's MBConv in place of yours, B0, B2, B7 and a 0.35x-wide, 0.5x-deep network have "
           f"torchvision's blocks, layout and parameters, and efficientnet_b0 has its {B0_PARAMETERS:,} parameters "
           "and its logits on a 96x96 image")


# ------------------------------------------------------------------ compound scaling
SCALING_HINT = ("compound_scaling returns the three multipliers (depth, width, resolution) = (alpha ** phi, "
                "beta ** phi, gamma ** phi): phi is an exponent, and alpha, beta, gamma are the arguments.")


def compare_compound_scaling(fn: Callable, phi: float, alpha: float = 1.2, beta: float = 1.1,
                             gamma: float = 1.15, defaults: bool = False) -> None:
    """``fn(phi, alpha, beta, gamma)`` against (alpha ** phi, beta ** phi, gamma ** phi)."""
    what = f"compound_scaling({phi})" if defaults else \
        f"compound_scaling({phi}, alpha={alpha}, beta={beta}, gamma={gamma})"
    reject_course_code(fn, "compound_scaling")
    kwargs = {} if defaults else dict(alpha=alpha, beta=beta, gamma=gamma)
    result = call_student(fn, phi, what="compound_scaling", **kwargs)
    expected = (alpha ** phi, beta ** phi, gamma ** phi)
    try:
        values = [float(v) for v in result]
    except (TypeError, ValueError):
        values = None
    if values is None or len(values) != 3:
        raise CheckFailed(what, "the result is not three numbers.", expected="a tuple (depth, width, resolution)",
                          got=repr(result), hint=SCALING_HINT)
    if all(math.isclose(v, e, rel_tol=1e-9, abs_tol=1e-12) for v, e in zip(values, expected)):
        return
    shown = f"({', '.join(f'{v:.6g}' for v in expected)})"
    got = f"({', '.join(f'{v:.6g}' for v in values)})"
    mistakes = {
        "the order is (width, depth, resolution)": (beta ** phi, alpha ** phi, gamma ** phi),
        "the order is (resolution, width, depth) or another permutation": None,
        "phi multiplies the constants instead of being their exponent": (alpha * phi, beta * phi, gamma * phi),
        "the resolution is in pixels (224 x gamma ** phi), not a multiplier": (alpha ** phi, beta ** phi,
                                                                               224 * gamma ** phi),
        "it ignores the alpha, beta, gamma it is given": (1.2 ** phi, 1.1 ** phi, 1.15 ** phi),
    }
    for description, candidate in mistakes.items():
        if candidate is None:
            if sorted(values) == sorted(expected) and values != list(expected):
                break
            continue
        if all(math.isclose(v, c, rel_tol=1e-9, abs_tol=1e-12) for v, c in zip(values, candidate)):
            break
    else:
        description = "the values are wrong"
    raise CheckFailed(what, f"{description}.", expected=f"(depth, width, resolution) = {shown}", got=got,
                      hint=SCALING_HINT)


SCALING_CASES = [
    # phi, alpha, beta, gamma, with the defaults
    (0, 1.2, 1.1, 1.15, True),
    (1, 1.2, 1.1, 1.15, True),
    (3, 1.2, 1.1, 1.15, True),
    (2.5, 1.2, 1.1, 1.15, True),
    (2, 1.4, 1.2, 1.3, False),
    (-1, 1.3, 1.05, 1.1, False),
]


@student_check
def check_compound_scaling(fn: Callable) -> None:
    for phi, alpha, beta, gamma, defaults in SCALING_CASES:
        compare_compound_scaling(fn, phi, alpha, beta, gamma, defaults=defaults)
    passed("compound_scaling", f"{len(SCALING_CASES)} cases, with the defaults (1.2, 1.1, 1.15) and other constants, "
                               "return (alpha ** phi, beta ** phi, gamma ** phi)")
