"""Checks for notebook 07, section 3: ``compute_receptive_field(model, input_size=224)``.

The oracle, private to this module, walks the model's ``torch.fx`` graph from
the input: a convolution or pooling window of size k, stride s and dilation d
turns (size, jump) into (size + (k - 1) d jump, jump s); where paths meet
(an addition, a product, a concatenation) the widest field counts, so a
shortcut in parallel with a residual branch adds nothing; every other layer
(BatchNorm, activations, adaptive pooling, Linear layers inside a gate) keeps
the field, so a global-context gate such as squeeze-and-excitation is
ignored. The tests validate the oracle against the support of the input
gradient of one output unit.

The check compares the student's answer on small networks and on three of
torchvision's (ResNet-18's convolutional trunk, VGG-16's and EfficientNet-B0's
``features``), built with random weights on the CPU so that any method works;
one small network calls its poolings as functions in ``forward()``, as
torchvision's Inception3 blocks do, so that a walk over modules alone (notebook
04's ``receptive_field``) is not enough. When the answer is wrong it names the
mistake it matches: poolings called as functions missed, a shortcut counted
in series, a field clipped to the input, a gate's global pooling counted,
k instead of k - 1, dilation or strides forgotten.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .core import CheckFailed, call_student, passed, reject_course_code, student_check
from .models import frees_models, one_thread

WHAT = "compute_receptive_field"
WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
GATE_HINT = ("Global-context gates are ignored: squeeze-and-excitation multiplies each channel by a number "
             "computed from the whole feature map (adaptive average pooling to 1x1), but the theoretical "
             "receptive field counts only the windows of convolutions and poolings. Treat adaptive pooling "
             "like any other layer without a window: it keeps the field it receives.")


def _first(value: Any) -> int:
    return int(value[0]) if isinstance(value, (tuple, list)) else int(value)


def _window(layer: nn.Module) -> tuple[int, int, int]:
    """(kernel, stride, dilation) of a windowed layer."""
    dilation = getattr(layer, "dilation", 1)
    return _first(layer.kernel_size), _first(layer.stride), _first(dilation)


# ------------------------------------------------------------------ the oracle (private)
def _fx_fields(model: nn.Module, *, kernel_offset: int = -1, dilation: bool = True,
               multiply_jump: bool = True, global_pool: int | None = None,
               functional: bool = True) -> list[tuple[str, int, int]]:
    """(node name, size, jump) for every node of ``model``'s fx graph, in order.

    The keyword arguments describe known mistakes, for the diagnosis: ``kernel_offset=0``
    adds k instead of k - 1, ``dilation=False`` ignores it, ``multiply_jump=False`` never
    multiplies the jump, ``global_pool`` makes an adaptive pool see the whole input,
    ``functional=False`` misses windows called as functions in ``forward()``.
    """
    graph = torch.fx.symbolic_trace(model).graph
    fields: dict[Any, tuple[int, int]] = {}
    order = []
    for node in graph.nodes:
        if node.op == "placeholder":
            fields[node] = (1, 1)
            continue
        reaching = [fields[a] for a in node.all_input_nodes if a in fields]
        if not reaching:
            continue
        size, jump = max(r[0] for r in reaching), max(r[1] for r in reaching)
        window = None
        if node.op == "call_module":
            layer = model.get_submodule(node.target)
            if isinstance(layer, WINDOWED):
                window = _window(layer)
            elif global_pool is not None and isinstance(layer, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                size = max(size, global_pool)
        elif functional and node.op == "call_function" and node.target in (F.max_pool2d, F.avg_pool2d, F.conv2d):
            window = _functional_window(node)
        if window is not None:
            k, s, d = window
            size = size + (k + kernel_offset) * (d if dilation else 1) * jump
            jump = jump * s if multiply_jump else max(jump, s)
        fields[node] = (int(size), int(jump))
        order.append((node.name, int(size), int(jump)))
    output = next(n for n in graph.nodes if n.op == "output")
    last = output.all_input_nodes[0]
    order.append(("output", *fields[last]))
    return order


def _functional_window(node: Any) -> tuple[int, int, int]:
    """(kernel, stride, dilation) of F.conv2d / F.max_pool2d / F.avg_pool2d called in forward()."""
    args, kwargs = list(node.args), dict(node.kwargs)
    if node.target is F.conv2d:
        weight = args[1] if len(args) > 1 else kwargs["weight"]
        shape = getattr(weight, "meta", {}).get("tensor_meta")
        k = shape.shape[-1] if shape is not None else kwargs.get("kernel_size", 1)
        stride = args[3] if len(args) > 3 else kwargs.get("stride", 1)
        dilation = args[5] if len(args) > 5 else kwargs.get("dilation", 1)
        return _first(k), _first(stride), _first(dilation)
    k = args[1] if len(args) > 1 else kwargs["kernel_size"]
    stride = args[2] if len(args) > 2 else kwargs.get("stride") or k
    dilation = args[4] if node.target is F.max_pool2d and len(args) > 4 else kwargs.get("dilation", 1)
    return _first(k), _first(stride or k), _first(dilation)


def _oracle(model: nn.Module, **mistake: Any) -> tuple[int, int]:
    return _fx_fields(model, **mistake)[-1][1:]


def _in_series(model: nn.Module) -> tuple[int, int]:
    """Every windowed layer in the order it was created, one after the other: shortcuts in series."""
    size, jump = 1, 1
    for layer in model.modules():
        if isinstance(layer, WINDOWED):
            k, s, d = _window(layer)
            size, jump = size + (k - 1) * d * jump, jump * s
    return size, jump


# ------------------------------------------------------------------ the networks the check uses
class _FunctionalPools(nn.Module):
    """Poolings called as functions in forward(), as in torchvision's Inception3 blocks, and a concatenation."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), kernel_size=3, stride=2)
        branch = F.avg_pool2d(x, 5, stride=1, padding=2)                 # the wider of the two branches
        return torch.cat([self.conv2(x), branch], 1)


