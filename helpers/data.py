"""Datasets for the course: CIFAR-10 when it can be had, an offline synthetic set otherwise.

Usage in a notebook::

    from helpers.data import get_datasets, make_loaders
    bundle = get_datasets()                 # prints one line saying which data is used and why
    train_loader, test_loader = make_loaders(bundle, batch_size=128)

Environment variables:

* ``COURSE_DATA``: ``auto`` (default), ``synthetic`` or ``cifar10``.
* ``COURSE_DATA_DIR``: where CIFAR-10 is stored (default ``~/.cache/cnn-course/data``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from helpers.budget import ENV_NBGRADER, Budget, get_budget

ENV_DATA = "COURSE_DATA"
ENV_DATA_DIR = "COURSE_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/cnn-course/data")
SOURCES = ("auto", "synthetic", "cifar10")
DOWNLOAD_TIMEOUT_S = 10.0

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip

SYNTHETIC_CLASSES = [
    "disk", "ring", "square outline", "filled square", "triangle",
    "plus", "x-cross", "horizontal stripes", "vertical stripes", "checkerboard",
]  # fmt: skip

# Seed offset so that the synthetic test set never shares images with the training set.
_TEST_SEED_OFFSET = 1_000_003


# --------------------------------------------------------------------------------------
# Synthetic "offline shapes" dataset
# --------------------------------------------------------------------------------------

# Each shape is described by a signed distance in the shape's own coordinates (u, v),
# scaled so that the shape has "radius" 1: negative inside, positive outside.
_Sdf = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _stripes(t: np.ndarray, period: float) -> np.ndarray:
    """Signed distance to stripes of width period/2 along coordinate ``t``."""
    return (np.abs(np.mod(t / period, 1.0) - 0.5) - 0.25) * period


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v))


def _plus(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    arm, length = 0.3, 1.0
    horizontal = np.maximum(np.abs(u) - length, np.abs(v) - arm)
    vertical = np.maximum(np.abs(v) - length, np.abs(u) - arm)
    return np.minimum(horizontal, vertical)


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Equilateral triangle with circumradius 1 pointing up (image rows grow downwards).
    normals = ((0.0, 1.0), (0.866, -0.5), (-0.866, -0.5))
    return np.max([nu * u + nv * v for nu, nv in normals], axis=0) - 0.5


def _checker(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    a, b = _stripes(u, 0.8), _stripes(v, 0.8)
    xor = np.maximum(np.minimum(a, b), -np.maximum(a, b))
    return np.maximum(xor, _square(u, v) - 1.0)


_SHAPES: list[_Sdf] = [
    lambda u, v: np.sqrt(u * u + v * v) - 1.0,  # disk
    lambda u, v: np.abs(np.sqrt(u * u + v * v) - 0.72) - 0.24,  # ring
    lambda u, v: np.abs(_square(u, v) - 0.7) - 0.2,  # square outline
    lambda u, v: _square(u, v) - 0.85,  # filled square
    _triangle,
    _plus,
    lambda u, v: _plus((u + v) * 0.7071, (v - u) * 0.7071),  # x-cross
    lambda u, v: np.maximum(_stripes(v, 0.5), _square(u, v) - 1.0),  # horizontal stripes
    lambda u, v: np.maximum(_stripes(u, 0.5), _square(u, v) - 1.0),  # vertical stripes
    _checker,
]
assert len(_SHAPES) == len(SYNTHETIC_CLASSES)

_CHUNK = 2048  # images rendered at once; bounds memory for large n
_N_BLOBS = 3  # distractor blobs per image (some with zero opacity)


def _bilinear_matrix(size: int, coarse: int) -> np.ndarray:
    """(size, coarse) matrix that bilinearly upsamples a length-``coarse`` signal."""
    pos = np.linspace(0.0, coarse - 1.0, size)
    lo = np.clip(np.floor(pos).astype(int), 0, coarse - 2)
    frac = pos - lo
    m = np.zeros((size, coarse))
    m[np.arange(size), lo] = 1.0 - frac
    m[np.arange(size), lo + 1] = frac
    return m


def _paint_bump(
    img: np.ndarray, grid: np.ndarray, pos: np.ndarray, size: np.ndarray, colour: np.ndarray, alpha: np.ndarray
) -> None:
    """Blend a soft round blob into ``img`` (m, 3, H, W) in place.

    The blob's opacity is ``alpha * (1 - d^2 / size^2)^2`` within distance ``size`` of ``pos``
    (coordinates in [-1, 1]). Shapes: pos (m, 2), size (m,), colour (m, 3), alpha (m,).
    """
    dx2 = (grid[None, None, :] - pos[:, 0, None, None]) ** 2  # (m, 1, W)
    dy2 = (grid[None, :, None] - pos[:, 1, None, None]) ** 2  # (m, H, 1)
    bump = np.clip(1.0 - (dx2 + dy2) / size[:, None, None] ** 2, 0.0, 1.0) ** 2  # (m, H, W)
    img += (colour[:, :, None, None] - img) * (alpha[:, None, None] * bump)[:, None]


def make_synthetic_dataset(n: int, image_size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``n`` colour images of 10 shape/texture classes ("offline shapes").

    Each image shows one shape (see ``SYNTHETIC_CLASSES``) at a random position, scale,
    small rotation and colour, on a noisy, smoothly varying coloured background, with
    random distractor blobs and pixel noise. Because the shape can be anywhere, a model
    that knows about locality and translation (a CNN) does much better than an MLP.

    The result depends only on ``(n, image_size, seed)``: it uses NumPy's PCG64
    generator and is rounded to 8-bit levels, so it is the same on every machine.

    Returns:
        images: float32 tensor of shape (n, 3, image_size, image_size), values in [0, 1].
        labels: int64 tensor of shape (n,), values 0..9, classes balanced.
    """
    if n < 0 or image_size < 4:
        raise ValueError(f"Need n >= 0 and image_size >= 4, got n={n}, image_size={image_size}.")
    rng = np.random.Generator(np.random.PCG64(seed))
    k = len(SYNTHETIC_CLASSES)

    # Per-image parameters, all drawn up front in a fixed order.
    labels = rng.permutation(np.arange(n) % k)
    radius = rng.uniform(0.3, 0.55, n)  # in units of half the image width
    centre = rng.uniform(-1.0, 1.0, (n, 2)) * (1.0 - radius)[:, None] * 0.9
    angle = np.deg2rad(rng.uniform(-15.0, 15.0, n))
    # Shape and background colours come from opposite halves of the colour cube, so the
    # shape always has some contrast; which half is which varies.
    dark = rng.uniform(0.0, 0.45, (n, 3))
    light = rng.uniform(0.55, 1.0, (n, 3))
    light_shape = (rng.uniform(size=n) < 0.5)[:, None]
    fg_colour = np.where(light_shape, light, dark)
    bg_colour = np.where(light_shape, dark, light)
    opacity = rng.uniform(0.7, 1.0, n)
    coarse_bg = rng.normal(0.0, 0.12, (n, 3, 4, 4))
    blob_pos = rng.uniform(-1.0, 1.0, (n, _N_BLOBS, 2))
    blob_size = rng.uniform(0.12, 0.35, (n, _N_BLOBS))
    blob_colour = rng.uniform(0.0, 1.0, (n, _N_BLOBS, 3))
    blob_alpha = rng.uniform(0.0, 1.0, (n, _N_BLOBS)) * (rng.uniform(size=(n, _N_BLOBS)) < 0.7)
    occluder_pos = centre + rng.uniform(-1.0, 1.0, (n, 2)) * radius[:, None]  # near the shape
    occluder_size = rng.uniform(0.1, 0.25, n)
    occluder_colour = rng.uniform(0.0, 1.0, (n, 3))
    occluder_alpha = rng.uniform(0.5, 1.0, n) * (rng.uniform(size=n) < 0.5)
    noise_std = rng.uniform(0.03, 0.1, n)

    # Rendering works in float32 and uses only arithmetic and sqrt on pixels, so the
    # result does not depend on the CPU's vectorised exp/sin implementations.
    f32 = np.float32
    s = image_size
    grid = ((np.arange(s) + 0.5) / s * 2.0 - 1.0).astype(f32)  # pixel centres in [-1, 1]
    up = _bilinear_matrix(s, 4).astype(f32)  # (H, 4)
    cos_a, sin_a = np.cos(angle).astype(f32), np.sin(angle).astype(f32)
    radius, centre, bg_colour, fg_colour, opacity, coarse_bg, noise_std = (
        a.astype(f32) for a in (radius, centre, bg_colour, fg_colour, opacity, coarse_bg, noise_std)
    )
    blob_pos, blob_size, blob_colour, blob_alpha, occluder_pos, occluder_size, occluder_colour, occluder_alpha = (
        a.astype(f32)
        for a in (blob_pos, blob_size, blob_colour, blob_alpha, occluder_pos, occluder_size, occluder_colour, occluder_alpha)
    )

    out = np.empty((n, 3, s, s), dtype=f32)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        m = sl.stop - sl.start
        # Background: base colour plus low-frequency colour variation. (m, 3, H, W)
        img = bg_colour[sl, :, None, None] + up @ coarse_bg[sl] @ up.T

        # Distractor blobs painted under the shape.
        for b in range(_N_BLOBS):
            _paint_bump(img, grid, blob_pos[sl, b], blob_size[sl, b], blob_colour[sl, b], blob_alpha[sl, b])

        # Shape coverage in [0, 1], antialiased over about one pixel. (m, H, W)
        r = radius[sl, None, None]
        dx = grid[None, None, :] - centre[sl, 0, None, None]  # (m, 1, W)
        dy = grid[None, :, None] - centre[sl, 1, None, None]  # (m, H, 1)
        cos, sin = cos_a[sl, None, None], sin_a[sl, None, None]
        u, v = (cos * dx + sin * dy) / r, (cos * dy - sin * dx) / r  # (m, H, W) each
        sd = np.empty((m, s, s), dtype=f32)
        lab = labels[sl]
        for cls, sdf in enumerate(_SHAPES):
            idx = lab == cls
            if idx.any():
                sd[idx] = sdf(u[idx], v[idx])
        pixel = f32(2.0 / s) / r  # one pixel in shape units
        cover = (np.clip(0.5 - sd / pixel, 0.0, 1.0) * opacity[sl, None, None])[:, None]  # (m, 1, H, W)
        img += (fg_colour[sl, :, None, None] - img) * cover

        # In about half of the images a small blob partly hides the shape.
        _paint_bump(img, grid, occluder_pos[sl], occluder_size[sl], occluder_colour[sl], occluder_alpha[sl])

        img += rng.standard_normal((m, 3, s, s), dtype=f32) * noise_std[sl, None, None, None]
        out[sl] = np.round(np.clip(img, 0.0, 1.0) * f32(255.0)) / f32(255.0)  # 8-bit levels

    return torch.from_numpy(out), torch.from_numpy(labels.astype(np.int64))


