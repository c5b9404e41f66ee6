"""Checks for notebook 03 (VGG), and generic model checks later notebooks reuse.

The oracle is torchvision: its ``make_layers`` and ``VGG`` classes build the
reference networks. Both the student's model and the reference are built on the
``meta`` device (shapes only, no memory); the reference takes the student's own
parameter tensors, matched by order and shape
(:func:`helpers.transplant.share_weights_by_order`), and each layer gets seeded
random values only while it runs (:func:`helpers.transplant.weights_on_demand`).
Checking VGG-16 then needs the memory of its largest layer (411 MB), not of two
whole networks (1.1 GB). A student's model passes when it computes the same
outputs as torchvision's in eval mode. When they differ,
:func:`helpers.transplant.first_divergence` names the first layer that differs
and what sits around it.

Generic checks, for any architecture:

* :func:`check_parameter_count` -- the number of parameters;
* :func:`check_matches_torchvision` -- same weights, same outputs.

Each exercise is graded on its own. ``VGG`` builds its layers directly (the
exercise says so), so it does not depend on ``VGGBlock``. ``VGG16`` is built
on ``VGG``; its check calls it with torchvision's VGG standing in for the
student's (:func:`substitute_globals`), so a mistake in ``VGG`` costs only
``VGG``'s points. An answer that is torchvision's model, or is built with
torchvision's ``make_layers`` or ``cfgs``, is refused: it would be compared
with itself.
"""
from __future__ import annotations

import functools
import gc
import inspect
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from helpers.inspection import count_parameters
from helpers.transplant import (TransplantError, copy_weights_by_order, first_divergence,
                                match_by_order, randomize_batchnorm_, share_weights_by_order,
                                weights_on_demand)

from .core import (CheckFailed, assert_shape, assert_values_close, call_student, passed,
                   reject_course_code, require_tensor, student_check)

#: Scale-relative tolerance: max |yours - torchvision| <= ATOL + RTOL * max |torchvision|.
#: Loose enough for TF32 convolutions on a GPU, far tighter than any wiring mistake.
RTOL, ATOL = 1e-3, 1e-6
TRANSPLANT_PROBLEM = ("torchvision's weights cannot be copied into your model: its parameters do "
                      "not line up by order and shape.")
OWN_LAYERS_HINT = ("Write the layers yourself from nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, "
                   "nn.Linear and nn.Dropout, and VGG-16's configuration list from Table 1 of the VGG "
                   "paper; torchvision is only what the check compares your answer with.")
#: Attribute set on the torchvision VGG that stands in for the student's VGG in the VGG16 check.
_STAND_IN = "_course_stand_in"


# ------------------------------------------------------------------ references (private: the oracle)
def _torchvision_vgg(config: Sequence[int | str], num_classes: int = 1000,
                     batch_norm: bool = False) -> nn.Module:
    """torchvision's VGG for any configuration list (its ``make_layers`` and ``VGG`` classes)."""
    from torchvision.models.vgg import VGG, make_layers
    return VGG(make_layers(list(config), batch_norm=batch_norm), num_classes=num_classes)


def _torchvision_vgg_block(in_channels: int, out_channels: int, num_convs: int) -> nn.Sequential:
    """A VGG block built by torchvision's ``make_layers``.

    ``make_layers`` always starts from 3 input channels, so it builds one extra
    ``in_channels``-wide convolution in front, which is then cut off.
    """
    from torchvision.models.vgg import make_layers
    layers = make_layers([in_channels] + [out_channels] * num_convs + ["M"])
    return nn.Sequential(*list(layers)[2:])  # drop Conv2d(3, in_channels) and its ReLU; renumber from 0


def _torchvision_vgg16(num_classes: int = 1000) -> nn.Module:
    from torchvision.models import vgg16
    return vgg16(weights=None, num_classes=num_classes)  # random weights: nothing is downloaded


def _on_meta(factory: Callable[..., nn.Module], *args: Any, **kwargs: Any) -> nn.Module:
    """``factory(*args, **kwargs)`` built on the meta device: shapes only, no memory, no time."""
    with torch.device("meta"):
        return factory(*args, **kwargs)


