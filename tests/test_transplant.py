"""helpers.transplant: copying weights by order and shape, and finding where two models part."""
import copy

import pytest
import torch
from torch import nn

from helpers.transplant import (Divergence, TransplantError, copy_weights_by_order, first_divergence,
                                match_by_order, randomize_batchnorm_, share_weights_by_order,
                                weights_on_demand)


def net(padding=1, relu=True, bn=False):
    """A small VGG-like feature extractor: conv, [bn], relu, pool, conv, relu, then a Linear head."""
    layers = [nn.Conv2d(3, 8, 3, padding=padding)]
    layers += [nn.BatchNorm2d(8)] if bn else []
    layers += [nn.ReLU()] if relu else []
    layers += [nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
               nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 5)]
    return nn.Sequential(*layers)


class Nested(nn.Module):
    """The same network as net(), with other names: blocks and a separate head."""

    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 5))

    def forward(self, x):
        return self.head(self.block2(self.block1(x)))


def no_hooks_left(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


X = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))


# ---- copy_weights_by_order ----

def test_copy_matches_by_order_across_different_names():
    source, target = net(), Nested()
    pairs = copy_weights_by_order(source, target)
    assert pairs[0] == ("0.weight", "block1.0.weight") and pairs[-1] == ("7.bias", "head.2.bias")
    with torch.no_grad():
        assert torch.equal(source(X), target(X))


def test_copy_includes_batchnorm_buffers():
    source, target = randomize_batchnorm_(net(bn=True), seed=3), net(bn=True)
    pairs = copy_weights_by_order(source, target)
    assert ("1.running_mean", "1.running_mean") in pairs and ("1.num_batches_tracked",) * 2 in pairs
    assert torch.equal(target[1].running_var, source[1].running_var)
    source.eval(), target.eval()
    with torch.no_grad():
        assert torch.equal(source(X), target(X))


def test_copy_converts_dtype():
    source, target = net(), net().double()
    copy_weights_by_order(source, target)
    assert target[0].weight.dtype == torch.float64
    assert torch.equal(target[0].weight.float(), source[0].weight)


@pytest.mark.parametrize("target, words", [
    (nn.Sequential(nn.Conv2d(3, 8, 5), nn.Conv2d(8, 8, 3), nn.Linear(32, 5)),
     ["parameter #1", "0.weight (8, 3, 3, 3)", "0.weight (8, 3, 5, 5)", "kernel sizes differ (3x3 against 5x5)"]),
    (nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(3, 8, 3), nn.Linear(32, 5)),
     ["parameter #3", "input channels", "the last pair: 0.bias and 0.bias"]),
    (nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(32, 5)),
     ["seems to lack the layer", "3.weight (8, 8, 3, 3)", "different kind of parameter"]),
    (nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Linear(32, 5), nn.Linear(5, 5)),
     ["torchvision has 6 parameter tensors and yours has 8", "first without a partner is 3.weight (5, 5) (yours)"]),
    (nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, bias=False), nn.Linear(32, 5)),
     ["parameter #4", "different kind of parameter", "bias=False"]),
])
def test_copy_names_the_first_mismatch(target, words):
    before = [p.clone() for p in target.parameters()]
    with pytest.raises(TransplantError) as info:
        copy_weights_by_order(net(), target, source_label="torchvision", target_label="yours")
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert info.value.hint in message
    assert all(torch.equal(a, b) for a, b in zip(before, target.parameters())), "nothing may be copied"


def test_copy_rejects_missing_batchnorm_buffers():
    with pytest.raises(TransplantError) as info:
        copy_weights_by_order(net(bn=True), net(bn=False))
    assert "parameter" in str(info.value)


# ---- share_weights_by_order, match_by_order ----

