"""Plots for the course: training curves, image grids and feature maps.

Every function returns the matplotlib ``Figure``. In Jupyter the figure is displayed
automatically at the end of the cell; if the call is the cell's last line, end it with
``;`` (or assign the result) so that the figure is not shown twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from helpers.training import History


def _as_runs(histories: History | Mapping[str, History]) -> dict[str, History]:
    if isinstance(histories, History):
        return {"": histories}
    if isinstance(histories, Mapping) and all(isinstance(h, History) for h in histories.values()):
        return dict(histories)
    raise TypeError(
        "plot_history expects a History (what train() returns) or a dict of them, "
        f"e.g. {{'plain': h1, 'resnet': h2}}; got {type(histories).__name__}."
    )


def plot_history(
    history: History | Mapping[str, History], ax: Sequence[Axes] | None = None
) -> Figure:
    """Plot loss (left) and accuracy (right) per epoch; solid = train, dashed = test.

    Args:
        history: one :class:`helpers.training.History` or a dict ``{run name: History}``
            to overlay several runs (one colour per run).
        ax: optionally two Axes ``(loss_ax, acc_ax)`` to draw into.
    """
    runs = _as_runs(history)
    if ax is None:
        fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.5))
    else:
        loss_ax, acc_ax = ax
        fig = loss_ax.figure
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, h) in enumerate(runs.items()):
        colour = colours[i % len(colours)]
        prefix = f"{name} " if name else ""
        epochs = np.arange(1, h.epochs + 1)
        loss_ax.plot(epochs, h.train_loss, "-o", color=colour, label=f"{prefix}train", markersize=3)
        acc_ax.plot(epochs, np.asarray(h.train_acc) * 100, "-o", color=colour, label=f"{prefix}train", markersize=3)
        if h.test_acc:
            loss_ax.plot(epochs, h.test_loss, "--s", color=colour, label=f"{prefix}test", markersize=3)
            acc_ax.plot(epochs, np.asarray(h.test_acc) * 100, "--s", color=colour, label=f"{prefix}test", markersize=3)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for a in (loss_ax, acc_ax):
        a.grid(alpha=0.3)
        a.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _to_numpy(images: Any) -> np.ndarray:
    """Images as a float array (N, H, W, C) or (N, H, W); accepts tensors or arrays, CHW or HWC."""
    arr = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, float)
    if arr.ndim == 3:  # (N, H, W) greyscale
        return arr
    if arr.ndim != 4:
        raise ValueError(f"Expected images of shape (N, C, H, W) or (N, H, W), got {tuple(arr.shape)}.")
    if arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def show_images(
    images: torch.Tensor | np.ndarray,
    labels: Sequence[int] | torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    ncols: int = 8,
) -> Figure:
    """Show images in a grid, titled with their labels (or class names) if given.

    Args:
        images: (N, C, H, W) or (N, H, W, C) or (N, H, W), values in [0, 1] (clipped).
        labels: N integer labels.
        class_names: names indexed by label.
        ncols: images per row.
    """
    arr = np.clip(_to_numpy(images), 0.0, 1.0)
    n = len(arr)
    if n == 0:
        raise ValueError("show_images got no images to show.")
    label_list = [int(y) for y in labels] if labels is not None else None
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.4 * ncols, 1.5 * nrows), squeeze=False)
    for i, a in enumerate(axes.flat):
        a.axis("off")
        if i >= n:
            continue
        a.imshow(arr[i], cmap="gray" if arr[i].ndim == 2 else None, vmin=0.0, vmax=1.0)
        if label_list is not None:
            y = label_list[i]
            a.set_title(class_names[y] if class_names is not None else str(y), fontsize=8)
    fig.tight_layout()
    return fig


def show_feature_maps(feature_maps: torch.Tensor, max_maps: int = 16, title: str | None = None) -> Figure:
    """Show the channels of one activation tensor as small images.

    Args:
        feature_maps: (C, H, W) or (1, C, H, W), e.g. the output of a conv layer for one image.
        max_maps: show at most this many channels (the first ones).
        title: optional figure title.

    Each map is scaled to its own min..max, so the colours show where a channel is
    relatively strong, not how strong it is compared with other channels.
    """
    maps = feature_maps.detach().cpu().float()
    if maps.dim() == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if maps.dim() != 3:
        raise ValueError(
            f"Expected feature maps of shape (C, H, W) or (1, C, H, W), got {tuple(feature_maps.shape)}. "
            "For a batch, pick one image first, e.g. activations[0]."
        )
    maps = maps[:max_maps]  # (k, H, W)
    k = maps.shape[0]
    ncols = min(8, k)
    nrows = math.ceil(k / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.3 * nrows + (0.4 if title else 0)), squeeze=False)
    for i, a in enumerate(axes.flat):
        a.axis("off")
        if i < k:
            a.imshow(maps[i].numpy(), cmap="viridis")
            a.set_title(f"ch {i}", fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