def _stand_in_vgg(config: Sequence[int | str], num_classes: int = 1000,
                  batch_norm: bool = False) -> nn.Module:
    """torchvision's VGG in place of the student's, on the meta device like every model the checks build."""
    model = _on_meta(_torchvision_vgg, config, num_classes=num_classes, batch_norm=batch_norm)
    setattr(model, _STAND_IN, True)
    return model


def _random_weights_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give ``model``'s weights seeded random values, in place, on the device they are on.

    Weights are well scaled (He-normal over fan_out for convolutions, as torchvision,
    1/sqrt(fan_in) for Linear layers), biases small and non-zero, BatchNorm parameters
    and statistics random, so that a misplaced bias or BatchNorm changes the output.
    """
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, (nn.Conv2d, nn.Linear)):
                continue
            w = module.weight
            fan_in, fan_out = w[0].numel(), w.shape[0] * w[0, 0].numel()
            std = fan_in ** -0.5 if isinstance(module, nn.Linear) else (2.0 / fan_out) ** 0.5
            w.normal_(0.0, std, generator=gen)
            if module.bias is not None:
                module.bias.normal_(0.0, 0.1, generator=gen)
        for buffer in model.buffers():
            buffer.zero_()                      # BatchNorm's counters; statistics are set next
    return randomize_batchnorm_(model, seed)


def _seeded_values(reference: nn.Module, seed: int,
                   device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """For :func:`helpers.transplant.weights_on_demand`: each of ``reference``'s tensors gets
    seeded random values by its position and role, drawn as :func:`_random_weights_` does."""
    roles: dict[int, tuple[int, str, nn.Module]] = {}
    for module in reference.modules():
        for name, t in [*module._parameters.items(), *module._buffers.items()]:
            if t is not None and id(t) not in roles:
                roles[id(t)] = (len(roles), name, module)

    def values(t: torch.Tensor) -> torch.Tensor:
        index, name, module = roles[id(t)]
        gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + index)
        out = torch.empty(t.shape, dtype=t.dtype, device=device)
        if not out.is_floating_point():
            return out.zero_()                                   # BatchNorm's batch counter
        if isinstance(module, (nn.Conv2d, nn.Linear)) and name == "weight":
            fan_in, fan_out = t[0].numel(), t.shape[0] * t[0, 0].numel()
            std = fan_in ** -0.5 if isinstance(module, nn.Linear) else (2.0 / fan_out) ** 0.5
            return out.normal_(0.0, std, generator=gen)
        batch_norm = isinstance(module, nn.modules.batchnorm._BatchNorm)
        if batch_norm and name in ("weight", "running_var"):
            return out.uniform_(0.5, 1.5, generator=gen)          # positive scales
        return out.normal_(0.0, 0.5 if batch_norm else 0.1, generator=gen)   # biases and means
    return values


def _build(cls: Callable, *args: Any, what: str, **kwargs: Any) -> Any:
    """The student's ``cls(*args, **kwargs)`` built on the meta device: shapes only, no memory.

    Code that cannot run there (or the untouched stub) is called as usual instead, so that
    its failures read as always.
    """
    try:
        with torch.device("meta"):
            return cls(*args, **kwargs)
    except Exception:  # noqa: BLE001 - called again below, where failures become feedback
        return call_student(cls, *args, what=what, **kwargs)


@contextmanager
def substitute_globals(fn: Callable, **replacements: Any) -> Iterator[list[str]]:
    """Temporarily rebind global names that ``fn`` looks up, e.g. ``VGG``, to references.

    For a function defined in a notebook the globals are the notebook's namespace,
    so this affects only calls made inside the ``with`` block. Only names that
    already exist there are replaced; the list of replaced names is yielded.
    """
    namespace = getattr(fn, "__globals__", None)
    if namespace is None:
        namespace = getattr(getattr(fn, "__init__", None), "__globals__", None)
    if namespace is None:
        yield []
        return
    saved = {name: namespace[name] for name in replacements if name in namespace}
    namespace.update({name: replacements[name] for name in saved})
    try:
        yield list(saved)
    finally:
        namespace.update(saved)


# ------------------------------------------------------------------ no answers from torchvision
def _code_objects(fn: Any) -> Iterator[tuple[types.CodeType, dict]]:
    """The code of a function, or of a class's methods, with nested functions, and its globals."""
    members = vars(fn).values() if isinstance(fn, type) else [fn]
    for member in members:
        member = getattr(member, "__func__", member)          # staticmethod, classmethod
        if not inspect.isfunction(member):
            continue
        stack = [member.__code__]
        while stack:
            code = stack.pop()
            yield code, member.__globals__
            stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))


def _refuse_borrowed_code(fn: Any, what: str) -> None:
    """Fail when ``fn`` uses torchvision's ``make_layers`` or ``cfgs``, the check's own oracle."""
    import torchvision
    import torchvision.models.vgg as tv_vgg
    oracles = {"make_layers": tv_vgg.make_layers, "cfgs": tv_vgg.cfgs}
    packages = (torchvision, torchvision.models, tv_vgg)
    borrowed = set()
    for code, namespace in _code_objects(fn):
        via_package = any(any(namespace.get(n) is p for p in packages) for n in code.co_names)
        for name in code.co_names:
            value = namespace.get(name)
            borrowed.update(o for o, obj in oracles.items() if value is obj)   # from ... import make_layers
            if via_package and name in oracles and name not in namespace:     # torchvision....make_layers
                borrowed.add(name)
    if borrowed:
        raise CheckFailed(what, f"your code uses torchvision's {' and '.join(sorted(borrowed))}, which "
                                "the check itself uses to build the answer it compares yours with.",
                          hint=OWN_LAYERS_HINT)


def _refuse_torchvision_model(model: nn.Module, what: str) -> None:
    """Fail when ``model`` is, subclasses or contains torchvision's VGG (other than the check's stand-in)."""
    from torchvision.models.vgg import VGG as TorchvisionVGG
    for name, module in model.named_modules():
        if isinstance(module, TorchvisionVGG) and not getattr(module, _STAND_IN, False):
            kind = ("torchvision's VGG" if type(module) is TorchvisionVGG
                    else f"{type(module).__name__}, a subclass of torchvision's VGG")
            where = f"your model's `{name}` is" if name else "your model is"
            raise CheckFailed(what, f"{where} {kind}, so the check would compare torchvision with "
                                    "itself.",
                              expected="a model built from PyTorch layers (nn.Conv2d, nn.ReLU, ...)",
                              got=f"{type(module).__module__}.{type(module).__qualname__}",
                              hint=OWN_LAYERS_HINT)


def _frees_models(check: Callable) -> Callable:
    """Let a failing check free the models it built.

    A failure's traceback keeps every frame it passed through, and with them the
    models and the activations :func:`helpers.transplant.first_divergence` recorded
    (half a gigabyte for a VGG-16 with real weights), and Jupyter keeps the last
    failure. The message says everything, so the traceback and the chained
    exceptions go.
    """
    @functools.wraps(check)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return check(*args, **kwargs)
        except CheckFailed as failure:
            failure.__traceback__ = failure.__context__ = failure.__cause__ = None
            error = failure
            del failure
            gc.collect()
            raise error from None
    return wrapper


# ------------------------------------------------------------------ generic checks
def require_module(value: Any, what: str) -> nn.Module:
    if not isinstance(value, nn.Module):
        raise CheckFailed(what, "the result is not an nn.Module.", expected="an nn.Module",
                          got=type(value).__name__,
                          hint="Subclass nn.Module (call super().__init__() first) and build the "
                               "layers in __init__.")
    return value


@student_check
def check_parameter_count(model: nn.Module, expected: int, what: str, *, hint: str | None = None,
                          verbose: bool = False) -> None:
    """Fail unless ``model`` has exactly ``expected`` parameters (works on the meta device too)."""
    got = count_parameters(require_module(model, what))
    if got != expected:
        raise CheckFailed(
            what, "the number of parameters is wrong.", expected=f"{expected:,}",
            got=f"{got:,} ({got - expected:+,})",
            hint=hint or "Print helpers.inspection.parameter_table(model, per_leaf=True) to see "
                         "where your parameters are and compare each layer with the architecture.")
    if verbose:
        passed(what, f"{got:,} parameters")


