"""The receptive-field check (notebook 07): its oracle agrees with gradients; it passes the reference and
names typical mistakes (poolings called as functions missed, a shortcut in series, clipping, a global gate,
k instead of k - 1, dilation, strides)."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.misc import SqueezeExcitation

from autograder.solutions import load_solutions
from helpers import checks
from helpers.checks.receptive_field import (NETWORKS, _build, _in_series, _oracle, check_compute_receptive_field,
                                            compare_network, compare_receptive_field, random_network)
from check_messages import message_of

pytestmark = pytest.mark.usefixtures("grading_mode")


@pytest.fixture(scope="module")
def solution():
    return load_solutions("07_exercises", ["compute_receptive_field"], {"nn": nn, "torch": torch, "F": F})[
        "compute_receptive_field"]


# ---- the oracle against the support of the input gradient ----

def linearised(model):
    """Gradients cannot vanish: activations and gates removed, max pools averaged, weights positive."""
    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, (nn.ReLU, nn.SiLU, nn.Sigmoid, SqueezeExcitation)):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   ceil_mode=child.ceil_mode))
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    return model


def empirical(model, size):
    """(rows spanned by the input gradient of a central unit, shift of its right neighbour), clipped or not."""
    probe = linearised(model).double()
    x = torch.zeros(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    h, w = probe(x).shape[-2:]
    spans = []
    for dx in (0, 1):
        x.grad = None
        probe(x)[0, :, h // 2, w // 2 + dx].sum().backward()
        seen = x.grad[0].abs().sum(0)
        rows, cols = torch.nonzero(seen.sum(1)).flatten(), torch.nonzero(seen.sum(0)).flatten()
        spans.append((int(rows[0]), int(rows[-1]), int(cols[0])))
    (r0, r1, c0), (_, _, c1) = spans
    assert r0 > 0 and r1 < size - 1, "the field reaches the border: use a larger input"
    return r1 - r0 + 1, c1 - c0


@pytest.mark.parametrize("name,size", [("two 3x3", 16), ("stem", 64), ("dilated", 16), ("average pool", 64),
                                       ("residual", 64), ("bottleneck", 128)])
def test_oracle_matches_the_gradient_support(name, size):
    assert _oracle(_build(name)) == empirical(_build(name), size)


def test_oracle_on_prefixes_of_the_big_networks():
    """Shortcuts, depthwise convolutions, squeeze-and-excitation and stochastic depth, cheaply."""
    import torchvision
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18()
    prefix = nn.Sequential(*list(resnet.children())[:5])                     # stem and layer1
    assert _oracle(prefix) == empirical(prefix, 96)
    effnet = torchvision.models.efficientnet_b0().features[:3]               # stem and two stages
    assert _oracle(effnet) == empirical(effnet, 96)


def test_known_values():
    assert _oracle(_build("VGG-16")) == (212, 32)
    assert _oracle(_build("ResNet-18")) == (435, 32)
    assert _oracle(_build("EfficientNet-B0")) == (851, 32)
    assert _oracle(_build("functional pooling")) == (13, 2)  # 3, 5 after the max pool (jump 2), 13 by the avg pool
    assert _in_series(_build("residual")) == (17, 4)        # the typical mistake differs


def test_oracle_reads_functional_pooling():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return F.max_pool2d(self.conv(x), 2)
    assert _oracle(Functional()) == (4, 2)


# ---- the check ----

def test_checks_are_exported():
    assert "check_compute_receptive_field" in checks.__all__
    assert hasattr(checks.check_compute_receptive_field, "__wrapped__")


def test_reference_passes(solution, capsys):
    check_compute_receptive_field(solution)
    out = capsys.readouterr()
    assert out.out.startswith("✓") and out.err == ""


def test_reference_passes_random_networks(solution):
    rng = np.random.default_rng(0)
    for _ in range(5):
        model, description = random_network(rng)
        compare_receptive_field(solution, model, description, input_size=int(rng.integers(16, 300)))


def test_untouched_stub():
    def stub(model, input_size=224):
        raise NotImplementedError
    assert "not attempted yet" in message_of(check_compute_receptive_field, stub)


def notebook_04_receptive_field(module, input_size=224):
    """Notebook 04's function (section 8), copied: it reads modules only."""
    graph = torch.fx.symbolic_trace(module).graph
    field = {}
    for node in graph.nodes:
        if node.op == "placeholder":
            field[node] = (1, 1)
            continue
        reaching = [field[a] for a in node.all_input_nodes if a in field]
        if not reaching:
            continue
        size, jump = max(reaching)
        if node.op == "call_module":
            layer = module.get_submodule(node.target)
            if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                k, s = np.atleast_1d(layer.kernel_size)[0], np.atleast_1d(layer.stride)[0]
                d = np.atleast_1d(getattr(layer, "dilation", 1))[0]
                size, jump = size + (k - 1) * d * jump, jump * s
        field[node] = (int(size), int(jump))
    output = next(node for node in graph.nodes if node.op == "output")
    return field[output.all_input_nodes[0]]


