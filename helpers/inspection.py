"""Looking inside a model: parameter counts, FLOPs and layer-by-layer output shapes.

Usage::

    from helpers.inspection import count_parameters, count_flops, shape_table
    print(count_parameters(model))
    print(count_flops(model, (1, 3, 32, 32)))
    print(shape_table(model, (1, 3, 32, 32)))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

InputSpec = Sequence[int] | torch.Size | torch.Tensor


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode under ``torch.no_grad()``, then restore each submodule's mode."""
    previous = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        for module, was_training in previous.items():
            module.training = was_training


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _make_input(model: nn.Module, inputs: InputSpec, device: torch.device | str | None) -> torch.Tensor:
    """A tensor on the right device: ``inputs`` itself, or zeros of shape ``inputs`` (batch dim included)."""
    target = torch.device(device) if device is not None else model_device(model)
    if isinstance(inputs, torch.Tensor):
        return inputs.to(target)
    return torch.zeros(tuple(int(d) for d in inputs), device=target)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_table(model: nn.Module, per_leaf: bool = False) -> list[tuple[str, int]]:
    """Parameter count per top-level child (default) or per leaf module (``per_leaf=True``).

    Parameters that belong directly to ``model`` (not to a child) are listed as ``"(own)"``.
    Modules without parameters are listed with 0, so the table shows the whole structure.
    """
    rows: list[tuple[str, int]] = []
    own = sum(p.numel() for p in model.parameters(recurse=False))
    if own:
        rows.append(("(own)", own))
    if per_leaf:
        for name, module in model.named_modules():
            if name and not any(True for _ in module.children()):
                rows.append((name, sum(p.numel() for p in module.parameters(recurse=False))))
    else:
        rows += [(name, count_parameters(child)) for name, child in model.named_children()]
    return rows


def count_flops(model: nn.Module, inputs: InputSpec, device: torch.device | str | None = None) -> int:
    """Floating-point operations of one forward pass, as torch counts them (2 per multiply-add).

    ``inputs`` is an input tensor or an input shape *including* the batch dimension, e.g.
    ``(1, 3, 32, 32)``. The model runs in eval mode without gradients; its mode is restored.
    """
    x = _make_input(model, inputs, device)
    counter = FlopCounterMode(display=False)
    with eval_mode(model), counter:
        model(x)
    return int(counter.get_total_flops())


def count_macs(model: nn.Module, inputs: InputSpec, device: torch.device | str | None = None) -> int:
    """Multiply-accumulate operations (MACs) of one forward pass: ``count_flops // 2``.

    Papers and torchvision's weight metadata (its ``"GFLOPS"`` field) quote
    MACs under the name FLOPs: VGG-16 "15.5 GFLOPs" is 15.5 G MACs, 31 G FLOPs.
    """
    return count_flops(model, inputs, device) // 2


def layer_shapes(model: nn.Module, inputs: InputSpec,
                 device: torch.device | str | None = None) -> list[tuple[str, str, tuple[int, ...], int]]:
    """``(name, type, output shape, parameters)`` of every layer call, by symbolic tracing.

    Uses ``torch.fx`` shape propagation (not forward hooks), so a model whose
    ``forward`` has data-dependent Python control flow cannot be traced.
    """
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp

    x = _make_input(model, inputs, device)
    graph = symbolic_trace(model)
    with eval_mode(graph):
        ShapeProp(graph).propagate(x)
    rows = []
    for node in graph.graph.nodes:
        if node.op != "call_module":
            continue
        module = graph.get_submodule(node.target)
        meta = node.meta.get("tensor_meta")
        shape = tuple(meta.shape) if hasattr(meta, "shape") else ()
        rows.append((str(node.target), type(module).__name__, shape,
                     sum(p.numel() for p in module.parameters())))
    return rows


def shape_table(model: nn.Module, inputs: InputSpec, device: torch.device | str | None = None) -> str:
    """A text table of :func:`layer_shapes`: layer, type, output shape, parameters, and a total."""
    rows = [(name, kind, str(shape), f"{params:,}")
            for name, kind, shape, params in layer_shapes(model, inputs, device)]
    header = ("Layer", "Type", "Output shape", "Params")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(w) if i == 3 else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *map(line, rows), rule,
                      f"Total parameters: {count_parameters(model):,}"])
