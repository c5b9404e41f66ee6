"""Checks for notebook 04 (ResNet), part 2: the networks (the blocks are in ``resnet_blocks.py``).

* ``ResNet`` is built with trusted blocks (torchvision's ``BasicBlock`` and
  ``Bottleneck`` behind the exercise's constructor signature), so a wrong block
  costs only the block's points. It must have torchvision's parameter counts,
  its initialisation and, with the same weights, its logits.
* ``ResNet18/34/50`` are called with torchvision's ResNet standing in for the
  student's ``ResNet`` and the trusted blocks for theirs.
* ``CifarResNet`` is compared with a reference built from torchvision's
  ``BasicBlock`` with a parameter-free (option A) shortcut, and, for
  ``residual=False``, the same block without the addition.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from helpers.inspection import count_parameters
from helpers.transplant import TransplantError, share_weights_by_order

from .core import CheckFailed, call_student, passed, reject_course_code, student_check
from .models import (frees_models, matches_torchvision, on_meta, one_thread, require_module,
                     require_same_parameter_count, substitute_globals)
from .resnet_blocks import (BASIC, BOTTLENECK, NAMES, _build, _convs, _needs_projection, _norms,
                            _refuse_torchvision, _require_no_bias, _trusted_block, _trusted_classes, _tv)

#: torchvision's parameter counts, from its builders (resnet18, resnet34, resnet50).
TORCHVISION_COUNTS = {"ResNet18": 11_689_512, "ResNet34": 21_797_672, "ResNet50": 25_557_032}
#: The ResNet check's configurations: the three factories' (block, blocks per stage).
_RESNET_CONFIGS = {"ResNet18": (BASIC, (2, 2, 2, 2)), "ResNet34": (BASIC, (3, 4, 6, 3)),
                  "ResNet50": (BOTTLENECK, (3, 4, 6, 3))}


# ------------------------------------------------------------------ oracles (private)
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
    require_same_parameter_count(model, reference, what, RESNET_HINT)
    if input_shape is None:
        return
    del model
    model = _build(cls, (block, list(layers)), what, "ResNet", seed=seed, num_classes=num_classes)
    if init:
        _check_init(model, what)
    try:
        matches_torchvision(model, reference, input_shape, what, seed=seed)
    except CheckFailed as failure:
        if failure.hint:
            failure.add_hint(RESNET_HINT)
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
    require_same_parameter_count(model, reference, what, CIFAR_HINT)
    _check_init(model, what)
    try:
        matches_torchvision(model, reference, input_shape, what, seed=seed)
    except CheckFailed as failure:
        if "cannot be copied" in failure.problem:
            raise
        _diagnose_cifar(model, depth, residual, num_classes, input_shape, seed, what)
        if failure.hint:
            failure.add_hint(CIFAR_HINT)
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
