"""Checks for notebook 05 (EfficientNet): stochastic depth in MBConv's training mode.

On a batch of 96 samples, each sample's output must be either x (the residual
branch dropped) or x + F(x) / (1 - p), about a quarter of them dropped for
p = 0.25; a block without a residual connection never drops anything; with
p = 0 the block computes F(x) + x. F(x) is torchvision's ``MBConv`` branch with
the student's weights shared in, run in training mode (BatchNorm on the batch's
statistics) on the same batch. Known mistakes each get their own message: no
dropping at all, no rescaling of the kept branches, dropout-like masks of single
values, one draw for the whole batch, the survival probability used as the drop
probability, dropping in a block without a residual connection.
"""
from __future__ import annotations

import torch

from helpers.transplant import TransplantError, share_weights_by_order

from .calls import calls_made, refuse_calls
from .core import CheckFailed, call_student
from .efficientnet_blocks import close, comparison_input
from .efficientnet_mbconv import MBCONV_HINT, _block_args, _build_block, _mbconv_reference
from .models import TRANSPLANT_PROBLEM, frees_models, on_meta, one_thread, random_weights_

def torchvision_stochastic_depth() -> dict:
    """torchvision's stochastic depth, as a module and as a function: neither is an answer."""
    from .library import torchvision_ops
    ops = torchvision_ops()
    return {"torchvision.ops.stochastic_depth": ops.stochastic_depth,
            "torchvision.ops.StochasticDepth": ops.StochasticDepth.forward}


#: How many samples the training-mode check draws, and the drop probability it uses.
SD_BATCH, SD_PROB = 96, 0.25