# --------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """Where datasets are stored: ``$COURSE_DATA_DIR`` or ``~/.cache/cnn-course/data``."""
    return Path(os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR).expanduser()


def load_cifar10(root: str | os.PathLike[str], train: bool, download: bool = True) -> Dataset:
    """Return torchvision's CIFAR-10 dataset (PIL images), downloading it into ``root`` if needed."""
    from torchvision.datasets import CIFAR10  # imported lazily: torchvision is slow to import

    return CIFAR10(root=str(root), train=train, download=download)


def _subsample(n_total: int, n: int, seed: int) -> np.ndarray:
    """Deterministic sorted choice of ``min(n, n_total)`` indices out of ``n_total``."""
    rng = np.random.Generator(np.random.PCG64(seed))
    return np.sort(rng.permutation(n_total)[: min(n, n_total)])


def _to_tensor_dataset(ds: Dataset, n: int, image_size: int, seed: int) -> TensorDataset:
    """Subsample a torchvision CIFAR dataset into a float TensorDataset (N, 3, S, S) in [0, 1]."""
    data = np.asarray(ds.data)  # (N, 32, 32, 3) uint8
    targets = np.asarray(ds.targets, dtype=np.int64)
    idx = _subsample(len(data), n, seed)
    images = torch.from_numpy(data[idx]).permute(0, 3, 1, 2).float().div_(255.0)  # (n, 3, 32, 32)
    return TensorDataset(_resize(images, image_size), torch.from_numpy(targets[idx]))


