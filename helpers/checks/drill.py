"""Checks for notebook 07's numeric drill: four questions whose answer is one whole number.

Each answer is a function of no arguments that returns an int, so that an
untouched stub says "not attempted yet". The right number is computed here, with
PyTorch, never typed in: parameters with ``count_parameters`` on torchvision's
``Bottleneck``, an output size by running the layers on a meta-device tensor, a
receptive field with the receptive-field check's own oracle, MACs with
``count_macs``. A wrong answer gets a message with the working, step by step.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from helpers.inspection import count_macs, count_parameters

from .core import CheckFailed, call_student, passed, reject_course_code, student_check
from .receptive_field import _oracle


def _require_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise CheckFailed(what, "the answer is not a whole number.", expected="an int", got=repr(value)[:60],
                          hint="Return the number itself, e.g. `return 1234`.")
    return int(value)


def _ask(fn: Callable, what: str) -> int:
    reject_course_code(fn, what)
    return _require_int(call_student(fn, what=what), what)


def _verdict(got: int, expected: int, what: str, question: str, working: list[str], hint: str) -> None:
    if got == expected:
        passed(what, f"{expected:,}")
        return
    raise CheckFailed(what, f"{question}: {got:,} is not right.", expected=f"{expected:,}", got=f"{got:,}",
                      hint=hint + " The working: " + "; ".join(working) + ".")


# ------------------------------------------------------------------ question 1
BOTTLENECK_QUESTION = "parameters of BottleneckBlock(256, 64), BatchNorm included, identity shortcut"


@student_check
def check_drill_bottleneck_parameters(fn: Callable) -> None:
    from torchvision.models.resnet import Bottleneck
    with torch.device("meta"):
        block = Bottleneck(256, 64)
    expected = count_parameters(block)
    got = _ask(fn, "drill_bottleneck_parameters")
    working = [f"{name}: {' x '.join(str(s) for s in m.weight.shape)} = {m.weight.numel():,}"
               if isinstance(m, nn.Conv2d) else f"{name}: 2 x {m.num_features} = {2 * m.num_features:,}"
               for name, m in block.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    working.append("the shortcut is the identity (256 = 4 x 64 channels in and out, stride 1): 0")
    _verdict(got, expected, "drill_bottleneck_parameters", BOTTLENECK_QUESTION, working,
             "Count each convolution's weights (out x in x k x k, no bias) and each BatchNorm's weight and "
             "bias (its running statistics are buffers, not parameters).")


# ------------------------------------------------------------------ question 2
#: The stack of question 2, on a 100 x 100 input.
STACK = [("Conv2d(3, 64, kernel_size=7, stride=2, padding=3)", lambda: nn.Conv2d(3, 64, 7, stride=2, padding=3)),
         ("MaxPool2d(3, stride=2, padding=1)", lambda: nn.MaxPool2d(3, stride=2, padding=1)),
         ("Conv2d(64, 64, kernel_size=3, stride=2)", lambda: nn.Conv2d(64, 64, 3, stride=2)),
         ("MaxPool2d(2)", lambda: nn.MaxPool2d(2))]
STACK_INPUT = 100


@student_check
def check_drill_output_size(fn: Callable) -> None:
    x = torch.zeros(1, 3, STACK_INPUT, STACK_INPUT, device="meta")
    working = [f"input {STACK_INPUT}"]
    with torch.device("meta"):
        for label, build in STACK:
            layer = build()
            before, x = x.shape[-1], layer(x)
            k, s, p = (getattr(layer, a) for a in ("kernel_size", "stride", "padding"))
            k, s, p = (v[0] if isinstance(v, tuple) else v for v in (k, s, p))
            working.append(f"{label}: ({before} + 2 x {p} - {k}) // {s} + 1 = {x.shape[-1]}")
    _verdict(_ask(fn, "drill_output_size"), int(x.shape[-1]), "drill_output_size",
             f"height of the output of the stack on a {STACK_INPUT}x{STACK_INPUT} input", working,
             "Apply out = (in + 2 padding - kernel) // stride + 1 layer by layer (MaxPool2d(2) has stride 2).")


# ------------------------------------------------------------------ question 3
RF_STACK = "MaxPool2d(2) (stride 2), then two Conv2d(kernel_size=3, padding=1)"


@student_check
def check_drill_receptive_field(fn: Callable) -> None:
    stack = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1))
    size, jump = _oracle(stack)
    working = ["start: 1 pixel, jump 1", "MaxPool2d(2): 1 + (2 - 1) x 1 = 2 pixels, jump 1 x 2 = 2",
               "first 3x3: 2 + (3 - 1) x 2 = 6", f"second 3x3: 6 + (3 - 1) x 2 = {size}"]
    _verdict(_ask(fn, "drill_receptive_field"), size, "drill_receptive_field",
             f"receptive field (pixels on a side) of one output of {RF_STACK}", working,
             "After a stride-2 layer each 3x3 convolution adds (3 - 1) x 2 = 4 input pixels, not 2: "
             f"neighbouring outputs are {jump} pixels apart.")


# ------------------------------------------------------------------ question 4
GROUPED = dict(channels=128, groups=32, size=56)


@student_check
def check_drill_grouped_macs(fn: Callable) -> None:
    c, g, s = GROUPED["channels"], GROUPED["groups"], GROUPED["size"]
    conv = nn.Conv2d(c, c, 3, padding=1, groups=g, bias=False)
    expected = count_macs(conv, (1, c, s, s), device="meta")
    working = [f"each output value reads {c} / {g} = {c // g} input channels x 3 x 3 = {c // g * 9} weights",
               f"{c} output channels x {s} x {s} positions = {c * s * s:,} output values",
               f"{c * s * s:,} x {c // g * 9} = {expected:,} MACs (twice as many FLOPs)"]
    _verdict(_ask(fn, "drill_grouped_macs"), expected, "drill_grouped_macs",
             f"multiply-accumulates of Conv2d({c}, {c}, 3, padding=1, groups={g}, bias=False) on a {c}x{s}x{s} "
             "feature map", working,
             "A grouped convolution's output channel sees only its group's in_channels / groups channels: "
             "divide the ungrouped count by groups. Count MACs, not FLOPs.")


__all__ = ["check_drill_bottleneck_parameters", "check_drill_output_size", "check_drill_receptive_field",
           "check_drill_grouped_macs"]