def _tv_models():
    import torchvision.models as tvm
    return tvm


def _residual_net() -> nn.Module:
    """A stem, one of torchvision's BasicBlocks with a strided projection shortcut, a 3x3 convolution."""
    from torchvision.models.resnet import BasicBlock, conv1x1
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                         BasicBlock(16, 32, stride=2, downsample=nn.Sequential(conv1x1(16, 32, 2), nn.BatchNorm2d(32))),
                         nn.Conv2d(32, 32, 3, padding=1))


def _bottleneck_net() -> nn.Module:
    """A stem and two of torchvision's Bottleneck blocks, the first with a strided projection."""
    from torchvision.models.resnet import Bottleneck, conv1x1
    return nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.MaxPool2d(2),
                         Bottleneck(16, 8, stride=2, downsample=nn.Sequential(conv1x1(16, 32, 2), nn.BatchNorm2d(32))),
                         Bottleneck(32, 8))


def _resnet18_trunk() -> nn.Module:
    model = _tv_models().resnet18(weights=None)
    return nn.Sequential(*list(model.children())[:-2])          # no average pool, no fc


def _vgg16_features() -> nn.Module:
    """What ``vgg16().features`` holds, from torchvision's own builder, without the 120 M-weight head."""
    from torchvision.models.vgg import cfgs, make_layers
    return make_layers(cfgs["D"])


