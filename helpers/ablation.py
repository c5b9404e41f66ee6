"""Controlled experiments: one training recipe, several seeds, a table that says what is noise.

An ablation changes one thing in a network and measures what that costs or buys.
Two rules make the answer worth reading: every variant is trained with the same
recipe on the same data, and every variant is trained with more than one seed,
so that a difference can be compared with the seed-to-seed spread.

Usage in a notebook::

    from helpers.ablation import Recipe, run_seeds, summarise, format_table, bar_chart
    recipe = Recipe(epochs=4, batch_size=64, lr=3e-3)
    builders = {"base": build_base, "no BN": build_no_bn}
    results = run_seeds(builders, bundle.train, bundle.test, recipe, seeds=(0, 1))
    rows = summarise(results, builders, baseline="base")
    print(format_table(rows))
    bar_chart(rows);

A difference between two variants is called *outside the seed spread* only when
every run of one beats every run of the other (their ranges do not overlap);
otherwise it is *within the seed spread*: two or three seeds cannot tell it from noise.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from helpers.device import get_device, seed_everything
from helpers.inspection import count_macs, count_parameters, eval_mode

WITHIN, OUTSIDE, BASELINE = "within the seed spread", "outside the seed spread", "baseline"


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one CPU thread, then restore the thread count.

    Small networks gain little from a second thread, and on a machine shared with
    other programs every operation may wait for the second thread's busy core.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def one_cycle(step: int, total: int, warm_up: float = 0.25) -> float:
    """The learning rate of step ``step`` of ``total``, as a fraction of the peak.

    It rises linearly from 1/25 to 1 over the first ``warm_up`` of the steps (at least one
    step), then falls to almost 0 along half a cosine, like ``OneCycleLR`` but defined for
    any number of steps, a single one included.
    """
    rise = max(1, round(warm_up * total))
    if step < rise:
        return 1 / 25 + (1 - 1 / 25) * step / rise
    progress = min(1.0, (step - rise) / max(1, total - rise))
    return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Recipe:
    """A fixed training recipe: Adam with a one-cycle learning rate, cross-entropy, no augmentation.

    The learning rate rises from ``lr / 25`` to ``lr`` over the first quarter of the
    steps and then falls to almost 0 along half a cosine (:func:`one_cycle`), so the
    final weights are not caught in the middle of a large step.
    """

    epochs: int
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0

    def describe(self) -> str:
        decay = f", weight decay {self.weight_decay:g}" if self.weight_decay else ""
        return (f"Adam, one-cycle learning rate peaking at {self.lr:g}{decay}, batch size "
                f"{self.batch_size}, {self.epochs} epoch(s), cross-entropy, no augmentation")


@dataclass
class RunResult:
    """What one training run measured. Accuracies are fractions in [0, 1]."""

    name: str
    seed: int
    test_acc: float
    train_loss: float
    seconds: float
    diverged: bool = False


def train_with_recipe(model: nn.Module, train_data: Dataset, test_data: Dataset, recipe: Recipe,
                      seed: int = 0, device: torch.device | str | None = None) -> RunResult:
    """Train ``model`` with ``recipe`` and return its test accuracy and training time.

    ``seed`` fixes the order of the batches; seed the model's initial weights yourself
    (:func:`helpers.device.seed_everything`) before building it. A run whose loss
    becomes NaN or infinite stops there and is reported with ``diverged=True`` and the
    accuracy its last weights give; nothing is raised, since that is a result too.
    """
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    if len(train_data) == 0:
        raise ValueError("The training set is empty, so there is nothing to train on.")
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(train_data, batch_size=recipe.batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    total = recipe.epochs * len(loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: one_cycle(step, total))
    start = time.perf_counter()
    losses: list[float] = []
    diverged = False
    model.train()
    for _ in range(recipe.epochs):
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = F.cross_entropy(model(images), labels)      # logits (B, num_classes)
            if not math.isfinite(loss.item()):
                diverged = True
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        if diverged:
            break
    seconds = time.perf_counter() - start
    last = losses[-len(loader):] if losses else [float("nan")]
    return RunResult(name="", seed=seed, test_acc=accuracy(model, test_data, device),
                     train_loss=float(np.mean(last)), seconds=seconds, diverged=diverged)


def accuracy(model: nn.Module, data: Dataset, device: torch.device | str | None = None,
             batch_size: int = 256) -> float:
    """Fraction of ``data`` that ``model`` classifies correctly, in eval mode."""
    device = torch.device(device) if device is not None else get_device()
    correct = count = 0
    with eval_mode(model):
        for images, labels in DataLoader(data, batch_size=batch_size):
            logits = model(images.to(device))
            correct += int((logits.argmax(dim=1).cpu() == labels).sum())
            count += len(labels)
    if count == 0:
        raise ValueError("The test set is empty, so there is nothing to evaluate.")
    return correct / count


def run_seeds(builders: Mapping[str, Callable[[], nn.Module]], train_data: Dataset, test_data: Dataset,
              recipe: Recipe, seeds: Sequence[int] = (0, 1), device: torch.device | str | None = None,
              verbose: bool = True) -> dict[str, list[RunResult]]:
    """Train every variant once per seed with the same recipe; ``{name: [one RunResult per seed]}``.

    Before each run, :func:`helpers.device.seed_everything` is called with the seed, then
    the variant is built: with the same seed, every variant sees its batches in the same order.
    """
    results: dict[str, list[RunResult]] = {}
    for name, build in builders.items():
        for seed in seeds:
            seed_everything(seed)
            run = train_with_recipe(build(), train_data, test_data, recipe, seed=seed, device=device)
            run.name = name
            results.setdefault(name, []).append(run)
            if verbose:
                note = "  (diverged: the loss became NaN)" if run.diverged else ""
                print(f"{name:<24} seed {seed}: test accuracy {run.test_acc:6.1%} in {run.seconds:5.1f} s{note}")
    return results


@dataclass
class Row:
    """One variant of an ablation, summarised over its seeds."""

    name: str
    parameters: int
    macs: int
    seconds: float
    accuracies: list[float] = field(default_factory=list)
    verdict: str = ""
    delta: float = 0.0

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def spread(self) -> float:
        """Best run minus worst run."""
        return float(np.max(self.accuracies) - np.min(self.accuracies))


def compare_runs(a: Sequence[float], b: Sequence[float]) -> str:
    """:data:`OUTSIDE` when every value of one list beats every value of the other, else :data:`WITHIN`."""
    if min(a) > max(b) or min(b) > max(a):
        return OUTSIDE
    return WITHIN


def summarise(results: Mapping[str, Sequence[RunResult]], builders: Mapping[str, Callable[[], nn.Module]],
              baseline: str | None = None, input_shape: Sequence[int] = (1, 3, 32, 32)) -> list[Row]:
    """One :class:`Row` per variant: parameters and MACs (counted on the ``meta`` device),
    mean training time, test accuracies, and the verdict against ``baseline``."""
    rows = []
    for name, runs in results.items():
        with torch.device("meta"):
            model = builders[name]()
        rows.append(Row(name, count_parameters(model), count_macs(model, tuple(input_shape), device="meta"),
                        float(np.mean([r.seconds for r in runs])), [r.test_acc for r in runs]))
    if baseline is not None:
        if baseline not in results:
            raise KeyError(f"baseline {baseline!r} is not one of the variants: {', '.join(results)}")
        base = next(r for r in rows if r.name == baseline)
        for row in rows:
            row.delta = row.mean - base.mean
            row.verdict = BASELINE if row is base else compare_runs(row.accuracies, base.accuracies)
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a text table: parameters, MACs, time, accuracy (mean, spread, runs), verdict."""
    lines = [f"{'variant':<24}{'parameters':>11}{'M MACs':>8}{'s/run':>7}{'accuracy':>10}{'spread':>8}"
             f"{'vs base':>9}  runs; verdict"]
    for r in rows:
        runs = ", ".join(f"{a:.1%}" for a in r.accuracies)
        verdict = f"; {r.verdict}" if r.verdict else ""
        lines.append(f"{r.name:<24}{r.parameters:>11,}{r.macs / 1e6:>8.2f}{r.seconds:>7.1f}{r.mean:>10.1%}"
                     f"{r.spread:>8.1%}{100 * r.delta:>+8.1f}p  {runs}{verdict}")
    return "\n".join(lines)


def bar_chart(rows: Sequence[Row], ax=None, title: str = "Test accuracy over seeds"):
    """Bars of the mean accuracy, a line from the worst to the best run, and a dot per run."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(1.3 * len(rows) + 2.5, 3.6))
    else:
        fig = ax.figure
    positions = np.arange(len(rows))
    ax.bar(positions, [100 * r.mean for r in rows], color="tab:blue", alpha=0.6)
    for x, r in zip(positions, rows):
        values = 100 * np.asarray(r.accuracies)
        ax.plot([x, x], [values.min(), values.max()], color="black", linewidth=1.5)
        ax.plot(np.full(len(values), x), values, "o", color="black", markersize=3)
    ax.set_xticks(positions, [r.name for r in rows], rotation=20, ha="right")
    ax.set(ylabel="test accuracy (%)", title=title, ylim=(0, 100))
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig
