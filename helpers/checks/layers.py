"""Reading a student's layers: the toolkit every model check shares.

The structure checks of 04, 05, 06 and 07 look at a model's convolutions and
normalisation layers in the order they were created and describe them in
messages. They all do it with these functions, so a convolution reads the
same in every notebook's feedback.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from .core import CheckFailed

#: The normalisation layers a structure check counts.
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


class ConvSpec(NamedTuple):
    """What a structure check compares of a convolution (its weights aside)."""

    in_channels: int
    out_channels: int
    kernel_size: tuple
    stride: tuple
    padding: tuple
    groups: int
    bias: bool


def convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The model's convolutions in the order they were created, with their names."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def norms(model: nn.Module, types: tuple[type, ...] = NORM_TYPES) -> list[tuple[str, nn.Module]]:
    """The model's normalisation layers (BatchNorm, GroupNorm, LayerNorm) in order, with their names."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, types)]


def batch_norms(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's BatchNorm layers in order, with their names."""
    return norms(model, (nn.modules.batchnorm._BatchNorm,))


def conv_spec(conv: nn.Conv2d) -> ConvSpec:
    return ConvSpec(conv.in_channels, conv.out_channels, tuple(conv.kernel_size), tuple(conv.stride),
                    tuple(conv.padding) if not isinstance(conv.padding, str) else conv.padding,
                    conv.groups, conv.bias is not None)


def describe_padding(conv: nn.Conv2d) -> str:
    """``padding=1``, or ``padding='same'`` for a string padding (never its first letter)."""
    if isinstance(conv.padding, str):
        return f"padding={conv.padding!r}"
    return f"padding={conv.padding[0]}"


def describe_conv(name: str, conv: nn.Conv2d) -> str:
    """``name: Conv2d(16, 32, kernel_size=3x3, stride=1, padding=1[, groups=G], bias=False)``."""
    k, s = conv.kernel_size, conv.stride
    groups = f", groups={conv.groups}" if conv.groups != 1 else ""
    return (f"{name}: Conv2d({conv.in_channels}, {conv.out_channels}, kernel_size={k[0]}x{k[1]}, "
            f"stride={s[0]}, {describe_padding(conv)}{groups}, bias={conv.bias is not None})")


def describe_convs(pairs: Sequence[tuple[str, nn.Conv2d]]) -> str:
    return "; ".join(describe_conv(n, m) for n, m in pairs) or "none"


def require_no_bias(pairs: Sequence[tuple[str, nn.Conv2d]], what: str, *, hint: str | None = None) -> None:
    """Fail when a convolution followed by BatchNorm has a bias."""
    biased = [n for n, m in pairs if m.bias is not None]
    if biased:
        raise CheckFailed(what, f"the convolution {biased[0]} has a bias.",
                          expected="nn.Conv2d(..., bias=False) everywhere",
                          got=f"a bias in {', '.join(biased)}",
                          hint=hint or ("Every convolution here is followed by BatchNorm, whose shift makes a "
                                        "bias useless: create the convolutions with bias=False, as torchvision does."))


def comparison_input(shape: Sequence[int], seed: int, device: torch.device) -> torch.Tensor:
    """The seeded random batch the model comparisons use (same seed, same values)."""
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed)).to(device)


def tensors_close(a: object, b: torch.Tensor, rtol: float = 1e-3, atol: float = 1e-5) -> bool:
    """Whether ``a`` is a tensor of ``b``'s shape within ``atol + rtol * max |b|`` of it."""
    if not isinstance(a, torch.Tensor) or a.shape != b.shape:
        return False
    return float((a - b).abs().max()) <= atol + rtol * float(b.abs().max())
