"""Moving weights between two implementations of one network, and finding where they part.

Two models can compute the same function while naming their layers differently:
torchvision's VGG-16 calls its first convolution ``features.0``, a version built
from blocks may call it ``features.0.layers.0``. Matching parameters by *order
and shape* instead of by name lets you load one model's weights into the other
and then compare them layer by layer.

Usage::

    from helpers.transplant import copy_weights_by_order, first_divergence
    pairs = copy_weights_by_order(torchvision_model, my_model)   # [(source name, target name), ...]
    share_weights_by_order(torchvision_model, my_model)          # the same, sharing storage: no copy
    divergence = first_divergence(torchvision_model, my_model, torch.randn(1, 3, 224, 224))
    print(divergence or "the two models agree layer by layer")

Both functions work on any device; ``first_divergence`` runs the models where
they are, on the device of ``x``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from helpers.inspection import eval_mode

__all__ = ["TransplantError", "match_by_order", "copy_weights_by_order", "share_weights_by_order",
           "weights_on_demand", "Divergence", "first_divergence", "randomize_batchnorm_"]


# ------------------------------------------------------------------ transplant
class TransplantError(ValueError):
    """The two models' parameters (or buffers) do not line up by order and shape.

    ``hint`` says what kind of difference it is (kernel size, channels, a
    missing layer, ...), in words a student can act on.
    """

    def __init__(self, message: str, hint: str):
        self.hint = hint
        super().__init__(f"{message}\nHint: {hint}")
        self.message = message


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _mismatch_hint(source_shape: tuple[int, ...], target_shape: tuple[int, ...], kind: str) -> str:
    """A sentence on what a shape difference at one position usually means."""
    if len(source_shape) != len(target_shape):
        return (f"A different kind of {kind} sits at this position (for example a convolution "
                "where a bias, a BatchNorm or a Linear layer is expected): a layer is missing or "
                "extra, a layer has bias=False, or the layers are created in a different order "
                "from the one they run in.")
    if len(source_shape) == 4:  # convolution weights: (out, in, kH, kW)
        if source_shape[2:] != target_shape[2:]:
            return (f"The kernel sizes differ ({source_shape[2]}x{source_shape[3]} against "
                    f"{target_shape[2]}x{target_shape[3]}): check kernel_size.")
        if source_shape[1] != target_shape[1]:
            return ("The number of input channels differs: every convolution takes as many "
                    "channels as the layer before it produces.")
        return "The number of output channels differs: check out_channels at this layer."
    if len(source_shape) == 2:  # Linear weights: (out_features, in_features)
        if source_shape[1] != target_shape[1]:
            return ("The number of input features of this Linear layer differs: it must equal "
                    "the size of what reaches it (channels x height x width after flattening).")
        return "The number of output features of this Linear layer differs (num_classes?)."
    return "The sizes differ: check the number of channels or features of this layer."


Named = list[tuple[str, torch.Tensor]]


def _lookahead_hint(source: Named, target: Named, i: int, source_label: str, target_label: str,
                    kind: str) -> str | None:
    """When one side looks like it skipped a layer, say so (a shape reappears a few places later)."""
    for skip in range(1, 5):
        if i + skip < len(source) and _shape(source[i + skip][1]) == _shape(target[i][1]):
            return (f"{target_label.capitalize()} seems to lack the layer that holds {source_label}'s "
                    f"{source[i][0]} {_shape(source[i][1])}: {target[i][0]} matches {source_label}'s "
                    f"{source[i + skip][0]}, {skip} {kind}(s) further on.")
        if i + skip < len(target) and _shape(target[i + skip][1]) == _shape(source[i][1]):
            return (f"{target_label.capitalize()} seems to have an extra layer at {target[i][0]} "
                    f"{_shape(target[i][1])}: {source_label}'s {source[i][0]} matches "
                    f"{target[i + skip][0]}, {skip} {kind}(s) further on.")
    return None


def _pair_up(kind: str, source: Named, target: Named, source_label: str,
             target_label: str) -> list[tuple[str, str]]:
    """Check that two named tensor lists match by order and shape; return the name pairs."""
    for i, ((s_name, s), (t_name, t)) in enumerate(zip(source, target)):
        if _shape(s) != _shape(t):
            before = (f" The {kind}s before it match (the last pair: {source[i - 1][0]} and "
                      f"{target[i - 1][0]})." if i else "")
            skipped = _lookahead_hint(source, target, i, source_label, target_label, kind)
            hint = _mismatch_hint(_shape(s), _shape(t), kind)
            if skipped:   # a layer missing or extra explains it; other kinds of tensor need both
                hint = f"{skipped} {hint}" if s.dim() != t.dim() else skipped
            raise TransplantError(
                f"{kind} #{i + 1} differs in shape: {source_label} has {s_name} {_shape(s)}, "
                f"{target_label} has {t_name} {_shape(t)}.{before}", hint)
    if len(source) != len(target):
        longer, label = (source, source_label) if len(source) > len(target) else (target, target_label)
        extra_name, extra = longer[min(len(source), len(target))]
        raise TransplantError(
            f"{source_label} has {len(source)} {kind} tensors and {target_label} has "
            f"{len(target)}: the first without a partner is {extra_name} {_shape(extra)} "
            f"({label}).",
            "A layer is missing on one side or extra on the other (count the convolutions, "
            "BatchNorm and Linear layers), or one side has layers created with bias=False.")
    return [(s_name, t_name) for (s_name, _), (t_name, _) in zip(source, target)]


def match_by_order(source: nn.Module, target: nn.Module, *, source_label: str = "source",
                   target_label: str = "target") -> list[tuple[str, str]]:
    """Pair ``source``'s parameters and buffers with ``target``'s by order and shape; change nothing.

    Returns the ``(source name, target name)`` pairs, parameters first, then buffers.

    Raises:
        TransplantError: as :func:`copy_weights_by_order`, with the same messages.
    """
    pairs = _pair_up("parameter", list(source.named_parameters()), list(target.named_parameters()),
                     source_label, target_label)
    return pairs + _pair_up("buffer", list(source.named_buffers()), list(target.named_buffers()),
                            source_label, target_label)


def copy_weights_by_order(source: nn.Module, target: nn.Module, *, source_label: str = "source",
                          target_label: str = "target") -> list[tuple[str, str]]:
    """Copy ``source``'s parameters and buffers into ``target``, matched by order and shape.

    Parameters are paired in the order ``named_parameters()`` lists them (the order
    the layers were created in), and so are buffers (BatchNorm's running mean,
    running variance and batch counter). Names may differ; shapes may not. Values
    are converted to the target's device and dtype.

    Returns the ``(source name, target name)`` pairs, parameters first, then buffers.

    Raises:
        TransplantError: when the counts or a shape differ. Nothing is copied then.
            The message names both sides' tensors and shapes at the first mismatch;
            ``error.hint`` says what the difference usually means.
    """
    src_params, tgt_params = list(source.named_parameters()), list(target.named_parameters())
    src_buffers, tgt_buffers = list(source.named_buffers()), list(target.named_buffers())
    pairs = match_by_order(source, target, source_label=source_label, target_label=target_label)
    with torch.no_grad():
        for (_, s), (_, t) in zip(src_params + src_buffers, tgt_params + tgt_buffers):
            t.copy_(s)
    return pairs


def share_weights_by_order(source: nn.Module, target: nn.Module, *, source_label: str = "source",
                           target_label: str = "target") -> list[tuple[str, str]]:
    """Make ``target`` use ``source``'s own parameter and buffer tensors, matched by order and shape.

    The pairing is :func:`copy_weights_by_order`'s, but nothing is copied: each of
    ``target``'s tensors is replaced by ``source``'s (``load_state_dict(..., assign=True)``),
    so the two models share storage and a change to one shows in the other. ``target``
    may be built on the ``meta`` device (shapes only, no memory): a second VGG-16 then
    costs nothing instead of half a gigabyte. ``target`` ends up on ``source``'s device
    and dtype.

    Returns the ``(source name, target name)`` pairs, parameters first, then buffers.

    Raises:
        TransplantError: as :func:`copy_weights_by_order`; nothing is shared then.
    """
    pairs = match_by_order(source, target, source_label=source_label, target_label=target_label)
    tensors = dict(source.named_parameters()) | dict(source.named_buffers())
    state = {t_name: tensors[s_name] for s_name, t_name in pairs}
    persistent = target.state_dict(keep_vars=True).keys()
    target.load_state_dict({k: v for k, v in state.items() if k in persistent}, assign=True)
    for name in state.keys() - persistent:               # non-persistent buffers are not in state_dict
        module_name, _, attr = name.rpartition(".")
        target.get_submodule(module_name).register_buffer(attr, state[name], persistent=False)
    return pairs


@contextmanager
def weights_on_demand(models: Sequence[nn.Module],
                      values: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[set[int]]:
    """Run models built on the ``meta`` device, each layer holding real weights only while it runs.

    Inside the ``with`` block, every module that owns meta-device parameters or buffers
    gets them, right before it is called, as real tensors: ``values(t)`` for each meta
    tensor ``t`` (same shape and dtype, on the device to compute on; it must return the same
    values every time). Right after the call they go back to the meta device. A forward
    pass then needs the memory of one layer's weights, not of the whole model: for VGG-16,
    the 411 MB of its largest layer instead of 553 MB, and nothing at all between calls.
    Tensors shared between models (:func:`share_weights_by_order`) get the same values in
    both. Only layers called through ``module(...)`` are served: a forward pass that reads
    a module's weights without calling it (``F.conv2d(x, self.conv.weight)``) gets meta
    tensors, and PyTorch may then compute garbage without an error. The block therefore
    receives the set of the ``id`` of every tensor served so far (clear it to count afresh):
    a tensor missing from it was not used through its layer.

    The tensors are swapped in place (:func:`torch.utils.swap_tensors`), so every model and
    module that holds one sees its values. On leaving the block every tensor is on the meta
    device again and the hooks are gone, also after an error.
    """
    from torch.utils import swap_tensors

    loaded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}   # id -> (tensor, its meta stand-in)
    served: set[int] = set()

    def load(tensors: list[torch.Tensor]) -> None:
        for t in tensors:
            if id(t) not in loaded:        # a tensor shared by two layers is loaded once
                real = values(t)
                if isinstance(t, nn.Parameter):
                    real = nn.Parameter(real, requires_grad=t.requires_grad)
                swap_tensors(t, real)        # t now holds the values, `real` the meta tensor
                loaded[id(t)] = (t, real)
                served.add(id(t))

    def unload(tensors: list[torch.Tensor]) -> None:
        for t in tensors:
            if id(t) in loaded:
                swap_tensors(*loaded.pop(id(t)))

    with ExitStack() as stack:
        stack.callback(lambda: unload([t for t, _ in list(loaded.values())]))
        for model in models:
            for module in model.modules():
                own = [t for t in [*module._parameters.values(), *module._buffers.values()]
                       if t is not None and t.is_meta]
                if own:
                    stack.enter_context(module.register_forward_pre_hook(
                        lambda mod, args, own=own: load(own)))
                    stack.enter_context(module.register_forward_hook(
                        lambda mod, args, out, own=own: unload(own), always_call=True))
        yield served


def randomize_batchnorm_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm layer random affine parameters and running statistics, in place.

    A freshly built BatchNorm layer has mean 0, variance 1, weight 1 and bias 0, so in
    eval mode it is almost the identity and a network with a misplaced BatchNorm can
    still produce the right numbers. Random statistics make such a mistake visible.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                if m.running_mean is not None:
                    m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
                    m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=gen) * 0.5)
    return model


# ------------------------------------------------------------------ divergence
@dataclass(eq=False)  # compared by identity: list.index must not compare tensors
class _Call:
    """One call of a leaf (or parameter-owning) module during a forward pass."""

    name: str
    module: nn.Module
    aligned: bool  # compared with the other model's calls
    input: torch.Tensor | None = None  # clones, kept for aligned calls only
    output: torch.Tensor | None = None
    output_shape: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} ({type(self.module).__name__})"


@dataclass
class _Run:
    calls: list[_Call] = field(default_factory=list)
    output: object = None
    error: Exception | None = None

    @property
    def aligned(self) -> list[_Call]:
        return [c for c in self.calls if c.aligned]

    def between(self, first: _Call | None, last: _Call | None) -> list[_Call]:
        """The non-aligned calls strictly after ``first`` and before ``last`` (None: the ends)."""
        start = 0 if first is None else self.calls.index(first) + 1
        stop = len(self.calls) if last is None else self.calls.index(last)
        return [c for c in self.calls[start:stop] if not c.aligned]


def _first_tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _owns_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _record(model: nn.Module, x: torch.Tensor, align: str) -> _Run:
    """Run ``model`` on ``x`` in eval mode, recording every leaf call in execution order."""
    run = _Run()
    with ExitStack() as stack:
        for name, module in model.named_modules():
            is_leaf = not any(True for _ in module.children())
            aligned = _owns_parameters(module) if align == "parameters" else is_leaf
            if not (is_leaf or aligned):
                continue
            label = name or type(module).__name__
            pending: list[_Call] = []

            def pre_hook(mod, args, label=label, aligned=aligned, pending=pending):
                call = _Call(label, mod, aligned)
                if aligned:
                    t = _first_tensor(args)
                    call.input = None if t is None else t.detach().clone()
                pending.append(call)
                run.calls.append(call)

            def hook(mod, args, output, pending=pending):
                call = pending.pop()
                t = _first_tensor(output)
                call.output_shape = () if t is None else tuple(t.shape)
                if call.aligned and t is not None:
                    call.output = t.detach().clone()   # clone: a later in-place ReLU would change it

            stack.enter_context(module.register_forward_pre_hook(pre_hook))
            stack.enter_context(module.register_forward_hook(hook))
        with eval_mode(model):
            try:
                run.output = model(x)
            except Exception as err:  # noqa: BLE001 - reported as a divergence
                run.error = err
    return run  # the ExitStack removed every hook, also when the forward pass failed


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def _close(candidate: torch.Tensor, reference: torch.Tensor, rtol: float, atol: float) -> bool:
    """Same shape and max |difference| <= atol + rtol * max |reference| (scale-relative)."""
    if tuple(candidate.shape) != tuple(reference.shape):
        return False
    if not reference.numel():
        return True
    scale = float(reference.double().abs().max())
    return _max_diff(candidate, reference) <= atol + rtol * scale


def _names(calls: Sequence[_Call]) -> str:
    return ", ".join(c.label for c in calls) if calls else "nothing"


@dataclass
class Divergence:
    """Where two models first compute different things, and what to look at.

    Attributes:
        kind: ``"input"`` (the input to an aligned layer already differs),
            ``"shape"`` (a layer's output shape differs), ``"values"`` (a layer
            computes different values from the same input), ``"layer"`` (a
            different kind of layer, or one model has more layers),
            ``"output"`` (every aligned layer agrees but the final outputs differ)
            or ``"error"`` (the candidate's forward pass failed).
        reference_layer, candidate_layer: the layer names in each model
            (``None`` where a model has no such layer).
        index: position of the layer among the aligned layers (0-based).
        expected, got: shapes or a short description, reference side first.
        max_abs_diff: the largest absolute difference, when the shapes agree.
        hint: what to check, naming the layers that run in between in both models.
    """

    kind: str
    index: int
    reference_layer: str | None
    candidate_layer: str | None
    expected: str
    got: str
    max_abs_diff: float | None
    hint: str
    reference_label: str = "the reference"

    @property
    def where(self) -> str:
        """``"<candidate name> (torchvision's <reference name>)"``-style location."""
        if self.candidate_layer and self.reference_layer:
            if self.candidate_layer == self.reference_layer:
                return self.candidate_layer
            return f"{self.candidate_layer} ({self.reference_label} calls it {self.reference_layer})"
        return self.candidate_layer or self.reference_layer or "the model's output"

    @property
    def summary(self) -> str:
        """One sentence: which layer, and what differs there."""
        what = {"input": "its input already differs",
                "shape": "its output has another shape",
                "values": "its output values differ",
                "layer": "a different layer runs there",
                "output": "the final output differs",
                "error": "the forward pass failed"}[self.kind]
        if self.kind in ("output", "error"):
            return f"every layer with parameters agrees, but {what}"
        return f"the first layer that differs is {self.where}: {what}"

    def describe(self) -> str:
        diff = "" if self.max_abs_diff is None else f", max |difference| {self.max_abs_diff:.3g}"
        return (f"{self.summary}\n"
                f"  expected: {self.expected}\n  got:      {self.got}{diff}\n  hint: {self.hint}")

    def __str__(self) -> str:
        return self.describe()


def _describe_module(module: nn.Module) -> str:
    return repr(module) if not any(True for _ in module.children()) else type(module).__name__


def _compare(ref: _Run, cand: _Run, rtol: float, atol: float, who: str) -> Divergence | None:
    ref_aligned, cand_aligned = ref.aligned, cand.aligned
    previous: tuple[_Call, _Call] | None = None
    for i, (r, c) in enumerate(zip(ref_aligned, cand_aligned)):
        r_prev, c_prev = previous if previous else (None, None)
        between = (f"between {r_prev.name} and {r.name} {who} runs {_names(ref.between(r_prev, r))}; "
                   f"between {c_prev.name} and {c.name} yours runs {_names(cand.between(c_prev, c))}"
                   if previous else
                   f"before {r.name} {who} runs {_names(ref.between(None, r))}; "
                   f"before {c.name} yours runs {_names(cand.between(None, c))}")
        if type(r.module) is not type(c.module):
            return Divergence(
                "layer", i, r.name, c.name, _describe_module(r.module), _describe_module(c.module), None,
                f"a {type(c.module).__name__} runs where {who} runs a "
                f"{type(r.module).__name__}: a layer is missing, extra or out of order ({between}).")
        if r.input is not None and c.input is not None and not _close(c.input, r.input, rtol, atol):
            same_shape = r.input.shape == c.input.shape
            return Divergence(
                "input", i, r.name, c.name, f"input of shape {tuple(r.input.shape)}",
                f"input of shape {tuple(c.input.shape)}",
                _max_diff(c.input, r.input) if same_shape else None,
                (f"the input to this layer already differs, although the layer before it agreed: "
                 f"check the activation or pooling in between ({between}; functions called in "
                 "forward(), such as F.relu, are not listed)." if previous else
                 f"the input to your first layer already differs from the model's input: check "
                 f"what your forward() does before it ({between})."))
        if r.output is not None and c.output is not None:
            if r.output.shape != c.output.shape:
                return Divergence(
                    "shape", i, r.name, c.name, f"output of shape {tuple(r.output.shape)}",
                    f"output of shape {tuple(c.output.shape)}", None,
                    f"the same input gives an output of another shape: check padding, stride and "
                    f"kernel size. {who.capitalize()}: {_describe_module(r.module)}; yours: "
                    f"{_describe_module(c.module)}.")
            if not _close(c.output, r.output, rtol, atol):
                return Divergence(
                    "values", i, r.name, c.name, f"output of shape {tuple(r.output.shape)}",
                    "different values", _max_diff(c.output, r.output),
                    f"the same input and the same weights give different values: compare the "
                    f"layer settings. {who.capitalize()}: {_describe_module(r.module)}; yours: "
                    f"{_describe_module(c.module)}.")
        previous = (r, c)
    n_ref, n_cand = len(ref_aligned), len(cand_aligned)
    if n_ref != n_cand:
        i = min(n_ref, n_cand)
        extra = ref_aligned[i] if n_ref > n_cand else cand_aligned[i]
        side = f"{who} has" if n_ref > n_cand else "yours has"
        return Divergence(
            "layer", i, extra.name if n_ref > n_cand else None, extra.name if n_cand > n_ref else None,
            f"{n_ref} layers with parameters", f"{n_cand} layers with parameters", None,
            f"the first {i} agree, then {side} {extra.label} that the other model never runs.")
    if cand.error is not None:
        last = cand.calls[-1].label if cand.calls else "none"
        return Divergence(
            "error", n_ref, None, None, "a forward pass that finishes",
            f"{type(cand.error).__name__}: {cand.error}", None,
            f"every layer that ran agreed; the failure came after {last}.")
    r_out, c_out = _first_tensor(ref.output), _first_tensor(cand.output)
    if r_out is None or c_out is None:
        return None
    if not _close(c_out, r_out, rtol, atol):
        r_last, c_last = (ref_aligned[-1], cand_aligned[-1]) if ref_aligned else (None, None)
        after = (f"after {r_last.name} {who} runs {_names(ref.between(r_last, None))}; "
                 f"after {c_last.name} yours runs {_names(cand.between(c_last, None))}"
                 if r_last else f"{who} runs {_names(ref.calls)}; yours runs {_names(cand.calls)}")
        same_shape = r_out.shape == c_out.shape
        return Divergence(
            "output", n_ref, None, None, f"output of shape {tuple(r_out.shape)}",
            f"output of shape {tuple(c_out.shape)}", _max_diff(c_out, r_out) if same_shape else None,
            f"all {n_ref} layers with parameters agree, but the final outputs differ: check what "
            f"runs after the last of them ({after}; functions called in forward() are not listed).")
    return None


def first_divergence(reference: nn.Module, candidate: nn.Module, x: torch.Tensor, rtol: float = 1e-4,
                     atol: float = 1e-5, align: str = "parameters",
                     reference_label: str = "the reference") -> Divergence | None:
    """Run both models on ``x`` and describe the first layer whose output differs.

    Both models run in eval mode under ``torch.no_grad()`` (their modes are restored),
    on the device they are on, which must be ``x``'s. Forward hooks record each leaf
    module's call in execution order and are removed afterwards, even on errors.

    ``align="parameters"`` pairs up the layers that own parameters (convolutions,
    BatchNorm, Linear), which survives differences in how parameter-free layers are
    organised; ``align="all"`` pairs every leaf module. For each pair, in order: a
    different layer type, an input that already differs (the mistake sits in the
    parameter-free layers in between, which the hint lists for both models), an
    output of another shape (padding, stride, kernel size), or other values. If
    every pair agrees, the final outputs are compared.

    Tensors count as equal when ``max |a - b| <= atol + rtol * max |reference|``.
    ``reference_label`` names the reference in the hints (e.g. ``"torchvision"``).
    Call it after :func:`copy_weights_by_order`, so that both models hold the same weights.

    Returns:
        a :class:`Divergence`, or ``None`` when the models agree.
    """
    if align not in ("parameters", "all"):
        raise ValueError(f"align must be 'parameters' or 'all', got {align!r}")
    ref_run = _record(reference, x, align)
    if ref_run.error is not None:
        raise RuntimeError(f"the reference model failed on an input of shape {tuple(x.shape)}: "
                           f"{type(ref_run.error).__name__}: {ref_run.error}") from ref_run.error
    cand_run = _record(candidate, x, align)
    divergence = _compare(ref_run, cand_run, rtol, atol, reference_label)
    if divergence is not None:
        divergence.reference_label = reference_label
    if divergence is not None and cand_run.error is not None and divergence.kind != "error":
        divergence.hint += (f" (After that, your forward pass failed: "
                            f"{type(cand_run.error).__name__}: {cand_run.error})")
    return divergence

