"""Generic model checks that every architecture notebook (03 onwards) reuses.

* :func:`check_parameter_count` -- the number of parameters;
* :func:`check_matches_torchvision` -- same weights, same outputs as a torchvision
  reference, compared on the ``meta`` device where possible so that a large
  network needs the memory of one layer at a time;
* :func:`substitute_globals` -- call a student's factory with a trusted class
  standing in for one of their earlier answers, so each exercise is graded alone;
* :func:`frees_models`, :func:`one_thread` -- decorators for checks that build models;
* :func:`on_meta`, :func:`random_weights_` -- shapes-only models, seeded weights.

The notebook-specific checks (``vgg.py``, ``resnet.py``, ...) build their
torchvision references and call these.
"""
from __future__ import annotations

import contextlib
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


def one_thread(check: Callable) -> Callable:
    """Run a check on one CPU thread and restore the thread count afterwards.

    The models compared by checks are small or run on small inputs; on a machine shared
    with other programs a second thread mostly waits for a busy core, at every layer.
    """
    @functools.wraps(check)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return check(*args, **kwargs)
        finally:
            torch.set_num_threads(previous)
    return wrapper


def on_meta(factory: Callable[..., nn.Module], *args: Any, **kwargs: Any) -> nn.Module:
    """``factory(*args, **kwargs)`` built on the meta device: shapes only, no memory, no time."""
    with torch.device("meta"):
        return factory(*args, **kwargs)


def random_weights_(model: nn.Module, seed: int = 0) -> nn.Module:
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


def seeded_values(reference: nn.Module, seed: int,
                   device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """For :func:`helpers.transplant.weights_on_demand`: each of ``reference``'s tensors gets
    seeded random values by its position and role, drawn as :func:`random_weights_` does."""
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


def code_objects(fn: Any) -> Iterator[tuple[types.CodeType, dict]]:
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


def frees_models(check: Callable) -> Callable:
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


def build_student_model(cls: Any, args: tuple, what: str, name: str, *,
                        refuse: Callable[[nn.Module, str], None] | None = None, seed: int = 0,
                        meta: bool = False, **kwargs: Any) -> nn.Module:
    """The student's ``cls(*args, **kwargs)``, built with a fixed seed (their own random state
    is left alone), on the meta device when ``meta``.

    It must be the student's own code (not the course's) and an ``nn.Module``;
    ``refuse(model, what)``, each notebook's own, fails on a library model that would make the
    check compare the library with itself.
    """
    reject_course_code(cls, name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.device("meta") if meta else contextlib.nullcontext():
            model = call_student(cls, *args, what=name, **kwargs)
    model = require_module(model, what)
    if refuse is not None:
        refuse(model, what)
    return model


def require_same_parameter_count(model: nn.Module, reference: nn.Module, what: str, hint: str) -> None:
    """Fail when the parameter counts differ, naming the first tensor that does not line up."""
    got, expected = count_parameters(model), count_parameters(reference)
    if got == expected:
        return
    where = ""
    try:
        match_by_order(reference, model, source_label="torchvision", target_label="yours")
    except TransplantError as err:
        where = f" {err.message}"
    raise CheckFailed(what, f"the number of parameters is wrong.{where}", expected=f"{expected:,}",
                      got=f"{got:,} ({got - expected:+,})", hint=hint)


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
                random_weights_(reference_model, seed)   # the student's tensors, now shared
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
                                   seeded_values(reference_model, seed, device)) as served:
                max_diff = _compare_outputs(student_model, reference_model, x, what, served=served)
        except _NeedsAllWeights:
            # Your forward uses a layer's weights outside that layer's call: give it all of them.
            student_model.to_empty(device=device)
            share_weights_by_order(student_model, reference_model)
            random_weights_(reference_model, seed)
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
matches_torchvision = check_matches_torchvision.__wrapped__


