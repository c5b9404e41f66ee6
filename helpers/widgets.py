"""Interactive explorers built on ipywidgets, one function per notebook demo."""
from __future__ import annotations

import io
from typing import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from helpers.checks.stride import _torch_output_size  # the stride checks' PyTorch oracle


def pool_image(image: np.ndarray, mode: str, kernel_size: int, stride: int) -> np.ndarray:
    """Pool a (H, W) image with PyTorch's max or average pooling."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]  # (1, 1, H, W)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    return pool(t, kernel_size, stride)[0, 0].numpy()


def figure_explorer(draw: Callable[..., plt.Figure], **controls: widgets.ValueWidget) -> widgets.Widget:
    """Controls above a picture that ``draw(**values)`` redraws whenever a control moves.

    The figure is rendered to PNG and shown in an ``Image`` widget. This avoids
    ``interactive``'s captured ``plt.show()``, whose Output widget sometimes
    leaves a headless run (nbclient, nbgrader) waiting for the cell timeout.
    """
    image = widgets.Image(format="png")

    def redraw(_change=None) -> None:
        fig = draw(**{name: control.value for name, control in controls.items()})
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        plt.close(fig)
        image.value = buffer.getvalue()

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([*controls.values(), image])


def draw_pooling(image: np.ndarray, kernel_size: int, stride: int, mode: str) -> plt.Figure:
    """The (H, W) ``image`` beside its max- or average-pooled version, sizes in the titles."""
    pooled = pool_image(image, mode, kernel_size, stride)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title(f"input {image.shape[0]}×{image.shape[1]}")
    axes[1].imshow(pooled, cmap="gray")
    axes[1].set_title(f"{mode} pool k={kernel_size}, s={stride} → "
                      f"{pooled.shape[0]}×{pooled.shape[1]} "
                      f"({image.size / pooled.size:.1f}× fewer values)")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def pooling_explorer(image: np.ndarray, max_kernel: int = 16) -> widgets.Widget:
    """Sliders for kernel size and stride, a max/avg switch, and the pooled image.

    ``image`` is a (H, W) array. The explorer uses PyTorch's pooling, so it works
    before your own implementations are finished.
    """
    return figure_explorer(
        lambda **values: draw_pooling(image, **values),
        kernel_size=widgets.IntSlider(value=4, min=1, max=max_kernel, description="kernel"),
        stride=widgets.IntSlider(value=4, min=1, max=max_kernel, description="stride"),
        mode=widgets.ToggleButtons(options=["max", "avg"], description="mode"),
    )


def _conv_output_size(input_size: int, kernel_size: int, stride: int, padding: int,
                      dilation: int = 1) -> int:
    """PyTorch's output size of a square convolution, or 0 when it gives no output.

    Private: notebook 02's first exercise is to compute this yourself.
    """
    try:
        return _torch_output_size(input_size, kernel_size, stride, padding, dilation, layer="conv")
    except ValueError:
        return 0


def draw_kernel_positions(input_size: int, kernel_size: int, stride: int, padding: int,
                          dilation: int = 1, position: int = 0) -> plt.Figure:
    """Draw the padded input grid with one window's taps, and the output grid beside it.

    ``position`` numbers the output cells row by row (it wraps around). Returns the figure.
    """
    out = _conv_output_size(input_size, kernel_size, stride, padding, dilation)
    side = input_size + 2 * padding
    fig, (ax_in, ax_out) = plt.subplots(1, 2, figsize=(10, 5), gridspec_kw={"width_ratios": [3, 2]})
    for r in range(side):
        for c in range(side):
            pad = not (padding <= r < padding + input_size and padding <= c < padding + input_size)
            ax_in.add_patch(plt.Rectangle((c, r), 1, 1, facecolor="0.85" if pad else "white",
                                          edgecolor="0.6", hatch="//" if pad else None))
    span = dilation * (kernel_size - 1) + 1
    if out:
        i, j = divmod(position % (out * out), out)
        top, left = i * stride, j * stride                            # padded coordinates
        for a in range(kernel_size):
            for b in range(kernel_size):
                ax_in.add_patch(plt.Rectangle((left + b * dilation, top + a * dilation), 1, 1,
                                              facecolor="tab:orange", alpha=0.8))
        ax_in.add_patch(plt.Rectangle((left, top), span, span, fill=False, lw=2.5, edgecolor="tab:red"))
        starts = np.arange(out) * stride + 0.5
        ax_in.plot(*np.meshgrid(starts, starts), "k.", ms=4)         # where each window starts
        for r in range(out):
            for c in range(out):
                ax_out.add_patch(plt.Rectangle((c, r), 1, 1, edgecolor="0.4",
                                               facecolor="tab:orange" if (r, c) == (i, j) else "white"))
        formula = (f"⌊({input_size} + 2·{padding} − {dilation}·({kernel_size}−1) − 1) / {stride}⌋ + 1 "
                   f"= {out}")
        ax_out.set_title(f"output {out}×{out}\ncell ({i}, {j}) is the orange window")
    else:
        formula = f"the kernel spans {span} pixels: it does not fit in {side}×{side}, so no output"
        ax_out.set_title("no output")
    ax_in.set_title(f"input {input_size}×{input_size} with padding {padding} (hatched)\n{formula}")
    for ax, n in ((ax_in, side), (ax_out, max(out, 1))):
        ax.set_xlim(0, n)
        ax.set_ylim(n, 0)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.tight_layout()
    return fig


def kernel_slider_explorer(max_input: int = 12, max_kernel: int = 5) -> widgets.Widget:
    """Sliders for input size, kernel size, stride, padding, dilation and the output cell shown.

    The left grid is the zero-padded input: orange cells are the taps of one window, dots mark
    where every window starts. The right grid is the output. Sizes come from PyTorch's conv2d.
    """
    return figure_explorer(
        draw_kernel_positions,
        input_size=widgets.IntSlider(value=7, min=1, max=max_input, description="input"),
        kernel_size=widgets.IntSlider(value=3, min=1, max=max_kernel, description="kernel"),
        stride=widgets.IntSlider(value=2, min=1, max=4, description="stride"),
        padding=widgets.IntSlider(value=1, min=0, max=3, description="padding"),
        dilation=widgets.IntSlider(value=1, min=1, max=3, description="dilation"),
        position=widgets.IntSlider(value=0, min=0, max=max_input ** 2 - 1, description="output cell"),
    )
