"""A small, readable training loop and evaluation for classification models.

Usage::

    from helpers.device import seed_everything
    from helpers.training import train
    seed_everything(0)
    history = train(model, train_loader, test_loader, epochs=3)
    print(history.summary())
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from helpers.budget import ENV_NBGRADER
from helpers.device import get_device
from helpers.inspection import eval_mode

OPTIMIZERS = ("adam", "sgd")


@dataclass
class History:
    """Per-epoch metrics of one training run. Accuracies are fractions in [0, 1]."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        """Number of completed epochs."""
        return len(self.train_loss)

    @property
    def best_test_acc(self) -> float | None:
        """Highest test accuracy over the epochs, or None if there was no test set."""
        return max(self.test_acc) if self.test_acc else None

    def summary(self) -> str:
        """One line with the final metrics, the best test accuracy and the total time."""
        if not self.epochs:
            return "No epochs were trained."
        text = (
            f"{self.epochs} epoch(s) in {sum(self.epoch_seconds):.1f} s: "
            f"train loss {self.train_loss[-1]:.3f}, train acc {self.train_acc[-1]:.1%}"
        )
        if self.test_acc:
            best = self.test_acc.index(max(self.test_acc)) + 1
            text += (
                f", test loss {self.test_loss[-1]:.3f}, test acc {self.test_acc[-1]:.1%} "
                f"(best {max(self.test_acc):.1%} at epoch {best})"
            )
        return text + "."


def _make_optimizer(name: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    key = name.lower()
    if key == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    if key == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    raise ValueError(f"Unknown optimizer {name!r}. Use one of: {', '.join(OPTIMIZERS)}.")


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device | str | None = None) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy (fraction in [0, 1]) of ``model`` on ``loader``.

    Runs in eval mode without gradients and restores the model's previous mode.
    """
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    total_loss, correct, count = 0.0, 0, 0
    with eval_mode(model):
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            logits = model(images)  # (B, num_classes)
            total_loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(dim=1) == labels).sum().item()
            count += labels.numel()
    if count == 0:
        raise ValueError("The data loader is empty, so there is nothing to evaluate.")
    return total_loss / count, correct / count


def train(
    model: nn.Module,
    train_loader: DataLoader,
    test_loader: DataLoader | None = None,
    *,
    epochs: int,
    lr: float = 1e-3,
    optimizer: str = "adam",
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` with cross-entropy loss and return its per-epoch :class:`History`.

    Args:
        model: a classifier mapping (B, C, H, W) images to (B, num_classes) logits.
        train_loader: training batches of (images, labels).
        test_loader: if given, evaluated after every epoch.
        epochs: number of passes over the training data.
        lr: learning rate.
        optimizer: ``"adam"`` or ``"sgd"`` (SGD uses momentum 0.9).
        device: where to train (default :func:`helpers.device.get_device`); the model is moved there.
        progress: show a progress bar (never shown while nbgrader runs, as it writes to stderr).

    The run is reproducible when :func:`helpers.device.seed_everything` is called before the
    model and the loaders are created.

    Raises:
        FloatingPointError: if the loss becomes NaN or infinite (usually a learning rate that is too high).
    """
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    opt = _make_optimizer(optimizer, model, lr)
    show = progress and os.environ.get(ENV_NBGRADER) is None
    history = History()

    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        total_loss, correct, count = 0.0, 0, 0
        bar = tqdm(train_loader, desc=f"Epoch {epoch}/{epochs}", disable=not show, leave=True)
        for images, labels in bar:
            images, labels = images.to(device), labels.to(device)
            opt.zero_grad()
            logits = model(images)  # (B, num_classes)
            loss = nn.functional.cross_entropy(logits, labels)
            if not math.isfinite(loss.item()):
                bar.close()
                raise FloatingPointError(
                    f"The training loss became {loss.item()} in epoch {epoch}. "
                    f"Try a smaller learning rate (now lr={lr})."
                )
            loss.backward()
            opt.step()
            total_loss += loss.item() * labels.numel()
            correct += (logits.argmax(dim=1) == labels).sum().item()
            count += labels.numel()
            bar.set_postfix(loss=f"{total_loss / count:.3f}", acc=f"{correct / count:.1%}")
        if count == 0:
            bar.close()
            raise ValueError("The training data loader is empty, so there is nothing to train on.")
        history.train_loss.append(total_loss / count)
        history.train_acc.append(correct / count)
        if test_loader is not None:
            test_loss, test_acc = evaluate(model, test_loader, device)
            history.test_loss.append(test_loss)
            history.test_acc.append(test_acc)
            bar.set_postfix(loss=f"{total_loss / count:.3f}", acc=f"{correct / count:.1%}", test_acc=f"{test_acc:.1%}")
        bar.close()
        history.epoch_seconds.append(time.perf_counter() - start)
    return history
