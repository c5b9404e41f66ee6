"""Compute-budget profiles: how much data, how many epochs, how big the images.

Three profiles exist:

* ``tiny``: autograding and tests; trains a small CNN in seconds on a CPU.
* ``cpu``: a laptop CPU; a notebook's training run takes a few minutes at most.
* ``gpu``: a GPU; the full CIFAR-10 training set and more epochs.

Usage::

    from helpers.budget import get_budget
    budget = get_budget()
    print(budget.describe())
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import torch

ENV_BUDGET = "COURSE_BUDGET"
ENV_NBGRADER = "NBGRADER_EXECUTION"


@dataclass(frozen=True)
class Budget:
    """A compute-budget profile.

    Attributes:
        name: profile name (``tiny``, ``cpu`` or ``gpu``).
        train_size: number of training images to use.
        test_size: number of test images to use.
        epochs: default number of training epochs.
        image_size: side length in pixels of the (square) images.
        batch_size: default mini-batch size.
        reason: why this profile was chosen (filled in by :func:`get_budget`);
            not part of equality.
    """

    name: str
    train_size: int
    test_size: int
    epochs: int
    image_size: int
    batch_size: int
    reason: str = field(default="", compare=False)

    def describe(self) -> str:
        """One line saying which profile is in use, its sizes, and why it was chosen."""
        why = f" (chosen because {self.reason})" if self.reason else ""
        return (
            f"Budget {self.name!r}{why}: {self.train_size} training / {self.test_size} test images "
            f"of {self.image_size}x{self.image_size} px, {self.epochs} epoch(s), batch size {self.batch_size}."
        )

    def __str__(self) -> str:
        return self.describe()


TINY = Budget("tiny", train_size=512, test_size=256, epochs=2, image_size=32, batch_size=64)
CPU = Budget("cpu", train_size=8000, test_size=2000, epochs=5, image_size=32, batch_size=64)
GPU = Budget("gpu", train_size=50000, test_size=10000, epochs=15, image_size=32, batch_size=128)

PROFILES: dict[str, Budget] = {b.name: b for b in (TINY, CPU, GPU)}


def _lookup(name: str, reason: str) -> Budget:
    key = name.strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"Unknown budget {name!r}. Valid names are: {', '.join(PROFILES)}. "
            f"If it came from the environment variable {ENV_BUDGET}, set it to one of these or unset it."
        )
    return replace(PROFILES[key], reason=reason)


def get_budget(name: str | None = None) -> Budget:
    """Return the budget profile to use.

    Precedence:

    1. If the environment variable ``NBGRADER_EXECUTION`` is set (nbgrader sets
       it while autograding or validating), always ``tiny``.
    2. ``name`` if given.
    3. The environment variable ``COURSE_BUDGET`` if set and non-empty.
    4. Automatic: ``gpu`` if CUDA is available, else ``cpu``.

    Raises:
        ValueError: for an unknown name; the message lists the valid names.
    """
    if os.environ.get(ENV_NBGRADER) is not None:
        return _lookup("tiny", f"{ENV_NBGRADER} is set: autograding always uses tiny")
    if name is not None:
        return _lookup(name, "it was requested explicitly")
    env = os.environ.get(ENV_BUDGET, "").strip()
    if env:
        return _lookup(env, f"{ENV_BUDGET}={env}")
    if torch.cuda.is_available():
        return _lookup("gpu", f"a CUDA GPU is available; set {ENV_BUDGET}=cpu or tiny for a smaller run")
    return _lookup("cpu", f"no CUDA GPU was found; set {ENV_BUDGET}=tiny for a quicker run")


def describe_budget(budget: Budget | None = None) -> str:
    """Describe ``budget`` (default: :func:`get_budget`'s choice) in one line."""
    return (budget if budget is not None else get_budget()).describe()
