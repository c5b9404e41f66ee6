"""Checks for notebook 06 (design principles): ``ModernCNN`` and the design challenge.

* ``ModernCNN`` is built with a trusted block standing in for the student's
  ``ModernBlock`` (the private reference of :mod:`helpers.checks.design`, behind the
  exercise's constructor), so that a wrong block costs only the block's points. The
  blocks it asks for are recorded and compared with the contract's, the final
  BatchNorm–ReLU and the head are looked at, and then a private reference network
  takes the student's tensors and both run in eval mode on random batches of two sizes.
  A missing ReLU after the final BatchNorm, or BN–ReLU after the pooling, is named.
* The design challenge's model must fit the budget, measured: parameters, and MACs
  of one 32x32 image as PyTorch's counter counts them (:func:`helpers.inspection.count_macs`).
  It must also learn: trained with a fixed recipe (:data:`FLOOR_RECIPE`, seeded, one CPU
  thread, a few seconds) on the offline shapes, its test accuracy must reach
  :data:`FLOOR`. The accuracy itself is reported, not graded.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from helpers.ablation import Recipe, train_with_recipe
from helpers.inspection import count_macs, count_parameters

from .core import CheckFailed, call_student, passed, student_check
from .design import build_student, compare_outputs, convs, describe_conv, fail_with_divergence, matching_variant, norms
from .design_blocks import _ReferenceModernBlock
from .models import frees_models, on_meta, one_thread, substitute_globals

# ------------------------------------------------------------------ ModernCNN
MODERN_CNN_HINT = ("stem = nn.Conv2d(3, widths[0], 3, padding=1, bias=False); then for each stage i, depths[i] "
                   "blocks ModernBlock(in_channels, widths[i], stride), stride 2 for the first block of every "
                   "stage but the first, 1 otherwise; then nn.BatchNorm2d(widths[-1]), ReLU, global average "
                   "pooling, flatten, nn.Linear(widths[-1], num_classes). Create the layers in this order.")


def _trusted_block_class(calls: list) -> type:
    """The reference block behind the exercise's constructor; every call is recorded."""

    class ModernBlock(_ReferenceModernBlock):
        def __init__(self, in_channels, out_channels, stride=1, se_ratio=0.25):
            calls.append((in_channels, out_channels, stride))
            super().__init__(in_channels, out_channels, stride, se_ratio)

    return ModernBlock


def expected_blocks(widths: Sequence[int], depths: Sequence[int]) -> list[tuple[int, int, int]]:
    """The contract's blocks, in order: (in_channels, out_channels, stride)."""
    blocks, c_in = [], widths[0]
    for i, (width, depth) in enumerate(zip(widths, depths)):
        for j in range(depth):
            blocks.append((c_in, width, 2 if i > 0 and j == 0 else 1))
            c_in = width
    return blocks


