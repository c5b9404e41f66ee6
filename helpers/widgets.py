"""Interactive explorers built on ipywidgets, one function per notebook demo."""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F


def pool_image(image: np.ndarray, mode: str, kernel_size: int, stride: int) -> np.ndarray:
    """Pool a (H, W) image with PyTorch's max or average pooling."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]  # (1, 1, H, W)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    return pool(t, kernel_size, stride)[0, 0].numpy()


def pooling_explorer(image: np.ndarray, max_kernel: int = 16) -> widgets.Widget:
    """Sliders for kernel size and stride, a max/avg switch, and the pooled image.

    ``image`` is a (H, W) array. The explorer uses PyTorch's pooling, so it works
    before your own implementations are finished.
    """
    def show(kernel_size: int, stride: int, mode: str) -> None:
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
        plt.show()

    return widgets.interactive(
        show,
        kernel_size=widgets.IntSlider(value=4, min=1, max=max_kernel, description="kernel"),
        stride=widgets.IntSlider(value=4, min=1, max=max_kernel, description="stride"),
        mode=widgets.ToggleButtons(options=["max", "avg"], description="mode"),
    )