NETWORKS: dict[str, tuple[Callable[[], nn.Module], str]] = {
    # name: (builder, description for the messages)
    "two 3x3": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)),
                "Conv2d(3, 4, 3), ReLU, Conv2d(4, 4, 3)"),
    "stem": (lambda: nn.Sequential(nn.Conv2d(3, 8, 7, stride=2, padding=3), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.MaxPool2d(3, stride=2, padding=1), nn.Conv2d(8, 8, 3, padding=1)),
             "Conv2d(7, stride 2), BatchNorm2d, ReLU, MaxPool2d(3, stride 2), Conv2d(3)"),
    "dilated": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=2, dilation=2), nn.ReLU(), nn.Conv2d(4, 4, 3)),
                "Conv2d(3, dilation 2), ReLU, Conv2d(3)"),
    "average pool": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.AvgPool2d(2), nn.Conv2d(4, 4, 5)),
                     "Conv2d(3, stride 2), AvgPool2d(2), Conv2d(5)"),
    "residual": (_residual_net, "Conv2d(3), ReLU, torchvision's BasicBlock(16, 32, stride 2) with a 1x1 "
                                "stride-2 projection shortcut, Conv2d(3)"),
    "bottleneck": (_bottleneck_net, "Conv2d(3, stride 2), MaxPool2d(2), torchvision's Bottleneck with a "
                                    "stride-2 projection, another Bottleneck"),
    "functional pooling": (_FunctionalPools, "Conv2d(3), then F.max_pool2d(x, kernel_size=3, stride=2) called in "
                                             "forward(), then Conv2d(3) and F.avg_pool2d(x, 5, stride=1, padding=2) "
                                             "side by side, concatenated"),
    "ResNet-18": (_resnet18_trunk, "torchvision's resnet18 without its average pool and fc"),
    "VGG-16": (_vgg16_features, "torchvision's vgg16().features"),
    "EfficientNet-B0": (lambda: _tv_models().efficientnet_b0(weights=None).features,
                        "torchvision's efficientnet_b0().features (squeeze-and-excitation inside)"),
}