@student_check
def check_matches_torchvision(student_model: nn.Module, reference_model: nn.Module,
                              input_shape: Sequence[int], what: str, *, seed: int = 0,
                              verbose: bool = False) -> float:
    """Give the student's model the reference's weights and compare the outputs.

    A reference built on the ``meta`` device (shapes only) takes the student's own
    parameter tensors (:func:`helpers.transplant.share_weights_by_order`), which then get
    seeded random values. When the student's model is on the meta device too, the values
    exist only while each layer runs (:func:`helpers.transplant.weights_on_demand`): VGG-16
    is checked with one layer's weights in memory at a time. A reference with real weights
    lends them to the student's model instead (:func:`helpers.transplant.copy_weights_by_order`),
    its BatchNorm layers given random statistics first. Either way a misplaced BatchNorm shows.

    Both models run in eval mode on :func:`helpers.device.get_device`, on a random batch
    of ``input_shape``. On a mismatch the failure names the first layer that differs
    (:func:`helpers.transplant.first_divergence`).

    Returns the largest absolute difference of the outputs.
    """
    from helpers.device import get_device
    student_model = require_module(student_model, what)
    device = get_device()
    shapes_only = any(t.is_meta for t in reference_model.parameters())
    on_demand = shapes_only and any(t.is_meta for t in [*student_model.parameters(),
                                                         *student_model.buffers()])
    if not on_demand:
        student_model.to(device)
    try:
        if shapes_only:
            match_by_order(reference_model, student_model, source_label="torchvision",
                           target_label="yours")     # in this direction, for the messages
            share_weights_by_order(student_model, reference_model)
            if not on_demand:
                _random_weights_(reference_model, seed)   # the student's tensors, now shared
        else:
            reference_model = randomize_batchnorm_(reference_model.to(device), seed)
            copy_weights_by_order(reference_model, student_model, source_label="torchvision",
                                  target_label="yours")
    except TransplantError as err:
        raise CheckFailed(what, TRANSPLANT_PROBLEM,
                          got=err.message, hint=err.hint + " Layers must be created in the order "
                          "they run.") from None
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(input_shape), generator=gen).to(device)
    if on_demand:
        try:
            with weights_on_demand([reference_model, student_model],
                                   _seeded_values(reference_model, seed, device)) as served:
                max_diff = _compare_outputs(student_model, reference_model, x, what, served=served)
        except _NeedsAllWeights:
            # Your forward uses a layer's weights outside that layer's call: give it all of them.
            student_model.to_empty(device=device)
            share_weights_by_order(student_model, reference_model)
            _random_weights_(reference_model, seed)
            max_diff = _compare_outputs(student_model, reference_model, x, what)
    else:
        max_diff = _compare_outputs(student_model, reference_model, x, what)
    if verbose:
        passed(what, f"same outputs as torchvision on a {tuple(input_shape)} batch on {device} "
                     f"(max |difference| {max_diff:.2g})")
    return max_diff


class _NeedsAllWeights(Exception):
    """The student's forward pass used weights without calling their layer: it needs them all at once."""


def _compare_outputs(student_model: nn.Module, reference_model: nn.Module, x: torch.Tensor,
                     what: str, served: set[int] | None = None) -> float:
    """Both models in eval mode on ``x``; raise with the first divergence, else the max difference.

    ``served``: the set :func:`helpers.transplant.weights_on_demand` yields, when it runs them.
    """
    input_shape = tuple(x.shape)
    with torch.no_grad():
        expected = reference_model.eval()(x)
        if served is not None:
            served.clear()
        try:
            out = call_student(student_model.eval(), x, what=what)
        except CheckFailed as failure:
            if served is not None and "meta" in str(failure.__cause__):
                raise _NeedsAllWeights from None
            raise
    if served is not None and any(id(t) not in served for t in student_model.parameters()):
        raise _NeedsAllWeights
    out = require_tensor(out, what)
    scale = float(expected.abs().max())
    close = out.shape == expected.shape and float((out - expected).abs().max()) <= ATOL + RTOL * scale
    if not close:
        divergence = first_divergence(reference_model, student_model, x, RTOL, ATOL,
                                      reference_label="torchvision")
        if divergence is not None:
            raise CheckFailed(
                what, f"with torchvision's weights copied in, your outputs differ from "
                      f"torchvision's on a random {input_shape} batch; {divergence.summary}.",
                expected=divergence.expected,
                got=divergence.got + ("" if divergence.max_abs_diff is None
                                      else f" (max |difference| {divergence.max_abs_diff:.3g})"),
                hint=divergence.hint[0].upper() + divergence.hint[1:])
        assert_shape(tuple(out.shape), tuple(expected.shape), what)
        assert_values_close(out, expected, what, rtol=RTOL, atol=ATOL + RTOL * scale,
                            context=f"a random {input_shape} batch")
    return float((out - expected).abs().max())


