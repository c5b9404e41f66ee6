"""Tests for helpers.inspection."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from helpers.inspection import (
    LayerRecord,
    count_flops,
    count_macs,
    count_parameters,
    eval_mode,
    format_trace,
    parameter_table,
    trace_shapes,
)


def tiny_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),  # (1, 8, 6, 6): 8*3*9 + 8 = 224 params
        nn.BatchNorm2d(8),  # 16 params
        nn.ReLU(),
        nn.Flatten(),  # (1, 288)
        nn.Linear(288, 10),  # 2890 params
    )


def all_hooks_removed(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


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


def test_trace_shapes_records_leaf_layers_in_order(capsys) -> None:
    model = tiny_net().train()
    records = trace_shapes(model, (1, 3, 8, 8))
    assert records == [
        LayerRecord("0", "Conv2d", (1, 8, 6, 6), 224),
        LayerRecord("1", "BatchNorm2d", (1, 8, 6, 6), 16),
        LayerRecord("2", "ReLU", (1, 8, 6, 6), 0),
        LayerRecord("3", "Flatten", (1, 288), 0),
        LayerRecord("4", "Linear", (1, 10), 2890),
    ]
    assert model.training and all_hooks_removed(model)
    assert capsys.readouterr().out == ""
    trace_shapes(model, torch.zeros(1, 3, 8, 8), verbose=True)
    assert "(1, 8, 6, 6)" in capsys.readouterr().out


def test_trace_shapes_on_resnet_follows_execution_order() -> None:
    model = torchvision.models.resnet18(num_classes=10)
    records = trace_shapes(model, (1, 3, 32, 32))
    assert records[0].name == "conv1" and records[0].output_shape == (1, 64, 16, 16)
    assert records[-1] == LayerRecord("fc", "Linear", (1, 10), 512 * 10 + 10)
    names = [r.name for r in records]
    # The shared ReLU in each BasicBlock runs twice; the downsample runs after the block's convs.
    assert names.count("layer1.0.relu") == 2
    assert names.index("layer2.0.downsample.0") > names.index("layer2.0.conv2")
    assert all_hooks_removed(model)


def test_trace_failure_names_last_layer_and_removes_hooks() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(100, 10))
    with pytest.raises(RuntimeError) as info:
        trace_shapes(model, (1, 3, 8, 8))
    message = str(info.value)
    assert "inside layer '3' (Linear)" in message and "(1, 288)" in message
    assert "last layer that ran was '2' (Flatten) with output shape (1, 288)" in message
    assert isinstance(info.value.__cause__, RuntimeError)  # the original error is chained
    assert "mat1 and mat2" in str(info.value.__cause__)
    assert all_hooks_removed(model)


class ReshapeBug(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(10, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.fc(x.view(x.shape[0], 7, -1))  # wrong reshape: fails between layers


def test_trace_failure_between_layers() -> None:
    model = ReshapeBug().train()
    with pytest.raises(RuntimeError, match="between layers.*'conv' \\(Conv2d\\) with output shape \\(1, 4, 6, 6\\)"):
        trace_shapes(model, (1, 3, 8, 8))
    assert all_hooks_removed(model) and model.training


def test_format_trace() -> None:
    records = trace_shapes(tiny_net(), (1, 3, 8, 8))
    text = format_trace(records)
    lines = text.splitlines()
    assert lines[0].split() == ["Layer", "Type", "Output", "shape", "Params"]
    assert any("Linear" in line and "(1, 10)" in line and "2,890" in line for line in lines)
    assert lines[-1] == "Total parameters in traced layers: 3,130"


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
