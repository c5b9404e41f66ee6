"""The stride checks pass the reference solutions and fail each kind of wrong answer with a useful message.

The reference solutions are read from the source notebook (autograder.solutions),
so these tests exercise exactly the code the course teaches.
"""
import math

import matplotlib
import pytest
import torch
from torch import nn

from autograder.solutions import load_solutions
from helpers.checks.core import CheckFailed
from helpers.inspection import layer_shapes
from helpers.checks.shape_tracer import (ReshapeBugNet, TwoPathNet, _expected_calls, check_trace_cleans_up_on_error,
                                         check_trace_shapes, compare_trace, compare_trace_printout, small_cnn)
from helpers.checks.stride import (_torch_network_sizes, _torch_output_size, check_compute_network_sizes,
                                   check_compute_output_size, check_rejects_no_output,
                                   compare_output_size_with_torch, compare_random_networks,
                                   expect_network_error, likely_bug, random_configs)
from check_messages import message_of

# The checks are tested as nbgrader runs them: an untouched stub raises.
pytestmark = pytest.mark.usefixtures("grading_mode")

SOLUTIONS = load_solutions("02_stride", ["compute_output_size", "compute_network_sizes", "trace_shapes"],
                           {"math": math, "torch": torch, "nn": nn})
compute_output_size = SOLUTIONS["compute_output_size"]
compute_network_sizes = SOLUTIONS["compute_network_sizes"]
trace_shapes = SOLUTIONS["trace_shapes"]


# ---- the oracle ----

@pytest.mark.parametrize("module, size", [
    (nn.Conv2d(1, 1, 3, stride=2, padding=1), 9),
    (nn.Conv2d(1, 1, 5, stride=3, padding=4, dilation=2), 11),
    (nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), 10),
    (nn.MaxPool2d(2, stride=2, padding=1, dilation=2, ceil_mode=True), 7),
])
def test_one_axis_oracle_matches_square_modules(module, size):
    """Measuring one axis of a (1, 1, n, 1) input gives what the 2-D module gives on (1, 1, n, n)."""
    out = module(torch.zeros(1, 1, size, size))
    def first(v):
        return v[0] if isinstance(v, tuple) else v
    ceil = getattr(module, "ceil_mode", False)
    assert _torch_output_size(size, first(module.kernel_size), first(module.stride), first(module.padding),
                              first(module.dilation), ceil) == out.shape[-1] == out.shape[-2]


def test_oracle_raises_value_error_when_pytorch_gives_no_output():
    with pytest.raises(ValueError, match="no output"):
        _torch_output_size(2, 3)
    with pytest.raises(ValueError, match="no output"):
        _torch_output_size(3, 2, stride=1, dilation=3, ceil_mode=True)


def test_oracles_are_private():
    """The notebook imports the checks: none of their public names may hand out an answer."""
    import helpers.checks.shape_tracer as shape_tracer
    import helpers.checks.stride as stride
    import helpers.widgets as widgets
    for module, name in [(stride, "torch_output_size"), (stride, "torch_network_sizes"),
                         (shape_tracer, "trusted_trace_shapes"), (widgets, "conv_output_size")]:
        assert not hasattr(module, name), f"{module.__name__}.{name} is public"


def test_trace_oracle_follows_execution_order_and_repeats():
    """torch.fx sees each call of a torch.nn layer in the order it runs, a reused ReLU twice."""
    assert _expected_calls(TwoPathNet(), (2, 3, 8, 8)) == [
        ("stem.0", "Conv2d", (2, 8, 8, 8)), ("stem.1", "BatchNorm2d", (2, 8, 8, 8)),
        ("act", "ReLU", (2, 8, 8, 8)), ("down", "Conv2d", (2, 16, 4, 4)), ("act", "ReLU", (2, 16, 4, 4)),
        ("pool", "AdaptiveAvgPool2d", (2, 16, 1, 1)), ("head", "Linear", (2, 10))]


@pytest.mark.parametrize("check, course_code", [
    (check_compute_output_size, _torch_output_size),
    (check_compute_network_sizes, _torch_network_sizes),
    (check_trace_shapes, layer_shapes),
])
def test_checks_refuse_the_course_own_code(check, course_code):
    message = message_of(check, course_code)
    assert "from the course's module" in message and "your own function" in message, message


