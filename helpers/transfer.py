"""Transfer learning: a pretrained network and a new task with few labels, downloaded or offline.

Usage in a notebook::

    from helpers.transfer import get_transfer_task
    task = get_transfer_task()          # prints one line: which task, and why
    model = task.pretrained()           # a fresh copy of the pretrained network (a StagedNet)
    train = task.labelled(10)           # 10 labelled images per class of the new task
    scratch = task.scratch()            # the same architecture with random weights

Two tasks exist:

* ``pets``: torchvision's ResNet-50 with its ImageNet weights, and the Oxford-IIIT Pet
  data set (37 breeds of cats and dogs; Parkhi et al., CVPR 2012), both downloaded
  with ``torchvision``. Tried only where the budget allows it (``cpu`` and ``gpu``, never
  ``tiny`` or under nbgrader), with a timeout; any failure falls back to the offline task.
* ``offline``: a small CNN (:class:`SmallCNN`) pretrained here, in seconds, on five
  classes of the course's offline shapes (disk, ring, square outline, filled square,
  triangle) and transferred to the five others (plus, x-cross, horizontal and vertical
  stripes, checkerboard), which it has never seen.

``COURSE_TRANSFER`` (``auto``, ``pets`` or ``offline``) overrides the choice. Either way the
network is a :class:`StagedNet`: named stages from the input to the last feature map,
global average pooling and one ``Linear`` head, so that the notebook's four transfer
methods (last layer only, fine-tuning with smaller learning rates for early stages,
a separate classifier on intermediate features, training from scratch) work on both.
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from helpers.budget import ENV_NBGRADER, Budget, get_budget
from helpers.data import SYNTHETIC_CLASSES, _describe_error, default_data_dir, make_synthetic_dataset

ENV_TRANSFER = "COURSE_TRANSFER"
SOURCES = ("auto", "pets", "offline")
DOWNLOAD_TIMEOUT_S = 10.0
#: Offline: the classes the small CNN is pretrained on, and the new task's classes.
SOURCE_CLASSES, TARGET_CLASSES = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TransferPlan:
    """Sizes of the transfer experiment for one budget."""

    pretrain_images: int        # offline: images of the five source classes the small CNN learns from
    pretrain_epochs: int
    pool_per_class: int         # labelled images per class of the new task to draw training sets from
    test_per_class: int
    image_size: int             # pets: side of the (square, centre-cropped) images


PLANS = {
    "tiny": TransferPlan(pretrain_images=600, pretrain_epochs=3, pool_per_class=40, test_per_class=30, image_size=112),
    "cpu": TransferPlan(pretrain_images=3000, pretrain_epochs=5, pool_per_class=200, test_per_class=200, image_size=128),
    "gpu": TransferPlan(pretrain_images=20000, pretrain_epochs=10, pool_per_class=1000, test_per_class=400, image_size=224),
}


# ------------------------------------------------------------------ networks
class StagedNet(nn.Module):
    """A CNN as named stages from the input to its last feature map, then global average pooling and a Linear head."""

    def __init__(self, stages: OrderedDict[str, nn.Module], head: nn.Linear):
        super().__init__()
        self.stages = nn.Sequential(stages)
        self.head = head

    @property
    def num_features(self) -> int:
        return self.head.in_features

    def features(self, x: torch.Tensor, upto: str | None = None) -> torch.Tensor:
        """Globally averaged feature map after stage ``upto`` (default: the last), shape (N, channels)."""
        for name, stage in self.stages.named_children():
            x = stage(x)
            if name == upto:
                break
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _conv_bn_relu(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                               nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def SmallCNN(num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 128)) -> StagedNet:  # noqa: N802
    """Four conv-BN-ReLU stages (max pooling after the first three: 32 -> 4 pixels), GAP, Linear."""
    stages, c_in = OrderedDict(), 3
    for i, width in enumerate(widths):
        stages[f"stage{i + 1}"] = _conv_bn_relu(c_in, width, pool=i < len(widths) - 1)
        c_in = width
    return StagedNet(stages, nn.Linear(c_in, num_classes))


def resnet50_staged(num_classes: int, weights=None) -> StagedNet:
    """torchvision's ResNet-50 as a StagedNet: stem, layer1..layer4, and a new Linear head."""
    import torchvision
    net = torchvision.models.resnet50(weights=weights, progress=False)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    stages = OrderedDict(stem=stem, layer1=net.layer1, layer2=net.layer2, layer3=net.layer3, layer4=net.layer4)
    return StagedNet(stages, nn.Linear(net.fc.in_features, num_classes))