@one_thread
@frees_models
def compare_stochastic_depth(cls: type, in_channels: int, out_channels: int, expand_ratio: float, kernel_size: int,
                             stride: int, p: float = SD_PROB, batch: int = SD_BATCH, size: int = 4,
                             seed: int = 0) -> None:
    """Training mode: each sample is x (branch dropped) or x + F(x) / (1 - p); no dropping without a residual."""
    from helpers.device import get_device
    args, kwargs, what = _block_args(in_channels, out_channels, expand_ratio, kernel_size, stride, 0.25, p)
    what += " in training mode"
    block = _build_block(cls, args, kwargs, what, seed)
    reference = on_meta(_mbconv_reference, *args, **kwargs)
    device = get_device()
    block.to(device)
    try:
        share_weights_by_order(block, reference)
    except TransplantError as err:
        raise CheckFailed(what, TRANSPLANT_PROBLEM, got=err.message, hint=err.hint) from None
    random_weights_(reference, seed)
    x = comparison_input((batch, in_channels, size, size), seed, device)
    block.train()
    reference.train()
    with torch.no_grad():
        branch = reference.block(x)                      # F(x) with the batch's BatchNorm statistics
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            out, seen = calls_made(call_student, block, x, what="MBConvBlock")
    refuse_calls(seen, torchvision_stochastic_depth(), what,
                 hint="Write stochastic depth yourself: draw one keep/drop value per sample with torch "
                      "(e.g. torch.rand or torch.bernoulli), as torchvision's StochasticDepth(p, mode=\"row\") "
                      "does; torchvision's module and its functional form are what the check compares with.")
    if not isinstance(out, torch.Tensor) or out.shape != branch.shape:
        raise CheckFailed(what, "the output has the wrong shape in training mode.", expected=tuple(branch.shape),
                          got=tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__,
                          hint=MBCONV_HINT)
    if not reference.use_res_connect:
        if not close(out, branch):
            dropped = sum(close(o, torch.zeros_like(o)) for o in out)
            raise CheckFailed(what, "a block without a residual connection changes its output in training mode"
                                    + (f" ({dropped} of {batch} samples are zero)" if dropped else "") + ".",
                              expected="F(x), as in eval mode: nothing to drop",
                              got="other values",
                              hint="Stochastic depth drops the residual branch of blocks that add their input; "
                                   "a block with stride 2 or a change of channels has no residual connection and "
                                   "never drops anything (torchvision applies it only when use_res_connect).")
        return
    if p == 0:
        if not close(out, x + branch):
            raise CheckFailed(what, "with stochastic_depth_prob=0 the block does not compute F(x) + x in training "
                                    "mode.", expected="F(x) + x", got="other values", hint=MBCONV_HINT)
        return
    kinds = []
    for o, xi, b in zip(out, x, branch):
        kinds.append("dropped" if close(o, xi) else "kept" if close(o, xi + b / (1 - p)) else
                     "unscaled" if close(o, xi + b) else "other")
    counts = {k: kinds.count(k) for k in ("dropped", "kept", "unscaled", "other")}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    if counts["unscaled"] == batch:
        raise CheckFailed(what, f"stochastic depth is not applied in training mode (p = {p}).",
                          expected=f"about {p:.0%} of the {batch} samples with the branch dropped (output x), the "
                                   f"others x + F(x) / (1 - p)",
                          got=f"F(x) + x for all {batch} samples",
                          hint="While self.training is True, drop the residual branch of each sample with probability "
                               "stochastic_depth_prob, and divide the branches that are kept by 1 - p.")
    if counts["other"]:
        diff = out - x
        scaled = branch / (1 - p)
        elementwise = torch.isclose(diff, torch.zeros_like(diff), atol=1e-5) | \
            torch.isclose(diff, scaled, rtol=1e-3, atol=1e-5)
        if bool(elementwise.all()):
            raise CheckFailed(what, "it drops single values of the residual branch (like dropout), not whole "
                                    "samples.", expected="for each sample, all of F(x) dropped or all of it kept",
                              got=f"per sample: {summary}",
                              hint="Draw one random number per sample, a mask of shape (N, 1, 1, 1), and multiply "
                                   "the branch by it: torchvision's StochasticDepth(p, mode=\"row\").")
        raise CheckFailed(what, "in training mode the output is neither x nor x + F(x) / (1 - p) for some samples.",
                          expected="x (branch dropped) or x + F(x) / (1 - p) (kept) for every sample",
                          got=f"per sample: {summary}", hint=MBCONV_HINT)
    if counts["unscaled"]:
        raise CheckFailed(what, "the residual branches that are kept are not rescaled.",
                          expected="x + F(x) / (1 - p) for the kept samples", got=f"per sample: {summary}",
                          hint="Divide the kept branches by the survival probability 1 - p, so that the expected "
                               "output in training equals the output in eval mode, F(x) + x.")
    dropped = counts["dropped"]
    if dropped in (0, batch):
        raise CheckFailed(what, "it drops or keeps the residual branches of the whole batch at once (here "
                                f"{'all dropped' if dropped else 'all kept'}).",
                          expected=f"each sample dropped on its own, with probability {p}",
                          got=f"{dropped} of {batch} samples dropped",
                          hint="Draw one random number per sample, a mask of shape (N, 1, 1, 1), not one for the "
                               "whole batch.")
    low, high = batch * p / 3, batch * (p + 1) / 2          # far outside either way at p = 0.25
    if not low <= dropped <= high:
        raise CheckFailed(what, f"it drops {dropped} of {batch} residual branches with stochastic_depth_prob={p}.",
                          expected=f"about {p * batch:.0f} (each with probability p = {p})", got=f"{dropped}",
                          hint="stochastic_depth_prob is the probability of dropping a branch; 1 - p is the "
                               "probability of keeping it.")


SD_CASES = [
    # in, out, expand, kernel, stride, p
    (8, 8, 4, 3, 1, SD_PROB),                       # residual: about a quarter dropped
    (8, 16, 4, 3, 2, SD_PROB),                      # no residual: nothing to drop
    (8, 8, 1, 3, 1, 0.0),                           # p = 0: F(x) + x
]