def test_share_gives_a_meta_model_the_sources_own_tensors():
    source = randomize_batchnorm_(net(bn=True), seed=2)
    with torch.device("meta"):
        target = net(bn=True)                   # shapes only: no memory
    pairs = share_weights_by_order(source, target)
    assert pairs == copy_weights_by_order(source, net(bn=True))
    assert target[0].weight is source[0].weight
    assert target[1].running_mean.data_ptr() == source[1].running_mean.data_ptr()
    assert not any(t.is_meta for t in [*target.parameters(), *target.buffers()])
    source.eval(), target.eval()
    with torch.no_grad():
        assert torch.equal(source(X), target(X))
        source[0].weight.mul_(2)                 # one storage: a change shows in both
        assert torch.equal(source(X), target(X))


def test_share_pairs_across_names_and_non_persistent_buffers():
    source, target = net(), Nested()
    source.register_buffer("scale", torch.ones(3), persistent=False)
    target.head.register_buffer("scale", torch.zeros(3), persistent=False)
    pairs = share_weights_by_order(source, target)
    assert pairs[-1] == ("scale", "head.scale") and target.head.scale is source.scale
    with torch.no_grad():
        assert torch.equal(source(X), target(X))


def test_share_and_match_change_nothing_on_a_mismatch():
    with torch.device("meta"):
        target = nn.Sequential(nn.Conv2d(3, 8, 5), nn.Conv2d(8, 8, 3), nn.Linear(32, 5))
    with pytest.raises(TransplantError, match="kernel sizes differ"):
        share_weights_by_order(net(), target)
    assert all(p.is_meta for p in target.parameters())
    with pytest.raises(TransplantError, match="Yours seems to lack the layer that holds torchvision's 3"):
        match_by_order(net(), nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(32, 5)),
                       source_label="torchvision", target_label="yours")
    assert match_by_order(net(), Nested())[0] == ("0.weight", "block1.0.weight")


# ---- weights_on_demand ----

def fixed_values(t):
    """Deterministic values by shape: the same for a tensor however often it is served."""
    if not t.is_floating_point():
        return torch.zeros(t.shape, dtype=t.dtype)
    return torch.rand(t.shape, generator=torch.Generator().manual_seed(t.numel())) * 0.5 + 0.5


def test_weights_on_demand_runs_a_meta_model_one_layer_at_a_time():
    with torch.device("meta"):
        model = net(bn=True).eval()
    real = net(bn=True).eval()
    with torch.no_grad():
        for t in [*real.parameters(), *real.buffers()]:
            t.copy_(fixed_values(t))
    seen = []
    model[4].register_forward_hook(lambda mod, args, out: seen.append((model[0].weight.is_meta,
                                                                       model[4].weight.is_meta)))
    with torch.no_grad(), weights_on_demand([model], fixed_values) as served:
        out = model(X)
    assert seen == [(True, False)], "a layer's weights exist only while it runs"
    assert torch.allclose(out, real(X))
    assert len(served) == len([*model.parameters(), *model.buffers()])
    assert all(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert list(model[0]._forward_hooks.values()) == [] and len(model[4]._forward_hooks) == 1   # ours only


def test_weights_on_demand_serves_shared_tensors_and_cleans_up_after_errors():
    with torch.device("meta"):
        reference, candidate = net(), Nested()
    share_weights_by_order(reference, candidate)
    with torch.no_grad(), weights_on_demand([reference, candidate], fixed_values):
        assert torch.equal(reference(X), candidate(X))
        with pytest.raises(RuntimeError):
            candidate(torch.randn(1, 4, 12, 12))          # wrong number of channels
    assert all(t.is_meta for t in candidate.parameters()) and no_hooks_left(candidate)


# ---- first_divergence ----

def transplanted(candidate, reference=None):
    reference = reference or net()
    copy_weights_by_order(reference, candidate)
    return reference, candidate


def test_identical_models_agree_and_hooks_are_removed():
    reference, candidate = transplanted(Nested())
    reference.train()
    assert first_divergence(reference, candidate, X) is None
    assert first_divergence(reference, candidate, X, align="all") is None
    assert no_hooks_left(reference) and no_hooks_left(candidate)
    assert reference.training, "the model's mode is restored"


def test_missing_relu_names_the_next_layer_and_what_runs_between():
    reference, candidate = transplanted(net(relu=False))
    d = first_divergence(reference, candidate, X, reference_label="torchvision")
    assert isinstance(d, Divergence) and d.kind == "input"
    assert (d.candidate_layer, d.reference_layer) == ("2", "3")
    assert "between 0 and 3 torchvision runs 1 (ReLU), 2 (MaxPool2d)" in d.hint
    assert "between 0 and 2 yours runs 1 (MaxPool2d)" in d.hint
    assert "2 (torchvision calls it 3)" in str(d)


def test_wrong_padding_is_an_output_shape_difference():
    reference, candidate = transplanted(net(padding=0))
    d = first_divergence(reference, candidate, X)
    assert d.kind == "shape" and d.candidate_layer == "0"
    assert "(2, 8, 12, 12)" in d.expected and "(2, 8, 10, 10)" in d.got
    assert "padding" in d.hint and "padding=(1, 1)" in d.hint


def test_different_settings_are_a_value_difference():
    candidate = net()
    candidate[0] = nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular")
    reference, candidate = transplanted(candidate)
    d = first_divergence(reference, candidate, X)
    assert d.kind == "values" and d.candidate_layer == "0" and d.max_abs_diff > 0
    assert "circular" in d.hint


def test_misplaced_batchnorm_is_caught_with_random_statistics():
    reference = randomize_batchnorm_(net(bn=True), seed=1)
    candidate = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(8), *net()[2:])
    copy_weights_by_order(reference, candidate)
    d = first_divergence(reference, candidate, X)
    assert d.kind == "input" and d.candidate_layer == "2"
    assert "yours runs 1 (ReLU)" in d.hint


