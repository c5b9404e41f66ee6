"""Tests for helpers.inspection."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from helpers.inspection import (
    count_flops,
    count_macs,
    count_parameters,
    eval_mode,
    parameter_table,
)


def tiny_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),  # (1, 8, 6, 6): 8*3*9 + 8 = 224 params
        nn.BatchNorm2d(8),  # 16 params
        nn.ReLU(),
        nn.Flatten(),  # (1, 288)
        nn.Linear(288, 10),  # 2890 params
    )


def test_count_parameters() -> None:
    model = tiny_net()
    assert count_parameters(model) == 224 + 16 + 2890
    model[0].requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 16 + 2890
    assert count_parameters(model) == 224 + 16 + 2890


def test_resnet18_parameter_count() -> None:
    assert count_parameters(torchvision.models.resnet18()) == 11_689_512


def test_parameter_table() -> None:
    model = tiny_net()
    assert parameter_table(model) == [("0", 224), ("1", 16), ("2", 0), ("3", 0), ("4", 2890)]
    nested = nn.Sequential()
    nested.add_module("features", nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
    nested.add_module("head", nn.Linear(8, 2))
    assert parameter_table(nested) == [("features", 224), ("head", 18)]
    assert parameter_table(nested, per_leaf=True) == [("features.0", 224), ("features.1", 0), ("head", 18)]


def test_flops_match_hand_computation() -> None:
    conv = nn.Conv2d(3, 8, 3)
    expected_conv = 2 * 8 * 3 * 9 * 36  # 2 * C_out * C_in * k*k * H_out*W_out
    assert count_flops(conv, (1, 3, 8, 8)) == expected_conv
    assert count_macs(conv, torch.zeros(1, 3, 8, 8)) == expected_conv // 2
    linear = nn.Linear(288, 10)
    assert count_flops(linear, (4, 288)) == 2 * 4 * 288 * 10
    # FlopCounterMode counts only conv/matmul-like ops, not BatchNorm/ReLU.
    assert count_flops(tiny_net(), (1, 3, 8, 8)) == expected_conv + 2 * 288 * 10


def test_flops_restore_training_mode_and_need_no_grad() -> None:
    model = tiny_net().train()
    model[1].eval()  # a mixed state must come back exactly
    before = model[1].running_mean.clone()
    count_flops(model, (2, 3, 8, 8))
    assert model.training and not model[1].training
    assert torch.equal(model[1].running_mean, before)  # ran in eval mode: stats untouched


def test_eval_mode_restores_after_exception() -> None:
    model = tiny_net().train()
    with pytest.raises(KeyError), eval_mode(model):
        assert not model.training and not torch.is_grad_enabled()
        raise KeyError("boom")
    assert model.training and torch.is_grad_enabled()


def test_no_hook_tracer_in_helpers():
    """Notebook 02's exercise 3 is a forward-hook shape tracer: helpers must not hand it out."""
    import helpers.inspection as inspection
    assert not any(hasattr(inspection, name) for name in ("trace_shapes", "format_trace", "LayerRecord"))


def test_layer_shapes_agree_with_running_the_layers():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    from helpers.inspection import layer_shapes, shape_table
    rows = layer_shapes(model, (2, 3, 8, 8))
    x, expected = torch.zeros(2, 3, 8, 8), []
    for name, layer in model.named_children():
        x = layer(x)
        expected.append((name, type(layer).__name__, tuple(x.shape),
                         sum(p.numel() for p in layer.parameters())))
    assert rows == expected
    table = shape_table(model, (2, 3, 8, 8))
    assert "(2, 8, 6, 6)" in table and "Total parameters: 3,114" in table


def test_count_macs_is_half_the_flops_and_matches_torchvision_metadata():
    import torchvision
    from helpers.inspection import count_macs
    model = torchvision.models.resnet18()
    macs = count_macs(model, (1, 3, 224, 224))
    # torchvision's "GFLOPS" metadata (meta["_ops"]) for resnet18 is 1.814: multiply-adds.
    assert round(macs / 1e9, 3) == torchvision.models.ResNet18_Weights.DEFAULT.meta["_ops"]
