"""A real photograph for demonstrations, available offline.

The picture is the portrait of Rear Admiral Grace Hopper that matplotlib ships
as sample data (``grace_hopper.jpg``; a U.S. Navy photograph in the public
domain). No download is needed.
"""
from __future__ import annotations

import matplotlib.cbook
import matplotlib.image
import numpy as np

PHOTO_CREDIT = ("Photo: Rear Admiral Grace Hopper, U.S. Navy (public domain), "
                "shipped with matplotlib as sample data 'grace_hopper.jpg'.")


def load_sample_photo(gray: bool = False) -> np.ndarray:
    """Return the photo as float32 in [0, 1]: (H, W, 3), or (H, W) when ``gray``."""
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        image = matplotlib.image.imread(f, format="jpg")          # (600, 512, 3) uint8
    image = image.astype(np.float32) / 255.0
    if gray:
        # ITU-R BT.601 luma weights
        image = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return image