# ------------------------------------------------------------------ the task
@dataclass
class TransferTask:
    """A pretrained network and a new task.

    Attributes:
        name: ``"pets"`` or ``"offline"``.
        classes: the new task's class names, index = label.
        pool: the new task's labelled training images, balanced; :meth:`labelled` draws from it.
        test: the new task's test images.
        source: what the network was pretrained on, in words.
        reason: why this task is used (the fallback's cause, if any).
        tap: the stage whose output the "separate classifier" method reads.
        pretrain_seconds: time spent pretraining here (0 for downloaded weights).
    """

    name: str
    classes: list[str]
    pool: TensorDataset
    test: TensorDataset
    source: str
    reason: str
    tap: str
    _pretrained: StagedNet = field(repr=False)
    _architecture: Callable[[], StagedNet] = field(repr=False)
    pretrain_seconds: float = 0.0

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def max_per_class(self) -> int:
        """The most labelled images per class :meth:`labelled` can draw (the pool's smallest class)."""
        return int(torch.bincount(self.pool.tensors[1], minlength=self.num_classes).min())

    def pretrained(self) -> StagedNet:
        """A fresh copy of the pretrained network, its head replaced by a new one for this task."""
        model = copy.deepcopy(self._pretrained)
        model.head = nn.Linear(model.num_features, self.num_classes)
        return model

    def scratch(self) -> StagedNet:
        """The same architecture with random weights."""
        return self._architecture()

    def labelled(self, per_class: int, seed: int = 0) -> TensorDataset:
        """``per_class`` training images of every class of the new task, drawn from the pool."""
        images, labels = self.pool.tensors
        rng = np.random.default_rng(seed)
        keep = []
        for c in range(self.num_classes):
            where = np.flatnonzero(labels.numpy() == c)
            if per_class > len(where):
                raise ValueError(f"Only {len(where)} training images of class {c} are available, "
                                 f"not {per_class}.")
            keep.extend(rng.choice(where, per_class, replace=False))
        keep = torch.as_tensor(np.sort(keep))
        return TensorDataset(images[keep], labels[keep])

    def describe(self) -> str:
        """The one line :func:`get_transfer_task` prints."""
        if self.name == "pets":
            what = (f"Oxford-IIIT Pet ({self.num_classes} breeds, up to {len(self.pool) // self.num_classes} "
                    f"labelled images per breed, {len(self.test)} test images) with {self.source}")
        else:
            what = (f"offline substitute: {self.source}, transferred to {self.num_classes} classes it has never "
                    f"seen ({', '.join(self.classes)}; up to {len(self.pool) // self.num_classes} labelled images "
                    f"per class, {len(self.test)} test images)")
        return f"Transfer task: {what} ({self.reason})."


# ------------------------------------------------------------------ offline
def _subset(images: torch.Tensor, labels: torch.Tensor, classes: tuple[int, ...], per_class: int | None = None
            ) -> TensorDataset:
    """Images of ``classes`` relabelled 0..len(classes) - 1, at most ``per_class`` of each, in order."""
    keep = []
    for c in classes:
        where = torch.nonzero(labels == c).flatten()
        keep.append(where if per_class is None else where[:per_class])
    keep = torch.sort(torch.cat(keep)).values
    relabel = torch.full((int(labels.max()) + 1,), -1, dtype=torch.long)
    relabel[list(classes)] = torch.arange(len(classes))
    return TensorDataset(images[keep], relabel[labels[keep]])


def pretrain_offline(plan: TransferPlan, seed: int = 0) -> tuple[StagedNet, float, int]:
    """Train a :class:`SmallCNN` on the five source classes; returns it, the seconds and the images used."""
    from helpers.training import train
    from torch.utils.data import DataLoader
    images, labels = make_synthetic_dataset(2 * plan.pretrain_images, 32, seed=seed + 7)
    source = _subset(images, labels, SOURCE_CLASSES)
    del images, labels                                  # half of them are the other classes: free them now
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(len(SOURCE_CLASSES))
        loader = DataLoader(source, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed))
        start = time.perf_counter()
        train(model, loader, epochs=plan.pretrain_epochs, lr=3e-3, device="cpu", progress=False)
    return model.eval(), time.perf_counter() - start, len(source)


def offline_task(budget: Budget, reason: str, seed: int = 0) -> TransferTask:
    plan = PLANS[budget.name]
    model, seconds, seen = pretrain_offline(plan, seed)
    n_pool, n_test = 10 * plan.pool_per_class, 10 * plan.test_per_class
    pool = _subset(*make_synthetic_dataset(n_pool, 32, seed=seed + 11), TARGET_CLASSES)
    test = _subset(*make_synthetic_dataset(n_test, 32, seed=seed + 13), TARGET_CLASSES)
    names = [SYNTHETIC_CLASSES[c] for c in TARGET_CLASSES]
    source = (f"a small CNN pretrained here for {seconds:.0f} s on {seen:,} images of "
              f"{len(SOURCE_CLASSES)} other shape classes ({', '.join(SYNTHETIC_CLASSES[c] for c in SOURCE_CLASSES)})")
    return TransferTask("offline", names, pool, test, source, reason, tap="stage3", _pretrained=model,
                        _architecture=lambda: SmallCNN(len(names)), pretrain_seconds=seconds)


