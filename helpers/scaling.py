"""Where a network keeps its parameters and computation, stage by stage, and a picture of its shape.

Used by notebook 05 (EfficientNet) for scaled networks, and by its compound-scaling explorer::

    from helpers.scaling import stage_profile, draw_network_shape
    with torch.device("meta"):                      # shapes only: B7 costs no memory
        model = torchvision.models.efficientnet_b7()
    rows = stage_profile(model, 600)
    fig = draw_network_shape(rows)

:func:`stage_profile` works on any model whose ``features`` attribute is an
``nn.Sequential`` of parts (a stem, stages of blocks, a head), as torchvision's
EfficientNet, MobileNet and VGG are laid out. Everything is measured by running
the parts, on the ``meta`` device when the model is built there.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle
from torch import nn

from helpers.inspection import count_macs, count_parameters, model_device

__all__ = ["StageRow", "stage_profile", "format_profile", "draw_network_shape"]


@dataclass(frozen=True)
class StageRow:
    """One part of ``model.features`` (or the classifier): what it holds and what it computes."""

    name: str
    blocks: int          # blocks in the part (the children of a stage); 1 for a stem or a head
    channels: int        # channels of its output
    side: int            # height of its output feature map (width for a rectangle: see ``size``)
    parameters: int
    macs: int            # multiply-accumulates for one image

    @property
    def is_stage(self) -> bool:
        return self.name.startswith("stage")


def _part_names(count: int) -> list[str]:
    if count < 2:
        return ["features"] * count
    return ["stem", *(f"stage {i}" for i in range(1, count - 1)), "head"]


def stage_profile(model: nn.Module, resolution: int | Sequence[int], *,
                  include_classifier: bool = True) -> list[StageRow]:
    """Measure each part of ``model.features`` for one image of ``resolution`` pixels (side, or (H, W)).

    The parts are named ``stem``, ``stage 1`` ... ``stage n`` and ``head`` (first, middle, last);
    a stage's ``blocks`` is its number of children. With ``include_classifier`` the rest of
    the model (pooling and classifier, everything outside ``features``) is a last row,
    ``classifier``, whose parameters are the model's minus those of ``features``; its MACs are
    the whole model's minus the parts'. The model runs on the device it is on (``meta``: shapes
    only) in eval mode.

    Raises:
        TypeError: if ``model.features`` is not an ``nn.Sequential``.
    """
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential):
        raise TypeError(f"stage_profile needs a model whose `features` is an nn.Sequential; "
                        f"{type(model).__name__} has {type(features).__name__}.")
    height, width = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    device = model_device(model)
    x = torch.zeros(1, 3, height, width, device=device)
    rows = []
    for name, part in zip(_part_names(len(features)), features):
        macs = count_macs(part, x, device=x.device)
        with torch.no_grad():
            was_training = part.training
            x = part.eval()(x)
            part.train(was_training)
        blocks = len(part) if name.startswith("stage") and isinstance(part, nn.Sequential) else 1
        rows.append(StageRow(name, blocks, int(x.shape[1]), int(x.shape[2]), count_parameters(part), macs))
    if include_classifier:
        total = count_macs(model, (1, 3, height, width), device=device)
        rows.append(StageRow("classifier", 1, 0, 0, count_parameters(model) - count_parameters(features),
                             total - sum(r.macs for r in rows)))
    return rows


def format_profile(rows: Sequence[StageRow]) -> str:
    """A text table of :func:`stage_profile`'s rows, with each row's share of parameters and MACs."""
    params, macs = sum(r.parameters for r in rows), sum(r.macs for r in rows)
    lines = [f"{'part':<11}{'blocks':>7}{'output':>15}{'parameters':>13}{'share':>8}{'M MACs':>10}{'share':>8}"]
    for r in rows:
        shape = f"{r.channels}x{r.side}x{r.side}" if r.channels else "logits"
        lines.append(f"{r.name:<11}{r.blocks:>7}{shape:>15}{r.parameters:>13,}{r.parameters / max(params, 1):>8.1%}"
                     f"{r.macs / 1e6:>10.1f}{r.macs / max(macs, 1):>8.1%}")
    lines.append(f"{'total':<11}{sum(r.blocks for r in rows if r.is_stage):>7}{'':>15}{params:>13,}{'':>8}"
                 f"{macs / 1e6:>10.1f}")
    return "\n".join(lines)


def _stages(rows: Sequence[StageRow]) -> list[StageRow]:
    return [r for r in rows if r.is_stage]


def draw_network_shape(rows: Sequence[StageRow], baseline: Sequence[StageRow] | None = None, *,
                       title: str = "", baseline_label: str = "baseline", ax: plt.Axes | None = None) -> plt.Figure:
    """The network's stages as boxes: as long as the stage has blocks, as tall as it has channels.

    Each box is labelled with the side of its output feature map, and its shade grows with the
    share of MACs the stage takes. ``baseline`` (another profile, e.g. EfficientNet-B0's) is
    drawn as dashed outlines for comparison. Returns the figure.
    """
    stages = _stages(rows)
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 3.6))
    else:
        fig = ax.figure
    total_macs = max(sum(r.macs for r in stages), 1)
    cmap = plt.get_cmap("Blues")
    left = 0
    for r in stages:
        ax.add_patch(Rectangle((left, 0), r.blocks, r.channels, facecolor=cmap(0.25 + 2.5 * r.macs / total_macs),
                               edgecolor="0.2"))
        ax.text(left + r.blocks / 2, r.channels, f"{r.side}²", ha="center", va="bottom", fontsize=8)
        left += r.blocks
    extent_x, extent_y = left, max((r.channels for r in stages), default=1)
    if baseline is not None:
        base_left = 0
        for r in _stages(baseline):
            ax.add_patch(Rectangle((base_left, 0), r.blocks, r.channels, fill=False, linestyle="--",
                                   edgecolor="tab:red", linewidth=1.2))
            base_left += r.blocks
        extent_x = max(extent_x, base_left)
        extent_y = max(extent_y, max((r.channels for r in _stages(baseline)), default=1))
        ax.plot([], [], "--", color="tab:red", label=baseline_label)
        ax.legend(loc="upper left", fontsize=8)
    ax.set(xlim=(0, extent_x * 1.02 + 0.5), ylim=(0, extent_y * 1.15), xlabel="blocks (depth), stage by stage",
           ylabel="output channels (width)", title=title)
    ax.grid(alpha=0.3)
    return fig