def _build(name: str, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return NETWORKS[name][0]().eval()


# ------------------------------------------------------------------ comparing
def _require_pair(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, torch.Tensor) or not isinstance(value, (tuple, list)) or len(value) != 2:
        raise CheckFailed(what, "the result is not a pair (size, jump).", expected="a tuple of two ints",
                          got=repr(value)[:80], hint="return size, jump")
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        raise CheckFailed(what, "size and jump should be ints.", expected="a tuple of two ints",
                          got=f"({type(value[0]).__name__}, {type(value[1]).__name__}): {tuple(value)!r}",
                          hint="Both are whole numbers of input pixels: keep them as Python ints "
                               "(int(...) around a tensor or NumPy value).")
    return int(value[0]), int(value[1])


def _diagnose(model: nn.Module, got: tuple[int, int], expected: tuple[int, int], input_size: int,
              what: str, description: str) -> None:
    common = dict(expected=f"(size, jump) = {expected}", got=f"{got}")
    if got == _oracle(model, functional=False) and got != expected:
        raise CheckFailed(what, f"for {description}, your answer misses the poolings called as functions in "
                                "forward().", **common,
                          hint="Not every window is a module: a pooling called as a function in forward() "
                               "(as torchvision's Inception3 blocks do) appears in the torch.fx graph as a "
                               "call_function node whose target is F.max_pool2d or F.avg_pool2d; its kernel "
                               "size and stride are in the node's args and kwargs (a stride of None means "
                               "stride = kernel size).")
    if got == _in_series(model) and got != expected:
        raise CheckFailed(what, f"for {description}, your answer counts a shortcut's 1x1 convolution in series "
                                "with the residual branch.", **common,
                          hint="A shortcut runs in parallel with the branch it skips: where the two paths are "
                               "added, the field is the wider of the two (the branch's), and the jump is the "
                               "same on both. Walk the graph of the forward pass (torch.fx.symbolic_trace), "
                               "not the list of modules.")
    if got == (min(expected[0], input_size), expected[1]) and expected[0] > input_size:
        raise CheckFailed(what, f"for {description} with input_size={input_size}, your answer is clipped to the "
                                "input's size.", **common,
                          hint="The theoretical field is not clipped: it can be larger than the image (the "
                               "part outside is padding). Return the size the layers give.")
    for mistake, problem, hint in (
            (dict(global_pool=input_size), "counts a global pooling (the squeeze-and-excitation gate) as a "
                                           "window over the whole input.", GATE_HINT),
            (dict(kernel_offset=0), "adds k instead of k - 1 for each window.",
             "A k x k window extends the field by k - 1 jumps: two stacked 3x3 convolutions see 5x5, "
             "not 7x7."),
            (dict(dilation=False), "ignores dilation.",
             "A dilated k x k kernel spans (k - 1) d + 1 inputs: it adds (k - 1) d jumps."),
            (dict(multiply_jump=False), "does not multiply the strides.",
             "The jump is the product of the strides of all windows before: after two stride-2 layers "
             "neighbouring outputs are 4 input pixels apart.")):
        try:
            variant = _oracle(model, **mistake)
        except Exception:  # noqa: BLE001 - a variant that does not apply
            continue
        if got == variant and variant != expected:
            raise CheckFailed(what, f"for {description}, your answer {problem}", **common, hint=hint)
    if got[1] != expected[1]:
        raise CheckFailed(what, f"for {description}, the jump is wrong.", **common,
                          hint="The jump is the product of the strides of every convolution and pooling on "
                               "the way, each counted once (a shortcut runs beside its branch, not after it).")
    raise CheckFailed(what, f"for {description}, the receptive field's size is wrong.", **common,
                      hint="Start from (1, 1) at the input; a window of k, stride s, dilation d gives "
                           "size + (k - 1) d jump and jump s; where paths meet take the widest; layers "
                           "without a window change nothing.")


@one_thread
@frees_models
def compare_receptive_field(fn: Callable, model: nn.Module, description: str,
                            input_size: int = 224) -> tuple[int, int]:
    """The student's ``fn(model, input_size=...)`` against the oracle, with a diagnosis when they differ."""
    reject_course_code(fn, WHAT)
    expected = _oracle(model)
    what = WHAT
    got = _require_pair(call_student(fn, model, what=what, input_size=input_size), what)
    if got != expected:
        _diagnose(model, got, expected, input_size, what, description)
    return got


def compare_network(fn: Callable, name: str, input_size: int = 224) -> tuple[int, int]:
    return compare_receptive_field(fn, _build(name), NETWORKS[name][1], input_size=input_size)


def random_network(rng: Any) -> tuple[nn.Module, str]:
    """A random stack of convolutions, poolings and residual blocks drawn from ``rng`` (a NumPy Generator)."""
    from torchvision.models.resnet import BasicBlock, conv1x1
    layers, parts, channels = [], [], 3
    for _ in range(int(rng.integers(3, 6))):
        kind = rng.choice(["conv", "pool", "block"])
        if kind == "conv":
            k, s, d = int(rng.choice([1, 3, 5])), int(rng.choice([1, 2])), int(rng.choice([1, 1, 2]))
            layers.append(nn.Conv2d(channels, 8, k, stride=s, dilation=d, padding=d * (k // 2)))
            parts.append(f"Conv2d({k}, stride {s}{f', dilation {d}' if d > 1 else ''})")
            channels = 8
        elif kind == "pool":
            k = int(rng.choice([2, 3]))
            s = int(rng.choice([1, 2]))
            layers.append((nn.MaxPool2d if rng.random() < 0.5 else nn.AvgPool2d)(k, stride=s))
            parts.append(f"{type(layers[-1]).__name__}({k}, stride {s})")
        else:
            s = int(rng.choice([1, 2]))
            shortcut = nn.Sequential(conv1x1(channels, 8, s), nn.BatchNorm2d(8)) if s != 1 or channels != 8 else None
            layers.append(BasicBlock(channels, 8, stride=s, downsample=shortcut))
            parts.append(f"BasicBlock(stride {s})")
            channels = 8
    return nn.Sequential(*layers).eval(), ", ".join(parts)


@student_check
def check_compute_receptive_field(fn: Callable) -> None:
    results = {name: compare_network(fn, name) for name in NETWORKS}
    shown = ", ".join(f"{n} {results[n]}" for n in ("residual", "ResNet-18", "VGG-16", "EfficientNet-B0"))
    passed(WHAT, f"{len(NETWORKS)} networks, with shortcuts, dilation, poolings called as functions and "
                 f"squeeze-and-excitation, give the "
                 f"right (size, jump): {shown}")


__all__ = ["check_compute_receptive_field", "compare_receptive_field", "compare_network", "random_network"]