class _ReferenceModernCNN(nn.Module):
    """The exercise's network (private oracle): stem, blocks, BN-ReLU, GAP, Linear."""

    def __init__(self, widths: Sequence[int], depths: Sequence[int], num_classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.blocks = nn.Sequential(*[_ReferenceModernBlock(c_in, c_out, stride)
                                      for c_in, c_out, stride in expected_blocks(widths, depths)])
        self.bn = nn.BatchNorm2d(widths[-1])
        self.fc = nn.Linear(widths[-1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.bn(self.features(x))).mean(dim=(2, 3)))


def _network_variants(ref: _ReferenceModernCNN, x: torch.Tensor) -> dict[str, tuple[str, torch.Tensor]]:
    h = ref.features(x)
    return {
        "has no ReLU after the final BatchNorm": ("fc(GAP(bn(blocks)))", ref.fc(ref.bn(h).mean(dim=(2, 3)))),
        "applies the final BatchNorm and ReLU after the pooling instead of before it":
            ("fc(ReLU(bn(GAP(blocks))))", ref.fc(F.relu(ref.bn(h.mean(dim=(2, 3), keepdim=True))).flatten(1))),
        "pools with the maximum instead of the average":
            ("fc(max over positions of ReLU(bn(blocks)))", ref.fc(F.relu(ref.bn(h)).amax(dim=(2, 3)))),
    }


def _modern_cnn_structure(model: nn.Module, calls: list, block_class: type, what: str, widths: Sequence[int],
                          depths: Sequence[int], num_classes: int) -> None:
    expected = expected_blocks(widths, depths)
    if calls and calls != expected:
        i = next((i for i, (a, b) in enumerate(zip(calls, expected)) if a != b), min(len(calls), len(expected)))
        want = f"ModernBlock{expected[i]}" if i < len(expected) else "no more blocks"
        got = f"ModernBlock{calls[i]}" if i < len(calls) else "no more blocks"
        raise CheckFailed(what, f"block {i + 1} is not the one asked for (blocks are shown as "
                                "(in_channels, out_channels, stride)).",
                          expected=f"{want}; all: {expected}", got=f"{got}; all: {calls}",
                          hint="A stage of width w has depths[i] blocks; the first block of every stage but "
                               "the first has stride 2 and takes the previous stage's width, the others have "
                               "stride 1 and take w. " + MODERN_CNN_HINT)
    conv_list = convs(model)
    stem = conv_list[0][1] if conv_list else None
    if stem is None or (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding) != \
            (3, widths[0], (3, 3), (1, 1), (1, 1)) or stem.bias is not None:
        raise CheckFailed(what, "the stem is not the one asked for.",
                          expected=f"stem: Conv2d(3, {widths[0]}, kernel_size=3x3, stride=1, padding=1), no bias",
                          got=describe_conv(conv_list[0][0], stem) if stem is not None else "no convolution",
                          hint="The stem is a single 3x3 convolution without bias, created first: the first "
                               "block's bn1 normalises its output (pre-activation), and on 32x32 images there "
                               "is no room for a stride in the stem.")
    in_blocks = {id(m) for block in model.modules() if isinstance(block, block_class) for m in block.modules()}
    own_norms = [(n, m) for n, m in norms(model) if id(m) not in in_blocks]
    if calls and not own_norms:
        raise CheckFailed(what, "there is no BatchNorm-ReLU between the last block and the pooling.",
                          expected=f"nn.BatchNorm2d({widths[-1]}) and a ReLU after the last block",
                          got="the last block's output goes straight to the pooling",
                          hint="A pre-activation block ends with an addition that no BatchNorm or ReLU has "
                               "touched: each block normalises its *input*, so the last block's output has "
                               "never been normalised. A pre-activation network therefore ends with its own "
                               "BN-ReLU (He et al., \"Identity Mappings in Deep Residual Networks\", 2016).")
    fc = [m for m in model.modules() if isinstance(m, nn.Linear) and not id(m) in in_blocks]
    if len(fc) != 1 or fc[0].out_features != num_classes:
        got = ", ".join(f"Linear({m.in_features}, {m.out_features})" for m in fc) or "no nn.Linear"
        raise CheckFailed(what, "the head should be one nn.Linear layer.",
                          expected=f"Linear({widths[-1]}, {num_classes})", got=got, hint=MODERN_CNN_HINT)
    if fc[0].in_features != widths[-1]:
        flattened = fc[0].in_features % widths[-1] == 0 and fc[0].in_features > widths[-1]
        raise CheckFailed(what, "the linear layer takes " + (
            "the flattened feature map: there is no global average pooling." if flattened
            else f"{fc[0].in_features} features."),
                          expected=f"Linear({widths[-1]}, {num_classes}) after global average pooling",
                          got=f"Linear({fc[0].in_features}, {fc[0].out_features})",
                          hint="Average each channel over its height and width (nn.AdaptiveAvgPool2d(1) or "
                               "x.mean(dim=(2, 3))), so that the head has widths[-1] inputs whatever the image "
                               "size.")


def _namespaces(cls: Any) -> list:
    """One function per global namespace that ``cls`` or its bases (outside torch) take names from."""
    seen, functions = set(), []
    for klass in getattr(cls, "__mro__", (cls,)):
        if (getattr(klass, "__module__", "") or "").split(".")[0] == "torch":
            continue
        for member in vars(klass).values() if isinstance(klass, type) else [klass]:
            namespace = getattr(member, "__globals__", None)
            if namespace is not None and id(namespace) not in seen:
                seen.add(id(namespace))
                functions.append(member)
    return functions


@one_thread
@frees_models
def compare_modern_cnn(cls: Any, widths: Sequence[int], depths: Sequence[int], num_classes: int = 10,
                       input_shapes: Sequence[Sequence[int]] = ((2, 3, 32, 32),), seed: int = 0) -> None:
    """``cls(widths, depths, num_classes=...)`` with trusted blocks against the reference network."""
    widths, depths = list(widths), list(depths)
    what = f"ModernCNN({widths}, {depths}, num_classes={num_classes})"
    calls: list = []
    block_class = _trusted_block_class(calls)
    with ExitStack() as stack:
        for fn in _namespaces(cls):
            stack.enter_context(substitute_globals(fn, ModernBlock=block_class))
        model = build_student(cls, (widths, depths), what, "ModernCNN", seed=seed, num_classes=num_classes)
    _modern_cnn_structure(model, calls, block_class, what, widths, depths, num_classes)
    for i, shape in enumerate(input_shapes):
        reference = on_meta(_ReferenceModernCNN, widths, depths, num_classes)
        x, out, expected, agree = compare_outputs(model, reference, shape, what, seed=seed + i)
        if agree:
            continue
        with torch.no_grad():
            variants = _network_variants(reference.eval(), x)
        got = matching_variant(out, {d: v for d, (_, v) in variants.items()})
        if got is not None:
            raise CheckFailed(what, f"with the reference's weights copied in, your network {got}.",
                              expected="fc(GAP(ReLU(bn(blocks(stem(x))))))", got=variants[got][0],
                              hint=MODERN_CNN_HINT)
        fail_with_divergence(model, reference, x, out, expected, what, MODERN_CNN_HINT)


MODERN_CNN_CASES = [
    # widths, depths, classes, inputs
    ((8, 16, 32), (1, 1, 1), 10, ((2, 3, 32, 32), (1, 3, 20, 20))),
    ((8, 16), (2, 1), 5, ((2, 3, 16, 16),)),
    ((12,), (2,), 3, ((1, 3, 8, 8),)),
]


@student_check
def check_modern_cnn(cls: Any) -> None:
    for i, (widths, depths, classes, shapes) in enumerate(MODERN_CNN_CASES):
        compare_modern_cnn(cls, widths, depths, classes, shapes, seed=10 * i)
    passed("ModernCNN", f"{len(MODERN_CNN_CASES)} networks, built with the reference's block in place of "
                        "yours, have the reference's layers and outputs, on inputs of several sizes")


# ------------------------------------------------------------------ the design challenge
MAX_PARAMETERS = 100_000
MAX_MACS = 5_000_000
#: The floor's recipe: 512 offline 32x32 images, eight epochs (128 steps), seeded, on one CPU thread.
FLOOR_RECIPE = Recipe(epochs=8, batch_size=32, lr=3e-3)
FLOOR_TRAIN, FLOOR_TEST = 512, 500
#: Test accuracy the challenge model must reach under FLOOR_RECIPE (chance: 10%). Measured with seeds 0-3
#: when it was chosen: the reference solution 65-81%, a VGG-style net of six convolutions 60-68%, the
#: exercise's ModernCNN 29-49%, two convolutions with BatchNorm 28-35%, a network without a
#: non-linearity 9-12%.
FLOOR = 0.20
CHALLENGE_HINT = ("A few 3x3 convolutions with BatchNorm and ReLU, downsampling between them and global average "
                  "pooling before one nn.Linear layer learn well within the budget; 1x1 and depthwise "
                  "convolutions (groups=channels) buy width cheaply.")


def _floor_data() -> tuple:
    from torch.utils.data import TensorDataset

    from helpers.data import make_synthetic_dataset
    train = TensorDataset(*make_synthetic_dataset(FLOOR_TRAIN, 32, seed=0))
    test = TensorDataset(*make_synthetic_dataset(FLOOR_TEST, 32, seed=1_000_003))
    return train, test


def measure_budget(model: nn.Module) -> tuple[int, int]:
    """(parameters, MACs of one 32x32 image); the model must be on the CPU or the meta device."""
    return count_parameters(model), count_macs(model, (1, 3, 32, 32))


@one_thread
@frees_models
def compare_challenge(fn: Any, num_classes: int = 10, seed: int = 0, train: bool = True) -> float | None:
    """The budget, the output shape and (``train``) the floor; returns the floor run's accuracy."""
    what = f"build_challenge_model(num_classes={num_classes})"
    model = build_student(fn, (), what, "build_challenge_model", seed=seed, num_classes=num_classes).cpu()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = call_student(model.eval(), x, what=what)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckFailed(what, "the model does not map a batch of 32x32 images to one score per class.",
                          expected=f"(2, {num_classes}) for an input of shape (2, 3, 32, 32)", got=str(got),
                          hint="End with global average pooling, flatten and nn.Linear(channels, num_classes), "
                               "and pass num_classes on.")
    row_sums = out.sum(dim=1)
    if num_classes > 1 and bool((out >= 0).all()) and float((row_sums - 1).abs().max()) <= 1e-4:
        raise CheckFailed(what, "the model's outputs are probabilities (every row is non-negative and sums to 1): "
                                "it ends with a softmax.",
                          expected="raw scores (logits): any real numbers, one per class",
                          got="rows that sum to " + ", ".join(f"{float(v):.4f}" for v in row_sums),
                          hint="Remove the final softmax. The training recipe's loss, F.cross_entropy, applies "
                               "log-softmax itself, and a softmax before it flattens the gradients; the largest "
                               "raw score is already the predicted class.")
    parameters, macs = measure_budget(model)
    if parameters > MAX_PARAMETERS:
        raise CheckFailed(what, f"the model is over the parameter budget: {parameters:,} > {MAX_PARAMETERS:,}.",
                          expected=f"at most {MAX_PARAMETERS:,} parameters", got=f"{parameters:,}",
                          hint="print(helpers.inspection.parameter_table(model, per_leaf=True)) shows where they "
                               "are; a flattening head or wide 3x3 convolutions at the end are the usual "
                               "culprits. " + CHALLENGE_HINT)
    if macs > MAX_MACS:
        raise CheckFailed(what, f"the model is over the compute budget: {macs:,} > {MAX_MACS:,} MACs for one "
                                "32x32 image.",
                          expected=f"at most {MAX_MACS:,} multiply-accumulates", got=f"{macs:,}",
                          hint="A convolution costs k x k x C_in x C_out MACs per output pixel: downsample "
                               "early (a stride or a pool before the wide layers), and keep the layers that "
                               "run on the full 32x32 map narrow. " + CHALLENGE_HINT)
    if not train:
        return None
    train_data, test_data = _floor_data()
    run = train_with_recipe(model, train_data, test_data, FLOOR_RECIPE, seed=seed, device="cpu")
    if run.test_acc < FLOOR:
        why = " (the loss became NaN)" if run.diverged else ""
        raise CheckFailed(what, f"under the fixed recipe the model reaches {run.test_acc:.1%} test accuracy{why}, "
                                f"below the floor of {FLOOR:.0%} (chance is 10%).",
                          expected=f"at least {FLOOR:.0%} after {FLOOR_RECIPE.epochs} epochs on "
                                   f"{FLOOR_TRAIN} images", got=f"{run.test_acc:.1%}",
                          hint="A network of a few convolutions with BatchNorm and ReLU passes easily (one "
                               "convolution with a flattening head may not): check for a missing non-linearity, "
                               "a layer that is created but never used, or an output squashed by a sigmoid "
                               "(cross-entropy wants raw scores). " + CHALLENGE_HINT)
    return run.test_acc


@student_check
def check_challenge_model(fn: Any) -> None:
    compare_challenge(fn, 7, seed=1, train=False)                 # shapes and budget first: seconds saved
    accuracy = compare_challenge(fn, 10, seed=0)
    model = build_student(fn, (), "build_challenge_model()", "build_challenge_model")
    parameters, macs = measure_budget(model.cpu())
    passed("build_challenge_model", f"{parameters:,} parameters and {macs / 1e6:.2f} M MACs per 32x32 image, "
                                    f"within the budget; {accuracy:.1%} test accuracy under the floor's recipe "
                                    f"(the floor is {FLOOR:.0%}; the accuracy itself is not graded)")