def test_notebook_04_function_is_not_enough():
    message = message_of(check_compute_receptive_field, notebook_04_receptive_field)
    assert "misses the poolings called as functions" in message and "call_function" in message
    assert "in series" not in message


def test_shortcut_counted_in_series():
    def in_series(model, input_size=224):
        size, jump = 1, 1
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                k, s, d = (v[0] if isinstance(v, tuple) else v for v in (m.kernel_size, m.stride,
                                                                          getattr(m, "dilation", 1)))
                size, jump = size + (k - 1) * d * jump, jump * s
        return size, jump
    message = message_of(check_compute_receptive_field, in_series)
    assert "in series" in message and "in parallel" in message and "torch.fx" in message


def wrapped(solution, change):
    def answer(model, input_size=224):
        return change(solution(model, input_size), model, input_size)
    return answer


def test_clipped_to_the_input(solution):
    clipped = wrapped(solution, lambda r, m, n: (min(r[0], n), r[1]))
    message = message_of(compare_network, clipped, "ResNet-18")
    assert "clipped" in message and "not clipped" in message


def test_gate_counted_as_global(solution):
    def answer(model, input_size=224):
        from helpers.checks.receptive_field import _fx_fields     # the mistake, made with the oracle
        return _fx_fields(model, global_pool=input_size)[-1][1:]
    message = message_of(compare_network, answer, "EfficientNet-B0")
    assert "squeeze-and-excitation" in message and "Global-context gates are ignored" in message


@pytest.mark.parametrize("mistake,words", [
    (dict(kernel_offset=0), "k instead of k - 1"),
    (dict(dilation=False), "ignores dilation"),
    (dict(multiply_jump=False), "does not multiply the strides"),
])
def test_other_mistakes(mistake, words):
    from helpers.checks.receptive_field import _fx_fields

    def answer(model, input_size=224):
        return _fx_fields(model, **mistake)[-1][1:]
    assert words in message_of(check_compute_receptive_field, answer)


def test_wrong_types(solution):
    floats = wrapped(solution, lambda r, m, n: (float(r[0]), float(r[1])))
    assert "should be ints" in message_of(check_compute_receptive_field, floats)
    assert "not a pair" in message_of(check_compute_receptive_field, lambda model, input_size=224: 5)
    tensor = wrapped(solution, lambda r, m, n: torch.tensor(r))
    assert "not a pair" in message_of(check_compute_receptive_field, tensor)


def test_refuses_the_course_own_oracle():
    from helpers.checks import receptive_field
    assert "course's module" in message_of(check_compute_receptive_field, receptive_field._oracle)


def test_every_network_is_named():
    assert len(NETWORKS) == 10 and all(len(v) == 2 for v in NETWORKS.values())
