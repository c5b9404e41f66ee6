"""Choosing the compute device and seeding every random number generator.

Usage in a notebook::

    from helpers.device import get_device, seed_everything, describe_device
    seed_everything(0)
    device = get_device()
    print(describe_device(device))

The environment variable ``COURSE_DEVICE`` (for example ``cpu``, ``cuda``,
``cuda:1`` or ``mps``) overrides the automatic choice.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

ENV_DEVICE = "COURSE_DEVICE"


def _mps_available() -> bool:
    """True when Apple's Metal (MPS) backend is built and usable."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Names of the devices this machine can use, e.g. ``['cuda:0', 'cpu']``."""
    names: list[str] = []
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    names.append("cpu")
    return names


def _is_usable(device: torch.device) -> bool:
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        index = 0 if device.index is None else device.index
        return index < torch.cuda.device_count()
    if device.type == "mps":
        return _mps_available()
    return False


def _parse(name: str, origin: str) -> torch.device:
    """Turn a device name into a usable ``torch.device`` or raise a helpful ValueError."""
    how_to_fix = (
        f"Unset the environment variable (in a notebook: `import os; os.environ.pop('{ENV_DEVICE}', None)`; "
        f"in a shell: `unset {ENV_DEVICE}`) to let the course pick automatically."
        if origin == ENV_DEVICE
        else "Pass one of the available devices, or None to let the course pick automatically."
    )
    try:
        device = torch.device(name.strip().lower())
    except RuntimeError as err:
        raise ValueError(
            f"{origin}={name!r} is not a device name torch understands. "
            f"Available devices: {', '.join(available_devices())}. {how_to_fix}"
        ) from err
    if not _is_usable(device):
        raise ValueError(
            f"{origin}={name!r} asks for a device this machine does not have. "
            f"Available devices: {', '.join(available_devices())}. {how_to_fix}"
        )
    return device


def get_device(prefer: str | None = None) -> torch.device:
    """Return the device to train on.

    Order of precedence:

    1. ``prefer`` if given (e.g. ``"cpu"``),
    2. the environment variable ``COURSE_DEVICE`` if set and non-empty,
    3. automatic: CUDA, then Apple MPS, then CPU.

    Raises:
        ValueError: when ``prefer`` or ``COURSE_DEVICE`` names a device that is
            not available; the message lists the available ones.
    """
    if prefer is not None:
        return _parse(prefer, "prefer")
    override = os.environ.get(ENV_DEVICE, "").strip()
    if override:
        return _parse(override, ENV_DEVICE)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds the CPU and every CUDA (and MPS) device


def describe_device(device: torch.device | str) -> str:
    """One-line human description, e.g. ``"cuda:0 (NVIDIA H100, 80 GB)"`` or ``"cpu (2 threads)"``."""
    device = torch.device(device)
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        props = torch.cuda.get_device_properties(index)
        gib = props.total_memory / 2**30
        return f"cuda:{index} ({props.name}, {gib:.0f} GiB of GPU memory)"
    if device.type == "mps":
        return "mps (Apple GPU via Metal)"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads; training is slower than on a GPU)"
    return str(device)