def _resize(images: torch.Tensor, image_size: int) -> torch.Tensor:
    if images.shape[-1] == image_size and images.shape[-2] == image_size:
        return images
    resized = F.interpolate(images, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return resized.clamp_(0.0, 1.0)


def _load_cifar_tensors(root: Path, budget: Budget, seed: int) -> tuple[TensorDataset, TensorDataset, str]:
    """Load (or download) CIFAR-10 and subsample it to the budget. Returns (train, test, how)."""
    already = (root / "cifar-10-batches-py").is_dir()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a dead network must not hang the notebook
    try:
        train_raw = load_cifar10(root, train=True, download=True)
        test_raw = load_cifar10(root, train=False, download=True)
    finally:
        socket.setdefaulttimeout(previous)
    train = _to_tensor_dataset(train_raw, budget.train_size, budget.image_size, seed)
    test = _to_tensor_dataset(test_raw, budget.test_size, budget.image_size, seed + _TEST_SEED_OFFSET)
    return train, test, ("found in " if already else "downloaded to ") + str(root)


def _describe_error(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


# --------------------------------------------------------------------------------------
# Choosing the data
# --------------------------------------------------------------------------------------


@dataclass
class DataBundle:
    """The datasets a notebook trains and evaluates on.

    Attributes:
        train: training dataset yielding (image (3, S, S) float in [0, 1], label int64).
        test: test dataset, same format.
        classes: class names, index = label.
        name: ``"cifar10"`` or ``"synthetic"``.
        reason: why this dataset is used (one sentence fragment).
    """

    train: Dataset
    test: Dataset
    classes: list[str]
    name: str
    reason: str

    def describe(self) -> str:
        """The one line :func:`get_datasets` prints."""
        label = "CIFAR-10" if self.name == "cifar10" else "offline synthetic shapes"
        line = f"Data: {label}, {len(self.train)} training / {len(self.test)} test images ({self.reason})."
        if self.name == "synthetic":
            line += f" Set {ENV_DATA}=cifar10 to insist on CIFAR-10."
        return line


def _synthetic_bundle(budget: Budget, reason: str, seed: int) -> DataBundle:
    train = TensorDataset(*make_synthetic_dataset(budget.train_size, budget.image_size, seed))
    test = TensorDataset(*make_synthetic_dataset(budget.test_size, budget.image_size, seed + _TEST_SEED_OFFSET))
    return DataBundle(train, test, list(SYNTHETIC_CLASSES), "synthetic", reason)


def get_datasets(
    source: str | None = None,
    budget: Budget | None = None,
    root: str | os.PathLike[str] | None = None,
    verbose: bool = True,
    seed: int = 0,
) -> DataBundle:
    """Return training and test data sized to the compute budget.

    Args:
        source: ``"auto"``, ``"synthetic"`` or ``"cifar10"``; default ``$COURSE_DATA`` or ``"auto"``.
            ``"auto"`` uses the synthetic set for the ``tiny`` budget and while nbgrader runs,
            and otherwise CIFAR-10, falling back to the synthetic set if it cannot be loaded.
        budget: compute budget (default :func:`helpers.budget.get_budget`); sets the number of
            images and their size.
        root: where CIFAR-10 lives or is downloaded to (default :func:`default_data_dir`).
        verbose: print one line saying which dataset is used and why.
        seed: seed for the deterministic subsampling / generation.

    Raises:
        ValueError: for an unknown ``source``.
        RuntimeError: if ``source="cifar10"`` and CIFAR-10 cannot be loaded.
    """
    from_env = source is None
    source = (source if source is not None else os.environ.get(ENV_DATA, "") or "auto").strip().lower()
    if source not in SOURCES:
        where = f" (from the environment variable {ENV_DATA})" if from_env else ""
        raise ValueError(f"Unknown data source {source!r}{where}. Valid sources are: {', '.join(SOURCES)}.")
    budget = budget if budget is not None else get_budget()
    root_path = Path(root).expanduser() if root is not None else default_data_dir()

    if source == "synthetic":
        bundle = _synthetic_bundle(budget, "it was requested", seed)
    elif source == "auto" and os.environ.get(ENV_NBGRADER) is not None:
        bundle = _synthetic_bundle(budget, f"{ENV_NBGRADER} is set: autograding always uses the offline set", seed)
    elif source == "auto" and budget.name == "tiny":
        bundle = _synthetic_bundle(budget, "the 'tiny' budget always uses the fast offline set", seed)
    else:
        try:
            train, test, how = _load_cifar_tensors(root_path, budget, seed)
        except Exception as err:  # any failure: no network, timeout, corrupt archive, full disk...
            reason = _describe_error(err)
            if source == "cifar10":
                raise RuntimeError(
                    f"CIFAR-10 could not be loaded or downloaded into {root_path} ({reason}). "
                    f"Check your internet connection, or use the offline data set instead: "
                    f"set the environment variable {ENV_DATA}=synthetic or call get_datasets('synthetic')."
                ) from err
            bundle = _synthetic_bundle(budget, f"CIFAR-10 could not be downloaded: {reason}", seed)
        else:
            bundle = DataBundle(train, test, list(CIFAR10_CLASSES), "cifar10", how)
    if verbose:
        print(bundle.describe())
    return bundle


def make_loaders(bundle: DataBundle, batch_size: int, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Return (train_loader, test_loader); the training order is shuffled reproducibly from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(bundle.train, batch_size=batch_size, shuffle=True, num_workers=0, generator=generator)
    test_loader = DataLoader(bundle.test, batch_size=batch_size, shuffle=False, num_workers=0)
    return train_loader, test_loader