# ------------------------------------------------------------------ Oxford-IIIT Pet
def _pets_tensors(dataset: Dataset, per_class: int, image_size: int, seed: int) -> TensorDataset:
    """Up to ``per_class`` images of each breed, resized and centre-cropped to ``image_size``, normalised."""
    from torchvision.transforms import functional as TF
    labels = np.asarray(getattr(dataset, "_labels", None) or [dataset[i][1] for i in range(len(dataset))])
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                                   for c in np.unique(labels)]))
    images = torch.empty(len(keep), 3, image_size, image_size)
    for row, i in enumerate(keep):
        image, _ = dataset[int(i)]
        image = TF.center_crop(TF.resize(image, int(image_size * 8 / 7)), image_size)
        images[row] = TF.normalize(TF.to_tensor(image.convert("RGB")), IMAGENET_MEAN, IMAGENET_STD)
    return TensorDataset(images, torch.as_tensor(labels[keep], dtype=torch.long))


def pets_task(budget: Budget, seed: int = 0) -> TransferTask:
    """ResNet-50 with ImageNet weights and Oxford-IIIT Pet, downloaded by torchvision (may raise)."""
    import torchvision
    plan = PLANS[budget.name]
    root = default_data_dir()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)          # a dead network must not hang the notebook
    try:
        # torch.hub and torchvision announce their downloads on stdout and stderr: the one line that
        # get_transfer_task prints says what happened instead.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V2
            pretrained = resnet50_staged(1000, weights=weights)
            trainval = torchvision.datasets.OxfordIIITPet(str(root), split="trainval", download=True)
            test = torchvision.datasets.OxfordIIITPet(str(root), split="test", download=True)
    finally:
        socket.setdefaulttimeout(previous)
    classes = list(trainval.classes)
    pool = _pets_tensors(trainval, plan.pool_per_class, plan.image_size, seed)
    test_set = _pets_tensors(test, plan.test_per_class, plan.image_size, seed + 1)
    accuracy = weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    source = "torchvision's ResNet-50 trained on ImageNet" + (f" ({accuracy}% top-1)" if accuracy else "")
    return TransferTask("pets", classes, pool, test_set, source, f"downloaded to {root}", tap="layer3",
                        _pretrained=pretrained.eval(), _architecture=lambda: resnet50_staged(len(classes)))


# ------------------------------------------------------------------ choosing
def get_transfer_task(source: str | None = None, budget: Budget | None = None, verbose: bool = True,
                      seed: int = 0) -> TransferTask:
    """The transfer-learning task for this budget; prints one line saying which one and why.

    ``source``: ``"auto"`` (default, or ``$COURSE_TRANSFER``), ``"pets"`` or ``"offline"``.
    ``auto`` uses the offline task under the ``tiny`` budget and while nbgrader runs, and otherwise
    tries to download ResNet-50's weights and Oxford-IIIT Pet, falling back to the offline task
    on any failure. ``pets`` raises instead of falling back.

    Raises:
        ValueError: for an unknown ``source``.
        RuntimeError: for ``source="pets"`` when the download fails.
    """
    from_env = source is None
    source = (source if source is not None else os.environ.get(ENV_TRANSFER, "") or "auto").strip().lower()
    if source not in SOURCES:
        where = f" (from the environment variable {ENV_TRANSFER})" if from_env else ""
        raise ValueError(f"Unknown transfer task {source!r}{where}. Valid tasks are: {', '.join(SOURCES)}.")
    budget = budget if budget is not None else get_budget()
    if source == "offline":
        task = offline_task(budget, "it was requested", seed)
    elif source == "auto" and os.environ.get(ENV_NBGRADER) is not None:
        task = offline_task(budget, f"{ENV_NBGRADER} is set: autograding never downloads", seed)
    elif source == "auto" and budget.name == "tiny":
        task = offline_task(budget, "the 'tiny' budget never downloads", seed)
    else:
        try:
            task = pets_task(budget, seed)
        except Exception as err:  # no network, timeout, corrupt archive, full disk...
            if source == "pets":
                raise RuntimeError(f"ResNet-50's weights or Oxford-IIIT Pet could not be downloaded "
                                   f"({_describe_error(err)}). Use the offline task instead: set "
                                   f"{ENV_TRANSFER}=offline.") from err
            task = offline_task(budget, f"falling back: ResNet-50's weights or Oxford-IIIT Pet could not be "
                                        f"downloaded ({_describe_error(err)})", seed)
    if verbose:
        print(task.describe())
    return task