#: The comparison without ``student_check``: inside another check, an unwritten ``forward``
#: must raise its "not attempted yet" to that check instead of printing it and going on.
_matches_torchvision = check_matches_torchvision.__wrapped__


# ------------------------------------------------------------------ VGGBlock
def _add_hint(failure: CheckFailed, summary: str) -> None:
    """Append the architecture summary to a failure whose layers did not line up."""
    if TRANSPLANT_PROBLEM in failure.problem:
        failure.hint = f"{failure.hint} {summary}" if failure.hint else summary
        failure.args = (failure.message,)   # str(failure) shows the longer hint


BLOCK_HINT = ("A VGG block is num_convs times [Conv2d(kernel_size=3, padding=1), ReLU] followed by "
              "MaxPool2d(2, 2); the first convolution maps in_channels to out_channels, the others "
              "out_channels to out_channels.")


@_frees_models
def compare_vgg_block(cls: type, in_channels: int, out_channels: int, num_convs: int,
                      input_shape: Sequence[int], seed: int = 0) -> None:
    """Build ``cls(in_channels, out_channels, num_convs)`` and compare it with torchvision's layers."""
    what = "VGGBlock"
    reject_course_code(cls, what)
    _refuse_borrowed_code(cls, what)
    args = (in_channels, out_channels, num_convs)
    block = require_module(_build(cls, *args, what=what), what)
    _refuse_torchvision_model(block, what)
    reference = _on_meta(_torchvision_vgg_block, *args)
    try:
        _matches_torchvision(block, reference, input_shape, f"{what}{args}", seed=seed)
    except CheckFailed as failure:
        _add_hint(failure, BLOCK_HINT)
        raise


VGG_BLOCK_CASES = [
    # in, out, convs, input (N, C, H, W)
    (3, 64, 2, (2, 3, 16, 16)),      # VGG-16's first stage
    (64, 128, 2, (1, 64, 9, 9)),     # an odd size: pooling drops the last row and column
    (16, 32, 3, (2, 16, 12, 12)),    # a three-convolution stage
]


@student_check
def check_vgg_block(cls: type) -> None:
    for i, (c_in, c_out, n, shape) in enumerate(VGG_BLOCK_CASES):
        compare_vgg_block(cls, c_in, c_out, n, shape, seed=i)
    passed("VGGBlock", f"{len(VGG_BLOCK_CASES)} blocks compute the same as torchvision's layers")


# ------------------------------------------------------------------ VGG
VGG_HINT = ("Build features from the config like torchvision's make_layers (an int c: Conv2d(previous "
            "channels, c, 3, padding=1)[, BatchNorm2d(c)], ReLU; 'M': MaxPool2d(2, 2)), then "
            "avgpool = AdaptiveAvgPool2d((7, 7)) and the classifier Linear(c*7*7, 4096), ReLU, "
            "Dropout(0.5), Linear(4096, 4096), ReLU, Dropout(0.5), Linear(4096, num_classes).")


def _check_vgg_layout(model: nn.Module, what: str) -> None:
    """The attributes the exercise asks for: features, avgpool (7x7) and a classifier with dropout."""
    for name in ("features", "avgpool", "classifier"):
        if not isinstance(getattr(model, name, None), nn.Module):
            raise CheckFailed(what, f"the model has no `{name}` module.",
                              expected="attributes features, avgpool and classifier",
                              got=f"attributes {[n for n, _ in model.named_children()]}",
                              hint=f"Assign self.{name} = ... in __init__, as torchvision does.")
    pool = model.avgpool
    size = getattr(pool, "output_size", None)
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    if not isinstance(pool, nn.AdaptiveAvgPool2d) or size != (7, 7):
        raise CheckFailed(what, "avgpool should be nn.AdaptiveAvgPool2d((7, 7)).", got=repr(pool),
                          hint="It turns any feature map into 7x7, so the classifier works for any "
                               "input size, like torchvision's VGG.")
    dropouts = [m for m in model.classifier.modules() if isinstance(m, nn.Dropout)]
    if len(dropouts) != 2 or any(m.p != 0.5 for m in dropouts):
        raise CheckFailed(what, "the classifier should have two Dropout(p=0.5) layers.",
                          expected="2 x Dropout(p=0.5)", got=", ".join(map(repr, dropouts)) or "none",
                          hint="Put nn.Dropout(0.5) after each of the first two Linear layers' ReLU. "
                               "It does nothing in eval mode, so the output comparison cannot see it.")