def test_random_configs_cover_every_part_of_the_formula():
    configs = [c for c, _ in random_configs(1000, seed=0)]
    assert sum(c["ceil_mode"] for c in configs) > 100
    assert sum(c["dilation"] > 1 for c in configs) > 300
    assert sum(c["padding"] > 0 for c in configs) > 300
    assert any(c["input_size"] > 100 for c in configs)


# ---- exercise 1: compute_output_size ----

def test_reference_agrees_with_pytorch_on_1000_random_valid_configurations():
    assert compare_output_size_with_torch(compute_output_size, n_configs=1000, seed=0) == 1000
    check_rejects_no_output(compute_output_size, n_configs=200, seed=1)


def test_output_size_check_passes_reference_with_one_line(capsys):
    check_compute_output_size(compute_output_size)
    out, err = capsys.readouterr()
    assert err == "" and out.count("\n") == 1 and out.startswith("✓ compute_output_size: passed")


def no_plus_one(input_size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    size = (input_size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride
    if size < 1:
        raise ValueError("no output")
    return size


def ignores_dilation(input_size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    return compute_output_size(input_size, kernel_size, stride, padding, 1, ceil_mode)


def ignores_ceil_mode(input_size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    return compute_output_size(input_size, kernel_size, stride, padding, dilation, False)


def naive_ceil(input_size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    room = input_size + 2 * padding - dilation * (kernel_size - 1) - 1
    size = (math.ceil(room / stride) if ceil_mode else room // stride) + 1
    if size < 1:
        raise ValueError("no output")
    return size


def padding_once(input_size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    return compute_output_size(input_size - padding, kernel_size, stride, padding, dilation, ceil_mode)


def true_division(*args, **kwargs):
    return float(compute_output_size(*args, **kwargs))


def returns_zero(*args, **kwargs):
    try:
        return compute_output_size(*args, **kwargs)
    except ValueError:
        return 0


def raises_assertion(*args, **kwargs):
    try:
        size = compute_output_size(*args, **kwargs)
    except ValueError:
        size = 0
    assert size > 0, "no output"
    return size


def chapter_formula(input_size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    return (input_size - kernel_size + 2 * padding) // stride + 1


def kernel_must_fit(input_size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    """Raises whenever the effective kernel is longer than the padded input, even with ceil_mode."""
    if dilation * (kernel_size - 1) + 1 > input_size + 2 * padding:
        raise ValueError("the kernel does not fit")
    return compute_output_size(input_size, kernel_size, stride, padding, dilation, ceil_mode)


def not_attempted(*args, **kwargs):
    raise NotImplementedError


# The three bug fixtures the issue names come first; each must fail with its own hint.
@pytest.mark.parametrize("answer, words", [
    (no_plus_one, ["wrong output size", "one window short", "+ 1"]),
    (ignores_dilation, ["wrong output size", "dilation=2", "dilation * (kernel_size - 1) + 1"]),
    (ignores_ceil_mode, ["wrong output size", "ceil_mode=True", "rounds up"]),
    (naive_ceil, ["input_size=5, kernel_size=2, stride=2, padding=1", "right-hand padding"]),
    (padding_once, ["both sides"]),
    (true_division, ["not an integer", "float"]),
    (returns_zero, ["leaves no output", "returned a size", "got:      0"]),
    (raises_assertion, ["raised AssertionError", "expected: ValueError"]),
    (chapter_formula, ["dilation=2"]),
    (kernel_must_fit, ["input_size=2, kernel_size=3, stride=2", "ceil_mode=True", "raised ValueError",
                         "which has an output", "expected: 1", "less than one stride"]),
    (not_attempted, ["not attempted yet"]),
])
def test_output_size_check_fails_wrong_answers(answer, words):
    message = message_of(check_compute_output_size, answer)
    for word in words:
        assert word in message, message
    assert "hint:" in message


@pytest.mark.parametrize("bug", [no_plus_one, ignores_dilation, ignores_ceil_mode, naive_ceil])
def test_random_comparison_catches_each_bug(bug):
    with pytest.raises(CheckFailed):
        compare_output_size_with_torch(bug, n_configs=1000, seed=0)


def test_no_output_helper_fails_an_answer_that_returns_zero():
    assert "returned a size" in message_of(check_rejects_no_output, returns_zero)


def test_hint_names_the_first_matching_bug_only():
    config = dict(input_size=10, kernel_size=3, stride=1, padding=0, dilation=2, ceil_mode=False)
    assert "+ 1" in likely_bug(config, 5)          # right formula minus one
    assert "effective size" in likely_bug(config, 8)
    assert "on paper" in likely_bug(config, 42)


# ---- exercise 2: compute_network_sizes ----

def test_network_check_passes_reference(capsys):
    check_compute_network_sizes(compute_network_sizes)
    compare_random_networks(compute_network_sizes, n_networks=50, seed=0)
    expect_network_error(compute_network_sizes, 64, [{"kernel_size": 7, "stride": 4}] * 3)
    out, err = capsys.readouterr()
    assert err == "" and out.count("\n") == 1 and out.startswith("✓ compute_network_sizes: passed")


def network_with(output_size, source=None):
    """compute_network_sizes (the reference, or ``source``) in a module whose compute_output_size is ``output_size``."""
    namespace = {"compute_output_size": output_size}
    exec(source or "def compute_network_sizes(input_size, layers):\n"
                   "    sizes = [input_size]\n"
                   "    for layer in layers:\n"
                   "        sizes.append(compute_output_size(sizes[-1], **layer))\n"
                   "    return sizes\n", namespace)
    return namespace


def test_network_check_does_not_depend_on_exercise_1():
    for own in (no_plus_one, not_attempted):
        namespace = network_with(own)
        check_compute_network_sizes(namespace["compute_network_sizes"])
        assert namespace["compute_output_size"] is own        # the student's own is put back
    namespace = network_with(None)
    del namespace["compute_output_size"]                      # exercise 1's cell was never run
    check_compute_network_sizes(namespace["compute_network_sizes"])
    assert "compute_output_size" not in namespace


def sizes_without_input(input_size, layers):
    return compute_network_sizes(input_size, layers)[1:]


def same_input_for_every_layer(input_size, layers):
    return [input_size] + [compute_output_size(input_size, **layer) for layer in layers]


def stops_at_no_output(input_size, layers):
    sizes = [input_size]
    for layer in layers:
        try:
            sizes.append(compute_output_size(sizes[-1], **layer))
        except ValueError:
            break
    return sizes


def pops_layers(input_size, layers):
    sizes = [input_size]
    while layers:
        sizes.append(compute_output_size(sizes[-1], **layers.pop(0)))
    return sizes


def positional_tuples(input_size, layers):
    sizes = [input_size]
    for layer in layers:
        sizes.append(compute_output_size(sizes[-1], *layer.values()))
    return sizes


@pytest.mark.parametrize("answer, words", [
    (sizes_without_input, ["wrong length", "len(layers) + 1"]),
    (same_input_for_every_layer, ["wrong size after layer 2", "previous layer"]),
    (stops_at_no_output, ["leaves no output", "returned a result", "propagate"]),
    (pops_layers, ["changed the `layers` list"]),
    (positional_tuples, ["wrong size after layer 0"]),
    (not_attempted, ["not attempted yet"]),
])
def test_network_check_fails_wrong_answers(answer, words):
    message = message_of(check_compute_network_sizes, answer)
    for word in words:
        assert word in message, message


# ---- exercise 3: trace_shapes ----

def all_hooks_removed(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def global_hooks():
    from torch.nn.modules import module
    return len(module._global_forward_hooks) + len(module._global_forward_pre_hooks)


def test_trace_check_passes_reference(capsys):
    check_trace_shapes(trace_shapes)
    compare_trace(trace_shapes, TwoPathNet(), (3, 3, 9, 9))
    compare_trace_printout(trace_shapes, small_cnn(), (1, 3, 8, 8))
    check_trace_cleans_up_on_error(trace_shapes, ReshapeBugNet(), (1, 3, 30, 30), ["Conv2d"])
    out, err = capsys.readouterr()
    assert err == "" and out.count("\n") == 1 and out.startswith("✓ trace_shapes: passed")


def test_reference_trace_records_execution_order_and_repeats():
    names = [name for name, _, _ in trace_shapes(TwoPathNet(), (1, 3, 8, 8))]
    assert names == ["stem.0", "stem.1", "act", "down", "act", "pool", "head"]


def tracer(*, leaves_only=True, finally_remove=True, remove=True, swallow=False, record_input=False,
           live_print=True, always_print=False, size_objects=False, definition_order=False):
    """A trace_shapes with the named mistakes."""
    def trace(model, input_shape, verbose=False):
        records, handles, by_name = [], [], {}

        def make_hook(name):
            def hook(module, inputs, output):
                shape = (inputs[0] if record_input else output).shape
                record = (name, type(module).__name__, shape if size_objects else tuple(shape))
                records.append(record)
                by_name[name] = record
                if (verbose and live_print) or always_print:
                    print(*record)
            return hook

        for name, module in model.named_modules():
            if not leaves_only or next(module.children(), None) is None:
                handles.append(module.register_forward_hook(make_hook(name)))

        def run():
            with torch.no_grad():
                model(torch.zeros(input_shape))

        try:
            if finally_remove:
                try:
                    run()
                finally:
                    for h in handles:
                        h.remove()
            else:
                run()
                if remove:
                    for h in handles:
                        h.remove()
        except Exception:
            if not swallow:
                raise
        if verbose and not live_print:
            for record in records:
                print(*record)
        if definition_order:
            return [by_name[name] for name, _ in model.named_modules() if name in by_name]
        return records
    return trace


def global_hook_tracer(model, input_shape, verbose=False):
    """Uses a global hook and never removes it."""
    records = []
    names = {module: name for name, module in model.named_modules()}
    torch.nn.modules.module.register_module_forward_hook(
        lambda module, inputs, output: records.append((names[module], type(module).__name__,
                                                       tuple(output.shape)))
        if next(module.children(), None) is None and module in names else None)
    model(torch.zeros(input_shape))
    return records


def test_torch_size_shapes_are_accepted():
    check_trace_shapes(tracer(size_objects=True))


@pytest.mark.parametrize("answer, words", [
    (tracer(finally_remove=False), ["forward hooks were left", "after a forward pass that raised", "finally"]),
    (tracer(finally_remove=False, remove=False), ["forward hooks were left", "after a forward pass that worked"]),
    (tracer(swallow=True), ["returned normally", "propagate"]),
    (tracer(record_input=True), ["differs", "the hook's third argument"]),
    (tracer(leaves_only=False), ["differs", "leaf layers"]),
    (tracer(definition_order=True), ["TwoPathNet", "differs"]),
    (tracer(live_print=False), ["layers that ran before the error were not printed", "inside the hook"]),
    (tracer(always_print=True), ["printed something although verbose=False"]),
    (global_hook_tracer, ["forward hooks were left globally"]),
    (not_attempted, ["not attempted yet"]),
])
def test_trace_check_fails_wrong_answers(answer, words):
    before = global_hooks()
    message = message_of(check_trace_shapes, answer)
    for word in words:
        assert word in message, message
    assert global_hooks() == before, "the check must remove hooks a wrong answer leaked"


def test_leaked_hooks_are_removed_from_the_checked_model():
    model = ReshapeBugNet()
    with pytest.raises(CheckFailed):
        check_trace_cleans_up_on_error(tracer(finally_remove=False), model, (1, 3, 30, 30), ["Conv2d"])
    assert all_hooks_removed(model)


# ---- the kernel explorer used in the notebook ----

def test_kernel_explorer_draws_and_reports_sizes():
    from helpers.widgets import _conv_output_size, draw_kernel_positions, kernel_slider_explorer
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    assert _conv_output_size(7, 3, 2, 1) == compute_output_size(7, 3, stride=2, padding=1) == 4
    assert _conv_output_size(2, 3, 1, 0) == 0
    for args in [(7, 3, 2, 1, 2, 5), (2, 3, 1, 0, 1, 0)]:
        fig = draw_kernel_positions(*args)
        assert fig.axes[1].get_title()
        plt.close(fig)
    *controls, image = kernel_slider_explorer().children
    first = bytes(image.value)
    assert first.startswith(b"\x89PNG")
    next(c for c in controls if c.description == "dilation").value = 2
    assert bytes(image.value).startswith(b"\x89PNG") and bytes(image.value) != first