def test_difference_after_the_last_layer_with_parameters():
    class Softmaxed(Nested):
        def forward(self, x):
            return super().forward(x).softmax(dim=1)

    reference, candidate = transplanted(Softmaxed())
    d = first_divergence(reference, candidate, X)
    assert d.kind == "output" and "all 3 layers with parameters agree" in d.hint
    assert "every layer with parameters agrees" in str(d)


def test_extra_layer_and_other_layer_types():
    reference = net()
    extra = nn.Sequential(*net(), nn.Linear(5, 5))
    copy_weights_by_order(reference, nn.Sequential(*list(extra)[:-1]))
    d = first_divergence(reference, extra, X)
    assert d.kind == "layer" and d.candidate_layer == "8"
    swapped = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(288, 8))
    swapped[0].load_state_dict(reference[0].state_dict())
    d = first_divergence(reference, swapped, X)
    assert d.kind == "layer" and "a Linear runs where the reference runs a Conv2d" in d.hint


def test_candidate_that_crashes_is_reported_and_unhooked():
    class Broken(Nested):
        def forward(self, x):
            return self.head(self.block1(x)[:, :3])

    reference, candidate = transplanted(Broken())
    d = first_divergence(reference, candidate, X)
    assert d is not None and no_hooks_left(candidate)


def test_reference_failure_raises():
    with pytest.raises(RuntimeError, match="reference model failed"):
        first_divergence(net(), net(), torch.randn(1, 4, 8, 8))
    with pytest.raises(ValueError, match="align"):
        first_divergence(net(), net(), X, align="some")


def test_inplace_relu_does_not_hide_a_difference():
    """Outputs are cloned in the hook: an in-place ReLU after a layer must not change what was recorded."""
    reference = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3))
    candidate = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
    copy_weights_by_order(reference, candidate)
    d = first_divergence(reference, candidate, X)
    assert d.kind == "input" and d.candidate_layer == "1"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    reference, candidate = transplanted(net(relu=False).cuda(), net().cuda())
    assert first_divergence(reference, candidate, X.cuda()).kind == "input"
    assert first_divergence(reference, copy.deepcopy(reference), X.cuda()) is None
