"""Looking inside a model: parameter counts, FLOPs and layer-by-layer output shapes.

Usage::

    from helpers.inspection import count_parameters, count_flops, trace_shapes, format_trace
    print(count_parameters(model))
    print(count_flops(model, (1, 3, 32, 32)))
    print(format_trace(trace_shapes(model, (1, 3, 32, 32))))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

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


@dataclass
class LayerRecord:
    """One leaf layer's call during a traced forward pass."""

    name: str  # dotted module name, e.g. "features.0"
    type_name: str  # class name, e.g. "Conv2d"
    output_shape: tuple[int, ...]
    params: int  # parameters owned by this layer


def _shape_of(output: object) -> tuple[int, ...]:
    """Shape of a layer's output: the tensor's, or the first tensor's in a tuple/list/dict."""
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            shape = _shape_of(item)
            if shape:
                return shape
    return ()


def trace_shapes(
    model: nn.Module,
    input_shape: InputSpec,
    device: torch.device | str | None = None,
    verbose: bool = False,
) -> list[LayerRecord]:
    """Run one forward pass and record each leaf layer's output shape, in execution order.

    ``input_shape`` includes the batch dimension (e.g. ``(1, 3, 32, 32)``) or is an input
    tensor. A layer called twice appears twice. With ``verbose`` the table is printed.

    Raises:
        RuntimeError: if the forward pass fails; the message names the layer that failed
            (when known) and the last layer that ran with its output shape. The original
            exception is chained.
    """
    x = _make_input(model, input_shape, device)
    records: list[LayerRecord] = []
    running: list[tuple[str, str, tuple[int, ...]]] = []  # layer entered but not finished
    handles = []

    def make_hooks(name: str, module: nn.Module):
        own_params = sum(p.numel() for p in module.parameters(recurse=False))

        def pre_hook(mod: nn.Module, args: tuple) -> None:
            running.append((name, type(mod).__name__, _shape_of(args)))

        def hook(mod: nn.Module, args: tuple, output: object) -> None:
            running.pop()
            records.append(LayerRecord(name, type(mod).__name__, _shape_of(output), own_params))

        return pre_hook, hook

    try:
        for name, module in model.named_modules():
            if not any(True for _ in module.children()):
                pre_hook, hook = make_hooks(name or type(module).__name__, module)
                handles.append(module.register_forward_pre_hook(pre_hook))
                handles.append(module.register_forward_hook(hook))
        with eval_mode(model):
            model(x)
    except Exception as err:
        raise RuntimeError(_failure_message(records, running, tuple(x.shape), err)) from err
    finally:
        for handle in handles:
            handle.remove()
    if verbose:
        print(format_trace(records))
    return records


def _failure_message(
    records: list[LayerRecord],
    running: list[tuple[str, str, tuple[int, ...]]],
    input_shape: tuple[int, ...],
    err: Exception,
) -> str:
    if running:
        name, type_name, in_shape = running[-1]
        where = f"The forward pass failed inside layer '{name}' ({type_name}), which got an input of shape {in_shape}."
    else:
        where = "The forward pass failed in code between layers (for example a reshape in forward())."
    if records:
        last = records[-1]
        before = f" The last layer that ran was '{last.name}' ({last.type_name}) with output shape {last.output_shape}."
    else:
        before = f" No layer finished; the model input had shape {input_shape}."
    return f"{where}{before} Original error: {type(err).__name__}: {err}"


def format_trace(records: Sequence[LayerRecord]) -> str:
    """A text table of :func:`trace_shapes` records with a parameter total."""
    header = ("Layer", "Type", "Output shape", "Params")
    rows = [(r.name, r.type_name, str(tuple(r.output_shape)), f"{r.params:,}") for r in records]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(w) if i == 3 else cell.ljust(w) for i, (cell, w) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "-" * len(line(header))
    # A layer called twice shares its parameters: count each layer once in the total.
    total = sum({r.name: r.params for r in records}.values())
    return "\n".join([line(header), rule, *map(line, rows), rule, f"Total parameters in traced layers: {total:,}"])