@_frees_models
def compare_vgg(cls: type, config: Sequence[int | str], num_classes: int, batch_norm: bool,
                input_shape: Sequence[int], seed: int = 0) -> None:
    """Build ``cls(config, num_classes=..., batch_norm=...)`` and compare it with torchvision's VGG."""
    what = f"VGG({list(config)}, num_classes={num_classes}, batch_norm={batch_norm})"
    reject_course_code(cls, "VGG")
    _refuse_borrowed_code(cls, "VGG")
    model = require_module(_build(cls, list(config), num_classes=num_classes,
                                  batch_norm=batch_norm, what="VGG"), what)
    _refuse_torchvision_model(model, what)
    _check_vgg_layout(model, what)
    reference = _on_meta(_torchvision_vgg, config, num_classes=num_classes, batch_norm=batch_norm)
    try:
        _matches_torchvision(model, reference, input_shape, what, seed=seed)
    except CheckFailed as failure:
        _add_hint(failure, VGG_HINT)
        raise


VGG_CASES = [
    # config, num_classes, batch_norm, input (N, C, H, W). The last stage must have 512
    # channels: torchvision's classifier is fixed at 512 * 7 * 7 inputs.
    ([64, "M", 128, 128, "M", 512, "M"], 10, False, (2, 3, 32, 32)),
    ([32, 32, "M", 512, "M"], 5, True, (2, 3, 24, 24)),
]


@student_check
def check_vgg(cls: type) -> None:
    for i, case in enumerate(VGG_CASES):
        compare_vgg(cls, *case, seed=i)
    passed("VGG", f"{len(VGG_CASES)} configurations (with and without BatchNorm) agree with "
                  "torchvision's VGG")


# ------------------------------------------------------------------ VGG16
VGG16_HINT = ("VGG-16 has 13 convolutions in five stages of 2, 2, 3, 3 and 3, with 64, 128, 256, "
              "512 and 512 channels, each stage ending with 'M', then three Linear layers.")


def build_vgg16(fn: Callable, what: str = "VGG16", **kwargs: Any) -> nn.Module:
    """Call the student's ``VGG16(**kwargs)`` on the meta device, torchvision's VGG in place of theirs."""
    reject_course_code(fn, "VGG16")
    _refuse_borrowed_code(fn, "VGG16")
    with substitute_globals(fn, VGG=_stand_in_vgg):
        model = require_module(_build(fn, what=what, **kwargs), what)
    _refuse_torchvision_model(model, what)
    return model


@_frees_models
def compare_vgg16(fn: Callable, num_classes: int, input_shape: Sequence[int], seed: int = 0) -> None:
    what = f"VGG16(num_classes={num_classes})"
    model = build_vgg16(fn, what, num_classes=num_classes)
    reference = _on_meta(_torchvision_vgg16, num_classes)
    check_parameter_count(model, count_parameters(reference), what, hint=VGG16_HINT)
    _matches_torchvision(model, reference, input_shape, what, seed=seed)


@student_check
@_frees_models
def check_vgg16(fn: Callable) -> None:
    """VGG16() has torchvision's 138,357,544 parameters and its logits on a 64x64 image.

    AdaptiveAvgPool2d((7, 7)) lets VGG take any image of at least 32x32 pixels; a small one
    takes a tenth of the time of 224x224.
    """
    what = "VGG16"
    model = build_vgg16(fn)
    reference = _on_meta(_torchvision_vgg16)
    expected = count_parameters(reference)
    check_parameter_count(model, expected, what, hint=VGG16_HINT)
    _matches_torchvision(model, reference, (1, 3, 64, 64), what)
    small = build_vgg16(fn, "VGG16(num_classes=10)", num_classes=10)
    check_parameter_count(small, count_parameters(_on_meta(_torchvision_vgg16, num_classes=10)),
                          "VGG16(num_classes=10)", hint="Pass num_classes on to VGG.")
    passed(what, f"{expected:,} parameters and torchvision's logits on a 64x64 image; built "
                 "with torchvision's VGG class in place of yours, so only your configuration "
                 "is graded here")
